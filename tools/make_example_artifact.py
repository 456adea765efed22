#!/usr/bin/python3
"""make_example_artifact.py: write a carlarl artifact version directory (ONNX policy,
preprocessor.json, model_card.yaml with sha256 hashes).

Without arguments beyond --output/--version it writes carlarl's built-in example policy, the same
network and the same weights that src/model/example.c builds (original-system.md §2.4/§2.5):
Linear(5,64) ReLU Linear(64,64) ReLU Linear(64,3) Tanh, weights drawn from splitmix64 seeded with
0x5EEDCA51A2024, last weight x0.1, last bias [0.5, -2.0, 0.0], and the original's standard
preprocessor fitted on its 100 synthetic observations.

--policy gaussian|categorical writes a variant with a `policy:` section in the card (see
docs/artifacts.md) and, with --golden DIR, DIR/golden_<policy>.json: the network outputs, the
deterministic actions and the actions sampled for fixed seeds, computed with the same
Philox4x32-10 / Box-Muller / inverse-CDF mapping as src/model/policy.c (apply_policy()).

Reuse for your own torch policy:

    import sys; sys.path.insert(0, "tools")
    from make_example_artifact import fit_standard_preprocessor, write_artifact
    stats = fit_standard_preprocessor(training_observations)   # [{"speed", "steering", "sensors"}]
    write_artifact(my_policy, stats, "artifacts", "v1.2.0", model_name="my-policy",
                   input_width=2 + n_sensors)

my_policy must map a float32 [batch, input_width] tensor of features
[speed', steering', sensor_0' ...] to [batch, >=3] (throttle, brake, steer before clipping).
Pass preprocessor_stats=None for raw features (the "minimal" preprocessor).

Needs the Debian torch/numpy/onnx under /usr/bin/python3.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
from torch import nn

EXAMPLE_SEED = 0x5EEDCA51A2024
EXAMPLE_NAME = "carla-ppo-example"
EXAMPLE_DESCRIPTION = ("Built-in example policy (the original CarlaRL example network with "
                       "fixed weights); not a trained driver")
DEFAULT_ACTION_SPACE = {"throttle": [0.0, 1.0], "brake": [0.0, 1.0], "steer": [-1.0, 1.0]}
MASK64 = (1 << 64) - 1


class SplitMix64:
    """The generator src/model/example.c uses; both sides must draw identical numbers."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform_f32(self, fan_in, scale=1.0):
        # example.h: u = (r >> 40) * 2^-24; value = (float)((2u - 1) * (1 / sqrt(fan_in)) * s),
        # all in double, rounded to float32 once at the end.
        u = (self.next() >> 40) * (2.0 ** -24)
        return np.float32((2.0 * u - 1.0) * (1.0 / math.sqrt(fan_in)) * scale)


def example_weights(n_out=3, last_scale=0.1, last_bias=(0.5, -2.0, 0.0)):
    """W0 [64][5], b0 [64], W1 [64][64], b1 [64], W2 [n_out][64] in draw order; b2 takes no draws.
    The defaults are the built-in example; the --policy variants change only the last layer."""
    rng = SplitMix64(EXAMPLE_SEED)

    def draw(shape, fan_in, scale=1.0):
        n = int(np.prod(shape))
        return np.array([rng.uniform_f32(fan_in, scale) for _ in range(n)],
                        dtype=np.float32).reshape(shape)

    w0 = draw((64, 5), 5)
    b0 = draw((64,), 5)
    w1 = draw((64, 64), 64)
    b1 = draw((64,), 64)
    w2 = draw((n_out, 64), 64, last_scale)
    b2 = np.array(last_bias, dtype=np.float32)
    return [w0, b0, w1, b1, w2, b2]


