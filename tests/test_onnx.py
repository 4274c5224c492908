"""dnnfast.to_onnx: onnxruntime runs the exported graph to dnnfast's round-off.

"Equal to round-off" is judged with conftest's assert_close: relative 1e-6
(float32) / 1e-12 (float64), with the absolute part taken relative to the
largest output (an entry near zero only by cancellation is judged against the
size of the numbers that made it). Skipped without onnx and onnxruntime
(``pip install 'dnnfast[onnx]'``).
"""
from __future__ import annotations

import os
import re
import stat
import sys
import subprocess
import warnings

import numpy as np
import pytest

import dnnfast
from conftest import ACTIVATION_NAMES, assert_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

EXPORT_TOL = {np.float32: dict(rtol=1e-6, atol=0.0), np.float64: dict(rtol=1e-12, atol=0.0)}
BATCHES = [1, 1000]


def run(model, X):
    """onnxruntime's outputs for X (after the full checker passes the model)."""
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})


def inputs(rng, n, m, dtype):
    return (2.0 * rng.standard_normal((n, m))).astype(dtype)


def _spread_prelu(net, rng):
    for a in net.alphas:  # trained alphas differ per unit (and may be negative or above 1)
        if a is not None:
            a[...] = rng.uniform(-0.5, 1.5, a.shape)


# -- Network: every activation of the registry, hidden and at the output ------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTIVATION_NAMES)
def test_network_every_activation(act, dtype, rng):
    net = dnnfast.Network([6, 9, 8, 4], [act, act, act], loss="sse", dtype=dtype, seed=3)
    _spread_prelu(net, rng)
    model = dnnfast.to_onnx(net)
    for n in BATCHES:
        X = inputs(rng, n, 6, dtype)
        (out,) = run(model, X)
        assert out.dtype == dtype
        assert_close(out, net.predict(X), dtype, EXPORT_TOL, err_msg=f"{act} n={n}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", [("leaky_relu", {"alpha": 0.2}), ("leaky_relu", {"alpha": 1.7}),
                                 ("elu", {"alpha": 0.7}), ("elu", {"alpha": 0.1})])
