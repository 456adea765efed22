#!/usr/bin/python3
"""make_zoo.py: build the policy zoo that carlarl's ONNX runtime is tested against.

    /usr/bin/python3 tools/make_zoo.py --output tests/data/zoo

For every policy below it builds the torch module deterministically (torch.manual_seed per
model), exports it to ONNX (input "observation", dynamic batch axis), checks the file with
onnx.checker, and writes beside it:

    <name>/model.onnx        the exported graph
    <name>/golden_b<N>.bin   seeded inputs and the torch outputs for batch N (format: docs/zoo.md)
    <name>/ops.txt           the ONNX op types in the graph with counts

There is no onnxruntime on the build machine, so the goldens are checked twice without it:
torch is re-run on the inputs read back from the golden file (must match bit for bit), and the
exported graph is executed by the small numpy interpreter at the bottom of this file (must match
to float32 rounding). The second check is what catches an export that torch computes
differently from the graph it wrote.

Needs the Debian torch/numpy/onnx under /usr/bin/python3. See docs/zoo.md.
"""
import argparse
import math
import os
import shutil
import struct
import sys
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper
import torch
from torch import nn

GOLDEN_MAGIC = b"CRLG"
DEFAULT_BATCHES = (1, 7, 64)


# ---------------------------------------------------------------------------------------------
# The policies
# ---------------------------------------------------------------------------------------------

def trained_like_init(module, last_gain=1.0):
    """SB3-style orthogonal init (gain sqrt(2) on hidden layers) with small non-zero biases.

    torch's default init gives outputs of about +-0.1 that barely move with the input, so a
    runtime with a broken Conv or a missing bias could still land within tolerance. Orthogonal
    weights keep the signal's scale through the layers, and the biases must be non-zero to count.
    """
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for i, m in enumerate(layers):
        nn.init.orthogonal_(m.weight, gain=last_gain if i == len(layers) - 1 else math.sqrt(2))
        nn.init.uniform_(m.bias, -0.1, 0.1)

class ExampleMLP(nn.Module):
    """carlarl's example network shape: 5 features -> throttle, brake, steer (pre-clip)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                 nn.Linear(64, 3), nn.Tanh())
        trained_like_init(self, last_gain=2.0)  # some outputs reach tanh's flat tails

    def forward(self, obs):
        return self.net(obs)


class PPOGaussian(nn.Module):
    """Stable-Baselines3 PPO MlpPolicy actor (tanh, 64x64) with a state-independent log_std."""

    def __init__(self):
        super().__init__()
        self.policy_net = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
        self.action_net = nn.Linear(64, 3)
        # SB3 initialises log_std to 0; a trained one is not, so give it distinct values.
        self.log_std = nn.Parameter(torch.tensor([-0.5, -1.0, 0.25]))
        trained_like_init(self)

    def forward(self, obs):
        mean = self.action_net(self.policy_net(obs))
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=1)


class SACSquashed(nn.Module):
    """SAC actor (256x256 ReLU); tanh squashing is left to the policy head, not the graph."""

    def __init__(self):
        super().__init__()
        self.latent_pi = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 256),
                                       nn.ReLU())
        self.mu = nn.Linear(256, 3)
        self.log_std = nn.Linear(256, 3)
        trained_like_init(self)
        with torch.no_grad():  # push log_std past both clip bounds on some rows, so Clip matters
            self.log_std.weight.mul_(4.0)
            self.log_std.bias.copy_(torch.tensor([-19.0, -1.0, 1.5]))

    def forward(self, obs):
        h = self.latent_pi(obs)
        log_std = torch.clamp(self.log_std(h), -20.0, 2.0)
        return torch.cat([self.mu(h), log_std], dim=1)


class DuelingDQN(nn.Module):
    """Dueling DQN over highway-env Kinematics observations (15 vehicles x 6 features)."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.shared = nn.Sequential(nn.Linear(90, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.value = nn.Linear(256, 1)
        self.advantage = nn.Linear(256, 5)
        trained_like_init(self)

    def forward(self, obs):
        h = self.shared(self.flatten(obs))
        v = self.value(h)
        a = self.advantage(h)
        return v + a - a.mean(dim=1, keepdim=True)


