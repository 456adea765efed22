#!/usr/bin/env python3
"""run.py: carlarl's runtime against OpenBLAS, oneDNN, torch and ONNX Runtime, in one run.

Builds what it needs (CMake build dir build/bench-yardsticks with -DCRL_BENCH=ON; ONNX Runtime
from npm into build/bench-node/ with ONNXRUNTIME_NODE_INSTALL=skip), extracts the MLP's weights
from the ONNX file for the engines that cannot read ONNX, runs every engine pinned to one CPU with
one thread, and prints ns per forward at each batch size and carlarl's ratio to the best other
engine. Every engine checks its output against the zoo goldens (golden_b1/_b7/_b64) first; an
engine that disagrees by more than 1e-4 gets no time. A missing engine is "not installed"
(tools/install-deps.sh --bench installs the Debian ones). Standard library only; see
docs/performance.md.

    bench/yardsticks/run.py                            # example_mlp, batch 1 8 64 256
    bench/yardsticks/run.py --reps 11 --target-ms 50   # longer, steadier
    bench/yardsticks/run.py --engines carlarl,openblas --no-build
"""

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import onnx_weights  # noqa: E402

TOL = 1e-4
ENGINES = {  # engine -> the variants (table rows) it reports
    "carlarl": ["carlarl"],
    "openblas": ["openblas"],
    "onednn": ["onednn-matmul", "onednn-ip"],
    "torch": ["torch-eager", "torch-jit"],
    "ort": ["ort"],
}
TARGETS = {"carlarl": "yardstick_carlarl", "openblas": "yardstick_openblas",
           "onednn": "yardstick_onednn"}


def log(msg):
    print("run.py: " + msg, file=sys.stderr, flush=True)


def tail(text, n=3):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


def cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return flag in line.split()
    except OSError:
        pass
    return False


