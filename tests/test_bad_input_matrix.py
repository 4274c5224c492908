"""Every kind of bad input against every public entry point.

Each case either works and gives exactly what the equivalent clean input
gives (lists, strided, Fortran-ordered, read-only, big-endian, bool, integer
and float16 arrays, masked arrays with nothing masked, array-likes), or
raises ValueError / TypeError whose message names the argument. Nothing
crashes, nothing comes back NaN, and a refused call leaves the model as it
was.

Decisions this file pins down:
- bool and float16 input works (both convert to float32/float64 exactly);
- object arrays are refused by ``Network`` (TypeError) but accepted by the
  estimators when they hold numbers, as scikit-learn does (its estimator
  checks require it); strings inside them are refused by both;
- complex input: TypeError from ``Network``, ValueError ("Complex data not
  supported", scikit-learn's convention) from the estimators;
- sparse matrices (SciPy's, in any format) are accepted by both, with the
  checks of a dense X (finite values, a real numeric dtype, rows, columns);
- a float64 value too large for a float32 model is refused, never turned into
  infinity.
"""
from __future__ import annotations

import copy
import os
import re
import textwrap
import warnings

import numpy as np
import pytest

import dnnfast
from conftest import run_without
from dnnfast import MLPClassifier, MLPRegressor

N, M, K = 12, 4, 3


def data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, M))
    labels = np.arange(N) % K
    return X, labels


class ArrayLike:
    """Something that is not an ndarray but converts to one (as a pandas
    DataFrame does)."""

    def __init__(self, a):
        self._a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)

    def __len__(self):
        return len(self._a)

    @property
    def shape(self):
        return self._a.shape


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _strided(a):
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    wide[:, ::2] = a
    return wide[:, ::2]


def _with(a, value, dtype=None):
    a = a.astype(dtype or a.dtype)
    a.flat[5] = value
    return a


def _sparse(a, fmt="csr_matrix"):
    sparse = pytest.importorskip("scipy.sparse")
    return getattr(sparse, fmt)(a)


def _masked(a, masked):
    mask = np.zeros(a.shape, dtype=bool)
    mask[0, 0] = masked
    return np.ma.masked_array(a, mask=mask) if masked else np.ma.masked_array(a)


# ---------------------------------------------------------------------------
# X: (id, make(X) -> bad, works for Network, works for the estimators, clean(X))
# "works" cases are compared with the run on clean(X) (default: X itself).
# ---------------------------------------------------------------------------

