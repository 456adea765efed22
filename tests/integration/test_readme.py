"""test_readme.py: the README's example curl requests work as written (against a test port)."""
import json
import os
import re
import subprocess
import unittest

from harness import Server, main

README = os.path.join(os.environ.get("CRL_SOURCE_DIR", os.path.join(os.path.dirname(__file__),
                                                                    "..", "..")), "README.md")


def readme_curls():
    text = open(README).read()
    cmds, cur = [], ""
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if cur or line.startswith("curl "):
                cur += line.rstrip("\\") + " "
                if not line.endswith("\\"):
                    cmds.append(cur.strip())
                    cur = ""
    return cmds


class Readme(unittest.TestCase):
    def test_curl_examples(self):
        cmds = readme_curls()
        self.assertGreaterEqual(len(cmds), 4, cmds)
        with Server() as srv:
            for cmd in cmds:
                self.assertIn("localhost:8080", cmd)
                out = subprocess.run(["bash", "-o", "pipefail", "-c",
                                      cmd.replace("localhost:8080", "127.0.0.1:%d" % srv.port)],
                                     capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 0, (cmd, out.stderr))
                self.assertTrue(out.stdout.strip(), cmd)
                if "/metrics" not in cmd:
                    body = json.loads(out.stdout)
                    self.assertNotIn("error", body, cmd)


if __name__ == "__main__":
    main()
