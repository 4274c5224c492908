"""scikit-learn's own sklearn/neural_network/tests/test_mlp.py, run on dnnfast's
estimators.

The file is read from the installed scikit-learn at test time, its one import
of the estimators swapped for dnnfast's, and its tests collected here (skipped
without scikit-learn). Tests that reach into scikit-learn's private solver or
loss objects cannot run on another implementation: they are listed in
DESELECTED with the reason, and everything else must pass.
"""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

IMPORT_LINE = "from sklearn.neural_network import MLPClassifier, MLPRegressor"

# name -> why it cannot run on dnnfast's estimators
DESELECTED = {
    "test_gradient": "calls scikit-learn's private MLPClassifier._loss_grad_lbfgs with its per-layer "
                     "buffers (dnnfast's gradient check is MLPClassifier.check_gradients)",
}


def _load_sklearn_test_mlp():
    spec = importlib.util.find_spec("sklearn.neural_network.tests.test_mlp")
    if spec is None or spec.origin is None:
        pytest.skip("this scikit-learn ships without its tests", allow_module_level=True)
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    # A scikit-learn whose file no longer has this line must fail here, not
    # silently test scikit-learn against itself.
    assert source.count(IMPORT_LINE) == 1, f"{spec.origin} no longer imports the estimators as expected"
    source = source.replace(IMPORT_LINE, "from dnnfast.estimators import MLPClassifier, MLPRegressor")
    module = types.ModuleType("sklearn_test_mlp_on_dnnfast")
    module.__file__ = spec.origin
    sys.modules[module.__name__] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


_mlp_tests = _load_sklearn_test_mlp()
assert _mlp_tests.MLPClassifier.__module__.startswith("dnnfast"), "the import swap did not take"
assert set(DESELECTED) <= {n for n in vars(_mlp_tests) if n.startswith("test_")}, "a stale DESELECTED entry"

for _name, _obj in vars(_mlp_tests).items():
    if _name.startswith("test_") and callable(_obj) and _name not in DESELECTED:
        globals()[_name] = _obj


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture of the same name (its default seed, 42)."""
    return 42