ERR, OK = False, True
X_CASES = [
    # shapes
    ("1-D", lambda X: X[0], ERR, ERR, None),
    ("3-D", lambda X: X[None], ERR, ERR, None),
    ("fewer-columns", lambda X: X[:, :3], ERR, ERR, None),
    ("more-columns", lambda X: np.hstack([X, X]), ERR, ERR, None),
    ("0-rows", lambda X: X[:0], ERR, ERR, None),
    ("0-columns", lambda X: X[:, :0], ERR, ERR, None),
    ("scalar", lambda X: 1.5, ERR, ERR, None),
    ("None", lambda X: None, ERR, ERR, None),
    ("empty-list", lambda X: [], ERR, ERR, None),
    ("ragged-list", lambda X: [list(r) for r in X[:-1]] + [[1.0, 2.0]], ERR, ERR, None),
    # dtypes
    ("object-numbers", lambda X: X.astype(object), ERR, OK, None),
    ("object-string", lambda X: _with(X, "1.5", object), ERR, ERR, None),
    ("object-None", lambda X: _with(X, None, object), ERR, ERR, None),
    # refused as a dtype (below), so refused as an entry: float() made them counts of days
    ("object-datetime64", lambda X: _with(X, np.datetime64("2020-01-01"), object), ERR, ERR, None),
    ("object-timedelta64", lambda X: _with(X, np.timedelta64(5, "D"), object), ERR, ERR, None),
    ("complex", lambda X: X.astype(np.complex128), ERR, ERR, None),
    ("str", lambda X: X.astype(str), ERR, ERR, None),
    ("bytes", lambda X: X.astype("S"), ERR, ERR, None),
    ("datetime64", lambda X: np.zeros(X.shape, dtype="datetime64[s]"), ERR, ERR, None),
    ("timedelta64", lambda X: np.zeros(X.shape, dtype="timedelta64[s]"), ERR, ERR, None),
    ("structured", lambda X: np.zeros(X.shape, dtype=[("a", "f8")]), ERR, ERR, None),
    ("bool", lambda X: X > 0, OK, OK, lambda X: (X > 0).astype(np.float64)),
    ("float16", lambda X: X.astype(np.float16), OK, OK, lambda X: X.astype(np.float16).astype(np.float64)),
    ("int64", lambda X: (10 * X).astype(np.int64), OK, OK, lambda X: (10 * X).astype(np.int64).astype(float)),
    ("uint8", lambda X: (10 * np.abs(X)).astype(np.uint8), OK, OK,
     lambda X: (10 * np.abs(X)).astype(np.uint8).astype(float)),
    # values
    ("NaN", lambda X: _with(X, np.nan), ERR, ERR, None),
    ("+inf", lambda X: _with(X, np.inf), ERR, ERR, None),
    ("-inf", lambda X: _with(X, -np.inf), ERR, ERR, None),
    ("overflows-float32", lambda X: _with(X, 1e39), ERR, ERR, None),  # the models here are float32
    # containers and layouts
    ("list", lambda X: X.tolist(), OK, OK, None),
    ("tuple", lambda X: tuple(map(tuple, X.tolist())), OK, OK, None),
    ("array-like", lambda X: ArrayLike(X), OK, OK, None),
    ("strided", _strided, OK, OK, None),
    ("fortran", np.asfortranarray, OK, OK, None),
    ("read-only", _readonly, OK, OK, None),
    ("big-endian-f8", lambda X: X.astype(">f8"), OK, OK, None),
    ("big-endian-f4-fortran", lambda X: np.asfortranarray(X.astype(">f4")), OK, OK,
     lambda X: X.astype(np.float32).astype(np.float64)),
    ("masked-nothing-masked", lambda X: _masked(X, False), OK, OK, None),
    ("masked-with-masked-entry", lambda X: _masked(X, True), ERR, ERR, None),
    ("sparse", _sparse, OK, OK, None),
    ("sparse-csc-array-int64", lambda X: _sparse((10 * X).astype(np.int64), "csc_array"), OK, OK,
     lambda X: (10 * X).astype(np.int64).astype(float)),
    ("sparse-NaN", lambda X: _sparse(_with(X, np.nan)), ERR, ERR, None),
    ("sparse-inf", lambda X: _sparse(_with(X, -np.inf), "coo_matrix"), ERR, ERR, None),
    ("sparse-complex", lambda X: _sparse(X.astype(np.complex128)), ERR, ERR, None),
    ("sparse-0-rows", lambda X: _sparse(X[:0]), ERR, ERR, None),
    ("sparse-overflows-float32", lambda X: _sparse(_with(X, 1e39)), ERR, ERR, None),
]
X_IDS = [c[0] for c in X_CASES]


def test_the_matrix_has_at_least_30_kinds_of_bad_X():
    assert len(X_CASES) >= 30


# ---------------------------------------------------------------------------
# The entry points
# ---------------------------------------------------------------------------

def make_net():
    return dnnfast.Network([M, 5, K], ["tanh", "softmax"], loss="cce", dtype="float32", seed=0)


def net_call(entry, X, Y):
    """Runs one Network entry point on a fresh network -> (result arrays, network)."""
    net = make_net()
    if entry == "fit":
        h = net.fit(X, Y, epochs=2, batch_size=5, learning_rate=0.1)
        out = [net.parameters, np.array(h.cost)]
    elif entry == "predict":
        out = [net.predict(X)]
    elif entry == "forward":
        Zs, As = net.forward(X)
        out = Zs + As
    elif entry == "cost":
        out = [np.array(net.cost(X, Y))]
    elif entry == "gradients":
        dWs, dbs = net.gradients(X, Y)
        out = dWs + dbs
    else:
        c, g = net.loss_and_gradient(X, Y)
        out = [np.array(c), g]
    return out, net


