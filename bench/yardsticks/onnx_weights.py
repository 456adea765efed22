"""onnx_weights.py: reads a zoo model's ONNX file with nothing but the standard library and writes
the "plan" the OpenBLAS and oneDNN yardsticks run (they cannot read ONNX themselves).

It decodes just the protobuf fields it needs (ModelProto.graph; GraphProto.node, .initializer,
.input, .output; NodeProto.op_type/input/output/attribute; AttributeProto f/i/t/floats/ints;
TensorProto dims/data_type/float_data/int64_data/raw_data; the input's ValueInfo shape) into
plain Python (read_graph), which torch_bench.py also uses to build its torch module. Then
make_plan() maps the graph onto a short sequence of layers by matching the few structures the
zoo contains, and refuses anything else, naming the node:

    Gemm (+ Relu/Tanh/Sigmoid)          -> DENSE (activation fused)
    Conv (+ Relu ...)                   -> CONV  (NCHW, its output is already C-order flat)
    Flatten                             -> nothing (data is already [rows][C*H*W])
    BatchNormalization after a Gemm     -> folded into that DENSE (W' = W*s, b' = (b-mean)*s+beta)
    LayerNormalization (last axis)      -> LAYERNORM
    x * (erf(x / sqrt2) + 1) * 0.5      -> ACT gelu (torch 1.13's exact-GELU decomposition)
    two Gemm heads on one tensor        -> one DENSE with both weight blocks stacked, ordered as
                                           the join below consumes them (same FLOPs, one GEMM)
    Clip of one head, Concat of heads   -> CLIP_COLS on that head's columns; the concat is free
    Concat(x, Expand(const, Shape(x)))  -> CONCAT_CONST (append constant columns per row)
    Add(v, a) - ReduceMean(a)           -> DUELING (q = v + a - mean(a))

The drivers check the result against the goldens before timing, so a wrong mapping gets no time.

    python3 onnx_weights.py model.onnx out.plan      # writes the CRLP file common.h reads

CRLP (little-endian): "CRLP", u32 version 2, u32 input width (per row, flattened), u32 ops, then
per op u32 kind and its fields (all u32 unless noted; float arrays are float32):
  1 DENSE        in, out, act; W [out][in], b [out]
  2 CONV         C, H, W, M, kh, kw, sh, sw, pt, pl, pb, pr, act; W [M][C][kh][kw], b [M]
  3 LAYERNORM    n, act; f32 eps; gamma [n], beta [n]
  4 ACT          width, act
  5 CLIP_COLS    width, from, to; f32 lo, hi
  6 CONCAT_CONST width, n; f32 values [n]            (output width + n)
  7 DUELING      width, vcol, afrom, ato             (output width ato - afrom)
act: 0 none, 1 relu, 2 tanh, 3 sigmoid, 4 gelu (erf form).
"""

import math
import struct
import sys

ACT = {"Relu": 1, "Tanh": 2, "Sigmoid": 3}
ACT_GELU = 4
K_DENSE, K_CONV, K_LAYERNORM, K_ACT, K_CLIP, K_CONCAT_CONST, K_DUELING = range(1, 8)


def _varint(buf, i):
    shift = v = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field %d" % num)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, v


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wt, v):
    """A repeated int64 field: packed (wire type 2) or one value."""
    if wt != 2:
        return [_signed(v)]
    out, j = [], 0
    while j < len(v):
        d, j = _varint(v, j)
        out.append(_signed(d))
    return out


