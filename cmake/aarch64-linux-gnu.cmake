# aarch64-linux-gnu.cmake: cross-compiles carlarl for 64-bit ARM Linux on a Debian x86_64 host, with
# Debian's cross compiler (gcc-aarch64-linux-gnu) and the arm64 multiarch -dev packages
# (libsleef-dev:arm64 and friends, in /usr/lib/aarch64-linux-gnu; tools/install-deps.sh --test
# installs them). Binaries run under qemu-aarch64-static, which ctest uses as the emulator.
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCRL_RUNTIME_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config must see only the arm64 .pc files (plus the architecture-independent ones).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# The arm64 glibc of the cross toolchain: qemu looks there first for the dynamic loader and
# libraries, then in / (where the multiarch arm64 libraries live).
set(CRL_QEMU_AARCH64 qemu-aarch64-static -L /usr/aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR ${CRL_QEMU_AARCH64})