NET_ENTRIES = ["fit", "predict", "forward", "cost", "gradients", "loss_and_gradient"]
NET_Y_ENTRIES = ["fit", "cost", "gradients", "loss_and_gradient"]

EST_ENTRIES = ["MLPClassifier.fit", "MLPClassifier.partial_fit", "MLPClassifier.predict",
               "MLPClassifier.predict_proba", "MLPClassifier.predict_log_proba", "MLPClassifier.score",
               "MLPRegressor.fit", "MLPRegressor.partial_fit", "MLPRegressor.predict", "MLPRegressor.score"]
EST_Y_ENTRIES = [e for e in EST_ENTRIES if e.endswith(("fit", "score"))]

_FITTED = {}


def targets(kind, labels):
    return labels if kind == "MLPClassifier" else np.column_stack([labels, -labels]).astype(float) / K


def make_est(kind):
    cls = MLPClassifier if kind == "MLPClassifier" else MLPRegressor
    return cls(hidden_layer_sizes=(5,), solver="adam", max_iter=3, random_state=0, learning_rate_init=0.01)


def fitted(kind):
    """A model fitted once on float32 data (so its dtype is float32), copied per use."""
    if kind not in _FITTED:
        X, labels = data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITTED[kind] = make_est(kind).fit(X.astype(np.float32), targets(kind, labels))
    return copy.deepcopy(_FITTED[kind])


