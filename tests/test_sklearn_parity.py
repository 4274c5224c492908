"""dnnfast.estimators reproduces scikit-learn's MLP numbers.

With float64 input and the same ``random_state``, ``coefs_`` and
``intercepts_`` after fit match scikit-learn's to a relative 1e-9 (the
largest difference over an array divided by its largest magnitude): the same
initial weights, shuffles and validation split, and the same arithmetic up to
the summation order inside matrix products. L-BFGS amplifies that round-off
(about 10x every 5-10 iterations on these problems), so its cases run a
bounded number of iterations.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn import datasets  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import dnnfast  # noqa: E402
from dnnfast import estimators as df  # noqa: E402
from dnnfast._estimators._sampling import shuffled, train_validation_split  # noqa: E402

RTOL = 1e-9  # float64 parity of the fitted parameters


def _standardize(X):
    return (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)


def _iris():
    X, y = datasets.load_iris(return_X_y=True)
    return _standardize(X), y


def _breast_cancer():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return _standardize(X)[:300], y[:300]


def _digits():
    X, y = datasets.load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


def _digits_multilabel():
    X, y = datasets.load_digits(return_X_y=True)
    Y = np.column_stack([y >= 5, y % 2 == 0, y % 3 == 0]).astype(int)
    return X[:300] / 16.0, Y[:300]


def _diabetes():
    X, y = datasets.load_diabetes(return_X_y=True)
    return _standardize(X), (y - y.mean()) / y.std()


def _diabetes_counts():
    X, y = datasets.load_diabetes(return_X_y=True)
    return _standardize(X)[:200], y[:200] / 100.0


def _linnerud():
    X, Y = datasets.load_linnerud(return_X_y=True)
    return _standardize(X), _standardize(Y)


DATA = {"iris": _iris, "breast_cancer": _breast_cancer, "digits": _digits,
        "digits_multilabel": _digits_multilabel, "diabetes": _diabetes, "diabetes_counts": _diabetes_counts,
        "linnerud": _linnerud}


def max_rel_diff(a, b):
    """Largest |a - b| over each array relative to the array's largest |a|, over all arrays."""
    return max(float(np.max(np.abs(p - q)) / np.max(np.abs(p))) for p, q in zip(a, b))


def params_of(est):
    return list(est.coefs_) + list(est.intercepts_)


