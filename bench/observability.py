#!/usr/bin/env python3
"""observability.py: what per-request observability costs, in server CPU per request.

Starts two `carlarl serve` processes (the built-in example policy, one worker each):
  on   monitoring.enabled=true (the default): request, inference, stage and cache metrics, the
       stage clock reads, a traceparent on every response with trace_sample_rate 1
  off  monitoring.enabled=false: none of that (and /metrics answers 404)
Both keep logging.access_log at its default (off); --access-log turns it on in both. Then it
drives them in turn with `carlarl bench URL/predict -c 8 -d 3` (closed loop, sampled actions),
on/off interleaved for --passes passes (the order alternates per pass, so a slow spell on the
machine hits both), and prints server CPU us per request (utime+stime of the server process over
the measured requests, `carlarl bench --server-pid`: the same method for both, and no /metrics
scrape in the measurement) per pass, the medians, and the overhead (on - off) / off in percent;
the goal is <= 3 %. Exit status 0 whatever the overhead (the figure is noisy on a busy machine:
read the per-pass spread, and the best pass of each mode, which a slow spell cannot improve).

Then, unless --no-instructions (or valgrind is missing), the repeatable part: user-space
instructions per POST /predict with monitoring on and off, from callgrind runs of N requests
minus an idle run (bench/instructions.py's method, --instructions-n, default 2000). The kernel's
socket work, about half of the server's CPU per request here, is the same in both modes and not
in these counts, so the instructions' overhead is an upper bound on the CPU overhead's share.

Pinning: with 2+ CPUs, both servers run on the first half of the CPUs and the load generator on
the other half (bench/compare.sh does the same); --no-pin pins nothing. Loopback only; every run
stops by itself; both servers are stopped on exit.

usage: bench/observability.py [--passes N] [--duration S] [--warmup S] [--concurrency C]
                              [--access-log] [--json FILE] [--no-pin] [--bin PATH]
                              [--no-instructions] [--instructions-n N]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import arg_parser, parse_args, pinned, start_server  # noqa: E402

GOAL_PCT = 3.0
MODES = ("on", "off")


def build_type(binary):
    """CMAKE_BUILD_TYPE of the build directory holding binary ('' when unknown)."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(binary)), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


def start(a, mode):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONITORING_", "BATCHING_", "CACHE_", "LOG_", "SERVER_"))
           and k not in ("TRACE_SAMPLE_RATE", "ARTIFACT_DIR", "WORKERS", "MODEL_VERSION")}
    env.update({"WORKERS": "1", "LOG_LEVEL": "INFO", "ARTIFACT_DIR": a.tmp,
                "MONITORING_ENABLED": "true" if mode == "on" else "false",
                "TRACE_SAMPLE_RATE": "1", "LOG_ACCESS": "true" if a.access_log else "false"})
    p, port = start_server(pinned(a.server_cpus, [a.bin, "serve", "--port", "0"]), env=env)
    # The log is read and dropped (on the load CPUs, see main) so that the pipe never fills.
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, "http://127.0.0.1:%d/predict" % port


def bench(a, url, pid, out):
    argv = pinned(a.load_cpus, [a.bin, "bench", url, "-c", str(a.concurrency), "-t", "1",
                                "-d", str(a.duration), "-w", str(a.warmup),
                                "--server-pid", str(pid), "--json", out, "-q", "--no-progress"])
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0 or not os.path.exists(out):
        sys.exit("carlarl bench failed (%d): %s\n%s" % (r.returncode, " ".join(argv), r.stdout))
    with open(out) as f:
        j = json.load(f)
    bad = sum(int(v) for k, v in j["status"].items() if k != "200")
    bad += sum(int(v) for v in j["transport_errors"].values())
    if bad:
        sys.exit("carlarl bench: %d failed requests against %s" % (bad, url))
    return {"cpu_us_per_request": j["server"]["cpu_us_per_request"],
            "rps": j["throughput_rps"], "requests": j["done"]}


