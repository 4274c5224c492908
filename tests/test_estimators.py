"""dnnfast.estimators: behaviour beyond scikit-learn parity, and life without scikit-learn.

The parity proofs are in test_sklearn_parity.py and scikit-learn's own checks
in test_estimator_checks.py; this file checks the extras (weights, per-layer
activations, history, progress, plots, gradient checks, threads) and that the
estimators work, with the same numbers, when scikit-learn (or SciPy) cannot be
imported.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import re
import signal
import sys
import warnings

import numpy as np
import pytest

import dnnfast
from conftest import run_without
from dnnfast.estimators import MLPClassifier, MLPRegressor


def _blobs(n=120, n_features=5, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = np.arange(n) % n_classes
    X = centers[y] + rng.normal(size=(n, n_features))
    return X, y


def _regression(n=100, n_features=4, n_outputs=1, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    W = rng.normal(size=(n_features, n_outputs))
    Y = np.tanh(X @ W) + 0.05 * rng.normal(size=(n, n_outputs))
    return X, (Y.ravel() if n_outputs == 1 else Y)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------
# Without scikit-learn (and without SciPy)
# ---------------------------------------------------------------------------

_FIT_EVERYTHING = """
import json, pickle, numpy as np
import dnnfast.estimators as est
from dnnfast.estimators import MLPClassifier, MLPRegressor
rng = np.random.RandomState(0)
X = rng.normal(size=(90, 4)); y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
Xr = rng.normal(size=(80, 3)); yr = np.sin(Xr).sum(axis=1)
out = {"sklearn_loaded": "sklearn" in __import__("sys").modules}
clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, solver="sgd",
                    learning_rate_init=0.05, early_stopping=True).fit(X, y)
out["clf_coef0"] = clf.coefs_[0].ravel().tolist()
out["clf_scores"] = clf.validation_scores_
out["clf_score"] = clf.score(X, y)
out["proba_rows_sum_to_1"] = bool(np.allclose(clf.predict_proba(X).sum(axis=1), 1))
out["params"] = sorted(clf.get_params())
clf.set_params(alpha=0.5)
out["alpha"] = clf.get_params()["alpha"]
clf2 = pickle.loads(pickle.dumps(clf))
out["pickle_same"] = bool(np.array_equal(clf2.predict_proba(X), clf.predict_proba(X)))
reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=25, random_state=1, learning_rate_init=0.01).fit(Xr, yr)
out["reg_coef0"] = reg.coefs_[0].ravel().tolist()
out["reg_score"] = reg.score(Xr, yr)
reg.partial_fit(Xr, yr)
out["repr"] = repr(MLPRegressor(alpha=0.5))
try:
    MLPClassifier().predict(X)
    out["unfitted"] = "no error"
except Exception as exc:
    out["unfitted"] = type(exc).__name__
try:
    MLPClassifier(solver="lbfgs", max_iter=5).fit(X, y)
    out["lbfgs"] = "ok"
except ImportError as exc:
    out["lbfgs"] = str(exc)
print(json.dumps(out))
"""


def test_works_without_sklearn_and_scipy():
    out = run_without(["sklearn", "scipy"], _FIT_EVERYTHING)
    assert out["sklearn_loaded"] is False
    assert out["clf_score"] > 0.6 and out["reg_score"] > 0.3
    assert out["proba_rows_sum_to_1"] and out["pickle_same"]
    assert out["alpha"] == 0.5
    assert "hidden_layer_sizes" in out["params"] and "n_iter_no_change" in out["params"]
    assert out["repr"] == "MLPRegressor(alpha=0.5)"
    assert out["unfitted"] == "NotFittedError"
    assert "needs SciPy" in out["lbfgs"] and 'pip install "dnnfast[sklearn]"' in out["lbfgs"]


def test_lbfgs_works_with_scipy_but_without_sklearn():
    pytest.importorskip("scipy")
    out = run_without(["sklearn"], _FIT_EVERYTHING)
    assert out["lbfgs"] == "ok"


def test_same_numbers_with_and_without_sklearn():
    pytest.importorskip("sklearn")
    out = run_without(["sklearn", "scipy"], _FIT_EVERYTHING)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    Xr = rng.normal(size=(80, 3))
    yr = np.sin(Xr).sum(axis=1)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, solver="sgd",
                        learning_rate_init=0.05, early_stopping=True).fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=25, random_state=1, learning_rate_init=0.01).fit(Xr, yr)
    assert clf.coefs_[0].ravel().tolist() == out["clf_coef0"]  # bit-identical
    assert clf.validation_scores_ == out["clf_scores"]
    assert reg.coefs_[0].ravel().tolist() == out["reg_coef0"]
    assert reg.score(Xr, yr) == pytest.approx(out["reg_score"], rel=1e-12)


_FEATURE_NAMES = """
import json, warnings, numpy as np, pandas as pd
from dnnfast.estimators import MLPClassifier
X = np.random.RandomState(0).normal(size=(30, 3)); y = np.arange(30) % 2
df = pd.DataFrame(X, columns=["a", "b", "c"])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    named = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(df, y)
    plain = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)

def outcome(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
        except (TypeError, ValueError) as exc:
            return [type(exc).__name__, str(exc)]
    return [w.category.__name__ + ": " + str(w.message) for w in caught if "feature names" in str(w.message)]

out = {
    "same": outcome(lambda: named.predict(df)),
    "reordered": outcome(lambda: named.predict(df[["c", "b", "a"]])),
    "renamed": outcome(lambda: named.predict(pd.DataFrame(X, columns=["a", "x", "c"]))),
    "array": outcome(lambda: named.predict(X)),
    "names_now_only": outcome(lambda: plain.predict(df)),
    "partial_fit_reordered": outcome(lambda: MLPClassifier(max_iter=2).partial_fit(df, y, classes=[0, 1])
                                     .partial_fit(df[["b", "a", "c"]], y)),
    "mixed": outcome(lambda: MLPClassifier(max_iter=2).fit(pd.DataFrame(X, columns=["a", 1, "c"]), y)),
}
print(json.dumps(out))
"""


def _check_feature_names(out):
    assert out["same"] == []
    assert out["reordered"] == ["ValueError", "X: The feature names should match those that were passed during fit.\n"
                                "Feature names must be in the same order as they were in fit.\n"]
    assert out["renamed"] == ["ValueError", "X: The feature names should match those that were passed during fit.\n"
                              "Feature names unseen at fit time:\n- x\n"
                              "Feature names seen at fit time, yet now missing:\n- b\n"]
    assert out["partial_fit_reordered"][0] == "ValueError"
    assert out["array"] == ["UserWarning: X does not have valid feature names, but MLPClassifier was fitted with "
                            "feature names"]
    assert out["names_now_only"] == ["UserWarning: X has feature names, but MLPClassifier was fitted without "
                                     "feature names"]
    assert out["mixed"][0] == "TypeError" and "only supported if all input features have string names" in out["mixed"][1]


def test_feature_names_are_checked_as_scikit_learn_checks_them():
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    ns = {}
    exec(_FEATURE_NAMES, ns)  # the same cases as without scikit-learn
    _check_feature_names(ns["out"])


def test_feature_names_are_checked_without_sklearn():
    """Without scikit-learn feature_names_in_ was recorded but never checked: a
    data frame with its columns reordered or renamed was predicted on as if
    they were the fit's columns."""
    pytest.importorskip("pandas")
    _check_feature_names(run_without(["sklearn"], _FEATURE_NAMES))


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------

def test_integer_sample_weight_equals_repeated_rows_full_batch():
    pytest.importorskip("scipy")
    X, y = _blobs(60)
    w = np.random.RandomState(1).randint(0, 3, size=len(y))
    a = MLPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0,
                      alpha=0.01).fit(X, y, sample_weight=w)
    b = MLPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0,
                      alpha=0.01).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-8)


def test_unit_sample_weight_is_bit_identical_to_none():
    X, y = _blobs()
    kw = dict(hidden_layer_sizes=(7,), solver="sgd", max_iter=10, random_state=0)
    a = MLPClassifier(**kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=np.ones(len(y)))
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("dtype, tiny", [(np.float32, 1e-41), (np.float64, 1e-311)])
@pytest.mark.parametrize("solver", ["adam", "adam in blocks", "lbfgs", "lbfgs in blocks"])
def test_tiny_sample_weights_fit_as_unit_weights(dtype, tiny, solver, monkeypatch):
    """The loss is sum(w_i J_i) / sum(w_i): scaling every weight changes
    nothing (scikit-learn fits these as weights of 1). 1 / sum(w_i) overflowed
    (in the dtype, or in float64 for subnormal weights), and the fit raised
    NonFiniteError blaming the data; each row's w_i / D is now a division."""
    X, y = _blobs(n=130)  # the 130 weights sum below 1 / max
    assert not np.isfinite(np.array(1.0, dtype) / (130 * np.array(tiny, dtype)))
    X = X.astype(dtype)
    if solver.startswith("lbfgs") and importlib.util.find_spec("scipy") is None:
        pytest.skip("solver='lbfgs' needs SciPy")
    in_blocks = solver.endswith(" in blocks")
    kw = dict(hidden_layer_sizes=(7,), alpha=0.0, max_iter=5, random_state=0)
    if solver == "lbfgs in blocks":  # the loss and gradient summed over blocks of rows in Python
        from dnnfast._estimators import _solvers
        monkeypatch.setattr(_solvers, "LBFGS_BLOCK_FLOPS", 1.0)
        assert _solvers.lbfgs_block_rows(130, 100, 1) < 130
    elif solver == "adam in blocks":  # one step of all rows: blocks' gradient sums, then one update
        from dnnfast._train import driver
        monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0)
        assert 2 * driver.block_rows(100) < 130
        kw["batch_size"] = 130
    kw["solver"] = solver.split()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few iterations on purpose
        a = MLPClassifier(**kw).fit(X, y, sample_weight=np.ones(len(y), dtype))
        b = MLPClassifier(**kw).fit(X, y, sample_weight=np.full(len(y), tiny, dtype))
    assert np.isfinite(b.loss_)
    # In blocks, each block's sum of w_i g_i comes first: products of
    # subnormal weights, with fewer bits than the dtype's.
    rtol = (1e-3 if dtype == np.float32 else 1e-10) if in_blocks else (1e-5 if dtype == np.float32 else 1e-12)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=0)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 2: 0.5}])