def build_example_model(policy="deterministic"):
    """The example network; for --policy gaussian a 5-64-64-6 (mean, log-std) head and for
    categorical a 5-64-64-5 logits head, both without the final Tanh."""
    if policy == "gaussian":
        n_out, w = 6, example_weights(6, 0.5, GAUSSIAN_LAST_BIAS)
    elif policy == "categorical":
        n_out, w = 5, example_weights(5, 1.0, (0.0,) * 5)
    else:
        n_out, w = 3, example_weights()
    layers = [nn.Linear(5, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_out)]
    if policy == "deterministic":
        layers.append(nn.Tanh())
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for layer, (wi, bi) in zip((model[0], model[2], model[4]), zip(w[0::2], w[1::2])):
            layer.weight.copy_(torch.from_numpy(wi))
            layer.bias.copy_(torch.from_numpy(bi))
    return model.eval()


def example_observations():
    """The original's 100 synthetic fitting observations (create_example_artifacts.py)."""
    return [{"speed": 20.0 + 0.5 * i, "steering": (i - 50) * 0.02,
             "sensors": [0.5 + 0.01 * i, 0.3 + 0.02 * i, 0.7 - 0.01 * i]} for i in range(100)]


def fit_standard_preprocessor(observations, clip_range=(-10.0, 10.0)):
    """StandardFeaturePreprocessor.fit of the original (preprocessing.py:165-210): float32 data,
    np.mean / np.std (ddof=0) + 1e-8, one scalar over all sensor values after clipping.
    Returns the stats as float32 numbers, which is what the transform divides by."""
    speeds = np.array([o["speed"] for o in observations], dtype=np.float32)
    steers = np.array([o["steering"] for o in observations], dtype=np.float32)
    sensors = np.concatenate([np.array(o["sensors"], dtype=np.float32) for o in observations])
    sensors = np.clip(sensors, np.float32(clip_range[0]), np.float32(clip_range[1]))

    def stats(a):
        # np.std(...) + 1e-8 is a float64 scalar in numpy 1.x; the float32 transform rounds it
        # back to float32, so float32 is the value that matters.
        return np.float32(np.mean(a)), np.float32(np.std(a) + 1e-8)

    sm, ss = stats(speeds)
    tm, ts = stats(steers)
    em, es = stats(sensors)
    return {"speed_mean": sm, "speed_std": ss, "steering_mean": tm, "steering_std": ts,
            "sensor_mean": em, "sensor_std": es,
            "sensor_clip_range": (np.float32(clip_range[0]), np.float32(clip_range[1]))}


def preprocess(stats, observations):
    """The original's transform (preprocessing.py:212-255) in float32: sensors zero-padded to the
    longest row BEFORE normalisation, clipped, then (x - mean) / std. stats=None: raw features."""
    n = len(observations)
    width = max(len(o["sensors"]) for o in observations)
    speed = np.array([o["speed"] for o in observations], dtype=np.float32)
    steer = np.array([o["steering"] for o in observations], dtype=np.float32)
    sens = np.zeros((n, width), dtype=np.float32)
    for i, o in enumerate(observations):
        sens[i, :len(o["sensors"])] = np.array(o["sensors"], dtype=np.float32)
    if stats is not None:
        speed = (speed - stats["speed_mean"]) / stats["speed_std"]
        steer = (steer - stats["steering_mean"]) / stats["steering_std"]
        lo, hi = stats["sensor_clip_range"]
        sens = np.clip(sens, lo, hi)
        sens = (sens - stats["sensor_mean"]) / stats["sensor_std"]
    out = np.concatenate([speed[:, None], steer[:, None], sens], axis=1)
    assert out.dtype == np.float32
    return out


def f32(x):
    """A float32 value as the Python float that repr()s it exactly (C reads it back exactly)."""
    return float(np.float32(x))


def preprocessor_json(stats):
    if stats is None:
        return {"type": "minimal"}
    doc = {"type": "standard", "normalize_speed": True, "normalize_steering": True,
           "normalize_sensors": True}
    for k in ("speed_mean", "speed_std", "steering_mean", "steering_std", "sensor_mean",
              "sensor_std"):
        doc[k] = f32(stats[k])
    doc["sensor_clip_range"] = [f32(v) for v in stats["sensor_clip_range"]]
    return doc


