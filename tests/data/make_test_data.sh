#!/bin/sh
# Regenerates the example artifact and the golden numerics fixtures (needs the Debian torch/numpy/onnx).
set -e
cd "$(dirname "$0")/../.."
/usr/bin/python3 tools/make_example_artifact.py --output tests/data/artifacts --version v0.1.0
/usr/bin/python3 tools/make_example_artifact.py --output /tmp/carlarl-example-artifact --version v0.1.0 --golden tests/data/golden