def test_class_weight_is_a_per_class_sample_weight(class_weight):
    X, y = _blobs(90)
    y = np.where(np.arange(90) < 60, y, 0)  # imbalanced
    if class_weight == "balanced":
        counts = np.bincount(y)
        w = (len(y) / (len(counts) * counts))[y]
    else:
        w = np.array([3.0, 1.0, 0.5])[y]
    kw = dict(hidden_layer_sizes=(6,), solver="adam", max_iter=15, random_state=0)
    a = MLPClassifier(class_weight=class_weight, **kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_balanced_class_weight_counts_weighted_rows():
    """'balanced' weighs each class's count by sample_weight, as scikit-learn's
    compute_class_weight('balanced', ..., sample_weight=) does (>= 1.9):
    sample_weight=2 on some rows is those rows repeated. The counts were of
    rows alone."""
    pytest.importorskip("scipy")
    X, y = _blobs(60)
    y = np.where(np.arange(60) < 40, y, 0)  # imbalanced
    sw = np.random.RandomState(1).randint(0, 3, size=len(y))
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0, alpha=0.01,
              class_weight="balanced")
    a = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    b = MLPClassifier(**kw).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-8)
    counts = np.bincount(y, weights=sw)
    per_class = counts.sum() / (3 * counts)
    kw.pop("class_weight")
    c = MLPClassifier(**kw).fit(X, y, sample_weight=sw * per_class[y])
    for p, q in zip(a.coefs_ + a.intercepts_, c.coefs_ + c.intercepts_):
        np.testing.assert_array_equal(p, q)
    try:
        from sklearn.utils.class_weight import compute_class_weight
    except ImportError:
        return
    np.testing.assert_allclose(per_class, compute_class_weight("balanced", classes=np.arange(3), y=y,
                                                               sample_weight=sw), rtol=1e-15)


def test_balanced_class_weight_is_refused_by_partial_fit():
    """One batch's class counts are not the data's: 'balanced' in partial_fit
    weighed each call by its own batch (and divided by the classes present
    in it, not n_classes as documented). Refused, as scikit-learn's SGD
    estimators refuse it, and as dnnfast refuses it across MPI ranks; the
    estimator is left as it was."""
    X, y = _blobs()
    est = MLPClassifier(class_weight="balanced", hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported for partial_fit"):
        est.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(est, "classes_") and not hasattr(est, "coefs_")
    est.fit(X, y)
    coefs = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match="compute_class_weight"):
        est.partial_fit(X, y)
    for a, b in zip(coefs, est.coefs_):
        np.testing.assert_array_equal(a, b)


def test_class_weight_rejects_unknown_label():
    X, y = _blobs()
    with pytest.raises(ValueError, match="are not in class_weight"):
        MLPClassifier(class_weight={7: 2.0}, max_iter=2).fit(X, y)


@pytest.mark.parametrize("key", [(0,), (0, 0, 0), (2, 1, 0), (0, 1), "0"])
def test_class_weight_keys_are_labels_not_arrays(key):
    """Keys were matched by NumPy broadcasting (``classes == key``): a tuple
    was taken for class 0 ((0,), (0, 0, 0)), for whichever class came first
    ((2, 1, 0) weighted class 0 ... or 1), or raised NumPy's broadcast error.
    A key is compared as one label; one that is none of the classes is
    refused with scikit-learn's message, naming class_weight."""
    X, y = _blobs()
    with pytest.raises(ValueError, match=r"^The classes, \[0, 1, 2\], are not in class_weight") as info:
        MLPClassifier(class_weight={key: 5.0}, max_iter=2).fit(X, y)
    assert repr(key) in str(info.value)
    with pytest.raises(ValueError, match=r"class_weight: class label \(0,\) not present"):
        MLPClassifier(class_weight={0: 1.0, 1: 1.0, 2: 1.0, (0,): 5.0}, max_iter=2).fit(X, y)


def test_class_weight_keys_match_labels_by_value():
    X, y = _blobs()
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    ref = MLPClassifier(class_weight={0: 5.0, 2: 0.5}, **kw).fit(X, y)
    est = MLPClassifier(class_weight={np.float64(0.0): 5.0, np.int8(2): 0.5}, **kw).fit(X, y)
    for a, b in zip(ref.coefs_, est.coefs_):
        np.testing.assert_array_equal(a, b)
    labels = np.array(["a", "b", "c"])
    est = MLPClassifier(class_weight={"a": 5.0, np.str_("c"): 0.5}, **kw).fit(X, labels[y])
    for a, b in zip(ref.coefs_, est.coefs_):
        np.testing.assert_array_equal(a, b)


def test_negative_sample_weight_rejected():
    X, y = _blobs()
    with pytest.raises(ValueError, match="[Nn]egative"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=-np.ones(len(y)))


