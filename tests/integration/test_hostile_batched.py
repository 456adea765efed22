"""test_hostile_batched.py: clients that vanish while their rows wait in the dynamic batcher's
queue, against the AddressSanitizer build.

Over HTTP/2, h2o frees a request the moment its stream is reset or its connection goes, while
the batcher still holds the job's copy of the features; the answer must then be dropped, not
written into the freed request. A long batching.max_queue_delay_us keeps every request queued
while its client vanishes (the queue-depth gauge shows them there first). Afterwards the server
must answer new batched requests with exactly the inline answers, and exit 0 on SIGTERM with no
sanitizer report.
"""
import gzip
import json
import random
import re
import socket
import threading
import time
import unittest

import h2client
from h2client import linger_close
from harness import ASAN_BIN, BIN, Server, main

DELAY_US = 1000000  # the batcher waits this long for company: every request below is queued
BATCHED = {"BATCHING_ENABLED": "true", "BATCHING_MAX_QUEUE_DELAY_US": str(DELAY_US),
           "BATCHING_MAX_BATCH_SIZE": "256", "BATCHING_TIMEOUT_MS": "10000"}


def body(i, n=None):
    rnd = random.Random(i)
    n = n or 1 + i % 4
    return json.dumps({"observations": [{"speed": rnd.uniform(0, 40), "steering": rnd.uniform(-1, 1),
                                         "sensors": [rnd.uniform(0, 1) for _ in range(3)]}
                                        for _ in range(n)], "deterministic": True}).encode()


def rows(b):
    return len(json.loads(b)["observations"])


def actions(data):
    return re.search(rb'"actions":(\[.*?\])', data).group(1)


def http1_request_bytes(b):
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(b)) + b


class VanishWhileQueued(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bodies = [body(i) for i in range(40)]
        with Server() as inline:
            cls.want = [actions(inline.request("POST", "/predict", b,
                                               {"Content-Type": "application/json"})[2])
                        for b in cls.bodies]
        cls.srv = Server(binary=ASAN_BIN or BIN, env=BATCHED).start(60)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop_clean()

    def queued_rows(self):
        _, _, data = self.srv.request("GET", "/metrics")
        m = re.search(r"^carla_rl_batch_queue_rows (\S+)$", data.decode(), re.M)
        return float(m.group(1))

    def wait_queued(self, want):
        """Until the batcher holds at least `want` rows (the requests are queued, not answered)."""
        deadline = time.monotonic() + DELAY_US / 1e6 / 2
        while time.monotonic() < deadline:
            if self.queued_rows() >= want:
                return
            time.sleep(0.005)
        self.fail("the requests never sat in the batch queue together (%d rows wanted)" % want)

    def wait_drained(self):
        deadline = time.monotonic() + 10
        while self.queued_rows() != 0:
            self.assertLess(time.monotonic(), deadline, "the batch queue never drained")
            time.sleep(0.02)

    def assert_serving_batched(self):
        """Concurrent requests, batched together, each get exactly the inline answer."""
        got = [None] * len(self.bodies)

        def client(i):
            st, _, data = self.srv.request("POST", "/predict", self.bodies[i],
                                           {"Content-Type": "application/json"})
            got[i] = actions(data) if st == 200 else (st, data)
        ts = [threading.Thread(target=client, args=(i,)) for i in range(len(self.bodies))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertTrue(self.srv.alive(), self.srv.log())
        self.assertEqual(got, self.want)

    def h2_send(self, s, c, idx, extra=()):
        hdrs = h2client.headers("POST", "/predict", self.srv.port,
                                [("content-type", "application/json")] + list(extra))
        sids = [h2client.send_request(c, hdrs, self.bodies[i]) for i in idx]
        s.sendall(c.data_to_send())
        return sids

    def test_http2_streams_reset_and_connections_dropped_while_queued(self):
        for rnd in range(4):
            gz = [("accept-encoding", "gzip")] if rnd % 2 else []
            base = rnd * 10
            # A: four streams; two reset (RST_STREAM), then the connection dropped with RST.
            sa, ca = h2client.connect(self.srv.port)
            sids = self.h2_send(sa, ca, range(base, base + 4), gz)
            # B: three streams, then an orderly close (FIN) with nothing read.
            sb, cb = h2client.connect(self.srv.port)
            self.h2_send(sb, cb, range(base + 4, base + 7), gz)
            # C: two streams; one is reset, the other must still get its own answer.
            sc, cc = h2client.connect(self.srv.port)
            keep, drop = self.h2_send(sc, cc, [base + 7, base + 8], gz)
            self.wait_queued(sum(rows(self.bodies[i]) for i in range(base, base + 9)))
            for sid in sids[:2]:
                ca.reset_stream(sid)
            sa.sendall(ca.data_to_send())
            cc.reset_stream(drop)
            sc.sendall(cc.data_to_send())
            linger_close(sa)
            sb.shutdown(socket.SHUT_RDWR)
            sb.close()
            time.sleep(0.05)  # the resets and closes reach the server...
            self.assertGreater(self.queued_rows(), 0, "...while the rows are still queued")
            res = h2client.read_responses(sc, cc, [keep], timeout=10)[keep]
            sc.close()
            self.assertEqual(res[0], 200, res)
            data = res[2]
            if res[1].get("content-encoding") == "gzip":
                data = gzip.decompress(data)
            self.assertEqual(actions(data), self.want[base + 7])
            self.wait_drained()
        self.assert_serving_batched()

    def test_http1_clients_vanish_while_queued(self):
        for rnd in range(3):
            base = rnd * 10
            socks = []
            # One request each, then RST; pipelined requests, then RST; one request, then FIN.
            for i in range(base, base + 3):
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
                s.sendall(http1_request_bytes(self.bodies[i]))
                socks.append(("rst", s))
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
            s.sendall(b"".join(http1_request_bytes(self.bodies[i])
                               for i in range(base + 3, base + 6)))
            socks.append(("rst", s))
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
            s.sendall(http1_request_bytes(self.bodies[base + 6]))
            socks.append(("fin", s))
            # HTTP/1 handles one pipelined request at a time: the first of the three is queued.
            want = sum(rows(self.bodies[i]) for i in list(range(base, base + 4)) + [base + 6])
            self.wait_queued(want)
            for how, s in socks:
                if how == "rst":
                    linger_close(s)
                else:
                    s.shutdown(socket.SHUT_WR)
                    s.close()
            time.sleep(0.05)
            self.assertGreater(self.queued_rows(), 0, "the clients left after the batch ran")
            self.wait_drained()
        self.assert_serving_batched()


if __name__ == "__main__":
    main()
