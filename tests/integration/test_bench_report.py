"""test_bench_report.py: the `carlarl bench --report` page is valid and self-contained.

The page comes from the unit test binary test_bench_report ($CRL_BENCH_REPORT_TEST, set by ctest),
which writes the report of its hand-built run to $CRL_BENCH_REPORT_OUT. That run's latencies follow
2 ms * (1 - q)^-0.5: p50 2.828 ms, p99 19.975 ms. The page is parsed twice: strictly as HTML
(every element closed in order, nothing fetched, no script) and as XML (the markup is polyglot).
"""
import html.parser
import math
import os
import re
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from harness import main

BIN = os.environ.get("CRL_BENCH_REPORT_TEST",
                     os.path.join(os.path.dirname(__file__), "../../build/tests/test_bench_report"))
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
FORBIDDEN = {"script", "iframe", "object", "embed", "img", "link", "image", "use", "foreignobject"}
P50_MS, P99_MS = 2.0 / math.sqrt(1 - 9999.5 / 20000), 2.0 / math.sqrt(1 - 19799.5 / 20000)


class StrictParser(html.parser.HTMLParser):
    """Fails on unbalanced or misnested tags and on anything that runs or fetches."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.doctype = [], [], None

    def check_attrs(self, tag, attrs):
        if tag in FORBIDDEN:
            self.problems.append("forbidden element <%s>" % tag)
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append("event handler %s on <%s>" % (name, tag))
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                self.problems.append("%s=%r on <%s>" % (name, value, tag))
            if "url(" in value or "javascript:" in value:
                self.problems.append("%s=%r on <%s>" % (name, value, tag))

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.check_attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.check_attrs(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            self.problems.append("end tag of void element </%s>" % tag)
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append("</%s> closes <%s> at line %d" % (
                tag, self.stack[-1] if self.stack else "nothing", self.getpos()[0]))
        else:
            self.stack.pop()


def local(tag):
    return tag.rsplit("}", 1)[-1]


def points(polyline):
    pts = polyline.get("points").split()
    return [tuple(float(v) for v in p.split(",")) for p in pts]


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        fd, cls.path = tempfile.mkstemp(suffix=".html")
        os.close(fd)
        env = dict(os.environ, CRL_BENCH_REPORT_OUT=cls.path)
        r = subprocess.run([BIN], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("%s failed:\n%s%s" % (BIN, r.stdout, r.stderr))
        with open(cls.path, "rb") as f:
            cls.raw = f.read()
        cls.page = cls.raw.decode("utf-8")  # must be UTF-8
        try:
            cls.root, cls.xml_error = ET.fromstring(cls.raw), None  # must be well-formed XML
        except ET.ParseError as e:
            cls.root, cls.xml_error = ET.Element("none"), str(e)

    @classmethod
    def tearDownClass(cls):
        os.unlink(cls.path)

    def elements(self, name, under=None):
        return [e for e in (under if under is not None else self.root).iter()
                if local(e.tag) == name]

    def test_well_formed_xml(self):
        self.assertIsNone(self.xml_error)

    def test_strict_html(self):
        p = StrictParser()
        p.feed(self.page)
        p.close()
        self.assertEqual(p.problems, [])
        self.assertEqual(p.stack, [], "unclosed elements")
        self.assertEqual((p.doctype or "").lower(), "doctype html")
        self.assertNotIn("<script", self.page.lower())
        self.assertIsNone(re.search(r"@import|url\(", self.page))
        self.assertEqual(local(self.root.tag), "html")
        self.assertEqual([local(e.tag) for e in self.root], ["head", "body"])

    def test_title_and_meta(self):
        title = self.elements("title")[0].text
        self.assertEqual(title, "carlarl bench: http://127.0.0.1:8080/predict")
        meta = "".join(e.text or "" for e in self.elements("p") if e.get("class") == "meta")
        self.assertIn("2025-01-02T03:04:05Z", meta)
        self.assertIn("carlarl 0.1.0", meta)
        self.assertIn('/predict, 8 <obs> & "3 sensors"', meta)  # escaped in the source, intact here

    def figures(self):
        table = [t for t in self.elements("table") if t.get("class") == "figures"]
        self.assertEqual(len(table), 1)
        rows = {}
        for tr in self.elements("tr", table[0]):
            cells = list(tr)
            if len(cells) == 3 and local(cells[0].tag) == "th":
                rows[cells[0].text] = cells[1].text
        return rows

    def test_figures_table(self):
        rows = self.figures()
        lat = [float(rows[k]) for k in ("min", "p50", "p90", "p95", "p99", "p99.9", "max")]
        self.assertEqual(lat, sorted(lat))
        self.assertAlmostEqual(float(rows["p50"]), P50_MS, delta=0.02 * P50_MS)
        self.assertAlmostEqual(float(rows["p99"]), P99_MS, delta=0.02 * P99_MS)
        self.assertEqual(rows["requests/s"], "500.0")
        self.assertEqual(rows["HTTP 503"], "10")
        self.assertEqual(rows["timeout"], "2")
        self.assertEqual(rows["RSS after"], "300.0")

    def test_three_charts_with_data(self):
        svgs = self.elements("svg")
        self.assertEqual([s.get("id") for s in svgs],
                         ["latency-cdf", "latency-time", "throughput-time"])
        for svg in svgs:
            self.assertEqual(svg.tag, "{http://www.w3.org/2000/svg}svg")
            w, h = (float(v) for v in svg.get("viewBox").split()[2:])
            lines = self.elements("polyline", svg)
            self.assertGreaterEqual(len(lines), 1, svg.get("id"))
            for line in lines:
                pts = points(line)
                self.assertGreaterEqual(len(pts), 30, svg.get("id"))
                for x, y in pts:
                    self.assertTrue(0 <= x <= w and 0 <= y <= h, (svg.get("id"), x, y))
            labels = [t.text for t in self.elements("text", svg)]
            self.assertTrue(any(t and t.strip() for t in labels))
            self.assertNotIn("no data", labels)

    def test_cdf_is_monotone_on_a_log_axis(self):
        svg = self.elements("svg")[0]
        pts = points(self.elements("polyline", svg)[0])
        self.assertEqual([x for x, _ in pts], sorted(x for x, _ in pts))
        self.assertEqual([y for _, y in pts], sorted((y for _, y in pts), reverse=True))
        # x tick labels are whole decades, and the p50 mark sits where a log axis puts it
        ticks = {float(t.text): float(t.get("x")) for t in self.elements("text", svg)
                 if t.get("class") == "tick" and t.get("text-anchor") == "middle"}
        decades = sorted(ticks)
        self.assertGreaterEqual(len(decades), 2)
        for a, b in zip(decades, decades[1:]):
            self.assertAlmostEqual(b / a, 10.0)
        per_decade = ticks[decades[1]] - ticks[decades[0]]
        p50 = float(self.figures()["p50"])
        mark = [c for c in self.elements("circle", svg) if c.get("class") == "mark"][0]
        want = ticks[decades[0]] + math.log10(p50 / decades[0]) * per_decade
        self.assertAlmostEqual(float(mark.get("cx")), want, delta=1.0)


if __name__ == "__main__":
    main()
