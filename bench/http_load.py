#!/usr/bin/python3
"""http_load.py: server CPU per request of POST /predict against GET /healthz, in one run.

Starts `carlarl serve` (built-in example policy) with one worker pinned to CPU 0, drives it with
wrk pinned to CPU 1 (keep-alive, 32 connections), alternating the two endpoints for several
rounds, and prints for each: req/s, p50/p99 latency, and server CPU microseconds per request
(utime+stime from /proc/PID/stat divided by the requests wrk completed). The figure that matters
is the ratio predict/healthz: the budget is <= 1.25 (DESIGN.md); req/s is bounded by wrk and the
kernel on a 2-core machine. Loopback only; every run stops by itself.

usage: bench/http_load.py [--bin build/carlarl] [--seconds 5] [--rounds 3] [--connections 32]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

from benchlib import start_server

BODY = json.dumps({"observations": [{"speed": 25.5, "steering": 0.1, "sensors": [0.8, 0.2, 0.5]}],
                   "deterministic": True})


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def to_us(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if m is None:
        sys.exit("cannot read wrk latency %r" % s)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]


def run_wrk(url, seconds, conns, script, pid, cpu):
    cmd = ["taskset", "-c", cpu, "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    if script:
        cmd += ["-s", script]
    t0 = cpu_ticks(pid)
    out = subprocess.run(cmd + [url], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    t1 = cpu_ticks(pid)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_us(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = to_us(re.search(r"99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit("wrk saw %s non-2xx responses:\n%s" % (non2xx.group(1), out))
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": (t1 - t0) * 1e6 / ticks / reqs,
            "requests": reqs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "carlarl"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit("bench/http_load.py needs %s (tools/install-deps.sh --bench)" % tool)
    ncpu = os.cpu_count() or 1
    srv_cpu, wrk_cpu = ("0", "1") if ncpu > 1 else ("0", "0")
    tmp = tempfile.mkdtemp()
    lua = os.path.join(tmp, "predict.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                "wrk.body = [==[%s]==]\n" % BODY)
    env = dict(os.environ, ARTIFACT_DIR=os.path.join(tmp, "none"))
    srv, port = start_server(["taskset", "-c", srv_cpu, a.bin, "serve", "--port", "0",
                              "--workers", "1"], env)
    try:
        base = "http://127.0.0.1:%d" % port
        # Warm both paths once (page faults, first-touch of buffers) before measuring.
        run_wrk(base + "/healthz", 1, a.connections, None, srv.pid, wrk_cpu)
        run_wrk(base + "/predict", 1, a.connections, lua, srv.pid, wrk_cpu)
        rss0 = rss_kib(srv.pid)
        res = {"healthz": [], "predict": []}
        for _ in range(a.rounds):
            res["healthz"].append(run_wrk(base + "/healthz", a.seconds, a.connections, None,
                                          srv.pid, wrk_cpu))
            res["predict"].append(run_wrk(base + "/predict", a.seconds, a.connections, lua,
                                          srv.pid, wrk_cpu))
        rss1 = rss_kib(srv.pid)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)

    print("carlarl HTTP benchmark: server 1 worker on CPU %s, wrk -t1 -c%d on CPU %s, "
          "%d x %ds rounds, medians" % (srv_cpu, a.connections, wrk_cpu, a.rounds, a.seconds))
    print("%-22s %10s %10s %10s %14s" % ("endpoint", "req/s", "p50 us", "p99 us", "CPU us/req"))
    med = {}
    for name, label in [("healthz", "GET /healthz"), ("predict", "POST /predict (b=1)")]:
        rows = res[name]
        med[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        m = med[name]
        print("%-22s %10.0f %10.0f %10.0f %14.2f" % (label, m["rps"], m["p50"], m["p99"],
                                                    m["cpu_us"]))
    ratios = [p["cpu_us"] / h["cpu_us"] for p, h in zip(res["predict"], res["healthz"])]
    total = sum(r["requests"] for rows in res.values() for r in rows)
    print("server RSS after warm-up %d KiB, after %d more requests %d KiB" % (rss0, total, rss1))
    print("CPU ratio predict/healthz: %.3f (per round: %s; budget <= 1.25)"
          % (statistics.median(ratios), ", ".join("%.3f" % r for r in ratios)))


if __name__ == "__main__":
    main()
