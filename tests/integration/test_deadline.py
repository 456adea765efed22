"""test_deadline.py: batching.timeout_ms holds even when the batcher is stuck, against the
AddressSanitizer build.

The test hook CRL_TEST_BATCH_STALL_MS makes the first forward pass sleep (a huge pass, or a bug).
Each request must still get its 503 at its deadline from its own event loop: the one whose rows
are in the stalled pass ("did not finish"), and the ones queued behind it ("no inference was
run"), over HTTP/1.1 and HTTP/2, while clients that left meanwhile get nothing. The queued ones
leave the queue at once; the stalled pass's late result is dropped, and the rest of its split
request never runs. Once the stall ends, the same keep-alive connection gets the right answer to
its next request (no late second response), and the server exits 0 with no sanitizer report.
"""
import json
import re
import sys
import threading
import time
import unittest

import h2client
from h2client import linger_close
from harness import ASAN_BIN, BIN, Server, main

TIMEOUT_MS = 300
STALL_MS = 3000
ENV = {"BATCHING_ENABLED": "true", "BATCHING_TIMEOUT_MS": str(TIMEOUT_MS),
       "BATCHING_MAX_QUEUE_DELAY_US": "0", "BATCHING_MAX_BATCH_SIZE": "4",
       "CRL_TEST_BATCH_STALL_MS": str(STALL_MS)}
CT = {"Content-Type": "application/json"}


def body(seed, n):
    return json.dumps({"observations": [{"speed": 3.0 * seed + i, "steering": 0.1,
                                         "sensors": [0.2, 0.5, 0.01 * i]} for i in range(n)],
                       "deterministic": True}).encode()


A = body(1, 10)  # split 4+4+2 at max_batch_size 4: its first pass stalls
B = body(2, 2)   # queued behind the stalled pass
D = body(3, 1)   # over HTTP/2
E = body(4, 3)   # after the stall, on A's connection


def actions(data):
    return re.search(rb'"actions":(\[.*?\])', data).group(1)


def metric(srv, name):
    _, _, data = srv.request("GET", "/metrics")
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), data.decode(), re.M)
    return float(m.group(1)) if m else None


class Deadline(unittest.TestCase):
    def test_deadline_answers_without_the_batcher(self):
        with Server() as inline:
            want = {k: actions(inline.request("POST", "/predict", b, CT)[2])
                    for k, b in (("B", B), ("E", E))}
        srv = Server(binary=ASAN_BIN or BIN, env=ENV, workers=1).start(60)
        try:
            self.run_stall(srv, want)
        except BaseException:
            srv.stop(timeout=30)
            sys.stderr.write(srv.log())  # a sanitizer report explains most failures here
            raise
        self.assertIn("CRL_TEST_BATCH_STALL_MS", srv.log())  # the hook says when it is on
        srv.stop_clean()

    def run_stall(self, srv, want):
        res = {}
        conn_a = srv.conn()

        def post(key, b, conn=None):
            t0 = time.monotonic()
            st, _, data = srv.request("POST", "/predict", b, CT, conn=conn)
            res[key] = (st, json.loads(data), time.monotonic() - t0)

        t_start = time.monotonic()
        ta = threading.Thread(target=post, args=("A", A, conn_a))
        ta.start()
        time.sleep(0.1)  # A's first 4 rows are in the stalled pass
        tb = threading.Thread(target=post, args=("B", B))
        tb.start()
        # HTTP/2: one stream waits for its 503, one is reset and one connection dropped before
        # their deadlines: the timer must not answer into the freed requests.
        hdrs = h2client.headers("POST", "/predict", srv.port, [("content-type", "application/json")])
        s1, c1 = h2client.connect(srv.port)
        t_d = time.monotonic()
        keep = h2client.send_request(c1, hdrs, D)
        gone = h2client.send_request(c1, hdrs, D)
        s1.sendall(c1.data_to_send())
        s2, c2 = h2client.connect(srv.port)
        h2client.send_request(c2, hdrs, D)
        s2.sendall(c2.data_to_send())
        time.sleep(0.05)
        c1.reset_stream(gone)
        s1.sendall(c1.data_to_send())
        linger_close(s2)
        d = h2client.read_responses(s1, c1, [keep], timeout=10)[keep]
        d_elapsed = time.monotonic() - t_d
        s1.close()
        ta.join()
        tb.join()

        for key, msg in (("A", "did not finish"), ("B", "no inference was run")):
            st, doc, elapsed = res[key]
            self.assertEqual(st, 503, (key, doc))
            self.assertEqual(doc["error"], "SERVICE_UNAVAILABLE")
            self.assertIn(msg, doc["message"], key)
            self.assertEqual(doc["details"]["timeout_ms"], TIMEOUT_MS)
            # At the deadline, not when the stall ends.
            self.assertGreaterEqual(elapsed, TIMEOUT_MS / 1000 * 0.9, key)
            self.assertLess(elapsed, 1.5, key)
        self.assertEqual(d[0], 503, d)
        self.assertIn("no inference was run", json.loads(d[2])["message"])
        self.assertLess(d_elapsed, 1.5)

        # Still inside the stall: the loop answers, and only A's rows are still held once the
        # other deadlines have passed (the two HTTP/2 requests that left may have reached the
        # loop an iteration after the one that stayed, so their timers may fire a moment later).
        self.assertEqual(srv.request("GET", "/live")[0], 200)
        in_stall = t_start + STALL_MS / 1000 - 0.5
        held = metric(srv, "carla_rl_batch_queue_rows")
        while held != 10 and time.monotonic() < in_stall:
            time.sleep(0.01)
            held = metric(srv, "carla_rl_batch_queue_rows")
        self.assertEqual(held, 10)
        self.assertLess(time.monotonic(), in_stall, "the machine is too slow for this test")

        deadline = time.monotonic() + STALL_MS / 1000 + 10
        while metric(srv, "carla_rl_batch_queue_rows") != 0:
            self.assertLess(time.monotonic(), deadline, "the queue never drained after the stall")
            time.sleep(0.05)
        # One pass ran (the stalled one, A's first 4 rows); A's remaining 6 rows and B never did.
        self.assertEqual(metric(srv, "carla_rl_batch_size_count"), 1)
        self.assertEqual(metric(srv, "carla_rl_batch_size_sum"), 4)

        # A's connection gets E's answer to E, not A's late result; B is answered again.
        st, _, data = srv.request("POST", "/predict", E, CT, conn=conn_a)
        conn_a.close()
        self.assertEqual((st, actions(data)), (200, want["E"]))
        st, _, data = srv.request("POST", "/predict", B, CT)
        self.assertEqual((st, actions(data)), (200, want["B"]))
        self.assertTrue(srv.alive(), srv.log())


if __name__ == "__main__":
    main()
