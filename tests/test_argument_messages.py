"""Messages name the argument at fault and a fix that applies; values that
would turn outputs into NaN or infinity are refused instead of returned."""
import pickle

import numpy as np
import pytest

import dnnfast


def test_public_exceptions_show_their_public_module():
    for cls in (dnnfast.NonFiniteError, dnnfast.NonFiniteWarning):
        assert cls.__module__ == "dnnfast"
        assert repr(cls) == f"<class 'dnnfast.{cls.__name__}'>"
    err = pickle.loads(pickle.dumps(dnnfast.NonFiniteError("x")))
    assert type(err) is dnnfast.NonFiniteError


@pytest.mark.parametrize("bad, exc", [(True, TypeError), (np.bool_(True), TypeError), (1.0, TypeError),
                                      ("2", TypeError), (-1, ValueError), (2**31, ValueError),
                                      (2**40, ValueError)])
def test_set_num_threads_refuses_non_counts_naming_n(bad, exc):
    before = dnnfast.get_num_threads()
    with pytest.raises(exc, match=r"\bn\b"):
        dnnfast.set_num_threads(bad)
    assert dnnfast.get_num_threads() == before


def test_set_num_threads_accepts_counts_and_zero():
    before = dnnfast.get_num_threads()
    try:
        dnnfast.set_num_threads(np.int64(1))
        assert dnnfast.get_num_threads() == 1
        dnnfast.set_num_threads(0)  # back to OpenMP's default
    finally:
        dnnfast.set_num_threads(before)


@pytest.mark.parametrize("act", [("leaky_relu", {"alpha": 1e300}), ("elu", {"alpha": -1e300}),
                                 ("prelu", {"alpha": 1e39})])
def test_activation_parameter_not_finite_in_float32_is_refused(act):
    with pytest.raises(ValueError, match=r"activations\[0\].*not finite in float32"):
        dnnfast.Network([4, 3], [act], loss="sse", dtype="float32")
    dnnfast.Network([4, 3], [act], loss="sse", dtype="float64")  # finite there


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_that_overflows_raises_instead_of_returning_inf(dtype):
    big = np.finfo(dtype).max
    net = dnnfast.Network([4, 3], ["identity"], loss="sse", dtype=dtype, seed=0)
    net.weights[0][:] = 1.0
    X = np.full((2, 4), big / 2, dtype=dtype)
    with pytest.raises(ValueError, match="overflowed .* " + dtype):
        net.predict(X)
    assert np.all(np.isfinite(net.predict(X / big)))  # the same network, ordinary input


def test_predict_with_huge_weights_raises_instead_of_returning_nan():
    net = dnnfast.Network([4, 8, 3], ["relu", "softmax"], loss="cce", dtype="float32", seed=0)
    net.weights[0][:] = 3e38
    with pytest.raises(ValueError, match="overflowed"):
        net.predict(np.ones((5, 4), dtype=np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["predict", "forward", "cost", "loss_and_gradient", "gradients"])
def test_every_result_that_overflows_raises_instead_of_returning_it(method, dtype):
    """cost and the gradients returned NaN and infinity in silence where
    predict raised; forward returned a non-finite output."""
    net = dnnfast.Network([3, 4, 2], ["relu", "softmax"], loss="cce", dtype=dtype, seed=0)
    big = float(np.finfo(dtype).max) / 4
    net.weights[0][:] = big
    net.weights[1][:] = big
    X = np.ones((5, 3), dtype=dtype)
    call = getattr(net, method)
    args = (X,) if method in ("predict", "forward") else (X, [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match=f"{method if method != 'gradients' else 'loss_and_gradient'}: the "
                                         f"result overflowed to NaN or infinity in {dtype}") as info:
        call(*args)
    # What could be too large (predict and forward take no Y), and float64 only as a way out of float32.
    msg = str(info.value)
    assert ("X, Y or the parameters" in msg) == (method not in ("predict", "forward")), msg
    assert ("X or the parameters" in msg) == (method in ("predict", "forward")), msg
    assert ("or use float64" in msg) == (dtype == "float32"), msg


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "arctan", "binary_step"])
def test_forward_raises_for_a_hidden_z_that_overflows_behind_a_saturating_layer(act, dtype):
    """forward checked only the output: a saturating layer's A is finite
    (1, or pi/2) where its Z overflowed, and that Z was returned as inf."""
    net = dnnfast.Network([2, 2, 1], [act, "identity"], loss="sse", dtype=dtype, seed=0)
    net.weights[0][...] = np.finfo(dtype).max / 1.5  # Z = 1.33 max
    X = np.ones((1, 2), dtype=dtype)
    with pytest.raises(ValueError, match=f"forward: the result overflowed to NaN or infinity in {dtype}"):
        net.forward(X)
    Zs, _ = net.forward(X / np.finfo(dtype).max)  # the same network, ordinary input
    assert all(np.isfinite(z).all() for z in Zs)


