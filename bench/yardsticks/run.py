#!/usr/bin/env python3
"""run.py: carlarl's runtime against OpenBLAS, oneDNN, torch and ONNX Runtime on every zoo model.

Builds what it needs (CMake build dir build/bench-yardsticks with -DCRL_BENCH=ON; ONNX Runtime
from npm into build/bench-node/ with ONNXRUNTIME_NODE_INSTALL=skip). For each zoo model
(tests/data/zoo/<name>/) carlarl, torch and ORT read model.onnx themselves; for OpenBLAS and
oneDNN, which cannot, onnx_weights.py turns the graph into a plan (a short sequence of dense /
conv / layernorm / activation / head layers) that their drivers run with that library doing the
compute. Every engine runs pinned to one CPU with one thread and first checks its output against
the zoo goldens (golden_b1/_b7/_b64); one that disagrees by more than 1e-4 gets no time. Prints,
per model, ns per forward at each batch size, the best other engine and carlarl's ratio to it,
and a line against issue 4's goals. A missing engine is "not installed" (tools/install-deps.sh
--bench installs the Debian ones). Standard library only; see docs/performance.md.

    bench/yardsticks/run.py                              # every zoo model, batch 1 8 64 256
    bench/yardsticks/run.py --models example_mlp,nature_cnn --json out.json
    bench/yardsticks/run.py --reps 11 --target-ms 50     # longer, steadier
    bench/yardsticks/run.py --engines carlarl,openblas --no-build
"""

import argparse
import json
import platform
import time
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import onnx_weights  # noqa: E402

TOL = 1e-4
ZOO = os.path.join(ROOT, "tests", "data", "zoo")
BUDGET_B1_NS = 150  # issue 4: the example MLP at batch 1 with AVX-512
RATIO_GOAL = 1.1  # issue 4: within 1.1x of the best other engine at batch >= 64
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


def short_note(note):
    """The cell text of a variant that was not timed (the full reason goes under the table)."""
    if note.startswith("n/a"):
        return note.split(":")[0]
    if note.startswith("not installed"):
        return "not installed"
    return "FAILED"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def parse_records(recs, eng, variants):
    """(times {variant: {batch: ns}}, notes {variant: text}, infos, golden errors) of a driver."""
    times, checks, errors, infos = {}, {}, {}, []
    for r in recs:
        if len(r) < 3:
            continue
        kind, var = r[0], r[1]
        rest = " ".join(r[2:])
        if kind == "info":
            infos.append("%s: %s" % (var, rest))
        elif kind == "check":
            try:
                checks.setdefault(var, []).append(float(r[3]) if len(r) > 3 else float("inf"))
            except ValueError:
                checks.setdefault(var, []).append(float("inf"))
        elif kind == "error":
            errors.setdefault(var, []).append(rest)
        elif kind == "time" and len(r) > 3:
            times.setdefault(var, {})[int(r[2])] = float(r[3])
    return times, checks, errors, infos


def run_one(a, res, eng, cmd, why, plan_note, env, pin, batches, label):
    """Runs one engine's driver on one model and merges its times into res (the best per
    batch over passes) or its reason for no time into res["notes"]."""
    times, notes = res["times"], res["notes"]
    variants = ENGINES[eng]
    if why is None and eng in ("openblas", "onednn") and plan_note:
        why = plan_note
    if why is not None:
        for v in variants:
            notes[v] = why
        return
    log("%s: running %s (pinned to CPU %s)" % (label, eng, pin))
    t0 = time.monotonic()
    recs, err, rc = run_engine(cmd, env, pin)
    log("%s: %s took %.1f s" % (label, eng, time.monotonic() - t0))
    t, checks, errors, infos = parse_records(recs, eng, variants)
    res["infos"] += [i for i in infos if i not in res["infos"]]
    for v in variants:
        missing = [e for e in errors.get(v, []) + errors.get(eng, []) if "not installed" in e]
        if missing:
            notes[v] = missing[0][missing[0].find("not installed"):]
        elif errors.get(v):
            notes[v] = "FAILED: " + "; ".join(errors[v])
        elif len(checks.get(v, [])) < 3 or max(checks[v]) > TOL:  # b1, b7 and b64
            notes[v] = "FAILED: golden check missing or over %g (rc %d; %s)" % (TOL, rc, err)
        elif not t.get(v) or any(b not in t[v] for b in batches):
            notes[v] = "FAILED: no time (rc %d; %s)" % (rc, err)
        else:
            best = times.setdefault(v, {})
            for b, ns in t[v].items():
                best[b] = min(ns, best.get(b, ns))
            res["golden_max_abs_err"][v] = max(checks[v] + [res["golden_max_abs_err"].get(v, 0)])
            continue
        if eng != v and errors.get(eng):
            notes[v] += " (" + "; ".join(errors[eng]) + ")"


