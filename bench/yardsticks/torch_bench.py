"""torch_bench.py: the torch yardstick (Debian python3-torch; run with /usr/bin/python3, which can
see it). Builds nn.Sequential(Linear, ReLU, Linear, ReLU, Linear, Tanh) from the ONNX file's
weights (onnx_weights.py), one thread, and times two variants: "torch-eager" (model(x) under
torch.inference_mode) and "torch-jit" (torch.jit.trace + torch.jit.freeze). Prints the line
protocol of common.h; checks every zoo golden before timing and prints no time on a mismatch.

    /usr/bin/python3 torch_bench.py --onnx model.onnx --golden DIR [--batches 1,8,64,256]
"""

import argparse
import math
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_weights  # noqa: E402

TOL = 1e-4


def read_golden(path):
    with open(path, "rb") as f:
        d = f.read()
    if d[:4] != b"CRLG":
        raise ValueError("%s: not a golden file" % path)
    ver, rank, rows, inw, nout, orank, orows, outw = struct.unpack_from("<8I", d, 4)
    if ver != 1 or rank != 2 or nout != 1 or orank != 2 or orows != rows:
        raise ValueError("%s: not a [B, in] -> [B, out] golden" % path)
    off = 36
    x = struct.unpack_from("<%df" % (rows * inw), d, off)
    off += 4 * rows * inw
    y = struct.unpack_from("<%df" % (rows * outw), d, off)
    if off + 4 * rows * outw != len(d):
        raise ValueError("%s: trailing bytes" % path)
    return rows, inw, outw, x, y


def best_ns(fn, x, reps, target_ns):
    iters = 1
    while True:  # calibrate (and warm up)
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            fn(x)
        if time.perf_counter_ns() - t0 >= target_ns // 2 or iters >= 1 << 24:
            break
        iters *= 2
    iters *= 2
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            fn(x)
        best = min(best, (time.perf_counter_ns() - t0) / iters)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--target-ms", type=float, default=20)
    a = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print("error torch not installed (%s): tools/install-deps.sh --bench" % e)
        return 3
    torch.set_num_threads(1)
    layers = onnx_weights.read_layers(a.onnx)
    mods = []
    for w, b, inn, out, act in layers:
        lin = torch.nn.Linear(inn, out)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w, dtype=torch.float32).reshape(out, inn))
            lin.bias.copy_(torch.tensor(b, dtype=torch.float32))
        mods.append(lin)
        if act == 1:
            mods.append(torch.nn.ReLU())
        elif act == 2:
            mods.append(torch.nn.Tanh())
    eager = torch.nn.Sequential(*mods).eval()
    inw = layers[0][2]
    with torch.no_grad():
        jit = torch.jit.freeze(torch.jit.trace(eager, torch.zeros(8, inw)))
    print("info torch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()))

    goldens = [read_golden(os.path.join(a.golden, "golden_b%d.bin" % n)) for n in (1, 7, 64)]
    g64 = goldens[2]
    batches = [int(b) for b in a.batches.split(",")]
    rc = 0
    for name, model in (("torch-eager", eager), ("torch-jit", jit)):

        def fwd(x, model=model):
            with torch.inference_mode():
                return model(x)

        ok = True
        for rows, gin, gout, gx, gy in goldens:
            y = fwd(torch.tensor(gx, dtype=torch.float32).reshape(rows, gin))
            ref = torch.tensor(gy, dtype=torch.float32).reshape(rows, gout)
            err = (y - ref).abs().max().item() if y.shape == ref.shape else math.inf
            if math.isnan(err):
                err = math.inf
            print("check %s %d %.3g" % (name, rows, err))
            if not err <= TOL:
                print("error %s disagrees with golden_b%d: max abs error %.3g > %g, not timed"
                      % (name, rows, err, TOL))
                ok = False
        if not ok:
            rc = 1
            continue
        rows64, gin = g64[0], g64[1]
        base = torch.tensor(g64[3], dtype=torch.float32).reshape(rows64, gin)
        for b in batches:
            x = base[torch.arange(b) % rows64].contiguous()
            print("time %s %d %.1f" % (name, b, best_ns(fwd, x, a.reps, int(a.target_ms * 1e6))),
                  flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
