#!/bin/sh
# run-aarch64.sh SRC BUILD: the aarch64 ctest (aarch64_kernels, label aarch64). Cross-builds the
# runtime (CRL_RUNTIME_ONLY: no HTTP server) and its unit tests for aarch64 into BUILD with
# cmake/aarch64-linux-gnu.cmake, then runs them under qemu-aarch64-static, called explicitly (binfmt
# is not relied on). The kernel and model-parity tests run every table the CPU has, generic and
# neon; the script also fails when the neon table was not among them. Exit 77 (ctest: skipped)
# when the cross compiler, qemu or an arm64 library is missing: tools/install-deps.sh --test
# installs them.
set -eu

src=$1
build=$2
qemu="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
pcdir=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig

skip() {
    echo "run-aarch64.sh: SKIPPED: $* (tools/install-deps.sh --test installs it)" >&2
    exit 77
}
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || skip "no aarch64-linux-gnu-gcc"
command -v qemu-aarch64-static >/dev/null 2>&1 || skip "no qemu-aarch64-static"
for pc in sleef cmocka yaml-0.1 libcrypto; do
    PKG_CONFIG_LIBDIR=$pcdir pkg-config --exists $pc || skip "no arm64 $pc (pkg-config)"
done

# Every unit test of the runtime but three: test_config compares docs/configuration.md, which is
# generated on x86_64 (its "no effect" notes differ on aarch64); test_hw pins threads, which hangs
# under qemu-user; test_fmt's float-formatting sweep takes half a minute under qemu and has no
# kernel in it.
tests="test_kernels test_kernels_isa test_nn test_onnx test_zoo test_numerics test_policy
       test_example test_artifact test_card test_preproc test_predict test_philox test_semver
       test_yaml"

cmake -S "$src" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DCRL_RUNTIME_ONLY=ON -DCRL_WERROR="${CRL_WERROR:-OFF}" >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $tests

failed=""
for t in $tests; do
    log="$build/tests/$t.qemu.log"
    echo "=== $t (aarch64, qemu)"
    if $qemu "$build/tests/$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
    if [ "$rc" -ne 0 ]; then
        cat "$log"
        failed="$failed $t"
    else
        grep -E '^\[  (PASSED|INFO)|^kernels neon|neon +batch' "$log" || true
    fi
done

# The neon table must have been exercised, not skipped: by the kernel tests against generic and by
# the model-parity tests (test_zoo: the zoo's ONNX models against torch; test_numerics: the
# example artifact's golden batches).
need() { # file, pattern, what
    grep -q -e "$2" "$build/tests/$1.qemu.log" || {
        echo "run-aarch64.sh: $1 did not run the neon table ($3)" >&2
        failed="$failed $1(neon)"
    }
}
need test_kernels_isa '^\[  TABLE   \] neon' "no '[  TABLE   ] neon' line"
if grep -q '^\[  SKIP    \] neon' "$build/tests/test_kernels_isa.qemu.log"; then
    echo "run-aarch64.sh: test_kernels_isa skipped the neon table" >&2
    failed="$failed test_kernels_isa(neon)"
fi
need test_zoo '^[a-z_]* *neon  *batch' "no neon parity lines"
need test_numerics '^kernels neon:' "no 'kernels neon:' lines"

if [ -n "$failed" ]; then
    echo "run-aarch64.sh: FAILED:$failed" >&2
    exit 1
fi
echo "run-aarch64.sh: all $(echo "$tests" | wc -w) aarch64 unit tests passed under qemu (neon and generic)"
