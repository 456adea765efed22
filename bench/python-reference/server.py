#!/usr/bin/python3
"""server.py: a minimal rebuild of the original CarlaRL service's POST /predict path, for
bench/compare.sh. FastAPI + uvicorn + pydantic + numpy + torch, all from Debian 12.

What it keeps from the original's request path (original-system.md §1.2, §1.7, §2.4-§2.7):
  - a FastAPI app, `async def` handler that runs inference inline on the event loop, one uvicorn
    worker process (the original's WORKERS default), plain asyncio + h11 (the original pins
    uvicorn without the [standard] extras);
  - pydantic request and response models with the original's field rules, including the
    per-sensor bound validator, and `response_model=PredictResponse`;
  - the standard preprocessor's transform (float32; zero-padding before normalisation; sensor
    clip to [-10, 10]; one scalar mean/std for all sensors), with the statistics fitted on the
    original's 100 synthetic observations;
  - the example network 5-64-64-3 with EXACTLY carlarl's built-in weights
    (tools/make_example_artifact.py, splitmix64 seed 0x5EEDCA51A2024), traced with
    torch.jit.trace as the original's create_example_artifacts.py saves it;
  - the original PolicyWrapper dispatch for a TorchScript model without `act`: it first calls
    model(x, deterministic), which fails for a traced forward(x), then model(x) (§2.7; this costs
    about 70 us per request here, and the original pays it too; --direct-forward skips it);
  - one persistent input tensor per (batch, width) shape, torch.no_grad(), the clip
    post-processing, timingMs from perf_counter around preprocess + forward + postprocess.

What it leaves out, all of which only ADD per-request work in the original: the request-id /
metrics / logging / tracing middleware, TrustedHost and CORS middleware, uvicorn's access log
(the original runs --access-log), the JSON log events, Prometheus metrics, the error envelope.
And the original's result cache (§2.8), which is off here by default (--cache turns it on): with
it, a load generator that repeats one body measures a dict lookup instead of inference.

Versions differ from the original's pins (fastapi 0.139, pydantic 2.13, starlette 1.3,
uvicorn 0.50, torch 2.12): Debian 12 has fastapi 0.92, pydantic 1.10 (pure Python, not
compiled), starlette 0.26, uvicorn 0.17, torch 1.13. Pydantic 1 validates more slowly than
pydantic 2's Rust core, which matters most for large batches.

usage: server.py [--host 127.0.0.1] [--port 0] [--port-file FILE] [--torch-threads N]
                 [--cache] [--direct-forward] [--access-log]
Prints "listening on http://HOST:PORT/" on stderr once the socket is bound (port 0: a free one).
"""
import argparse
import os
import socket
import sys
import time
from collections import OrderedDict
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, Field, validator  # noqa: E402

import make_example_artifact as example  # noqa: E402

MODEL_VERSION = "v0.1.0"


# ---- schemas (io_schemas.py; pydantic 1 spelling of the original's v2 models) ---------------

class Observation(BaseModel):
    speed: float = Field(..., ge=0.0, le=200.0)
    steering: float = Field(..., ge=-1.0, le=1.0)
    sensors: List[float] = Field(..., min_items=1, max_items=10000)

    @validator("sensors")
    def sensors_in_bounds(cls, v):  # noqa: N805 (pydantic validator)
        for i, val in enumerate(v):
            if not -1000.0 <= val <= 1000.0:
                raise ValueError(f"Sensor value at index {i} out of bounds: {val}")
        return v


class PredictRequest(BaseModel):
    observations: List[Observation] = Field(..., min_items=1, max_items=1000)
    deterministic: Optional[bool] = False


class Action(BaseModel):
    throttle: float = Field(..., ge=0.0, le=1.0)
    brake: float = Field(..., ge=0.0, le=1.0)
    steer: float = Field(..., ge=-1.0, le=1.0)


class PredictResponse(BaseModel):
    actions: List[Action]
    version: str
    timingMs: float = Field(..., ge=0.0)  # noqa: N815 (the wire name)
    deterministic: bool


# ---- the standard preprocessor's transform (preprocessing.py:212-255) ------------------------

class StandardFeaturePreprocessor:
    def __init__(self, stats):
        self.s = stats

    def transform(self, observations):
        batch = len(observations)
        speeds = np.array([o.speed for o in observations], dtype=np.float32)
        steerings = np.array([o.steering for o in observations], dtype=np.float32)
        max_len = max(len(o.sensors) for o in observations)
        sensors = np.zeros((batch, max_len), dtype=np.float32)
        for i, o in enumerate(observations):
            sensors[i, :len(o.sensors)] = o.sensors
        s = self.s
        speeds = (speeds - s["speed_mean"]) / s["speed_std"]
        steerings = (steerings - s["steering_mean"]) / s["steering_std"]
        lo, hi = s["sensor_clip_range"]
        sensors = np.clip(sensors, lo, hi)
        sensors = (sensors - s["sensor_mean"]) / s["sensor_std"]
        features = np.concatenate([speeds[:, None], steerings[:, None], sensors], axis=1)
        return features.astype(np.float32)