_ZERO_WEIGHTS = """
import json, numpy as np
from dnnfast.estimators import MLPClassifier, MLPRegressor
X = np.random.RandomState(0).normal(size=(30, 3)); y = np.arange(30) % 3
cases = {
    "clf_sw": lambda: MLPClassifier(max_iter=2).fit(X, y, sample_weight=np.zeros(30)),
    "reg_sw": lambda: MLPRegressor(max_iter=2).fit(X, X[:, 0], sample_weight=np.zeros(30)),
    "partial_sw": lambda: MLPRegressor().partial_fit(X, X[:, 0], sample_weight=np.zeros(30)),
    # each holds a non-zero weight; their product none
    "cw_times_sw": lambda: MLPClassifier(max_iter=2, class_weight={0: 1.0, 1: 0.0, 2: 0.0}).fit(
        X, y, sample_weight=(y != 0).astype(float)),
    # the dict has a positive weight, for a class this batch lacks
    "cw_of_batch": lambda: MLPClassifier(class_weight={0: 0.0, 1: 1.0}).partial_fit(
        X, np.zeros(30, int), classes=[0, 1]),
}
out = {}
for name, call in cases.items():
    try:
        call()
        out[name] = "fitted"
    except ValueError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def _check_zero_weights_refused(out):
    for name, msg in out.items():
        assert "Sample weights must contain at least one non-zero number." in msg, (name, msg)
    assert "sample_weight times class_weight" in out["cw_times_sw"]
    assert "(class_weight)" in out["cw_of_batch"]


def test_weights_that_are_all_zero_are_refused():
    """Weights summing to zero trained on nothing (a loss_curve_ of zeros),
    silently: sample_weight of zeros without scikit-learn, and, in both
    setups, a class_weight times sample_weight that is zero on every row."""
    pytest.importorskip("sklearn")
    ns = {}
    exec(_ZERO_WEIGHTS, ns)  # the same cases as without scikit-learn
    _check_zero_weights_refused(ns["out"])


def test_weights_that_are_all_zero_are_refused_without_sklearn():
    _check_zero_weights_refused(run_without(["sklearn"], _ZERO_WEIGHTS))


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

HIDDEN = ["identity", "relu", "leaky_relu", "prelu", "elu", "sigmoid", "logistic", "tanh", "arctan",
          "softplus", "binary_step", ("leaky_relu", {"alpha": 0.3}), ("elu", {"alpha": 0.5})]


@pytest.mark.parametrize("activation", HIDDEN, ids=str)
def test_every_hidden_activation_trains_and_has_correct_gradients(activation):
    X, y = _blobs(60)
    clf = MLPClassifier(hidden_layer_sizes=(5,), activation=activation, max_iter=20, random_state=0,
                        learning_rate_init=0.01).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()
    report = clf.check_gradients(X, y)
    assert report["n_checked"] > 0
    # Central differences in float64 with eps=1e-6: error O(eps^2 f''') plus
    # round-off O(1e-16/eps); kinks (relu, leaky, prelu, elu at 0) are not hit
    # by these data except with probability ~0.
    assert report["max_abs_error"] < 1e-6, report["max_abs_error"]


def test_per_layer_activations_list():
    X, y = _regression()
    reg = MLPRegressor(hidden_layer_sizes=(6, 5, 4), activation=["tanh", "prelu", ("leaky_relu", {"alpha": 0.2})],
                       max_iter=30, random_state=0, learning_rate_init=0.01).fit(X, y)
    assert [c.shape for c in reg.coefs_] == [(4, 6), (6, 5), (5, 4), (4, 1)]
    assert reg.prelu_alphas_[1].shape == (5,) and reg.prelu_alphas_[0] is None
    assert not np.allclose(reg.prelu_alphas_[1], 0.25)  # trained
    assert reg.check_gradients(X, y)["max_abs_error"] < 1e-6
    with pytest.raises(ValueError, match="one entry per hidden layer"):
        MLPRegressor(hidden_layer_sizes=(6, 5), activation=["tanh"]).fit(X, y)


def test_logistic_list_initialises_like_logistic_name():
    X, y = _blobs()
    a = MLPClassifier(hidden_layer_sizes=(5, 4), activation="logistic", max_iter=1, random_state=3,
                      learning_rate_init=1e-300, solver="sgd").fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(5, 4), activation=["logistic", "sigmoid"], max_iter=1, random_state=3,
                      learning_rate_init=1e-300, solver="sgd").fit(X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)


def test_unknown_or_softmax_hidden_activation_rejected():
    X, y = _blobs()
    with pytest.raises(ValueError, match="unknown activation") as info:
        MLPClassifier(activation="swish").fit(X, y)
    # the names a hidden layer takes: scikit-learn's (logistic too), not softmax
    known = str(info.value).split("known:")[1]
    assert "'logistic'" in known and "'elu'" in known and "softmax" not in known
    with pytest.raises(ValueError, match=r"^activation\[1\]: softmax is only available as an output"):
        MLPClassifier(hidden_layer_sizes=(3, 3), activation=["relu", "softmax"]).fit(X, y)
    with pytest.raises(ValueError, match="output"):
        MLPClassifier(activation="softmax").fit(X, y)


def test_regressor_relu_output_activation():
    X, y = _regression()
    y = np.abs(y)
    reg = MLPRegressor(hidden_layer_sizes=(8,), output_activation="relu", max_iter=40, random_state=0,
                       learning_rate_init=0.01).fit(X, y)
    assert reg.out_activation_ == "relu"
    assert (reg.predict(X) >= 0).all()
    assert reg.check_gradients(X, y)["max_abs_error"] < 1e-6


def test_multi_output_regression_and_multilabel_shapes():
    X, Y = _regression(n_outputs=3)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (100, 3) and reg.n_outputs_ == 3
    Yl = (Y > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, Yl)
    assert clf.out_activation_ == "logistic"
    assert clf.predict(X).shape == (100, 3) and clf.predict_proba(X).shape == (100, 3)
    assert set(np.unique(clf.predict(X))) <= {0, 1}


def test_binary_string_labels():
    X, y = _blobs(n_classes=2)
    labels = np.array(["no", "yes"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0, learning_rate_init=0.01).fit(X, labels)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.predict_proba(X).shape == (len(y), 2)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-12)
    assert clf.score(X, labels) > 0.9


# ---------------------------------------------------------------------------
# History, progress, plots, gradient checks
# ---------------------------------------------------------------------------

def test_history_per_epoch():
    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=15, random_state=0, early_stopping=True,
                        n_iter_no_change=100).fit(X, y)
    h = clf.history_
    assert set(h) == {"loss", "val_loss", "val_score", "time"}
    assert all(len(v) == clf.n_iter_ == 15 for v in h.values())
    assert h.loss == clf.loss_curve_
    assert h.val_score == clf.validation_scores_
    assert np.isfinite(h.val_loss).all() and all(t >= 0 for t in h.time)
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(*_regression())
    assert np.isnan(reg.history_["val_loss"]).all() and len(reg.history_["loss"]) == 5


@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_in_blocks_of_rows_matches_one_evaluation(monkeypatch, weighted):
    """lbfgs evaluates large data in blocks of rows (Ctrl-C is read between
    them); the blocks' sum, divided once and with the L2 term added once,
    is the one-call loss and gradient up to rounding, and a fixed function
    of the shape (two fits: the same bits)."""
    pytest.importorskip("scipy")
    from dnnfast._estimators import _solvers
    rng = np.random.default_rng(3)
    X = rng.normal(size=(301, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
    sw = rng.uniform(0.5, 2.0, size=301) if weighted else None

    def fit():
        return MLPClassifier(hidden_layer_sizes=(7,), solver="lbfgs", alpha=0.3, max_iter=30,
                             random_state=0).fit(X, y, sample_weight=sw)

    whole = fit()
    monkeypatch.setattr(_solvers, "LBFGS_BLOCK_FLOPS", 1.0)  # blocks of 64 rows: 5 blocks
    assert _solvers.lbfgs_block_rows(301, whole.coefs_[0].size, 1) == 64
    blocks, again = fit(), fit()
    assert blocks.n_iter_ == whole.n_iter_
    assert blocks.loss_ == pytest.approx(whole.loss_, rel=1e-9)
    for a, b, c in zip(whole.coefs_ + whole.intercepts_, blocks.coefs_ + blocks.intercepts_,
                       again.coefs_ + again.intercepts_):
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-9)
        np.testing.assert_array_equal(c, b)


def test_lbfgs_takes_many_rows_in_blocks_of_a_few_mb_and_small_sets_in_one_call(monkeypatch):
    """One evaluation over 20000 rows computed each layer for all of them
    from memory (2.1x the time a row of 1024-row blocks on a 20-64-10
    network): over twice a long step's block of rows (4 MiB of workspace),
    lbfgs sums blocks; scikit-learn's small data sets stay one call, with
    its bits. The blocked fit is the one-call fit to rounding."""
    pytest.importorskip("scipy")
    from dnnfast._estimators import _solvers
    from dnnfast._train import driver
    from dnnfast._validation import network_bytes

    for sizes, n in (([64, 100, 10], 1797), ([30, 100, 1], 569), ([13, 100, 3], 178), ([10, 100, 1], 442)):
        p, row = network_bytes(sizes, 8)
        assert _solvers.lbfgs_block_rows(n, p // 8, row) == n, sizes
    p, row = network_bytes([20, 64, 10], 8)
    rows = _solvers.lbfgs_block_rows(20000, p // 8, row)
    assert 1024 <= rows and rows * row <= driver.STEP_BLOCK_BYTES

    rng = np.random.default_rng(4)
    X = rng.standard_normal((9000, 20))
    y = rng.integers(0, 10, 9000)

    def fit():
        return MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", max_iter=8, random_state=0).fit(X, y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (max_iter reached)
        blocks = fit()
        monkeypatch.setattr(driver, "STEP_BLOCK_BYTES", 1 << 40)  # one call
        whole = fit()
    assert blocks.n_iter_ == whole.n_iter_
    assert blocks.loss_ == pytest.approx(whole.loss_, rel=1e-9)
    for a, b in zip(whole.coefs_ + whole.intercepts_, blocks.coefs_ + blocks.intercepts_):
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-9)


def test_history_for_lbfgs():
    pytest.importorskip("scipy")
    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=12, random_state=0).fit(X, y)
    assert len(clf.history_["loss"]) == clf.n_iter_
    assert clf.history_["loss"][-1] == pytest.approx(clf.loss_)
    assert not hasattr(clf, "partial_fit")


def test_validation_loss_is_the_data_loss_of_the_validation_rows():
    from dnnfast._estimators._sampling import train_validation_split

    X, y = _regression(n=200)
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=1, random_state=0, early_stopping=True,
                       alpha=0.0).fit(X, y)
    # The same draws as fit: the initial weights, then the validation split.
    rng = np.random.RandomState(0)
    for fan_in, fan_out in [(4, 6), (6, 1)]:
        rng.uniform(size=(fan_in, fan_out))
        rng.uniform(size=fan_out)
    _, val = train_validation_split(len(y), 0.1, rng)
    expected = 0.5 * np.mean((reg.predict(X[val]) - y[val]) ** 2)
    assert reg.history_["val_loss"][-1] == pytest.approx(expected, rel=1e-10)


def test_verbose_plain_text_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, y = _blobs()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 3, loss = " in out


def test_verbose_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    X, y = _blobs()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=True, random_state=0).fit(X, y)
    out, err = capsys.readouterr()
    assert "3/3" in err and "loss=" in err
    assert "Iteration 3, loss = " in out  # scikit-learn's lines too, on stdout


def test_plot_history_returns_figure():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0, early_stopping=True).fit(X, y)
    fig = clf.plot_history()
    assert isinstance(fig, Figure)
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert {"training loss", "validation loss", "validation score"} <= set(labels)


def test_check_gradients_reports_a_wrong_gradient():
    X, y = _blobs(40)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0, alpha=0.1).fit(X, y)
    good = clf.check_gradients(X, y)
    assert good["max_rel_error"] < 1e-5
    # A step far too large for the curvature must show up as a large error.
    bad = clf.check_gradients(X, y, eps=10.0)
    assert bad["max_abs_error"] > 100 * good["max_abs_error"]


# ---------------------------------------------------------------------------
# Dtypes, threads, poisson, errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_float32_end_to_end(solver):
    if solver == "lbfgs":
        pytest.importorskip("scipy")
    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver=solver, max_iter=5, random_state=0).fit(
        X.astype(np.float32), y)
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_thread_count_does_not_change_the_numbers():
    X, y = _blobs(300, n_features=20)
    kw = dict(hidden_layer_sizes=(64, 32), max_iter=3, random_state=0)
    a = MLPClassifier(n_threads=1, **kw).fit(X, y)
    b = MLPClassifier(n_threads=2, **kw).fit(X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(p, q)
    before = dnnfast.get_num_threads()
    MLPClassifier(n_threads=1, max_iter=1).fit(X, y)
    assert dnnfast.get_num_threads() == before  # restored


class _InterruptAfterRows:
    """A core network that sends itself SIGINT (a Ctrl-C: the fit's handler
    sets its flag) in the chunk of steps that takes it past ``rows`` rows,
    after the steps (the weights have moved)."""

    def __init__(self, net, rows):
        self.net, self.left = net, rows

    def __getattr__(self, name):
        return getattr(self.net, name)

    def train_epoch(self, *args):
        out = self.net.train_epoch(*args)
        self.left -= args[4].shape[0]  # the rows of this chunk of the epoch's order
        if self.left < 0 <= self.left + args[4].shape[0]:
            os.kill(os.getpid(), signal.SIGINT)
        return out


def _interrupted_fit(X, y, kw, rows, chunk_seconds, monkeypatch):
    """A fit of up to 10 epochs that gets Ctrl-C after ``rows`` rows of steps,
    the driver's chunks sized for ``chunk_seconds``."""
    from dnnfast._estimators import _base
    from dnnfast._train import driver

    monkeypatch.setattr(driver, "CHUNK_SECONDS", chunk_seconds)
    core_net = _base._BaseMLP._core_net
    monkeypatch.setattr(_base._BaseMLP, "_core_net",
                        lambda self, dtype: _InterruptAfterRows(core_net(self, dtype), rows))
    cut = MLPClassifier(**{**kw, "max_iter": 10})
    with pytest.warns(UserWarning, match="interrupted"):
        assert cut.fit(X, y) is cut
    return cut


