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
