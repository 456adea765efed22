#!/usr/bin/python3
"""preflight.py: do two /predict servers give the same actions? bench/compare.sh runs it before
any load, so that the comparison is between servers computing the same function.

Sends the same requests to both (batch 1, 2, 7 and 64, every observation with exactly 3 sensors
as the example model needs, values spread over the schema's ranges with some sensors beyond the
+-10 clip, deterministic true and false) and compares every action field. Exit 0 when the largest
absolute difference is <= --tolerance, 1 otherwise, 2 when a request fails.

usage: preflight.py URL_A URL_B [--tolerance 1e-5] [--names carlarl,Python]
       (URL = http://127.0.0.1:PORT, without the path)
"""
import argparse
import json
import random
import sys
import urllib.error
import urllib.request


def bodies():
    rng = random.Random(20241127)

    def obs():
        # Dyadic values: exact in float32 and in JSON, so both parsers read the same numbers.
        sensors = [round(rng.gauss(0.8, 1.5) * 256) / 256 for _ in range(3)]
        if rng.random() < 0.2:
            sensors[rng.randrange(3)] = rng.choice([-1, 1]) * round(rng.uniform(10, 1000) * 16) / 16
        return {"speed": round(rng.uniform(0, 200) * 64) / 64,
                "steering": round(rng.uniform(-1, 1) * 512) / 512, "sensors": sensors}

    out = [{"observations": [{"speed": 25.5, "steering": 0.1, "sensors": [0.8, 0.2, 0.5]}],
            "deterministic": True},
           {"observations": [{"speed": 0.0, "steering": -1.0, "sensors": [250.5, -12.25, 3.0]},
                             {"speed": 200.0, "steering": 1.0, "sensors": [-1000.0, 1000.0, 0.0]}],
            "deterministic": False}]
    for n, det in ((7, True), (64, False)):
        out.append({"observations": [obs() for _ in range(n)], "deterministic": det})
    return out


def post(base, body):
    req = urllib.request.Request(base.rstrip("/") + "/predict", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"preflight: POST {base}/predict failed: {e}", file=sys.stderr)
        sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--names", default="A,B")
    args = ap.parse_args()
    na, nb = args.names.split(",", 1)
    worst, where, n = 0.0, "", 0
    for i, body in enumerate(bodies()):
        ra, rb = post(args.a, body), post(args.b, body)
        aa, ab = ra.get("actions"), rb.get("actions")
        if not isinstance(aa, list) or not isinstance(ab, list) or len(aa) != len(ab) or \
                len(aa) != len(body["observations"]):
            print(f"preflight: request {i}: {na} and {nb} returned different action lists:\n"
                  f"  {na}: {json.dumps(ra)[:300]}\n  {nb}: {json.dumps(rb)[:300]}",
                  file=sys.stderr)
            return 1
        for j, (x, y) in enumerate(zip(aa, ab)):
            for k in ("throttle", "brake", "steer"):
                d = abs(float(x[k]) - float(y[k]))
                n += 1
                if d > worst:
                    worst, where = d, f"request {i} (batch {len(aa)}), action {j}, {k}: " \
                                      f"{na} {x[k]!r} vs {nb} {y[k]!r}"
    ok = worst <= args.tolerance
    print(f"preflight: {n} action values from {len(bodies())} requests, largest |{na} - {nb}| = "
          f"{worst:.3g} (tolerance {args.tolerance:g}){': ' + where if where else ''} -> "
          f"{'same actions' if ok else 'DISAGREE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
