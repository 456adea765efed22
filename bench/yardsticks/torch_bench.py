"""torch_bench.py: the torch yardstick (Debian python3-torch; run with /usr/bin/python3, which can
see it). Reads the ONNX file itself (onnx_weights.read_graph, a standard-library protobuf reader)
and turns its nodes one for one into the forward() of a torch.nn.Module, generated as Python
source: Gemm -> F.linear, Conv -> F.conv2d, LayerNormalization -> F.layer_norm,
BatchNormalization -> F.batch_norm, Relu/Tanh/Sigmoid/Erf, Add/Sub/Mul/Div, Clip -> clamp,
Concat -> cat, Flatten, ReduceMean -> mean, Shape/Expand -> expand. So the module is what a
hand-written torch policy of that graph would be, with no interpreter loop per call.
One thread, two variants: "torch-eager" (model(x) under torch.inference_mode) and "torch-jit"
(torch.jit.trace + torch.jit.freeze). Prints the line protocol of common.h; checks every zoo
golden before timing and prints no time on a mismatch.

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


def splitmix_frames(seed, n):
    """Version 2's input (docs/zoo.md "Golden file format"): element i (from 0) is splitmix64
    output i of `seed`, its top 8 bits divided by 255.0 in double and rounded to float32 (the
    struct round trip). splitmix_frames() of tools/make_zoo.py is the reference."""
    m = (1 << 64) - 1
    rnd = struct.Struct("<f")
    xs = []
    for i in range(n):
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        z ^= z >> 31
        xs.append(rnd.unpack(rnd.pack((z >> 56) / 255.0))[0])
    return tuple(xs)


def read_golden(path):
    """(rows, input dims without the batch, out width, x, y) of a [B, ...] -> [B, out] golden
    (format version 1: x stored; version 2: x generated from a stored uint64 seed)."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:4] != b"CRLG":
        raise ValueError("%s: not a golden file" % path)
    ver, rank = struct.unpack_from("<2I", d, 4)
    dims = struct.unpack_from("<%dI" % rank, d, 12)
    off = 12 + 4 * rank
    nout, orank, orows, outw = struct.unpack_from("<4I", d, off)
    off += 16
    if ver not in (1, 2) or rank < 2 or nout != 1 or orank != 2 or orows != dims[0]:
        raise ValueError("%s: not a [B, ...] -> [B, out] golden" % path)
    rows, inw = dims[0], math.prod(dims[1:])
    if ver == 1:
        x = struct.unpack_from("<%df" % (rows * inw), d, off)
        off += 4 * rows * inw
    else:
        (seed,) = struct.unpack_from("<Q", d, off)
        off += 8
        x = splitmix_frames(seed, rows * inw)
    y = struct.unpack_from("<%df" % (rows * outw), d, off)
    if off + 4 * rows * outw != len(d):
        raise ValueError("%s: trailing bytes" % path)
    return rows, tuple(dims[1:]), outw, x, y


