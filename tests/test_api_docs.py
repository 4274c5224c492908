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


def _documented_parameters(doc):
    """The names a numpydoc "Parameters" section lists (``a, b : type`` lines;
    ``*args`` and ``**kwargs`` as ``args`` and ``kwargs``)."""
    import re

    m = re.search(r"^Parameters\n-+\n(.*?)(?=^\w[\w ]*\n-+\n|\Z)", doc or "", re.S | re.M)
    if m is None:
        return None
    return {name.strip() for line in m.group(1).splitlines() if re.match(r"\*{0,2}\w", line)
            for name in line.split(" : ")[0].replace("*", "").split(",")}


def _public_callables():
    """Every public function of the public modules' ``__all__``, and every
    class there with its public methods (those inherited from another
    dnnfast class too; scikit-learn's own, get_params and the like, not)."""
    import importlib
    import inspect

    def ours(obj):
        return getattr(obj, "__module__", "").split(".")[0] == "dnnfast"

    seen = set()
    for module in [dnnfast] + [importlib.import_module(f"dnnfast.{m}")
                               for m in ("reference", "datasets", "batching", "estimators", "distributed")]:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and ours(obj) and obj not in seen:
                seen.add(obj)
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj) and ours(obj) and obj not in seen:
                seen.add(obj)
                # a class whose constructor is its own (History's is dict's, the warning's Warning's)
                if inspect.isfunction(obj.__init__) and ours(obj.__init__):
                    yield f"{module.__name__}.{name}", obj
                for attr in dir(obj):
                    method = inspect.getattr_static(obj, attr)
                    method = getattr(method, "__func__", method)  # staticmethod, classmethod
                    if not attr.startswith("_") and inspect.isfunction(method) and ours(method):
                        yield f"{module.__name__}.{name}.{attr}", method


@pytest.mark.parametrize("name, obj", list(_public_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_functions_document_every_parameter(name, obj):
    """README promises a numpydoc docstring for every public name; predict,
    cost, forward, gradients, save, batch_indices, set_num_threads,
    train_test_split and dnnfast.reference's functions had no Parameters
    section; nor had distributed.Context and its methods, NonFiniteError,
    and the estimators' save, to_onnx and predict_log_proba."""
    import inspect

    params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    if not params:
        return
    documented = _documented_parameters(inspect.getdoc(obj))
    assert documented is not None, f"{name}: no Parameters section"
    assert set(params) <= documented, f"{name}: {sorted(set(params) - documented)} not documented"


def test_seed_is_documented_as_taking_a_generator_as_it_does():
    """Network's and fit's docstrings said ``seed : int or None``; a
    numpy.random.Generator is taken too (and used as it is)."""
    import inspect

    import numpy as np

    from dnnfast import reference

    for obj in (dnnfast.Network, dnnfast.Network.fit, reference.Network, reference.Network.fit):
        assert "seed : int, numpy.random.Generator or None" in inspect.getdoc(obj), obj
    for cls in (dnnfast.Network, reference.Network):
        rng = np.random.default_rng(5)
        W = cls([3, 2], "softmax", seed=rng).weights[0]
        np.testing.assert_array_equal(W, cls([3, 2], "softmax", seed=5).weights[0])
        cls([3, 2], "softmax", seed=0).fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), shuffle=True, seed=rng)
