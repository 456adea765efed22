#!/usr/bin/python3
"""instructions.py: user-space instructions per request, POST /predict against GET /healthz.

Runs `carlarl serve` (one worker, built-in example policy) under valgrind's callgrind three times:
with no requests (start-up and shutdown only), with N GET /healthz, and with N POST /predict
(batch 1, 3 sensors), all on one keep-alive connection. Instruction counts are repeatable on a
noisy machine, unlike times; the difference divided by N is the server's own user-space work per
request (the kernel's socket work, ~8.5 us per request here, is not in these counts). Prints the
ratio and the functions that account for the predict-over-healthz difference.

usage: bench/instructions.py [--bin build/carlarl] [-n 3000]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from benchlib import start_server

BODY = json.dumps({"observations": [{"speed": 25.5, "steering": 0.1, "sensors": [0.8, 0.2, 0.5]}],
                   "deterministic": True})


def run(binary, tmp, what, n, env_extra=None, tag=""):
    """Runs the server under callgrind for n requests of `what` (idle, healthz, predict), with
    env_extra added to its environment; returns the callgrind file."""
    out = os.path.join(tmp, "cg.%s%s" % (what, tag))
    env = dict(os.environ, ARTIFACT_DIR=os.path.join(tmp, "none"), LOG_LEVEL="WARNING",
               **(env_extra or {}))
    p, port = start_server(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary,
                            "serve", "--port", "0", "--workers", "1", "--log-level", "INFO"], env)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n if what != "idle" else 0):
        if what == "healthz":
            c.request("GET", "/healthz")
        else:
            c.request("POST", "/predict", BODY, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("%s answered %d" % (what, r.status))
    c.close()
    p.send_signal(signal.SIGTERM)
    p.stderr.read()
    p.wait(120)
    return out


def totals(path):
    """Total instructions and inclusive cost per function (callgrind_annotate --inclusive)."""
    txt = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", txt).group(1).replace(",", ""))
    funcs = {}
    for m in re.finditer(r"^\s*([\d,]+) \([\s\d.]+%\)\s+\S*:(\S+)", txt, re.M):
        funcs[m.group(2)] = int(m.group(1).replace(",", ""))
    return total, funcs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "carlarl"))
    ap.add_argument("-n", type=int, default=3000)
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind (tools/install-deps.sh --bench)")
    tmp = tempfile.mkdtemp()
    try:
        idle, _ = totals(run(a.bin, tmp, "idle", 0))
        hz, fh = totals(run(a.bin, tmp, "healthz", a.n))
        pr, fp = totals(run(a.bin, tmp, "predict", a.n))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    h = (hz - idle) / a.n
    p = (pr - idle) / a.n
    print("user-space instructions per request (callgrind, 1 worker, %d requests, keep-alive)" % a.n)
    print("  GET /healthz         %8.0f" % h)
    print("  POST /predict (b=1)  %8.0f" % p)
    print("  ratio predict/healthz %.3f" % (p / h))
    print("functions with the largest inclusive cost per predict request:")
    rows = sorted(((v - fh.get(k, 0)) / a.n, k) for k, v in fp.items())[::-1]
    shown = 0
    for cost, name in rows:
        if name.startswith(("crl_", "h2o_", "phr_", "__", "snprintf", "strtod", "memcpy")) and cost > 30:
            print("  %8.0f  %s" % (cost, name))
            shown += 1
        if shown == 14:
            break


if __name__ == "__main__":
    main()
