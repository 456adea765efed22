#!/bin/sh
# install-deps.sh: installs the Debian 12 packages carlarl needs, and only those that are missing.
#   tools/install-deps.sh          build and run
#   tools/install-deps.sh --test   also what the test suite needs (with the aarch64 cross
#                                  compiler, qemu and arm64 libraries of the aarch64 ctest)
#   tools/install-deps.sh --bench  also the load generators and yardsticks of bench/
#                                  (OpenBLAS, oneDNN, SLEEF, torch, node/npm, FastAPI/uvicorn)
# Run as root (or with sudo). Nothing is downloaded except Debian packages.
set -eu

pkgs="build-essential cmake pkg-config libh2o-evloop-dev libssl-dev libyaml-dev libsleef-dev zlib1g-dev libhiredis-dev"
for arg in "$@"; do
    case "$arg" in
    --test)
        pkgs="$pkgs libcmocka-dev python3 python3-h2 curl nghttp2-client clang-format redis-server"
        # tests/cross/run-aarch64.sh: the neon kernels and the runtime built for aarch64 and run
        # under qemu; the arm64 libraries come from Debian multiarch (dpkg --add-architecture).
        pkgs="$pkgs gcc-aarch64-linux-gnu qemu-user-static libsleef-dev:arm64 libcmocka-dev:arm64"
        pkgs="$pkgs libyaml-dev:arm64 libssl-dev:arm64"
        # tests/integration/test_deploy.py: promtool checks deploy/prometheus/.
        pkgs="$pkgs prometheus"
        ;;
    --bench)
        pkgs="$pkgs wrk nghttp2-client curl python3 linux-perf valgrind"
        # bench/yardsticks (docs/performance.md); ONNX Runtime comes from npm when it runs.
        pkgs="$pkgs libopenblas-dev libdnnl-dev libsleef-dev python3-torch"
        # bench/compare.sh: the Python reference server (bench/python-reference/).
        pkgs="$pkgs python3-fastapi python3-uvicorn python3-numpy"
        # A NodeSource nodejs already ships npm and conflicts with Debian's npm package.
        command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
        command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
        ;;
    --tools) pkgs="$pkgs python3-torch python3-onnx python3-numpy python3-yaml" ;;
    --fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
    -h | --help)
        sed -n '2,7p' "$0"
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option $arg" >&2
        exit 2
        ;;
    esac
done

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    exit 0
fi
echo "install-deps.sh: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
case "$missing" in
*:arm64*) dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64 ;;
esac
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