def run_model(a, model_dir, wanted, status, env, pin, batches):
    """Runs every wanted engine on one zoo model; returns its result dict."""
    name = os.path.basename(os.path.normpath(model_dir))
    onnx = os.path.join(model_dir, "model.onnx")
    res = {"model": name, "onnx": os.path.relpath(onnx, ROOT), "times": {}, "notes": {},
           "infos": [], "golden_max_abs_err": {}}
    plan_file, plan_note = os.path.join(a.build_dir, name + ".plan"), None
    try:
        plan = onnx_weights.make_plan(onnx_weights.read_graph(onnx))
        onnx_weights.write_plan(plan, plan_file)
        res["plan"] = onnx_weights.describe(plan)
    except (ValueError, KeyError, OSError) as e:
        plan_note = "n/a (no plan): %s" % e
        res["plan"] = None
    common = ["--golden", model_dir, "--batches", ",".join(map(str, batches)), "--reps",
              str(a.reps), "--target-ms", str(a.target_ms)]
    drivers = {
        "carlarl": [os.path.join(a.build_dir, "bench", "yardstick_carlarl"), "--onnx", onnx],
        "openblas": [os.path.join(a.build_dir, "bench", "yardstick_openblas"), "--plan",
                     plan_file],
        "onednn": [os.path.join(a.build_dir, "bench", "yardstick_onednn"), "--plan", plan_file],
        "torch": [a.python, os.path.join(HERE, "torch_bench.py"), "--onnx", onnx],
        "ort": ["node", os.path.join(HERE, "ort_bench.js"), "--node-dir", a.node_dir,
                "--onnx", onnx],
    }
    times, notes = res["times"], res["notes"]
    for p in range(a.passes):
        for eng in wanted:
            run_one(a, res, eng, drivers[eng] + common, status[eng], plan_note, env, pin,
                    batches, "%s pass %d/%d" % (name, p + 1, a.passes) if a.passes > 1 else name)
    for v in list(times):
        if v in notes:  # timed in one pass, failed in another: no time
            times.pop(v)
    rows = [v for e in wanted for v in ENGINES[e]]
    res["variants"] = rows
    res["best_other"], res["ratio"] = {}, {}
    for b in batches:
        others = [(times[v][b], v) for v in rows if v != "carlarl" and b in times.get(v, {})]
        if others:
            res["best_other"][b] = min(others)
            if "carlarl" in times:
                res["ratio"][b] = times["carlarl"][b] / min(others)[0]
    return res


def goals(res, batches, avx512):
    """Issue 4's goals for one model: {"b1_fastest", "b1_budget", "large_within"} + a line."""
    r, parts, g = res["ratio"], [], {}
    if 1 in batches:
        if 1 in r:
            g["b1_fastest"] = r[1] < 1.0
            parts.append("b1 fastest: %s (%.2fx %s)" % ("yes" if r[1] < 1.0 else "NO", r[1],
                                                          res["best_other"][1][1]))
        else:
            parts.append("b1 fastest: -")
        if res["model"] == "example_mlp" and "carlarl" in res["times"]:
            ns = res["times"]["carlarl"][1]
            if avx512:
                g["b1_budget"] = ns <= BUDGET_B1_NS
                parts.append("b1 <= %d ns: %s (%s ns)" % (BUDGET_B1_NS, "yes" if ns <= BUDGET_B1_NS
                                                          else "NO", fmt_ns(ns)))
            else:
                parts.append("b1 <= %d ns: n/a (no AVX-512 table)" % BUDGET_B1_NS)
    large = [b for b in batches if b >= 64]
    if large:
        within = [(b, r[b]) for b in large if b in r]
        ok = len(within) == len(large) and all(x <= RATIO_GOAL for _, x in within)
        if len(within) == len(large):
            g["large_within"] = ok
        parts.append("b>=64 within %.1fx: %s (%s)" % (
            RATIO_GOAL, "yes" if ok else ("NO" if within else "-"),
            ", ".join("b%d %.2fx" % bx for bx in within) or "no ratio"))
    res["goals"] = g
    return "; ".join(parts)