@pytest.mark.parametrize("solver,early_stopping", [("adam", False), ("sgd", False), ("adam", True)])
def test_interrupted_fit_warns_returns_and_keeps_the_state_of_the_last_whole_epoch(solver, early_stopping,
                                                                                      monkeypatch):
    """As scikit-learn: a KeyboardInterrupt in fit warns and returns. The
    epoch that Ctrl-C cut short (between the driver's chunks, here one batch
    each, part way through epoch 3) is undone, so the weights, n_iter_, t_,
    loss_curve_ and the solver state are those of a fit that stopped after
    epoch 2."""
    X, y = _blobs()
    kw = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=2, batch_size=32, random_state=0,
              early_stopping=early_stopping, n_iter_no_change=100, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        whole = MLPClassifier(**kw).fit(X, y)
    cut = _interrupted_fit(X, y, kw, whole.t_ + 1, 0.0, monkeypatch)
    n_train = whole.t_ // 2
    assert cut.n_iter_ == whole.n_iter_ == 2 and cut.t_ == whole.t_ == 2 * n_train
    assert cut.loss_curve_ == whole.loss_curve_ and len(cut.history_["loss"]) == 2
    assert cut.validation_scores_ == whole.validation_scores_
    for a, b in zip(cut.coefs_ + cut.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_array_equal(a, b)
    for k in ("learning_rate", "state1", "state2", "t"):
        np.testing.assert_array_equal(cut._optimizer[k], whole._optimizer[k])


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_ctrl_c_in_an_epoch_run_as_one_chunk_ends_that_epoch_then_returns(solver, monkeypatch):
    """Chunks sized for a long time (from the second epoch on, each epoch is
    one chunk: its steps in one core call). A Ctrl-C during epoch 3's chunk
    cannot cut it short, so that epoch ends with its bookkeeping and the fit
    returns after it, warning: the state of a 3-epoch fit (nothing to undo)."""
    X, y = _blobs()
    kw = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=3, batch_size=32, random_state=0,
              n_iter_no_change=100, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        whole = MLPClassifier(**kw).fit(X, y)
    two = whole.t_ // 3 * 2
    cut = _interrupted_fit(X, y, kw, two + 1, 1e6, monkeypatch)
    assert cut.n_iter_ == whole.n_iter_ == 3 and cut.t_ == whole.t_
    assert cut.loss_curve_ == whole.loss_curve_ and len(cut.history_["loss"]) == 3
    for a, b in zip(cut.coefs_ + cut.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_array_equal(a, b)
    for k in ("learning_rate", "state1", "state2", "t"):
        np.testing.assert_array_equal(cut._optimizer[k], whole._optimizer[k])


class _InterruptInValidation:
    """A core network that sends itself SIGINT as the validation pass after
    epoch ``epoch`` starts (its first predict: the early-stopping score)."""

    def __init__(self, net, epoch):
        self.net, self.left, self.armed = net, epoch, False

    def __getattr__(self, name):
        return getattr(self.net, name)

    def train_epoch(self, *args):
        self.left -= 1
        self.armed = self.left == 0
        return self.net.train_epoch(*args)

    def predict(self, *args):
        if self.armed:
            self.armed = False
            os.kill(os.getpid(), signal.SIGINT)
        return self.net.predict(*args)


def test_ctrl_c_in_an_early_stopping_score_run_in_blocks_undoes_that_epoch(monkeypatch):
    """Each epoch is one chunk (one batch), which Ctrl-C cannot cut; its
    early-stopping score runs in blocks of 64 rows with Ctrl-C read between
    them. A Ctrl-C in epoch 3's score cuts it there and epoch 3 is undone: the
    state of a 2-epoch fit (a copy of the solver state is made for such an
    epoch, with nothing else to undo it by)."""
    from dnnfast._estimators import _base
    from dnnfast._train import driver

    monkeypatch.setattr(driver, "CHUNK_SECONDS", 1e6)
    monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0)  # blocks of block_rows' floor, 64 rows
    X, y = _blobs(n=1000)
    kw = dict(hidden_layer_sizes=(7,), solver="adam", batch_size=100, random_state=0, early_stopping=True,
              validation_fraction=0.9, n_iter_no_change=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        whole = MLPClassifier(max_iter=2, **kw).fit(X, y)
    core_net = _base._BaseMLP._core_net
    monkeypatch.setattr(_base._BaseMLP, "_core_net",
                        lambda self, dtype: _InterruptInValidation(core_net(self, dtype), 3))
    cut = MLPClassifier(max_iter=10, **kw)
    with pytest.warns(UserWarning, match="interrupted"):
        cut.fit(X, y)
    assert cut.n_iter_ == whole.n_iter_ == 2 and cut.t_ == whole.t_
    assert cut.loss_curve_ == whole.loss_curve_ and cut.validation_scores_ == whole.validation_scores_
    assert len(cut.history_["loss"]) == 2
    for a, b in zip(cut.coefs_ + cut.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_array_equal(a, b)
    for k in ("learning_rate", "state1", "state2", "t"):
        np.testing.assert_array_equal(cut._optimizer[k], whole._optimizer[k])


def _training_state(est):
    """Copies of what a continued fit goes on from."""
    d = est.__dict__
    out = {k: (list(d[k]) if isinstance(d[k], list) else d[k]) for k in
           ("n_iter_", "t_", "loss_", "best_loss_", "_no_improvement_count", "loss_curve_")}
    out["history"] = {k: list(v) for k, v in est.history_.items()}
    out["params"] = [a.copy() for a in est.coefs_ + est.intercepts_]
    out["optimizer"] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in est._optimizer.items()}
    return out


def _assert_same_state(a, b):
    for k in a:
        if k == "params":
            for p, q in zip(a[k], b[k]):
                np.testing.assert_array_equal(p, q)
        elif k == "optimizer":
            assert a[k].keys() == b[k].keys()
            for name in a[k]:
                np.testing.assert_array_equal(a[k][name], b[k][name], err_msg=name)
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("call", ["fit", "partial_fit"])
def test_an_error_in_the_end_of_epoch_policies_undoes_that_epoch(solver, call, monkeypatch):
    """An exception from the end-of-epoch bookkeeping (here the learning-rate
    schedule, after n_iter_, t_, loss_curve_ and the history moved) of an
    epoch run as one chunk -- which Ctrl-C cannot cut short -- still undoes
    that epoch: the warm_start fit or partial_fit that raised leaves the
    estimator as it was (weights, solver state, counters, record). Only the
    parameters used to be copied for such an epoch, so the steps stayed, under
    the counters of before."""
    from dnnfast._estimators import _solvers

    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(7,), solver=solver, max_iter=5, random_state=0,
                        warm_start=True).fit(X, y)
    before = _training_state(est)
    chunks = []
    from dnnfast._train import driver
    record = driver._Chunker.record

    def record_chunk(self, nb, seconds):
        chunks.append(nb)
        return record(self, nb, seconds)

    def epoch_ends(self, opt, t):
        raise RuntimeError("end-of-epoch policy failed")

    monkeypatch.setattr(driver._Chunker, "record", record_chunk)
    monkeypatch.setattr(_solvers.LearningRateSchedule, "epoch_ends", epoch_ends)
    with pytest.raises(RuntimeError, match="end-of-epoch policy failed"):
        est.fit(X, y) if call == "fit" else est.partial_fit(X, y)
    assert len(chunks) == 1  # the epoch ran as one chunk
    _assert_same_state(before, _training_state(est))


def _poisson_numpy_fit(X, y, hidden, alpha, lr, epochs, seed):
    """Full-batch gradient descent on half the Poisson deviance (scikit-learn's
    poisson loss), relu hidden layer, exp output, L2 ``alpha``: written here
    from the formulas, with scikit-learn's initialisation."""
    rs = np.random.RandomState(seed)
    units = [X.shape[1], hidden, 1]
    Ws, bs = [], []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        Ws.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        bs.append(rs.uniform(-bound, bound, fan_out))
    n, Y = X.shape[0], y.reshape(-1, 1).astype(np.float64)
    losses = []
    for _ in range(epochs):
        H = np.maximum(X @ Ws[0] + bs[0], 0)
        P = np.exp(H @ Ws[1] + bs[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1) / P), 0.0)
        losses.append(float(np.mean(ylogy - Y + P)) + 0.5 * alpha * sum((W ** 2).sum() for W in Ws) / n)
        d2 = (P - Y) / n
        d1 = (d2 @ Ws[1].T) * (H > 0)
        grads = [(X.T @ d1 + alpha * Ws[0] / n, d1.sum(0)), (H.T @ d2 + alpha * Ws[1] / n, d2.sum(0))]
        for l, (gW, gb) in enumerate(grads):
            Ws[l] = Ws[l] - lr * gW
            bs[l] = bs[l] - lr * gb
    return Ws, bs, losses