@pytest.mark.parametrize("loss,m_y", [("mse", 2), ("bce", 3), ("sse", 4)])
def test_a_1d_target_for_several_outputs_says_the_shape_it_needs(loss, m_y):
    """A 1-D Y for a network of several outputs was told to reshape(1, -1),
    X's hint for one row, which gives a Y of the wrong shape again."""
    net = dnnfast.Network([3, m_y], ["sigmoid" if loss == "bce" else "identity"], loss=loss, dtype="float64",
                          seed=0)
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match=rf"Y must be 2-D, of shape \(n, {m_y}\) for this network's {m_y} "
                                         rf"outputs, got an array of shape \(4,\)") as info:
        net.cost(X, np.zeros(4))
    assert "reshape(1, -1)" not in str(info.value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [1, 5, 300])
def test_a_nan_weight_set_in_place_is_named_not_hidden_by_relu(rows, dtype):
    """relu mapped NaN to 0 in the core (np.maximum, the reference's relu, keeps
    it), so a NaN written into a weight in place (past the setters' checks)
    gave finite predictions and costs; now predict and cost name it."""
    net = dnnfast.Network([3, 6, 4, 2], ["relu", "relu", "softmax"], loss="cce", dtype=dtype, seed=0)
    net.weights[1][2, 3] = np.nan
    X = np.random.default_rng(0).normal(size=(rows, 3)).astype(dtype)
    for call in (lambda: net.predict(X), lambda: net.cost(X, np.arange(rows) % 2)):
        with pytest.raises(ValueError, match=r"the parameters contain NaN or infinity \(first in layer 2, W\)"):
            call()
    # The element-wise kernel itself, vector lanes and tails: NaN where the reference has it.
    Z = np.tile(np.array([np.nan, -0.0, 0.0, -1.0, 2.5, -np.inf, np.inf], dtype=dtype), (3, 11))
    Z = np.ascontiguousarray(Z[:, :rows % 70 + 7])
    relu = dict((r[0], r[1]) for r in dnnfast._core.ACTIVATIONS)["relu"]
    A = dnnfast._core.activation_forward(relu, Z, np.zeros(0, dtype=dtype))
    np.testing.assert_array_equal(A, dnnfast.reference.activation_forward("relu", Z))
    assert np.isnan(A).sum() == np.isnan(Z).sum() > 0


def test_float_labels_for_cce_get_the_labels_hint_not_the_single_row_one():
    net = dnnfast.Network([4, 3], ["softmax"], loss="cce", seed=0)
    X = np.zeros((6, 4))
    y = np.array([0, 1, 2, 0, 1, 2], dtype=float)
    with pytest.raises(ValueError) as info:
        net.fit(X, y)
    msg = str(info.value)
    assert "astype(int)" in msg and "reshape(1, -1)" not in msg
    net.fit(X, y.astype(int))  # the hint works


# -- the estimators (issue 18) -------------------------------------------------

_X = np.random.default_rng(0).normal(size=(20, 3))
_Y = np.arange(20) % 2


