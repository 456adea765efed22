"""test_transport.py: keep-alive, HTTP/2 cleartext, gzip, the body cap, graceful shutdown."""
import gzip
import json
import socket
import subprocess
import time
import unittest

from harness import ONE_OBS, UUID4, Server, h2_request, main


def big_batch(n):
    return {"observations": [{"speed": 10.0 + i % 100, "steering": 0.0, "sensors": [0.1, 0.2, 0.3]}
                             for i in range(n)]}


class Transport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(args=["--max-body-size", "64K"]).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.log()

    def test_keep_alive_reuses_one_connection(self):
        c = self.srv.conn()
        c.connect()
        local = c.sock.getsockname()
        for _ in range(20):
            st, h, _ = self.srv.request("POST", "/predict", ONE_OBS, conn=c)
            self.assertEqual(st, 200)
            self.assertNotEqual(h.get("connection"), "close")
        self.assertEqual(c.sock.getsockname(), local)
        c.close()

    def test_http2_prior_knowledge(self):
        st, h, data = h2_request(self.srv.port, "POST", "/predict", json.dumps(ONE_OBS).encode(),
                                 [("content-type", "application/json")])
        self.assertEqual(st, 200)
        self.assertIn("x-request-id", h)
        self.assertEqual(len(json.loads(data)["actions"]), 1)
        # The traceparent continues the caller's trace over HTTP/2 too.
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        st, h, _ = h2_request(self.srv.port, "GET", "/live", None,
                              [("traceparent", "00-%s-00f067aa0ba902b7-01" % trace)])
        self.assertEqual(st, 200)
        self.assertRegex(h.get("traceparent", ""), r"^00-%s-[0-9a-f]{16}-01$" % trace)
        st, _, data = h2_request(self.srv.port, "GET", "/healthz")
        self.assertEqual((st, json.loads(data)["status"]), (200, "ok"))

    def test_http2_upgrade_with_curl(self):
        out = subprocess.run(["curl", "-s", "--http2", "-o", "/dev/null", "-w", "%{http_version}",
                              "http://127.0.0.1:%d/healthz" % self.srv.port],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.stdout, "2")

    def test_gzip_only_at_or_above_1000_bytes(self):
        body = json.dumps(big_batch(40)).encode()
        for accept, expect_gzip in [("gzip", True), ("identity", False)]:
            st, h, data = self.srv.request("POST", "/predict", body, {
                "Content-Type": "application/json", "Accept-Encoding": accept})
            self.assertEqual(st, 200)
            self.assertEqual(h.get("content-encoding") == "gzip", expect_gzip, h)
            raw = gzip.decompress(data) if expect_gzip else data
            self.assertEqual(len(json.loads(raw)["actions"]), 40)
        # A one-action response is under 1000 bytes: sent as is.
        st, h, data = self.srv.request("POST", "/predict", json.dumps(ONE_OBS).encode(), {
            "Content-Type": "application/json", "Accept-Encoding": "gzip"})
        self.assertLess(len(data), 1000)
        self.assertNotIn("content-encoding", h)
        # gzip over HTTP/2 too.
        st, h, data = h2_request(self.srv.port, "POST", "/predict", body,
                                 [("content-type", "application/json"),
                                  ("accept-encoding", "gzip")])
        self.assertEqual((st, h.get("content-encoding")), (200, "gzip"))
        self.assertEqual(len(json.loads(gzip.decompress(data))["actions"]), 40)

    def test_body_over_the_cap_is_413(self):
        body = json.dumps(big_batch(1000)).encode() + b" " * 8192  # > 64 KiB
        self.assertGreater(len(body), 64 * 1024)
        st, h, _ = self.srv.request("POST", "/predict", body, {"Content-Type": "application/json"})
        self.assertEqual(st, 413)
        self.assertRegex(h.get("x-request-id", ""), UUID4)  # even on h2o's own error responses
        self.assertGreaterEqual(float(h["x-process-time"]), 0.0)
        self.assertEqual(self.srv.request("GET", "/healthz")[0], 200)


class Shutdown(unittest.TestCase):
    def test_sigterm_finishes_in_flight_refuses_new_and_exits_0(self):
        srv = Server().start()
        body = json.dumps(ONE_OBS).encode()
        # An in-flight request: headers and half the body sent before the signal.
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        # An idle keep-alive connection must not hold the exit.
        idle = srv.conn()
        self.assertEqual(srv.request("GET", "/healthz", conn=idle)[0], 200)
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.proc.send_signal(15)
        time.sleep(0.2)
        s.sendall(body[10:])
        resp = b""
        while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp[:200])
        self.assertIn(b'"actions"', resp)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") or time.sleep(0.5) or \
                self.fail("a new connection was accepted after SIGTERM")
        rc = srv.stop(timeout=10)
        self.assertEqual(rc, 0, srv.log())
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertIn("stopped cleanly", srv.log())

    def test_sigint_exits_0(self):
        srv = Server().start()
        self.assertEqual(srv.request("GET", "/healthz")[0], 200)
        self.assertEqual(srv.stop(sig=2), 0)


if __name__ == "__main__":
    main()
