#!/usr/bin/python3
"""The response cache (cache.backend, src/cache): a hit is byte-for-byte the model's answer, only
deterministic requests are cached, a new model version never meets an old answer, and a Redis that
dies mid-run costs no request (errors are counted) and is used again once it is back.

Redis is started by the test on a free loopback port; the test fails if redis-server is missing
(tools/install-deps.sh --test installs it). A Redis that never answers (a socket that accepts and
stays silent) and one that cannot be reached (a listen queue that is full, so the connect hangs)
cost one cache.timeout_ms per cache.retry_ms, not one per request, and every request is still
answered correctly."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BIN, DATA, Server, copy_example, main

POLICIES = os.path.join(DATA, "artifacts-policies")
BODY = {"observations": [{"speed": 25.0, "steering": 0.1, "sensors": [0.5, 0.4, 0.3]},
                         {"speed": 3.5, "steering": -0.7, "sensors": [0.9, 0.05, 0.6]}],
        "deterministic": True}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def counters(srv):
    st, _, body = srv.request("GET", "/metrics")
    assert st == 200
    text = body.decode()
    out = {}
    for name in ("hits", "misses", "errors"):
        m = re.search(r'^carla_rl_cache_%s_total\{backend="(\w+)"\} (\d+)$' % name, text, re.M)
        out[name] = int(m.group(2)) if m else None
        out["backend"] = m.group(1) if m else None
    return out


def strip_timing(raw):
    """The response minus timingMs, the one per-request field."""
    return re.sub(rb'"timingMs":[^,}]*', b'"timingMs":0', raw)


class Redis:
    def __init__(self, port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="crl-redis-")
        self.proc = None

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise AssertionError("redis-server is missing: run tools/install-deps.sh --test")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start on port %d" % self.port)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class MemoryCache(unittest.TestCase):
    def test_hit_is_an_exact_copy(self):
        with Server(workers=1) as plain:
            st, _, want = plain.request("POST", "/predict", BODY)
            self.assertEqual(st, 200)
            self.assertIsNone(counters(plain)["hits"])  # no cache, no cache metrics
        with Server(env={"CACHE_BACKEND": "memory"}, workers=2) as srv:
            st, _, first = srv.request("POST", "/predict", BODY)
            self.assertEqual(st, 200)
            self.assertEqual(counters(srv), {"hits": 0, "misses": 1, "errors": 0,
                                             "backend": "memory"})
            for i in range(5):
                st, _, again = srv.request("POST", "/predict", BODY)
                self.assertEqual(st, 200)
                self.assertEqual(strip_timing(again), strip_timing(first))
            self.assertEqual(strip_timing(first), strip_timing(want))
            c = counters(srv)
            self.assertEqual((c["hits"], c["misses"]), (5, 1))
            # Other features: a miss, then its own hit.
            other = json.loads(json.dumps(BODY))
            other["observations"][0]["speed"] = 26.0
            srv.request("POST", "/predict", other)
            srv.request("POST", "/predict", other)
            c = counters(srv)
            self.assertEqual((c["hits"], c["misses"]), (6, 2))

    def test_stochastic_requests_are_never_cached(self):
        env = {"CACHE_BACKEND": "memory"}
        with Server(artifact_dir=os.path.join(POLICIES, "gaussian"), env=env, workers=1) as srv:
            body = {"observations": BODY["observations"], "deterministic": False}
            seen = set()
            for _ in range(6):
                st, _, b = srv.json("POST", "/predict", body)
                self.assertEqual(st, 200, b)
                seen.add(json.dumps(b["actions"]))
            self.assertGreater(len(seen), 1, "samples must stay fresh draws")
            seeded = dict(body, seed=7)
            srv.request("POST", "/predict", seeded)
            srv.request("POST", "/predict", seeded)
            c = counters(srv)
            self.assertEqual((c["hits"], c["misses"], c["errors"]), (0, 0, 0))
            # The deterministic head of the same policy is cached.
            srv.request("POST", "/predict", BODY)
            srv.request("POST", "/predict", BODY)
            c = counters(srv)
            self.assertEqual((c["hits"], c["misses"]), (1, 1))

    def test_config_shows_the_keys(self):
        with Server(env={"CACHE_BACKEND": "memory", "CACHE_SIZE": "100", "CACHE_TTL": "5"},
                    workers=1) as srv:
            self.assertIn("response cache: memory", srv.log())
            st, _, _ = srv.request("POST", "/predict", BODY)
            self.assertEqual(st, 200)
        env = dict(os.environ, CACHE_BACKEND="redis", CACHE_PASSWORD="s3cret-pw")
        out = subprocess.run([BIN, "config"], env=env, capture_output=True, text=True).stdout
        self.assertIn("backend: redis", out)
        self.assertIn('password: "(hidden)"', out)
        self.assertNotIn("s3cret-pw", out)


class RedisCache(unittest.TestCase):
    def setUp(self):
        self.redis = Redis(free_port()).start()
        self.root = tempfile.mkdtemp(prefix="crl-cache-")

    def tearDown(self):
        self.redis.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self):
        return {"CACHE_BACKEND": "redis", "CACHE_PORT": str(self.redis.port),
                "CACHE_TIMEOUT_MS": "200", "CACHE_RETRY_MS": "200",
                "CACHE_KEY_PREFIX": "test-%d:" % os.getpid()}

    def test_version_change_never_serves_an_old_answer(self):
        copy_example(self.root, "v1.0.0")
        with Server(artifact_dir=self.root, env=self.env(), workers=1) as srv:
            for _ in range(2):
                st, _, b = srv.json("POST", "/predict", BODY)
                self.assertEqual((st, b["version"]), (200, "v1.0.0"))
            c = counters(srv)
            self.assertEqual((c["hits"], c["misses"], c["backend"]), (1, 1, "redis"))
        copy_example(self.root, "v2.0.0")
        with Server(artifact_dir=self.root, env=self.env(), workers=1) as srv:
            st, _, b = srv.json("POST", "/predict", BODY)
            self.assertEqual((st, b["version"]), (200, "v2.0.0"))
            c = counters(srv)
            self.assertEqual((c["hits"], c["misses"]), (0, 1), "v2 must not hit v1's entry")
            st, _, b = srv.json("POST", "/predict", BODY)
            self.assertEqual(counters(srv)["hits"], 1)
        # Shared across processes: a fresh v1 server hits what the first one stored.
        with Server(artifact_dir=self.root, env=dict(self.env(), MODEL_VERSION="v1.0.0"),
                    workers=1) as srv:
            st, _, b = srv.json("POST", "/predict", BODY)
            self.assertEqual((st, b["version"]), (200, "v1.0.0"))
            self.assertEqual(counters(srv)["hits"], 1)

    def test_redis_killed_mid_run_then_restarted(self):
        with Server(env=self.env(), workers=2) as srv:
            st, _, want = srv.request("POST", "/predict", BODY)
            self.assertEqual(st, 200)
            failures, done = [], threading.Event()

            def load():
                conn = srv.conn()
                while not done.is_set():
                    try:
                        st, _, got = srv.request("POST", "/predict", BODY, conn=conn)
                        if st != 200 or strip_timing(got) != strip_timing(want):
                            failures.append((st, got))
                    except Exception as e:  # noqa: BLE001 - any failure is the test's subject
                        failures.append(repr(e))
                        conn.close()
                        conn = srv.conn()
                conn.close()
            threads = [threading.Thread(target=load) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            before = counters(srv)
            self.assertGreater(before["hits"], 0)
            self.redis.kill()
            time.sleep(1.0)
            down = counters(srv)
            self.assertGreater(down["errors"], before["errors"])
            self.redis.start()
            time.sleep(1.0)  # > CACHE_RETRY_MS: every worker has reconnected
            up = counters(srv)
            time.sleep(0.5)
            after = counters(srv)
            done.set()
            for t in threads:
                t.join()
            self.assertEqual(failures, [])
            self.assertGreater(after["hits"], up["hits"], "the restarted redis is used again")
            self.assertEqual(after["errors"], up["errors"])
            self.assertTrue(srv.alive())

    def test_slow_redis_times_out_into_computed_answers(self):
        with Server(env=self.env(), workers=1) as srv:
            st, _, want = srv.request("POST", "/predict", BODY)
            self.assertEqual(st, 200)
            srv.request("POST", "/predict", BODY)
            before = counters(srv)
            self.assertEqual(before["hits"], 1)
            self.redis.proc.send_signal(signal.SIGSTOP)  # alive but silent: every command times out
            try:
                t0 = time.time()
                for _ in range(5):
                    st, _, got = srv.request("POST", "/predict", BODY)
                    self.assertEqual(st, 200)
                    self.assertEqual(strip_timing(got), strip_timing(want))
                # One 200 ms timeout, then CACHE_RETRY_MS of computing without trying.
                self.assertLess(time.time() - t0, 2.0)
                self.assertGreater(counters(srv)["errors"], before["errors"])
            finally:
                self.redis.proc.send_signal(signal.SIGCONT)
            time.sleep(0.4)
            hits = counters(srv)["hits"]
            srv.request("POST", "/predict", BODY)
            srv.request("POST", "/predict", BODY)
            self.assertGreater(counters(srv)["hits"], hits)


class Blackhole:
    """A loopback listener that never answers. accept=True: connections are accepted (and
    counted) and then left silent; accept=False: a listen queue of one, filled at once, so that
    further connects hang until the client gives up."""

    def __init__(self, accept):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16 if accept else 0)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.accepted = 0
        if accept:
            threading.Thread(target=self._accept, daemon=True).start()
        else:
            filler = socket.create_connection(("127.0.0.1", self.port))
            self.held.append(filler)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


class RedisBlackhole(unittest.TestCase):
    TIMEOUT_MS, RETRY_MS = 200, 1500

    def run_against(self, hole):
        with Server(workers=1) as plain:
            want = strip_timing(plain.request("POST", "/predict", BODY)[2])
        env = {"CACHE_BACKEND": "redis", "CACHE_HOST": "127.0.0.1", "CACHE_PORT": str(hole.port),
               "CACHE_TIMEOUT_MS": str(self.TIMEOUT_MS), "CACHE_RETRY_MS": str(self.RETRY_MS)}
        timeout = self.TIMEOUT_MS / 1000
        with Server(env=env, workers=1) as srv:
            def timed():
                t0 = time.monotonic()
                st, _, got = srv.request("POST", "/predict", BODY)
                self.assertEqual((st, strip_timing(got)), (200, want))
                return time.monotonic() - t0
            first = timed()
            # The first request waits out one timeout (no more), then computes.
            self.assertGreaterEqual(first, timeout * 0.9)
            self.assertLess(first, timeout + 0.5)
            # Within cache.retry_ms nothing is tried: 8 requests together cost far less than
            # one timeout each.
            t0 = time.monotonic()
            for _ in range(8):
                timed()
            self.assertLess(time.monotonic() - t0, 8 * timeout / 2)
            tries = hole.accepted
            # After cache.retry_ms, one new try (and one timeout again).
            time.sleep(self.RETRY_MS / 1000 + 0.1)
            self.assertGreaterEqual(timed(), timeout * 0.9)
            c = counters(srv)
            self.assertEqual((c["backend"], c["hits"]), ("redis", 0))
            self.assertEqual(c["errors"], 10)  # one per request, each computed without the cache
            self.assertTrue(srv.alive())
        return tries, hole.accepted

    def test_silent_redis(self):
        hole = Blackhole(accept=True)
        try:
            tries, later = self.run_against(hole)
        finally:
            hole.close()
        self.assertEqual((tries, later), (1, 2), "one connect per cache.retry_ms")

    def test_unreachable_redis(self):
        hole = Blackhole(accept=False)
        try:
            self.run_against(hole)
        finally:
            hole.close()


if __name__ == "__main__":
    main()