# ---- the engine (model_loader.PolicyWrapper + inference.InferenceEngine, minus metrics) -------

class Engine:
    def __init__(self, direct_forward=False, cache=False):
        self.device = torch.device("cpu")
        model = example.build_example_model()  # carlarl's built-in weights
        self.model = torch.jit.trace(model, torch.zeros(1, 5, dtype=torch.float32)).eval()
        self.pre = StandardFeaturePreprocessor(
            example.fit_standard_preprocessor(example.example_observations()))
        self.direct_forward = direct_forward
        self.cache = OrderedDict() if cache else None
        self.cache_size = 1000
        self.tensors = {}

    def forward(self, x, deterministic):
        if self.direct_forward:
            return self.model(x)
        try:  # PolicyWrapper: TorchScript without `act` (model_loader.py:70-90)
            return self.model(x, deterministic)
        except (TypeError, RuntimeError):
            return self.model(x)

    @staticmethod
    def cache_key(observations, deterministic):
        parts = []
        for o in observations:  # inference.py:125-134: 3 decimals, first 5 sensors only
            parts.append(f"{o.speed:.3f}_{o.steering:.3f}_" +
                         "_".join(f"{v:.3f}" for v in o.sensors[:5]))
        return hash("|".join(parts) + f"_{deterministic}")

    def predict(self, observations, deterministic):
        t0 = time.perf_counter()
        if self.cache is not None:
            key = self.cache_key(observations, deterministic)
            hit = self.cache.get(key)
            if hit is not None:
                self.cache.move_to_end(key)
                return hit, (time.perf_counter() - t0) * 1000.0
        feats = self.pre.transform(observations)
        shape = feats.shape
        x = self.tensors.get(shape)
        if x is None:
            x = self.tensors[shape] = torch.empty(shape, dtype=torch.float32)
        x.copy_(torch.from_numpy(feats))
        with torch.no_grad():
            out = self.forward(x, deterministic).cpu().numpy()
        actions = [Action(throttle=float(np.clip(r[0], 0.0, 1.0)),
                          brake=float(np.clip(r[1], 0.0, 1.0)),
                          steer=float(np.clip(r[2], -1.0, 1.0))) for r in out]
        if self.cache is not None:
            self.cache[key] = actions
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return actions, (time.perf_counter() - t0) * 1000.0


def make_app(engine):
    app = FastAPI(title="carla-rl-serving", version=MODEL_VERSION)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "version": MODEL_VERSION}

    @app.post("/predict", response_model=PredictResponse)
    async def predict(request: PredictRequest):
        deterministic = request.deterministic or False
        try:
            actions, ms = engine.predict(request.observations, deterministic)
        except Exception as e:  # server.py:473-501, without the envelope's request id
            return JSONResponse(status_code=500, content={
                "error": "INFERENCE_ERROR", "message": "Inference failed",
                "details": {"batch_size": len(request.observations),
                            "deterministic": deterministic, "error": str(e)},
                "timestamp": time.time()})
        return PredictResponse(actions=actions, version=MODEL_VERSION, timingMs=ms,
                               deterministic=deterministic)

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--port-file", help="also write the bound port to this file")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch.set_num_threads(N); 0 (default) keeps torch's default, as the "
                         "original does")
    ap.add_argument("--cache", action="store_true", help="the original's result cache (§2.8)")
    ap.add_argument("--direct-forward", action="store_true",
                    help="call model(x) directly, skipping the original's failing first call")
    ap.add_argument("--access-log", action="store_true",
                    help="uvicorn's access log to stdout (the original runs --access-log)")
    a = ap.parse_args()
    if a.torch_threads > 0:
        torch.set_num_threads(a.torch_threads)
    engine = Engine(direct_forward=a.direct_forward, cache=a.cache)
    app = make_app(engine)

    # proto IPPROTO_TCP, as getaddrinfo gives uvicorn's own create_server(host, port): asyncio
    # sets TCP_NODELAY on accepted sockets only then. With proto 0, h11's separate header and
    # body writes meet Nagle + delayed ACK, adding 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.listen(2048)
    port = sock.getsockname()[1]
    cfg = uvicorn.Config(app, loop="asyncio", http="h11", lifespan="off", workers=1,
                         log_level="warning", access_log=a.access_log)
    server = uvicorn.Server(cfg)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"python-reference: listening on http://{a.host}:{port}/ (pid {os.getpid()}, "
          f"1 uvicorn worker, asyncio + h11, torch {torch.__version__} with "
          f"{torch.get_num_threads()} thread(s), pydantic {pydantic_version()}, "
          f"cache {'on' if a.cache else 'off'}, "
          f"{'direct forward' if a.direct_forward else 'PolicyWrapper dispatch'})",
          file=sys.stderr, flush=True)
    server.run(sockets=[sock])


def pydantic_version():
    import pydantic
    return pydantic.VERSION


if __name__ == "__main__":
    main()