def test_poisson_regression_matches_a_numpy_gradient_descent_loop():
    """loss='poisson' is the core network with an exp output and the Poisson
    loss: full-batch SGD equals the NumPy loop above (float64, 1e-10 relative),
    and the fit lowers the deviance."""
    X, _ = _regression()
    y = np.random.RandomState(0).poisson(np.exp(0.5 * X[:, 0]))
    kw = dict(hidden=6, alpha=1e-3, lr=0.05, epochs=15, seed=0)
    reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(kw["hidden"],), solver="sgd", momentum=0.0,
                       batch_size=X.shape[0], shuffle=False, learning_rate_init=kw["lr"], alpha=kw["alpha"],
                       max_iter=kw["epochs"], tol=0.0, n_iter_no_change=1000, random_state=kw["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        reg.fit(X, y)
    Ws, bs, losses = _poisson_numpy_fit(X, y, **kw)
    assert reg.out_activation_ == "exp" and (reg.predict(X) > 0).all()
    np.testing.assert_allclose(reg.loss_curve_, losses, rtol=1e-10)
    for got, want in zip(reg.coefs_ + reg.intercepts_, Ws + bs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    H = np.maximum(X @ Ws[0] + bs[0], 0)
    np.testing.assert_allclose(reg.predict(X), np.exp(H @ Ws[1] + bs[1]).ravel(), rtol=1e-10)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -np.abs(y) - 1)


@pytest.mark.parametrize("bad,match", [
    (dict(solver="newton"), "solver"), (dict(alpha=-1.0), "alpha"), (dict(max_iter=0), "max_iter"),
    (dict(learning_rate="cyclic"), "learning_rate"), (dict(hidden_layer_sizes=(3, 0)), "hidden_layer_sizes"),
    (dict(momentum=1.5), "momentum"), (dict(validation_fraction=1.0), "validation_fraction"),
    # NumPy's messages named no parameter; verbose went unchecked (scikit-learn refuses these)
    # np.random itself too, as scikit-learn's MLP refuses it (its check_random_state takes
    # it): the fit went on with NumPy's global generator, and save had no file form for it.
    *[(dict(random_state=v), "'random_state' parameter") for v in ("a", -1, 2**40, 1.5, True, np.random)],
    *[(dict(verbose=v), "'verbose' parameter") for v in ("yes", -1, 2.5, None)],
])
def test_bad_parameters_are_named(bad, match):
    X, y = _blobs()
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**bad).fit(X, y)


@pytest.mark.parametrize("kw,match", [(dict(beta_2=1 - 1e-8), "beta_2 must be below 1 in a float32"),
                                      (dict(beta_1=1 - 1e-8), "beta_1 must be below 1 in a float32"),
                                      (dict(epsilon=1e39), "epsilon must be at most 3.40282e.38 for a float32"),
                                      (dict(epsilon=1e-50), "epsilon must be at least 1.17549e-38 for a float32"),
                                      (dict(alpha=1e39), "alpha must be at most 3.40282e.38 for a float32"),
                                      (dict(alpha=1e39, solver="lbfgs"), "alpha must be at most 3.40282e.38"),
                                      (dict(alpha=1e39, solver="sgd"), "alpha must be at most 3.40282e.38")])
def test_adam_settings_that_round_to_1_or_inf_in_float32_are_refused(kw, match):
    """On float32 data beta_2 = 1 - 1e-8 is 1 in the network's numbers: the
    loss curve stayed flat (Adam's step size 0); beta_1 so raised a
    NonFiniteError that blamed the data, as did an epsilon that is 0 there
    (0 / 0) and an alpha that is infinite (every solver). Refused naming
    them; the estimator stays unfitted, and float64 data trains."""
    if kw.get("solver") == "lbfgs":
        pytest.importorskip("scipy")
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, **kw)
    with pytest.raises(ValueError, match=match):
        est.fit(X.astype(np.float32), y)
    assert not hasattr(est, "coefs_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ConvergenceWarning
        est.fit(X.astype(np.float64), y)
    assert est.n_iter_ == 3


_TYPE_ERRORS = """
import json, numpy as np
from dnnfast.estimators import MLPClassifier, MLPRegressor
X = np.random.RandomState(0).normal(size=(20, 3)); y = np.arange(20) % 2
out = []
for est, kw in [(MLPClassifier, dict(alpha="a")), (MLPClassifier, dict(max_iter=2.5)),
                (MLPClassifier, dict(shuffle="yes")), (MLPClassifier, dict(hidden_layer_sizes=None)),
                (MLPClassifier, dict(activation=3)), (MLPClassifier, dict(n_threads=True)),
                (MLPClassifier, dict(class_weight=[1, 2])), (MLPRegressor, dict(loss="hinge")),
                (MLPClassifier, dict(momentum=2.0))]:
    try:
        est(**{"max_iter": 2, **kw}).fit(X, y)
        out.append([repr(kw), "accepted"])
    except Exception as exc:
        out.append([repr(kw), [c.__name__ for c in type(exc).__mro__], str(exc)])
print(json.dumps(out))
"""


def _check_parameter_errors(out):
    for kw, mro, *msg in out:
        # scikit-learn's InvalidParameterError is both: `except ValueError` catches it there
        assert "ValueError" in mro and "TypeError" in mro, (kw, mro, msg)
        assert kw.split("'")[1] in msg[0], (kw, msg)


def test_parameter_errors_are_value_and_type_errors_as_in_scikit_learn():
    """alpha='a', max_iter=2.5, shuffle='yes' or hidden_layer_sizes=None were
    plain TypeErrors, where scikit-learn raises its InvalidParameterError (a
    ValueError too): drop-in code catching ValueError missed them."""
    pytest.importorskip("sklearn")
    from sklearn.utils._param_validation import InvalidParameterError
    ns = {}
    exec(_TYPE_ERRORS, ns)
    _check_parameter_errors(ns["out"])
    with pytest.raises(InvalidParameterError):  # a subclass of it where scikit-learn is installed
        MLPClassifier(alpha="a").fit(*_blobs())


def test_parameter_errors_are_value_and_type_errors_without_sklearn():
    _check_parameter_errors(run_without(["sklearn"], _TYPE_ERRORS))


@pytest.mark.parametrize("ok", [dict(random_state=np.int64(3)), dict(random_state=2**32 - 1),
                                dict(random_state=np.random.RandomState(0)), dict(verbose=np.int64(0)),
                                dict(verbose=np.bool_(False)), dict(verbose=0)])
def test_parameters_scikit_learn_accepts_are_accepted(ok):
    X, y = _blobs()
    MLPClassifier(max_iter=1, **ok).fit(X, y)


def test_invscaling_with_a_large_power_t_trains_at_a_rate_near_zero():
    """learning_rate_init / (t + 1) ** power_t: the power beyond float64 raised
    Python's OverflowError after the first epoch; the rate is the quotient, 0."""
    X, y = _blobs()
    clf = MLPClassifier(solver="sgd", learning_rate="invscaling", power_t=400.0, momentum=0.0, max_iter=3,
                        random_state=0).fit(X, y)
    assert clf.n_iter_ == 3
    # no step at rate 0 after the first epoch (the same loss, summed in another row order)
    assert clf.loss_curve_[2] == pytest.approx(clf.loss_curve_[1], rel=1e-12)


def test_input_errors():
    X, y = _blobs()
    clf = MLPClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(Xn, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)


# ---------------------------------------------------------------------------
# The scikit-learn ecosystem
# ---------------------------------------------------------------------------

def test_pipeline_gridsearch_clone_pickle():
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _blobs(90)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=50, learning_rate_init=0.05, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (8,)],
                               "mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3).fit(X, y)
    assert grid.best_score_ > 0.8
    est = clone(MLPRegressor(hidden_layer_sizes=(5,), activation=["tanh"], n_threads=1))
    assert est.get_params()["activation"] == ["tanh"] and not hasattr(est, "coefs_")
    fitted = grid.best_estimator_
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))


def test_estimators_are_reexported_by_the_package():
    # `dnnfast.MLPClassifier` loads the estimators on first use (module __getattr__).
    assert dnnfast.MLPClassifier is MLPClassifier and dnnfast.MLPRegressor is MLPRegressor
    assert "MLPClassifier" in dnnfast.__all__ and "MLPRegressor" in dnnfast.__all__


# ---------------------------------------------------------------------------
# Parameters: one flat buffer, coefs_ / intercepts_ its views; predict on it
# ---------------------------------------------------------------------------

def _numpy_proba(clf, X):
    A = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        A = np.maximum(A @ W + b, 0)
    Z = A @ clf.coefs_[-1] + clf.intercepts_[-1]
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _fitted_classifier(**kw):
    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=3, random_state=0, **kw).fit(X, y), X, y