def build(a, wanted):
    """Configures and builds the C drivers; returns {engine: None (built) or reason}."""
    status = {}
    cfg = ["cmake", "-S", ROOT, "-B", a.build_dir, "-DCRL_BENCH=ON", "-DCRL_TESTS=OFF",
           "-DCRL_ASAN_BINARY=OFF", "-DCRL_SANITIZE=OFF", "-DCMAKE_BUILD_TYPE=Release"]
    if shutil.which("cmake") is None:
        return {e: "not installed (cmake missing)" for e in TARGETS}
    if not a.no_build:
        log("configuring " + a.build_dir)
        p = subprocess.run(cfg, capture_output=True, text=True)
        if p.returncode != 0:
            return {e: "FAILED: cmake configure: " + tail(p.stdout + p.stderr) for e in TARGETS}
    info = {}
    try:
        with open(os.path.join(a.build_dir, "bench", "yardsticks.txt")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                info[k] = v
    except OSError:
        return {e: "FAILED: %s is not configured with -DCRL_BENCH=ON" % a.build_dir
                for e in TARGETS}
    for eng, target in TARGETS.items():
        if eng not in wanted:
            continue
        if info.get(eng) != "built":
            status[eng] = info.get(eng, "not installed")
            continue
        if not a.no_build:
            log("building " + target)
            p = subprocess.run(["cmake", "--build", a.build_dir, "-j", str(os.cpu_count() or 2),
                                "--target", target], capture_output=True, text=True)
            if p.returncode != 0:
                status[eng] = "FAILED: build: " + tail(p.stdout + p.stderr)
                continue
        status[eng] = None
    return status


def ensure_ort(a):
    """Installs onnxruntime-node into a.node_dir if needed; returns None or a reason."""
    if shutil.which("node") is None:
        return "not installed (node missing: tools/install-deps.sh --bench)"
    mod = os.path.join(a.node_dir, "node_modules", "onnxruntime-node", "package.json")
    if os.path.exists(mod):
        return None
    if a.no_npm:
        return "not installed (%s has no onnxruntime-node and --no-npm)" % a.node_dir
    if shutil.which("npm") is None:
        return "not installed (npm missing: tools/install-deps.sh --bench)"
    os.makedirs(a.node_dir, exist_ok=True)
    pkg = os.path.join(a.node_dir, "package.json")
    if not os.path.exists(pkg):
        with open(pkg, "w") as f:
            f.write('{"name": "carlarl-bench-node", "private": true}\n')
    log("npm install onnxruntime-node@%s into %s" % (a.ort_version, a.node_dir))
    env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
    try:
        p = subprocess.run(["npm", "install", "--no-audit", "--no-fund",
                            "onnxruntime-node@" + a.ort_version], cwd=a.node_dir, env=env,
                           capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "not installed (npm install timed out)"
    if p.returncode != 0 or not os.path.exists(mod):
        return "not installed (npm install failed: %s)" % tail(p.stdout + p.stderr)
    return None


def run_engine(cmd, env, pin):
    """Runs one driver; returns (records, stderr tail, return code)."""
    full = (["taskset", "-c", str(pin)] if pin is not None else []) + cmd
    try:
        p = subprocess.run(full, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return [], "timed out after 900 s", -1
    except OSError as e:
        return [], str(e), -1
    recs = [l.split(" ", 3) for l in p.stdout.splitlines() if l.strip()]
    return recs, tail(p.stderr), p.returncode


def fmt_ns(ns):
    return "{:,.0f}".format(ns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "tests/data/zoo/example_mlp"),
                    help="zoo model directory (model.onnx + golden_b1/_b7/_b64.bin)")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--reps", type=int, default=7, help="repetitions; the best one counts")
    ap.add_argument("--target-ms", type=float, default=20, help="length of one repetition")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default 1, or 0)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build/bench-yardsticks"))
    ap.add_argument("--node-dir", default=os.path.join(ROOT, "build/bench-node"))
    ap.add_argument("--ort-version", default="1.30.0")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter that sees Debian's python3-torch")
    ap.add_argument("--openblas-coretype", default=None,
                    help="OPENBLAS_CORETYPE (default SkylakeX on AVX-512 CPUs; '' keeps the"
                    " environment's)")
    ap.add_argument("--no-build", action="store_true", help="use the drivers already built")
    ap.add_argument("--no-npm", action="store_true", help="never run npm install")
    a = ap.parse_args()
    wanted = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in wanted:
        if e not in ENGINES:
            ap.error("unknown engine %r (have %s)" % (e, ", ".join(ENGINES)))
    batches = [int(b) for b in a.batches.split(",")]
    if not batches or min(batches) < 1 or max(batches) > 256:
        ap.error("batches must be 1..256")
    onnx = os.path.join(a.model, "model.onnx")
    pin = a.cpu if a.cpu is not None else (1 if (os.cpu_count() or 1) > 1 else 0)
    if shutil.which("taskset") is None:
        log("taskset missing: engines run unpinned")
        pin = None

    os.makedirs(a.build_dir, exist_ok=True)
    weights = os.path.join(a.build_dir, os.path.basename(os.path.normpath(a.model)) + ".weights")
    onnx_weights.write_weights(onnx_weights.read_layers(onnx), weights)

    status = {e: None for e in wanted}
    status.update(build(a, [e for e in wanted if e in TARGETS]))
    if "ort" in wanted:
        status["ort"] = ensure_ort(a)
    a.python = shutil.which(a.python) or a.python
    if "torch" in wanted and not os.path.exists(a.python):
        status["torch"] = "not installed (%s missing: tools/install-deps.sh --bench)" % a.python

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               DNNL_VERBOSE="0")
    # OpenBLAS 0.3.21 does not know Zen 5 and picks its Haswell (AVX2) kernels; SkylakeX is its
    # AVX-512 target. Only on a CPU that has AVX-512, or it would die of SIGILL. This overrides
    # an OPENBLAS_CORETYPE inherited from the environment (some shells here export Haswell).
    core = a.openblas_coretype
    if core is None and cpu_has("avx512f"):
        core = "SkylakeX"
    if core:
        if env.get("OPENBLAS_CORETYPE", core) != core:
            log("OPENBLAS_CORETYPE=%s from the environment replaced by %s"
                % (env["OPENBLAS_CORETYPE"], core))
        env["OPENBLAS_CORETYPE"] = core
    common = ["--golden", a.model, "--batches", a.batches, "--reps", str(a.reps),
              "--target-ms", str(a.target_ms)]
    drivers = {
        "carlarl": [os.path.join(a.build_dir, "bench", "yardstick_carlarl"), "--onnx", onnx],
        "openblas": [os.path.join(a.build_dir, "bench", "yardstick_openblas"), "--weights", weights],
        "onednn": [os.path.join(a.build_dir, "bench", "yardstick_onednn"), "--weights", weights],
        "torch": [a.python, os.path.join(HERE, "torch_bench.py"), "--onnx", onnx],
        "ort": ["node", os.path.join(HERE, "ort_bench.js"), "--node-dir", a.node_dir,
                "--onnx", onnx],
    }

    times, cell_note, infos = {}, {}, []
    for eng in wanted:
        variants = ENGINES[eng]
        if status[eng] is not None:
            for v in variants:
                cell_note[v] = status[eng]
            continue
        log("running %s (pinned to CPU %s)" % (eng, pin))
        recs, err, rc = run_engine(drivers[eng] + common, env, pin)
        checks, errors = {}, {}
        for r in recs:
            if len(r) < 3:
                continue
            kind, var = r[0], r[1]
            rest = " ".join(r[2:])
            if kind == "info":
                infos.append("%s: %s" % (var, rest))
            elif kind == "check":
                checks.setdefault(var, []).append(float(r[3]) if len(r) > 3 else float("inf"))
            elif kind == "error":
                errors.setdefault(var, []).append(rest)
            elif kind == "time" and len(r) > 3:
                times.setdefault(var, {})[int(r[2])] = float(r[3])
        for v in variants:
            missing = [e for e in errors.get(v, []) + errors.get(eng, []) if "not installed" in e]
            if missing:
                cell_note[v] = missing[0][missing[0].find("not installed"):]
            elif errors.get(v):
                cell_note[v] = "FAILED: " + "; ".join(errors[v])
            elif len(checks.get(v, [])) < 3 or max(checks[v]) > TOL:
                cell_note[v] = "FAILED: golden check missing or over %g (rc %d; %s)" % (TOL, rc, err)
            elif not times.get(v):
                cell_note[v] = "FAILED: no time (rc %d; %s)" % (rc, err)
            else:
                infos.append("%s: golden max abs error %.2g" % (v, max(checks[v])))
                continue
            times.pop(v, None)  # refuse times of a variant that did not pass its checks
            if eng != v and errors.get(eng):
                cell_note[v] += " (" + "; ".join(errors[eng]) + ")"

    rows = [v for e in wanted for v in ENGINES[e]]
    head = ["ns per forward"] + ["batch %d" % b for b in batches]
    table = []
    for v in rows:
        if v in times:
            table.append([v] + [fmt_ns(times[v][b]) if b in times[v] else "-" for b in batches])
        else:
            note = cell_note.get(v, "FAILED")
            table.append([v] + [("not installed" if note.startswith("not installed") else "FAILED")]
                         + [""] * (len(batches) - 1))
    ratio = ["carlarl / best other"]
    for b in batches:
        others = [(times[v][b], v) for v in rows if v != "carlarl" and b in times.get(v, {})]
        if "carlarl" in times and b in times["carlarl"] and others:
            best, who = min(others)
            ratio.append("%.2fx (%s)" % (times["carlarl"][b] / best, who))
        else:
            ratio.append("-")
    table.append(ratio)
    widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print("%s, %s, pinned to CPU %s, 1 thread, best of %d x %g ms" % (
        os.path.relpath(onnx, ROOT), ", ".join("b%d" % b for b in batches), pin, a.reps,
        a.target_ms))
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print(line(r))
    print("(ratio < 1: carlarl is faster; the ratio is the number to read, absolute times are"
          " noisy on a VM)")
    notes = [(v, n) for v, n in cell_note.items() if v in rows]
    if notes:
        print("\nnot timed:")
        for v, n in notes:
            print("  %s: %s" % (v, n))
    print("\nengines:")
    for i in infos:
        print("  " + i)
    return 0 if "carlarl" in times or "carlarl" not in wanted else 1


if __name__ == "__main__":
    sys.exit(main())
