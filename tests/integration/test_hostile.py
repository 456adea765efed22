"""test_hostile.py: hostile input and clients that vanish, against the AddressSanitizer build.

Each case must get a 4xx envelope (or a closed connection), and the server must keep serving;
at the end it must exit 0 on SIGTERM with no sanitizer report.
"""
import json
import socket
import time
import unittest

import h2client
from h2client import linger_close
from harness import ASAN_BIN, BIN, ONE_OBS, Server, main

BODY = json.dumps(ONE_OBS).encode()


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(binary=ASAN_BIN or BIN,
                         args=["--max-body-size", "1M", "--server-request-timeout", "1"]).start(60)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop_clean()

    def assert_serving(self):
        self.assertTrue(self.srv.alive(), self.srv.log())
        st, _, b = self.srv.json("POST", "/predict", ONE_OBS)
        self.assertEqual(st, 200, b)

    def post_raw(self, body, ctype="application/json"):
        hdrs = {"Content-Type": ctype} if ctype else {}
        st, h, data = self.srv.request("POST", "/predict", body, hdrs)
        return st, h, data

    def assert_4xx_envelope(self, body, ctype="application/json", status=422):
        st, h, data = self.post_raw(body, ctype)
        self.assertEqual(st, status, (body[:80], data[:300]))
        env = json.loads(data)
        self.assertEqual(list(env), ["error", "message", "details", "timestamp"])
        self.assertEqual(env["details"]["request_id"], h["x-request-id"])
        return env

    def test_malformed_and_truncated_json(self):
        for i in range(0, len(BODY), 7):
            self.assert_4xx_envelope(BODY[:i])
        for raw in [b"{", b"[", b"}", b'{"observations": [1,]}', b"{'a': 1}", b"\xff\xfe{}",
                    b'{"observations": "\xc3\x28"}', b"nul", b"0123", b'"\\ud800"', b"{} x",
                    b'{"a":\x01}']:
            self.assert_4xx_envelope(raw)
        self.assert_serving()

    def test_wrong_types_and_odd_numbers(self):
        def one(**kw):
            o = {"speed": 25.0, "steering": 0.0, "sensors": [0.5, 0.5, 0.5]}
            o.update(kw)
            return json.dumps({"observations": [o]}).encode()

        for body in [one(speed="fast"), one(speed=None), one(speed=[1]), one(sensors="abc"),
                     one(sensors=[None, 1, 2]), one(steering={"x": 1}), b'{"observations": 5}',
                     b'[1, 2, 3]', b'"just a string"', b"42",
                     b'{"observations": [{"speed": 1e999, "steering": 0, "sensors": [1,2,3]}]}',
                     b'{"observations": [{"speed": NaN, "steering": 0, "sensors": [1,2,3]}]}',
                     b'{"observations": [{"speed": 1, "steering": Infinity, "sensors": [1]}]}',
                     b'{"observations": [{"speed": 1, "steering": 0, "sensors": [-Infinity]}]}',
                     json.dumps({"observations": [], "deterministic": "maybe"}).encode()]:
            self.assert_4xx_envelope(body)
        # Lax coercions the original accepted, and -0.
        for body in [one(speed="25.5"), one(speed=True), one(speed=-0.0),
                     b'{"observations": [{"speed": -0, "steering": -0, "sensors": [-0,0,0]}],'
                     b' "deterministic": "yes"}']:
            st, _, data = self.post_raw(body)
            self.assertEqual(st, 200, (body, data))
        self.assert_serving()

    def test_deep_nesting_and_duplicates(self):
        for depth in [65, 1000, 100000]:
            body = b'{"x": ' + b"[" * depth + b"]" * depth + b', "observations": []}'
            self.assert_4xx_envelope(body)
        body = b'{"observations": [{"speed": 999, "steering": 0, "sensors": [1,1,1]}],' \
               b' "observations": [{"speed": 5, "steering": 0, "speed": 6, "sensors": [9,9,9,9],' \
               b' "sensors": [1,2,3]}]}'
        st, _, data = self.post_raw(body)
        self.assertEqual(st, 200, data)  # json.loads semantics: the last duplicate wins
        self.assert_serving()

    def test_wrong_content_type_and_oversized(self):
        self.assert_4xx_envelope(BODY, ctype="text/plain")
        self.assert_4xx_envelope(BODY, ctype="application/x-www-form-urlencoded")
        # Over the cap by Content-Length: 413 before the body is read (the client may see its
        # upload cut short, so read the answer from a raw socket).
        big = b"[" + b"0," * (600 * 1024) + b"0]"
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(big))
        try:
            s.sendall(big)
        except OSError:
            pass
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 413"))
        s.close()
        # Chunked upload over the cap.
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/json\r\n\r\n")
        chunk = b"0," * 32768
        try:
            for _ in range(20):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        try:
            resp = s.recv(4096)
        except OSError:
            resp = b""
        s.close()
        self.assertTrue(resp == b"" or resp.startswith(b"HTTP/1.1 413"), resp[:100])
        self.assert_serving()

    def test_slow_senders_are_cut(self):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        t0 = time.monotonic()
        closed = False
        for b in BODY[:40]:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
            self.assert_serving() if b == BODY[0] else None
            time.sleep(0.1)
            s.settimeout(0.01)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        s.close()
        self.assertTrue(closed, "a slow sender kept its connection for %.1fs" % (time.monotonic() - t0))
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assert_serving()

    def test_http1_clients_vanish(self):
        big = json.dumps({"observations": [{"speed": 1.0 * i, "steering": 0, "sensors": [1, 2, 3]}
                                           for i in range(1000)]}).encode()
        for _ in range(10):
            # Mid-body.
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big)
                      + big[:len(big) // 2])
            linger_close(s)
            # Before a large response (request sent whole, nothing read).
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big)
                      + big)
            linger_close(s)
            # Mid-response: read a little, then vanish.
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big)
                      + big)
            s.recv(100)
            linger_close(s)
            # Pipelined requests for large responses, then an orderly close: the server's later
            # writes hit a closed peer (EPIPE), which kills a process that lets SIGPIPE through.
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall((b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                       % len(big) + big) * 4)
            s.shutdown(socket.SHUT_WR)
            s.close()
            time.sleep(0.02)
        self.assert_serving()

    def h2_conn(self):
        return h2client.connect(self.srv.port)

    def test_http2_clients_vanish(self):
        # 300 observations: a ~22 KB body (two fit the default 64 KiB flow-control window) and a
        # ~25 KB response.
        mid = json.dumps({"observations": [{"speed": 1.0 * i, "steering": 0, "sensors": [1, 2, 3]}
                                           for i in range(300)]}).encode()
        hdrs = [(":method", "POST"), (":path", "/predict"), (":scheme", "http"),
                (":authority", "x"), ("content-type", "application/json")]
        for rnd in range(10):
            gz = [("accept-encoding", "gzip")] if rnd % 2 else []
            # Mid-body.
            s, c = self.h2_conn()
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, hdrs + gz)
            c.send_data(sid, mid[:8000])
            s.sendall(c.data_to_send())
            linger_close(s)
            # Two whole requests, gone before reading any of the responses.
            s, c = self.h2_conn()
            for _ in range(2):
                sid = c.get_next_available_stream_id()
                c.send_headers(sid, hdrs + gz)
                h2client.send_body(c, sid, mid, True)
            s.sendall(c.data_to_send())
            linger_close(s)
            # Mid-response.
            s, c = self.h2_conn()
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, hdrs + gz)
            h2client.send_body(c, sid, mid, True)
            s.sendall(c.data_to_send())
            try:
                s.recv(200)
            except OSError:
                pass
            linger_close(s)
        self.assert_serving()


if __name__ == "__main__":
    main()
