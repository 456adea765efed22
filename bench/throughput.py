#!/usr/bin/env python3
"""throughput.py: the throughput-engine benchmark of issue 6, in one run, with `carlarl bench`.

1. Nature-CNN (tests/data/zoo/nature_cnn, made single-frame: see below) at 64 concurrent
   connections, batching off vs on: req/s, p50, p99 and the on/off ratio.
2. The built-in example MLP with cache.backend=memory: hit (one body repeated) vs miss (64
   distinct bodies cycling through a 1-entry cache) vs no cache: server CPU us per request.
3. Cache hit latency, memory vs Redis (a redis-server this script starts on a free loopback port,
   --save '' --appendonly no, stopped at the end): p50/p99 at -c 1 and -c 32, one body repeated.

Prints one markdown table, writes --json FILE. Stdlib only; builds nothing; uses build/carlarl.

Why single-frame: /predict takes at most 10,000 sensors per observation (the original's pydantic
limit), and the zoo Nature-CNN takes 4x84x84 = 28,224 features. This script rewrites the zoo
ONNX file (a minimal protobuf editor, below) into a 1x84x84 model whose first convolution's
weights are the sum over the 4 input channels, i.e. exactly the zoo model fed the same frame 4
times. Features: [speed, steering, 7054 sensors] = 7056 = 84*84; preprocessor: none (raw values).
Conv2, conv3 and the dense layers (the bulk of the FLOPs) are the zoo's, unchanged.
The artifact (v1.0.0/ with model.onnx and model_card.yaml, a 3-action categorical head over the
q-values) goes into a temporary directory that is removed at the end.

Pinning: with 2+ CPUs, servers (and redis) run on the first half of the CPUs, the load generator
on the other half (as bench/compare.sh); --no-pin pins nothing. Loopback only; every run stops
by itself; everything started here is stopped on exit.

usage: bench/throughput.py [--duration S] [--warmup S] [--json FILE] [--max-batch-size N]
                           [--max-queue-delay-us US] [--no-redis] [--no-pin] [--keep DIR]
"""
import datetime
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from benchlib import arg_parser, parse_args, pinned, start_server  # noqa: E402

ZOO_CNN = os.path.join(ROOT, "tests", "data", "zoo", "nature_cnn", "model.onnx")