def _tensor(buf):
    """(name, dims, flat values) of a float32 or int64 TensorProto."""
    dims, dtype, name, vals, raw = [], None, "", [], None
    for num, wt, v in _fields(buf):
        if num == 1:
            dims.extend(_ints(wt, v))
        elif num == 2:
            dtype = v
        elif num == 4:
            vals.extend(struct.unpack("<%df" % (len(v) // 4), v) if wt == 2
                        else struct.unpack("<f", v))
        elif num == 7:
            vals.extend(_ints(wt, v))
        elif num == 8:
            name = v.decode()
        elif num == 9:
            raw = v
    n = 1
    for d in dims:
        n *= d
    if dtype == 1:
        data = list(struct.unpack("<%df" % n, raw)) if raw is not None else vals
    elif dtype == 7:
        data = list(struct.unpack("<%dq" % n, raw)) if raw is not None else vals
    else:
        raise ValueError("tensor %r: data_type %s is not float32 or int64" % (name, dtype))
    if len(data) != n:
        raise ValueError("tensor %r has %d values for dims %s" % (name, len(data), dims))
    return name, dims, data


def _node(buf):
    node = {"input": [], "output": [], "op": "", "name": "", "attr": {}}
    for num, _, v in _fields(buf):
        if num == 1:
            node["input"].append(v.decode())
        elif num == 2:
            node["output"].append(v.decode())
        elif num == 3:
            node["name"] = v.decode()
        elif num == 4:
            node["op"] = v.decode()
        elif num == 5:
            aname, aval = "", None
            for an, awt, av in _fields(v):
                if an == 1:
                    aname = av.decode()
                elif an == 2:
                    aval = struct.unpack("<f", av)[0]
                elif an == 3:
                    aval = _signed(av)
                elif an == 5:
                    aval = _tensor(av)[1:]  # (dims, data)
                elif an == 7:
                    aval = (aval or []) + list(
                        struct.unpack("<%df" % (len(av) // 4), av) if awt == 2
                        else struct.unpack("<f", av))
                elif an == 8:
                    aval = (aval or []) + _ints(awt, av)
            node["attr"][aname] = aval
    return node


def _value_info(buf):
    """(name, dims) of a ValueInfoProto; a symbolic dimension is None."""
    name, dims = "", []
    for num, _, v in _fields(buf):
        if num == 1:
            name = v.decode()
        elif num == 2:
            for tn, _, tv in _fields(v):
                if tn != 1:  # tensor_type
                    continue
                for sn, _, sv in _fields(tv):
                    if sn != 2:  # shape
                        continue
                    for dn, _, dv in _fields(sv):
                        if dn == 1:
                            d = None
                            for en, _, ev in _fields(dv):
                                if en == 1:
                                    d = ev
                            dims.append(d)
    return name, dims


def read_graph(path):
    """{"inputs": [(name, dims)], "outputs": [name], "inits": {name: (dims, data)},
    "nodes": [{"op", "name", "input", "output", "attr"}]} of the ONNX file."""
    with open(path, "rb") as f:
        model = f.read()
    graph = next((v for num, _, v in _fields(model) if num == 7), None)
    if graph is None:
        raise ValueError("%s: no graph" % path)
    g = {"inputs": [], "outputs": [], "inits": {}, "nodes": []}
    for num, _, v in _fields(graph):
        if num == 1:
            g["nodes"].append(_node(v))
        elif num == 5:
            name, dims, data = _tensor(v)
            g["inits"][name] = (dims, data)
        elif num == 11:
            g["inputs"].append(_value_info(v))
        elif num == 12:
            g["outputs"].append(_value_info(v)[0])
    g["inputs"] = [i for i in g["inputs"] if i[0] not in g["inits"]]
    if len(g["inputs"]) != 1 or len(g["outputs"]) != 1:
        raise ValueError("%s: needs one input and one output" % path)
    return g


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------

class _Main:
    """The tensor the plan's layers produce in turn: width (per row) and, after a Conv, C/H/W."""

    def __init__(self, shape):
        self.id = 0
        self.shape = shape  # [width] or [C, H, W]

    @property
    def width(self):
        return math.prod(self.shape)


def make_plan(g):
    """Maps the graph onto plan ops (see the module doc); raises ValueError naming the node."""
    nodes, inits = g["nodes"], g["inits"]
    in_name, in_dims = g["inputs"][0]
    if any(d is None or d <= 0 for d in in_dims[1:]):
        raise ValueError("input %r has symbolic non-batch dimensions %s" % (in_name, in_dims))
    consumers = {}
    for i, n in enumerate(nodes):
        for k, t in enumerate(n["input"]):
            consumers.setdefault(t, []).append((i, k))
    main = _Main(list(in_dims[1:]))
    ops = []
    # value of every tensor name: ("slice", main id, lo, hi) of the current main tensor,
    # ("const", dims, data), ("shape", main id), ("bconst", data): a constant row to every row,
    # ("gelu", stage, slice), ("dueling_add", v slice, a slice), ("mean", a slice)
    val = {in_name: ("slice", 0, 0, main.width)}
    for name, (dims, data) in inits.items():
        val[name] = ("const", dims, data)
    merged = set()  # Gemm nodes already emitted as part of a merged head

    def new_main(shape):
        main.id += 1
        main.shape = shape
        return ("slice", main.id, 0, main.width)

    def full(v, label):
        if v is None or v[0] != "slice" or v[1] != main.id or (v[2], v[3]) != (0, main.width):
            raise ValueError(label + ": input is not the whole current tensor")

    def cur_slice(v, label):
        if v is None or v[0] != "slice" or v[1] != main.id:
            raise ValueError(label + ": input is not (a column slice of) the current tensor")
        return v[2], v[3]

    def scalar(v, label):
        if v is None or v[0] != "const" or len(v[2]) != 1:
            raise ValueError(label + ": expects a scalar constant")
        return float(v[2][0])

    def gemm_weights(n, label):
        at = n["attr"]
        if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
            raise ValueError(label + ": only alpha=beta=1, transA=0 is supported")
        if len(n["input"]) < 2 or n["input"][1] not in inits:
            raise ValueError(label + ": weight is not an initializer")
        dims, w = inits[n["input"][1]]
        if len(dims) != 2:
            raise ValueError(label + ": weight is not 2-D")
        if at.get("transB", 0):
            out, inn = dims
        else:  # W is [in][out]: transpose into [out][in]
            inn, out = dims
            w = [w[i * out + o] for o in range(out) for i in range(inn)]
        b = [0.0] * out
        if len(n["input"]) > 2 and n["input"][2]:
            b = inits.get(n["input"][2], (None, None))[1]
            if b is None or len(b) != out:
                raise ValueError(label + ": bias is not a [%d] initializer" % out)
        return list(w), list(b), inn, out

    def join_rank(t):
        """Where head output t ends up: (node index, input index) of the first node that joins
        it with another tensor, following single-input elementwise nodes (Clip) down."""
        seen = 0
        while seen < 8:
            cs = consumers.get(t, [])
            joins = [(i, k) for i, k in cs if nodes[i]["op"] in ("Concat", "Add", "Sub")]
            if joins:
                return min(joins)
            if len(cs) != 1:
                break
            t = nodes[cs[0][0]]["output"][0]
            seen += 1
        return (len(nodes), 0)

    def last_fusable(v):
        """The last op, if it produced v (the whole current tensor) and has no activation."""
        if ops and v[0] == "slice" and v[1] == main.id and ops[-1]["kind"] in (
                K_DENSE, K_CONV, K_LAYERNORM) and ops[-1]["act"] == 0 and \
                (v[2], v[3]) == (0, main.width):
            return ops[-1]
        return None

    for idx, n in enumerate(nodes):
        label = "node %r (op %s)" % (n["name"], n["op"])
        op, ins, out = n["op"], [val.get(t) for t in n["input"]], n["output"][0]
        if op == "Constant":
            dims, data = n["attr"]["value"]
            val[out] = ("const", dims, data)
        elif op == "Flatten":
            full(ins[0], label)
            if n["attr"].get("axis", 1) != 1:
                raise ValueError(label + ": only axis 1")
            main.shape = [main.width]  # same data, same id: only the shape changes
            val[out] = ins[0]
        elif op == "Gemm":
            if idx in merged:
                continue
            full(ins[0], label)
            if len(main.shape) != 1:
                raise ValueError(label + ": Gemm on a [C,H,W] tensor without Flatten")
            heads = sorted((i for i, k in consumers[n["input"][0]]
                            if k == 0 and nodes[i]["op"] == "Gemm"),
                           key=lambda i: join_rank(nodes[i]["output"][0]))
            ws, bs, cols, lo = [], [], [], 0
            for i in heads:
                w, b, inn, o = gemm_weights(nodes[i], label)
                if inn != main.width:
                    raise ValueError(label + ": takes %d features, the tensor has %d"
                                     % (inn, main.width))
                ws += w
                bs += b
                cols.append((i, lo, lo + o))
                lo += o
                merged.add(i)
            ops.append({"kind": K_DENSE, "in": main.width, "out": lo, "act": 0, "w": ws,
                        "b": bs, "heads": len(heads)})
            new_main([lo])
            for i, a, z in cols:
                val[nodes[i]["output"][0]] = ("slice", main.id, a, z)
        elif op == "Conv":
            full(ins[0], label)
            at = n["attr"]
            if len(main.shape) != 3 or at.get("group", 1) != 1 or \
                    any(d != 1 for d in at.get("dilations", [1, 1])):
                raise ValueError(label + ": only 2-D NCHW, group 1, dilation 1")
            wdims, w = inits[n["input"][1]]
            c, h, wd = main.shape
            m, wc, kh, kw = wdims
            if wc != c:
                raise ValueError(label + ": weight has %d channels, input %d" % (wc, c))
            sh, sw = at.get("strides", [1, 1])
            pt, pl, pb, pr = at.get("pads", [0, 0, 0, 0])
            if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", None):
                raise ValueError(label + ": auto_pad")
            b = inits[n["input"][2]][1] if len(n["input"]) > 2 and n["input"][2] else [0.0] * m
            oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
            ops.append({"kind": K_CONV, "chw": [c, h, wd], "m": m, "k": [kh, kw],
                        "s": [sh, sw], "p": [pt, pl, pb, pr], "act": 0, "w": list(w),
                        "b": list(b)})
            val[out] = new_main([m, oh, ow])
        elif op in ACT:
            full(ins[0], label)
            f = last_fusable(ins[0])
            if f is not None:
                f["act"] = ACT[op]
            else:
                ops.append({"kind": K_ACT, "width": main.width, "act": ACT[op]})
            val[out] = ins[0]
        elif op == "BatchNormalization":
            full(ins[0], label)
            f = last_fusable(ins[0])
            if f is None or f["kind"] != K_DENSE or len(consumers.get(n["input"][0], [])) != 1:
                raise ValueError(label + ": only a BatchNormalization right after a Gemm")
            eps = n["attr"].get("epsilon", 1e-5)
            gam, bet, mean, var = (inits[t][1] for t in n["input"][1:5])
            s = [gm / math.sqrt(vr + eps) for gm, vr in zip(gam, var)]
            k = f["in"]
            f["w"] = [f["w"][o * k + i] * s[o] for o in range(f["out"]) for i in range(k)]
            f["b"] = [(f["b"][o] - mean[o]) * s[o] + bet[o] for o in range(f["out"])]
            f["bn"] = True
            val[out] = ins[0]
        elif op == "LayerNormalization":
            full(ins[0], label)
            if n["attr"].get("axis", -1) not in (-1, len(main.shape)) or len(main.shape) != 1:
                raise ValueError(label + ": only over the last axis of a [rows, n] tensor")
            gam = inits[n["input"][1]][1]
            bet = inits[n["input"][2]][1] if len(n["input"]) > 2 else [0.0] * main.width
            ops.append({"kind": K_LAYERNORM, "n": main.width, "act": 0,
                        "eps": n["attr"].get("epsilon", 1e-5), "gamma": list(gam),
                        "beta": list(bet)})
            val[out] = new_main([main.width])
        # exact GELU: Div(x, sqrt2) -> Erf -> Add 1 -> Mul x -> Mul 0.5
        elif op == "Div" and ins[1] and ins[1][0] == "const":
            full(ins[0], label)
            if abs(scalar(ins[1], label) - math.sqrt(2)) > 1e-6:
                raise ValueError(label + ": only x / sqrt(2) of a GELU")
            val[out] = ("gelu", 1, ins[0])
        elif op == "Erf" and ins[0] and ins[0][:2] == ("gelu", 1):
            val[out] = ("gelu", 2, ins[0][2])
        elif op == "Add" and ins[0] and ins[0][:2] == ("gelu", 2):
            if scalar(ins[1], label) != 1.0:
                raise ValueError(label + ": only erf(.) + 1 of a GELU")
            val[out] = ("gelu", 3, ins[0][2])
        elif op == "Mul" and any(v and v[:2] == ("gelu", 3) for v in ins):
            g3 = next(v for v in ins if v and v[:2] == ("gelu", 3))
            other = ins[1] if ins[0] is g3 else ins[0]
            if other != g3[2]:
                raise ValueError(label + ": only x * (erf(x / sqrt2) + 1) of a GELU")
            val[out] = ("gelu", 4, g3[2])
        elif op == "Mul" and ins[0] and ins[0][:2] == ("gelu", 4):
            if scalar(ins[1], label) != 0.5:
                raise ValueError(label + ": only (.) * 0.5 of a GELU")
            x = ins[0][2]
            full(x, label)
            f = last_fusable(x)
            if f is not None and f["kind"] == K_LAYERNORM:
                f["act"] = ACT_GELU
            else:
                ops.append({"kind": K_ACT, "width": main.width, "act": ACT_GELU})
            val[out] = x
        elif op == "Clip":
            lo_c, hi_c = cur_slice(ins[0], label)
            if len(consumers.get(n["input"][0], [])) != 1:
                raise ValueError(label + ": clipped tensor is also used unclipped")
            lo = scalar(ins[1], label) if len(ins) > 1 and ins[1] else -math.inf
            hi = scalar(ins[2], label) if len(ins) > 2 and ins[2] else math.inf
            ops.append({"kind": K_CLIP, "width": main.width, "from": lo_c, "to": hi_c,
                        "lo": lo, "hi": hi})
            val[out] = ins[0]
        elif op == "Shape":
            full(ins[0], label)
            val[out] = ("shape", main.id)
        elif op == "Expand":
            c, s = ins[0], ins[1]
            if not c or c[0] != "const" or not s or s != ("shape", main.id) or \
                    len(main.shape) != 1 or len(c[1]) != 1 or c[1][0] != main.width:
                raise ValueError(label + ": only a [n] constant expanded to the tensor's shape")
            val[out] = ("bconst", list(c[2]))
        elif op == "Concat":
            if n["attr"].get("axis") not in (1, -1):
                raise ValueError(label + ": only axis 1")
            if len(ins) == 2 and ins[1] and ins[1][0] == "bconst":
                full(ins[0], label)
                vals = ins[1][1]
                ops.append({"kind": K_CONCAT_CONST, "width": main.width, "values": vals})
                val[out] = new_main([main.width + len(vals)])
            else:
                at = 0
                for v in ins:
                    lo_c, hi_c = cur_slice(v, label)
                    if lo_c != at:
                        raise ValueError(label + ": heads are not concatenated in column order")
                    at = hi_c
                if at != main.width:
                    raise ValueError(label + ": concatenation does not cover the tensor")
                val[out] = ("slice", main.id, 0, main.width)
        elif op == "Add" and all(v and v[0] == "slice" for v in ins):
            (v0, v1), (a0, a1) = cur_slice(ins[0], label), cur_slice(ins[1], label)
            if v1 - v0 != 1:
                raise ValueError(label + ": only value [B,1] + advantage [B,n] of a dueling head")
            val[out] = ("dueling_add", (v0, v1), (a0, a1))
        elif op == "ReduceMean":
            if n["attr"].get("axes") != [1] or n["attr"].get("keepdims", 1) != 1:
                raise ValueError(label + ": only axes [1], keepdims 1")
            val[out] = ("mean", cur_slice(ins[0], label))
        elif op == "Sub" and ins[0] and ins[0][0] == "dueling_add":
            _, (v0, _), (a0, a1) = ins[0]
            if not ins[1] or ins[1] != ("mean", (a0, a1)):
                raise ValueError(label + ": only (value + advantage) - mean(advantage)")
            ops.append({"kind": K_DUELING, "width": main.width, "vcol": v0, "from": a0,
                        "to": a1})
            val[out] = new_main([a1 - a0])
        else:
            raise ValueError(label + ": not a structure the plan knows (see onnx_weights.py)")
    v = val.get(g["outputs"][0])
    if not v or v[0] != "slice" or v[1] != main.id or (v[2], v[3]) != (0, main.width):
        raise ValueError("graph output %r is not the whole last tensor" % g["outputs"][0])
    return {"in_width": math.prod(in_dims[1:]), "out_width": main.width, "ops": ops}


def describe(plan):
    """One line: the plan's ops, e.g. 'dense 5x64 relu, dense 64x64 relu, dense 64x3 tanh'."""
    an = {0: "", 1: " relu", 2: " tanh", 3: " sigmoid", 4: " gelu"}
    parts = []
    for o in plan["ops"]:
        k = o["kind"]
        if k == K_DENSE:
            parts.append("dense %dx%d%s%s%s" % (
                o["in"], o["out"], an[o["act"]],
                " (%d heads)" % o["heads"] if o["heads"] > 1 else "",
                " (batchnorm folded)" if o.get("bn") else ""))
        elif k == K_CONV:
            parts.append("conv %dx%dx%d->%d k%d s%d%s" % (*o["chw"], o["m"], o["k"][0],
                                                         o["s"][0], an[o["act"]]))
        elif k == K_LAYERNORM:
            parts.append("layernorm %d%s" % (o["n"], an[o["act"]]))
        elif k == K_ACT:
            parts.append(an[o["act"]].strip())
        elif k == K_CLIP:
            parts.append("clip cols %d..%d" % (o["from"], o["to"] - 1))
        elif k == K_CONCAT_CONST:
            parts.append("concat %d const cols" % len(o["values"]))
        elif k == K_DUELING:
            parts.append("dueling combine")
    return ", ".join(parts)


def write_plan(plan, path):
    def u32(*v):
        return struct.pack("<%dI" % len(v), *v)

    def f32(v):
        return struct.pack("<%df" % len(v), *v)

    with open(path, "wb") as f:
        f.write(b"CRLP" + u32(2, plan["in_width"], len(plan["ops"])))
        for o in plan["ops"]:
            k = o["kind"]
            f.write(u32(k))
            if k == K_DENSE:
                f.write(u32(o["in"], o["out"], o["act"]) + f32(o["w"]) + f32(o["b"]))
            elif k == K_CONV:
                f.write(u32(*o["chw"], o["m"], *o["k"], *o["s"], *o["p"], o["act"]))
                f.write(f32(o["w"]) + f32(o["b"]))
            elif k == K_LAYERNORM:
                f.write(u32(o["n"], o["act"]) + f32([o["eps"]]) + f32(o["gamma"]) +
                        f32(o["beta"]))
            elif k == K_ACT:
                f.write(u32(o["width"], o["act"]))
            elif k == K_CLIP:
                f.write(u32(o["width"], o["from"], o["to"]) + f32([o["lo"], o["hi"]]))
            elif k == K_CONCAT_CONST:
                f.write(u32(o["width"], len(o["values"])) + f32(o["values"]))
            elif k == K_DUELING:
                f.write(u32(o["width"], o["vcol"], o["from"], o["to"]))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: onnx_weights.py model.onnx out.plan")
    p = make_plan(read_graph(sys.argv[1]))
    write_plan(p, sys.argv[2])
    print(describe(p))
