"""test_prometheus.py: the per-stage histograms count each /predict once per stage, and a real
Prometheus (Debian's `prometheus`) scraping carlarl every second sees exactly the requests sent and
computes a finite latency quantile within the range the client observed."""
import http.client
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import h2client
from harness import BIN, ONE_OBS, Server, copy_example, main

# Upper bounds of the original's latency buckets (seconds), as in src/metrics/metrics.c.
DUR_BOUNDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
STAGES = ["queue_wait", "preprocess", "inference", "postprocess"]
UNCACHED = dict(ONE_OBS, deterministic=False)  # never a cache hit: every stage runs


def stage_counts(srv):
    text = srv.request("GET", "/metrics")[2].decode()
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^carla_rl_stage_duration_seconds_count\{stage="(\w+)"\} (\d+)$', text, re.M)}


class Stages(unittest.TestCase):
    def test_inline(self):
        with Server() as srv:
            self.assertEqual(stage_counts(srv), {s: 0 for s in STAGES[1:]})
            for _ in range(5):
                self.assertEqual(srv.json("POST", "/predict", UNCACHED)[0], 200)
            # queue_wait exists only with the batcher.
            self.assertEqual(stage_counts(srv), {s: 5 for s in STAGES[1:]})

    def test_batched(self):
        env = {"BATCHING_ENABLED": "true", "BATCHING_MAX_QUEUE_DELAY_US": "500"}
        with Server(env=env) as srv:
            for _ in range(5):
                self.assertEqual(srv.json("POST", "/predict", UNCACHED)[0], 200)
            self.assertEqual(stage_counts(srv), {s: 5 for s in STAGES})

    def test_rejected_request_is_no_stage(self):
        with Server() as srv:
            self.assertEqual(srv.json("POST", "/predict", {"observations": []})[0], 422)
            self.assertEqual(stage_counts(srv), {s: 0 for s in STAGES[1:]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, method="GET"):
    """(status, body) of one request to 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=b"{}" if method == "POST" else None)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class MetricsPort(unittest.TestCase):
    """monitoring.metrics_port: the exposition on a listener of its own, as Triton's :8002."""

    def test_own_port(self):
        mport = free_port()
        with Server(env={"MONITORING_METRICS_PORT": str(mport)}) as srv:
            self.assertIn("Prometheus metrics on http://127.0.0.1:%d/metrics" % mport, srv.log())
            self.assertEqual(srv.json("POST", "/predict", UNCACHED)[0], 200)
            st, body = get(mport, "/metrics")
            self.assertEqual(st, 200)
            self.assertIn(b'carla_rl_http_requests_total{method="POST",endpoint="/predict",'
                          b'status_code="200"} 1\n', body)
            # The main port no longer serves it; the metrics port serves nothing else.
            self.assertEqual(srv.request("GET", "/metrics")[0], 404)
            for method, path in [("GET", "/healthz"), ("POST", "/predict"), ("GET", "/ready")]:
                self.assertEqual(get(mport, path, method)[0], 404, path)
            self.assertEqual(srv.json("POST", "/predict", UNCACHED)[0], 200)
            self.assertEqual(srv.json("GET", "/healthz")[0], 200)
            text = get(mport, "/metrics")[1].decode()
            self.assertRegex(text, r'(?m)^carla_rl_http_requests_total\{method="POST",'
                                   r'endpoint="/predict",status_code="200"\} 2$')
            self.assertRegex(text, r'(?m)^carla_rl_http_requests_total\{method="GET",'
                                   r'endpoint="unmatched",status_code="404"\} [1-9]')
            self.assertEqual(srv.stop(), 0)

    def test_with_moved_path(self):
        mport = free_port()
        env = {"MONITORING_METRICS_PORT": str(mport), "MONITORING_METRICS_PATH": "/prom"}
        with Server(env=env) as srv:
            st, body = get(mport, "/prom")
            self.assertEqual(st, 200)
            self.assertIn(b"carla_rl_model_loaded{", body)
            self.assertEqual(get(mport, "/metrics")[0], 404)
            self.assertEqual(srv.request("GET", "/prom")[0], 404)

    def test_refused(self):
        port = free_port()
        r = subprocess.run([BIN, "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--monitoring-metrics-port", str(port)],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("monitoring.metrics_port: %d is server.port too" % port, r.stderr)
        # A port another socket holds is a start-up error, not a shared port.
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen(1)
            taken = held.getsockname()[1]
            r = subprocess.run([BIN, "serve", "--host", "127.0.0.1", "--port", "0",
                                "--monitoring-metrics-port", str(taken)],
                               capture_output=True, text=True, timeout=20,
                               env=dict(os.environ, WORKERS="1"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot listen on 127.0.0.1:%d" % taken, r.stderr)


class OpenConnections(unittest.TestCase):
    """carla_rl_open_connections counts the client connections open now, the scraper's included."""
    N = 5

    def gauge(self, srv):
        text = srv.request("GET", "/metrics")[2].decode()
        self.assertIn("# TYPE carla_rl_open_connections gauge\n", text)
        return int(re.search(r"(?m)^carla_rl_open_connections (\d+)$", text).group(1))

    def wait_gauge(self, srv, want, timeout=5.0):
        end = time.monotonic() + timeout
        got = self.gauge(srv)
        while got != want and time.monotonic() < end:
            time.sleep(0.05)
            got = self.gauge(srv)
        return got

    def test_idle_keepalive_connections(self):
        with Server() as srv:  # two workers: the gauge is their sum
            self.assertEqual(self.gauge(srv), 1)  # the scrape's own connection
            idle = []
            for _ in range(self.N):
                c = srv.conn()
                self.assertEqual(srv.request("GET", "/live", conn=c)[0], 200)
                idle.append(c)  # HTTP/1.1 keep-alive: still open after its answer
            st, _, _, h2sock = h2client.request(srv.port, "GET", "/live", keep=True)
            self.assertEqual(st, 200)
            self.assertEqual(self.gauge(srv), self.N + 2)  # N + the HTTP/2 one + the scraper
            for c in idle:
                c.close()
            h2sock.close()
            self.assertEqual(self.wait_gauge(srv, 1), 1)
            self.assertEqual(srv.stop(), 0)


class ModelGauges(unittest.TestCase):
    """carla_rl_model_loaded and carla_rl_model_warmed_up follow the model each start selects: a
    model is chosen at start-up only (SIGHUP reloads configuration, not models), so breaking and
    mending the one version of an artifact directory and restarting flips both gauges 1 -> 0 -> 1,
    with /ready agreeing, and a /warmup without a model cannot set warmed_up."""

    def gauges(self, srv):
        text = srv.request("GET", "/metrics")[2].decode()
        loaded = re.search(r'(?m)^carla_rl_model_loaded\{model_version="v1\.0\.0",'
                           r'device="cpu"\} (\d+)$', text)
        warmed = re.search(r'(?m)^carla_rl_model_warmed_up\{model_version="v1\.0\.0"\} (\d+)$',
                           text)
        self.assertTrue(loaded and warmed, text)
        return int(loaded.group(1)), int(warmed.group(1))

    def start(self, root, want):
        # MODEL_VERSION labels the gauges when nothing loads (the configured version).
        with Server(artifact_dir=root, env={"MODEL_VERSION": "v1.0.0"}) as srv:
            warm = srv.json("POST", "/warmup")[0]
            self.assertEqual(warm, 200 if want else 503)
            self.assertEqual(self.gauges(srv), (want, want))
            self.assertEqual(srv.json("GET", "/ready")[0], 200 if want else 503)
            self.assertEqual(srv.stop(), 0)

    def test_flip_both_ways(self):
        root = tempfile.mkdtemp(prefix="crl-gauges-")
        self.addCleanup(shutil.rmtree, root, True)
        onnx = os.path.join(copy_example(root, "v1.0.0"), "model.onnx")
        with open(onnx, "rb") as f:
            good = f.read()

        def write(data):
            with open(onnx, "wb") as f:
                f.write(data)

        self.start(root, 1)
        write(good[:100])  # a truncated graph: the only version fails to load
        self.start(root, 0)
        write(good)
        self.start(root, 1)


class MonitoringOff(unittest.TestCase):
    """monitoring.enabled false: no exposition, no metrics listener, no traceparent; the API and
    its X-Request-ID / X-Process-Time headers are unchanged."""

    def test_off(self):
        mport = free_port()
        env = {"MONITORING_ENABLED": "false", "MONITORING_METRICS_PORT": str(mport)}
        with Server(env=env) as srv:
            self.assertIn("monitoring.metrics_port has no effect here: monitoring.enabled is "
                          "false", srv.log())
            self.assertNotIn("metrics_listening", srv.log())
            for _ in range(3):
                st, h, b = srv.json("POST", "/predict", UNCACHED,
                                    headers={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8
                                             + "-01"})
                self.assertEqual(st, 200)
                self.assertEqual(len(b["actions"]), 1)
                self.assertIn("x-request-id", h)
                self.assertIn("x-process-time", h)
                self.assertNotIn("traceparent", h)
            self.assertEqual(srv.request("GET", "/metrics")[0], 404)
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", mport), timeout=2).close()
            self.assertEqual(srv.stop(), 0)


class MetricsPath(unittest.TestCase):
    def test_moved(self):
        with Server(env={"MONITORING_METRICS_PATH": "/internal/metrics"}) as srv:
            st, _, body = srv.request("GET", "/internal/metrics")
            self.assertEqual(st, 200)
            self.assertIn(b"carla_rl_stage_duration_seconds_count", body)
            self.assertEqual(srv.request("GET", "/metrics")[0], 404)

    def test_refused(self):
        for bad in ("metrics", "/predict"):
            r = subprocess.run([os.environ.get("CARLARL_BIN", "build/carlarl"), "config",
                                "--set", "monitoring.metrics_path=" + bad],
                               capture_output=True, text=True, timeout=10)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("monitoring.metrics_path", r.stderr)



class RealPrometheus(unittest.TestCase):
    N = 25

    def setUp(self):
        self.prom_bin = shutil.which("prometheus")
        if self.prom_bin is None:
            self.fail("prometheus not found: install Debian's prometheus package "
                      "(tools/install-deps.sh --test)")
        self.tmp = tempfile.mkdtemp(prefix="crl-prom-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # Prometheus scrapes a moved exposition (monitoring.metrics_path).
        self.srv = Server(env={"MONITORING_METRICS_PATH": "/internal/metrics"}).start()
        self.addCleanup(self.srv.stop)
        self.prom_port = free_port()
        yml = os.path.join(self.tmp, "prometheus.yml")
        with open(yml, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: carlarl\n    metrics_path: /internal/metrics\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % self.srv.port)
        self.prom_log = open(os.path.join(self.tmp, "prometheus.log"), "w+")
        self.prom = subprocess.Popen(
            [self.prom_bin, "--config.file=" + yml,
             "--storage.tsdb.path=" + os.path.join(self.tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.prom_port],
            stdout=self.prom_log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_prometheus)

    def stop_prometheus(self):
        if self.prom.poll() is None:
            self.prom.terminate()
            try:
                self.prom.wait(10)
            except subprocess.TimeoutExpired:
                self.prom.kill()
                self.prom.wait()
        self.prom_log.close()

    def prom_log_text(self):
        self.prom_log.flush()
        self.prom_log.seek(0)
        return self.prom_log.read()[-3000:]

    def query(self, expr):
        """The instant vector's first value (None when empty)."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.prom_port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.load(r)
        self.assertEqual(doc["status"], "success", doc)
        res = doc["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def scrapes(self):
        """How many scrapes of carlarl Prometheus holds over the last minute."""
        try:
            v = self.query('count_over_time(up{job="carlarl"}[1m])')
        except OSError:
            return 0  # not listening yet
        return int(v or 0)

    def wait_scrapes(self, n, timeout=12.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.assertIsNone(self.prom.poll(), "prometheus exited:\n" + self.prom_log_text())
            got = self.scrapes()
            if got >= n:
                return got
            time.sleep(0.2)
        self.fail("prometheus scraped carlarl fewer than %d times in %.0fs:\n%s"
                  % (n, timeout, self.prom_log_text()))

    def test_counts_and_quantile(self):
        before = self.wait_scrapes(1)  # the stage histograms are in the TSDB at zero
        latencies = []
        conn = self.srv.conn()
        for _ in range(self.N):
            t0 = time.monotonic()
            st, _, _ = self.srv.json("POST", "/predict", UNCACHED, conn=conn)
            latencies.append(time.monotonic() - t0)
            self.assertEqual(st, 200)
        conn.close()
        self.wait_scrapes(before + 2)
        self.assertEqual(self.query('up{job="carlarl"}'), 1.0)
        total = self.query('sum(carla_rl_http_requests_total{endpoint="/predict"})')
        self.assertEqual(total, float(self.N))
        self.assertEqual(self.query('sum(carla_rl_stage_duration_seconds_count{stage="inference"})'),
                         float(self.N))
        q = self.query('histogram_quantile(0.5, sum by (le) (rate('
                       'carla_rl_stage_duration_seconds_bucket{stage="preprocess"}[1m])))')
        self.assertIsNotNone(q)
        self.assertTrue(math.isfinite(q), q)
        # A stage is part of what the client waited for: the median lies at most at the upper
        # bound of the bucket that holds the slowest request the client saw.
        top = next((b for b in DUR_BOUNDS if b >= max(latencies)), DUR_BOUNDS[-1])
        self.assertGreaterEqual(q, 0.0)
        self.assertLessEqual(q, top, "p50 %.6f s, client latencies %.6f..%.6f s"
                             % (q, min(latencies), max(latencies)))


if __name__ == "__main__":
    main()