class NatureCNN(nn.Module):
    """Nature-DQN trunk over 4 stacked 84x84 frames (NCHW), hidden layer cut to 64 units."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
                                 nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                                 nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(3136, 64), nn.ReLU(), nn.Linear(64, 3))
        trained_like_init(self)

    def forward(self, obs):
        return self.head(self.cnn(obs))


class LayerNormMLP(nn.Module):
    """Linear -> LayerNorm -> GELU (exact, erf form) -> Linear; exported at opset 17."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.norm = nn.LayerNorm(32)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(32, 3)
        trained_like_init(self)
        with torch.no_grad():  # non-trivial affine so a runtime that ignores it fails
            self.norm.weight.copy_(1.0 + 0.2 * torch.randn(32))
            self.norm.bias.copy_(0.1 * torch.randn(32))

    def forward(self, obs):
        return self.fc2(self.act(self.norm(self.fc1(obs))))


class BatchNormMLP(nn.Module):
    """Linear -> BatchNorm1d (eval: running stats) -> ReLU -> Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 3)
        trained_like_init(self)
        with torch.no_grad():  # stats as if trained, so folding them in actually matters
            self.bn.running_mean.copy_(0.5 * torch.randn(32))
            self.bn.running_var.copy_(0.5 + torch.rand(32))
            self.bn.weight.copy_(1.0 + 0.2 * torch.randn(32))
            self.bn.bias.copy_(0.1 * torch.randn(32))

    def forward(self, obs):
        return self.fc2(torch.relu(self.bn(self.fc1(obs))))


class FrameStackMovement(nn.Module):
    """A policy over a short history, observation [B, T=4, F=12] (4 stacked frames of 12
    features), built to exercise the data-movement operators as torch exports them: Transpose
    ([B, T, F] -> [B, F, T], and a [B, C, H, W] -> [B, H, W, C] permute), Slice (h[:, 2:10:2], a
    flip, obs[..., -3:]), Gather by constant indices (h[:, [3, 1, 4]], a scalar obs[:, -1]),
    Split (torch.split with sizes) and chunk (Slices whose bounds torch computes from a Shape)."""

    def __init__(self):
        super().__init__()
        self.time = nn.Linear(4, 8)  # mixes the 4 frames of each feature
        self.head = nn.Sequential(nn.Linear(208, 32), nn.Tanh(), nn.Linear(32, 6))
        trained_like_init(self)

    def forward(self, obs):
        h = torch.tanh(self.time(obs.transpose(1, 2)))  # [B, 12, 8]
        a, b = torch.split(h, [5, 7], dim=1)
        lo, hi = h.chunk(2, dim=2)  # [B, 12, 4] each
        feats = torch.cat([  # at most 8 pieces: carlarl's Concat takes up to 8 inputs
            a.mean(1) - b.mean(1),  # 8
            h[:, [3, 1, 4], :].flatten(1),  # 24
            h[:, 2:10:2].flatten(1),  # 32
            obs[:, -1],  # 12
            torch.flip(obs[:, :, :6], dims=[2]).flatten(1),  # 24
            (lo * torch.sigmoid(hi)).flatten(1),  # 48
            obs.reshape(-1, 4, 3, 4).permute(0, 2, 3, 1).flatten(1),  # 48
            obs[..., -3:].flatten(1),  # 12
        ], dim=1)
        mu, log_std = self.head(feats).chunk(2, dim=-1)
        return torch.cat([torch.tanh(mu), log_std.clamp(-5.0, 2.0)], dim=1)


def obs_normal(rng, batch, width):
    """Standardised vector observations, as a VecNormalize'd env feeds them (clipped +-5)."""
    return np.clip(rng.standard_normal((batch, width)), -5.0, 5.0)