def est_call(entry, X, y):
    """Runs one estimator entry point -> (result arrays, estimator)."""
    kind, method = entry.split(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after 3 epochs; log(0)
        if method == "fit":
            est = make_est(kind).fit(X, y)
        else:
            est = fitted(kind)
            if method == "partial_fit":
                if kind == "MLPClassifier":
                    est.partial_fit(X, y, classes=np.arange(K))
                else:
                    est.partial_fit(X, y)
            elif method == "score":
                return [np.array(est.score(X, y))], est
            else:
                return [np.asarray(getattr(est, method)(X))], est
    return est.coefs_ + est.intercepts_, est


def state(model):
    if isinstance(model, dnnfast.Network):
        return [model.parameters.copy()]
    if not hasattr(model, "coefs_"):  # unfitted: stays so (no n_features_in_, classes_ or weights)
        return [np.array(sorted(set(vars(model)) - {"_model_lock"}))]  # the lock is made on first use
    return [c.copy() for c in model.coefs_ + model.intercepts_]


def assert_same(got, want, rtol=0):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert np.all(np.isfinite(g[np.isfinite(w)])), "non-finite result from accepted input"
        if rtol:
            np.testing.assert_allclose(g, w, rtol=rtol)
        else:
            np.testing.assert_array_equal(g, w)


def assert_refused(call, name, model=None):
    """call() raises ValueError/TypeError naming ``name``, and leaves ``model`` unchanged."""
    before = state(model) if model is not None else None
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert re.search(rf"\b{name}\b", str(info.value)), f"message does not name {name}: {info.value}"
    if model is not None:
        now = state(model)
        assert len(now) == len(before)
        for a, b in zip(now, before):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# X against every entry point
# ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("error::RuntimeWarning")  # no stray overflow / invalid-value warning
@pytest.mark.parametrize("entry", NET_ENTRIES)
@pytest.mark.parametrize("case", X_CASES, ids=X_IDS)
def test_network_entry_points_on_bad_X(entry, case):
    _, make, works, _, clean = case
    X, labels = data()
    Y = np.eye(K)[labels]
    bad = make(X)
    if works:
        got, _ = net_call(entry, bad, Y)
        want, _ = net_call(entry, (clean or (lambda a: a))(X), Y)
        assert_same(got, want)
    else:
        net = make_net()
        call = {
            "fit": lambda: net.fit(bad, Y, epochs=1),
            "predict": lambda: net.predict(bad),
            "forward": lambda: net.forward(bad),
            "cost": lambda: net.cost(bad, Y),
            "gradients": lambda: net.gradients(bad, Y),
            "loss_and_gradient": lambda: net.loss_and_gradient(bad, Y),
        }[entry]
        assert_refused(call, "X", net)


@pytest.mark.parametrize("entry", EST_ENTRIES)
@pytest.mark.parametrize("case", X_CASES, ids=X_IDS)
def test_estimator_entry_points_on_bad_X(entry, case):
    name, make, _, works, clean = case
    X, labels = data()
    kind, method = entry.split(".")
    y = targets(kind, labels)
    bad = make(X)
    if works:
        got, _ = est_call(entry, bad, y)
        want, _ = est_call(entry, (clean or (lambda a: a))(X), y)
        assert_same(got, want)
    elif name in ("fewer-columns", "more-columns") and method == "fit":
        got, est = est_call(entry, bad, y)  # a fresh model takes any number of features
        assert est.n_features_in_ == bad.shape[1] and all(np.all(np.isfinite(g)) for g in got)
    elif name in ("overflows-float32", "sparse-overflows-float32") and method == "fit":
        # A fresh fit on float64 data trains in float64, where 1e39 is an
        # ordinary number: it works (result checked against a C-contiguous
        # copy of itself) or stops with NonFiniteError, never with NaN weights.
        try:
            got, _ = est_call(entry, bad, y)
        except dnnfast.NonFiniteError:
            return
        assert all(np.all(np.isfinite(g)) for g in got)
    else:
        est = fitted(kind) if method != "fit" else make_est(kind)
        if method == "fit":
            call = lambda: est.fit(bad, y)  # noqa: E731
        elif method == "partial_fit":
            call = (lambda: est.partial_fit(bad, y, classes=np.arange(K))) if kind == "MLPClassifier" else \
                (lambda: est.partial_fit(bad, y))
        elif method == "score":
            call = lambda: est.score(bad, y)  # noqa: E731
        else:
            call = lambda: getattr(est, method)(bad)  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_refused(call, "X", est)


# ---------------------------------------------------------------------------
# Y / y against every entry point that takes targets
# ---------------------------------------------------------------------------

def _net_Y_cases():
    X, labels = data()
    Y = np.eye(K)[labels]
    return [
        ("fewer-rows", Y[:-1], None), ("more-rows", np.vstack([Y, Y]), None),
        ("labels-fewer-rows", labels[:-1], None),
        ("narrow", Y[:, :2], None), ("3-D", Y[None], None), ("1-D-floats", Y[:, 0].copy(), None),
        ("label-out-of-range", np.where(labels == 2, 3, labels), None),
        ("label-negative", np.where(labels == 2, -1, labels), None),
        ("NaN", _with(Y, np.nan), None), ("+inf", _with(Y, np.inf), None), ("-inf", _with(Y, -np.inf), None),
        ("complex", Y.astype(complex), None), ("str", Y.astype(str), None),
        ("object-string", _with(Y, "1", object), None),
        ("datetime64", np.zeros(Y.shape, dtype="datetime64[s]"), None),
        ("None", None, None), ("scalar", 1.0, None), ("ragged", [[1, 0, 0], [0, 1]], None),
        ("masked-with-masked-entry", _masked(Y, True), None),
        ("overflows-float32", _with(Y, 1e39), None),
        # accepted
        ("int-labels", labels, Y), ("label-list", labels.tolist(), Y), ("onehot-list", Y.tolist(), Y),
        ("fortran", np.asfortranarray(Y), Y), ("read-only", _readonly(Y), Y),
        ("big-endian", Y.astype(">f8"), Y), ("bool-onehot", Y.astype(bool), Y),
        ("strided", _strided(Y), Y),
    ]


NET_Y_CASES = _net_Y_cases()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("entry", NET_Y_ENTRIES)
@pytest.mark.parametrize("case", NET_Y_CASES, ids=[c[0] for c in NET_Y_CASES])
def test_network_entry_points_on_bad_Y(entry, case):
    _, bad, clean = case
    X, _ = data()
    if clean is not None:
        got, _ = net_call(entry, X, bad)
        want, _ = net_call(entry, X, clean)
        assert_same(got, want)
    else:
        net = make_net()
        call = (lambda: net.fit(X, bad, epochs=1)) if entry == "fit" else (lambda: getattr(net, entry)(X, bad))
        assert_refused(call, "Y", net)


def _est_y_cases(kind):
    X, labels = data()
    y = targets(kind, labels)
    cases = [
        ("fewer-rows", y[:-1], None), ("more-rows", np.concatenate([y, y]), None),
        ("NaN", _with(y.astype(float), np.nan), None),
        ("complex", y.astype(complex), None), ("None", None, None),
        ("ragged", [[0, 1]] * (N - 1) + [[0]], None),
        ("3-D", np.zeros((N, 2, 2)), None),
        ("masked-with-masked-entry", np.ma.masked_array(y, mask=np.arange(y.size).reshape(y.shape) == 0), None),
        ("list", y.tolist(), y), ("read-only", _readonly(y), y),
    ]
    if kind == "MLPRegressor":
        cases += [("str", y.astype(str), None), ("object-string", _with(y, "1", object), None),
                  ("+inf", _with(y, np.inf), None), ("datetime64", np.zeros(y.shape, "datetime64[s]"), None),
                  ("object-timedelta64", _with(y, np.timedelta64(5, "D"), object), None),
                  ("big-endian", y.astype(">f8"), y), ("fortran", np.asfortranarray(y), y),
                  ("overflows-float32", _with(y, 1e39), None),  # for the float32 model's fit
                  # an object y's entries: None (NaN after scikit-learn's finiteness
                  # check: a NonFiniteError at fit), 1j (without it: float()'s TypeError)
                  ("object-None", _with(y, None, object), None), ("object-complex", _with(y, 1j, object), None)]
    return cases


# score compares y with predictions in float64: 1e39 is then an ordinary (if bad) target.
EST_Y_CASES = [(e, c) for e in EST_Y_ENTRIES for c in _est_y_cases(e.split(".")[0])
               if not (e.endswith("score") and c[0] == "overflows-float32")]


@pytest.mark.parametrize("entry,case", EST_Y_CASES, ids=[f"{e}-{c[0]}" for e, c in EST_Y_CASES])
def test_estimator_entry_points_on_bad_y(entry, case):
    name, bad, clean = case
    kind, method = entry.split(".")
    X, _ = data()
    X = X.astype(np.float32)  # float32 models: 1e39 does not fit
    if clean is not None:
        got, _ = est_call(entry, X, bad)
        want, _ = est_call(entry, X, clean)
        # scikit-learn's r2_score keeps a float64 array in float64 but may
        # sum a list's conversion in the predictions' float32
        assert_same(got, want, rtol=1e-6 if method == "score" else 0)
        return
    est = make_est(kind) if method == "fit" else fitted(kind)
    if method == "partial_fit" and kind == "MLPClassifier":
        call = lambda: est.partial_fit(X, bad, classes=np.arange(K))  # noqa: E731
    else:
        call = lambda: getattr(est, method)(X, bad)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_refused(call, "y", est)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_regressor_y_too_large_for_a_float_is_named(method):
    """An object y holding 10**400: scikit-learn's OverflowError, with y named
    (without scikit-learn it was NumPy's, naming nothing)."""
    X, labels = data()
    y = _with(targets("MLPRegressor", labels), 10**400, object)
    with pytest.raises(OverflowError, match=r"^y: int too large"):
        getattr(make_est("MLPRegressor"), method)(X, y)


def test_partial_fit_with_an_unseen_label_raises_naming_y_and_changes_nothing():
    X, labels = data()
    clf = fitted("MLPClassifier")
    bad = labels.copy()
    bad[0] = 7
    assert_refused(lambda: clf.partial_fit(X, bad), "y", clf)


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_score_with_unseen_labels_or_targets_is_computed_not_refused(kind):
    """score's y need not come from the training classes: an unseen label is
    simply a wrong prediction."""
    X, labels = data()
    est = fitted(kind)
    y = targets(kind, labels).copy()
    y[:3] = 9
    s = est.score(X, y)
    if kind == "MLPClassifier":
        assert s == np.mean(est.predict(X) == y)
    else:
        assert np.isfinite(s)


SAMPLE_WEIGHT_CASES = [
    ("nan", np.full(N, np.nan)), ("short", np.ones(N - 1)), ("strings", np.array(["1"] * N)),
    ("negative", -np.ones(N)), ("zeros", np.zeros(N)),
    # scikit-learn's messages for these did not name sample_weight (without it: a
    # complex one was cast to its real part in silence, a dict or set was float()'s TypeError)
    ("complex", np.ones(N) + 1j), ("dict", {"a": 1}), ("set", {1.0}), ("2-D", np.ones((N, 2))),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("case", SAMPLE_WEIGHT_CASES, ids=[c[0] for c in SAMPLE_WEIGHT_CASES])
def test_estimator_sample_weight_is_checked_and_named(case, method):
    X, labels = data()
    kw = {"classes": np.arange(K)} if method == "partial_fit" else {}
    with pytest.raises((ValueError, TypeError), match="sample_weight"):
        getattr(make_est("MLPClassifier"), method)(X, labels, sample_weight=case[1], **kw)


SCORE_CASES = [  # (argument at fault, X, sample_weight, words of the message)
    ("X", np.where(np.eye(N, M) > 0, np.nan, 1.0), None, "Input X contains NaN"),
    ("X", np.ones((N, M - 1)), None, f"X has {M - 1} features"),
    ("sample_weight", None, -np.ones(N), "Negative values"),  # fit refuses it: score scored it
    ("sample_weight", None, np.ones(N - 1), "sample_weight.shape"),
    ("sample_weight", None, np.full(N, np.nan), "NaN"),
    ("sample_weight", None, np.ones((N, 2)), ""),
    ("sample_weight", None, {"a": 1}, ""),
]


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("case", SCORE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(SCORE_CASES)])
def test_estimator_score_names_the_argument_at_fault(kind, case):
    """score's problems name their argument: one naming("y") around all of
    score said "y: Input X contains NaN" and "y: Sample weights must be 1D"."""
    name, X, sw, words = case
    X0, labels = data()
    est = fitted(kind)
    with pytest.raises((ValueError, TypeError)) as info:
        est.score(X0 if X is None else X, labels, sample_weight=sw)
    msg = str(info.value)
    assert words in msg and name in msg.split("\n")[0] and not msg.startswith("y:"), msg


# ---------------------------------------------------------------------------
# Sizes, names and scalar arguments
# ---------------------------------------------------------------------------

NETWORK_ARG_CASES = [
    # sizes whose product overflows int64, and absurd sizes: refused before any allocation
    (dict(sizes=[10 ** 12, 10 ** 12, 2]), ValueError, r"sizes.*memory"),
    (dict(sizes=[2 ** 40, 2 ** 40], activations="identity"), ValueError, r"sizes.*memory"),
    (dict(sizes=[10 ** 6, 10 ** 6, 10]), ValueError, r"sizes.*memory"),
    (dict(sizes=[2 ** 64, 3], activations="identity"), ValueError, r"sizes.*memory"),
    (dict(sizes=[4, 2.5, 3]), TypeError, "sizes"),
    (dict(sizes=[4, np.float64(5), 3]), TypeError, "sizes"),
    (dict(sizes=[4, -5, 3]), ValueError, "sizes"),
    (dict(sizes=[4, 0, 3]), ValueError, "sizes"),
    (dict(sizes=[4, True, 3]), TypeError, "sizes"),
    (dict(sizes=[4, "5", 3]), TypeError, "sizes"),
    (dict(sizes=[4]), ValueError, "sizes"),
    (dict(sizes=None), TypeError, "sizes"),
    (dict(activations=["tanh", "softmx"]), ValueError, "activations"),
    (dict(activations=["tanh", None]), TypeError, "activation"),
    (dict(activations="Relu6"), ValueError, "activations"),
    (dict(loss="hinge"), ValueError, "loss"),
    (dict(loss=None), TypeError, "loss"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(dtype=np.int32), ValueError, "dtype"),
    (dict(dtype="complex64"), ValueError, "dtype"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed="abc"), TypeError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(fused="yes"), TypeError, "fused"),
    (dict(init="zeros"), ValueError, "init"),
]