# --- a minimal protobuf reader/writer (enough to edit one ONNX initializer and one input shape)
def _rv(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _ev(v):
    o = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            o.append(c | 0x80)
        else:
            o.append(c)
            return bytes(o)


def pb_parse(b):
    out, i = [], 0
    while i < len(b):
        t, i = _rv(b, i)
        f, w = t >> 3, t & 7
        if w == 0:
            v, i = _rv(b, i)
        elif w == 1:
            v, i = b[i:i + 8], i + 8
        elif w == 5:
            v, i = b[i:i + 4], i + 4
        elif w == 2:
            n, i = _rv(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("protobuf wire type %d" % w)
        out.append((f, w, v))
    return out


def pb_emit(fields):
    o = bytearray()
    for f, w, v in fields:
        o += _ev(f << 3 | w)
        if w == 0:
            o += _ev(v)
        elif w == 2:
            o += _ev(len(v)) + v
        else:
            o += v
    return bytes(o)


def pb_edit(b, path, fn):
    """Applies fn to the payload of every length-delimited field at path (a list of field
    numbers) in message b."""
    out = []
    for f, w, v in pb_parse(b):
        if w == 2 and f == path[0]:
            v = fn(v) if len(path) == 1 else pb_edit(v, path[1:], fn)
        out.append((f, w, v))
    return pb_emit(out)


def single_frame_cnn(src, dst):
    """The zoo Nature-CNN with input [B,1,84,84]: conv1's weight [32,4,8,8] summed over the 4
    input channels to [32,1,8,8]. ModelProto.graph=7; GraphProto.initializer=5, input=11;
    TensorProto.dims=1, name=8, raw_data=9; ValueInfoProto.type=2; TypeProto.tensor_type=1;
    Tensor.shape=2; TensorShapeProto.dim=1; Dimension.dim_value=1."""
    def init(t):
        fields = pb_parse(t)
        if [v for f, _, v in fields if f == 8] != [b"cnn.0.weight"]:
            return t
        raw = [v for f, _, v in fields if f == 9][0]
        w = struct.unpack("<%df" % (len(raw) // 4), raw)
        assert len(w) == 32 * 4 * 64, len(w)
        summed = [sum(w[o * 256 + c * 64 + k] for c in range(4)) for o in range(32)
                  for k in range(64)]
        fields = [x for x in fields if x[0] not in (1, 9)]
        fields.insert(0, (1, 2, b"".join(_ev(d) for d in (32, 1, 8, 8))))
        fields.append((9, 2, struct.pack("<%df" % len(summed), *summed)))
        return pb_emit(fields)

    def shape(s):
        dims = pb_parse(s)
        assert pb_parse(dims[1][2]) == [(1, 0, 4)], "unexpected input shape"
        dims[1] = (1, 2, pb_emit([(1, 0, 1)]))
        return pb_emit(dims)

    with open(src, "rb") as f:
        m = f.read()
    m = pb_edit(m, [7, 5], init)
    m = pb_edit(m, [7, 11, 2, 1, 2], shape)
    with open(dst, "wb") as f:
        f.write(m)


CNN_CARD = """model_name: "nature-cnn-1frame"
version: "v1.0.0"
model_type: onnx
model_filename: model.onnx
description: "zoo nature_cnn, conv1 summed over its 4 input frames (bench/throughput.py)"
input_shape: [7056]
action_space:
  throttle: [0.0, 1.0]
  brake: [0.0, 1.0]
  steer: [-1.0, 1.0]
policy:
  type: categorical
  actions:
    - {throttle: 0.5, brake: 0.0, steer: -0.5}
    - {throttle: 0.5, brake: 0.0, steer: 0.0}
    - {throttle: 0.5, brake: 0.0, steer: 0.5}
"""


def body(sensors, seed):
    rng = random.Random(seed)
    return json.dumps({"observations": [{
        "speed": round(rng.uniform(0, 60), 3), "steering": round(rng.uniform(-1, 1), 3),
        "sensors": [round(rng.random(), 4) for _ in range(sensors)]}], "deterministic": True})


# --- processes
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, a, env_over):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("BATCHING_", "CACHE_", "REDIS_", "MODEL_", "SERVER_")) or k in (
                    "ARTIFACT_DIR", "WORKERS", "LOG_LEVEL"):
                del env[k]
        env.update({"WORKERS": "1", "LOG_LEVEL": "INFO"})
        env.update(env_over)
        self.p, self.port = start_server(pinned(a.server_cpus, [a.bin, "serve", "--port", "0"]),
                                         env=env)
        self.log = []
        import threading
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.port
        for _ in range(200):
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.05)

    def _drain(self):
        for line in self.p.stderr:
            self.log.append(line)

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def metric_sum(text, prefix):
    tot = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and not line.startswith("#"):
            try:
                tot += float(line.rsplit(None, 1)[1])
            except ValueError:
                pass
    return tot


def bench(a, srv, name, extra, conc, duration, warmup):
    out = os.path.join(a.tmp, name + ".json")
    argv = pinned(a.load_cpus, [a.bin, "bench", srv.url + "/predict", "-c", str(conc),
                                "-t", "1", "-d", str(duration), "-w", str(warmup),
                                "--deterministic", "--server-pid", str(srv.p.pid),
                                "--json", out, "-q", "--no-progress"] + extra)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode not in (0, 1) or not os.path.exists(out):
        sys.exit("carlarl bench failed (%d): %s\n%s" % (r.returncode, " ".join(argv), r.stdout))
    with open(out) as f:
        j = json.load(f)
    if a.keep:
        shutil.copy(out, a.keep)
    return j


def _count(v):
    return sum(_count(x) for x in v.values()) if isinstance(v, dict) else int(v or 0)


def summary(j):
    res = j.get("result", j)
    lat = res.get("latency_ms", {})
    st = res.get("status", {})
    ok = sum(int(v) for k, v in st.items() if k == "200")
    bad = sum(int(v) for k, v in st.items() if k != "200") + _count(res.get("transport_errors", 0))
    return {"rps": res.get("throughput_rps"), "p50_ms": lat.get("p50"),
            "p99_ms": lat.get("p99"), "ok": ok, "errors": bad,
            "cpu_us_per_request": res.get("server", {}).get("cpu_us_per_request")}


def main():
    ap = arg_parser(__doc__, duration=10, warmup=2)
    ap.add_argument("--cache-duration", type=float, default=5)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--max-queue-delay-us", type=int, default=500)
    ap.add_argument("--keep")
    ap.add_argument("--no-redis", action="store_true")
    a = parse_args(ap)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    a.tmp = tempfile.mkdtemp(prefix="carlarl-tput-")
    procs = []
    rows, raw = [], {}
    try:
        # the artifacts
        cnn_dir = os.path.join(a.tmp, "cnn")
        os.makedirs(os.path.join(cnn_dir, "v1.0.0"))
        single_frame_cnn(ZOO_CNN, os.path.join(cnn_dir, "v1.0.0", "model.onnx"))
        with open(os.path.join(cnn_dir, "v1.0.0", "model_card.yaml"), "w") as f:
            f.write(CNN_CARD)
        empty = os.path.join(a.tmp, "empty")
        os.makedirs(empty)
        cnn_body = os.path.join(a.tmp, "cnn_body.json")
        with open(cnn_body, "w") as f:
            f.write(body(84 * 84 - 2, 1))
        mlp_body = os.path.join(a.tmp, "mlp_body.json")
        with open(mlp_body, "w") as f:
            f.write(body(3, 2))

        # 1. CNN, batching off vs on, -c 64
        cnn = {}
        for mode in ("off", "on"):
            env = {"ARTIFACT_DIR": cnn_dir, "BATCHING_ENABLED": "true" if mode == "on" else
                   "false"}
            if mode == "on":
                env.update({"BATCHING_MAX_BATCH_SIZE": str(a.max_batch_size),
                            "BATCHING_MAX_QUEUE_DELAY_US": str(a.max_queue_delay_us)})
            srv = Server(a, env)
            procs.append(srv)
            j = bench(a, srv, "cnn_batching_" + mode, ["--observations", cnn_body], 64,
                      a.duration, a.warmup)
            s = summary(j)
            m = srv.metrics()
            srv.stop()
            raw["cnn_batching_" + mode] = j
            cnn[mode] = s
            rows.append(("CNN 1x84x84, batching %s, -c 64%s" % (mode, " (%.1f rows/pass)" % s[
                "mean_rows_per_pass"] if s.get("mean_rows_per_pass") else ""), s))
            print("cnn batching %s: %s" % (mode, s), file=sys.stderr)
            if mode == "on":
                n = metric_sum(m, "carla_rl_batch_size_count")
                s["mean_rows_per_pass"] = metric_sum(m, "carla_rl_batch_size_sum") / n if n else None
                cnn["metrics_batch_lines"] = [l for l in m.splitlines()
                                              if "batch" in l and not l.startswith("#")][:40]

        # 2. MLP: cache hit vs miss vs off, CPU us/request
        mlp = {}
        for mode, env, extra in (
                ("hit", {"CACHE_BACKEND": "memory"}, ["--observations", mlp_body]),
                ("miss", {"CACHE_BACKEND": "memory", "CACHE_SIZE": "1"}, ["--sensors", "3"]),
                ("off", {"CACHE_BACKEND": "none"}, ["--sensors", "3"])):
            env["ARTIFACT_DIR"] = empty
            srv = Server(a, env)
            procs.append(srv)
            j = bench(a, srv, "mlp_cache_" + mode, extra, 32, a.duration, a.warmup)
            s = summary(j)
            m = srv.metrics()
            srv.stop()
            s["cache_metric_lines"] = [l for l in m.splitlines()
                                       if "cache" in l and not l.startswith("#")][:20]
            h = metric_sum(m, "carla_rl_cache_hits_total")
            mi = metric_sum(m, "carla_rl_cache_misses_total")
            s["hit_ratio"] = h / (h + mi) if h + mi else None
            raw["mlp_cache_" + mode] = j
            mlp[mode] = s
            rows.append(("example MLP, cache %s, -c 32%s" % (mode, "" if s["hit_ratio"] is None
                         else " (%.0f%% hits)" % (100 * s["hit_ratio"])), s))
            print("mlp cache %s: %s" % (mode, s), file=sys.stderr)

        # 3. cache hit latency: memory vs redis at -c 1 and -c 32
        lat = {}
        backends = ["memory"]
        redis = None
        if not a.no_redis and shutil.which("redis-server"):
            rport = free_port()
            redis = subprocess.Popen(pinned(a.server_cpus, [
                "redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "yes"]), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", rport), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            backends.append("redis")
        try:
            for be in backends:
                env = {"ARTIFACT_DIR": empty, "CACHE_BACKEND": be}
                if be == "redis":
                    env.update({"CACHE_HOST": "127.0.0.1", "CACHE_PORT": str(rport),
                                "CACHE_KEY_PREFIX": "carlarl-tput:"})
                srv = Server(a, env)
                procs.append(srv)
                for c in (1, 32):
                    j = bench(a, srv, "hit_%s_c%d" % (be, c), ["--observations", mlp_body], c,
                              a.cache_duration, 1)
                    s = summary(j)
                    raw["hit_%s_c%d" % (be, c)] = j
                    lat["%s_c%d" % (be, c)] = s
                    rows.append(("cache hit, %s, -c %d" % (be, c), s))
                    print("hit %s c%d: %s" % (be, c, s), file=sys.stderr)
                m = srv.metrics()
                lat[be + "_cache_metric_lines"] = [l for l in m.splitlines()
                                                   if "cache" in l and not l.startswith("#")][:20]
                srv.stop()
        finally:
            if redis:
                redis.terminate()
                redis.wait(10)

        # the table
        def f(v, fmt):
            return "-" if v is None else fmt % v
        print("| run | req/s | p50 ms | p99 ms | server CPU us/req | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, s in rows:
            print("| %s | %s | %s | %s | %s | %d |" % (
                name, f(s["rps"], "%.0f"), f(s["p50_ms"], "%.3f"), f(s["p99_ms"], "%.3f"),
                f(s["cpu_us_per_request"], "%.1f"), s["errors"]))
        ratio = cnn["on"]["rps"] / cnn["off"]["rps"] if cnn["off"]["rps"] else None
        p99r = cnn["on"]["p99_ms"] / cnn["off"]["p99_ms"] if cnn["off"]["p99_ms"] else None
        print()
        print("CNN batching on/off: throughput %.2fx, p99 %.2fx (goal: >= 3x at <= 1x p99: %s)" % (
            ratio, p99r, "met" if ratio >= 3 and p99r <= 1 else "NOT met"))
        hm = mlp["hit"]["cpu_us_per_request"]
        for k in ("miss", "off"):
            v = mlp[k]["cpu_us_per_request"]
            if hm and v:
                print("MLP CPU per request, cache %s / hit: %.2fx" % (k, v / hm))
        result = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "cpus": len(os.sched_getaffinity(0)), "server_cpus": a.server_cpus,
                  "load_cpus": a.load_cpus,
                  "batching": {"max_batch_size": a.max_batch_size,
                               "max_queue_delay_us": a.max_queue_delay_us},
                  "cnn": cnn, "cnn_ratio_rps": ratio, "cnn_ratio_p99": p99r,
                  "mlp": mlp, "cache_hit_latency": lat, "raw": raw}
        if a.json:
            with open(a.json, "w") as fo:
                json.dump(result, fo, indent=1)
    finally:
        for s in procs:
            if s.p.poll() is None:
                s.stop()
        shutil.rmtree(a.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
