"""test_batching.py: batching.enabled. Batched answers equal inline answers bit for bit under 64
concurrent clients with distinct observations (each response gets exactly its rows, in order);
a request larger than max_batch_size is split, not refused; a full queue answers 503 (or 429)
with Retry-After; a request whose deadline passes in the queue gets 503 with no compute; the
metrics show the queue depth and the executed batch sizes; shutdown is clean."""
import json
import os
import random
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DATA, Server  # noqa: E402

GAUSSIAN = os.path.join(DATA, "artifacts-policies", "gaussian")


def body(i, n=None, deterministic=True, seed=None):
    rnd = random.Random(i)
    n = n or 1 + i % 5
    b = {"observations": [{"speed": rnd.uniform(0, 40), "steering": rnd.uniform(-1, 1),
                           "sensors": [rnd.uniform(0, 1) for _ in range(3)]} for _ in range(n)],
         "deterministic": deterministic}
    if seed is not None:
        b["seed"] = seed
    return b


def raw_actions(data):
    # Floats are written shortest-round-trip: equal text is equal bits.
    return re.search(rb'"actions":(\[.*?\])', data).group(1)


def concurrent(srv, bodies, clients=64):
    out = [None] * len(bodies)
    errors = []

    def client(k):
        conn = srv.conn()
        try:
            for i in range(k, len(bodies), clients):
                st, _, data = srv.request("POST", "/predict", bodies[i], conn=conn)
                if st != 200:
                    errors.append((i, st, data))
                out[i] = data
        finally:
            conn.close()

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    return out


def metric(srv, name):
    _, _, data = srv.request("GET", "/metrics")
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), data.decode(), re.M)
    return float(m.group(1)) if m else None


BATCHED = {"BATCHING_ENABLED": "true", "BATCHING_MAX_QUEUE_DELAY_US": "500"}


class Batching(unittest.TestCase):
    def test_batched_equals_inline_under_64_clients(self):
        bodies = [body(i) for i in range(640)]
        with Server() as inline:
            want = [raw_actions(d) for d in concurrent(inline, bodies)]
        with Server(env=dict(BATCHED, BATCHING_MAX_BATCH_SIZE="16")) as srv:
            got = [raw_actions(d) for d in concurrent(srv, bodies)]
            rows = sum(len(b["observations"]) for b in bodies)
            self.assertEqual(metric(srv, "carla_rl_batch_size_sum"), rows)
            passes = metric(srv, "carla_rl_batch_size_count")
            self.assertLess(passes, len(bodies), "no two requests ever shared a forward pass")
            self.assertEqual(metric(srv, "carla_rl_batch_queue_rows"), 0)
            self.assertEqual(srv.stop(), 0, srv.log())
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "request %d" % i)
            self.assertEqual(len(json.loads(g)), len(bodies[i]["observations"]))

    def test_seeded_sampling_equals_inline(self):
        bodies = [body(i, deterministic=False, seed=1000 + i) for i in range(128)]
        with Server(artifact_dir=GAUSSIAN) as inline:
            want = [raw_actions(d) for d in concurrent(inline, bodies, 16)]
        with Server(env=dict(BATCHED, BATCHING_MAX_BATCH_SIZE="4"), artifact_dir=GAUSSIAN) as srv:
            got = [raw_actions(d) for d in concurrent(srv, bodies, 16)]
        self.assertEqual(got, want)

    def test_oversized_request_is_split(self):
        b = body(7, n=37)
        with Server() as inline:
            want = raw_actions(inline.request("POST", "/predict", b)[2])
        with Server(env=dict(BATCHED, BATCHING_MAX_BATCH_SIZE="8")) as srv:
            st, _, data = srv.request("POST", "/predict", b)
            self.assertEqual(st, 200, data)
            self.assertEqual(raw_actions(data), want)
            self.assertEqual(metric(srv, "carla_rl_batch_size_count"), 5)  # 8+8+8+8+5
            self.assertEqual(metric(srv, "carla_rl_batch_size_sum"), 37)

    def overflow(self, extra):
        env = dict(BATCHING_ENABLED="true", BATCHING_MAX_QUEUE_DELAY_US="300000",
                   BATCHING_MAX_QUEUE_ROWS="2", BATCHING_RETRY_AFTER="3", **extra)
        with Server(env=env, workers=1) as srv:
            first = []
            t = threading.Thread(target=lambda: first.append(
                srv.request("POST", "/predict", body(1, n=2))))
            t.start()
            time.sleep(0.1)  # the first request's 2 rows wait in the queue for company
            st, h, data = srv.request("POST", "/predict", body(2, n=1))
            t.join()
            self.assertEqual(first[0][0], 200)
            self.assertEqual(srv.stop(), 0, srv.log())
            return st, h, json.loads(data)

    def test_queue_overflow_503_with_retry_after(self):
        st, h, doc = self.overflow({})
        self.assertEqual(st, 503)
        self.assertEqual(h.get("retry-after"), "3")
        self.assertEqual(doc["error"], "SERVICE_UNAVAILABLE")
        self.assertIn("queue is full", doc["message"])

    def test_queue_overflow_429_when_configured(self):
        st, h, doc = self.overflow({"BATCHING_OVERFLOW_STATUS": "429"})
        self.assertEqual(st, 429)
        self.assertEqual(h.get("retry-after"), "3")

    def test_deadline_expired_in_queue(self):
        env = dict(BATCHING_ENABLED="true", BATCHING_MAX_QUEUE_DELAY_US="200000",
                   BATCHING_TIMEOUT_MS="20")
        with Server(env=env) as srv:
            st, _, data = srv.request("POST", "/predict", body(3))
            self.assertEqual(st, 503, data)
            doc = json.loads(data)
            self.assertIn("deadline", doc["message"])
            self.assertEqual(doc["details"]["timeout_ms"], 20)
            self.assertIsNone(metric(srv, "carla_rl_batch_size_count"))  # no compute spent
            self.assertEqual(metric(srv, "carla_rl_batch_queue_rows"), 0)

    def test_bad_overflow_status_refused(self):
        srv = Server(env={"BATCHING_ENABLED": "true", "BATCHING_OVERFLOW_STATUS": "500"})
        with self.assertRaises(AssertionError):
            srv.start(timeout=5)
        self.assertIn("overflow_status", srv.log())


if __name__ == "__main__":
    unittest.main()