def obs_highway(rng, batch):
    """highway-env Kinematics: [presence, x, y, vx, vy, cos_h], normalised, absent rows zero."""
    n_veh = 15
    obs = np.zeros((batch, n_veh, 6))
    for b in range(batch):
        present = rng.integers(1, n_veh + 1)  # ego (row 0) is always present
        obs[b, :present, 0] = 1.0
        obs[b, :present, 1] = rng.uniform(-1.0, 1.0, present)
        obs[b, :present, 2] = rng.uniform(-1.0, 1.0, present)
        obs[b, :present, 3] = rng.uniform(-1.0, 1.0, present)
        obs[b, :present, 4] = rng.uniform(-0.3, 0.3, present)
        obs[b, :present, 5] = np.cos(rng.uniform(-0.5, 0.5, present))
    return obs


SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix_frames(seed, shape):
    """Frames from a seed, so a golden file need not store them (format version 2, docs/zoo.md):
    x[i] = (splitmix64 output i of `seed`) >> 56, an 8-bit level, divided by 255.0 in double and
    rounded to float32. Output i (from 0) mixes seed + (i + 1) * 0x9E3779B97F4A7C15 (mod 2^64)."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * SPLITMIX_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    levels = (z >> np.uint64(56)).astype(np.float64)
    return (levels / 255.0).astype(np.float32).reshape(shape)


def obs_history(rng, batch):
    """4 stacked frames of 12 standardised features, the newest last, correlated in time."""
    x = np.clip(rng.standard_normal((batch, 1, 12)), -5.0, 5.0)
    steps = 0.3 * rng.standard_normal((batch, 4, 12))
    return x + np.cumsum(steps, axis=1)


def obs_frames(seed, batch):
    """Grayscale frames scaled to [0, 1], quantised to 8-bit levels like a real Atari frame."""
    return splitmix_frames(seed, (batch, 4, 84, 84))


# name, module class, seed, opset, input shape without batch, output names, input generator,
# batch sizes, one line for the docs
ZOO = [
    dict(name="example_mlp", cls=ExampleMLP, seed=101, opset=14, outputs=["action"],
         gen=lambda rng, b: obs_normal(rng, b, 5)),
    dict(name="ppo_gaussian", cls=PPOGaussian, seed=102, opset=14, outputs=["mean_log_std"],
         gen=lambda rng, b: obs_normal(rng, b, 10)),
    dict(name="sac_squashed", cls=SACSquashed, seed=103, opset=14, outputs=["mean_log_std"],
         gen=lambda rng, b: obs_normal(rng, b, 10)),
    dict(name="dueling_dqn", cls=DuelingDQN, seed=104, opset=14, outputs=["q_values"],
         gen=obs_highway),
    # A float32 [64, 4, 84, 84] input alone is 7 MB: the CNN's frames come from a seed instead
    # (seeded=True: golden format version 2 stores the seed, not the frames).
    dict(name="nature_cnn", cls=NatureCNN, seed=105, opset=14, outputs=["q_values"],
         gen=obs_frames, seeded=True),
    dict(name="layernorm_mlp", cls=LayerNormMLP, seed=106, opset=17, outputs=["action"],
         gen=lambda rng, b: obs_normal(rng, b, 8)),
    dict(name="batchnorm_mlp", cls=BatchNormMLP, seed=107, opset=14, outputs=["action"],
         gen=lambda rng, b: obs_normal(rng, b, 8)),
    # The same network at opset 14 (Split's sizes as an input) and 11 (as an attribute).
    dict(name="frame_stack", cls=FrameStackMovement, seed=108, opset=14,
         outputs=["mean_log_std"], gen=lambda rng, b: obs_history(rng, b)),
    dict(name="frame_stack_op11", cls=FrameStackMovement, seed=108, opset=11,
         outputs=["mean_log_std"], gen=lambda rng, b: obs_history(rng, b)),
]


# ---------------------------------------------------------------------------------------------
# Golden files
# ---------------------------------------------------------------------------------------------

def write_golden(path, x, outputs, frames_seed=None):
    """Version 1 stores x; version 2 (frames_seed given) stores the seed x came from
    (splitmix_frames) instead."""
    x = np.ascontiguousarray(x, dtype="<f4")
    with open(path, "wb") as f:
        f.write(GOLDEN_MAGIC)
        f.write(struct.pack("<II", 1 if frames_seed is None else 2, x.ndim))
        f.write(struct.pack("<%dI" % x.ndim, *x.shape))
        f.write(struct.pack("<I", len(outputs)))
        for y in outputs:
            f.write(struct.pack("<I", y.ndim))
            f.write(struct.pack("<%dI" % y.ndim, *y.shape))
        if frames_seed is None:
            f.write(x.tobytes())
        else:
            f.write(struct.pack("<Q", frames_seed))
        for y in outputs:
            f.write(np.ascontiguousarray(y, dtype="<f4").tobytes())


def read_golden(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def u32(n=1):
        nonlocal pos
        vals = struct.unpack_from("<%dI" % n, data, pos)
        pos += 4 * n
        return vals

    def f32(shape):
        nonlocal pos
        n = int(np.prod(shape))
        arr = np.frombuffer(data, dtype="<f4", count=n, offset=pos).reshape(shape)
        pos += 4 * n
        return arr

    if data[:4] != GOLDEN_MAGIC:
        raise ValueError("%s: bad magic" % path)
    pos = 4
    version, rank_in = u32(2)
    if version not in (1, 2):
        raise ValueError("%s: version %d" % (path, version))
    dims_in = u32(rank_in)
    (n_out,) = u32()
    out_dims = []
    for _ in range(n_out):
        (rank,) = u32()
        out_dims.append(u32(rank))
    if version == 1:
        x = f32(dims_in)
    else:
        (seed,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        x = splitmix_frames(seed, dims_in)
    ys = [f32(d) for d in out_dims]
    if pos != len(data):
        raise ValueError("%s: %d trailing bytes" % (path, len(data) - pos))
    return x, ys


# ---------------------------------------------------------------------------------------------
# A numpy ONNX interpreter, just enough for the zoo (the independent check of each export)
# ---------------------------------------------------------------------------------------------

def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv2d(x, w, b, strides, pads, dilations, group):
    if group != 1 or any(d != 1 for d in dilations):
        raise NotImplementedError("Conv with groups/dilations")
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    sh, sw = strides
    oh = (x.shape[2] - kh) // sh + 1
    ow = (x.shape[3] - kw) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    y = np.einsum("nckluv,mckl->nmuv", cols, w.astype(np.float64), optimize=True)
    if b is not None:
        y += b.reshape(1, m, 1, 1)
    return y


def run_onnx_numpy(model, feeds):
    """Evaluates the graph in float64 (so it is a reference, not a float32 twin of torch)."""
    env = {t.name: numpy_helper.to_array(t).astype(np.float64)
           if numpy_helper.to_array(t).dtype.kind == "f" else numpy_helper.to_array(t)
           for t in model.graph.initializer}
    env.update({k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()})
    erf = np.vectorize(math.erf)
    for node in model.graph.node:
        a = _attrs(node)
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.T
            if a.get("transB", 0):
                B = B.T
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = ins[0] @ ins[1]
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Sub":
            y = ins[0] - ins[1]
        elif op == "Mul":
            y = ins[0] * ins[1]
        elif op == "Div":
            if ins[0].dtype.kind == "i" and ins[1].dtype.kind == "i":
                y = np.trunc(ins[0] / ins[1]).astype(np.int64)  # integer Div truncates
            else:
                y = ins[0] / ins[1]
        elif op == "Pow":
            y = np.power(ins[0], ins[1])
        elif op == "Sqrt":
            y = np.sqrt(ins[0])
        elif op == "Erf":
            y = erf(ins[0])
        elif op == "Relu":
            y = np.maximum(ins[0], 0.0)
        elif op == "Tanh":
            y = np.tanh(ins[0])
        elif op == "Sigmoid":
            y = 1.0 / (1.0 + np.exp(-ins[0]))
        elif op == "Elu":
            al = a.get("alpha", 1.0)
            y = np.where(ins[0] > 0, ins[0], al * (np.exp(ins[0]) - 1.0))
        elif op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else np.inf
            y = np.clip(ins[0], lo, hi)
        elif op == "Concat":
            y = np.concatenate(ins, axis=a["axis"])
        elif op == "Shape":
            y = np.array(ins[0].shape, dtype=np.int64)
        elif op == "Expand":
            shape = tuple(int(s) for s in ins[1])
            y = ins[0] * np.ones(shape, dtype=ins[0].dtype)
        elif op == "Constant":
            y = numpy_helper.to_array(a["value"])
            if y.dtype.kind == "f":
                y = y.astype(np.float64)
        elif op == "ConstantOfShape":
            v = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            y = np.full(tuple(int(s) for s in ins[0]), v.reshape(-1)[0])
        elif op == "Gather":
            y = np.take(ins[0], ins[1], axis=a.get("axis", 0))
        elif op == "Transpose":
            y = np.transpose(ins[0], a.get("perm"))  # None: reverse the axes
        elif op == "Slice":
            starts, ends = ins[1], ins[2]
            axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
            steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            idx = [slice(None)] * ins[0].ndim
            for ax, b, e, st in zip(axes, starts, ends, steps):
                b, e, st, dim = int(b), int(e), int(st), ins[0].shape[int(ax)]
                # numpy's slice clamps like ONNX, except that an end before the start of a
                # backward slice must be None, not -1 (which would count from the end).
                e = None if st < 0 and e < -dim else e
                idx[int(ax)] = slice(b, e, st)
            y = ins[0][tuple(idx)]
        elif op == "Split":
            ax = a.get("axis", 0)
            sizes = a.get("split") if "split" in a else (ins[1] if len(ins) > 1 else None)
            if sizes is None:
                sizes = [ins[0].shape[ax] // len(node.output)] * len(node.output)
            y = tuple(np.split(ins[0], np.cumsum([int(v) for v in sizes])[:-1], axis=ax))
        elif op == "Unsqueeze":
            y = ins[0]
            for ax in sorted(int(v) for v in ins[1]):
                y = np.expand_dims(y, ax)
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif op == "ReduceMean":
            axes = tuple(a["axes"]) if "axes" in a else None
            y = ins[0].mean(axis=axes, keepdims=bool(a.get("keepdims", 1)))
        elif op == "Conv":
            y = _conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None,
                        a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]),
                        a.get("dilations", [1, 1]), a.get("group", 1))
        elif op == "BatchNormalization":
            x, scale, bias, mean, var = ins
            shp = (1, -1) + (1,) * (x.ndim - 2)
            y = ((x - mean.reshape(shp)) / np.sqrt(var.reshape(shp) + a.get("epsilon", 1e-5))
                 * scale.reshape(shp) + bias.reshape(shp))
        elif op == "LayerNormalization":
            x, scale = ins[0], ins[1]
            bias = ins[2] if len(ins) > 2 else None
            ax = a.get("axis", -1)
            axes = tuple(range(ax % x.ndim, x.ndim))
            mu = x.mean(axis=axes, keepdims=True)
            var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
            y = (x - mu) / np.sqrt(var + a.get("epsilon", 1e-5)) * scale
            if bias is not None:
                y = y + bias
        else:
            raise NotImplementedError("numpy check: op %s" % op)
        if isinstance(y, tuple):
            for name, part in zip(node.output, y):
                env[name] = part
        else:
            env[node.output[0]] = y
    return [env[o.name] for o in model.graph.output]


# ---------------------------------------------------------------------------------------------
# Export and check
# ---------------------------------------------------------------------------------------------

def op_counts(model):
    return Counter(n.op_type for n in model.graph.node)


def build_one(spec, outdir, log):
    name = spec["name"]
    torch.manual_seed(spec["seed"])
    module = spec["cls"]().eval()
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    onnx_path = os.path.join(d, "model.onnx")

    sample = spec["seed"] if spec.get("seeded") else np.random.default_rng(spec["seed"])
    x0 = torch.from_numpy(spec["gen"](sample, 2).astype(np.float32))
    dyn = {"observation": {0: "batch"}}
    for o in spec["outputs"]:
        dyn[o] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(module, (x0,), onnx_path, opset_version=spec["opset"],
                          input_names=["observation"], output_names=spec["outputs"],
                          dynamic_axes=dyn, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)

    counts = op_counts(model)
    with open(os.path.join(d, "ops.txt"), "w") as f:
        f.write("# ONNX op types in %s/model.onnx (opset %d), with counts\n" %
                (name, spec["opset"]))
        for op, c in sorted(counts.items()):
            f.write("%s %d\n" % (op, c))

    worst = 0.0
    for b in spec.get("batches", DEFAULT_BATCHES):
        # Each batch size gets its own stream so adding a size never changes the others.
        if spec.get("seeded"):
            frames_seed = spec["seed"] * 1000 + b
            x = spec["gen"](frames_seed, b)
        else:
            frames_seed = None
            brng = np.random.default_rng([spec["seed"], b])
            x = spec["gen"](brng, b).astype(np.float32)
        with torch.no_grad():
            y = module(torch.from_numpy(x))
        ys = [t.numpy().astype(np.float32) for t in (y if isinstance(y, tuple) else (y,))]
        gpath = os.path.join(d, "golden_b%d.bin" % b)
        write_golden(gpath, x, ys, frames_seed)

        # Check 1: the file reads back, and torch re-run on its input reproduces it exactly.
        gx, gys = read_golden(gpath)
        with torch.no_grad():
            y2 = module(torch.from_numpy(gx.copy()))
        y2s = [t.numpy() for t in (y2 if isinstance(y2, tuple) else (y2,))]
        for want, got in zip(gys, y2s):
            if want.shape != got.shape or not np.array_equal(want, got):
                raise SystemExit("%s b%d: torch re-run differs from golden" % (name, b))
        # Check 2: the exported graph, run by the numpy interpreter, gives the same numbers.
        refs = run_onnx_numpy(model, {"observation": gx})
        for want, ref in zip(gys, refs):
            if tuple(ref.shape) != want.shape:
                raise SystemExit("%s b%d: ONNX shape %s vs golden %s" %
                                 (name, b, ref.shape, want.shape))
            err = float(np.max(np.abs(ref - want) / (1.0 + np.abs(ref))))
            worst = max(worst, err)
            if err > 1e-4:
                raise SystemExit("%s b%d: ONNX (numpy) vs torch rel err %.3g" % (name, b, err))
    log("%-14s opset %d  %8d bytes  ops: %s  max rel err onnx-vs-torch %.2e" %
        (name, spec["opset"], os.path.getsize(onnx_path),
         ", ".join("%s x%d" % kv for kv in sorted(counts.items())), worst))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="tests/data/zoo", help="zoo directory (rewritten)")
    p.add_argument("--only", action="append", help="build only this model (repeatable)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)  # one thread: reductions in a fixed order, reproducible goldens
    names = [s["name"] for s in ZOO]
    for n in args.only or []:
        if n not in names:
            p.error("unknown model %s (have: %s)" % (n, ", ".join(names)))
    os.makedirs(args.output, exist_ok=True)
    for spec in ZOO:
        if args.only and spec["name"] not in args.only:
            continue
        d = os.path.join(args.output, spec["name"])
        if os.path.isdir(d):
            shutil.rmtree(d)
        build_one(spec, args.output, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