def test_coefs_and_intercepts_are_views_of_one_flat_buffer_trained_in_place():
    clf, X, y = _fitted_classifier()
    P = clf._bound_params()
    assert P is not None and P.ndim == 1
    arrays = clf.coefs_ + clf.intercepts_
    assert all(np.shares_memory(a, P) for a in arrays)
    assert sum(a.size for a in arrays) == P.size
    before = [a.copy() for a in arrays]
    clf.partial_fit(X, y)
    assert clf._bound_params() is P and all(a is b for a, b in zip(clf.coefs_ + clf.intercepts_, arrays))
    assert not all(np.array_equal(a, b) for a, b in zip(arrays, before))  # moved, in place
    clf.coefs_[0][0, 0] += 1.0  # an in-place edit is seen by the next prediction
    np.testing.assert_allclose(clf.predict_proba(X[:3]), _numpy_proba(clf, X[:3]), rtol=1e-12)


def test_coefs_set_by_the_user_are_used_and_bound_again():
    """scikit-learn's own tests assign coefs_ and intercepts_ by hand."""
    clf, X, y = _fitted_classifier()
    rng = np.random.RandomState(1)
    clf.coefs_ = [rng.normal(size=c.shape) for c in clf.coefs_]
    clf.intercepts_ = [rng.normal(size=b.shape) for b in clf.intercepts_]
    assert clf._bound_params() is None
    np.testing.assert_allclose(clf.predict_proba(X[:1]), _numpy_proba(clf, X[:1]), rtol=1e-12)
    clf.coefs_[1] = np.zeros_like(clf.coefs_[1])  # one array of the list replaced
    np.testing.assert_allclose(clf.predict_proba(X[:4]), _numpy_proba(clf, X[:4]), rtol=1e-12)
    clf.partial_fit(X, y)
    assert all(np.shares_memory(a, clf._bound_params()) for a in clf.coefs_ + clf.intercepts_)


def test_one_row_predict_without_checks_equals_the_checked_path(tmp_path):
    clf, X, _ = _fitted_classifier()
    row = np.ascontiguousarray(X[:1])
    from dnnfast._estimators._base import _AS_IS

    slow = clf.predict_proba(row.tolist())  # a list takes the full checks
    assert clf in _AS_IS
    np.testing.assert_array_equal(clf.predict_proba(row), slow)
    np.testing.assert_array_equal(clf.predict(row), clf.predict(row.tolist()))
    with pytest.raises(ValueError, match="Input X contains NaN"):  # scikit-learn's message, not the core's
        clf.predict_proba(np.full_like(row, np.nan))
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.ones((1, X.shape[1] + 1)))
    clf.set_params(activation="tanh")  # scikit-learn predicts with the activation set now
    np.testing.assert_array_equal(clf.predict_proba(row), clf.predict_proba(row.tolist()))
    assert not np.array_equal(clf.predict_proba(row), slow)
    again = pickle.loads(pickle.dumps(clf))
    assert again not in _AS_IS and again._bound_params() is not None  # bound again on unpickling
    np.testing.assert_array_equal(again.predict_proba(row), clf.predict_proba(row))
    clf.save(tmp_path / "clf.npz")
    loaded = dnnfast.load(tmp_path / "clf.npz")
    assert loaded._bound_params() is not None  # and on loading a model file
    np.testing.assert_array_equal(loaded.predict_proba(row), clf.predict_proba(row))


def test_array_predict_after_a_dataframe_fit_still_warns_about_feature_names():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    X, y = _blobs()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(df, y)
    clf.predict(df.iloc[:1])
    for _ in range(2):
        with pytest.warns(UserWarning, match="feature names"):
            clf.predict(np.ascontiguousarray(X[:1]))


@pytest.mark.parametrize("bit_generator", [None, np.random.PCG64, np.random.Philox])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 64, 65, 66, 569, 4097])
def test_epoch_shuffle_is_randomstate_shuffle_draw_for_draw(bit_generator, n):
    """The estimators' epoch shuffle (made by the core on the generator's bit
    generator) gives RandomState.shuffle's permutation and leaves the
    generator where RandomState.shuffle leaves it, over several epochs, on
    any NumPy bit generator; n = 2^k + 1 and + 2 have the most rejected draws."""
    from dnnfast._estimators._sampling import shuffled

    def make(seed):
        return np.random.RandomState(seed if bit_generator is None else bit_generator(seed))

    for seed in (0, 1, 7):
        ours, ref = make(seed), make(seed)
        order = np.arange(n, dtype=np.int64)[::-1].copy()
        expected = order.copy()
        for _ in range(4):
            order = shuffled(order, ours)
            ref.shuffle(expected)
            np.testing.assert_array_equal(order, expected)
        assert ours.randint(1 << 30) == ref.randint(1 << 30)


def test_epoch_shuffle_leaves_a_randomstate_subclass_its_own_shuffle():
    from dnnfast._estimators._sampling import shuffled

    class Reversing(np.random.RandomState):
        def shuffle(self, x):
            x[...] = x[::-1].copy()

    out = shuffled(np.arange(5, dtype=np.int64), Reversing(0))
    np.testing.assert_array_equal(out, [4, 3, 2, 1, 0])


def test_legacy_shuffle_binding_rejects_what_is_not_a_bit_generator_and_an_int64_vector():
    from dnnfast import _core

    bg = np.random.RandomState(0)._bit_generator
    with pytest.raises(TypeError, match="bitgen"):
        _core.legacy_shuffle(object(), np.arange(4, dtype=np.int64))
    with pytest.raises(TypeError):
        _core.legacy_shuffle(bg.capsule, np.arange(4, dtype=np.int32))
    with pytest.raises(ValueError, match="1-D"):
        _core.legacy_shuffle(bg.capsule, np.zeros((2, 2), dtype=np.int64))
    frozen = np.arange(4, dtype=np.int64)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.legacy_shuffle(bg.capsule, frozen)
    np.testing.assert_array_equal(frozen, np.arange(4))


def test_the_memory_check_counts_a_window_of_rows_for_small_batches(monkeypatch):
    """Small batches on a first W beyond 32 KiB (80 x 128 float64) may train
    in windows of up to _core.STOCHASTIC_WINDOW rows (plain SGD): the size
    check before the fit counts a window's rows of workspace (32 for one-row
    and two-row batches), more than a batch's where batches do not go in
    windows (17 rows)."""
    from dnnfast._estimators import _base

    asked = []
    monkeypatch.setattr(_base, "check_memory", lambda need, name, what: asked.append(need))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 80)), rng.standard_normal(80)
    needs = {}
    for batch in (1, 2, 17):
        asked.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning
            MLPRegressor(hidden_layer_sizes=(128,), solver="sgd", momentum=0.0, alpha=0.0, batch_size=batch,
                         max_iter=1, random_state=0).fit(X, y)
        needs[batch] = max(asked)
    assert dnnfast._core.stochastic_window_batches(2, 80 * 128 * 8) == 16
    assert dnnfast._core.stochastic_window_batches(17, 80 * 128 * 8) == 1
    assert needs[1] == needs[2] > needs[17]


@pytest.mark.filterwarnings("ignore::UserWarning")  # ConvergenceWarning after 3 epochs
def test_the_fitted_parameters_and_adam_state_start_on_a_cache_line():
    # The core reads the flat buffer's W in place on its one-row paths (see
    # test_network's test of the Network's buffers).
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    P = est._bound_params()
    assert P is not None and P.ctypes.data % 64 == 0
    assert all(np.shares_memory(W, P) for W in est.coefs_)
    for key in ("state1", "state2"):
        assert est._optimizer[key].ctypes.data % 64 == 0
    clone = pickle.loads(pickle.dumps(est))  # the buffer is packed again on first use
    np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))
    Q = clone._bound_params()
    assert Q is not None and Q.ctypes.data % 64 == 0


@pytest.mark.parametrize("first, then, name", [
    (dict(loss="squared_error"), dict(loss="poisson"), "loss"),
    (dict(loss="poisson"), dict(loss="squared_error"), "loss"),
    (dict(), dict(output_activation="tanh"), "output_activation"),
    (dict(output_activation="tanh"), dict(output_activation=None), "output_activation"),
])
@pytest.mark.parametrize("how", ["adam", "lbfgs", "partial_fit"])
def test_a_changed_regression_output_is_refused_by_a_continued_fit(first, then, name, how):
    """A warm_start fit or partial_fit trains the fitted network, whose output
    (out_activation_, and with it the loss) loss and output_activation chose:
    changed since, they were ignored in silence (squared error trained on
    after loss='poisson'). Refused as a changed hidden_layer_sizes is, naming
    the parameter; the model is left as it was."""
    X, _ = _regression()
    y = np.exp(0.5 * X[:, 0])
    kw = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0, warm_start=True,
              solver="adam" if how == "partial_fit" else how)
    est = MLPRegressor(**kw, **first).fit(X, y)
    before = (est.out_activation_, est.n_iter_, [c.copy() for c in est.coefs_])
    est.set_params(**then)
    with pytest.raises(ValueError, match=f"{name}=.*does not match the fitted network's output"):
        est.partial_fit(X, y) if how == "partial_fit" else est.fit(X, y)
    assert (est.out_activation_, est.n_iter_) == before[:2]
    for a, b in zip(before[2], est.coefs_):
        np.testing.assert_array_equal(a, b)
    est.set_params(**{k: first.get(k, MLPRegressor().get_params()[k]) for k in then})  # set back: goes on
    est.partial_fit(X, y) if how == "partial_fit" else est.fit(X, y)


