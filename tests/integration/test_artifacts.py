"""test_artifacts.py: version discovery and selection, integrity checks, read-only trees."""
import hashlib
import os
import re
import stat
import tempfile
import unittest

from harness import EXAMPLE_ARTIFACT, Server, copy_example, main


def tree_snapshot(root):
    out = []
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime_ns))
    return sorted(out)


def set_card(d, pattern, repl):
    p = os.path.join(d, "model_card.yaml")
    with open(p) as f:
        text = f.read()
    new = re.sub(pattern, repl, text, flags=re.M)
    with open(p, "w") as f:
        f.write(new)


class Selection(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()

    def current(self, env=None):
        with Server(artifact_dir=self.root, env=env) as srv:
            st, _, b = srv.json("GET", "/versions")
            self.assertEqual(st, 200)
            return b, srv.log()

    def test_latest_stable_beats_newer_prerelease(self):
        for v in ["v1.0.0", "v1.2.0", "v2.0.0-rc.1", "v0.9.0"]:
            copy_example(self.root, v)
        b, _ = self.current()
        self.assertEqual(b["current_version"], "v1.2.0")
        self.assertEqual([v["version"] for v in b["available_versions"]],
                         ["v2.0.0-rc.1", "v1.2.0", "v1.0.0", "v0.9.0"])
        self.assertEqual([v["is_stable"] for v in b["available_versions"]],
                         [False, True, True, True])
        self.assertEqual([v["is_current"] for v in b["available_versions"]],
                         [False, True, False, False])
        self.assertEqual(b["artifacts_root"], self.root)

    def test_only_prereleases(self):
        for v in ["v1.0.0-alpha", "v1.0.0-beta.2", "v1.0.0-beta.11"]:
            copy_example(self.root, v)
        self.assertEqual(self.current()[0]["current_version"], "v1.0.0-beta.11")

    def test_pin_with_and_without_v(self):
        for v in ["v1.0.0", "v2.0.0"]:
            copy_example(self.root, v)
        self.assertEqual(self.current({"MODEL_VERSION": "v1.0.0"})[0]["current_version"], "v1.0.0")
        self.assertEqual(self.current({"MODEL_VERSION": "1.0.0"})[0]["current_version"], "v1.0.0")
        b, log = self.current({"MODEL_VERSION": "v9.9.9"})
        self.assertEqual(b["current_version"], "v2.0.0")
        self.assertIn("MODEL_VERSION v9.9.9 not found", log)

    def test_broken_versions_are_skipped_with_one_clear_line(self):
        copy_example(self.root, "v1.0.0")
        bad = copy_example(self.root, "v2.0.0")
        with open(os.path.join(bad, "preprocessor.json"), "a") as f:
            f.write(" ")
        bad3 = copy_example(self.root, "v3.0.0")
        set_card(bad3, r"^model_type:.*$", "model_type: pytorch")
        b, log = self.current()
        self.assertEqual(b["current_version"], "v1.0.0")
        lines = [l for l in log.splitlines() if "skipping version" in l]
        self.assertEqual(len(lines), 2, log)
        self.assertIn("v3.0.0", lines[0])
        self.assertIn("model_type", lines[0])
        self.assertIn("v2.0.0", lines[1])
        self.assertIn("preprocessor.json", lines[1])
        self.assertIn("mismatch", lines[1])

    def test_bare_hex_hashes_and_missing_hashed_file(self):
        d = copy_example(self.root, "v1.0.0")
        digest = hashlib.sha256(open(os.path.join(d, "model.onnx"), "rb").read()).hexdigest()
        set_card(d, r"sha256:", "")
        self.assertIn(digest, open(os.path.join(d, "model_card.yaml")).read())
        self.assertEqual(self.current()[0]["current_version"], "v1.0.0")
        os.remove(os.path.join(d, "preprocessor.json"))
        b, log = self.current()
        self.assertNotEqual(b["current_version"], "v1.0.0")
        self.assertRegex(log, r"missing artifact file: \S*v1.0.0/preprocessor.json")

    def test_card_version_must_match_directory(self):
        d = copy_example(self.root, "v1.0.0")
        set_card(d, r"^version:.*$", "version: v7.0.0")
        b, log = self.current()
        self.assertIn("does not match the directory", log)

    def test_unsupported_operator_names_node_and_op(self):
        copy_example(self.root, "v1.0.0")
        d = copy_example(self.root, "v2.0.0")
        conv = os.path.join(os.path.dirname(EXAMPLE_ARTIFACT), "..", "onnx", "conv.onnx")
        with open(conv, "rb") as src, open(os.path.join(d, "model.onnx"), "wb") as dst:
            data = src.read()
            dst.write(data)
        set_card(d, r"^(  model.onnx:).*$", r'\1 "sha256:%s"' % hashlib.sha256(data).hexdigest())
        b, log = self.current()
        self.assertEqual(b["current_version"], "v1.0.0")
        self.assertRegex(log, r"skipping version v2.0.0: \S*model.onnx: node '[^']*' \(op Conv, opset \d+\)")

    def test_read_only_tree_is_never_written(self):
        copy_example(self.root, "v1.0.0")
        before = tree_snapshot(self.root)
        for d, dirs, files in os.walk(self.root):
            for n in dirs + files:
                p = os.path.join(d, n)
                os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        os.chmod(self.root, 0o555)
        try:
            with Server(artifact_dir=self.root) as srv:
                for _ in range(3):
                    self.assertEqual(srv.json("GET", "/versions")[2]["current_version"], "v1.0.0")
        finally:
            os.chmod(self.root, 0o755)
        self.assertEqual(tree_snapshot(self.root), before)

    def test_non_version_directories_ignored(self):
        copy_example(self.root, "v1.0.0")
        copy_example(self.root, "v1.0.0", name="latest")
        copy_example(self.root, "v1.0.0", name="V2.0.0")
        os.makedirs(os.path.join(self.root, "v3.0.0"))  # no card
        b, _ = self.current()
        self.assertEqual([v["version"] for v in b["available_versions"]], ["v1.0.0"])


if __name__ == "__main__":
    main()
