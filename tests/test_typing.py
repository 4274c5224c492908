"""The public API is typed: ``mypy --strict`` accepts a user script that uses
it and catches a wrong keyword (``epochz=1``), which an untyped API lets pass
as Any (skipped without mypy); ``dir(dnnfast)`` lists the lazily loaded names."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import dnnfast


def test_dir_lists_the_lazy_names():
    names = dir(dnnfast)
    for name in ("MLPClassifier", "MLPRegressor", "load", "to_onnx", "Network", "datasets"):
        assert name in names
    assert set(dnnfast.__all__) <= set(names)
    # not the package file's own helpers: completion offers the API only
    assert not {"Any", "TYPE_CHECKING", "annotations", "check_thread_count"} & set(names)


@pytest.mark.parametrize("module, api", [
    ("reference", {"activation_forward", "loss_backward", "sgd_update", "gradients", "Network", "ACTIVATIONS"}),
    ("datasets", {"load_digits", "train_test_split"}),
    ("batching", {"batch_indices", "epoch_order"}),
])
def test_star_import_of_a_public_module_brings_its_api_only(module, api):
    """The modules had no __all__: `from dnnfast.reference import *` brought
    np, math, Any and the internal helpers (as_array, check_bool, ...) too."""
    import importlib

    mod = importlib.import_module(f"dnnfast.{module}")
    names: dict[str, object] = {}
    exec(f"from dnnfast.{module} import *", names)
    names.pop("__builtins__")
    assert set(names) == set(mod.__all__) and api <= set(names)
    assert all(not n.startswith("_") and getattr(names[n], "__module__", mod.__name__) == mod.__name__
               for n in names if callable(names[n])), sorted(names)


def test_the_modules_readme_names_are_attributes_after_import_dnnfast():
    """README lists datasets beside reference and distributed; `import dnnfast`
    then dnnfast.datasets.load_digits() was an AttributeError (in a fresh
    interpreter: another test's import would have set it)."""
    code = ("import dnnfast; dnnfast.datasets.load_digits(); dnnfast.reference.activation_forward; "
            "dnnfast.distributed.Context; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]

USER_SCRIPT = """
from __future__ import annotations

import numpy as np
import numpy.typing as npt

import dnnfast
from dnnfast import reference
from dnnfast.datasets import load_digits, train_test_split
from dnnfast.distributed import Context


def train(X: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> float:
    net = dnnfast.Network([4, 8, 3], ["relu", ("leaky_relu", {"alpha": 0.2})], loss="cce", seed=0)
    hist: dnnfast.History = net.fit(X, y, epochs=2, batch_size=4, optimizer="adam",
                                    validation_data=(X, y), metrics=["accuracy"])
    P: npt.NDArray[np.floating[npt.NBitBase]] = net.predict(X)
    Zs, As = net.forward(X)
    dWs, dbs = net.gradients(X, y)
    W: list[npt.NDArray[np.floating[npt.NBitBase]]] = net.weights
    clf = dnnfast.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3).fit(X, y)
    proba = clf.predict_proba(X)
    reg = dnnfast.MLPRegressor(loss="poisson").partial_fit(X, X[:, 0])
    score: float = reg.score(X, X[:, 0])
    loaded = dnnfast.load("model.npz")
    dnnfast.load(b"model.npz")  # bytes paths, as open() takes (and the docstrings say)
    net.save(b"model.npz")
    net.fit(X, y, checkpoint=b"ckpt.npz")
    if isinstance(loaded, dnnfast.MLPClassifier):
        loaded.predict(X)
    for batch in dnnfast.batch_indices(len(X), 2, shuffle=True, rng=np.random.default_rng(0)):
        net.cost(X[batch], y[batch])
    dnnfast.set_num_threads(dnnfast.get_num_threads())
    with Context() as ctx:
        ctx.agree(None)
    Xd, yd = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(Xd / 16.0, yd, test_fraction=0.25, seed=0)
    ref = reference.Network([64, 10], ["softmax"], loss="cce", dtype="float64", seed=0)
    costs: list[float] = ref.fit(Xtr, ytr, epochs=1, batch_size=32)["cost"]
    late: int = dnnfast._core.late_team_count()
    # Lists (and pandas objects, sparse X) are split too; arrays keep their dtype.
    rows: list[list[float]] = Xd[:20].tolist()
    a_tr, a_te, b_tr, b_te = train_test_split(rows, [int(v) for v in yd[:20]], test_fraction=0.5, seed=0)
    kept: npt.NDArray[np.float64] = train_test_split(Xd, yd)[0]
    # reference's functions, typed like the rest (they were untyped calls)
    Z = reference.linear_forward(Xte, ref.weights[0], ref.biases[0])
    A = reference.activation_forward("softmax", Z)
    dZ = reference.activation_backward("leaky_relu", Z, A, A, 0.2)
    dW, db, dA = reference.linear_backward(Xte, ref.weights[0], dZ, need_dA=False)
    reference.sgd_update(ref.weights[0], dW, 0.01)
    Y1 = np.eye(10)[yte]
    J: float = reference.loss_forward("cce", Y1, A) + reference.prelu_alpha_backward(Z, A).sum()
    G = reference.loss_backward("sse", Y1, A, 0.5) + reference.output_backward_fused(Y1, A, 0.5, row_sum=True)
    Zs, As = reference.forward(ref.weights, ref.biases, [("softmax", None)], Xte)
    c, gW, gb, ga = reference.gradients(ref.weights, ref.biases, [("softmax", None)], "cce", Xte, Y1)
    jac = reference.softmax_backward_literal(A[:2], A[:2]) + reference.softmax_jacobian(A[:2]).sum()
    return float(P.sum() + proba.sum() + len(hist["cost"]) + len(Zs) + len(dWs) + len(W) + score
                 + ref.predict(Xte).sum() + ref.cost(Xte, yte) + costs[0] + late)
"""


def mypy(tmp_path, code):
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(code))
    # The dnnfast under test: from the source tree (MYPYPATH) or installed (this Python's site-packages).
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(dnnfast.__file__)))
    env = dict(os.environ)
    if os.path.basename(package_root) not in ("site-packages", "dist-packages"):
        env["MYPYPATH"] = package_root
    # follow-imports=silent: dnnfast's own modules are read for their types, but
    # only the user's script is judged (it is what --strict is about here).
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
           "--cache-dir", str(tmp_path / "cache"), "--python-executable", sys.executable, str(script)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_strict_user_script_passes_and_a_wrong_keyword_fails(tmp_path):
    pytest.importorskip("mypy")
    wrong = USER_SCRIPT.replace("epochs=2", "epochz=2")
    assert wrong != USER_SCRIPT
    # One mypy run for both: the good function, and the same with the typo appended
    code = USER_SCRIPT + wrong.split("\n\n\n", 1)[1].replace("def train(", "def train_typo(")
    out = mypy(tmp_path, code)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'Unexpected keyword argument "epochz"' in errors[0], out.stdout + out.stderr


def test_the_core_stub_lists_what_the_module_has(tmp_path):
    """mypy's stubtest over dnnfast._core: late_team_count (which README
    tells users to call) and eight other functions were missing from
    _core.pyi, so typed code calling them failed. pybind11's classes have a
    metaclass of their own, which a stub does not state: that difference only is allowed."""
    pytest.importorskip("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "dnnfast._core", "--mypy-config-file", os.devnull],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    errors = [line for line in out.stdout.splitlines()
              if line.startswith("error:") and not line.endswith("is inconsistent, metaclass differs")]
    assert not errors, out.stdout[-3000:]