@pytest.mark.parametrize("est", [dnnfast.MLPClassifier, dnnfast.MLPRegressor])
@pytest.mark.parametrize("X, y, name, text", [
    (np.full((20, 3), np.nan), _Y, "X", "Input X contains NaN"),
    (np.ones(20), _Y, "X", "Expected 2D array"),
    (np.ones((20, 3, 2)), _Y, "X", "dim 3"),
    (_X, np.ones((20, 2, 2)), "y", "dim 3"),
    (_X, np.full(20, np.nan), "y", "Input y contains NaN"),
])
def test_estimator_messages_name_the_argument_at_fault(est, X, y, name, text):
    """X's problems name X (not "y: Input X ..."), y's name y."""
    other = "y" if name == "X" else "X"
    with pytest.raises(ValueError, match=text) as info:
        est(max_iter=2).fit(X, y)
    msg = str(info.value)
    assert not msg.startswith(f"{other}:"), msg
    assert name in msg.split(".")[0], msg


_HUGE = np.array([[1.0, 2.0, 3.0]] * 19 + [[1, 2, 10**400]], dtype=object)


@pytest.mark.parametrize("call", [
    lambda: dnnfast.MLPClassifier(max_iter=2).fit(_HUGE, _Y),
    lambda: dnnfast.MLPRegressor(max_iter=2).fit(_HUGE, _Y),
    lambda: dnnfast.MLPClassifier(max_iter=2, random_state=0).fit(_X, _Y).predict(_HUGE),
    lambda: dnnfast.MLPClassifier(max_iter=2, random_state=0).fit(_X, _Y).partial_fit(_HUGE, _Y),
], ids=["fit", "regressor-fit", "predict", "partial_fit"])
def test_an_integer_too_large_for_a_float_is_named(call):
    """An object array holding 10**400: scikit-learn's OverflowError, with the argument named."""
    with pytest.raises(OverflowError, match=r"^X: int too large"):
        call()


def test_a_target_too_large_for_a_float_is_named():
    with pytest.raises(OverflowError, match=r"^y: int too large"):
        dnnfast.MLPRegressor(max_iter=2).fit(_X, np.array([1.0] * 19 + [10**400], dtype=object))


@pytest.mark.parametrize("cw, text", [({0: -1.0}, "class 0"), ({0: np.nan}, "class 0"), ({1: np.inf}, "class 1"),
                                      ({0: 0, 1: 0}, "sum to zero"), ({0: True}, "class 0")])
def test_class_weight_like_sample_weight(cw, text):
    """Negative, non-finite or all-zero class weights are refused, as the same sample_weight is."""
    with pytest.raises(ValueError, match="class_weight") as info:
        dnnfast.MLPClassifier(max_iter=2, class_weight=cw).fit(_X, _Y)
    assert text in str(info.value)


