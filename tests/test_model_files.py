"""Model files: ``save`` / ``dnnfast.load`` round trips bit for bit, writes
atomically, and refuses every damaged, forged or newer file with a ValueError
before allocating what it claims. Pickle and deepcopy work too."""
from __future__ import annotations

import copy
import gc
import io
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import dnnfast
from dnnfast import MLPClassifier, MLPRegressor
from dnnfast import _archive

warnings.filterwarnings("ignore", message="Stochastic Optimizer")


def _data(n=40, m=4, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, m))


def _net(dtype="float64", fused=True):
    net = dnnfast.Network([4, 6, 5, 3], ["prelu", ("leaky_relu", {"alpha": 0.2}), "softmax"], loss="cce",
                          dtype=dtype, seed=1, fused=fused)
    X = _data()
    net.fit(X, np.arange(40) % 3, epochs=3, batch_size=8, learning_rate=0.1, shuffle=True)
    return net, X


def _clf(kind="multiclass", **kw):
    X = _data()
    y = {"binary": (X[:, 0] > 0).astype(int),
         "multiclass": np.array(["ant", "bee", "cat"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)],
         "multilabel": np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 1], axis=1).astype(int)}[kind]
    kw = {"hidden_layer_sizes": (7, 5), "max_iter": 8, "random_state": 0, **kw}
    return MLPClassifier(**kw).fit(X, y), X, y


def _reg(outputs=1, **kw):
    X = _data()
    y = np.sin(X[:, :outputs]) + X[:, 1:1 + outputs] ** 2
    kw = {"hidden_layer_sizes": (6,), "max_iter": 8, "random_state": 0, **kw}
    return MLPRegressor(**kw).fit(X, y.ravel() if outputs == 1 else y), X, y.ravel() if outputs == 1 else y


def _listing(d):
    return sorted(os.listdir(d))


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fused", [True, False])
def test_network_round_trip_is_bit_identical(tmp_path, dtype, fused):
    net, X = _net(dtype, fused)
    path = tmp_path / "net.npz"
    net.save(path)
    back = dnnfast.load(path)
    assert isinstance(back, dnnfast.Network)
    assert (back.sizes, back.activations, back.loss, back.dtype, back.fused) == \
        (net.sizes, net.activations, net.loss, net.dtype, net.fused)
    assert back._acts == net._acts  # the leaky_relu alpha 0.2 included
    np.testing.assert_array_equal(back.parameters, net.parameters)
    np.testing.assert_array_equal(back.alphas[0], net.alphas[0])
    assert not np.all(net.alphas[0] == 0.25)  # the prelu alphas were trained, and kept
    assert back.predict(X).tobytes() == net.predict(X).tobytes()
    # The shuffling generator is saved too: training continues identically.
    y = np.arange(40) % 3
    h1 = net.fit(X, y, epochs=2, batch_size=8, learning_rate=0.1, shuffle=True)
    h2 = back.fit(X, y, epochs=2, batch_size=8, learning_rate=0.1, shuffle=True)
    assert h1.cost == h2.cost
    np.testing.assert_array_equal(back.parameters, net.parameters)


@pytest.mark.parametrize("loss,acts", [("sse", ["elu", "identity"]), ("mse", ["tanh", "relu"]),
                                       ("bce", ["softplus", "sigmoid"])])
def test_network_losses_and_activations_round_trip(tmp_path, loss, acts):
    net = dnnfast.Network([4, 3, 2], acts, loss=loss, dtype="float32", seed=3)
    net.save(str(tmp_path / "n.npz"))
    back = dnnfast.load(str(tmp_path / "n.npz"))
    assert back.loss == loss and back.activations == net.activations
    X = _data().astype(np.float32)
    assert back.predict(X).tobytes() == net.predict(X).tobytes()


def test_version_is_the_projects():
    """__version__, which every model file's header records, is pyproject.toml's
    version, whether the core was built by pip or by a plain CMake build."""
    pyproject = pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("pyproject.toml is not beside tests/")
    lines = [ln for ln in pyproject.read_text().splitlines() if ln.startswith("version = ")]
    assert len(lines) == 1
    assert dnnfast.__version__ == lines[0].split('"')[1]