def _assert_stopping_record(est, early_stopping):
    """The record of the fit just made, as a fresh fit in that mode keeps it."""
    this_fit = est.loss_curve_[-est.n_iter_:]
    if early_stopping:
        assert est.best_loss_ is None
        assert len(est.validation_scores_) == est.n_iter_
        assert est.best_validation_score_ == max(est.validation_scores_)
    else:
        assert est.best_loss_ == min(this_fit)
        assert est.validation_scores_ is None and est.best_validation_score_ is None


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("first", [True, False])
def test_warm_start_goes_on_after_early_stopping_is_switched(solver, first):
    """A warm_start fit (or a partial_fit) after early_stopping was switched
    met the other mode's record (best_loss_ or validation_scores_ None) and
    raised a TypeError or AttributeError from inside the epoch (scikit-learn
    raises the same). The record of the mode switched to starts afresh, as a
    first fit's; the weights and solver state go on."""
    X, y = _blobs()
    kw = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=4, random_state=0, warm_start=True,
              n_iter_no_change=100)
    est = MLPClassifier(early_stopping=first, **kw).fit(X, y)
    n_curve = len(est.loss_curve_)
    for es in (not first, first, not first):
        est.set_params(early_stopping=es).fit(X, y)
        assert est.n_iter_ == 4 and len(est.loss_curve_) == n_curve + 4
        n_curve += 4
        _assert_stopping_record(est, es)
    if first:  # partial_fit (no early stopping) after an early-stopping fit
        est.set_params(early_stopping=True).fit(X, y)
        est.set_params(early_stopping=False).partial_fit(X, y)
        assert est.n_iter_ == 1
        _assert_stopping_record(est, False)


def test_a_refit_refused_for_its_validation_split_leaves_the_fitted_model():
    """fit re-initialised the model (new random weights, n_iter_ 0) and only
    then found the early-stopping split impossible; the sizes are now checked
    first, so the refused call changes nothing, as the README promises."""
    import warnings
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), max_iter=20, random_state=0).fit(X, y)
    before = [c.copy() for c in clf.coefs_ + clf.intercepts_], clf.n_iter_, list(clf.loss_curve_)
    for fraction in (0.01, 0.999):  # 1 validation row; 1 training row
        clf.set_params(early_stopping=True, validation_fraction=fraction)
        with pytest.raises(ValueError, match="validation"):
            clf.fit(X, y)
        assert all(np.array_equal(a, b) for a, b in zip(before[0], clf.coefs_ + clf.intercepts_))
        assert (clf.n_iter_, clf.loss_curve_) == before[1:]


@pytest.mark.parametrize("fraction, fix", [(0.05, "raise validation_fraction"), (0.9, "lower validation_fraction")])
def test_a_validation_split_too_small_for_the_classes_names_the_parameter_and_the_classes(fraction, fix):
    """'The validation split needs at least 2 rows in each part' named neither
    validation_fraction nor the classes (scikit-learn's check_classifiers_one_
    label_sample_weights looks for the word 'class')."""
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.arange(12) % 2
    with pytest.raises(ValueError, match=rf"validation_fraction={fraction}\b") as info:
        MLPClassifier(early_stopping=True, validation_fraction=fraction).fit(X, y)
    msg = str(info.value)
    assert re.search(r"\bclass(es)?\b", msg) and "2 classes" in msg and fix in msg, msg


def test_a_refused_first_call_leaves_the_estimator_unfitted():
    """A first fit refused after _initialize had drawn weights left a model
    that predicted with them; a first partial_fit refused for its X kept the
    classes_ it had set, and refused the corrected call with other classes."""
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = np.arange(30) % 3
    def attributes(est):  # but the model lock, made on first use
        return {k: v for k, v in vars(est).items() if k != "_model_lock"}

    clf = MLPClassifier(early_stopping=True, random_state=0)
    fresh = attributes(clf)
    with pytest.raises(ValueError, match="validation"):
        clf.fit(X[:4], y[:4])
    assert attributes(clf) == fresh
    with pytest.raises(ValueError, match="not fitted"):
        clf.predict(X)

    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="NaN"):
        clf.partial_fit(np.where(X > 1, np.nan, X), y, classes=[0, 1, 2, 3])
    assert attributes(clf) == fresh | {"early_stopping": False}
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1, 2]


@pytest.mark.parametrize("fitted,now", [("relu", "prelu"), ("prelu", "relu")])
def test_activation_changed_to_or_from_prelu_after_fit_is_named_and_changes_nothing(fitted, now):
    """prelu layers carry alphas: set_params(activation=...) across that line
    after a fit gave the core's "params: expected a 1-D array of 36" from
    predict, and a warm-start fit reset n_iter_ to 0 on its way to that error
    (a buffer packed without alphas would have held unwritten ones)."""
    import warnings
    X = np.random.default_rng(1).normal(size=(50, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), activation=fitted, max_iter=5, random_state=0).fit(X, y)
        proba = clf.predict_proba(X)
        clf.set_params(activation=now)
        for call in (lambda: clf.predict(X), lambda: clf.partial_fit(X, y),
                     lambda: clf.set_params(warm_start=True).fit(X, y)):
            with pytest.raises(ValueError, match=f"activation='{now}' does not match the fitted parameters"):
                call()
        assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 5
        clf.set_params(activation=fitted)
        np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_check_gradients_refuses_bad_arguments_naming_them():
    """check_gradients took y, eps, max_params and random_state unchecked: a NaN
    or unseen-label y gave a report of NaN (or of another objective) in
    silence, a complex y lost its imaginary part, eps = 0 raised
    ZeroDivisionError and max_params = 0 NumPy's "zero-size array"."""
    import warnings
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    yc = (X[:, 0] > 0).astype(int)
    yr = 2 * X[:, 0] + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, yc)
        reg = dnnfast.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, yr)
    cases = [
        (reg, yr + np.nan, {}, ValueError, "y contains NaN"),
        (reg, yr + 1000j, {}, TypeError, "y must have a real numeric dtype"),
        (reg, yr[:5], {}, ValueError, r"y must have shape \(40,\) or \(40, 1\)"),
        (clf, yc + 5, {}, ValueError, r"labels the model was not fitted on: \[6, 5\]"),
        (clf, np.array([None] * 40), {}, ValueError, "not fitted on"),
        (reg, yr, {"eps": 0}, ValueError, "eps must be a positive"),
        (reg, yr, {"eps": np.nan}, ValueError, "eps must be a positive"),
        (reg, yr, {"eps": 1e308}, ValueError, r"eps=1e\+308: the objective at p \+- eps is not finite"),
        (reg, yr, {"eps": "a"}, TypeError, "eps must be a number"),
        (reg, yr, {"max_params": 0}, ValueError, "max_params must be positive"),
        (reg, yr, {"max_params": 2.5}, TypeError, "max_params must be an integer"),
        # NumPy's messages named no argument ("Seed must be between 0 and 2**32 - 1")
        (reg, yr, {"random_state": "x"}, ValueError, "^random_state must be an int in the range"),
        (reg, yr, {"random_state": -1}, ValueError, "^random_state must be an int in the range"),
        (reg, yr, {"random_state": 2**40}, ValueError, "^random_state must be an int in the range"),
    ]
    for est, y, kw, exc, match in cases:
        with pytest.raises(exc, match=match):
            est.check_gradients(X, y, **kw)
    assert clf.check_gradients(X, yc, max_params=7, random_state=np.random.RandomState(3))["n_checked"] == 7
    assert reg.check_gradients(X, yr.reshape(-1, 1))["max_rel_error"] < 1e-4


@pytest.mark.parametrize("dtype", [np.int64, np.complex128, np.float16, str, "mixed"])
def test_parameters_assigned_with_a_dtype_the_core_has_not_are_named(dtype):
    """coefs_ set by hand (as scikit-learn's tests do) as int64 gave a KeyError,
    float16 a pybind11 TypeError; float32 coefs_ beside float64 intercepts_ were
    cast in silence. Every call that reads them now names the dtypes."""
    import warnings
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    clf.coefs_ = [w.astype(np.float32 if dtype == "mixed" else dtype) for w in clf.coefs_]
    for call in (lambda: clf.predict(X), lambda: clf.predict_proba(X), lambda: clf.partial_fit(X, y)):
        with pytest.raises(TypeError, match="coefs_, intercepts_ and prelu_alphas_ must all be float32 or all "
                                            "float64"):
            call()


def _masked_at_0(a):
    mask = np.zeros(np.shape(a), bool)
    mask.flat[0] = True
    return np.ma.masked_array(np.where(mask, 1e6, a), mask=mask)  # 1e6: the value under the mask