def fit_both(kind, data, sample_weight=None, **params):
    X, y = DATA[data]()
    sw = None
    if sample_weight == "random":
        sw = np.random.RandomState(3).uniform(0.2, 2.0, size=X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(sk, kind)(**params).fit(X, y, sample_weight=sw)
        ours = getattr(df, kind)(**params).fit(X, y, sample_weight=sw)
    return ref, ours, X, y


C, R = "MLPClassifier", "MLPRegressor"
SGD = dict(solver="sgd", learning_rate_init=0.05)
CASES = [
    # (estimator, data set, parameters)
    (C, "iris", dict(SGD, hidden_layer_sizes=(12,), max_iter=40)),                          # Nesterov
    (C, "iris", dict(SGD, nesterovs_momentum=False, hidden_layer_sizes=(8, 6), max_iter=30)),  # momentum
    (C, "iris", dict(SGD, momentum=0.0, learning_rate="invscaling", max_iter=30, alpha=0.01)),
    (C, "iris", dict(SGD, learning_rate="adaptive", tol=0.05, n_iter_no_change=2, max_iter=40,
                     hidden_layer_sizes=(10,))),
    (C, "iris", dict(solver="adam", hidden_layer_sizes=(10,), max_iter=60, alpha=0.1, activation="tanh")),
    (C, "iris", dict(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=25)),
    (C, "iris", dict(solver="adam", early_stopping=True, max_iter=40, validation_fraction=0.2,
                     hidden_layer_sizes=(10,), learning_rate_init=0.01)),
    (C, "breast_cancer", dict(SGD, early_stopping=True, max_iter=30, activation="logistic",
                              hidden_layer_sizes=(16,))),                                   # stratified split
    (C, "breast_cancer", dict(solver="adam", batch_size=32, max_iter=20, hidden_layer_sizes=(20, 10))),
    (C, "breast_cancer", dict(solver="lbfgs", max_iter=15, hidden_layer_sizes=(8,), alpha=1.0)),
    (C, "digits", dict(solver="adam", max_iter=15, hidden_layer_sizes=(32,), batch_size=50)),
    (C, "digits", dict(SGD, max_iter=15, hidden_layer_sizes=(32,), activation="identity", shuffle=False)),
    (C, "digits_multilabel", dict(solver="adam", max_iter=20, hidden_layer_sizes=(24,))),
    (C, "digits_multilabel", dict(solver="sgd", max_iter=20, early_stopping=True, hidden_layer_sizes=(24,))),
    (R, "diabetes", dict(SGD, learning_rate_init=0.01, max_iter=30, hidden_layer_sizes=(16,))),
    (R, "diabetes", dict(solver="adam", learning_rate_init=0.01, max_iter=40, hidden_layer_sizes=(16, 8),
                         alpha=0.5)),
    (R, "diabetes", dict(solver="lbfgs", max_iter=25, hidden_layer_sizes=(10,), activation="tanh")),
    (R, "diabetes", dict(solver="adam", early_stopping=True, learning_rate_init=0.01, max_iter=40,
                         hidden_layer_sizes=(16,))),
    (R, "diabetes", dict(SGD, learning_rate_init=0.01, learning_rate="invscaling", power_t=0.25,
                         max_iter=30, hidden_layer_sizes=(16,), activation="logistic")),
    (R, "linnerud", dict(solver="adam", learning_rate_init=0.01, max_iter=50, hidden_layer_sizes=(8,))),
    (R, "linnerud", dict(solver="lbfgs", max_iter=20, hidden_layer_sizes=(6,))),
    (R, "linnerud", dict(SGD, learning_rate_init=0.01, max_iter=50, batch_size=5, hidden_layer_sizes=(6,))),
    (R, "diabetes_counts", dict(loss="poisson", solver="adam", learning_rate_init=0.01, max_iter=20,
                                hidden_layer_sizes=(8,))),
    (R, "diabetes_counts", dict(loss="poisson", solver="lbfgs", max_iter=15, hidden_layer_sizes=(8,))),
]


def _case_id(case):
    kind, data, p = case
    keys = ",".join(f"{k}={v}" for k, v in p.items() if k in ("solver", "early_stopping", "learning_rate",
                                                              "nesterovs_momentum", "loss", "activation"))
    return f"{kind[3:]}-{data}-{keys}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_fit_matches_sklearn_float64(case):
    kind, data, params = case
    ref, ours, X, _ = fit_both(kind, data, random_state=0, **params)
    assert max_rel_diff(params_of(ref), params_of(ours)) < RTOL
    assert ours.n_iter_ == ref.n_iter_
    assert ours.t_ == ref.t_ if hasattr(ref, "t_") else True
    assert ours.out_activation_ == ref.out_activation_
    assert ours.n_layers_ == ref.n_layers_ and ours.n_outputs_ == ref.n_outputs_
    assert ours.loss_ == pytest.approx(ref.loss_, rel=1e-9)
    if params["solver"] != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
        if params.get("early_stopping"):
            np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=1e-12)
            # the best of those scores: computed by other arithmetic (AVX-512's
            # sums differ from OpenBLAS's in the last bit), so to round-off too
            assert ours.best_validation_score_ == pytest.approx(ref.best_validation_score_, rel=1e-12)
            assert ours.best_loss_ is None and ref.best_loss_ is None
        else:
            assert ours.best_loss_ == pytest.approx(ref.best_loss_, rel=1e-9)
    if kind == C:
        np.testing.assert_array_equal(ours.classes_, ref.classes_)
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-8, atol=1e-12)
        np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind,data,solver", [(C, "iris", "sgd"), (C, "breast_cancer", "lbfgs"),
                                              (R, "diabetes", "adam"), (R, "linnerud", "sgd")])
def test_sample_weight_matches_sklearn(kind, data, solver):
    params = dict(solver=solver, max_iter=15 if solver == "lbfgs" else 25, hidden_layer_sizes=(10,),
                  learning_rate_init=0.01, random_state=1, alpha=0.01)
    ref, ours, _, _ = fit_both(kind, data, sample_weight="random", **params)
    assert max_rel_diff(params_of(ref), params_of(ours)) < RTOL


def test_initial_weights_match_sklearn():
    X, y = _iris()
    for activation in ("relu", "logistic"):
        params = dict(hidden_layer_sizes=(7, 5), activation=activation, random_state=42, max_iter=1,
                      solver="sgd", learning_rate_init=1e-300)
        ref, ours, _, _ = fit_both(C, "iris", **params)
        assert max_rel_diff(params_of(ref), params_of(ours)) < 1e-15


