"""test_bench.py: `carlarl bench` against the real server and against a deliberately slow or
misbehaving local server: open-loop rate and coordinated-omission correction, closed-loop request
counts, the JSON schema, 5xx counted by status, transport errors by kind, exit codes."""
import json
import os
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import BIN, Server, main

SRC = os.environ.get("CRL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


class Misbehaving:
    """A raw HTTP/1.1 keep-alive server on 127.0.0.1, one thread per connection, whose behaviour is
    chosen by the request path: /slow (sleeps `sleep_s`, then 200), /status/NNN, /mixed (200 and
    500 in turn), /chunked (a chunked 200), /closeok (200 with Connection: close), /close (closes
    without answering), /reset (answers with a TCP reset), /garbage (not HTTP)."""

    def __init__(self, sleep_s=0.0):
        self.sleep_s = sleep_s
        self.lock = threading.Lock()
        self.arrivals = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_request(self, c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, None
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v)
        while len(buf) < clen:
            d = c.recv(65536)
            if not d:
                return None, None
            buf += d
        return head.split(b" ")[1].decode(), buf[clen:]

    def _serve(self, c):
        buf = b""
        try:
            while True:
                path, buf = self._read_request(c, buf)
                if path is None:
                    break
                with self.lock:
                    n = len(self.arrivals)
                    self.arrivals.append(time.monotonic())
                if not self._answer(c, path, n):
                    break
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def _send(c, status, body=b'{"ok":true}', extra=b""):
        c.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                  % (status, len(body), extra, body))

    def _answer(self, c, path, n):
        """Answers one request; False closes the connection."""
        if path == "/slow":
            time.sleep(self.sleep_s)
            self._send(c, 200)
        elif path.startswith("/status/"):
            self._send(c, int(path[8:]))
        elif path == "/mixed":
            self._send(c, 200 if n % 2 == 0 else 500)
        elif path == "/chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n")
        elif path == "/closeok":
            self._send(c, 200, extra=b"Connection: close\r\n")
            return False
        elif path == "/close":
            return False
        elif path == "/reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif path == "/garbage":
            c.sendall(b"HELLO THERE\r\n\r\n")
            return False
        return True

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.stopped = True
        self.sock.close()


def bench(*args, timeout=60):
    """Runs carlarl bench with --json -; returns (exit code, parsed JSON or None, stderr)."""
    r = subprocess.run([BIN, "bench", "--json", "-"] + [str(a) for a in args],
                       capture_output=True, timeout=timeout)
    out = json.loads(r.stdout) if r.returncode in (0, 1) and r.stdout else None
    return r.returncode, out, r.stderr.decode(errors="replace")


def transport_total(out):
    return sum(out["transport_errors"].values())


class OpenLoop(unittest.TestCase):
    def test_requests_go_out_at_the_asked_rate(self):
        srv = Misbehaving(sleep_s=0.020)
        try:
            rc, out, err = bench(srv.url("/slow"), "--rate", 200, "-d", 2, "-w", 0,
                                 "--connections", 32, "--no-server-stats")
            self.assertEqual(rc, 0, err)
            self.assertTrue(380 <= out["sent"] <= 420, out["sent"])
            self.assertEqual(out["done"], out["sent"])
            self.assertEqual(out["status"], {"200": out["sent"]})
            arr = srv.arrivals
            self.assertTrue(380 <= len(arr) <= 420, len(arr))
            rate = (len(arr) - 1) / (arr[-1] - arr[0])  # as the server saw them arrive
            self.assertTrue(190 <= rate <= 210, rate)
            # Every request took the server's 20 ms; with 32 connections none had to queue.
            lat = out["latency_ms"]
            self.assertGreaterEqual(lat["p50"], 19.5)
            self.assertLess(lat["p50"], 60, lat)
            self.assertEqual(out["settings"]["mode"], "open")
            self.assertEqual(out["settings"]["arrival"], "constant")
        finally:
            srv.close()

    def test_latency_counts_from_the_intended_send_time(self):
        # One connection, 20 ms per request: 50 req/s of capacity for 200 req/s of arrivals. The
        # queue grows by 150 requests a second, so request i waits about 15 ms * i: latency from
        # the intended send time must grow to seconds (the naive service time stays 20 ms).
        srv = Misbehaving(sleep_s=0.020)
        try:
            rc, out, err = bench(srv.url("/slow"), "--rate", 200, "-d", 1, "-w", 0,
                                 "--connections", 1, "--no-server-stats", "--timeout", 30)
            self.assertEqual(rc, 0, err)
            self.assertTrue(190 <= out["sent"] <= 210, out["sent"])
            self.assertEqual(out["done"], out["sent"])  # every queued request was still sent
            lat = out["latency_ms"]
            self.assertGreater(lat["p50"], 800, lat)
            self.assertGreater(lat["max"], 2000, lat)
            self.assertLess(out["throughput_rps"], 80)  # the server's capacity, not the asked rate
            p99s = [t["p99_ms"] for t in out["timeline"] if t["done"]]
            self.assertGreater(p99s[-1], p99s[0])
        finally:
            srv.close()

    def test_poisson_arrivals_average_the_rate(self):
        srv = Misbehaving()
        try:
            rc, out, err = bench(srv.url("/slow"), "--rate", 500, "--poisson", "-d", 2, "-w", 0,
                                 "--connections", 16, "--seed", 7, "--no-server-stats")
            self.assertEqual(rc, 0, err)
            self.assertTrue(850 <= out["sent"] <= 1150, out["sent"])  # Poisson: sd ~ 32
            self.assertEqual(out["settings"]["arrival"], "poisson")
        finally:
            srv.close()


class ClosedLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(workers=2).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.kill()

    def url(self, path="/predict"):
        return "http://127.0.0.1:%d%s" % (self.srv.port, path)

    def test_request_count_is_exact(self):
        rc, out, err = bench(self.url(), "-n", 1234, "-c", 7, "-t", 2, "-w", 0.3,
                             "--batch", 4, "--deterministic")
        self.assertEqual(rc, 0, err)
        self.assertEqual((out["sent"], out["done"], out["ok"]), (1234, 1234, 1234))
        self.assertEqual(out["status"], {"200": 1234})
        self.assertEqual(transport_total(out), 0)
        self.assertAlmostEqual(out["observations_per_s"], 4 * out["throughput_rps"],
                               delta=1e-6 * out["throughput_rps"])
        self.assertIn("batch 4 x 3 sensors, deterministic", out["settings"]["workload"]["description"])
        # Server figures come from the process metrics of its /metrics.
        sv = out["server"]
        self.assertTrue(sv["known"], err)
        self.assertEqual(sv["source"], "metrics")
        self.assertGreater(sv["cpu_us_per_request"], 0)
        self.assertGreater(sv["rss_after_mb"], 1)

    def test_duration_run_table_and_no_progress_line_off_a_terminal(self):
        r = subprocess.run([BIN, "bench", self.url("/healthz"), "-c", "4", "-d", "1", "-w", "0.2"],
                           capture_output=True, timeout=30, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\r", r.stderr)
        for needle in ["workload   GET /healthz, no body", "closed loop, concurrency 4",
                       "latency ms", "p99.9", "status     200: ", "server     (metrics) rss"]:
            self.assertIn(needle, r.stdout)

    def test_server_figures_from_the_pid(self):
        rc, out, err = bench(self.url(), "-n", 500, "-c", 2, "-w", 0,
                             "--server-pid", self.srv.proc.pid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out["server"]["source"], "pid %d" % self.srv.proc.pid)
        self.assertGreater(out["server"]["rss_before_mb"], 1)

    def test_process_metrics_are_exported(self):
        st, _, body = self.srv.request("GET", "/metrics")
        self.assertEqual(st, 200)
        text = body.decode()
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_start_time_seconds", "process_open_fds"]:
            self.assertRegex(text, r"(?m)^# TYPE %s (counter|gauge)\n%s [0-9.e+]+$" % (name, name))

    def test_json_schema(self):
        rc, out, err = bench(self.url(), "-n", 200, "-c", 2, "-w", 0)
        self.assertEqual(rc, 0, err)
        schema = {
            "schema_version": int, "tool": str, "carlarl_version": str, "started_at": str,
            "settings": {"url": str, "method": str, "path": str, "mode": str,
                         "arrival": (str, type(None)), "rate": (int, float), "concurrency": int,
                         "connections": int, "threads": int, "duration_s": (int, float),
                         "requests": int, "warmup_s": (int, float), "timeout_s": (int, float),
                         "http2": bool,
                         "workload": {"predict": bool, "batch": int, "sensors": int,
                                      "deterministic": bool, "seed": int,
                                      "body_file": (str, type(None)), "description": str}},
            "elapsed_s": float, "sent": int, "done": int, "ok": int, "throughput_rps": float,
            "observations_per_s": float, "error_rate_percent": float, "status": dict,
            "transport_errors": {k: int for k in ["connect", "reset", "closed", "timeout",
                                                  "protocol"]},
            "latency_ms": {"count": int, **{k: (int, float) for k in
                                            ["min", "mean", "p50", "p90", "p95", "p99", "p99_9",
                                             "max"]}},
            "server": {"known": bool, "source": (str, type(None)),
                       **{k: (int, float, type(None)) for k in
                          ["rss_before_mb", "rss_after_mb", "rss_growth_per_1000_kb", "cpu_s",
                           "cpu_us_per_request"]}},
            "timeline": list,
        }
        tick = {"t_s": (int, float), "done": int, "errors": int, "p50_ms": (int, float),
                "p99_ms": (int, float)}
        keys = []

        def check(obj, sch, where):
            self.assertEqual(sorted(obj), sorted(sch), where)
            for k, t in sch.items():
                keys.append(k)
                if isinstance(t, dict) and k != "status":
                    check(obj[k], t, where + "." + k)
                else:
                    self.assertIsInstance(obj[k], t, where + "." + k)

        check(out, schema, "")
        self.assertEqual(out["schema_version"], 1)
        self.assertRegex(out["started_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreaterEqual(len(out["timeline"]), 1)
        for t in out["timeline"]:
            check(t, tick, ".timeline[]")
        self.assertEqual(sum(t["done"] for t in out["timeline"]), out["done"])
        lat = out["latency_ms"]
        self.assertTrue(lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"]
                        <= lat["p99_9"] <= lat["max"], lat)
        # Every key is documented where the schema is described (docs/benchmarking.md).
        doc = os.path.join(SRC, "docs", "benchmarking.md")
        if os.path.exists(doc):
            text = open(doc).read()
            missing = sorted({k for k in keys if "`%s`" % k not in text and '"%s"' % k not in text})
            self.assertEqual(missing, [], "keys missing from docs/benchmarking.md")


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Misbehaving()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def run_n(self, path, n=300, *extra):
        rc, out, err = bench(self.srv.url(path), "-n", n, "-c", 4, "-w", 0, "--no-server-stats",
                             "--timeout", 5, *extra)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out["sent"], n)
        self.assertEqual(out["done"] + transport_total(out), n)  # every request accounted for
        return out

    def test_5xx_counted_by_status(self):
        out = self.run_n("/status/503")
        self.assertEqual(out["status"], {"503": 300})
        self.assertEqual(out["ok"], 0)
        self.assertEqual(out["error_rate_percent"], 100.0)
        out = self.run_n("/mixed", 400)
        self.assertEqual(sorted(out["status"]), ["200", "500"])
        self.assertEqual(out["status"]["200"] + out["status"]["500"], 400)
        self.assertTrue(30 <= out["error_rate_percent"] <= 70, out["error_rate_percent"])
        self.assertEqual(transport_total(out), 0)

    def test_chunked_and_connection_close_are_not_errors(self):
        for path in ["/chunked", "/closeok"]:
            out = self.run_n(path, 200)
            self.assertEqual(out["status"], {"200": 200}, path)
            self.assertEqual(transport_total(out), 0, path)

    def test_server_closing_is_a_transport_error_by_kind(self):
        out = self.run_n("/close", 100)
        self.assertEqual(out["done"], 0)
        self.assertEqual(out["transport_errors"]["closed"], 100, out["transport_errors"])
        self.assertEqual(out["error_rate_percent"], 100.0)
        out = self.run_n("/reset", 100)
        self.assertEqual(out["transport_errors"]["reset"], 100, out["transport_errors"])
        out = self.run_n("/garbage", 100)
        self.assertEqual(out["transport_errors"]["protocol"], 100, out["transport_errors"])

    def test_timeout(self):
        slow = Misbehaving(sleep_s=2.0)
        try:
            rc, out, err = bench(slow.url("/slow"), "-n", 4, "-c", 2, "-w", 0, "--timeout", 0.3,
                                 "--no-server-stats")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out["transport_errors"]["timeout"], 4, out)
        finally:
            slow.close()


class Cli(unittest.TestCase):
    def test_connection_refused_exits_3(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        r = subprocess.run([BIN, "bench", "http://127.0.0.1:%d/predict" % port, "-d", "1"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot connect to 127.0.0.1:%d: Connection refused" % port, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_usage_errors_exit_2(self):
        for args, needle in [(["--http2"], "not supported yet"), (["--nope", "1"], "unknown option"),
                             (["-c", "0"], "-c: expected a number in 1..100000"), (["--poisson"], "needs --rate"),
                             (["--observations", "/nonexistent.json"], "cannot open"),
                             (["https://x/"], "https is not supported")]:
            r = subprocess.run([BIN, "bench"] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, r.stderr, args)
        r = subprocess.run([BIN, "bench", "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        for flag in ["--concurrency", "--rate", "--poisson", "--requests", "--duration", "--warmup",
                     "--batch", "--sensors", "--deterministic", "--json", "--report",
                     "--thresholds", "--baseline", "--server-pid"]:
            self.assertIn(flag, r.stdout)
        r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
        self.assertIn("bench", r.stdout)


if __name__ == "__main__":
    main()
