#!/usr/bin/env bash
# Cross-compiles the C++ core (no Python) for aarch64 with Debian's
# g++-aarch64-linux-gnu, exactly the sources CMakeLists.txt compiles there (the
# *_avx2.cpp / *_avx512.cpp files left out by name), plus tests/cpp/isa_driver.cpp,
# and runs the driver under qemu-aarch64: the portable kernel tables against
# the reference GEMM, and a few ops. The ISA files are also compiled for
# aarch64 on their own, to show that their x86-64 guard leaves them empty.
#
#   tests/cpp/run_aarch64.sh [BUILD_DIR]
#
# Installs g++-aarch64-linux-gnu / qemu-user with apt-get when missing and
# possible (root); otherwise says what is skipped and exits 0.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$(mktemp -d -t dnnfast-aarch64.XXXXXX)}"
mkdir -p "$build"
start=$SECONDS
log() { echo "run_aarch64: $*"; }

cxx=aarch64-linux-gnu-g++
need=()
command -v "$cxx" > /dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 > /dev/null || need+=(qemu-user)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" > /dev/null
  else
    log "SKIPPED: ${need[*]} missing and apt-get not usable: the aarch64 build and run are not checked"
    exit 0
  fi
fi

flags=(-std=c++17 -O2 -fno-trapping-math -fno-math-errno -fopenmp -Wall -Wextra -Werror -I"$repo/cpp")
# As CMakeLists.txt: the vector maths fuses a*b+c only where it says so, and
# GCC contracts by default on aarch64.
file_flags() {
  case "$1" in
    */vmath_*.cpp) echo -ffp-contract=off ;;
  esac
}
srcs=()
isa=()
for f in "$repo"/cpp/gemm/*.cpp "$repo"/cpp/nn/*.cpp "$repo"/cpp/threads.cpp; do
  case "$f" in
    *_avx2.cpp|*_avx512.cpp) isa+=("$f") ;;
    */nn/network.cpp|*/nn/linear.cpp|*/nn/optimizers.cpp) ;;  # not needed by the driver
    *) srcs+=("$f") ;;
  esac
done
# Two compilers at a time (CI's machine has two cores).
objs=()
pids=()
for f in "${srcs[@]}" "$repo/tests/cpp/isa_driver.cpp"; do
  o="$build/$(basename "$f" .cpp).o"
  objs+=("$o")
  "$cxx" "${flags[@]}" $(file_flags "$f") -c "$f" -o "$o" & pids+=($!)
  if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
for f in "${isa[@]}"; do
  o="$build/isa_$(basename "$f" .cpp).o"
  "$cxx" "${flags[@]}" $(file_flags "$f") -c "$f" -o "$o"
  if aarch64-linux-gnu-nm --defined-only "$o" | grep -q .; then
    log "FAIL: $(basename "$f") defines symbols on aarch64: its x86-64 guard is missing"
    exit 1
  fi
done
"$cxx" "${flags[@]}" -static "${objs[@]}" -o "$build/isa_driver"
log "built in $(( SECONDS - start )) s (${#srcs[@]} core files; ${#isa[@]} ISA files empty on aarch64)"
OMP_NUM_THREADS=2 qemu-aarch64 "$build/isa_driver"
log "passed in $(( SECONDS - start )) s"
