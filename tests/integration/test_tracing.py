"""test_tracing.py: W3C Trace Context: a traceparent comes in, its trace id reaches the access log,
and a traceparent (same trace, new span) goes back on every response; sampling of new traces."""
import json
import re
import socket
import time
import unittest

from harness import ONE_OBS, Server, main

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def parse(tp):
    m = TP.match(tp or "")
    assert m, "not a well-formed traceparent: %r" % tp
    trace, span, flags = m.groups()
    assert trace != "0" * 32 and span != "0" * 16, tp
    return trace, span, flags


class Tracing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"LOG_LEVEL": "debug", "LOG_ACCESS": "true"}).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "exit code %r\n%s" % (rc, cls.srv.log())

    def tp_of(self, method, path, headers=None, body=None):
        st, h, _ = self.srv.request(method, path, body=body, headers=headers)
        return st, parse(h.get("traceparent"))

    def test_valid_header_keeps_trace_with_new_span(self):
        for flags in ("01", "00"):
            st, (trace, span, fl) = self.tp_of("GET", "/live", {
                "traceparent": "00-%s-%s-%s" % (TRACE, PARENT, flags)})
            self.assertEqual(st, 200)
            self.assertEqual(trace, TRACE)
            self.assertNotEqual(span, PARENT)
            self.assertEqual(fl, flags)  # the caller's sampling decision is respected
        # Unknown flag bits are not passed on; the sampled bit is.
        _, (trace, _, fl) = self.tp_of("GET", "/live",
                                       {"traceparent": "00-%s-%s-03" % (TRACE, PARENT)})
        self.assertEqual((trace, fl), (TRACE, "01"))
        # A later version with extra fields is read as version 00.
        _, (trace, _, _) = self.tp_of("GET", "/live",
                                      {"traceparent": "01-%s-%s-01-extra" % (TRACE, PARENT)})
        self.assertEqual(trace, TRACE)

    def test_span_ids_differ_per_request(self):
        spans = {self.tp_of("GET", "/live", {"traceparent": "00-%s-%s-01" % (TRACE, PARENT)})[1][1]
                 for _ in range(20)}
        self.assertEqual(len(spans), 20)

    def test_invalid_or_absent_starts_a_new_trace(self):
        bad = ["", "garbage", "00-%s-%s-01" % ("0" * 32, PARENT),
               "00-%s-%s-01" % (TRACE, "0" * 16), "00-%s-%s-01" % (TRACE.upper(), PARENT),
               "ff-%s-%s-01" % (TRACE, PARENT), "00-%s-%s-01-x" % (TRACE, PARENT),
               "00-%s-%s-1" % (TRACE, PARENT), "00_%s-%s-01" % (TRACE, PARENT),
               "00-%s-%s-01" % (TRACE[:-1] + "g", PARENT)]
        seen = set()
        for v in bad:
            headers = {"traceparent": v} if v else None
            st, (trace, _, flags) = self.tp_of("GET", "/live", headers)
            self.assertEqual(st, 200, v)
            self.assertNotEqual(trace, TRACE, v)
            self.assertEqual(flags, "01", v)  # default rate 1: new traces are sampled
            seen.add(trace)
        self.assertEqual(len(seen), len(bad))  # each a new random trace

    def test_new_trace_id_is_the_request_id(self):
        # A new trace takes the request id the server made (its 32 hex digits), tying the trace
        # to the request's log lines; with a client's X-Request-ID it is a fresh draw instead.
        for _ in range(5):
            st, h, _ = self.srv.request("GET", "/live")
            trace, _, _ = parse(h.get("traceparent"))
            self.assertEqual(trace, h["x-request-id"].replace("-", ""))
        st, h, _ = self.srv.request("GET", "/live", headers={"X-Request-ID": "client-id-1"})
        trace, _, _ = parse(h.get("traceparent"))
        self.assertEqual(h["x-request-id"], "client-id-1")
        self.assertNotIn("client", trace)

    def test_errors_carry_traceparent(self):
        st, (trace, _, _) = self.tp_of("GET", "/no-such-path",
                                       {"traceparent": "00-%s-%s-01" % (TRACE, PARENT)})
        self.assertEqual((st, trace), (404, TRACE))
        st, _ = self.tp_of("POST", "/predict", body=b"{",
                           headers={"Content-Type": "application/json"})
        self.assertEqual(st, 422)
        st, (trace, _, _) = self.tp_of("POST", "/predict", body=json.dumps(ONE_OBS).encode(),
                                       headers={"Content-Type": "application/json",
                                                "traceparent": "00-%s-%s-01" % (TRACE, PARENT)})
        self.assertEqual((st, trace), (200, TRACE))

    def test_error_answered_by_h2o_carries_traceparent(self):
        # 413 is answered by h2o before any handler (the fallback path).
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"traceparent: 00-%s-%s-01\r\nContent-Length: %d\r\n\r\n"
                  % (TRACE.encode(), PARENT.encode(), 64 * 1024 * 1024))
        resp = s.recv(4096).decode("latin-1")
        s.close()
        self.assertTrue(resp.startswith("HTTP/1.1 413"), resp[:100])
        m = re.search(r"(?im)^traceparent: (\S+)\r$", resp)
        self.assertTrue(m, resp)
        self.assertEqual(parse(m.group(1))[0], TRACE)

    def test_trace_id_in_access_log(self):
        trace = "0af7651916cd43dd8448eb211c80319c"
        self.srv.request("GET", "/live", headers={"traceparent": "00-%s-%s-01" % (trace, PARENT),
                                                  "X-Request-ID": "trace-log-test"})
        line = None
        for _ in range(100):
            lines = [l for l in self.srv.log().splitlines() if "trace-log-test" in l]
            if lines:
                line = lines[0]
                break
            time.sleep(0.05)
        self.assertIsNotNone(line, self.srv.log()[-2000:])
        rec = json.loads(line)  # still one flat JSON object per line
        self.assertEqual(rec["event"], "http_request")
        self.assertEqual(rec["trace_id"], trace)
        self.assertEqual(rec["request_id"], "trace-log-test")


class Sampling(unittest.TestCase):
    def test_rate_zero_unsampled_new_traces(self):
        with Server(env={"TRACE_SAMPLE_RATE": "0"}) as srv:
            for _ in range(20):
                _, h, _ = srv.request("GET", "/live")
                self.assertEqual(parse(h["traceparent"])[2], "00")
            # An incoming sampled flag still wins.
            _, h, _ = srv.request("GET", "/live",
                                  headers={"traceparent": "00-%s-%s-01" % (TRACE, PARENT)})
            self.assertEqual(parse(h["traceparent"])[2], "01")

    def test_rate_half_samples_some(self):
        with Server(env={"TRACE_SAMPLE_RATE": "0.5"}) as srv:
            flags = [parse(srv.request("GET", "/live")[1]["traceparent"])[2] for _ in range(200)]
            self.assertTrue(40 < flags.count("01") < 160, flags.count("01"))

    def test_rate_out_of_range_is_refused(self):
        srv = Server(env={"TRACE_SAMPLE_RATE": "1.5"})
        with self.assertRaises(AssertionError):
            srv.start(timeout=10)


if __name__ == "__main__":
    main()