@pytest.mark.parametrize("dtype, cw, sw, text", [
    (np.float32, {0: 1e39}, None, "class_weight has row weights too large for float32"),
    (np.float32, {0: 1e30}, 1e30, "sample_weight times class_weight has row weights too large for float32"),
    (np.float64, {0: 1e300}, 1e300, "sample_weight times class_weight has row weights too large for float64"),
    (np.float64, None, 1e308, r"The rows' weights \(sample_weight\) sum beyond float64"),
    (np.float64, {0: 1e308, 1: 1e308}, None, r"The rows' weights \(class_weight\) sum beyond float64"),
], ids=["cw-f32", "product-f32", "product-f64", "sw-total", "cw-total"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_weights_beyond_the_model_dtype_are_refused_by_name(dtype, cw, sw, text, solver):
    """A class weight, or its product with sample_weight, too large for the
    model's dtype became infinity, and weights each finite can sum to
    infinity: the fit then ended in a NonFiniteError that blamed the data.
    They are refused before training, naming the weights."""
    est = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, solver=solver, class_weight=cw,
                                random_state=0)
    with pytest.raises(ValueError, match=text):
        est.fit(_X.astype(dtype), _Y, sample_weight=None if sw is None else np.full(len(_Y), sw))
    assert not hasattr(est, "coefs_")


def test_class_weight_zero_for_one_class_is_fine():
    dnnfast.MLPClassifier(max_iter=50, class_weight={0: 0.0}, random_state=0).fit(_X, _Y)


def test_huge_batch_size_is_clipped_with_a_warning():
    """scikit-learn clips batch_size to n_samples; an int beyond int64 must not crash the check."""
    with pytest.warns(UserWarning, match="batch_size"):
        est = dnnfast.MLPClassifier(max_iter=3, batch_size=10**30, random_state=0).fit(_X, _Y)
    ref = dnnfast.MLPClassifier(max_iter=3, batch_size=20, random_state=0).fit(_X, _Y)
    for a, b in zip(est.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, exc", [(2**40, ValueError), (0, ValueError), (True, TypeError), (2.0, TypeError)])
def test_estimator_n_threads_is_a_thread_count(bad, exc):
    with pytest.raises(exc, match="n_threads"):
        dnnfast.MLPClassifier(max_iter=2, n_threads=bad).fit(_X, _Y)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2", 10**6, 10**30])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "regressor"])
def test_n_threads_set_after_fit_is_checked_by_predict(bad, method):
    """predict read n_threads with int(): 0, 2.5, '2', True and 10**6 ran on
    some count in silence, -1 raised the core's 'n must be >= 0' and 10**30
    an OverflowError, neither naming n_threads. predict checks it as fit
    does (also on its fast path for an X it has seen), and runs nothing."""
    from dnnfast._estimators._compat import InvalidParameterError

    if method == "regressor":
        est = dnnfast.MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(_X, _X[:, 0])
        call = est.predict
    else:
        est = _fitted()
        call = getattr(est, method) if method != "score" else (lambda X: est.score(X, _Y))
    X = np.ascontiguousarray(_X)
    call(X)  # the fast path's record of this X
    threads = dnnfast.get_num_threads()
    est.set_params(n_threads=bad)
    with pytest.raises(InvalidParameterError, match="n_threads"):
        call(X)
    assert dnnfast.get_num_threads() == threads


def _fitted(**kw):
    return dnnfast.MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0, **kw).fit(_X, _Y)


@pytest.mark.parametrize("edit, text", [
    (lambda c: c.intercepts_.__setitem__(0, np.full(3, 100.0)), r"intercepts_\[0\] has shape \(3,\), expected \(5,\)"),
    (lambda c: c.intercepts_.__setitem__(0, np.arange(9.0)), r"intercepts_\[0\] has shape \(9,\), expected \(5,\)"),
    (lambda c: c.intercepts_.__setitem__(0, np.ones((5, 1, 1))), r"intercepts_\[0\] has shape \(5, 1, 1\)"),
    (lambda c: c.coefs_.__setitem__(0, np.ones((7, 5))), r"coefs_\[0\] has shape \(7, 5\), expected 3 rows "
                                                         r"\(n_features_in_\)"),
    (lambda c: c.coefs_.__setitem__(1, np.ones((2, 1))), r"coefs_\[1\] has shape \(2, 1\), expected 5 rows "
                                                         r"\(the columns of coefs_\[0\]\)"),
    (lambda c: c.coefs_.__setitem__(1, np.ones(5)), r"coefs_\[1\] has shape \(5,\)"),
    (lambda c: (c.coefs_.__setitem__(1, np.ones((5, 2))), c.intercepts_.__setitem__(1, np.ones(2))),
     r"coefs_\[1\] has 2 columns, expected n_outputs_ = 1"),
    (lambda c: setattr(c, "coefs_", c.coefs_[:1]), r"one array per layer, got 1, 2"),
], ids=["short-intercepts", "long-intercepts", "3-D-intercepts", "coefs-rows", "coefs-chain", "1-D-coefs",
        "outputs", "dropped-layer"])
@pytest.mark.parametrize("call", ["predict", "predict_proba", "save"])
def test_assigned_parameters_of_the_wrong_shape_are_named(edit, text, call, tmp_path):
    """coefs_ / intercepts_ assigned by hand are checked against each other and
    the fitted data: a short array left part of the packed layer unwritten, a
    long one spilled into the next, and predict answered from them."""
    c = _fitted()
    edit(c)
    with pytest.raises(ValueError, match=text):
        c.save(tmp_path / "m.npz") if call == "save" else getattr(c, call)(_X[:2])
    assert not (tmp_path / "m.npz").exists()