def test_file_is_plain_numpy_without_pickle(tmp_path):
    net, _ = _net()
    net.save(tmp_path / "n.npz")
    with np.load(tmp_path / "n.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(["header", "W1", "b1", "alpha1", "W2", "b2", "W3", "b3"])
        header = json.loads(z["header"].tobytes().decode("utf-8"))
        assert z["W1"].shape == (4, 6) and z["W1"].dtype == np.float64
        np.testing.assert_array_equal(z["W2"], net.weights[1])
    assert header["format"] == "dnnfast-model" and header["format_version"] == 2
    assert header["dnnfast_version"] == dnnfast.__version__
    assert header["kind"] == "Network" and header["sizes"] == [4, 6, 5, 3]
    assert header["activations"][1] == {"name": "leaky_relu", "alpha": 0.2}
    assert (header["loss"], header["dtype"], header["fused"]) == ("cce", "float64", True)


def test_same_model_gives_same_bytes(tmp_path):
    net, _ = _net()
    net.save(tmp_path / "a.npz")
    net.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def _same_fitted(a, b, X, timing=True):
    for name in ("n_iter_", "t_", "loss_", "n_layers_", "n_outputs_", "n_features_in_", "out_activation_"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
        assert hasattr(a, name) == hasattr(b, name), name
        if hasattr(a, name):
            assert getattr(a, name) == getattr(b, name), name
    assert set(a.history_) == set(b.history_)
    for key in a.history_:
        if key == "time" and not timing:  # seconds measured during the continued fits
            continue
        np.testing.assert_array_equal(a.history_[key], b.history_[key])
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert u.dtype == v.dtype and u.tobytes() == v.tobytes()
    assert a.get_params() == b.get_params()
    assert a.predict(X).tobytes() == b.predict(X).tobytes()


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_classifier_round_trip(tmp_path, kind):
    clf, X, y = _clf(kind)
    clf.save(tmp_path / "c.npz")
    back = dnnfast.load(tmp_path / "c.npz")
    assert type(back) is MLPClassifier
    _same_fitted(clf, back, X)
    assert back.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    assert back.predict_proba(X).tobytes() == clf.predict_proba(X).tobytes()
    assert back.score(X, y) == clf.score(X, y)


def test_classifier_object_labels_class_weight_and_prelu(tmp_path):
    X = _data()
    y = np.array(["no", "yes"], dtype=object)[(X[:, 0] > 0).astype(int)]
    clf = MLPClassifier((5,), activation=["prelu"], max_iter=6, random_state=2, class_weight={"yes": 2.0},
                        n_iter_no_change=np.inf).fit(X, y)
    # Labels kept as Python str objects (as a LabelBinarizer fitted on objects keeps them).
    clf.classes_ = clf._label_binarizer.classes_ = clf.classes_.astype(object)
    clf.save(tmp_path / "c.npz")
    back = dnnfast.load(tmp_path / "c.npz")
    assert back.classes_.dtype == object and list(back.classes_) == ["no", "yes"]
    assert back.get_params()["class_weight"] == {"yes": 2.0} and back.n_iter_no_change == np.inf
    assert back.activation == ["prelu"]
    np.testing.assert_array_equal(back.prelu_alphas_[0], clf.prelu_alphas_[0])
    assert list(back.predict(X)) == list(clf.predict(X))


@pytest.mark.parametrize("outputs", [1, 3])
def test_regressor_round_trip(tmp_path, outputs):
    reg, X, y = _reg(outputs)
    reg.save(tmp_path / "r.npz")
    back = dnnfast.load(tmp_path / "r.npz")
    assert type(back) is MLPRegressor
    _same_fitted(reg, back, X)


@pytest.mark.parametrize("kw", [dict(loss="poisson"), dict(output_activation="relu", activation="tanh"),
                                dict(solver="lbfgs"), dict(solver="sgd", early_stopping=True, max_iter=12)])
def test_regressor_variants_round_trip(tmp_path, kw):
    pytest.importorskip("scipy")
    X = _data()
    y = np.abs(X[:, 0]) + 0.5
    reg = MLPRegressor(**{"hidden_layer_sizes": (6,), "max_iter": 8, "random_state": 0, **kw}).fit(X, y)
    reg.save(tmp_path / "r.npz")
    _same_fitted(reg, dnnfast.load(tmp_path / "r.npz"), X)


def test_float32_estimator_round_trip(tmp_path):
    X = _data().astype(np.float32)
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, X[:, 0] * 2)
    reg.save(tmp_path / "r.npz")
    back = dnnfast.load(tmp_path / "r.npz")
    assert back.coefs_[0].dtype == np.float32
    _same_fitted(reg, back, X)


@pytest.mark.parametrize("solver,kw", [("adam", {}), ("sgd", {"momentum": 0.9}),
                                       ("sgd", {"learning_rate": "invscaling", "nesterovs_momentum": False})])
def test_loaded_classifier_continues_partial_fit_like_the_original(tmp_path, solver, kw):
    clf, X, y = _clf("multiclass", solver=solver, learning_rate_init=0.05, **kw)
    clf.save(tmp_path / "c.npz")
    back = dnnfast.load(tmp_path / "c.npz")
    for _ in range(3):
        clf.partial_fit(X, y)
        back.partial_fit(X, y)
    _same_fitted(clf, back, X, timing=False)


def test_loaded_regressor_continues_warm_start_like_the_original(tmp_path):
    reg, X, y = _reg(2, warm_start=True, solver="sgd", learning_rate_init=0.01)
    reg.save(tmp_path / "r.npz")
    back = dnnfast.load(tmp_path / "r.npz")
    reg.fit(X, y)
    back.fit(X, y)
    _same_fitted(reg, back, X, timing=False)


def test_random_state_instance_is_saved_with_its_state(tmp_path):
    X = _data()
    y = X[:, 0]
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=np.random.RandomState(7), warm_start=True).fit(X, y)
    reg.save(tmp_path / "r.npz")
    back = dnnfast.load(tmp_path / "r.npz")
    assert isinstance(back.random_state, np.random.RandomState)
    reg.fit(X, y)   # the shuffles draw from the instance: both continue from the same state
    back.fit(X, y)
    assert back.coefs_[0].tobytes() == reg.coefs_[0].tobytes()


def test_feature_names_round_trip(tmp_path):
    reg, X, _ = _reg()
    reg.feature_names_in_ = np.array(["a", "bb", "ccc", "d"], dtype=object)
    reg.save(tmp_path / "r.npz")
    back = dnnfast.load(tmp_path / "r.npz")
    assert back.feature_names_in_.dtype == object and list(back.feature_names_in_) == ["a", "bb", "ccc", "d"]


@pytest.mark.parametrize("names", [["a", "b\0", "c", "d"], ["a", "b", "c", "\0"]])
def test_feature_name_ending_in_nul_is_refused_by_save(tmp_path, names):
    """The file holds the names as a NumPy str array, which drops trailing NULs: 'b\\0'
    was saved as 'b', and the loaded model refused the DataFrame it was fitted on.
    save refuses such a name, naming the attribute, and writes nothing."""
    reg, X, _ = _reg()
    reg.feature_names_in_ = np.array(names, dtype=object)
    with pytest.raises(ValueError, match=r"cannot save feature_names_in_: .* ends with a NUL character"):
        reg.save(tmp_path / "r.npz")
    assert _listing(tmp_path) == []


def test_feature_name_past_unicode_raises_value_error(tmp_path):
    """A UCS-4 unit above U+10FFFF is no character: load refuses it (it loaded, and
    the first tolist() of the names raised SystemError)."""
    reg, X, _ = _reg()
    reg.feature_names_in_ = np.array(["a", "bb", "ccc", "d"], dtype=object)
    reg.save(tmp_path / "r.npz")
    header, arrays = _members(tmp_path / "r.npz")
    arrays["feature_names_in"] = arrays["feature_names_in"].copy()
    arrays["feature_names_in"].view(np.uint32)[-3] = 0x110000  # the last character of "ccc"
    _write(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ValueError, match="feature_names_in.*above U\\+10FFFF"):
        dnnfast.load(tmp_path / "bad.npz")