def policy_yaml(policy):
    """The card's `policy:` section for a policy dict (None: no section, i.e. deterministic)."""
    if not policy or policy["type"] == "deterministic":
        return []
    lines = ["policy:", f"  type: {policy['type']}"]
    if policy["type"] == "gaussian":
        ls = policy["log_std"]
        lines.append("  log_std: " + (ls if ls == "output" else
                                      "[" + ", ".join(repr(float(v)) for v in ls) + "]"))
        lines.append(f"  squash: {policy.get('squash', 'none')}")
        lo, hi = policy.get("log_std_range", LOG_STD_RANGE)
        lines.append(f"  log_std_range: [{float(lo)!r}, {float(hi)!r}]")
    else:
        lines.append("  actions:")
        for a in policy["actions"]:
            lines.append("    - {" + ", ".join(f"{k}: {float(a[k])!r}"
                                             for k in ("throttle", "brake", "steer")) + "}")
    return lines


def card_text(model_name, version, description, input_width, action_space, hashes=None,
              policy=None):
    """model_card.yaml. src/model/example.c writes the same text for the built-in card, minus
    the hashes; keep the two in step."""
    lines = [f"model_name: {json.dumps(model_name)}",
             f"version: {json.dumps(version)}",
             "model_type: onnx",
             "model_filename: model.onnx",
             "preprocessor_filename: preprocessor.json",
             f"description: {json.dumps(description)}",
             f"input_shape: [{int(input_width)}]",
             "action_space:"]
    for k in ("throttle", "brake", "steer"):
        lo, hi = action_space[k]
        lines.append(f"  {k}: [{float(lo)!r}, {float(hi)!r}]")
    lines += policy_yaml(policy)
    if hashes:
        lines.append("artifact_hashes:")
        for name, digest in hashes.items():
            lines.append(f"  {name}: \"sha256:{digest}\"")
    return "\n".join(lines) + "\n"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def write_artifact(model, preprocessor_stats, out_dir, version, model_name=EXAMPLE_NAME,
                   description=EXAMPLE_DESCRIPTION, input_width=5, action_space=None,
                   opset=14, policy=None):
    """Writes out_dir/version/{model.onnx, preprocessor.json, model_card.yaml} and returns that
    directory. model: a torch.nn.Module mapping [batch, input_width] float32 to [batch, >=3]
    (or to what `policy` needs: see policy_yaml() and docs/artifacts.md)."""
    action_space = action_space or DEFAULT_ACTION_SPACE
    vdir = os.path.join(out_dir, version)
    os.makedirs(vdir, exist_ok=True)
    model = model.eval()
    onnx_path = os.path.join(vdir, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(1, input_width, dtype=torch.float32), onnx_path,
                          opset_version=opset, input_names=["observation"],
                          output_names=["action"],
                          dynamic_axes={"observation": {0: "batch"}, "action": {0: "batch"}},
                          do_constant_folding=True)
    pre_path = os.path.join(vdir, "preprocessor.json")
    with open(pre_path, "w") as f:
        json.dump(preprocessor_json(preprocessor_stats), f, indent=2)
        f.write("\n")
    hashes = {"model.onnx": sha256_file(onnx_path), "preprocessor.json": sha256_file(pre_path)}
    with open(os.path.join(vdir, "model_card.yaml"), "w") as f:
        f.write(card_text(model_name, version, description, input_width, action_space, hashes,
                          policy))
    return vdir


