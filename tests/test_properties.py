"""Properties that hold for every network and input, checked with hypothesis.

Random architectures (1-3 layers, widths 1-9, any activations and loss, both
dtypes) and random finite inputs, zero-size shapes included; 200 examples per
property.

What "independent of the batch size" means, exactly: the GEMM computes every
output element as one dot product whose order of summation depends on the
number of rows only through its small-M path (1 to ``SMALL_M`` rows at a
time). So predictions made in pieces of more than ``SMALL_M`` rows are
bit-identical to one call on all rows; pieces of 1 to ``SMALL_M`` rows (one
row at a time, say) agree within round-off (``NET_TOL``). Row order never
matters, bit for bit.
"""
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

import dnnfast  # noqa: E402
from conftest import NET_TOL, assert_close  # noqa: E402

# Odd output/loss pairings are built on purpose here (every activation with
# every loss); the constructor's warning about them is expected.
pytestmark = pytest.mark.filterwarnings("ignore:loss=.*this pairing does not learn:UserWarning")

PROPERTY = settings(max_examples=200, deadline=None)

SMALL_M = 4  # rows up to which the GEMM takes its small-M path (kGemmSmallRows, cpp/gemm/gemm.hpp)
# exp grows as e^z (clipped at e^88 / e^709, README): a finite input may give
# an infinite cost or gradient downstream of it by design, so the finiteness
# properties below draw every other activation; its own edges are in
# test_extreme_values.py and test_ops.py.
ACTIVATIONS = [a for a in dnnfast.activation_names() if a != "exp"]
LOSSES = dnnfast.loss_names()
DTYPES = [np.float32, np.float64]
# |sum of a probability row - 1|: softmax's exp/sum/divide rounds each of up
# to 9 entries by a few ulps.
PROB_SUM_TOL = {np.float32: 1e-5, np.float64: 1e-13}


def finite(dtype, bound=1e3):
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8)


@st.composite
def networks(draw, output=None, loss=None):
    dtype = draw(st.sampled_from(DTYPES))
    depth = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 9), min_size=depth + 1, max_size=depth + 1))
    acts = draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=depth, max_size=depth))
    if output is not None:
        acts[-1] = output
    loss = loss or draw(st.sampled_from(LOSSES))
    seed = draw(st.integers(0, 2**32 - 1))
    return dnnfast.Network(sizes, acts, loss, np.dtype(dtype).name, seed=seed)


def inputs(draw, net, min_rows=1, max_rows=40):
    rows = draw(st.integers(min_rows, max_rows))
    return draw(arrays(net.dtype, (rows, net.sizes[0]), elements=finite(net.dtype)))


def targets(draw, net, rows):
    m_y = net.sizes[-1]
    if net.loss == "cce":
        return draw(arrays(np.int64, rows, elements=st.integers(0, m_y - 1)))
    if net.loss == "bce":
        return draw(arrays(net.dtype, (rows, m_y), elements=st.floats(0, 1, width=net.dtype.itemsize * 8)))
    if net.loss == "poisson":
        return draw(arrays(net.dtype, (rows, m_y), elements=st.floats(0, 10.0, width=net.dtype.itemsize * 8)))
    return draw(arrays(net.dtype, (rows, m_y), elements=finite(net.dtype, 10.0)))


@PROPERTY
@given(data=st.data())
def test_predict_is_finite_with_the_right_shape_or_raises_a_clear_error(data):
    net = data.draw(networks())
    m_x = net.sizes[0]
    rows = data.draw(st.integers(0, 12))
    cols = data.draw(st.sampled_from([m_x, m_x, m_x, 0, m_x + 1]))
    X = data.draw(arrays(net.dtype, (rows, cols), elements=finite(net.dtype)))
    if rows == 0 or cols != m_x:
        with pytest.raises(ValueError, match="X"):  # 0 rows, or the wrong number of columns
            net.predict(X)
        return
    out = net.predict(X)
    assert out.shape == (rows, net.sizes[-1]) and out.dtype == net.dtype
    assert np.isfinite(out).all()


@PROPERTY
@given(data=st.data())
def test_predict_refuses_malformed_input_with_value_or_type_error(data):
    net = data.draw(networks())
    m_x = net.sizes[0]
    kind = data.draw(st.sampled_from(["1-D", "3-D", "nan", "inf", "complex", "strings", "object"]))
    rows = data.draw(st.integers(1, 5))
    X = data.draw(arrays(np.float64, (rows, m_x), elements=finite(np.float64)))
    if kind == "1-D":
        bad, error = X[0], ValueError
    elif kind == "3-D":
        bad, error = X[None], ValueError
    elif kind in ("nan", "inf"):
        bad, error = X.copy(), ValueError
        bad.flat[data.draw(st.integers(0, X.size - 1))] = np.nan if kind == "nan" else -np.inf
    elif kind == "complex":
        bad, error = X + 1j, TypeError
    elif kind == "strings":
        bad, error = X.astype(str), TypeError
    else:
        bad, error = X.astype(object), TypeError
    with pytest.raises(error, match="X"):
        net.predict(bad)


@PROPERTY
@given(data=st.data())
def test_softmax_probabilities_sum_to_one(data):
    net = data.draw(networks(output="softmax"))
    out = net.predict(inputs(data.draw, net))
    assert (out >= 0).all() and (out <= 1).all()
    np.testing.assert_allclose(out.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=PROB_SUM_TOL[net.dtype.type])