@pytest.mark.parametrize("kw,exc,match", NETWORK_ARG_CASES, ids=[str(c[0]) for c in NETWORK_ARG_CASES])
def test_network_constructor_arguments(kw, exc, match):
    args = dict(sizes=[M, 5, K], activations=["tanh", "softmax"], loss="cce", dtype="float32", seed=0)
    args.update(kw)
    with pytest.raises(exc, match=match):
        dnnfast.Network(**args)


FIT_ARG_CASES = [
    (dict(batch_size=0), ValueError, "batch_size"), (dict(batch_size=-1), ValueError, "batch_size"),
    (dict(batch_size=2.0), TypeError, "batch_size"), (dict(batch_size=True), TypeError, "batch_size"),
    (dict(batch_size="4"), TypeError, "batch_size"),
    (dict(epochs=-1), ValueError, "epochs"), (dict(epochs=1.0), TypeError, "epochs"),
    (dict(epochs=True), TypeError, "epochs"), (dict(epochs=None), TypeError, "epochs"),
    (dict(learning_rate=0), ValueError, "learning_rate"), (dict(learning_rate=-1e-3), ValueError, "learning_rate"),
    (dict(learning_rate=np.nan), ValueError, "learning_rate"),
    (dict(learning_rate=np.inf), ValueError, "learning_rate"),
    (dict(learning_rate=True), TypeError, "learning_rate"), (dict(learning_rate="0.1"), TypeError, "learning_rate"),
    (dict(shuffle="no"), TypeError, "shuffle"), (dict(verbose=2), TypeError, "verbose"),
    (dict(seed=-3), ValueError, "seed"), (dict(on_nonfinite="stop"), ValueError, "on_nonfinite"),
]