def golden_observations(n, seed):
    """Valid observations (speed 0..200, steering -1..1, exactly 3 sensors in -1000..1000),
    float32-exact so every parser reads the same numbers; some sensors lie beyond the +-10 clip."""
    rng = np.random.default_rng(seed)
    # Dyadic steps keep the values exact in float32 and short in JSON.
    speed = (np.round(rng.uniform(0.0, 200.0, n) * 64) / 64).astype(np.float32)
    steer = (np.round(rng.uniform(-1.0, 1.0, n) * 512) / 512).astype(np.float32)
    sens = np.round(rng.normal(0.8, 1.5, (n, 3)) * 256) / 256
    far = rng.random((n, 3)) < 0.05
    sens[far] = np.round(rng.choice([-1.0, 1.0], far.sum()) *
                         rng.uniform(10.0, 1000.0, far.sum()) * 16) / 16
    sens = sens.astype(np.float32)
    sens[0, 1] = np.float32(250.5)  # every batch clips at least once
    if n > 1:
        sens[1, 2] = np.float32(-12.25)
    return [{"speed": f32(speed[i]), "steering": f32(steer[i]),
             "sensors": [f32(v) for v in sens[i]]} for i in range(n)]


# ---- policy heads: the same Philox4x32-10 and mappings as src/model/philox.c and policy.c ----

M32 = 0xFFFFFFFF
LOG_STD_RANGE = (-20.0, 2.0)
GAUSSIAN_LAST_BIAS = (0.3, -1.0, 0.0, -1.0, -1.5, -1.2)
# highway-env's DiscreteMetaAction order: LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER.
HIGHWAY_META_ACTIONS = [
    {"throttle": 0.3, "brake": 0.0, "steer": -0.5},
    {"throttle": 0.3, "brake": 0.0, "steer": 0.0},
    {"throttle": 0.3, "brake": 0.0, "steer": 0.5},
    {"throttle": 0.8, "brake": 0.0, "steer": 0.0},
    {"throttle": 0.0, "brake": 0.5, "steer": 0.0},
]
POLICIES = {
    "gaussian": {"type": "gaussian", "log_std": "output", "squash": "tanh",
                 "log_std_range": LOG_STD_RANGE},
    "categorical": {"type": "categorical", "actions": HIGHWAY_META_ACTIONS},
}


