"""test_policies.py: the model card's policy heads served end to end. The committed artifacts
(tests/data/artifacts-policies/{gaussian,categorical}/v1.0.0, written by
tools/make_example_artifact.py --policy) answer deterministic=true with the golden means /
argmax, a given seed with the golden samples (Python's Philox implementation), and requests
without a seed with varying samples."""
import json
import os
import re
import shutil
import tempfile
import unittest

from harness import DATA, Server, main

POLICIES = os.path.join(DATA, "artifacts-policies")
KEYS = ("throttle", "brake", "steer")
TOL = 1e-5  # carlarl's forward pass vs torch


def golden(kind):
    with open(os.path.join(POLICIES, "golden_%s.json" % kind)) as f:
        return json.load(f)


class PolicyCase:
    kind = None

    @classmethod
    def setUpClass(cls):
        cls.g = golden(cls.kind)
        cls.srv = Server(artifact_dir=os.path.join(POLICIES, cls.kind), workers=3).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def predict(self, body, status=200):
        st, _, b = self.srv.json("POST", "/predict", body)
        self.assertEqual(st, status, b)
        return b

    def assertActions(self, got, want):
        self.assertEqual(len(got), len(want))
        for i, (a, w) in enumerate(zip(got, want)):
            self.assertEqual(list(a), list(KEYS))
            for k in KEYS:
                self.assertAlmostEqual(a[k], w[k], delta=TOL, msg="row %d %s" % (i, k))

    def test_loaded_with_its_policy(self):
        st, _, b = self.srv.json("GET", "/versions")
        self.assertEqual(b["current_version"], "v1.0.0")
        self.assertEqual(b["available_versions"][0]["model_card"]["policy"]["type"], self.kind)

    def test_deterministic_is_golden(self):
        b = self.predict({"observations": self.g["observations"], "deterministic": True})
        self.assertEqual(list(b), ["actions", "version", "timingMs", "deterministic"])
        self.assertIs(b["deterministic"], True)
        self.assertActions(b["actions"], self.g["deterministic"])
        # A seed changes nothing when deterministic.
        b = self.predict({"observations": self.g["observations"], "deterministic": True,
                          "seed": 5})
        self.assertActions(b["actions"], self.g["deterministic"])

    def test_seed_reproduces_golden_samples(self):
        for s in self.g["samples"]:
            for _ in range(4):  # several requests, spread over the workers
                b = self.predict({"observations": self.g["observations"], "seed": s["seed"]})
                self.assertEqual(list(b), ["actions", "version", "timingMs", "deterministic"])
                self.assertIs(b["deterministic"], False)
                self.assertActions(b["actions"], s["actions"])
        # Seeds given as numeric strings are the same seed (pydantic lax int).
        s = self.g["samples"][1]
        b = self.predict({"observations": self.g["observations"], "seed": str(s["seed"]),
                          "deterministic": None})
        self.assertActions(b["actions"], s["actions"])

    def test_batch_composition(self):
        """Row i's sample depends on (seed, i) only: a prefix of the batch, or other rows after
        it, leave it unchanged."""
        s = self.g["samples"][0]
        obs = self.g["observations"]
        b = self.predict({"observations": obs[:3], "seed": s["seed"]})
        self.assertActions(b["actions"], s["actions"][:3])
        other = [dict(o, speed=100.0) for o in obs[3:]]
        b = self.predict({"observations": obs[:3] + other, "seed": s["seed"]})
        self.assertActions(b["actions"][:3], s["actions"][:3])

    def test_no_seed_varies(self):
        body = {"observations": self.g["observations"] * 4}
        seen = set()
        for _ in range(6):
            b = self.predict(body)
            seen.add(json.dumps(b["actions"]))
        self.assertGreater(len(seen), 1, "samples without a seed must vary")

    def test_seed_validation(self):
        b = self.predict({"observations": self.g["observations"], "seed": -1}, status=422)
        errs = b["details"]["validation_errors"]
        self.assertEqual(errs, [{"field": "body.seed", "type": "greater_than_equal",
                                 "message": "Input should be greater than or equal to 0"}])
        b = self.predict({"observations": self.g["observations"], "seed": "abc"}, status=422)
        self.assertEqual(b["details"]["validation_errors"][0]["type"], "int_parsing")
        b = self.predict({"observations": self.g["observations"], "seed": 2 ** 64}, status=422)
        self.assertEqual(b["details"]["validation_errors"][0]["type"], "less_than_equal")


class Gaussian(PolicyCase, unittest.TestCase):
    kind = "gaussian"

    def test_samples_stay_in_the_action_space(self):
        b = self.predict({"observations": self.g["observations"] * 50, "seed": 1})
        for a in b["actions"]:
            self.assertTrue(0.0 <= a["throttle"] <= 1.0 and 0.0 <= a["brake"] <= 1.0)
            self.assertTrue(-1.0 <= a["steer"] <= 1.0)


class Categorical(PolicyCase, unittest.TestCase):
    kind = "categorical"

    def test_samples_are_listed_actions(self):
        with open(os.path.join(POLICIES, "categorical", "v1.0.0", "model_card.yaml")) as f:
            card = f.read()
        listed = {tuple(float(x) for x in m) for m in re.findall(
            r"\{throttle: ([-\d.]+), brake: ([-\d.]+), steer: ([-\d.]+)\}", card)}
        self.assertEqual(len(listed), 5)
        b = self.predict({"observations": self.g["observations"] * 50})
        for a in b["actions"]:
            self.assertIn(tuple(round(a[k], 6) for k in KEYS), listed)


class BadPolicyCard(unittest.TestCase):
    def test_bad_section_names_the_line(self):
        root = tempfile.mkdtemp()
        try:
            dst = os.path.join(root, "v1.0.0")
            shutil.copytree(os.path.join(POLICIES, "gaussian", "v1.0.0"), dst)
            card = os.path.join(dst, "model_card.yaml")
            with open(card) as f:
                text = f.read()
            with open(card, "w") as f:
                f.write(text.replace("squash: tanh", "squash: sigmoid"))
            with Server(artifact_dir=root) as srv:
                st, _, _ = srv.json("GET", "/ready")
                self.assertEqual(st, 503)
                self.assertRegex(srv.log(), r"model_card\.yaml:1[0-9]: policy: squash: expected "
                                            r"none or tanh")
        finally:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
