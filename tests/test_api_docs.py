"""The API reference builds from the docstrings with no warning
(tools/api_docs.py treats every warning as an error). Skipped without pdoc,
or where tools/ was not copied beside tests/."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import dnnfast

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "api_docs.py")


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("pdoc")
    if not os.path.exists(SCRIPT):
        pytest.skip("tools/api_docs.py is not beside this tests/ folder")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(dnnfast.__file__)))] + [p for p in sys.path if p]))
    out = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    page = (tmp_path / "dnnfast.html").read_text()
    for name in ("Network.fit", "MLPClassifier.predict_proba", "MLPRegressor", "to_onnx", "load", "batch_indices"):
        assert f'id="{name}"' in page, name
    assert (tmp_path / "dnnfast" / "distributed.html").exists()


def test_the_readme_python_examples_run_in_order(tmp_path):
    """README.md's Python blocks, run one after the other as a reader would
    (each may use the names of those above it), in a scratch folder. The
    training-options block used X_val, defined nowhere. The MPI script runs
    as one rank (no mpiexec needed); blocks needing an optional extra that
    is absent are skipped with it."""
    import importlib.util
    import re
    import subprocess
    import sys

    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")
    if not os.path.isfile(readme):
        pytest.skip("README.md of the source tree is not here")
    with open(readme, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 5
    needs = {"onnxruntime": "onnxruntime", "to_onnx": "onnx", "Context": "mpi4py", "MLPClassifier": "sklearn"}
    code = []
    for block in blocks:
        missing = [m for word, m in needs.items() if word in block and importlib.util.find_spec(m) is None]
        code.append(f"print('skipped: needs {missing}')" if missing else block)
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(code))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
