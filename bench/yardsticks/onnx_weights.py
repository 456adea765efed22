"""onnx_weights.py: reads an MLP (Gemm / Relu / Tanh chain) out of an ONNX file with nothing but
the standard library, for the yardsticks that cannot load ONNX themselves (OpenBLAS, oneDNN,
torch). It decodes just the protobuf fields it needs (ModelProto.graph, GraphProto.node and
.initializer, NodeProto.op_type/input/attribute, TensorProto.dims/data_type/float_data/raw_data)
and refuses any graph that is not such a chain, naming the node.

    python3 onnx_weights.py model.onnx out.weights     # writes the CRLW file common.h reads

CRLW: "CRLW", u32 version 1, u32 layers, per layer u32 in, out, act (0 none, 1 relu, 2 tanh),
then W [out][in] and b [out] as little-endian float32.
"""

import struct
import sys

ACT = {"Relu": 1, "Tanh": 2}


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


def _tensor(buf):
    dims, dtype, name, floats, raw = [], None, "", [], None
    for num, wt, v in _fields(buf):
        if num == 1:
            if wt == 2:  # packed
                j = 0
                while j < len(v):
                    d, j = _varint(v, j)
                    dims.append(d)
            else:
                dims.append(v)
        elif num == 2:
            dtype = v
        elif num == 4:
            if wt == 2:
                floats.extend(struct.unpack("<%df" % (len(v) // 4), v))
            else:
                floats.append(struct.unpack("<f", v)[0])
        elif num == 8:
            name = v.decode()
        elif num == 9:
            raw = v
    if dtype != 1:
        raise ValueError("initializer %r is not float32 (data_type %s)" % (name, dtype))
    n = 1
    for d in dims:
        n *= d
    data = list(struct.unpack("<%df" % n, raw)) if raw is not None else floats
    if len(data) != n:
        raise ValueError("initializer %r has %d values for dims %s" % (name, len(data), dims))
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
                    aval = av - (1 << 64) if av >= 1 << 63 else av
            node["attr"][aname] = aval
    return node


def read_layers(path):
    """[(W [out][in] as a flat list, b [out], in, out, act)] of the MLP in the ONNX file."""
    with open(path, "rb") as f:
        model = f.read()
    graph = next((v for num, _, v in _fields(model) if num == 7), None)
    if graph is None:
        raise ValueError("%s: no graph" % path)
    inits, nodes = {}, []
    for num, _, v in _fields(graph):
        if num == 5:
            name, dims, data = _tensor(v)
            inits[name] = (dims, data)
        elif num == 1:
            nodes.append(_node(v))
    layers = []
    for n in nodes:
        label = "node %r (op %s)" % (n["name"], n["op"])
        if n["op"] == "Gemm":
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
                bdims, b = inits.get(n["input"][2], (None, None))
                if b is None or len(b) != out:
                    raise ValueError(label + ": bias is not a [%d] initializer" % out)
            if layers and layers[-1][3] != inn:
                raise ValueError(label + ": takes %d features, previous layer gives %d"
                                 % (inn, layers[-1][3]))
            layers.append([w, list(b), inn, out, 0])
        elif n["op"] in ACT:
            if not layers or layers[-1][4]:
                raise ValueError(label + ": activation must follow a Gemm")
            layers[-1][4] = ACT[n["op"]]
        else:
            raise ValueError(label + ": not part of a Gemm/Relu/Tanh chain")
    if not layers:
        raise ValueError("%s: no Gemm" % path)
    return [tuple(l) for l in layers]


def write_weights(layers, path):
    with open(path, "wb") as f:
        f.write(b"CRLW" + struct.pack("<II", 1, len(layers)))
        for w, b, inn, out, act in layers:
            f.write(struct.pack("<III", inn, out, act))
            f.write(struct.pack("<%df" % len(w), *w))
            f.write(struct.pack("<%df" % len(b), *b))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: onnx_weights.py model.onnx out.weights")
    write_weights(read_layers(sys.argv[1]), sys.argv[2])