def build_module(torch, g):
    """A torch.nn.Module whose forward() is the ONNX graph, node for node (generated source)."""
    F = torch.nn.functional
    consts, lines, names = {}, [], {}

    def ref(t):
        if t in names:
            return names[t]
        if t in g["inits"]:
            dims, data = g["inits"][t]
            key = "c%d" % len(consts)
            consts[key] = torch.tensor(data, dtype=torch.float32).reshape(dims)
            names[t] = "self." + key
            return names[t]
        raise ValueError("tensor %r is used before it is defined" % t)

    def scalar_of(t):
        if t in g["inits"] and len(g["inits"][t][1]) == 1:
            return repr(float(g["inits"][t][1][0]))
        return None

    in_name = g["inputs"][0][0]
    names[in_name] = "x"
    for i, n in enumerate(g["nodes"]):
        op, at, out = n["op"], n["attr"], "t%d" % i
        label = "node %r (op %s)" % (n["name"], op)

        def arg(k, n=n):
            s = scalar_of(n["input"][k])
            return s if s is not None else ref(n["input"][k])

        if op == "Constant":
            dims, data = at["value"]
            g["inits"][n["output"][0]] = (dims, data)  # a constant is an initializer here
            continue
        if op == "Gemm":
            if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
                raise ValueError(label + ": only alpha=beta=1, transA=0")
            w = ref(n["input"][1]) + ("" if at.get("transB", 0) else ".t()")
            b = ref(n["input"][2]) if len(n["input"]) > 2 and n["input"][2] else "None"
            e = "F.linear(%s, %s, %s)" % (ref(n["input"][0]), w, b)
        elif op == "Conv":
            pads = at.get("pads", [0, 0, 0, 0])
            if pads[:2] != pads[2:]:
                raise ValueError(label + ": asymmetric padding")
            b = ref(n["input"][2]) if len(n["input"]) > 2 and n["input"][2] else "None"
            e = "F.conv2d(%s, %s, %s, %s, %s, %s, %d)" % (
                ref(n["input"][0]), ref(n["input"][1]), b, tuple(at.get("strides", [1, 1])),
                tuple(pads[:2]), tuple(at.get("dilations", [1, 1])), at.get("group", 1))
        elif op in ("Relu", "Tanh", "Sigmoid", "Erf"):
            e = "torch.%s(%s)" % (op.lower(), ref(n["input"][0]))
        elif op in ("Add", "Sub", "Mul", "Div"):
            sym = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}[op]
            e = "%s %s %s" % (arg(0), sym, arg(1))
        elif op == "Clip":
            lo = arg(1) if len(n["input"]) > 1 and n["input"][1] else "None"
            hi = arg(2) if len(n["input"]) > 2 and n["input"][2] else "None"
            e = "torch.clamp(%s, %s, %s)" % (ref(n["input"][0]), lo, hi)
        elif op == "Concat":
            e = "torch.cat([%s], %d)" % (", ".join(ref(t) for t in n["input"]), at["axis"])
        elif op == "Flatten":
            e = "torch.flatten(%s, %d)" % (ref(n["input"][0]), at.get("axis", 1))
        elif op == "ReduceMean":
            e = "torch.mean(%s, %s, keepdim=%s)" % (ref(n["input"][0]), tuple(at["axes"]),
                                                    bool(at.get("keepdims", 1)))
        elif op == "Shape":
            e = "%s.shape" % ref(n["input"][0])
        elif op == "Expand":
            e = "%s.expand(%s)" % (ref(n["input"][0]), ref(n["input"][1]))
        elif op == "LayerNormalization":
            ax = at.get("axis", -1)
            b = ref(n["input"][2]) if len(n["input"]) > 2 else "None"
            e = "F.layer_norm(%s, %s.shape[%d:], %s, %s, %r)" % (
                ref(n["input"][0]), ref(n["input"][0]), ax, ref(n["input"][1]), b,
                at.get("epsilon", 1e-5))
        elif op == "BatchNormalization":
            xs, sc, bi, mu, var = (ref(t) for t in n["input"][:5])
            e = "F.batch_norm(%s, %s, %s, %s, %s, False, 0.0, %r)" % (
                xs, mu, var, sc, bi, at.get("epsilon", 1e-5))
        else:
            raise ValueError(label + ": op not mapped to torch")
        lines.append("    %s = %s" % (out, e))
        names[n["output"][0]] = out
    lines.append("    return %s" % ref(g["outputs"][0]))
    src = "def forward(self, x):\n" + "\n".join(lines) + "\n"
    ns = {"torch": torch, "F": F}
    exec(compile(src, "<onnx %s>" % g["outputs"][0], "exec"), ns)

    class OnnxModule(torch.nn.Module):
        forward = ns["forward"]

    m = OnnxModule()
    for k, v in consts.items():
        m.register_buffer(k, v)
    return m.eval(), src


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
    goldens = [read_golden(os.path.join(a.golden, "golden_b%d.bin" % n)) for n in (1, 7, 64)]
    gbig = max(goldens, key=lambda gl: gl[0])
    eager, _ = build_module(torch, onnx_weights.read_graph(a.onnx))
    in_dims = gbig[1]
    with torch.no_grad():
        jit = torch.jit.freeze(torch.jit.trace(eager, torch.zeros((8,) + in_dims)))
    print("info torch %s, %d thread(s), module generated from the ONNX nodes"
          % (torch.__version__, torch.get_num_threads()))
    batches = [int(b) for b in a.batches.split(",")]
    rc = 0
    for name, model in (("torch-eager", eager), ("torch-jit", jit)):

        def fwd(x, model=model):
            with torch.inference_mode():
                return model(x)

        ok = True
        for rows, gin, gout, gx, gy in goldens:
            y = fwd(torch.tensor(gx, dtype=torch.float32).reshape((rows,) + gin))
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
        brows, gin = gbig[0], gbig[1]
        base = torch.tensor(gbig[3], dtype=torch.float32).reshape((brows,) + gin)
        for b in batches:
            x = base[torch.arange(b) % brows].contiguous()
            print("time %s %d %.1f" % (name, b, best_ns(fwd, x, a.reps, int(a.target_ms * 1e6))),
                  flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
