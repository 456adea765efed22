"""test_api.py: the original's HTTP contract (original-system.md §1, §10.3) with its bugs fixed."""
import json
import os
import re
import tempfile
import threading
import unittest

from harness import ONE_OBS, UUID4, Server, copy_example, main


class BuiltinServer(unittest.TestCase):
    """No artifact directory: the built-in example policy v0.1.0."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"GIT_SHA": "abc1234"}).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "exit code %r\n%s" % (rc, cls.srv.log())

    def test_logs_builtin(self):
        self.assertIn("built-in example policy v0.1.0", self.srv.log())

    def test_healthz_ok_when_loaded(self):
        st, h, body = self.srv.json("GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(list(body), ["status", "version", "git", "device", "timestamp"])
        self.assertEqual(body["status"], "ok")  # warmed at load: no /warmup needed (bug fix)
        self.assertEqual(body["version"], "v0.1.0")
        self.assertEqual(body["git"], "abc1234")
        self.assertEqual(body["device"], "cpu")
        self.assertIsInstance(body["timestamp"], float)

    def test_live_and_ready(self):
        self.assertEqual(self.srv.json("GET", "/live")[0], 200)
        st, _, body = self.srv.json("GET", "/ready")
        self.assertEqual((st, body["status"], body["version"]), (200, "ready", "v0.1.0"))

    def test_headers_on_every_response(self):
        for method, path in [("GET", "/healthz"), ("GET", "/nope"), ("PUT", "/predict"),
                             ("POST", "/predict")]:
            st, h, _ = self.srv.request(method, path, body=b"{" if method == "POST" else None)
            self.assertRegex(h.get("x-request-id", ""), UUID4, (method, path))
            self.assertGreaterEqual(float(h["x-process-time"]), 0.0)
            self.assertLess(float(h["x-process-time"]), 5.0)

    def test_request_id_kept_when_well_formed(self):
        st, h, body = self.srv.json("POST", "/predict", {"invalid": "data"},
                                    headers={"X-Request-ID": "sim-42.step_7"})
        self.assertEqual(h["x-request-id"], "sim-42.step_7")
        self.assertEqual(body["details"]["request_id"], "sim-42.step_7")
        st, h, body = self.srv.json("POST", "/predict", {"invalid": "data"},
                                    headers={"X-Request-ID": "bad id with spaces"})
        self.assertRegex(h["x-request-id"], UUID4)
        self.assertEqual(body["details"]["request_id"], h["x-request-id"])

    def test_metadata_from_card_and_model(self):
        st, _, body = self.srv.json("GET", "/metadata")
        self.assertEqual(st, 200)
        self.assertEqual(body["modelName"], "carla-ppo-example")
        self.assertEqual(body["version"], "v0.1.0")
        self.assertEqual(body["inputShape"], [5])
        self.assertEqual(body["actionSpace"], {"throttle": [0.0, 1.0], "brake": [0.0, 1.0],
                                               "steer": [-1.0, 1.0]})

    def test_warmup(self):
        st, _, body = self.srv.json("POST", "/warmup")
        self.assertEqual(st, 200)
        self.assertEqual(body["status"], "warmed")
        self.assertGreater(body["timingMs"], 0)
        self.assertEqual(body["device"], "cpu")

    def test_predict_single(self):
        st, h, body = self.srv.json("POST", "/predict", ONE_OBS)
        self.assertEqual(st, 200, body)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(list(body), ["actions", "version", "timingMs", "deterministic"])
        self.assertEqual(len(body["actions"]), 1)
        a = body["actions"][0]
        self.assertEqual(list(a), ["throttle", "brake", "steer"])
        self.assertEqual(a["brake"], 0.0)
        self.assertTrue(0.2 < a["throttle"] < 0.7, a)
        self.assertTrue(-0.3 < a["steer"] < 0.3, a)
        self.assertRegex(body["version"], r"^v\d+\.\d+\.\d+$")
        self.assertGreater(body["timingMs"], 0)
        self.assertIs(body["deterministic"], True)

    def test_predict_batch_order_and_repeat(self):
        obs = [{"speed": s, "steering": st, "sensors": [0.1 * i, 0.2, -0.3]}
               for i, (s, st) in enumerate([(0, -1), (100, 0.5), (200, 1)])]
        req = {"observations": obs, "deterministic": False}
        st, _, b1 = self.srv.json("POST", "/predict", req)
        self.assertEqual(st, 200)
        self.assertEqual(len(b1["actions"]), 3)
        self.assertIs(b1["deterministic"], False)
        for a in b1["actions"]:
            self.assertTrue(0 <= a["throttle"] <= 1 and 0 <= a["brake"] <= 1 and -1 <= a["steer"] <= 1)
        _, _, b2 = self.srv.json("POST", "/predict", req)
        self.assertEqual(b1["actions"], b2["actions"])
        # Order preserved: each row alone gives the same action as in the batch.
        for i, o in enumerate(obs):
            _, _, one = self.srv.json("POST", "/predict", {"observations": [o]})
            self.assertEqual(one["actions"][0], b1["actions"][i])

    def test_concurrent_predicts(self):
        results = []

        def go():
            results.append(self.srv.json("POST", "/predict", ONE_OBS)[0])

        ts = [threading.Thread(target=go) for _ in range(5)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        self.assertEqual(results, [200] * 5)

    def assert_validation(self, body, expect_field=None, expect_type=None):
        st, h, b = self.srv.json("POST", "/predict", body)
        self.assertEqual(st, 422, b)
        self.assertEqual(list(b), ["error", "message", "details", "timestamp"])
        self.assertEqual(b["error"], "VALIDATION_ERROR")
        self.assertEqual(b["message"], "Input validation failed")
        self.assertEqual(b["details"]["request_id"], h["x-request-id"])
        errs = b["details"]["validation_errors"]
        self.assertGreater(len(errs), 0)
        for e in errs:
            self.assertEqual(sorted(e), ["field", "message", "type"])
        if expect_field:
            self.assertIn(expect_field, [e["field"] for e in errs], errs)
        if expect_type:
            self.assertIn(expect_type, [e["type"] for e in errs], errs)
        return errs

    def test_validation_cases_of_the_original(self):
        def obs(**kw):
            o = {"speed": 25.0, "steering": 0.0, "sensors": [0.5, 0.5, 0.5]}
            o.update(kw)
            return {"observations": [o]}

        self.assert_validation(obs(speed=-10), "body.observations.0.speed", "greater_than_equal")
        self.assert_validation(obs(speed=201), "body.observations.0.speed", "less_than_equal")
        self.assert_validation(obs(steering=2.0), "body.observations.0.steering", "less_than_equal")
        self.assert_validation(obs(sensors=[]), "body.observations.0.sensors", "too_short")
        errs = self.assert_validation(obs(sensors=[1001.0, 0, 0]), "body.observations.0.sensors",
                                      "value_error")
        self.assertEqual(errs[0]["message"],
                         "Value error, Sensor value at index 0 out of bounds: 1001.0")
        self.assert_validation({"observations": [obs()["observations"][0]] * 1001},
                               "body.observations", "too_long")
        self.assert_validation({"invalid": "data"}, "body.observations", "missing")
        self.assert_validation({"observations": []}, "body.observations", "too_short")

    def test_inclusive_bounds_accepted(self):
        for o in [{"speed": 0, "steering": -1, "sensors": [-1000, 1000, 0]},
                  {"speed": 200, "steering": 1, "sensors": [0, 0, 0]}]:
            st, _, b = self.srv.json("POST", "/predict", {"observations": [o]})
            self.assertEqual(st, 200, b)

    def test_malformed_json(self):
        for raw in [b"{'invalid': json}", b"invalid json", b"{\"observations\": [", b""]:
            st, h, data = self.srv.request("POST", "/predict", raw,
                                           {"Content-Type": "application/json"})
            b = json.loads(data)
            self.assertEqual(st, 422, raw)
            self.assertEqual(b["error"], "VALIDATION_ERROR")
            t = b["details"]["validation_errors"][0]["type"]
            self.assertEqual(t, "missing" if raw == b"" else "json_invalid", raw)

    def test_sensor_count_mismatch_is_422_naming_expected(self):
        body = {"observations": [{"speed": 25, "steering": 0, "sensors": [0.1] * 5}]}
        errs = self.assert_validation(body, "body.observations.0.sensors", "sensor_count")
        self.assertIn("expects 3 sensor values", errs[0]["message"])
        # Shorter rows are zero-padded as the original did, as long as the longest fits.
        body = {"observations": [{"speed": 25, "steering": 0, "sensors": [0.1]},
                                 {"speed": 25, "steering": 0, "sensors": [0.1, 0.2, 0.3]}]}
        self.assertEqual(self.srv.json("POST", "/predict", body)[0], 200)

    def test_404_and_405_use_the_envelope(self):
        st, h, b = self.srv.json("GET", "/invalid-endpoint")
        self.assertEqual(st, 404)
        self.assertEqual(b["error"], "NOT_FOUND")
        self.assertEqual(b["details"]["request_id"], h["x-request-id"])
        st, h, b = self.srv.json("GET", "/predict")
        self.assertEqual(st, 405)
        self.assertEqual(b["error"], "METHOD_NOT_ALLOWED")
        self.assertEqual(h["allow"], "POST")
        st, h, b = self.srv.json("OPTIONS", "/healthz")
        self.assertEqual(st, 405)

    def test_head_on_get_route(self):
        st, h, data = self.srv.request("HEAD", "/healthz")
        self.assertEqual((st, data), (200, b""))

    def test_wrong_content_type(self):
        st, _, data = self.srv.request("POST", "/predict", json.dumps(ONE_OBS).encode(),
                                       {"Content-Type": "text/plain"})
        self.assertEqual(st, 422)
        self.assertEqual(json.loads(data)["details"]["validation_errors"][0]["type"],
                         "model_attributes_type")

    def test_metrics(self):
        self.srv.json("POST", "/predict", ONE_OBS)
        st, h, data = self.srv.request("GET", "/metrics")
        text = data.decode()
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain"))
        for needle in ["# HELP", "# TYPE", "carla_rl_service_uptime_seconds ",
                       'carla_rl_model_loaded{model_version="v0.1.0",device="cpu"} 1',
                       'carla_rl_model_warmed_up{model_version="v0.1.0"} 1',
                       'carla_rl_inference_requests_total{model_version="v0.1.0",device="cpu",status="success"}',
                       'carla_rl_http_requests_total{method="POST",endpoint="/predict",status_code="200"}',
                       'carla_rl_request_duration_seconds_bucket{method="POST",endpoint="/predict",status_code="200",le="0.001"}',
                       "carla_rl_inference_duration_seconds_bucket"]:
            self.assertIn(needle, text)
        # Unknown paths share one label value instead of one series per path.
        self.srv.request("GET", "/scan/%d" % os.getpid())
        text = self.srv.request("GET", "/metrics")[2].decode()
        self.assertNotIn("/scan/", text)
        self.assertIn('endpoint="unmatched",status_code="404"', text)
        m = re.search(r'carla_rl_inference_requests_total\{[^}]*status="success"\} (\d+)', text)
        self.assertGreaterEqual(int(m.group(1)), 1)

    def test_info_metrics(self):
        text = self.srv.request("GET", "/metrics")[2].decode()
        self.assertIn("# TYPE carla_rl_build_info gauge", text)
        m = re.search(r'^carla_rl_build_info\{version="([^"]+)",git="([^"]+)",isa="([^"]+)"\} 1$',
                      text, re.M)
        self.assertTrue(m, text)
        version, git, isa = m.groups()
        self.assertRegex(version, r"^\d+\.\d+\.\d+")
        # The commit CMake embedded, not the run-time GIT_SHA that /healthz reports.
        self.assertRegex(git, r"^([0-9a-f]{7,40}|unknown)$")
        self.assertNotEqual(git, "abc1234")
        self.assertIn('carla_rl_runtime_info{isa="%s"' % isa, text)
        meta = self.srv.json("GET", "/metadata")[2]
        self.assertIn('carla_rl_model_info{name="%s",version="v0.1.0",device="cpu",'
                      'precision="float32"} 1\n' % meta["modelName"], text)

    def test_openapi_and_docs(self):
        st, h, spec = self.srv.json("GET", "/openapi.json")
        self.assertEqual(st, 200)
        self.assertTrue(spec["openapi"].startswith("3."))
        for path in ["/healthz", "/predict", "/metadata", "/warmup", "/versions", "/ready",
                     "/live", "/metrics"]:
            self.assertIn(path, spec["paths"])
        self.assertIn("PredictRequest", spec["components"]["schemas"])
        for path, word in [("/docs", b"swagger"), ("/redoc", b"redoc")]:
            st, h, page = self.srv.request("GET", path)
            self.assertEqual(st, 200)
            self.assertTrue(h["content-type"].startswith("text/html"))
            self.assertIn(word, page.lower())
            self.assertIn(b"/openapi.json", page)

    def test_versions_builtin(self):
        st, _, b = self.srv.json("GET", "/versions")
        self.assertEqual(st, 200)
        self.assertEqual(b["current_version"], "v0.1.0")
        self.assertEqual(b["selection_strategy"], "builtin_example")
        v = b["available_versions"][0]
        self.assertEqual((v["version"], v["is_stable"], v["is_current"]), ("v0.1.0", True, True))
        self.assertEqual(v["model_card"]["model_name"], "carla-ppo-example")


class CorsAndHosts(unittest.TestCase):
    def test_cors_any_origin(self):
        with Server() as srv:
            st, h, _ = srv.request("OPTIONS", "/predict", headers={
                "Origin": "http://sim.local", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-request-id"})
            self.assertEqual(st, 200)
            self.assertEqual(h["access-control-allow-origin"], "http://sim.local")
            self.assertEqual(h["access-control-allow-methods"], "GET, POST")
            self.assertEqual(h["access-control-max-age"], "600")
            self.assertEqual(h["access-control-allow-credentials"], "true")
            self.assertEqual(h["access-control-allow-headers"], "content-type,x-request-id")
            self.assertIn("x-request-id", h)
            st, h, _ = srv.request("GET", "/healthz", headers={"Origin": "http://sim.local"})
            self.assertEqual(h["access-control-allow-origin"], "*")
            self.assertEqual(h["access-control-allow-credentials"], "true")
            st, h, _ = srv.request("OPTIONS", "/predict", headers={
                "Origin": "http://sim.local", "Access-Control-Request-Method": "DELETE"})
            self.assertEqual(st, 400)

    def test_cors_listed_origins_and_trusted_hosts(self):
        with Server(env={"CORS_ORIGINS": "http://a.test, http://b.test",
                         "ALLOWED_HOSTS": "127.0.0.1,*.example.com"}) as srv:
            st, h, _ = srv.request("GET", "/healthz", headers={"Origin": "http://b.test"})
            self.assertEqual(h["access-control-allow-origin"], "http://b.test")  # trimmed list
            self.assertEqual(h["vary"], "Origin")
            st, h, _ = srv.request("GET", "/healthz", headers={"Origin": "http://evil.test"})
            self.assertNotIn("access-control-allow-origin", h)
            st, h, body = srv.request("OPTIONS", "/predict", headers={
                "Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
            self.assertEqual((st, body), (400, b"Disallowed CORS origin"))
            st, h, body = srv.request("GET", "/healthz", headers={"Host": "attacker.test"})
            self.assertEqual((st, body), (400, b"Invalid host header"))
            self.assertIn("x-request-id", h)
            self.assertEqual(srv.request("GET", "/healthz", headers={"Host": "api.example.com"})[0], 200)
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)  # Host: 127.0.0.1:port


class ArtifactServer(unittest.TestCase):
    def test_file_loaded_example_answers_like_builtin(self):
        root = tempfile.mkdtemp()
        copy_example(root)
        bodies = [ONE_OBS,
                  {"observations": [{"speed": 3.5 * i, "steering": (i % 21 - 10) / 10.0,
                                     "sensors": [i * 0.37 - 11, 0.5, 12.0 - i]} for i in range(57)]}]
        with Server() as builtin, Server(artifact_dir=root) as loaded:
            self.assertIn("loaded v0.1.0", loaded.log())
            self.assertEqual(loaded.json("GET", "/versions")[2]["selection_strategy"],
                             "environment_with_fallback")
            for b in bodies:
                s1, _, r1 = builtin.json("POST", "/predict", b)
                s2, _, r2 = loaded.json("POST", "/predict", b)
                self.assertEqual((s1, s2), (200, 200))
                self.assertEqual(r1["actions"], r2["actions"])  # bit-identical floats

    def test_no_model_loaded(self):
        root = tempfile.mkdtemp()
        d = copy_example(root, "v1.0.0")
        with open(os.path.join(d, "model.onnx"), "r+b") as f:
            f.truncate(100)
        with Server(artifact_dir=root) as srv:
            self.assertIn("skipping version v1.0.0", srv.log())
            st, _, b = srv.json("GET", "/healthz")
            self.assertEqual((st, b["status"]), (200, "degraded"))
            self.assertEqual(srv.json("GET", "/ready")[0], 503)
            for method, path, body in [("GET", "/metadata", None), ("POST", "/warmup", None),
                                       ("POST", "/predict", ONE_OBS),
                                       ("POST", "/predict", {"observations": []})]:
                st, h, b = srv.json(method, path, body)
                self.assertEqual(st, 503, path)
                self.assertEqual(b["error"], "SERVICE_UNAVAILABLE")
                self.assertEqual(b["message"], "Model not loaded or service not ready")
                self.assertEqual(b["details"], {"model_loaded": False,
                                                "request_id": h["x-request-id"]})
            # Malformed JSON is still 422 before the model check, as in the original.
            st, _, _ = srv.request("POST", "/predict", b"nope", {"Content-Type": "application/json"})
            self.assertEqual(st, 422)
            text = srv.request("GET", "/metrics")[2].decode()
            self.assertIn("carla_rl_model_loaded{", text)
            self.assertRegex(text, r"carla_rl_model_loaded\{[^}]*\} 0")
            # No model: build info still, no model info series.
            self.assertIn("carla_rl_build_info{", text)
            self.assertNotIn("carla_rl_model_info{", text)

    def test_model_info_escapes_the_card_name(self):
        root = tempfile.mkdtemp()
        card = os.path.join(copy_example(root), "model_card.yaml")
        with open(card) as f:
            text = f.read()
        with open(card, "w") as f:
            f.write(re.sub(r'(?m)^model_name:.*$', r'model_name: "my \\"ppo\\" \\\\ v2"', text))
        with Server(artifact_dir=root) as srv:
            self.assertEqual(srv.json("GET", "/metadata")[2]["modelName"], 'my "ppo" \\ v2')
            text = srv.request("GET", "/metrics")[2].decode()
            self.assertIn('carla_rl_model_info{name="my \\"ppo\\" \\\\ v2",version="v0.1.0",'
                          'device="cpu",precision="float32"} 1\n', text)
            self.assertEqual(srv.json("GET", "/versions")[0], 200)


if __name__ == "__main__":
    main()