def print_table(res, batches, a, pin):
    rows = res["variants"]
    times, notes = res["times"], res["notes"]
    head = ["batch"] + rows + ["best other", "carlarl / best"]
    table = []
    for b in batches:
        line = [str(b)]
        for v in rows:
            line.append(fmt_ns(times[v][b]) if v in times and b in times[v]
                        else short_note(notes.get(v, "FAILED")))
        bo = res["best_other"].get(b)
        line.append("%s (%s)" % (fmt_ns(bo[0]), bo[1]) if bo else "-")
        line.append("%.2fx" % res["ratio"][b] if b in res["ratio"] else "-")
        table.append(line)
    widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print("\n%s (%s): ns per forward, pinned to CPU %s, 1 thread, best of %s%d x %g ms" % (
        res["model"], res["onnx"], pin, "%d passes x " % a.passes if a.passes > 1 else "",
        a.reps, a.target_ms))
    if res.get("plan"):
        print("plan for openblas/onednn: " + res["plan"])
    print(fmt(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print(fmt(r))
    print("goals: " + res["goals_line"])
    nt = [(v, n) for v, n in notes.items() if v in rows]
    if nt:
        print("not timed:")
        for v, n in nt:
            print("  %s: %s" % (v, n))


def model_dirs(spec):
    if spec == "all":
        names = sorted(d for d in os.listdir(ZOO)
                       if os.path.exists(os.path.join(ZOO, d, "model.onnx")))
        return [os.path.join(ZOO, d) for d in names]
    out = []
    for m in spec.split(","):
        m = m.strip()
        if m:
            out.append(m if os.path.isdir(m) else os.path.join(ZOO, m))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="all",
                    help="'all' (every tests/data/zoo model) or a comma list of zoo names or "
                    "model directories (model.onnx + golden_b1/_b7/_b64.bin)")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--reps", type=int, default=5, help="repetitions; the best one counts")
    ap.add_argument("--target-ms", type=float, default=15, help="length of one repetition")
    ap.add_argument("--passes", type=int, default=1,
                    help="run every engine this many times, interleaved, and keep each cell's"
                    " best (steadier on a noisy machine)")
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
    ap.add_argument("--json", metavar="FILE", help="also write every number to FILE as JSON")
    ap.add_argument("--no-build", action="store_true", help="use the drivers already built")
    ap.add_argument("--no-npm", action="store_true", help="never run npm install")
    a = ap.parse_args()
    wanted = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in wanted:
        if e not in ENGINES:
            ap.error("unknown engine %r (have %s)" % (e, ", ".join(ENGINES)))
    if a.passes < 1 or a.reps < 1:
        ap.error("--passes and --reps must be >= 1")
    batches = [int(b) for b in a.batches.split(",")]
    if not batches or min(batches) < 1 or max(batches) > 256:
        ap.error("batches must be 1..256")
    models = model_dirs(a.models)
    for m in models:
        if not os.path.exists(os.path.join(m, "model.onnx")):
            ap.error("%s has no model.onnx" % m)
    pin = a.cpu if a.cpu is not None else (1 if (os.cpu_count() or 1) > 1 else 0)
    if shutil.which("taskset") is None:
        log("taskset missing: engines run unpinned")
        pin = None

    t_start = time.monotonic()
    os.makedirs(a.build_dir, exist_ok=True)
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
    # AVX-512 target (docs: dependency lab section 4). Only on a CPU that has AVX-512, or it would
    # die of SIGILL. This overrides an OPENBLAS_CORETYPE inherited from the environment (some
    # shells here export Haswell).
    avx512 = cpu_has("avx512f")
    core = a.openblas_coretype
    if core is None and avx512:
        core = "SkylakeX"
    if core:
        if env.get("OPENBLAS_CORETYPE", core) != core:
            log("OPENBLAS_CORETYPE=%s from the environment replaced by %s"
                % (env["OPENBLAS_CORETYPE"], core))
        env["OPENBLAS_CORETYPE"] = core

    results = []
    for m in models:
        res = run_model(a, m, wanted, status, env, pin, batches)
        res["goals_line"] = goals(res, batches, avx512)
        results.append(res)
        print_table(res, batches, a, pin)
        sys.stdout.flush()

    print("\nsummary (issue 4: fastest at batch 1; example MLP <= %d ns with AVX-512; within "
          "%.1fx of the best at batch >= 64):" % (BUDGET_B1_NS, RATIO_GOAL))
    w = max(len(r["model"]) for r in results)
    for r in results:
        print("  %s  %s" % (r["model"].ljust(w), r["goals_line"]))
    print("(ratio < 1: carlarl is faster; read the ratios, absolute times are noisy on a VM)")
    infos = sorted({i for r in results for i in r["infos"]
                    if not i.startswith(("onednn-matmul: dense", "onednn-ip: dense",
                                         "onednn-matmul: conv", "onednn-ip: conv"))})
    print("\nengines:")
    for i in infos:
        print("  " + i)
    elapsed = time.monotonic() - t_start
    print("total %.0f s" % elapsed)
    if a.json:
        doc = {"cpu": cpu_model(), "avx512": avx512, "openblas_coretype": core, "pin": pin,
               "batches": batches, "passes": a.passes, "reps": a.reps, "target_ms": a.target_ms,
               "engines": wanted, "seconds": round(elapsed, 1),
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "models": []}
        for r in results:
            doc["models"].append({
                "model": r["model"], "onnx": r["onnx"], "plan": r["plan"],
                "ns_per_forward": {v: {str(b): t for b, t in bt.items()}
                                   for v, bt in r["times"].items()},
                "not_timed": r["notes"],
                "best_other": {str(b): {"engine": v, "ns": t}
                               for b, (t, v) in r["best_other"].items()},
                "ratio": {str(b): x for b, x in r["ratio"].items()},
                "goals": r["goals"], "goals_line": r["goals_line"],
                "golden_max_abs_err": r["golden_max_abs_err"], "infos": r["infos"]})
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        log("wrote " + a.json)
    return 0 if all("carlarl" in r["times"] for r in results) or "carlarl" not in wanted else 1


if __name__ == "__main__":
    sys.exit(main())