def main():
    ap = arg_parser(__doc__, duration=3, warmup=1)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--access-log", action="store_true",
                    help="logging.access_log on in both servers (default: off, as shipped)")
    ap.add_argument("--no-instructions", action="store_true",
                    help="skip the callgrind instruction counts (about a minute)")
    ap.add_argument("--instructions-n", type=int, default=2000,
                    help="requests per callgrind run (default 2000)")
    a = parse_args(ap)
    bt = build_type(a.bin)
    if bt and bt != "Release":
        print("warning: %s is a %s build; measure a Release build" % (a.bin, bt), file=sys.stderr)
    if a.load_cpus:  # this script's own threads (the log readers) stay off the servers' CPUs
        os.sched_setaffinity(0, [int(c) for c in a.load_cpus.split(",")])
    a.tmp = tempfile.mkdtemp(prefix="carlarl-obs-")  # an empty artifact dir: the built-in policy
    servers = {}
    runs = {m: [] for m in MODES}
    try:
        for m in MODES:
            servers[m] = start(a, m)
        for i in range(a.passes):
            for m in (MODES if i % 2 == 0 else MODES[::-1]):
                p, url = servers[m]
                runs[m].append(bench(a, url, p.pid, os.path.join(a.tmp, "%s-%d.json" % (m, i))))
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait(10)
        for f in os.listdir(a.tmp):
            os.unlink(os.path.join(a.tmp, f))
        os.rmdir(a.tmp)

    print("Observability overhead: POST /predict (built-in example policy, batch 1), "
          "carlarl bench -c %d -d %g, one worker%s, access log %s, %s build"
          % (a.concurrency, a.duration,
             " on CPUs %s, load on %s" % (a.server_cpus, a.load_cpus) if a.server_cpus else "",
             "on" if a.access_log else "off", bt or "unknown"))
    print()
    print("| pass | on: CPU us/req | off: CPU us/req | on - off | on: req/s | off: req/s |")
    print("|---|---|---|---|---|---|")
    for i in range(a.passes):
        on, off = runs["on"][i], runs["off"][i]
        d = (on["cpu_us_per_request"] - off["cpu_us_per_request"]) / off["cpu_us_per_request"]
        print("| %d | %.2f | %.2f | %+.1f %% | %.0f | %.0f |"
              % (i + 1, on["cpu_us_per_request"], off["cpu_us_per_request"], d * 100,
                 on["rps"], off["rps"]))
    med = {m: statistics.median(r["cpu_us_per_request"] for r in runs[m]) for m in MODES}
    best = {m: min(r["cpu_us_per_request"] for r in runs[m]) for m in MODES}
    pct = (med["on"] - med["off"]) / med["off"] * 100
    pct_best = (best["on"] - best["off"]) / best["off"] * 100
    print("| median | %.2f | %.2f | %+.1f %% | | |" % (med["on"], med["off"], pct))
    print("| best | %.2f | %.2f | %+.1f %% | | |" % (best["on"], best["off"], pct_best))
    print()
    for what, p in (("medians", pct), ("best passes", pct_best)):
        print("overhead of metrics + tracing (%s): %+.1f %% of server CPU per request "
              "(goal <= %.0f %%): %s" % (what, p, GOAL_PCT,
                                         "within the goal" if p <= GOAL_PCT else "over the goal"))
    instr = None if a.no_instructions else instructions(a)
    if instr:
        ipct = (instr["on"] - instr["off"]) / instr["off"] * 100
        print("user-space instructions per request (callgrind, %d requests, 1 connection): "
              "on %.0f, off %.0f, %+.1f %%" % (a.instructions_n, instr["on"], instr["off"], ipct))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"settings": {"concurrency": a.concurrency, "duration_s": a.duration,
                                    "passes": a.passes, "access_log": a.access_log,
                                    "server_cpus": a.server_cpus, "load_cpus": a.load_cpus,
                                    "build_type": bt},
                       "runs": runs, "median_cpu_us_per_request": med,
                       "best_cpu_us_per_request": best, "overhead_percent": pct,
                       "overhead_percent_best": pct_best, "instructions_per_request": instr,
                       "goal_percent": GOAL_PCT}, f, indent=2)


def instructions(a):
    """User-space instructions per /predict, monitoring on and off (bench/instructions.py)."""
    import shutil
    if not shutil.which("valgrind"):
        print("(no valgrind: instruction counts skipped)")
        return None
    import instructions as ins
    tmp = tempfile.mkdtemp()
    try:
        out = {}
        for m in MODES:
            env = {"MONITORING_ENABLED": "true" if m == "on" else "false"}
            idle, _ = ins.totals(ins.run(a.bin, tmp, "idle", 0, env, m))
            busy, _ = ins.totals(ins.run(a.bin, tmp, "predict", a.instructions_n, env, m))
            out[m] = (busy - idle) / a.instructions_n
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