def test_partial_fit_matches_sklearn():
    X, y = _iris()
    ref = sk.MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", random_state=0, learning_rate_init=0.05)
    ours = df.MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", random_state=0, learning_rate_init=0.05)
    for _ in range(5):
        ref.partial_fit(X, y, classes=np.unique(y))
        ours.partial_fit(X, y, classes=np.unique(y))
    assert max_rel_diff(params_of(ref), params_of(ours)) < RTOL
    assert ours.t_ == ref.t_ and ours.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("solver,changed", [
    ("adam", dict(solver="sgd")), ("sgd", dict(solver="adam")), ("sgd", dict(momentum=0.5)),
    ("sgd", dict(momentum=0.0)), ("sgd", dict(nesterovs_momentum=False)), ("sgd", dict(learning_rate="invscaling")),
    ("sgd", dict(learning_rate_init=0.2, power_t=0.1)), ("adam", dict(beta_1=0.5, beta_2=0.9, epsilon=1e-3)),
], ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_partial_fit_after_set_params_goes_on_with_the_solver_fit_made(solver, changed, tmp_path):
    """scikit-learn's fit makes its optimizer from the parameters of the
    time and partial_fit keeps it: after set_params, the solver, momentum,
    betas, epsilon and schedule it began with (an Adam state read as a
    velocity had stepped uphill). A saved and loaded estimator goes on the same way."""
    X, y = _iris()
    kw = dict(hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=4, learning_rate_init=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ours = sk.MLPClassifier(**kw).fit(X, y), df.MLPClassifier(**kw).fit(X, y)
    ours.save(tmp_path / "m.npz")
    loaded = dnnfast.load(tmp_path / "m.npz")
    for est in (ref, ours, loaded):
        est.set_params(**changed)
        for _ in range(3):
            est.partial_fit(X, y)
    assert max_rel_diff(params_of(ref), params_of(ours)) < RTOL
    assert max_rel_diff(params_of(ref), params_of(loaded)) < RTOL
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)


def test_warm_start_matches_sklearn():
    X, y = _diabetes()
    kw = dict(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=0.01, max_iter=5, random_state=0,
              warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ours = sk.MLPRegressor(**kw), df.MLPRegressor(**kw)
        for _ in range(3):
            ref.fit(X, y)
            ours.fit(X, y)
    assert max_rel_diff(params_of(ref), params_of(ours)) < RTOL
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)


def test_warm_start_with_early_stopping_keeps_the_best_weights_where_sklearn_keeps_the_last():
    """The one documented difference (README): a warm-started fit in which no
    epoch beats the best validation score ends with the best epoch's
    weights; scikit-learn's with the last epoch's (its kept best weights are
    the arrays it trains). Everything else still matches."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    kw = dict(hidden_layer_sizes=(5,), random_state=0, warm_start=True, max_iter=5, early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ours = sk.MLPClassifier(**kw).fit(X, y), df.MLPClassifier(**kw).fit(X, y)
        assert max_rel_diff(params_of(ref), params_of(ours)) < RTOL
        best = [p.copy() for p in params_of(ours)]
        best_score = ours.best_validation_score_
        ref.fit(X, y)
        ours.fit(X, y)
    assert ours.best_validation_score_ == best_score  # no epoch of the second fit did better
    np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
    assert all(np.array_equal(a, b) for a, b in zip(params_of(ours), best))
    assert max_rel_diff(params_of(ref), best) > 1e-3  # scikit-learn's: the last epoch's


@pytest.mark.parametrize("n,fraction,stratified", [(150, 0.1, False), (150, 0.2, True), (57, 0.33, True),
                                                   (101, 0.1, True)])
def test_validation_split_matches_train_test_split(n, fraction, stratified):
    labels = np.random.RandomState(0).randint(0, 2, size=n).astype(bool).reshape(-1, 1)
    rows = np.arange(n)
    ref_train, ref_val = train_test_split(rows, random_state=np.random.RandomState(5), test_size=fraction,
                                          stratify=labels if stratified else None)
    train, val = train_validation_split(n, fraction, np.random.RandomState(5),
                                        labels[:, 0] if stratified else None)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(val, ref_val)


@pytest.mark.parametrize("n", [0, 1, 2, 37, 569])
def test_shuffle_matches_sklearn_utils_shuffle(n):
    from sklearn.utils import shuffle

    idx = np.arange(n, dtype=np.int64)[::-1].copy()  # an order that is not arange
    a, b = np.random.RandomState(9), np.random.RandomState(9)
    ref, ours = idx, idx
    for _ in range(3):
        ref = shuffle(ref, random_state=a)
        ours = shuffled(ours, b)
        np.testing.assert_array_equal(ref, ours)
        assert ours.dtype == np.int64
    assert a.randint(1 << 30) == b.randint(1 << 30)  # the generators drew alike
    np.testing.assert_array_equal(idx, np.arange(n)[::-1])  # the order passed in is not changed


@pytest.mark.parametrize("kind,data,solver", [(C, "iris", "adam"), (R, "diabetes", "sgd"),
                                              (C, "breast_cancer", "lbfgs")])
def test_float32_stays_float32_and_is_close(kind, data, solver):
    X, y = DATA[data]()
    X = X.astype(np.float32)
    params = dict(solver=solver, max_iter=10, hidden_layer_sizes=(10,), random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = getattr(df, kind)(**params).fit(X, y)
        ref = getattr(sk, kind)(**params).fit(X, y)
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours.intercepts_)
    out = ours.predict_proba(X) if kind == C else ours.predict(X)
    assert out.dtype == np.float32
    assert max_rel_diff(params_of(ref), params_of(ours)) < 1e-3


@pytest.mark.parametrize("max_iter, max_fun", [(15, 15000), (15, 5)])
def test_lbfgs_convergence_warning_is_sklearns(max_iter, max_fun):
    """The lbfgs ConvergenceWarning had a period after SciPy's message and
    advised raising max_iter where max_fun had stopped the fit; scikit-learn
    advises it only where the iterations reached max_iter."""
    X, y = datasets.load_iris(return_X_y=True)
    texts = []
    for cls in (sk.MLPClassifier, dnnfast.MLPClassifier):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cls(solver="lbfgs", hidden_layer_sizes=(7,), random_state=0, max_iter=max_iter, max_fun=max_fun).fit(X, y)
        texts.append([str(w.message) for w in caught if "lbfgs failed" in str(w.message)])
    if not texts[0]:
        pytest.skip("this scikit-learn words its lbfgs warning otherwise")
    assert len(texts[0]) == 1 and texts[1] == texts[0], texts


def _score_cases():
    rng = np.random.default_rng(3)
    w = rng.uniform(0.1, 2.0, 40)
    ints = rng.integers(0, 3, 40)
    strs = np.array(["ab", "c", "d"], dtype=object)[ints]
    ind = rng.integers(0, 2, (40, 3))
    acc = [(ints, rng.integers(0, 3, 40), None), (ints, rng.integers(0, 3, 40), w),
           (strs, np.roll(strs, 1), w), (ind, np.where(rng.random((40, 3)) < 0.2, 1 - ind, ind), None),
           (ind, ind, w), (ints[:1], ints[:1], None)]
    y1, y2 = rng.standard_normal(40), rng.standard_normal((40, 3))
    const = np.column_stack([np.full(40, 2.5), y2[:, 1], np.full(40, -1.0)])
    pred_const = np.column_stack([np.full(40, 2.5), y2[:, 1] + 0.1, np.full(40, -1.0 + 1e-9)])
    r2 = [(y1, y1 + 0.3 * rng.standard_normal(40), None), (y1, y1 + 0.3 * rng.standard_normal(40), w),
          (y2, y2 * 0.9, w), (y2.astype(np.float32), (y2 * 0.9).astype(np.float32), None),
          (y2, (y2 * 0.9).astype(np.float32), None), (y2.astype(np.float32), y2 * 1.1, w.astype(np.float32)),
          (const, pred_const, None), (const, pred_const, w), (y1[:, None], y1[:, None] * 2, None)]
    return acc, r2


def test_numpy_scores_give_scikit_learns_bits():
    # The validation score of each epoch (early stopping) comes from these
    # NumPy forms, not scikit-learn's metrics: the same numbers, bit for bit.
    from sklearn.metrics import accuracy_score, r2_score

    from dnnfast._estimators._compat import numpy_accuracy_score, numpy_r2_score

    acc, r2 = _score_cases()
    for y_true, y_pred, sw in acc:
        assert numpy_accuracy_score(y_true, y_pred, sw) == accuracy_score(y_true, y_pred, sample_weight=sw)
    for y_true, y_pred, sw in r2:
        mine, theirs = numpy_r2_score(y_true, y_pred, sw), r2_score(y_true, y_pred, sample_weight=sw)
        assert mine == theirs, (y_true.dtype, y_pred.dtype, sw is None, mine, theirs)
    with pytest.warns(Warning, match="two samples"):  # one row: scikit-learn's NaN and warning
        assert np.isnan(numpy_r2_score(np.ones(1), np.zeros(1)))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_early_stopping_scores_match_sklearn(kind):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6))
    if kind == "classifier":
        y = np.array(["x", "y", "z"], dtype=object)[(X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)]
        ests = [E(hidden_layer_sizes=(16,), early_stopping=True, max_iter=15, random_state=1, tol=0)
                for E in (sk.MLPClassifier, df.MLPClassifier)]
    else:
        y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.standard_normal(300)
        ests = [E(hidden_layer_sizes=(16,), early_stopping=True, max_iter=15, random_state=1, tol=0)
                for E in (sk.MLPRegressor, df.MLPRegressor)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        for est in ests:
            est.fit(X, y)
    np.testing.assert_allclose(ests[1].validation_scores_, ests[0].validation_scores_, rtol=1e-9, atol=0)
    assert ests[1].best_validation_score_ == max(ests[1].validation_scores_)