def test_network_activation_parameters(act, dtype, rng):
    # alpha = 0.2 or 0.1 is no float32 number: a float32 attribute would be off by 1e-8 in float64
    net = dnnfast.Network([5, 7, 3], [act, act], loss="sse", dtype=dtype, seed=0)
    X = inputs(rng, 1000, 5, dtype)
    assert_close(run(dnnfast.to_onnx(net), X)[0], net.predict(X), dtype, EXPORT_TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_near_zero_and_far_out(dtype):
    """Per-element accuracy where the cheap ONNX forms lose it: elu's e^z - 1
    near 0, softplus far out, arctan beyond 1, exp's clip, the step at 0."""
    z = np.array([0.0, -0.0, 1e-9, -1e-9, -1e-5, 3e-4, -0.3, 0.5, -1, 1, -2.5, 7, -30, 50, -800, 800, 1e30, -1e30],
                 dtype=dtype)
    for act in ["elu", "softplus", "arctan", "binary_step", "sigmoid", "tanh", "exp", "relu",
                ("leaky_relu", {"alpha": 0.3}), "prelu"]:
        net = dnnfast.Network([1, z.size], [act], loss="sse", dtype=dtype, seed=0)
        net.weights = [z.reshape(1, -1)]
        net.biases = [np.zeros((1, z.size))]
        X = np.ones((1, 1), dtype=dtype)
        with np.errstate(all="ignore"):
            expected = net.predict(X)
        got = run(dnnfast.to_onnx(net), X)[0]
        tol = EXPORT_TOL[dtype]["rtol"] * (2 if act == "arctan" else 1)
        np.testing.assert_allclose(got, expected, rtol=tol, atol=0, err_msg=str(act))


def test_model_outputs_and_names():
    net = dnnfast.Network([3, 5, 2], ["relu", "softmax"], dtype="float64", seed=0)
    model = net.to_onnx()
    g = model.graph
    assert [i.name for i in g.input] == ["X"] and [o.name for o in g.output] == ["output"]
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [d.dim_value for d in g.output[0].type.tensor_type.shape.dim][1:] == [2]
    assert model.producer_name == "dnnfast"
    assert {op.domain for op in model.opset_import} == {""}


def test_opset_choice():
    net = dnnfast.Network([3, 2], ["softmax"], seed=0)
    assert net.to_onnx(opset=13).opset_import[0].version == 13
    X = np.ones((2, 3), np.float32)
    assert_close(run(net.to_onnx(opset=13), X)[0], net.predict(X), np.float32, EXPORT_TOL)
    for bad in (12, 10_000, 2.5, True, "17"):
        with pytest.raises(ValueError, match="opset"):
            dnnfast.to_onnx(net, opset=bad)


def test_writes_the_file(tmp_path, rng):
    net = dnnfast.Network([4, 3], ["tanh"], loss="sse", dtype="float64", seed=0)
    path = tmp_path / "net.onnx"
    proto = dnnfast.to_onnx(net, path)
    assert onnx.load(str(path)) == proto
    assert os.listdir(tmp_path) == ["net.onnx"]  # no temporary file left beside it
    X = inputs(rng, 10, 4, np.float64)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close(sess.run(None, {"X": X})[0], net.predict(X), np.float64, EXPORT_TOL)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links, FIFOs and file modes")
def test_file_is_replaced_as_save_replaces_a_model_file(tmp_path):
    """to_onnx writes its file as save does (one atomic writer): through a symbolic
    link (it replaced the link), keeping the replaced file's mode (it made 0600),
    refusing what is no regular file (it replaced a FIFO) with a ValueError naming
    the user's path (an error named its own hidden temporary)."""
    net = dnnfast.Network([4, 3], ["tanh"], loss="sse", dtype="float64", seed=0)
    real = tmp_path / "real.onnx"
    real.write_bytes(b"old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.onnx"
    os.symlink(real, link)
    proto = dnnfast.to_onnx(net, link)
    assert os.path.islink(link) and onnx.load(str(real)) == proto
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    pipe = tmp_path / "pipe.onnx"
    os.mkfifo(pipe)
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    for path, what in ((pipe, "FIFO"), (folder, "directory")):
        with pytest.raises(ValueError, match=re.escape(repr(str(path))) + f" is a {what}"):
            dnnfast.to_onnx(net, path)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and folder.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["folder.onnx", "link.onnx", "pipe.onnx", "real.onnx"]


def test_model_over_protobufs_limit_is_a_value_error_naming_the_path(tmp_path, monkeypatch):
    """protobuf serializes no message of 2 GiB or more: to_onnx(path) of such a model raised
    google.protobuf's EncodeError, naming nothing (the limit made small here); the model
    itself is still returned without a path, and the old file stays."""
    net = dnnfast.Network([4, 3], ["tanh"], loss="sse", dtype="float64", seed=0)
    path = tmp_path / "net.onnx"
    path.write_bytes(b"old")
    size = net.to_onnx().ByteSize()
    monkeypatch.setattr(dnnfast._onnx, "_MAX_PROTO", size - 1, raising=False)
    with pytest.raises(ValueError, match=re.escape(f"cannot write {str(path)!r}: the ONNX model is {size} bytes, "
                                                   "over protobuf's 2 GiB limit")):
        dnnfast.to_onnx(net, path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["net.onnx"]
    assert net.to_onnx().ByteSize() == size
    monkeypatch.setattr(dnnfast._onnx, "_MAX_PROTO", size, raising=False)
    proto = dnnfast.to_onnx(net, path)  # at the limit: written
    assert onnx.load(str(path)) == proto


def test_refuses_what_it_cannot_export():
    with pytest.raises(TypeError, match="model"):
        dnnfast.to_onnx(object())
    from dnnfast import MLPClassifier

    with pytest.raises(Exception, match="not fitted"):
        dnnfast.to_onnx(MLPClassifier())


def test_a_class_label_that_utf8_cannot_hold_is_a_value_error():
    """A lone surrogate in a string label raised a bare UnicodeEncodeError from the protobuf."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.array(["a", "b\udc80"], dtype=object)[np.arange(40) % 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="class label .* lone surrogate"):
        dnnfast.to_onnx(clf)


def test_missing_onnx_names_the_extra(tmp_path):
    """Without onnx: an ImportError that says what to install."""
    code = ("import sys; sys.modules['onnx'] = None\n"  # None in sys.modules makes `import onnx` fail
            "import dnnfast\n"
            "net = dnnfast.Network([2, 1], ['identity'], loss='sse', seed=0)\n"
            "try:\n    dnnfast.to_onnx(net)\nexcept ImportError as e:\n    print(e)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "dnnfast[onnx]" in out.stdout, out.stdout + out.stderr


# -- the estimators -------------------------------------------------------------------

def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: the fit need not converge
        return est.fit(X, y)


CLASSIFIER_TARGETS = {
    "binary": lambda X: np.where(X[:, 0] + X[:, 1] > 0, 7, -3),
    "multiclass-str": lambda X: np.array(["cat", "dog", "emu"])[np.argmax(X[:, :3], axis=1)],
    "multiclass-int": lambda X: np.argmax(X[:, :4], axis=1) * 10,
    "multilabel": lambda X: (X[:, :3] > 0).astype(int),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", list(CLASSIFIER_TARGETS))
def test_classifier(target, dtype, rng):
    from dnnfast import MLPClassifier

    X = inputs(rng, 300, 5, dtype)
    y = CLASSIFIER_TARGETS[target](X)
    clf = _fit(MLPClassifier(hidden_layer_sizes=(8, 6), activation="tanh", max_iter=20, random_state=0), X, y)
    assert clf.coefs_[0].dtype == dtype
    model = clf.to_onnx()
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    for n in BATCHES:
        Xt = inputs(rng, n, 5, dtype)
        label, proba = run(model, Xt)
        assert_close(proba, clf.predict_proba(Xt), dtype, EXPORT_TOL, err_msg=f"n={n}")
        expected = clf.predict(Xt)
        assert label.shape == expected.shape
        assert label.tolist() == expected.tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["one-output", "two-outputs", "poisson", "sigmoid-out", "prelu"])
def test_regressor(kind, dtype, rng):
    from dnnfast import MLPRegressor

    X = inputs(rng, 300, 4, dtype)
    y = X[:, 0] - 0.5 * X[:, 1] ** 2
    params = dict(hidden_layer_sizes=(7,), activation="relu", max_iter=20, random_state=0)
    if kind == "two-outputs":
        y = np.column_stack([y, X[:, 2]])
    elif kind == "poisson":
        params["loss"] = "poisson"
        y = np.exp(0.3 * X[:, 0])
    elif kind == "sigmoid-out":
        params["output_activation"] = "sigmoid"
        y = (X[:, 0] > 0).astype(dtype)
    elif kind == "prelu":
        params["activation"] = ["prelu"]
    reg = _fit(MLPRegressor(**params), X, y)
    if kind == "prelu":
        _spread_prelu_est(reg, rng)
    model = dnnfast.to_onnx(reg)
    assert [o.name for o in model.graph.output] == ["variable"]
    for n in BATCHES:
        Xt = inputs(rng, n, 4, dtype)
        (out,) = run(model, Xt)
        expected = reg.predict(Xt)
        assert_close(out, expected.reshape(n, -1), dtype, EXPORT_TOL, err_msg=f"n={n}")


def _spread_prelu_est(reg, rng):
    for a in reg.prelu_alphas_:
        if a is not None:
            a[...] = rng.uniform(-0.5, 1.5, a.shape)


# -- skl2onnx: a pipeline holding an estimator converts --------------------------------

@pytest.mark.parametrize("target", ["multiclass-str", "binary"])
def test_skl2onnx_pipeline_classifier(target, rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X = 3.0 + inputs(rng, 300, 5, np.float32)
    y = CLASSIFIER_TARGETS[target](X - 3.0)
    pipe = _fit(Pipeline([("scale", StandardScaler()),
                          ("mlp", dnnfast.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0))]), X, y)
    model = skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False})
    Xt = 3.0 + inputs(rng, 1000, 5, np.float32)
    label, proba = run(model, Xt)
    # StandardScaler runs in float32 in the graph and in float64 in scikit-learn: round-off of float32
    assert_close(proba, pipe.predict_proba(Xt), np.float32, {np.float32: dict(rtol=1e-5, atol=0.0)})
    assert np.mean(label == pipe.predict(Xt)) > 0.99  # a probability at 0.5 +- round-off may tip


def test_skl2onnx_registration_when_imported_after_dnnfast():
    """The estimators are registered when skl2onnx is imported after them (a post-import hook)."""
    pytest.importorskip("skl2onnx")
    code = ("import sys, numpy as np, dnnfast\n"
            "clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(np.eye(4), [0, 1, 1, 2])\n"
            "assert 'skl2onnx' not in sys.modules\n"
            "import skl2onnx\n"
            "m = skl2onnx.to_onnx(clf, np.eye(4, dtype=np.float32)[:1], options={'zipmap': False})\n"
            "print([o.name for o in m.graph.output])\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert "['label', 'probabilities']" in out.stdout, out.stdout + out.stderr


def test_skl2onnx_regressor_and_zipmap(rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X = inputs(rng, 200, 3, np.float64)
    reg = _fit(Pipeline([("scale", StandardScaler()),
                         ("mlp", dnnfast.MLPRegressor(hidden_layer_sizes=(6,), max_iter=20, random_state=0))]),
               X, X[:, 0] * X[:, 1])
    model = skl2onnx.to_onnx(reg, X[:1])  # float64 in: the graph computes in float64
    (out,) = run(model, X)
    assert_close(out.ravel(), reg.predict(X), np.float64, EXPORT_TOL)
    clf = _fit(dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0), X,
               CLASSIFIER_TARGETS["binary"](X))
    model = skl2onnx.to_onnx(clf, X[:1].astype(np.float32))  # skl2onnx's default: a ZipMap of probabilities
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    label, maps = sess.run(None, {"X": X[:5].astype(np.float32)})
    assert sorted(maps[0]) == [-3, 7]


def test_skl2onnx_nocl_gives_class_indices(rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    X = inputs(rng, 100, 5, np.float32)
    clf = _fit(dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0), X,
               CLASSIFIER_TARGETS["multiclass-str"](X))
    model = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False, "nocl": True})
    label, proba = run(model, X)
    assert label.tolist() == np.searchsorted(clf.classes_, clf.predict(X)).tolist()
