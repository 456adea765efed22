"""test_alloc.py: after warm-up the /predict hot path performs no heap allocation (ISSUE 6).

The real server runs with tests/support/alloc_count.c preloaded (LD_PRELOAD), which counts every
malloc / calloc / realloc / aligned allocation per thread and per call site. The test warms the
server up, reads the counters (SIGUSR2 makes the library write them to $CRL_ALLOC_COUNT_FILE),
sends 10,000 /predict requests over keep-alive connections, reads them again and asserts that no
thread other than the main one (which only sigwaits) allocated anything in between. On failure
the message names every allocating call site (module+offset and addr2line's function).

Paths covered: inline (batch 1 and a larger batch). The batched and cache paths are added with
their features (ISSUE 6 item 3).
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server  # noqa: E402

LIB = os.environ.get("CRL_ALLOC_COUNT_LIB") or os.path.join(
    os.path.dirname(__file__), "../../build/tests/liballoc_count.so")
KINDS = ("malloc", "calloc", "realloc", "aligned")
WARMUP = 2000
MEASURED = 10000
CONNS = 4
WORKERS = 2  # harness.Server's default


def body(n, seed):
    rnd = random.Random(seed)
    return json.dumps({"observations": [{"speed": rnd.uniform(0, 40),
                                         "steering": rnd.uniform(-1, 1),
                                         "sensors": [rnd.uniform(0, 1) for _ in range(3)]}
                                        for _ in range(n)],
                       "deterministic": True}).encode()


def request_bytes(payload):
    return (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload)) + payload


class Conn:
    """A raw HTTP/1.1 keep-alive client: one request at a time, Content-Length responses."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def roundtrip(self, req):
        self.s.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            rest += self.s.recv(65536) or self._eof()
        self.buf = rest[length:]
        return status, rest[:length]

    def _more(self):
        self.buf += self.s.recv(65536) or self._eof()

    def _eof(self):
        raise AssertionError("the server closed the connection")

    def close(self):
        self.s.close()


def drive(conns, reqs, total):
    """Sends `total` requests (cycling through reqs) over the open connections, one thread each.
    The connections stay open from warm-up to the end, so only requests are measured (accepting
    a connection allocates its state, once)."""
    errors = []

    def run(k):
        try:
            for i in range(k, total, len(conns)):
                st, data = conns[k].roundtrip(reqs[i % len(reqs)])
                if st != 200:
                    errors.append((st, data[:200]))
                    return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class Counters:
    def __init__(self, srv, path):
        self.srv, self.path = srv, path

    def read(self):
        """{tid: {kind: n}}, {(kind, addr): n} from a fresh report."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.kill(self.srv.proc.pid, signal.SIGUSR2)
        deadline = time.time() + 10
        while not os.path.exists(self.path):
            if time.time() > deadline:
                raise AssertionError("no allocation report from the server:\n" + self.srv.log())
            time.sleep(0.01)
        threads, sites = {}, {}
        with open(self.path) as f:
            for line in f:
                p = line.split()
                if p[0] == "thread":
                    threads[int(p[1])] = dict(zip(KINDS + ("free",), map(int, p[2:])))
                elif p[0] == "site":
                    sites[(p[1], int(p[2], 16))] = int(p[3])
        return threads, sites


def symbolize(pid, addr):
    """module+offset (and the function addr2line finds) of a return address in process pid."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            p = line.split()
            lo, hi = (int(x, 16) for x in p[0].split("-"))
            if lo <= addr < hi and len(p) >= 6:
                off = addr - lo + int(p[2], 16)
                fn = "?"
                try:
                    out = subprocess.run(["addr2line", "-f", "-C", "-e", p[5], hex(off - 1)],
                                         capture_output=True, text=True, timeout=10).stdout
                    fn = " ".join(out.split())
                except (OSError, subprocess.SubprocessError):
                    pass
                return "%s+%#x (%s)" % (os.path.basename(p[5]), off, fn)
    return hex(addr)


def thread_name(pid, tid):
    try:
        with open("/proc/%d/task/%d/comm" % (pid, tid)) as f:
            return f.read().strip()
    except OSError:
        return "exited"


