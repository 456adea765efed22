"""test_threads.py: optimization.compute_threads. A large /predict batch split across compute
threads answers exactly what one thread answers (same model, same observations), also while
several clients send large batches at once; batch 1 is unaffected; the helper threads exist, follow
optimization.compute_cpus, and /metadata says what was applied."""
import json
import os
import random
import re
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DATA, ONE_OBS, Server  # noqa: E402

GAUSSIAN = os.path.join(DATA, "artifacts-policies", "gaussian")


def batch(n, seed, sensors=3):
    rnd = random.Random(seed)
    return {"observations": [{"speed": rnd.uniform(0, 40), "steering": rnd.uniform(-1, 1),
                              "sensors": [rnd.uniform(0, 1) for _ in range(sensors)]}
                             for _ in range(n)],
            "deterministic": True}


def actions(srv, body):
    st, _, data = srv.request("POST", "/predict", body)
    assert st == 200, (st, data)
    # Floats are written shortest-round-trip, so equal parsed values are equal bits.
    return json.loads(data)["actions"]


def helper_threads(srv):
    """The CPU lists of the server's threads other than the main one and the logger."""
    out = []
    for tid in sorted(os.listdir("/proc/%d/task" % srv.proc.pid), key=int):
        if int(tid) == srv.proc.pid:
            continue
        with open("/proc/%d/task/%s/status" % (srv.proc.pid, tid)) as f:
            status = f.read()
        if re.search(r"^Name:\s*crl-log$", status, re.M):
            continue
        out.append(re.search(r"Cpus_allowed_list:\s*(\S+)", status).group(1))
    return out


class ComputeThreads(unittest.TestCase):
    def answers(self, env, bodies, artifact_dir=None, workers=1):
        with Server(env=env, workers=workers, artifact_dir=artifact_dir) as srv:
            meta = srv.json("GET", "/metadata")[2]
            return meta, [actions(srv, b) for b in bodies], srv.log()

    def test_split_batches_answer_as_one_thread(self):
        bodies = [ONE_OBS, batch(7, 1), batch(65, 2), batch(256, 3), batch(1000, 4)]
        meta1, want, _ = self.answers({}, bodies)
        self.assertEqual((meta1["computeThreads"], meta1["parallelMinRows"]), (1, 0))
        for threads in ("2", "3"):
            meta, got, log = self.answers({"COMPUTE_THREADS": threads, "PARALLEL_MIN_ROWS": "2"},
                                          bodies)
            self.assertEqual((meta["computeThreads"], meta["parallelMinRows"]), (int(threads), 2))
            self.assertIn("compute_threads=%s" % threads, log)
            for b, w, g in zip(bodies, want, got):
                self.assertEqual(w, g, "%d observations on %s threads" % (
                    len(b["observations"]), threads))

    def test_gaussian_policy_split(self):
        # An artifact model (Gaussian head, ONNX import) as well as the built-in example.
        bodies = [batch(1000, 5), batch(64, 6)]
        _, want, _ = self.answers({}, bodies, artifact_dir=GAUSSIAN)
        _, got, _ = self.answers({"COMPUTE_THREADS": "2", "PARALLEL_MIN_ROWS": "64"}, bodies,
                                 artifact_dir=GAUSSIAN)
        self.assertEqual(want, got)

    def test_measured_threshold_is_reported(self):
        with Server(env={"COMPUTE_THREADS": "2"}, workers=1) as srv:
            meta = srv.json("GET", "/metadata")[2]
            self.assertGreaterEqual(meta["parallelMinRows"], 2)
            self.assertRegex(srv.log(), r"batches of \d+ rows or more split across 2 threads "
                                        r"\(measured: \d+ ns per row")

    def test_concurrent_clients(self):
        bodies = [batch(1000, 10 + i) for i in range(4)]
        with Server(workers=2) as srv:
            want = [actions(srv, b) for b in bodies]
        errors = []
        with Server(env={"COMPUTE_THREADS": "2", "PARALLEL_MIN_ROWS": "2"}, workers=2) as srv:
            def client(i):
                conn = srv.conn(timeout=30)
                try:
                    for rep in range(8):
                        k = (i + rep) % len(bodies)
                        st, _, data = srv.request("POST", "/predict", bodies[k], conn=conn)
                        if st != 200 or json.loads(data)["actions"] != want[k]:
                            errors.append((i, rep, st))
                finally:
                    conn.close()
            ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertTrue(srv.alive())
        self.assertEqual(errors, [])

    def test_helpers_follow_compute_cpus(self):
        with Server(env={"COMPUTE_THREADS": "3"}, args=["--compute-cpus", "0"], workers=1) as srv:
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            cpus = helper_threads(srv)
        # One worker (unpinned) and two helpers, each pinned to CPU 0.
        self.assertEqual(len(cpus), 3, cpus)
        self.assertEqual(cpus.count("0"), 2 if os.cpu_count() > 1 else 3, cpus)

    def test_one_thread_warns_about_split_keys(self):
        with Server(env={"PARALLEL_MIN_ROWS": "64"}, workers=1) as srv:
            log = srv.log()
        self.assertIn("optimization.parallel_min_rows has no effect here", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