def test_strings_that_utf8_cannot_encode_round_trip(tmp_path):
    """A lone surrogate is a Python str (a DataFrame column, a label, a class_weight
    key may hold one) that UTF-8 cannot encode: the header is written with non-ASCII
    characters escaped, so it saves and loads back (save raised UnicodeEncodeError)."""
    X = _data()
    y = np.array(["a", "\ud800", "\u00e9"], dtype=object)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)]
    clf = MLPClassifier((5,), max_iter=4, random_state=0, class_weight={"\ud800": 2.0, "\u00e9": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    clf.feature_names_in_ = np.array(["x\udfff", "\u00b5m", "c", "d"], dtype=object)
    clf.save(tmp_path / "c.npz")
    raw = np.load(tmp_path / "c.npz")["header"].tobytes()
    assert raw.isascii() and b"\\ud800" in raw
    back = dnnfast.load(tmp_path / "c.npz")
    assert back.get_params()["class_weight"] == {"\ud800": 2.0, "\u00e9": 0.5}
    assert list(back.feature_names_in_) == ["x\udfff", "\u00b5m", "c", "d"]
    assert list(back.classes_) == list(clf.classes_)
    assert list(back.predict(X)) == list(clf.predict(X))
    back.save(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "c.npz").read_bytes()


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        MLPClassifier().save(tmp_path / "c.npz")
    assert _listing(tmp_path) == []


def test_unsaveable_parameter_raises_and_leaves_the_old_file(tmp_path):
    reg, X, _ = _reg()
    path = tmp_path / "r.npz"
    reg.save(path)
    before = path.read_bytes()
    reg.set_params(hidden_layer_sizes={6})  # a set: no file form (an array or a range is saved as a list)
    with pytest.raises(TypeError, match="hidden_layer_sizes"):
        reg.save(path)
    assert path.read_bytes() == before and _listing(tmp_path) == ["r.npz"]


_WITHOUT_SKLEARN = """
import importlib.abc, json, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "scipy"):
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, _Block())
import numpy as np, dnnfast
clf = dnnfast.load(sys.argv[1])
X = np.load(sys.argv[2])
out = {"sklearn": "sklearn" in sys.modules, "proba": clf.predict_proba(X).tolist(),
       "labels": clf.predict(X).tolist()}
clf.partial_fit(X, clf.predict(X))
clf.save(sys.argv[1])
print(json.dumps(out))
"""


def test_file_moves_between_installs_with_and_without_sklearn(tmp_path):
    clf, X, _ = _clf("multiclass")
    clf.save(tmp_path / "c.npz")
    np.save(tmp_path / "X.npy", X)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_WITHOUT_SKLEARN), str(tmp_path / "c.npz"),
                           str(tmp_path / "X.npy")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sklearn"] is False
    assert np.asarray(out["proba"]).tobytes() == clf.predict_proba(X).tobytes()
    assert out["labels"] == clf.predict(X).tolist()
    # ... and what it saved there, after one more epoch, loads here.
    back = dnnfast.load(tmp_path / "c.npz")
    assert back.n_iter_ == 1 and back.t_ == clf.t_ + X.shape[0]
    clf.partial_fit(X, clf.predict(X))
    assert back.predict_proba(X).tobytes() == clf.predict_proba(X).tobytes()


# ---------------------------------------------------------------------------
# Pickle and deepcopy
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_network_pickles_and_deepcopies(dtype):
    net, X = _net(dtype)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert other._net is not net._net
        assert other.predict(X).tobytes() == net.predict(X).tobytes()
        other.weights[0][:] = 0  # an independent buffer
        assert np.any(net.weights[0] != 0)


def test_network_unpickles_a_state_without_its_derived_sizes():
    # What _check_size derives from `sizes` is derived again on unpickling:
    # a state from an older version, without some of it, predicts the same.
    net, X = _net("float32")
    state = net.__getstate__()
    for key in ("_ws_per_row", "_predict_rows"):
        state.pop(key)
    state["_predict_as_is"] = (np.dtype("float32"), 0, 0)  # an older version's form of _predict_rows
    other = dnnfast.Network.__new__(dnnfast.Network)
    other.__setstate__(state)
    assert other.predict(X).tobytes() == net.predict(X).tobytes()
    assert other.predict(X[:1]).tobytes() == net.predict(X[:1]).tobytes()
    assert "_predict_as_is" not in other.__dict__


def test_loaded_estimator_pickles(tmp_path):
    clf, X, _ = _clf()
    clf.save(tmp_path / "c.npz")
    back = pickle.loads(pickle.dumps(dnnfast.load(tmp_path / "c.npz")))
    assert back.predict_proba(X).tobytes() == clf.predict_proba(X).tobytes()


# ---------------------------------------------------------------------------
# Paths and atomic writes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", [None, 3, 2.5, ["a.npz"], object()])
def test_bad_path_types_raise_naming_path(path):
    net, _ = _net()
    with pytest.raises(TypeError, match="path"):
        net.save(path)
    with pytest.raises(TypeError, match="path"):
        dnnfast.load(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        dnnfast.load(tmp_path / "absent.npz")


def _crash_after(n_calls, exc=OSError("disk full")):
    """A stand-in for the archive's member writer that writes n_calls arrays, then fails midway
    through the next."""
    real = _archive._write_npy
    calls = [0]

    def write_npy(fp, array):
        calls[0] += 1
        if calls[0] > n_calls:
            fp.write(b"\x93NUMPY partial")
            raise exc
        return real(fp, array)
    return write_npy


@pytest.mark.parametrize("n_calls", [0, 1, 4])
def test_crash_mid_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, n_calls):
    net, _ = _net()
    path = tmp_path / "model.npz"
    net.save(path)
    before, saved = path.read_bytes(), net.weights[0].copy()
    net.weights[0][:] += 1.0
    monkeypatch.setattr(_archive, "_write_npy", _crash_after(n_calls))
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["model.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(dnnfast.load(path).weights[0], saved)


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_failed_fsync_or_rename_keeps_the_old_file(tmp_path, monkeypatch, step):
    net, _ = _net()
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(f"{step} failed")
    monkeypatch.setattr(_archive.os, step, fail)
    with pytest.raises(OSError, match=f"{step} failed"):
        net.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and _listing(tmp_path) == ["model.npz"]


def test_interrupt_mid_save_removes_the_temporary(tmp_path, monkeypatch):
    net, _ = _net()
    monkeypatch.setattr(_archive, "_write_npy", _crash_after(2, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        net.save(tmp_path / "new.npz")
    assert _listing(tmp_path) == []


def test_a_signal_as_the_temporary_is_opened_leaves_no_temporary(tmp_path, monkeypatch):
    """A SIGTERM handler's SystemExit (or a Ctrl-C) raised as the open of the
    temporary returned, before its result was bound, left the temporary
    beside the target until the next save there, and its descriptor open."""
    from dnnfast import _archive

    net, _ = _net()
    real_open, real_fileio = os.open, io.FileIO

    def open_then_signal(path, *args, **kwargs):  # whichever way the save opens it
        fd = real_open(path, *args, **kwargs)
        if b".tmp" in os.fsencode(path):
            raise SystemExit(3)  # fd is lost, as in the real case
        return fd

    def fileio_then_signal(path, *args, **kwargs):
        f = real_fileio(path, *args, **kwargs)
        if b".tmp" in os.fsencode(path):
            raise SystemExit(3)  # f is dropped, as in the real case
        return f

    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()
    monkeypatch.setattr(os, "open", open_then_signal)
    monkeypatch.setattr(_archive, "io", type("io", (), {"FileIO": staticmethod(fileio_then_signal)}))
    with pytest.raises(SystemExit):
        net.save(tmp_path / "new.npz")
    monkeypatch.undo()
    assert _listing(tmp_path) == []
    if before:
        leaked = set(os.listdir("/proc/self/fd")) - before
        assert not [os.readlink(f"/proc/self/fd/{fd}") for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")]


def test_a_ctrl_c_inside_a_zip_member_is_raised_as_itself(tmp_path, monkeypatch):
    """A Ctrl-C landing inside a member's close (zipfile's writing flag still
    set) came out of save as zipfile's ValueError ("Can't close the ZIP file
    while there is an open writing handle"), which a caller's ``except
    ValueError`` swallowed; the old file stays as it was."""
    import zipfile

    net, _ = _net()
    target = tmp_path / "m.npz"
    net.save(target)
    old = target.read_bytes()

    def interrupted_close(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile._ZipWriteFile, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt):
        net.save(target)
    monkeypatch.undo()
    gc.collect()  # the dropped ZipFile's __del__ must not write into anything either
    assert target.read_bytes() == old and _listing(tmp_path) == ["m.npz"]


def test_an_interrupt_as_load_opens_the_file_closes_its_descriptor_once(tmp_path, monkeypatch):
    """A Ctrl-C landing as os.fdopen returned the file object: dropping the
    object closed the descriptor, then load's own cleanup closed the number
    again, by then another file's (OSError EBADF, or another thread's file
    closed under it)."""
    from dnnfast import _archive

    net, _ = _net()
    net.save(tmp_path / "m.npz")
    real_fdopen = os.fdopen
    other = []

    def fdopen_then_interrupt(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        del f  # the interrupt drops the object: fd closed
        other.append(open(tmp_path / "m.npz", "rb"))  # another thread's file takes the number
        raise KeyboardInterrupt

    monkeypatch.setattr(_archive.os, "fdopen", fdopen_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        dnnfast.load(tmp_path / "m.npz")
    monkeypatch.undo()
    with other[0] as f:
        assert f.read(2) == b"PK"  # still open


def test_save_into_a_missing_directory_raises_and_creates_nothing(tmp_path):
    net, _ = _net()
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "no" / "such" / "dir.npz")
    assert _listing(tmp_path) == []


# ---------------------------------------------------------------------------
# Damaged, forged and newer files
# ---------------------------------------------------------------------------

def _members(path):
    """(header dict, {name: array}) of a valid file, read independently of dnnfast."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("header").tobytes()), arrays


def _write(path, header, arrays, compression=zipfile.ZIP_STORED, header_bytes=None):
    """A forged file: any header (dict or raw bytes) and arrays, as a .npz."""
    raw = header_bytes if header_bytes is not None else json.dumps(header).encode()
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, arr in {"header": np.frombuffer(raw, np.uint8), **arrays}.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
            zf.writestr(name + ".npy", buf.getvalue())


def test_poisson_regressor_file_with_the_output_stored_as_identity_loads_as_exp(tmp_path):
    """Before exp joined the core's registry, a Poisson regressor's file stored
    its output activation as identity (exp was applied outside the core)."""
    X = _data()
    y = np.floor(2 * np.exp(0.5 * X[:, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(5,), max_iter=4, random_state=0).fit(X, y)
    reg.save(tmp_path / "new.npz")
    header, arrays = _members(tmp_path / "new.npz")
    assert header["activations"][-1] == {"name": "exp"}
    header["activations"][-1] = {"name": "identity"}
    _write(tmp_path / "old.npz", header, arrays)
    old = dnnfast.load(tmp_path / "old.npz")
    assert old.out_activation_ == "exp"
    np.testing.assert_array_equal(old.predict(X), reg.predict(X))


@pytest.mark.parametrize("kind", ["net", "clf"])
def test_format_version_1_files_load(tmp_path, kind):
    """Format version 2 changed only a checkpoint's history (arrays, no longer header
    lists; tests/test_fit_driver.py reads such checkpoints): a version 1 file loads."""
    X = _data()
    path = _good(tmp_path, kind)
    header, arrays = _members(path)
    assert header["format_version"] == 2
    header["format_version"] = 1
    _write(tmp_path / "v1.npz", header, arrays)
    new, old = dnnfast.load(path), dnnfast.load(tmp_path / "v1.npz")
    np.testing.assert_array_equal(old.predict(X), new.predict(X))


def _good(tmp_path, kind="net"):
    path = tmp_path / "good.npz"
    if kind == "net":
        _net()[0].save(path)
    else:
        _clf()[0].save(path)
    return path


def _at(data, frac):
    return int(len(data) * frac)


def _flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 0xFF
    return bytes(b)


def _raw_corruptions():
    """name -> function(bytes of a valid file) -> bytes."""
    def central_directory(d):
        return _flip(d, d.rfind(b"PK\x01\x02") + 20)  # compressed size of the last member

    def header_member(d):
        return _flip(d, d.find(b'"format"') + 3)

    def array_data(d):
        return _flip(d, d.find(b"W2.npy") + 200)

    return {
        "empty": lambda d: b"",
        "not_a_zip": lambda d: b"just some text, not an archive\n" * 10,
        "truncated_to_4_bytes": lambda d: d[:4],
        "truncated_at_10pct": lambda d: d[:_at(d, 0.1)],
        "truncated_at_half": lambda d: d[:_at(d, 0.5)],
        "truncated_at_90pct": lambda d: d[:_at(d, 0.9)],
        "last_byte_missing": lambda d: d[:-1],
        "end_record_missing": lambda d: d[:d.rfind(b"PK\x05\x06")],
        "byte_flipped_in_header": header_member,
        "byte_flipped_in_array_data": array_data,
        "byte_flipped_in_zip_directory": central_directory,
        "zeroed_middle": lambda d: d[:_at(d, 0.3)] + bytes(_at(d, 0.2)) + d[_at(d, 0.5):],
    }


@pytest.mark.parametrize("name", list(_raw_corruptions()))
@pytest.mark.parametrize("kind", ["net", "clf"])
def test_damaged_bytes_raise_value_error(tmp_path, name, kind):
    good = _good(tmp_path, kind)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(_raw_corruptions()[name](good.read_bytes()))
    with pytest.raises(ValueError):
        dnnfast.load(bad)


def _header_forgeries():
    """name -> (function(header, arrays) -> (header, arrays) edited in place or anew, message regex)."""
    def setter(key, value):
        def f(h, a):
            h[key] = value
        return f

    def drop(key):
        def f(h, a):
            del h[key]
        return f

    def arrays(fn):
        def f(h, a):
            fn(a)
        return f

    def huge(h, a):
        h["sizes"] = [100_000, 100_000, 5, 3]
        a["W1"] = np.zeros((1, 1))

    def nan_weight(a):
        a["W2"] = a["W2"].copy()
        a["W2"][1, 1] = np.nan

    def inf_bias(a):
        a["b1"] = a["b1"].copy()
        a["b1"][0] = np.inf

    def unknown_activation(h, a):
        h["activations"][0]["name"] = "swish"

    def alpha_missing(h, a):
        del h["activations"][1]["alpha"]

    def alpha_not_finite_in_the_dtype(h, a):  # the promise "refused at construction, and so at load"
        h["dtype"] = "float32"
        for k in list(a):
            if a[k].dtype == np.float64:
                a[k] = a[k].astype(np.float32)
        h["activations"][1]["alpha"] = 1e300

    def newer_version_by_control_text(h, a):
        h["format_version"] = 3
        h["dnnfast_version"] = "9\n\x1b[2J\x1b]0;x\x07\ud800"

    return {
        "wrong_format_name": (setter("format", "other-format"), "not a dnnfast model file"),
        "newer_version": (setter("format_version", 3), r"format version 3.*reads format versions 1 to 2"),
        # The file's text is repr'd in messages, never raw: terminal escapes, a newline, a lone
        # surrogate (which made the message unwritable to a UTF-8 log).
        "newer_version_by_control_text": (newer_version_by_control_text,
                                          re.escape(r"written by dnnfast '9\n\x1b[2J\x1b]0;x\x07\ud800')")),
        "version_zero": (setter("format_version", 0), "unknown model format version"),
        "version_as_string": (setter("format_version", "1"), "format_version must be an integer"),
        "missing_sizes": (drop("sizes"), "sizes"),
        "missing_kind": (drop("kind"), "kind"),
        "unknown_field": (setter("comment", "x"), "unknown field"),
        "unknown_kind": (setter("kind", "SVM"), "kind"),
        "dtype_float16": (setter("dtype", "float16"), "dtype"),
        "dtype_not_matching_arrays": (setter("dtype", "float32"), "dtype"),
        "negative_size": (setter("sizes", [4, -6, 5, 3]), "sizes"),
        "zero_size": (setter("sizes", [4, 0, 5, 3]), "sizes"),
        "bool_size": (setter("sizes", [4, True, 5, 3]), "sizes"),
        "float_size": (setter("sizes", [4, 6.0, 5, 3]), "sizes"),
        "huge_sizes": (huge, "bytes of arrays but the file has"),
        "size_beyond_bound": (setter("sizes", [4, 2**40, 5, 3]), "sizes"),
        "sizes_not_a_list": (setter("sizes", "4,6,5,3"), "sizes"),
        "unknown_activation": (unknown_activation, "unknown activation"),
        "activation_alpha_missing": (alpha_missing, "alpha"),
        "activation_alpha_infinite_in_float32": (alpha_not_finite_in_the_dtype, "alpha.*not finite in float32"),
        "unknown_loss": (setter("loss", "hinge"), "loss"),
        "fused_not_bool": (setter("fused", 1), "fused"),
        "rng_malformed": (setter("rng", {"bit_generator": "MT19937"}), "rng"),
        "rng_without_bit_generator": (lambda h, a: h["rng"].pop("bit_generator"),
                                      r"header\.rng: missing field\(s\) \['bit_generator'\]"),
        "fortran_order": (arrays(lambda a: a.__setitem__("W1", np.asfortranarray(a["W1"]))),
                          "W1.*Fortran order"),
        "wrong_shape": (arrays(lambda a: a.__setitem__("W1", a["W1"].T.copy())), "shape"),
        "wrong_array_dtype": (arrays(lambda a: a.__setitem__("b2", a["b2"].astype(np.float32))), "dtype"),
        "int_weights": (arrays(lambda a: a.__setitem__("W3", a["W3"].astype(np.int64))), "dtype"),
        "extra_array": (arrays(lambda a: a.__setitem__("W4", np.zeros((3, 3)))), "unexpected.*W4"),
        "missing_array": (arrays(lambda a: a.pop("alpha1")), "missing.*alpha1"),
        "nan_weight": (arrays(nan_weight), "NaN"),
        "inf_bias": (arrays(inf_bias), "NaN or infinity"),
        "pickled_object_array": (arrays(lambda a: a.__setitem__("b3", np.array([{"x": 1}, 2, 3], dtype=object))),
                                 "dtype"),
    }


def _assert_forgery_raises(tmp_path, good, forgery):
    """Apply forgery = (edit, match) to the members of the good file; load must raise ValueError(match)."""
    header, arrays = _members(good)
    edit, match = forgery
    edit(header, arrays)
    bad = tmp_path / "bad.npz"
    _write(bad, header, arrays)
    with pytest.raises(ValueError, match=match) as info:
        dnnfast.load(bad)
    assert str(info.value).isprintable()


@pytest.mark.parametrize("name", list(_header_forgeries()))
def test_forged_files_raise_value_error_naming_the_problem(tmp_path, name):
    _assert_forgery_raises(tmp_path, _good(tmp_path), _header_forgeries()[name])


def test_forged_huge_network_does_not_allocate(tmp_path):
    header, arrays = _members(_good(tmp_path))
    header["sizes"] = [50_000, 50_000, 50_000, 3]  # 40 GB of float64 parameters
    bad = tmp_path / "bad.npz"
    _write(bad, header, arrays)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="implies"):
            dnnfast.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_save_peak_memory(tmp_path):
    """An Adam estimator's save peaked at 7 copies of its parameters (tracemalloc): an
    index array to reorder the optimizer state into the file's order, built from pieces,
    twice (the save's dry run too), the reordered moments, and NumPy's 16 MiB chunk of
    each array as it was written. Reordered by runs and written as they lie: 3 copies
    (the two reordered moments among them). A checkpoint's: 3, now 1."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 50)), rng.standard_normal(16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(300, 300), max_iter=1, random_state=0).fit(X, y)
    net = dnnfast.Network([50, 300, 300, 1], ["relu", "relu", "identity"], loss="sse", seed=0)
    net.fit(X, y[:, None], epochs=1, optimizer="adam", checkpoint=tmp_path / "cp.npz")
    from dnnfast._network_file import save_checkpoint
    from dnnfast._train.state import TrainState
    state = TrainState(net.num_params, net.dtype, "adam", np.random.default_rng(0))
    copy = net.num_params * 8
    for save, most in [(lambda: reg.save(tmp_path / "r.npz"), 3.5),
                       (lambda: save_checkpoint(net, tmp_path / "cp.npz", state.to_record([])), 1.5)]:
        save()  # imports
        tracemalloc.start()
        try:
            save()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < most * copy, f"{peak / copy:.2f} copies"
    back = dnnfast.load(tmp_path / "r.npz")
    assert back.predict(X).tobytes() == reg.predict(X).tobytes()
    assert back._optimizer["state2"].tobytes() == reg._optimizer["state2"].tobytes()


@pytest.mark.parametrize("raw,match", [
    (b"\xff\xfe not utf-8", "UTF-8"), (b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"),
    (b'{"format": NaN}', "not allowed"), (b"", "JSON"),
    # Python's own message named neither the header nor the rule ("Exceeds the limit (4300
    # digits) for integer string conversion ... use sys.set_int_max_str_digits()").
    # JSON keeps a repeated key's last value: which one is meant is not known.
    (b'{"format": "dnnfast-model", "sizes": [1], "format": "x"}', "header: the key 'format' appears twice"),
    (b'{"rng": {"state": "0x1", "state": "0x2"}}', "header: the key 'state' appears twice"),
    (b'{"format_version": -' + b"9" * 5000 + b"}", "header: an integer of 5000 digits is too long; a model file's "
                                                  "have at most 4300"),
    (b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
])
def test_bad_header_text_raises_value_error(tmp_path, raw, match):
    _, arrays = _members(_good(tmp_path))
    bad = tmp_path / "bad.npz"
    _write(bad, None, arrays, header_bytes=raw)
    with pytest.raises(ValueError, match=match):
        dnnfast.load(bad)


def test_header_longer_than_the_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """JSON parsing takes up to ~25 times its text in memory: a 30 MB header of
    "[]," took 752 MB before "missing field". Its length is bounded first (the
    limit made small here to keep the test small)."""
    monkeypatch.setattr(_archive, "_MAX_HEADER", 4096, raising=False)
    _, arrays = _members(_good(tmp_path))
    bad = tmp_path / "bad.npz"
    raw = b'{"format":"dnnfast-model","junk":[' + b"[]," * 2000 + b"[]]}"
    _write(bad, None, arrays, header_bytes=raw)
    parsed = []
    monkeypatch.setattr(_archive.json, "loads", lambda *a, **k: parsed.append(1))
    with pytest.raises(ValueError, match=rf"cannot load {re.escape(repr(str(bad)))}: the header is {len(raw)} "
                                         r"bytes of JSON; a model file's header is at most 4096"):
        dnnfast.load(bad)
    assert not parsed


def test_save_refuses_a_header_that_load_would_refuse_for_its_length(tmp_path, monkeypatch):
    """The writer and the reader bound the header alike: a header of exactly the
    limit saves and loads, one byte over is refused by save and nothing is written."""
    from dnnfast import _network_file

    net = _net()[0]
    length = _network_file._network_header(net).size
    path = tmp_path / "m.npz"
    monkeypatch.setattr(_archive, "_MAX_HEADER", length, raising=False)
    net.save(path)
    np.testing.assert_array_equal(dnnfast.load(path).parameters, net.parameters)
    monkeypatch.setattr(_archive, "_MAX_HEADER", length - 1, raising=False)
    with pytest.raises(ValueError, match=rf"cannot save: dnnfast.load would refuse the file \(the header is "
                                         rf"{length} bytes of JSON; a model file's header is at most {length - 1}"):
        net.save(tmp_path / "n.npz")
    assert not (tmp_path / "n.npz").exists()


def test_archive_level_forgeries_raise_value_error(tmp_path):
    header, arrays = _members(_good(tmp_path))
    bad = tmp_path / "bad.npz"
    _write(bad, header, arrays, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="compressed"):
        dnnfast.load(bad)
    _write(bad, header, {})  # only a header
    with pytest.raises(ValueError, match="missing"):
        dnnfast.load(bad)
    _write(bad, header, {k: v for k, v in arrays.items()})
    with zipfile.ZipFile(bad, "a") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zf.writestr("W1.npy", b"duplicate")
    with pytest.raises(ValueError, match="repeated"):
        dnnfast.load(bad)
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("W1.npy", b"")
    with pytest.raises(ValueError, match="header"):
        dnnfast.load(bad)
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("notes.txt", b"hello")
    with pytest.raises(ValueError, match="notes.txt"):
        dnnfast.load(bad)


def test_newer_version_that_changes_the_archive_is_refused_as_newer(tmp_path):
    """A newer format may change the archive itself (compressed members, a member that
    is no array): its header's version is read before the members are checked, so
    the refusal says which version the file is, as Compatibility promises (it was
    "member 'W1.npy' is compressed", "unexpected ... member 'notes.json'")."""
    header, arrays = _members(_good(tmp_path))
    bad = tmp_path / "bad.npz"

    def write(version, header_compression=zipfile.ZIP_STORED, compression=zipfile.ZIP_STORED, extra=()):
        members = {"header": np.frombuffer(json.dumps({**header, "format_version": version}).encode(), np.uint8),
                   **arrays}
        with zipfile.ZipFile(bad, "w") as zf:
            for name, arr in members.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr)
                zf.writestr(name + ".npy", buf.getvalue(),
                            compress_type=header_compression if name == "header" else compression)
            for name, data in extra:
                zf.writestr(name, data)

    newer = r"format version 3 .*reads format versions 1 to 2: upgrade dnnfast to read it"
    for kw in [dict(compression=zipfile.ZIP_DEFLATED), dict(extra=[("notes.json", b"{}")])]:
        write(3, **kw)
        with pytest.raises(ValueError, match=newer):
            dnnfast.load(bad)
        write(2, **kw)  # this version's file: refused for its members, as ever
        with pytest.raises(ValueError, match="compressed" if "compression" in kw else "unexpected.*notes.json"):
            dnnfast.load(bad)
    # Only a header member stored as this version stores it, and only one, is read first.
    write(3, header_compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="member 'header.npy' is compressed"):
        dnnfast.load(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile: "Duplicate name"
        write(3, extra=[("header.npy", b"another")])
    with pytest.raises(ValueError, match="repeated archive member 'header.npy'"):
        dnnfast.load(bad)


def test_header_array_must_be_bytes(tmp_path):
    header, arrays = _members(_good(tmp_path))
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, arr in {"header": np.array([json.dumps(header)]), **arrays}.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr)
            zf.writestr(name + ".npy", buf.getvalue())
    with pytest.raises(ValueError, match="header.*dtype"):
        dnnfast.load(bad)


def test_directory_path_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        dnnfast.load(tmp_path)


def _estimator_forgeries():
    def fitted(key, value):
        def f(h, a):
            h["fitted"][key] = value
        return f

    def param(key, value):
        def f(h, a):
            h["params"][key] = value
        return f

    def drop_param(h, a):
        del h["params"]["solver"]

    def classes_count(h, a):
        a["classes"] = a["classes"][:2]
        h["fitted"]["classes"]["length"] = 2

    def classes_unsorted(h, a):
        a["classes"] = a["classes"][::-1].copy()

    def classes_object(h, a):
        h["fitted"]["classes"]["dtype"] = "|O"

    def optimizer_nan(h, a):
        a["optimizer_state1"] = a["optimizer_state1"].copy()
        a["optimizer_state1"][3] = np.nan

    def second_moment_negative(h, a):
        a["optimizer_state2"] = a["optimizer_state2"].copy()
        a["optimizer_state2"][3] = -1e-9

    def optimizer_rate(rate):
        def f(h, a):
            h["fitted"]["optimizer"]["learning_rate"] = rate
        return f

    def solver_setting(key, value):
        def f(h, a):
            h["fitted"]["optimizer"]["settings"][key] = value
        return f

    def solver_settings_not_a_dict(h, a):
        h["fitted"]["optimizer"]["settings"] = 3

    def class_past_unicode(h, a):
        a["classes"] = a["classes"].copy()  # ["ant", "bee", "cat"]: the last one's last character
        a["classes"].view(np.uint32)[-1] = 0x110000

    return {
        "bad_solver": (param("solver", "newton"), "solver"),
        "missing_param": (drop_param, "missing.*solver"),
        "unknown_param": (param("gamma", 1.0), "unknown.*gamma"),
        "unknown_value_tag": (param("alpha", {"complex": [1, 2]}), "unknown value form"),
        # The key went into the message as it was: a terminal escape, a newline, a lone surrogate.
        "param_key_unprintable": (param("a\x1b[2J\n\ud800", {"complex": [1]}), r"header\.params\['a\\x1b"),
        "hidden_sizes_mismatch": (param("hidden_layer_sizes", {"tuple": [7, 6]}), "hidden_layer_sizes"),
        "activation_mismatch": (param("activation", "tanh"), "parameters describe"),
        "bad_y_type": (fitted("y_type", "continuous"), "y_type"),
        "classes_count": (classes_count, "classes"),
        "classes_unsorted": (classes_unsorted, "sorted"),
        "classes_object_dtype": (classes_object, "classes.dtype"),
        "bad_out_activation": (fitted("out_activation", "logistic"), "out_activation"),
        "negative_n_iter": (fitted("n_iter", -1), "n_iter"),
        "history_length_lies": (fitted("history", 10**9), "implies|shape"),
        "optimizer_nan": (optimizer_nan, "NaN"),
        # A rate of -5 loaded and ran gradient ascent in partial_fit; negative
        # second moments ended in a NonFiniteError blaming the data.
        "optimizer_rate_negative": (optimizer_rate(-5.0), "learning_rate must be >= 0"),
        "optimizer_rate_tiny_negative": (optimizer_rate(-1e-300), "learning_rate must be >= 0"),
        "second_moment_negative": (second_moment_negative, "optimizer_state2.*negative"),
        # The solver's own settings, which partial_fit goes on with: checked as the parameters are.
        "solver_setting_momentum": (solver_setting("momentum", 5.0), "settings.*momentum"),
        "solver_setting_epsilon": (solver_setting("epsilon", -1.0), "settings.*epsilon"),
        "solver_setting_schedule": (solver_setting("learning_rate", "cosine"), "settings.*learning_rate"),
        "solver_setting_type": (solver_setting("nesterovs_momentum", 1), "settings.*nesterovs_momentum"),
        "solver_setting_other_solver": (solver_setting("solver", "lbfgs"), "settings.solver"),
        "solver_setting_unknown": (solver_setting("gamma", 1.0), "settings.*unknown.*gamma"),
        "solver_settings_not_a_dict": (solver_settings_not_a_dict, "settings must be a dict"),
        # numpy keeps such a unit; tolist() or printing the labels raised SystemError.
        "class_past_unicode": (class_past_unicode, "classes.*above U\\+10FFFF"),
        "loss_not_a_number": (fitted("loss", "low"), "loss"),
        "huge_int_param": (param("max_iter", 10**400), "out of range"),
        "bad_random_state": (param("random_state", -5), "random_state|seed"),
        "non_finite_without_tag": (param("tol", 1e999), "not allowed"),
        # As docs/model_files.md says: every dict is the {"dict": ...} tag, and loss_curve
        # is a length (the writer never writes null there).
        "dict_as_plain_object": (param("class_weight", {"ant": 2.0}), r"class_weight.*unknown value form"),
        "loss_curve_null": (fitted("loss_curve", None), r"loss_curve must be an integer"),
    }


@pytest.mark.parametrize("name", list(_estimator_forgeries()))
def test_forged_estimator_files_raise_value_error(tmp_path, name):
    _assert_forgery_raises(tmp_path, _good(tmp_path, "clf"), _estimator_forgeries()[name])


def test_estimator_file_without_solver_settings_goes_on_with_its_parameters(tmp_path):
    """Files written before the solver state kept its settings load, and
    partial_fit goes on with the saved parameters, as it did then."""
    clf, X, y = _clf()
    header, arrays = _members(_good(tmp_path, "clf"))
    del header["fitted"]["optimizer"]["settings"]
    _write(tmp_path / "old.npz", header, arrays)
    old, new = dnnfast.load(tmp_path / "old.npz"), dnnfast.load(tmp_path / "good.npz")
    assert old._optimizer["settings"] == new._optimizer["settings"]
    old.partial_fit(X, y)
    new.partial_fit(X, y)
    for a, b in zip(old.coefs_ + old.intercepts_, new.coefs_ + new.intercepts_):
        assert a.tobytes() == b.tobytes()


def _deep_net():
    return dnnfast.Network([1] * (_archive._MAX_LAYERS + 2), "identity", loss="sse", seed=0)


def _fitted(est_class, **kw):
    X = _data()
    y = kw.pop("y", (X[:, 0] > 0).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est_class(**{"hidden_layer_sizes": (3,), "max_iter": 2, "random_state": 0, **kw}).fit(X, y)


@pytest.mark.parametrize("case,match", [
    ("deep network", "layer sizes"),
    ("deep checkpoint", "layer sizes"),
    ("long feature names", "feature_names_in"),
])
def test_save_refuses_what_load_would_refuse(tmp_path, case, match):
    """Each of these was written and then refused by dnnfast.load (a
    checkpoint after every epoch, and resume failing); save now refuses it,
    naming the reader's rule, and writes nothing."""
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=rf"cannot save: dnnfast.load would refuse the file.*{match}"):
        if case == "deep network":
            _deep_net().save(path)
        elif case == "deep checkpoint":
            _deep_net().fit(np.ones((4, 1)), np.ones((4, 1)), epochs=1, checkpoint=path)
        else:
            pd = pytest.importorskip("pandas")
            X = pd.DataFrame(_data(), columns=["a" * (2**20 + 1)] + [f"c{i}" for i in range(_data().shape[1] - 1)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, X.iloc[:, 0]).save(path)
    assert not path.exists()


def test_what_fit_takes_save_writes(tmp_path):
    """float16 labels (their classes_ float16, as scikit-learn's) and integer parameters
    beyond 2**63 (scikit-learn's max_iter has no upper bound) fitted, and save refused
    them: the reader took neither. They round-trip."""
    X = _data()
    y16 = (X[:, 0] > 0).astype(np.float16) + np.float16(2)
    cases = [(MLPClassifier, dict(y=y16)),
             (MLPClassifier, dict(max_iter=2**64, tol=10.0)),  # stopped by tol after n_iter_no_change epochs
             (MLPClassifier, dict(max_iter=3, batch_size=2**70, n_iter_no_change=2**100)),
             (MLPRegressor, dict(y=X[:, 1], max_iter=2**64 + 1, tol=10.0, solver="lbfgs", max_fun=10**30))]
    for i, (est_class, kw) in enumerate(cases):
        est = _fitted(est_class, **kw)
        path = tmp_path / f"m{i}.npz"
        est.save(path)
        back = dnnfast.load(path)
        assert back.get_params() == est.get_params()
        _same_fitted(est, back, X)
        if "y" in kw and est_class is MLPClassifier:
            assert back.classes_.dtype == np.float16
            np.testing.assert_array_equal(back.classes_, [2, 3])
            np.testing.assert_array_equal(back.predict(X), est.predict(X))
    header, _ = _members(tmp_path / "m1.npz")
    assert header["params"]["max_iter"] == {"int": hex(2**64)}
    assert header["params"]["hidden_layer_sizes"] == {"tuple": [3]}
    header, _ = _members(tmp_path / "m2.npz")
    assert header["params"]["n_iter_no_change"] == {"int": hex(2**100)}


@pytest.mark.parametrize("body,match", [("0x10", "plain number, not a tag"), ("0x010000000000000000", "unknown value"),
                                        ("16", "unknown value"), ("0X10000000000000000", "unknown value"),
                                        (2**64, "unknown value")])
def test_integer_tags_are_checked(tmp_path, body, match):
    """Integers beyond 2**63 are tagged hex, one form per value: anything else is refused."""
    est = _fitted(MLPClassifier, max_iter=2**64, tol=10.0)
    est.save(tmp_path / "m.npz")
    header, arrays = _members(tmp_path / "m.npz")
    header["params"]["max_iter"] = {"int": body}
    _write(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ValueError, match=match):
        dnnfast.load(tmp_path / "bad.npz")
    header["params"]["max_iter"] = 2**64  # a plain number that large is not one dnnfast writes
    _write(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ValueError, match=r"max_iter'\]: integer out of range"):
        dnnfast.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("est_class,params,match", [
    (MLPClassifier, {"hidden_layer_sizes": (7,)}, r"hidden_layer_sizes \[7\] do not match the saved layers \[3\]"),
    (MLPClassifier, {"hidden_layer_sizes": (3, 3)}, "do not match the saved layers"),
    (MLPClassifier, {"max_iter": 0}, "max_iter"),
    (MLPClassifier, {"batch_size": 0}, "batch_size"),
    (MLPClassifier, {"learning_rate_init": -1.0}, "learning_rate_init"),
    (MLPClassifier, {"random_state": "x"}, "random_state"),
    (MLPRegressor, {"loss": "poisson"}, "out_activation"),
])
def test_save_after_set_params_refuses_what_load_would_refuse(tmp_path, est_class, params, match):
    """set_params after fit leaves a model that predicts, but whose file
    dnnfast.load refused; the save wrote it anyway, over the good file. It
    now runs the reader's checks, refuses, and leaves the old file."""
    est = _fitted(est_class)
    path = tmp_path / "m.npz"
    est.save(path)
    before = path.read_bytes()
    est.set_params(**params)
    with pytest.raises(ValueError, match=rf"cannot save: dnnfast.load would refuse the file.*{match}.*set_params"):
        est.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    # the parameters that load accepts save again
    est.set_params(**{k: est_class().get_params()[k] if k != "hidden_layer_sizes" else (3,) for k in params})
    if "max_iter" in params:
        est.set_params(max_iter=2)
    if "random_state" in params:
        est.set_params(random_state=0)
    est.save(path)
    np.testing.assert_array_equal(dnnfast.load(path).predict(_data()), est.predict(_data()))


@pytest.mark.parametrize("case", ["hidden sizes as an array", "hidden sizes as a range", "rate underflowed to 0"])
def test_what_fit_accepts_saves_and_loads(tmp_path, case):
    """hidden_layer_sizes as an array or a range (array-like, as scikit-learn
    documents) had no file form; an invscaling rate that underflowed to 0 was
    written and refused on reading."""
    if case == "hidden sizes as an array":
        est = _fitted(MLPClassifier, hidden_layer_sizes=np.array([4, 3]))
    elif case == "hidden sizes as a range":
        est = _fitted(MLPClassifier, hidden_layer_sizes=range(3, 5))
    else:
        est = _fitted(MLPClassifier, solver="sgd", learning_rate="invscaling", power_t=186.0,
                      learning_rate_init=1e-30, max_iter=1)
        assert est._optimizer["learning_rate"] == 0.0
    est.save(tmp_path / "m.npz")
    back = dnnfast.load(tmp_path / "m.npz")
    X = _data()
    assert back.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
    assert [c.shape for c in back.coefs_] == [c.shape for c in est.coefs_]


def test_a_write_that_fails_without_a_file_name_names_the_path(tmp_path, monkeypatch):
    """A full disk fails the write or the fsync with an OSError naming no file
    (ENOSPC); the error now names the path saved to, as documented."""
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = tmp_path / "m.npz"
    net, _ = _net()
    net.save(path)
    old = path.read_bytes()
    monkeypatch.setattr(_archive.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as info:
        net.save(path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.npz"]


def test_every_truncation_of_a_small_file_raises_value_error(tmp_path):
    net = dnnfast.Network([2, 1], "sigmoid", loss="bce", seed=0)
    good = tmp_path / "good.npz"
    net.save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    for cut in range(0, len(data), 7):
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            dnnfast.load(bad)


def test_load_accepts_pathlib_and_str(tmp_path):
    net, X = _net()
    net.save(str(tmp_path / "a.npz"))
    assert dnnfast.load(pathlib.Path(tmp_path / "a.npz")).predict(X).tobytes() == net.predict(X).tobytes()


# -- what predict refuses is never written -----------------------------------

def _edited_models():
    """A Network and an estimator each with one weight set to NaN in place."""
    net, X = _net()
    net.weights[1][0, 0] = np.nan
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, np.arange(40) % 3)
    clf.coefs_[0][0, 0] = np.inf
    return [("Network", net, "weights, biases or alphas"), ("MLPClassifier", clf, "coefs_, intercepts_")]


@pytest.mark.parametrize("which", [0, 1], ids=["Network", "MLPClassifier"])
def test_save_refuses_a_parameter_edited_to_nan_and_keeps_the_old_file(tmp_path, which):
    """predict refuses such a model and dnnfast.load would refuse its file: save
    says so before writing, and the good file already at the path stays."""
    name, model, attrs = _edited_models()[which]
    path = tmp_path / "model.npz"
    good = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(_data(), np.arange(40) % 2)
    good.save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"^save: the parameters contain NaN or infinity \(first in layer \d, W: "
                                         + attrs):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    dnnfast.load(path)


@pytest.mark.parametrize("which", [0, 1], ids=["Network", "MLPClassifier"])
def test_to_onnx_refuses_a_parameter_edited_to_nan(tmp_path, which):
    pytest.importorskip("onnx")
    name, model, attrs = _edited_models()[which]
    with pytest.raises(ValueError, match=r"^to_onnx: the parameters contain NaN or infinity"):
        model.to_onnx(tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_adam_second_moments_overflowed_to_infinity_save_and_load(tmp_path):
    """A float32 fit on large gradients overflows some of Adam's second
    moments to +inf while the weights stay finite (those weights' steps are
    then 0): save and every checkpoint wrote a file that load refused
    ("holds NaN or infinity"), over the good one. +inf loads; the model goes
    on as the original; NaN or a negative value is still refused."""
    est = _fitted(MLPRegressor, solver="adam", y=_data()[:, 0].astype(np.float32))
    state2 = est._optimizer["state2"]
    state2[:3] = np.inf
    path = tmp_path / "m.npz"
    est.save(path)
    back = dnnfast.load(path)
    np.testing.assert_array_equal(back._optimizer["state2"], state2)
    X, y = _data(), _data()[:, 0]
    est.partial_fit(X, y)
    back.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, back.coefs_ + back.intercepts_):
        assert a.tobytes() == b.tobytes()
    assert all(np.isfinite(c).all() for c in back.coefs_)
    header, arrays = _members(path)
    arrays["optimizer_state2"] = arrays["optimizer_state2"].copy()
    arrays["optimizer_state2"][3] = np.nan
    _write(tmp_path / "nan.npz", header, arrays)
    with pytest.raises(ValueError, match="'optimizer_state2' holds NaN"):
        dnnfast.load(tmp_path / "nan.npz")


def test_an_integer_tag_in_a_float_field_is_refused_naming_it(tmp_path):
    """Format version 2's integer tags reached the float fields: an integer
    beyond the float range there was 'damaged archive (OverflowError: int too
    large to convert to float)', naming no field."""
    huge = {"int": "0x" + "f" * 300}
    est = _fitted(MLPClassifier)
    est.save(tmp_path / "m.npz")
    header, arrays = _members(tmp_path / "m.npz")
    header["fitted"]["loss"] = huge
    _write(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ValueError, match=r"fitted\.loss: an integer beyond the float range"):
        dnnfast.load(tmp_path / "bad.npz")
    net = dnnfast.Network([3, 4, 2], ["relu", "softmax"], seed=0)
    X = np.random.default_rng(0).normal(size=(20, 3))
    net.fit(X, np.arange(20) % 2, epochs=2, checkpoint=tmp_path / "c.npz")
    header, arrays = _members(tmp_path / "c.npz")
    header["training"]["best"] = huge
    _write(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ValueError, match=r"training\.best: an integer beyond the float range"):
        dnnfast.load(tmp_path / "bad.npz")


def test_a_float_parameter_may_be_a_large_integer_as_in_scikit_learn(tmp_path):
    """alpha=2**64 (scikit-learn takes it) was numpy's "ufunc 'isfinite' not
    supported" TypeError; an int beyond the float range is refused naming it."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = X[:, 0]
    est = MLPRegressor(hidden_layer_sizes=(3,), alpha=2**64, max_iter=2).fit(X, y)
    est.save(tmp_path / "m.npz")
    assert dnnfast.load(tmp_path / "m.npz").alpha == 2**64
    with pytest.raises(ValueError, match="'alpha' parameter"):
        MLPRegressor(alpha=10**400, max_iter=2).fit(X, y)
