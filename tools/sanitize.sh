#!/usr/bin/env bash
# Builds dnnfast with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the whole test suite under them, then a leak check of the C++ objects.
#
#   tools/sanitize.sh [WORKDIR] [pytest arguments...]
#
# WORKDIR (default: a new temporary directory) holds the venv and the build
# directory; give the same one again to rebuild incrementally. Needs GCC or
# Clang with their sanitizer runtimes (libasan, libubsan) and pip access for
# the build and test requirements. Exits non-zero on any test failure or
# sanitizer report.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$(mktemp -d -t dnnfast-sanitize.XXXXXX)}"
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p "$work"
work="$(cd "$work" && pwd)"
start=$SECONDS

[ -x "$work/venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install -q scikit-build-core pybind11 cmake ninja

# -fno-omit-frame-pointer: readable stacks in the reports. -O3 from
# CMakeLists.txt still applies (the kernels are checked as shipped);
# RelWithDebInfo adds -g for file:line in the reports.
flags="-fsanitize=address,undefined -fno-omit-frame-pointer"
pip install -q --no-build-isolation -C build-dir="$work/build" -C cmake.build-type=RelWithDebInfo \
    -C "cmake.define.CMAKE_CXX_FLAGS=$flags" \
    -C "cmake.define.CMAKE_MODULE_LINKER_FLAGS=$flags" \
    -C "cmake.define.CMAKE_SHARED_LINKER_FLAGS=$flags" \
    "$repo[test]"
echo "sanitize.sh: built in $(( SECONDS - start )) s ($work)"

# The ASan runtime must be loaded before anything else, and python is not
# built with it: preload the compiler's own (the one that built _core). The
# C++ runtime is preloaded right after it, or ASan's interceptor of C++
# exceptions finds no __cxa_throw (python does not link libstdc++) and aborts
# on the first exception the extension throws.
cxx="${CXX:-g++}"
libasan="$("$cxx" -print-file-name=libasan.so)"
libstdcxx="$("$cxx" -print-file-name=libstdc++.so)"
for lib in "$libasan" "$libstdcxx"; do
    [ -f "$lib" ] || { echo "sanitize.sh: $lib not found" >&2; exit 2; }
done
export LD_PRELOAD="$libasan $libstdcxx"
# CPython leaves much of its memory to the OS at exit by design: leak
# detection stays off for the test suite (the leak check below is targeted).
# Reports go to files as well as failing the run: pytest captures stderr, and
# a process that aborts takes its captured output with it.
logs="$work/sanitizer-report"
rm -f "$logs".*
export ASAN_OPTIONS="detect_leaks=0:log_path=$logs"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs"
report() {
    if compgen -G "$logs.*" > /dev/null; then
        cat "$logs".*
        echo "sanitize.sh: sanitizer reports above (files $logs.*)" >&2
        exit 1
    fi
}

tests_start=$SECONDS
status=0
(cd "$repo/tests" && python -m pytest -q -p no:cacheprovider "$@") || status=$?
report
[ "$status" -eq 0 ] || { echo "sanitize.sh: the test suite failed (exit $status)" >&2; exit "$status"; }
echo "sanitize.sh: test suite under ASan+UBSan took $(( SECONDS - tests_start )) s"

# Leaks in the extension's constructors and destructors: build and drop many
# networks and estimators, then let LeakSanitizer report at exit. Python's own
# leftovers are ignored; any leak whose stack passes through _core fails.
leak_log="$work/leaks.log"
ASAN_OPTIONS="detect_leaks=1:exitcode=0" python - > "$leak_log" 2>&1 <<'PY'
import gc, warnings
import numpy as np
import dnnfast
from dnnfast import MLPClassifier

X = np.random.default_rng(0).standard_normal((50, 6))
y = np.arange(50) % 3
for i in range(200):
    for dtype in ("float32", "float64"):
        net = dnnfast.Network([6, 16, 3], ["prelu", "softmax"], "cce", dtype, seed=i)
        net.fit(X, y, epochs=1, batch_size=(None, 1, 8)[i % 3], learning_rate=0.1)
        net.predict(X), net.cost(X, y), net.gradients(X, y), net.forward(X)
        del net
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for solver in ("sgd", "adam", "lbfgs"):
        MLPClassifier((8,), solver=solver, max_iter=2, random_state=0).fit(X, y).predict_proba(X)
gc.collect()
print("leak check ran")
PY
report
grep -q "leak check ran" "$leak_log" || { cat "$leak_log"; echo "sanitize.sh: leak check failed to run" >&2; exit 1; }
# A frame of the extension names its source under cpp/ or, without debug
# information, the module dnnfast/_core*.so.
if awk -v src="$repo/cpp/" '/^(Direct|Indirect) leak/{block=1}
        block && (index($0, src) || /dnnfast\/_core/){found=1} /^$/{block=0} END{exit !found}' "$leak_log"; then
    cat "$leak_log"
    echo "sanitize.sh: LeakSanitizer found leaks in dnnfast._core (log: $leak_log)" >&2
    exit 1
fi
echo "sanitize.sh: no leak in dnnfast._core ($(grep -c '^\(Direct\|Indirect\) leak' "$leak_log" || true) leak reports from the interpreter itself ignored)"
echo "sanitize.sh: clean, $(( SECONDS - start )) s in all"