@pytest.mark.parametrize("kw,exc,match", FIT_ARG_CASES, ids=[str(c[0]) for c in FIT_ARG_CASES])
def test_network_fit_arguments(kw, exc, match):
    X, labels = data()
    net = make_net()
    args = dict(epochs=1, batch_size=4, learning_rate=0.1)
    args.update(kw)
    before = net.parameters.copy()
    with pytest.raises(exc, match=match):
        net.fit(X, labels, **args)
    np.testing.assert_array_equal(net.parameters, before)


EST_PARAM_CASES = [
    (dict(hidden_layer_sizes=(10 ** 12,)), ValueError, r"hidden_layer_sizes.*memory"),
    (dict(hidden_layer_sizes=(10 ** 6, 10 ** 6)), ValueError, r"hidden_layer_sizes.*memory"),
    # a first W past int64's bytes: the memory refusal, not the core's type error on the size
    (dict(hidden_layer_sizes=(2 ** 61,), solver="sgd"), ValueError, r"hidden_layer_sizes.*memory"),
    (dict(hidden_layer_sizes=(2 ** 61,), solver="adam"), ValueError, r"hidden_layer_sizes.*memory"),
    (dict(hidden_layer_sizes=(2.5,)), TypeError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(-3,)), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(True,)), TypeError, "hidden_layer_sizes"),
    (dict(activation="relu6"), ValueError, "activation"),
    (dict(solver="newton"), ValueError, "solver"),
    (dict(batch_size=0), ValueError, "batch_size"), (dict(batch_size=True), TypeError, "batch_size"),
    (dict(max_iter=0), ValueError, "max_iter"), (dict(max_iter=2.0), TypeError, "max_iter"),
    (dict(learning_rate_init=-0.1), ValueError, "learning_rate_init"),
    (dict(learning_rate_init=np.nan), ValueError, "learning_rate_init"),
    (dict(alpha=-1.0), ValueError, "alpha"), (dict(momentum=2.0), ValueError, "momentum"),
    (dict(shuffle="yes"), TypeError, "shuffle"), (dict(on_nonfinite="stop"), ValueError, "on_nonfinite"),
]


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("kw,exc,match", EST_PARAM_CASES, ids=[str(c[0]) for c in EST_PARAM_CASES])
def test_estimator_parameters(kind, kw, exc, match):
    X, labels = data()
    est = make_est(kind).set_params(**kw)
    with pytest.raises(exc, match=match):
        est.fit(X, targets(kind, labels))


