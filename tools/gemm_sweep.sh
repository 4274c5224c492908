#!/usr/bin/env bash
# Builds and runs tools/gemm_sweep.cpp: the GEMM's five loops with other tile
# shapes and cache blockings, to choose a kernel table's blocking on a new
# machine (see the notes in cpp/gemm/gemm_kernels_*.cpp).
#
#   tools/gemm_sweep.sh [avx2|avx512] [THREADS] [ROUNDS]
#
# Needs g++ with OpenMP; nothing else (no Python). The binary is left in
# $BUILD (default: a new temporary directory), so it can be copied to, and
# run on, another machine with the same instruction set.
set -euo pipefail

isa="${1:-avx2}"
threads="${2:-1}"
rounds="${3:-3}"
case "$isa" in
  avx2) isa_flags="-mavx2 -mfma" ;;
  avx512) isa_flags="-DSWEEP_AVX512 -mavx512f -mavx512dq -mavx512vl -mavx512bw -mavx2 -mfma" ;;
  *) echo "usage: $0 [avx2|avx512] [THREADS] [ROUNDS]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$(mktemp -d -t dnnfast-sweep.XXXXXX)}"
mkdir -p "$build"
cxx="${CXX:-g++} -std=c++17 -O3 -fno-trapping-math -fno-math-errno -fopenmp -DDNNFAST_X86_KERNELS -I$repo/cpp"

# The GEMM sources as CMakeLists.txt builds them: ISA flags for the
# *_avx2.cpp / *_avx512.cpp kernel tables only.
pids=()
for src in "$repo"/cpp/gemm/*.cpp "$repo"/cpp/threads.cpp; do
  name="$(basename "$src" .cpp)"
  flags=""
  case "$name" in
    *_avx512) flags="-mavx512f -mavx512dq -mavx512vl -mavx512bw -mavx2 -mfma" ;;
    *_avx2) flags="-mavx2 -mfma" ;;
  esac
  # shellcheck disable=SC2086
  $cxx $flags -c "$src" -o "$build/$name.o" & pids+=($!)
done
# shellcheck disable=SC2086
$cxx $isa_flags -c "$repo/tools/gemm_sweep.cpp" -o "$build/gemm_sweep.o" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
# shellcheck disable=SC2086
$cxx "$build"/*.o -o "$build/gemm_sweep"
echo "built $build/gemm_sweep" >&2
"$build/gemm_sweep" "$threads" "$rounds"
