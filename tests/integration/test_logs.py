"""test_logs.py: every stderr line of a run is one flat JSON object; access lines carry the
fields operators search on; logging.format text is readable and has no JSON; the access log can
be turned off."""
import json
import re
import socket
import unittest

from harness import ONE_OBS, Server, main

ACCESS_KEYS = ("timestamp", "level", "event", "request_id", "trace_id", "method", "path",
               "status", "duration_ms", "model_version")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARNING|ERROR|CRITICAL) "
                       r"[a-z_]+ ")


def oversized(srv):
    """A 413 answered by h2o before any handler: Content-Length over the cap."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (64 * 1024 * 1024))
    resp = s.recv(4096)
    s.close()
    return int(resp.split(b" ")[1])


def traffic(srv):
    """Requests of several kinds; returns the statuses seen, in order."""
    seen = [srv.json("POST", "/predict", ONE_OBS, headers={"X-Request-ID": "logs-200"})[0],
            srv.request("GET", "/no/such\"path\\x", headers={"X-Request-ID": "logs-404"})[0],
            srv.request("POST", "/predict", b"{", headers={"Content-Type": "application/json",
                                                           "X-Request-ID": "logs-422"})[0],
            oversized(srv),
            srv.request("GET", "/live")[0]]
    return seen


class JsonLines(unittest.TestCase):
    def test_every_line_is_flat_json_and_access_lines_are_complete(self):
        srv = Server(env={"LOG_FORMAT": "json", "LOG_ACCESS": "true"}).start()
        try:
            seen = traffic(srv)
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, srv.log()[-2000:])
        self.assertEqual(seen, [200, 404, 422, 413, 200])
        lines = srv.log().splitlines()
        access = []
        for line in lines:
            rec = json.loads(line)  # every line, not only the access lines
            self.assertIsInstance(rec, dict, line)
            for k, v in rec.items():
                self.assertNotIsInstance(v, (dict, list), "nested value in %s" % line)
                if isinstance(v, str):
                    self.assertFalse(v.lstrip().startswith("{"), "JSON inside a string: " + line)
            for k in ("timestamp", "level", "event", "message"):
                self.assertIn(k, rec, line)
            self.assertRegex(rec["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")
            if rec["event"] == "http_request":
                access.append(rec)
        for rec in access:
            for k in ACCESS_KEYS:
                self.assertIn(k, rec, rec)
            self.assertEqual(rec["level"], "INFO")
            self.assertIsInstance(rec["status"], int)
            self.assertIsInstance(rec["duration_ms"], (int, float))
            self.assertGreaterEqual(rec["duration_ms"], 0)
        by_id = {r["request_id"]: r for r in access}
        self.assertEqual((by_id["logs-200"]["method"], by_id["logs-200"]["path"],
                          by_id["logs-200"]["status"]), ("POST", "/predict", 200))
        self.assertRegex(by_id["logs-200"]["model_version"], r"^v\d+\.\d+\.\d+")
        self.assertEqual(by_id["logs-404"]["path"], "/no/such\"path\\x")
        self.assertEqual(by_id["logs-404"]["status"], 404)
        self.assertEqual(by_id["logs-422"]["status"], 422)
        self.assertIn(413, [r["status"] for r in access])
        self.assertEqual(len(access), 5, [r["status"] for r in access])
        # Shutdown flushed the logger thread: the last line is the clean stop.
        self.assertEqual(json.loads(lines[-1])["message"], "stopped cleanly")


class TextAndOff(unittest.TestCase):
    def test_text_format_is_readable_and_not_json(self):
        srv = Server(env={"LOG_FORMAT": "text", "LOG_ACCESS": "true"}).start()
        try:
            traffic(srv)
        finally:
            srv.stop()
        lines = srv.log().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, TEXT_LINE)
            self.assertFalse(line.lstrip().startswith("{"), line)
            self.assertNotIn('"timestamp"', line)
        acc = [l for l in lines if " http_request " in l and "request_id=logs-404" in l]
        self.assertEqual(len(acc), 1, "\n".join(lines))
        self.assertIn("status=404", acc[0])
        self.assertIn("method=GET", acc[0])
        self.assertIn(" INFO  http_request GET ", acc[0])

    def test_access_log_off(self):
        srv = Server(env={"LOG_ACCESS": "false", "LOG_FORMAT": "json"}).start()
        try:
            seen = traffic(srv)
        finally:
            srv.stop()
        self.assertEqual(seen, [200, 404, 422, 413, 200])
        events = [json.loads(l)["event"] for l in srv.log().splitlines()]
        self.assertNotIn("http_request", events)
        self.assertIn("listening", events)


if __name__ == "__main__":
    main()