def philox4x32_10(ctr, key):
    """Random123's Philox4x32-10: ctr 4 uint32, key 2 uint32 -> 4 uint32."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for rnd in range(10):
        if rnd:
            k0 = (k0 + 0x9E3779B9) & M32
            k1 = (k1 + 0xBB67AE85) & M32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, \
            p0 & M32
    return c0, c1, c2, c3


def philox_at(seed, row, col, draw=0):
    """Key = the 64-bit seed (low word first); counter = (row, action, draw, 0)."""
    return philox4x32_10((row, col, draw, 0), (seed & M32, (seed >> 32) & M32))


def uniform53(a, b):
    return (((a << 32) | b) >> 11) * 2.0 ** -53


def normal(block):
    """Box-Muller, cosine branch, in double."""
    u1 = 1.0 - uniform53(block[0], block[1])
    u2 = uniform53(block[2], block[3])
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def apply_policy(policy, outputs, deterministic, seed=0, action_space=None, margins=None):
    """The policy head + action-space clip on float32 network outputs [n][k], as carlarl does.
    Returns [n] action dicts of float32 values. margins (a list) collects, for sampled categorical
    rows, the distance of u to the nearest CDF boundary (how robust the golden sample is)."""
    action_space = action_space or DEFAULT_ACTION_SPACE
    acts = []
    for r, row in enumerate(outputs):
        row = [float(np.float32(v)) for v in row]
        if policy["type"] == "gaussian":
            lo, hi = (float(np.float32(v)) for v in policy.get("log_std_range", LOG_STD_RANGE))
            vals = []
            for a in range(3):
                v = row[a]
                if not deterministic:
                    ls = row[3 + a] if policy["log_std"] == "output" else \
                        float(np.float32(policy["log_std"][a]))
                    v = row[a] + math.exp(min(max(ls, lo), hi)) * normal(philox_at(seed, r, a))
                if policy.get("squash") == "tanh":
                    v = math.tanh(v)
                vals.append(np.float32(v))
        else:
            best = 0
            for i, v in enumerate(row):
                if v > row[best]:
                    best = i
            pick = best
            if not deterministic:
                m = row[best]
                w = [math.exp(v - m) for v in row]
                total = 0.0
                for x in w:
                    total += x
                b = philox_at(seed, r, 0)
                target = uniform53(b[0], b[1]) * total
                cum = 0.0
                bounds = []
                for i, x in enumerate(w):
                    cum += x
                    bounds.append(cum)
                    if x > 0.0:
                        pick = i
                    if target < cum:
                        break
                if margins is not None:
                    margins.append(min(abs(target - c) for c in [0.0] + bounds) / total)
            vals = [np.float32(policy["actions"][pick][k]) for k in ("throttle", "brake", "steer")]
        acts.append({k: f32(np.clip(v, np.float32(action_space[k][0]),
                                    np.float32(action_space[k][1])))
                     for k, v in zip(("throttle", "brake", "steer"), vals)})
    return acts


GOLDEN_SEEDS = (12345678901234567890, 7)


def write_policy_golden(model, stats, policy, path):
    """Golden expectations for a policy artifact: 7 observations, the network outputs (float32),
    the deterministic=true actions and, per seed, the sampled actions."""
    obs = golden_observations(7, seed=2024)
    with torch.no_grad():
        out = model(torch.from_numpy(preprocess(stats, obs))).numpy().astype(np.float32)
    outputs = [[f32(v) for v in row] for row in out]
    margins = []
    doc = {"policy": policy["type"], "observations": obs, "outputs": outputs,
           "deterministic": apply_policy(policy, outputs, True),
           "samples": [{"seed": s, "actions": apply_policy(policy, outputs, False, s,
                                                           margins=margins)}
                       for s in GOLDEN_SEEDS]}
    # A sample within ~1e-6 of a CDF boundary could flip with a 1e-7 forward-pass difference.
    assert not margins or min(margins) > 1e-4, f"golden seed too close to a boundary: {margins}"
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def write_golden(model, stats, golden_dir):
    os.makedirs(golden_dir, exist_ok=True)
    for n in (1, 7, 1000):
        obs = golden_observations(n, seed=1000 + n)
        feats = preprocess(stats, obs)
        with torch.no_grad():
            out = model(torch.from_numpy(feats)).numpy().astype(np.float32)
        doc = {"request": {"observations": obs, "deterministic": True},
               "features": [[f32(v) for v in row] for row in feats],
               "outputs": [[f32(v) for v in row] for row in out]}
        with open(os.path.join(golden_dir, f"golden_b{n}.json"), "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", required=True, help="artifact root; writes OUTPUT/VERSION/")
    ap.add_argument("--version", default="v0.1.0", help="version directory name (semver)")
    ap.add_argument("--golden", metavar="DIR",
                    help="also write golden_b{1,7,1000}.json numerics fixtures into DIR "
                         "(with --policy: DIR/golden_<policy>.json)")
    ap.add_argument("--policy", choices=("deterministic", "gaussian", "categorical"),
                    default="deterministic",
                    help="gaussian: 5-64-64-6 (mean, log-std) head with tanh squash; "
                         "categorical: 5-64-64-5 logits over highway-env's five meta-actions")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = build_example_model(args.policy)
    stats = fit_standard_preprocessor(example_observations())
    if args.policy != "deterministic":
        policy = POLICIES[args.policy]
        vdir = write_artifact(model, stats, args.output, args.version,
                              model_name=f"carla-{args.policy}-example",
                              description=f"Example {args.policy} policy head (fixed weights, "
                                          "not a trained driver)", policy=policy)
        print(f"wrote {vdir}")
        if args.golden:
            os.makedirs(args.golden, exist_ok=True)
            path = os.path.join(args.golden, f"golden_{args.policy}.json")
            write_policy_golden(model, stats, policy, path)
            print(f"wrote {path}")
        return 0
    vdir = write_artifact(model, stats, args.output, args.version)
    print(f"wrote {vdir}")
    if args.golden:
        write_golden(model, stats, args.golden)
        print(f"wrote golden files to {args.golden}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
