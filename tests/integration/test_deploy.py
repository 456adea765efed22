"""test_deploy.py: deploy/prometheus passes promtool, and every metric that the alert rules and the
Grafana dashboard query is one the real server exports (a live /metrics scrape)."""
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import ONE_OBS, Server, main

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PROM = os.path.join(ROOT, "deploy", "prometheus")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "carlarl-dashboard.json")

# PromQL words that are not metric names; `up` is made by Prometheus itself for every target.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "up"}


def metric_names(expr):
    """The metric names an expression selects: label matchers, ranges, strings, grouping clauses
    and function names are not names."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", e):
        if m.group(2) is None and m.group(1) not in KEYWORDS:
            names.add(m.group(1))
    return names


def rule_exprs():
    """The `expr:` values of alerts.yml, inline or as a `|` block (stdlib only: no YAML parser)."""
    exprs, lines = [], open(os.path.join(PROM, "alerts.yml")).read().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", line)
        if not m:
            continue
        if m.group(2) not in ("|", ">", "|-", ">-"):
            exprs.append(m.group(2))
            continue
        indent, block = len(m.group(1)), []
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            block.append(nxt.strip())
        exprs.append(" ".join(block))
    return exprs


def dashboard_exprs():
    d = json.load(open(DASHBOARD))
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"\s*label_values\(\s*([^,)]+)", q or "") if v.get("type") == "query" else None
        if m:
            exprs.append(m.group(1))
    return exprs


class Promtool(unittest.TestCase):
    def setUp(self):
        self.promtool = shutil.which("promtool")
        if not self.promtool:
            self.fail("promtool not found: install Debian's prometheus package "
                      "(tools/install-deps.sh --test)")

    def check(self, *args):
        r = subprocess.run([self.promtool, "check"] + list(args), capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, "promtool check %s failed:\n%s%s"
                         % (" ".join(args), r.stdout, r.stderr))

    def test_config(self):
        self.check("config", os.path.join(PROM, "prometheus.yml"))

    def test_rules(self):
        self.check("rules", os.path.join(PROM, "alerts.yml"))


class NamesExist(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(args=["--cache", "memory"]).start()
        # Histograms and labelled families show samples only once observed: a prediction (twice:
        # a miss, then a cache hit) and an error fill them.
        for _ in range(2):
            st, _, _ = cls.srv.json("POST", "/predict", ONE_OBS)
            assert st == 200
        cls.srv.request("GET", "/no-such-path")
        text = cls.srv.request("GET", "/metrics")[2].decode()
        cls.samples = {re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", l).group(0)
                       for l in text.splitlines() if l and not l.startswith("#")}

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "exit code %r\n%s" % (rc, cls.srv.log())

    def assert_exported(self, exprs, where):
        self.assertTrue(exprs, "no expressions found in " + where)
        used = set().union(*(metric_names(e) for e in exprs))
        self.assertTrue(used, where)
        missing = sorted(n for n in used if n not in self.samples)
        # A histogram is queried through its _bucket/_sum/_count series; say which family a
        # missing one belongs to, so a renamed family reads as such.
        hint = {n: re.sub(r"_(bucket|sum|count)$", "", n) for n in missing}
        self.assertEqual(missing, [], "%s queries metrics the server does not export: %s\n"
                         "exported: %s" % (where, hint, sorted(self.samples)))

    def test_metric_names_parser(self):
        self.assertEqual(metric_names(
            'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="b c",y=~"$i"}[5m]))) > 0.05 '
            'and on(instance) up == 1 / sum without (q) (b_total offset 5m) * 1024'),
            {"a_bucket", "b_total"})

    def test_rules_use_exported_metrics(self):
        self.assert_exported(rule_exprs(), "deploy/prometheus/alerts.yml")

    def test_dashboard_uses_exported_metrics(self):
        exprs = dashboard_exprs()
        self.assert_exported(exprs, "deploy/grafana/carlarl-dashboard.json")
        # The panels the operator guide promises.
        text = "\n".join(exprs)
        for name in ["carla_rl_http_requests_total", "carla_rl_request_duration_seconds_bucket",
                     "carla_rl_inference_duration_seconds_bucket", "carla_rl_batch_size",
                     "carla_rl_cache_hits_total", "process_resident_memory_bytes",
                     "process_cpu_seconds_total"]:
            self.assertIn(name, text)
        for q in ("0.5", "0.95", "0.99"):
            self.assertIn("histogram_quantile(%s" % q, text)


if __name__ == "__main__":
    main()