def test_memory_check_reads_the_available_memory():
    from dnnfast._validation import available_memory, check_memory

    avail = available_memory()
    assert avail is None or avail > 0
    check_memory(1 << 20, "sizes", "a small network")  # small: never refused
    if avail is not None:
        with pytest.raises(ValueError, match="only .* is available"):
            check_memory(avail + (1 << 40), "sizes", "this")


def test_reference_network_refuses_absurd_sizes_too():
    with pytest.raises(ValueError, match=r"sizes.*memory"):
        dnnfast.reference.Network([10 ** 12, 10 ** 12, 2], ["relu", "identity"], loss="sse")


def _run_without_scikit_learn(body):
    """Run ``body`` in a fresh interpreter where scikit-learn cannot be imported,
    with this file imported as ``m``; returns the list ``failed`` it fills."""
    here = os.path.dirname(os.path.abspath(__file__))
    return run_without(["sklearn"], f"""
import json, sys
sys.path.insert(0, {here!r})
import test_bad_input_matrix as m
from dnnfast._estimators._compat import HAVE_SKLEARN
assert not HAVE_SKLEARN
failed = []
""" + textwrap.dedent(body) + """
print(json.dumps(failed))
""", timeout=300)


def test_estimator_matrix_holds_without_scikit_learn():
    """The NumPy-only path of the estimators (no scikit-learn installed) gives
    the same answers to every X and y case, in a fresh interpreter where
    scikit-learn cannot be imported."""
    failed = _run_without_scikit_learn("""
        for case in m.X_CASES:
            for entry in m.EST_ENTRIES:
                try:
                    m.test_estimator_entry_points_on_bad_X(entry, case)
                except BaseException as e:
                    failed.append(f"{case[0]} {entry}: {type(e).__name__}: {e}"[:400])
        for entry, case in m.EST_Y_CASES:
            try:
                m.test_estimator_entry_points_on_bad_y(entry, case)
            except BaseException as e:
                failed.append(f"y {case[0]} {entry}: {type(e).__name__}: {e}"[:400])
        for method in ("fit", "partial_fit"):
            try:
                m.test_regressor_y_too_large_for_a_float_is_named(method)
            except BaseException as e:
                failed.append(f"y 10**400 MLPRegressor.{method}: {type(e).__name__}: {e}"[:400])
        """)
    assert failed == [], "\n".join(failed)