def term_scale(net, X):
    """The size of the terms the outputs are sums of: |X| through |W| and
    |b| layer by layer, each activation's output taken as at most its input's
    size + 1 (every activation drawn here changes a value by at most its
    size, plus sigmoid's and softplus's offsets at 0). Round-off in a sum is
    relative to its terms, not to the result: rows of 234s through a
    float32 identity layer summed terms of about 100 to outputs of 0.19,
    and the row split's 7.6e-6 difference was 4e-5 of the output."""
    m = np.abs(np.asarray(X, dtype=np.float64))
    for layer, (W, b) in enumerate(zip(net.weights, net.biases)):
        if layer:
            m = m + 1.0
        m = m @ np.abs(np.asarray(W, dtype=np.float64)) + np.abs(np.asarray(b, dtype=np.float64))
    return float(m.max()) if m.size else 0.0


@PROPERTY
@given(data=st.data())
def test_predictions_do_not_depend_on_how_the_rows_are_split(data):
    net = data.draw(networks())
    X = inputs(data.draw, net)
    n = X.shape[0]
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))) - {n})
    pieces = np.split(np.arange(n), cuts)
    whole = net.predict(X)
    scale = max(float(np.abs(whole).max()), term_scale(net, X))
    joined = np.vstack([net.predict(X[p]) for p in pieces])
    if all(len(p) > SMALL_M for p in pieces):
        np.testing.assert_array_equal(joined, whole)
    else:  # a piece went through the GEMM's small-M path: round-off only
        assert_close(joined, whole, net.dtype, tol=NET_TOL, scale=scale)
    one_by_one = np.vstack([net.predict(X[i:i + 1]) for i in range(n)])
    assert_close(one_by_one, whole, net.dtype, tol=NET_TOL, scale=scale)


@PROPERTY
@given(data=st.data())
def test_permuting_rows_permutes_the_predictions(data):
    net = data.draw(networks())
    X = inputs(data.draw, net)
    perm = data.draw(st.permutations(range(X.shape[0])))
    np.testing.assert_array_equal(net.predict(X[perm]), net.predict(X)[perm])


@PROPERTY
@given(data=st.data())
def test_cost_and_gradients_are_finite_for_finite_input(data):
    net = data.draw(networks())
    X = inputs(data.draw, net, max_rows=20)
    Y = targets(data.draw, net, X.shape[0])
    c, grad = net.loss_and_gradient(X, Y)
    assert np.isfinite(c) and c >= 0
    assert grad.shape == net.parameters.shape and grad.dtype == net.dtype
    assert np.isfinite(grad).all()
    cost = net.cost(X, Y)
    assert_close(np.array([cost]), np.array([c]), net.dtype, tol=NET_TOL)


@PROPERTY
@given(data=st.data())
def test_classifier_probabilities_sum_to_one(data):
    from dnnfast import MLPClassifier

    dtype = data.draw(st.sampled_from(DTYPES))
    rows = data.draw(st.integers(4, 30))
    cols = data.draw(st.integers(1, 5))
    X = data.draw(arrays(dtype, (rows, cols), elements=finite(dtype, 10.0)))
    n_classes = data.draw(st.integers(2, 4))
    y = np.arange(rows) % n_classes  # every class present
    y = y[np.asarray(data.draw(st.permutations(range(rows))))]
    clf = MLPClassifier(hidden_layer_sizes=(data.draw(st.integers(1, 8)),),
                        activation=data.draw(st.sampled_from(["relu", "tanh", "logistic", "identity"])),
                        solver=data.draw(st.sampled_from(["sgd", "adam", "lbfgs"])),
                        max_iter=data.draw(st.integers(1, 3)), random_state=data.draw(st.integers(0, 1000)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        clf.fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (rows, n_classes) and proba.dtype == dtype
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=PROB_SUM_TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predictions_across_the_internal_1024_row_chunks_are_bit_identical(dtype):
    """predict works through its input 1024 rows at a time: no seam shows."""
    net = dnnfast.Network([30, 40, 5], ["tanh", "softmax"], "cce", dtype, seed=0)
    X = np.random.default_rng(0).standard_normal((2100, 30)).astype(dtype)
    whole = net.predict(X)
    np.testing.assert_array_equal(np.vstack([net.predict(X[i:i + 37]) for i in range(0, 2100, 37)]), whole)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_past_a_whole_chunk_are_not_left_to_the_small_path(dtype):
    """predict runs in chunks of 1024 rows; 1025-1028 rows had left a last
    chunk of 1-4 rows to the GEMM's small-M path, so predict(X[:1025])
    differed from predict(X)[:1025] in its last row (6.7e-16 in float64)."""
    rng = np.random.default_rng(0)
    net = dnnfast.Network([300, 64, 10], ["tanh", "softmax"], loss="cce", dtype=dtype, seed=0)
    X = rng.normal(size=(2060, 300)).astype(dtype)
    whole = net.predict(X)
    for n in (1025, 1026, 1027, 1028, 1029, 2049, 2052, 2053):
        np.testing.assert_array_equal(net.predict(X[:n]), whole[:n], err_msg=f"{n} rows")
    for lo in (1, 3, 1020):  # pieces that start elsewhere than row 0
        np.testing.assert_array_equal(net.predict(X[lo:lo + 1025]), whole[lo:lo + 1025], err_msg=f"from {lo}")


@pytest.mark.parametrize("dtype,width,tol", [("float32", 10000, 1e-5), ("float64", 50000, 1e-13)])
def test_wide_softmax_rows_sum_to_one(dtype, width, tol):
    """README's bound holds at any width: summed in order in the dtype, rows
    of 10000 float32 classes summed to 1 within 2e-5, not 1e-5."""
    rng = np.random.default_rng(0)
    net = dnnfast.Network([4, width], ["softmax"], dtype=dtype, seed=0)
    net.weights = [3 * rng.normal(size=(4, width))]
    P = net.predict(rng.normal(size=(64, 4)))
    assert np.abs(P.astype(np.float64).sum(axis=1) - 1).max() <= tol