@pytest.mark.parametrize("attr", ["coefs_", "intercepts_", "prelu_alphas_"])
def test_parameters_assigned_as_masked_arrays_with_masked_entries_are_refused_by_name(attr, tmp_path):
    """predict, save, to_onnx and partial_fit used the values under the mask
    in silence (Network.weights = ... refuses the same array by name)."""
    import warnings
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), activation="prelu" if attr == "prelu_alphas_" else "relu", max_iter=5,
                                    random_state=0).fit(X, y)
    clf.predict(X[:1])  # the one-row fast path holds the buffer now
    setattr(clf, attr, [_masked_at_0(a) if a is not None else None for a in getattr(clf, attr)])
    calls = [lambda: clf.predict(X[:1]), lambda: clf.predict_proba(X), lambda: clf.save(tmp_path / "m.npz"),
             lambda: clf.partial_fit(X, y)]
    if importlib.util.find_spec("onnx") is not None:
        calls.append(clf.to_onnx)
    for call in calls:
        with pytest.raises(TypeError, match=rf"^{attr}\[0\] is a masked array with masked entries"):
            call()
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("form", ["list", "big-endian", "matrix", "masked-nothing-masked"])
def test_parameters_assigned_as_their_values_in_another_form_are_taken(form, tmp_path):
    """Lists gave a raw AttributeError ('list' object has no attribute 'shape'),
    big-endian float64 a TypeError listing '>f8' beside 'float64' (scikit-learn
    takes both): each is its values, in predict, save and partial_fit."""
    import copy
    import warnings
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
        make = {"list": lambda a: a.tolist(), "big-endian": lambda a: a.astype(">f8"),
                "matrix": lambda a: np.matrix(a) if a.ndim == 2 else a,
                "masked-nothing-masked": np.ma.masked_array}[form]
        edited = copy.deepcopy(clf)
        edited.coefs_ = [make(w) for w in edited.coefs_]
        edited.intercepts_ = [make(b) for b in edited.intercepts_]
        np.testing.assert_array_equal(edited.predict_proba(X), clf.predict_proba(X))
        edited.save(tmp_path / "m.npz")
        np.testing.assert_array_equal(dnnfast.load(tmp_path / "m.npz").predict_proba(X), clf.predict_proba(X))
        edited.partial_fit(X, y)
        clf.partial_fit(X, y)
    np.testing.assert_array_equal(edited.predict_proba(X), clf.predict_proba(X))
    assert all(type(w) is np.ndarray and w.dtype == np.float64 for w in edited.coefs_)


@pytest.mark.parametrize("rows", [1, 60])
def test_a_nan_written_into_coefs_in_place_is_named_by_predict(rows):
    """relu keeps NaN now, so predict no longer returns finite garbage for a
    NaN written into coefs_ in place; the core's "output overflowed" said
    the wrong thing, so the parameter is named."""
    import warnings
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    clf.predict(X)  # the one-row fast path holds the buffer now
    clf.coefs_[1][2, 0] = np.nan
    for call in (clf.predict, clf.predict_proba):
        with pytest.raises(ValueError, match=r"parameters contain NaN or infinity \(first in layer 2, W"):
            call(X[:rows])


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_an_estimator_step_of_many_weighted_rows_in_blocks_matches_one_call(monkeypatch, solver):
    """The driver's long steps (blocks of rows, Ctrl-C between them) with
    sample weights: each batch's D is its total weight, summed over blocks."""
    from dnnfast._train import driver

    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6))
    y = X @ rng.normal(size=6) + 0.1 * rng.normal(size=300)
    sw = rng.uniform(0.1, 3.0, size=300)
    default = driver.BLOCK_FLOPS
    fits = []
    for flops in (default, 1.0):
        monkeypatch.setattr(driver, "BLOCK_FLOPS", flops)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg = MLPRegressor(hidden_layer_sizes=(8,), solver=solver, batch_size=300, max_iter=6, alpha=1e-3,
                               learning_rate_init=0.01, random_state=0).fit(X, y, sample_weight=sw)
        fits.append(reg)
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fits[1].loss_curve_, fits[0].loss_curve_, rtol=1e-12)


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_lbfgs_cut_by_another_exception_keeps_the_last_whole_iteration(monkeypatch, exc):
    """A SystemExit from a SIGTERM handler (or a user SIGINT handler's
    KeyboardInterrupt) inside an lbfgs line search left a trial point's
    weights under n_iter_ 0 and no loss_; the estimator now holds the last
    completed iteration, as the stochastic solvers undo a cut epoch, and the
    exception goes on."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    real = scipy_optimize.minimize
    iterates = []

    def minimize(fun, x0, *args, callback=None, **kw):
        def cut(x):
            if len(iterates) == 4:  # the fifth iteration's first trial point
                raise exc
            return fun(x)

        def cb(intermediate_result):
            iterates.append((np.array(intermediate_result.x, copy=True), float(intermediate_result.fun)))
            return callback(intermediate_result)

        return real(cut, x0, *args, callback=cb, **kw)

    monkeypatch.setattr(scipy_optimize, "minimize", minimize)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    est = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, max_iter=50, tol=0)
    with pytest.raises(type(exc)):
        est.fit(X, y)
    assert len(iterates) == 4
    x, f = iterates[-1]
    P = np.concatenate([c.ravel() for c in est.coefs_] + [b.ravel() for b in est.intercepts_])
    np.testing.assert_array_equal(P, x)
    assert est.n_iter_ == 4 and est.loss_ == f
    assert len(est.history_["loss"]) == 4


def test_check_gradients_of_a_multilabel_model_refuses_targets_other_than_0_1():
    """Targets -1 and 4 were taken in silence: the report was another,
    out-of-range bce objective's gradient (1.4 from the real one)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = (rng.random((40, 2)) > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match=r"y: a multi-label model's targets are 0/1 indicator rows, got values "
                                         r"\[4, -1\]"):
        clf.check_gradients(X, Y * 5 - 1)
    assert clf.check_gradients(X, Y)["n_checked"] > 0


@pytest.mark.parametrize("later", ["identity", "relu", "leaky_relu", ("leaky_relu", {"alpha": 0.5})])
def test_regressor_predicts_with_the_output_it_was_fitted_with(later, tmp_path):
    """After set_params(output_activation=...) on a regressor fitted with
    leaky_relu of alpha 0.3, predict used leaky_relu with its default alpha
    (0.1): predictions moved by up to 0.4. The fitted output (out_activation_
    and its parameter) is used, as out_activation_ alone already was."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = X[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(4,), output_activation=("leaky_relu", {"alpha": 0.3}), max_iter=20,
                           random_state=0).fit(X, y)
    before = reg.predict(X)
    assert (before < 0).any()  # the negative side, where alpha matters
    reg.set_params(output_activation=later)
    np.testing.assert_array_equal(reg.predict(X), before)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), before)
    if later == ("leaky_relu", {"alpha": 0.5}):  # the same output, another parameter: it saves, and loads as fitted
        import dnnfast

        path = tmp_path / "reg.npz"
        reg.save(path)
        loaded = dnnfast.load(path)
        np.testing.assert_array_equal(loaded.predict(X), before)
        loaded.set_params(output_activation=("leaky_relu", {"alpha": 0.9}))
        np.testing.assert_array_equal(loaded.predict(X), before)


def test_a_systemexit_keeps_the_best_epochs_weights_for_a_later_warm_fit():
    """An early-stopping fit cut by a SystemExit (a SIGTERM handler's) undid
    the cut epoch but kept no best weights: a warm_start fit that then beat
    no score ended on weights scoring below the best_validation_score_ it
    reported. The KeyboardInterrupt path kept them; both now keep the same."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 10))
    y = (X[:, 0] + 0.8 * rng.normal(size=600) > 0).astype(int)
    kept = {}
    for exc in (KeyboardInterrupt, SystemExit):
        class Cut(MLPClassifier):
            calls = 0

            def _score_outputs(self, out, y_val, sw_val):
                Cut.calls += 1
                if Cut.calls == 12:
                    raise exc("cut")
                return super()._score_outputs(out, y_val, sw_val)

        est = Cut(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.5, momentum=0.0, early_stopping=True,
                  validation_fraction=0.3, max_iter=12, tol=0, n_iter_no_change=1000, random_state=0,
                  warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                est.fit(X, y)
            except SystemExit:
                pass
        assert est.n_iter_ == 11
        kept[exc] = est.__dict__.get("_best_params")
    assert kept[SystemExit] is not None
    np.testing.assert_array_equal(kept[SystemExit], kept[KeyboardInterrupt])


@pytest.mark.parametrize("form", ["fortran", "strided", "float32", "float16", "float64-into-float32"])
def test_a_small_float_x_in_another_layout_or_dtype_is_predicted_on_the_fast_path(monkeypatch, form):
    """A few rows of float16/32/64 that are not C-contiguous (a row of
    pandas' to_numpy(), which is Fortran-ordered) or not of the model's
    dtype are converted by the one-row fast path itself, as the full path
    converts them (the same bits), without scikit-learn's checks: they had
    taken about 20x the time of the call."""
    import warnings
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    dtype = np.float32 if form == "float64-into-float32" else np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((5,), max_iter=5, random_state=0).fit(X.astype(dtype), y)
    rows = {"fortran": np.asfortranarray(X[:3]), "strided": np.repeat(X[:3], 2, axis=1)[:, ::2],
            "float32": X[:3].astype(np.float32), "float16": X[:3].astype(np.float16),
            "float64-into-float32": X[:3]}[form]
    want = clf.predict_proba(rows.tolist())  # the full path (a list)
    clf.predict_proba(X[:1].astype(dtype))  # the fast path holds the model now
    with monkeypatch.context() as patch:
        patch.setattr(type(clf), "_validate_X", lambda *a, **k: pytest.fail("took the full path"))
        got = clf.predict_proba(rows)
    assert got.tobytes() == want.tobytes()
    if form == "float64-into-float32":  # a value too large for float32: the full path's message
        big = rows.copy()
        big[0, 0] = 1e39
        with pytest.raises(ValueError, match="X"):
            clf.predict_proba(big)
