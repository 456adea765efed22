#!/usr/bin/python3
"""make_onnx_tests.py: writes the small ONNX models and expected outputs that tests/unit/test_onnx.c
checks the importer against. Run with Debian's /usr/bin/python3 (torch + onnx + numpy):

    /usr/bin/python3 tests/data/onnx/make_onnx_tests.py

Each NAME.onnx with numbers has a NAME.bin beside it, little-endian:
    uint32 rows, uint32 in, uint32 out, f32 inputs[rows*in], f32 outputs[rows*out]
The outputs come from torch (exported models) or numpy in float32 (hand-built models)."""
import os
import struct

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = 7


def save_bin(name, x, y):
    x = np.ascontiguousarray(x, dtype="<f4")
    y = np.ascontiguousarray(y, dtype="<f4")
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(struct.pack("<III", x.shape[0], x.shape[1], y.shape[1]))
        f.write(x.tobytes())
        f.write(y.tobytes())


def inputs(rng, n):
    x = rng.standard_normal((ROWS, n)).astype(np.float32) * 2.0
    x[0, :] = 0.0  # an all-zero row
    x[1, :] = 40.0  # large values: saturating tanh/sigmoid, clip
    return x


class Mlp(torch.nn.Module):
    """The shape of the example policy: Linear-Tanh-Linear-ReLU-Linear, then clamp to [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(5, 16)
        self.fc2 = torch.nn.Linear(16, 16)
        self.fc3 = torch.nn.Linear(16, 3)

    def forward(self, x):
        h = torch.tanh(self.fc1(x))
        h = torch.relu(self.fc2(h))
        return torch.clamp(self.fc3(h), -1.0, 1.0)


def torch_mlps(rng):
    torch.manual_seed(1)
    model = Mlp().eval()
    x = inputs(rng, 5)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    dummy = torch.zeros(1, 5)
    # Opset 11 also lists the weights as graph inputs, as old exporters did.
    for opset, as_inputs in ((11, True), (14, False), (17, False)):
        name = "mlp_gemm_op%d" % opset
        torch.onnx.export(model, dummy, os.path.join(HERE, name + ".onnx"),
                          input_names=["obs"], output_names=["action"], opset_version=opset,
                          dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
                          keep_initializers_as_inputs=as_inputs, do_constant_folding=True)
        save_bin(name, x, y)
    # Opset 10 is outside what carlarl reads: the loader must reject it by name.
    torch.onnx.export(model, dummy, os.path.join(HERE, "mlp_opset10.onnx"),
                      input_names=["obs"], output_names=["action"], opset_version=10)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def save_model(name, graph, opset):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="make_onnx_tests")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name + ".onnx"))


def matmul_add(rng):
    """MatMul + Add (weights in initializers and a Constant node, the addend once on the left),
    Sigmoid, Clip with only a min (the max input is the empty name), a scalar Add."""
    w1 = f32(rng.standard_normal((6, 8)) * 0.5)
    b1 = f32(rng.standard_normal(8))
    w2 = f32(rng.standard_normal((8, 4)))
    b2 = f32(rng.standard_normal((1, 4)))
    lo = f32(-0.25)
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b1, "B1"),
             numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(lo, "lo"),
             numpy_helper.from_array(f32([0.125]), "half_step")]
    # B1 stored as float_data instead of raw_data, to cover both encodings.
    inits[1].ClearField("raw_data")
    inits[1].float_data.extend(b1.tolist())
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["B1", "h1"], ["h2"], name="add1"),
        helper.make_node("Sigmoid", ["h2"], ["h3"], name="sig"),
        helper.make_node("Constant", [], ["B2"], name="c_b2",
                         value=numpy_helper.from_array(b2, "B2v")),
        helper.make_node("MatMul", ["h3", "W2"], ["h4"], name="mm2"),
        helper.make_node("Add", ["h4", "B2"], ["h5"], name="add2"),
        helper.make_node("Add", ["h5", "half_step"], ["h6"], name="add3"),
        helper.make_node("Clip", ["h6", "lo", ""], ["y"], name="clip"),
    ]
    graph = helper.make_graph(
        nodes, "matmul_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    save_model("mlp_matmul_add", graph, 13)
    x = inputs(rng, 6)
    h = 1.0 / (1.0 + np.exp(-(x @ w1 + b1)))
    y = np.maximum(f32(h) @ w2 + b2 + f32(0.125), lo)
    save_bin("mlp_matmul_add", x, f32(y))


def identity_flatten(rng):
    """Identity and Flatten(axis=1) as no-ops around a Gemm with transB=0, alpha and beta, and a
    scalar C."""
    b = f32(rng.standard_normal((4, 3)))
    c = f32([0.75])
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(c, "C")]
    nodes = [
        helper.make_node("Identity", ["x"], ["a"], name="id1"),
        helper.make_node("Gemm", ["a", "B", "C"], ["g"], name="gemm", alpha=0.5, beta=2.0),
        helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
        helper.make_node("Relu", ["f"], ["r"], name="relu"),
        helper.make_node("Identity", ["r"], ["y"], name="id2"),
    ]
    graph = helper.make_graph(
        nodes, "identity_flatten",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], inits)
    save_model("identity_flatten", graph, 12)
    x = inputs(rng, 4)
    y = np.maximum(f32(0.5) * f32(x @ b) + f32(2.0) * c, 0.0)
    save_bin("identity_flatten", x, f32(y))


def unsupported(rng):
    """Models the loader must refuse, with a message naming the node."""
    w = numpy_helper.from_array(f32(rng.standard_normal((1, 1, 3, 3))), "k")
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("Conv", ["r", "k"], ["y"], name="conv1")]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])], [w])
    save_model("conv", graph, 13)
    # A branch: x feeds both Relu and Tanh. The nodes have no names, so the error says "#1".
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Tanh", ["x"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "branch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    save_model("branch", graph, 13)
    # DOUBLE weights: only FLOAT tensors are supported, and the error must say so.
    w = numpy_helper.from_array(rng.standard_normal((3, 2)), "W64")
    nodes = [helper.make_node("MatMul", ["x", "W64"], ["y"], name="mm64")]
    graph = helper.make_graph(
        nodes, "double_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [w])
    save_model("double_weights", graph, 13)


def movement(rng):
    """Transpose, Split (sizes as an input), Slice (negative starts, steps and an end far below
    the axis), Gather with 2-D INT32 indices and with a scalar INT64 index. The integer tensors
    use int32_data / int64_data instead of raw_data, to cover those encodings too."""
    def ints(name, vals, dtype=TensorProto.INT64, dims=None):
        vals = list(vals)
        return helper.make_tensor(name, dtype, [len(vals)] if dims is None else dims, vals)

    inits = [ints("sizes", [1, 3]), ints("starts", [-1, 2]), ints("ends", [-2**63, -100]),
             ints("axes", [1, 3]), ints("steps", [-2, -1]),
             ints("pairs", [1, 0, 1, 1], TensorProto.INT32, [2, 2]),
             ints("first", [0], dims=[])]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="nchw_nhwc", perm=[0, 3, 1, 2]),
        helper.make_node("Split", ["t", "sizes"], ["a", "b"], name="split", axis=1),
        helper.make_node("Slice", ["b", "starts", "ends", "axes", "steps"], ["s"], name="slice"),
        helper.make_node("Gather", ["s", "pairs"], ["g"], name="pairs", axis=2),
        helper.make_node("Flatten", ["g"], ["gf"], name="flat_g"),
        helper.make_node("Gather", ["a", "first"], ["a0"], name="first", axis=1),
        helper.make_node("Flatten", ["a0"], ["af"], name="flat_a"),
        helper.make_node("Concat", ["gf", "af"], ["y"], name="cat", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "movement",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 30])], inits)
    save_model("movement", graph, 13)
    x = inputs(rng, 24)
    t = x.reshape(ROWS, 2, 3, 4).transpose(0, 3, 1, 2)
    a, b = t[:, :1], t[:, 1:]
    s = b[:, ::-2, :, ::-1]
    g = np.take(s, np.array([[1, 0], [1, 1]]), axis=2)
    y = np.concatenate([g.reshape(ROWS, -1), a[:, 0].reshape(ROWS, -1)], axis=1)
    save_bin("movement", x, f32(y))


def main():
    rng = np.random.default_rng(20240601)
    torch_mlps(rng)
    matmul_add(rng)
    identity_flatten(rng)
    unsupported(rng)
    movement(rng)


if __name__ == "__main__":
    main()