def test_estimator_sample_weight_is_checked_and_named_without_scikit_learn():
    failed = _run_without_scikit_learn("""
        for case in m.SAMPLE_WEIGHT_CASES:
            for method in ("fit", "partial_fit"):
                try:
                    m.test_estimator_sample_weight_is_checked_and_named(case, method)
                except BaseException as e:
                    failed.append(f"{case[0]} {method}: {type(e).__name__}: {e}"[:400])
        for case in m.SCORE_CASES:
            for kind in ("MLPClassifier", "MLPRegressor"):
                try:
                    m.test_estimator_score_names_the_argument_at_fault(kind, case)
                except BaseException as e:
                    failed.append(f"score {case[0]} {case[3]!r} {kind}: {type(e).__name__}: {e}"[:400])
        """)
    assert failed == [], "\n".join(failed)


def test_ragged_parameter_assignment_names_the_layer():
    net = make_net()
    before = net.parameters.copy()
    with pytest.raises(TypeError, match=r"weights\[0\]"):
        net.weights = [[[1.0, 2.0], [1.0]], net.weights[1]]
    np.testing.assert_array_equal(net.parameters, before)


def test_pandas_data_frames_work_like_their_arrays():
    pd = pytest.importorskip("pandas")
    X, labels = data()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(M)])
    np.testing.assert_array_equal(make_net().predict(df), make_net().predict(X))
    got, _ = est_call("MLPClassifier.predict_proba", df, None)
    want, _ = est_call("MLPClassifier.predict_proba", X, None)
    assert_same(got, want)
