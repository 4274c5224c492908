#!/usr/bin/env bash
# Proves that the installed dnnfast runs on every x86-64 CPU: no code built
# with AVX/AVX2/AVX-512 flags executes before the run-time CPU check (the rule
# in cpp/gemm/cpu_features.cpp), and the kernel table each CPU gets works.
#
#   .ci/check_isa.sh [PYTHON]     (PYTHON: a venv's python with dnnfast installed;
#                                  default: python on PATH)
#
# On x86-64:
#  a. static scan of the installed extension (.ci/isa_scan.py): no VEX/EVEX
#     instruction, ymm/zmm/k register outside the dnnfast::isa_* functions
#     (section .text.dnnfast_isa), no direct call into them from generic code;
#  b. under qemu-x86_64 -cpu Nehalem (SSE4.2, no AVX: the baseline NumPy >= 2.4
#     needs) and -cpu Haswell (AVX2 + FMA, no AVX-512): the package imported
#     and used (.ci/isa_smoke.py: both dtypes, Network fit/predict,
#     MLPClassifier fit, the kernel name, which must be generic on Nehalem and
#     avx2 on Haswell), then a sample of tests/test_gemm.py. First, a probe
#     shows that qemu enforces the model (an AVX2 instruction dies with SIGILL
#     under Nehalem).
# Everywhere (x86-64 hosts): the C++ core cross-compiled for aarch64 and run
# under qemu-aarch64 (tests/cpp/isa_driver.cpp: GEMM against the reference
# kernel, a few ops), when g++-aarch64-linux-gnu is there or apt-get can
# install it; otherwise that part is skipped, and said so.
# Installs qemu-user / binutils / the cross compiler with apt-get when they are
# missing and apt-get is usable (CI runs as root). Exits non-zero on failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(command -v "${1:-python}")"
# Absolute, without resolving the venv's symlink (that would leave the venv).
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
start=$SECONDS
log() { echo "check_isa: $*"; }
elapsed() { echo "$(( SECONDS - start )) s"; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; }
apt_updated=0
apt_install() {  # apt_install PACKAGE...: quiet, once-updated
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null
}

arch="$(uname -m)"
so="$("$py" -c 'import dnnfast._core as c; print(c.__file__)')"
log "extension $so ($arch), python $py"

if [ "$arch" != x86_64 ]; then
  log "not an x86-64 machine: the x86 checks do not apply; kernel $("$py" -c 'from dnnfast import _core; print(_core.gemm_kernel_name())')"
  exit 0
fi

need=()
command -v objdump > /dev/null || need+=(binutils)
command -v qemu-x86_64 > /dev/null || need+=(qemu-user)
if [ "${#need[@]}" -gt 0 ]; then
  if can_apt; then
    log "installing ${need[*]}"
    apt_install "${need[@]}"
  else
    log "FAIL: ${need[*]} missing and apt-get not usable here"
    exit 1
  fi
fi

# --- other architectures, alongside the x86 checks --------------------------
# The aarch64 build and run (one core, mostly) overlap the x86 emulation
# (one core): together they took 6 of CI's minutes one after the other. It
# starts after the apt-get above, since its own apt-get would wait on the lock.
a64="$(mktemp -d -t dnnfast-aarch64.XXXXXX)"
trap 'rm -rf "$a64"' EXIT
"$repo/tests/cpp/run_aarch64.sh" "$a64/work" > "$a64/log" 2>&1 &
a64_pid=$!

# --- a. static scan --------------------------------------------------------
"$py" "$repo/.ci/isa_scan.py" "$so"
log "scan done at $(elapsed)"

# --- b. under emulated CPU models -------------------------------------------
# The environment must not pick instruction sets for the emulated CPU:
# OPENBLAS_CORETYPE (set on some machines to the host's CPU) makes NumPy's
# OpenBLAS use Haswell kernels even under -cpu Nehalem, and
# DNNFAST_GEMM_KERNEL would override dnnfast's own choice. One thread: this
# is about instructions, and OpenMP's spinning is slow under emulation.
emu_env=(env -u OPENBLAS_CORETYPE -u DNNFAST_GEMM_KERNEL OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
         PYTHONDONTWRITEBYTECODE=1)
# qemu warns about CPUID bits of the model that TCG does not emulate (pcid,
# x2apic, ...), on every start; only that noise is dropped.
qemu() {
  local cpu="$1"; shift
  "${emu_env[@]}" qemu-x86_64 -cpu "$cpu" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2)
}

# Does qemu enforce the model? An AVX2 instruction must die (SIGILL, 132)
# under Nehalem and run under Haswell. Without a C compiler this is skipped.
cc="$(command -v cc || command -v gcc || command -v c++ || true)"
if [ -n "$cc" ]; then
  probe="$(mktemp -d)"
  printf 'int main(void) { __asm__ volatile("vpxor %%%%ymm0, %%%%ymm0, %%%%ymm0" ::: "xmm0"); return 0; }\n' > "$probe/avx2.c"
  "$cc" -O0 -o "$probe/avx2" -x c "$probe/avx2.c"
  set +e
  qemu Nehalem "$probe/avx2" 2> /dev/null; rc_n=$?
  qemu Haswell "$probe/avx2"; rc_h=$?
  set -e
  rm -rf "$probe"
  if [ "$rc_n" != 132 ] || [ "$rc_h" != 0 ]; then
    log "FAIL: qemu does not enforce the CPU model (AVX2 probe: Nehalem rc $rc_n, expected 132; Haswell rc $rc_h, expected 0)"
    exit 1
  fi
  log "qemu enforces the model: AVX2 probe SIGILL under Nehalem, runs under Haswell"
else
  log "no C compiler: the probe that qemu enforces the CPU model is skipped"
fi

# A sample of the GEMM tests: edge tiles, the small-M and rank-1 paths, K
# beyond KC, all four transposes, both dtypes, alpha/beta. Under Nehalem for
# every table it can run (generic and generic512); under Haswell for the
# avx2 table only, with one of the twelve thread-split cases. The generic
# tables' cases have run under Nehalem by then, and the split test runs 1-3
# OpenMP threads, whose barriers spin slowly under emulation: 20 s a case.
# The whole sample took 325 s under Haswell on an Intel host, which put CI
# past 15 minutes. Every case runs natively in the test suite.
sample='(fast_matches_reference and (-7-17-9- or -29-65-193- or -1-784-256- or -37-45-1100-))'
sample+=' or (alpha_beta and -15-33-65-) or rank1_gemv or small_paths_split'
for model in Nehalem:generic Haswell:avx2; do
  cpu="${model%%:*}"; kernel="${model##*:}"
  only="$sample"
  [ "$kernel" = generic ] || only="($sample) and $kernel and (not small_paths_split or $kernel-0-float32)"
  t0=$SECONDS
  log "qemu-x86_64 -cpu $cpu: expecting kernel table $kernel"
  (cd "$repo/tests" && qemu "$cpu" "$py" "$repo/.ci/isa_smoke.py" "$kernel")
  (cd "$repo/tests" && qemu "$cpu" "$py" -m pytest -q -p no:cacheprovider test_gemm.py -k "$only")
  log "-cpu $cpu passed in $(( SECONDS - t0 )) s"
done

# --- the aarch64 run started above ------------------------------------------
set +e
wait "$a64_pid"; rc_a64=$?
set -e
cat "$a64/log"
if [ "$rc_a64" != 0 ]; then
  log "FAIL: the aarch64 build or run (rc $rc_a64)"
  exit 1
fi

log "OK in $(elapsed)"