@unittest.skipUnless(os.path.exists(LIB), "liballoc_count.so not built")
class HotPathAllocations(unittest.TestCase):
    def measure(self, srv, reqs, grow=0, recycle=0):
        counters = Counters(srv, self.report)
        conns = [Conn(srv.port) for _ in range(CONNS)]
        errors = drive(conns, reqs, WARMUP)
        self.assertEqual(errors, [])
        t0, s0 = counters.read()
        began = time.monotonic()
        errors = drive(conns, reqs, MEASURED)
        self.assertEqual(errors, [])
        t1, s1 = counters.read()
        elapsed = time.monotonic() - began
        for c in conns:
            c.close()
        pid = srv.proc.pid
        per_thread = {}
        for tid, c in t1.items():
            before = t0.get(tid, {})
            n = sum(c[k] - before.get(k, 0) for k in KINDS)
            if n:
                per_thread[tid] = n
        sites = sorted(((n - s0.get(key, 0), key) for key, n in s1.items()
                        if n - s0.get(key, 0) > 0), reverse=True)
        named = [(n, kind, symbolize(pid, addr)) for n, (kind, addr) in sites]
        report = ["%d x %s at %s" % x for x in named]
        # Not per request: h2o 2.2.5 renews each worker's cached Date header string once a second
        # (h2o_context_update_timestamp_cache -> h2o_mem_alloc_shared -> malloc). Allowed up to
        # one per worker per second of the window (+2 for the edges); a per-request use of
        # h2o_mem_alloc_shared (10,000 calls) is far above that and still fails.
        stamp = sum(n for n, _, where in named if "(h2o_mem_alloc_shared " in where)
        budget = WORKERS * (int(elapsed) + 2)
        self.assertLessEqual(stamp, budget, "h2o_mem_alloc_shared per request?\n" +
                             "\n".join(report))
        # KNOWN DEFECT (bounded): a request larger than the 64 KiB socket input buffer
        # (server.c CRL_SOCKET_BUFFER) makes h2o_buffer_reserve malloc a larger buffer, freed when
        # the request is consumed: exactly one malloc per such request. `grow` is that count.
        grown = sum(n for n, _, where in named if "(h2o_buffer_reserve " in where)
        self.assertEqual(grown, grow, "\n".join(report))
        # Part of the same known defect: while those larger buffers come and go, h2o's recycling
        # allocator for socket buffers sometimes needs a chunk more (seen 1-2 per run). Bounded
        # by `recycle` (0 on every other path).
        recycled = sum(n for n, _, where in named if "(h2o_mem_alloc_recycle " in where)
        self.assertLessEqual(recycled, recycle, "\n".join(report))
        main = per_thread.pop(pid, 0)
        if main:
            print("main thread (not the hot path): %d allocations" % main)
        detail = ("allocations per thread: %s\ncall sites:\n  %s" % (
            {"%d (%s)" % (t, thread_name(pid, t)): n for t, n in per_thread.items()},
            "\n  ".join(report)))
        self.assertEqual(sum(per_thread.values()) - stamp - grown - recycled, 0,
                         "the hot path allocated over %d requests\n%s" % (MEASURED, detail))
        print("%d requests in %.2f s: no other allocation (Date cache renewals: %d, known input "
              "buffer growths: %d)" % (MEASURED, elapsed, stamp, grown))

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.report = os.path.join(self.tmp.name, "alloc.txt")

    def tearDown(self):
        self.tmp.cleanup()

    def server(self, env=None, args=()):
        e = {"LD_PRELOAD": LIB, "CRL_ALLOC_COUNT_FILE": self.report}
        e.update(env or {})
        return Server(env=e, workers=WORKERS, args=args)

    def cache_server(self, size):
        cfg = os.path.join(self.tmp.name, "cache.yaml")
        with open(cfg, "w") as f:
            f.write("cache:\n  backend: memory\n  size: %d\n" % size)
        return self.server(args=["--config", cfg])

    def cache_counts(self, srv):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.port, timeout=10) as r:
            text = r.read().decode()
        counts = {}
        for line in text.splitlines():
            for kind in ("hits", "misses"):
                if line.startswith("carla_rl_cache_%s_total{" % kind):
                    counts[kind] = counts.get(kind, 0) + float(line.split()[-1])
        return counts

    def test_inline_batch1(self):
        with self.server() as srv:
            self.measure(srv, [request_bytes(body(1, s)) for s in range(16)])
            self.assertEqual(srv.stop(), 0)

    def test_inline_mixed_batches(self):
        with self.server() as srv:
            self.measure(srv, [request_bytes(body(n, n)) for n in (1, 7, 32, 100, 3, 300)])
            self.assertEqual(srv.stop(), 0)

    def test_cache_hits(self):
        # The memory cache (cache.backend: memory): 16 deterministic bodies, cached during the
        # warm-up, so every measured request is a hit.
        with self.cache_server(10000) as srv:
            self.measure(srv, [request_bytes(body(1, s)) for s in range(16)])
            c = self.cache_counts(srv)
            self.assertGreaterEqual(c.get("hits", 0), MEASURED, c)
            self.assertEqual(srv.stop(), 0)

    def test_cache_misses(self):
        # 16 entries (one per shard) and 64 bodies in a cycle: most lookups miss, and each miss
        # computes and stores (evicting): the miss path. How many hit depends on how the 4
        # connections interleave (90%+ misses alone, 85% seen under load); at least half of the
        # 10,000 measured requests must have taken the miss path.
        with self.cache_server(16) as srv:
            self.measure(srv, [request_bytes(body(2, 1000 + s)) for s in range(64)])
            c = self.cache_counts(srv)
            self.assertGreaterEqual(c.get("misses", 0), WARMUP + MEASURED / 2, c)
            self.assertEqual(srv.stop(), 0)

    def test_batched_mixed_batches(self):
        # batching.enabled: the handler's job records, their row buffers and pool tokens, the
        # once-per-iteration hand-over, the batcher's forward passes (requests of 100 and 300
        # rows split across passes of 64) and the completions posted back to the loops.
        env = {"BATCHING_ENABLED": "true", "BATCHING_MAX_BATCH_SIZE": "64",
               "BATCHING_MAX_QUEUE_DELAY_US": "50"}
        with self.server(env=env) as srv:
            self.measure(srv, [request_bytes(body(n, n)) for n in (1, 7, 32, 100, 3, 300)])
            self.assertEqual(srv.stop(), 0)

    def test_inline_body_over_64k(self):
        # ~90 KiB bodies: one known malloc per request (see measure); everything else is zero.
        with self.server() as srv:
            self.measure(srv, [request_bytes(body(800, 1))], grow=MEASURED, recycle=2 * WORKERS)
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
