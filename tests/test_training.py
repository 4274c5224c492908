"""Training: each kind of gradient descent lowers the cost on the shipped digits
and on a regression problem; training is reproducible (same seed ->
bit-identical weights, on any thread count); batch_indices schedules."""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast
from dnnfast import _core


@pytest.fixture(scope="module")
def digits():
    import dnnfast.datasets
    X, y = dnnfast.datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() >= 0 and X.max() <= 16
    assert set(np.unique(y)) == set(range(10))
    return X / 16.0, y


@pytest.fixture(scope="module")
def regression():
    """y = sum_k sin(x_k), shifted positive (a relu output can reach every target)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 4))
    y = np.sin(X).sum(axis=1, keepdims=True) + 4.5
    assert y.min() > 0
    return X, y


# (batch_size, learning_rate, epochs): batch, stochastic, mini-batch (dividing
# and not dividing n = 1797 = 3^2 * 199), with and without shuffling.
DIGITS_KINDS = [
    pytest.param(None, 0.5, 30, False, id="batch"),
    pytest.param(1, 0.01, 1, False, id="stochastic"),
    pytest.param(1, 0.01, 1, True, id="stochastic-shuffled"),
    pytest.param(9, 0.1, 2, False, id="minibatch-9-divides"),
    pytest.param(64, 0.2, 4, True, id="minibatch-64-short-last"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size,lr,epochs,shuffle", DIGITS_KINDS)
def test_gradient_descent_lowers_cost_on_digits(digits, batch_size, lr, epochs, shuffle, dtype):
    X, y = digits
    net = dnnfast.Network([64, 32, 10], ["tanh", "softmax"], loss="cce", dtype=dtype, seed=0)
    c0 = net.cost(X, y)
    hist = net.fit(X, y, epochs=epochs, batch_size=batch_size, learning_rate=lr, shuffle=shuffle)
    c1 = net.cost(X, y)
    assert len(hist.cost) == epochs
    assert np.isfinite(c1)
    assert c1 < 0.5 * c0, (c0, c1)
    if batch_size is None:
        # batch GD with a small enough step: the cost decreases every epoch
        assert all(b < a for a, b in zip(hist.cost, hist.cost[1:]))
    accuracy = np.mean(net.predict(X).argmax(axis=1) == y)
    assert accuracy > 0.8, accuracy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size,lr,epochs", [
    pytest.param(None, 0.05, 200, id="batch"),
    pytest.param(1, 0.002, 3, id="stochastic"),
    pytest.param(30, 0.02, 20, id="minibatch-30-short-last"),
])
def test_gradient_descent_lowers_cost_on_regression(regression, batch_size, lr, epochs, dtype):
    X, y = regression
    net = dnnfast.Network([4, 16, 1], ["tanh", "relu"], loss="sse", dtype=dtype, seed=1)
    c0 = net.cost(X, y)
    net.fit(X, y, epochs=epochs, batch_size=batch_size, learning_rate=lr, shuffle=batch_size is not None)
    c1 = net.cost(X, y)
    assert np.isfinite(c1) and c1 < 0.2 * c0, (c0, c1)
    # 1-D targets for a single output are accepted and mean the same
    assert net.cost(X, y.ravel()) == c1


def fitted_parameters(X, y, dtype, batch_size, seed=0, epochs=2):
    net = dnnfast.Network([64, 48, 10], ["prelu", "softmax"], loss="cce", dtype=dtype, seed=seed)
    net.fit(X, y, epochs=epochs, batch_size=batch_size, learning_rate=0.1, shuffle=True)
    return net.parameters.copy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_gives_bit_identical_weights(digits, dtype):
    X, y = digits
    a = fitted_parameters(X, y, dtype, 50)
    b = fitted_parameters(X, y, dtype, 50)
    np.testing.assert_array_equal(a, b)
    c = fitted_parameters(X, y, dtype, 50, seed=1)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("batch_size", [None, 256, 1000], ids=["batch", "mb256", "mb1000"])
def test_weights_are_bit_identical_on_1_2_and_3_threads(digits, batch_size, restore_threads):
    X, y = digits
    runs = {}
    for t in (1, 2, 3):
        dnnfast.set_num_threads(t)
        assert dnnfast.get_num_threads() == t
        runs[t] = (fitted_parameters(X, y, "float32", batch_size, epochs=2),
                   fitted_parameters(X, y, "float64", batch_size, epochs=1))
    for t in (2, 3):
        np.testing.assert_array_equal(runs[1][0], runs[t][0], err_msg=f"float32, {t} threads")
        np.testing.assert_array_equal(runs[1][1], runs[t][1], err_msg=f"float64, {t} threads")


def test_ops_are_bit_identical_on_1_2_and_3_threads(restore_threads):
    """Large single ops (above the threading thresholds) do not depend on the split."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((1500, 300))
    Y = np.zeros_like(Z)
    Y[np.arange(1500), rng.integers(0, 300, 1500)] = 1
    W = rng.standard_normal((300, 200))
    b = rng.standard_normal((1, 200))
    none = np.zeros(0)
    out = {}
    for t in (1, 2, 3):
        dnnfast.set_num_threads(t)
        A = _core.activation_forward(10, Z, none)  # softmax
        out[t] = [A, _core.activation_backward(10, Z, A, Z, none), _core.column_sums(Z),
                  np.array([_core.loss_forward(3, Y, A)]), _core.loss_backward(3, Y, A, 1.0),
                  _core.prelu_alpha_backward(Z, Y), *_core.dense_forward(Z, W, b, 6, none),
                  *_core.linear_backward(Z, W, _core.linear_forward(Z, W, b))]
    for t in (2, 3):
        for k, (u, v) in enumerate(zip(out[1], out[t])):
            np.testing.assert_array_equal(u, v, err_msg=f"output {k}, {t} threads")


def test_set_num_threads_round_trip(restore_threads):
    dnnfast.set_num_threads(2)
    assert dnnfast.get_num_threads() == 2
    dnnfast.set_num_threads(0)
    assert dnnfast.get_num_threads() >= 1


# ---------------------------------------------------------------------------
# batch_indices
# ---------------------------------------------------------------------------

def test_batch_indices_batch_kind_is_one_batch_in_order():
    batches = list(dnnfast.batch_indices(10))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0], np.arange(10))


def test_batch_indices_stochastic_kind_is_one_row_per_batch():
    batches = list(dnnfast.batch_indices(5, 1))
    assert [b.tolist() for b in batches] == [[0], [1], [2], [3], [4]]


def test_batch_indices_mini_batch_has_a_short_last_batch():
    assert [b.tolist() for b in dnnfast.batch_indices(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [len(b) for b in dnnfast.batch_indices(10, 5)] == [5, 5]
    assert [len(b) for b in dnnfast.batch_indices(3, 10)] == [3]  # k > n: one batch


def test_batch_indices_shuffle_is_a_seeded_permutation():
    a = list(dnnfast.batch_indices(11, 3, shuffle=True, rng=np.random.default_rng(4)))
    b = list(dnnfast.batch_indices(11, 3, shuffle=True, rng=np.random.default_rng(4)))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert [len(x) for x in a] == [3, 3, 3, 2]
    flat = np.concatenate(a)
    assert sorted(flat.tolist()) == list(range(11))
    assert flat.tolist() != list(range(11))
    # a fresh permutation each epoch from the same generator
    rng = np.random.default_rng(4)
    e1 = np.concatenate(list(dnnfast.batch_indices(11, 3, shuffle=True, rng=rng)))
    e2 = np.concatenate(list(dnnfast.batch_indices(11, 3, shuffle=True, rng=rng)))
    assert e1.tolist() != e2.tolist()


def test_batch_indices_of_no_rows_is_no_batches():
    assert list(dnnfast.batch_indices(0)) == []
    assert list(dnnfast.batch_indices(0, 4, shuffle=True, rng=np.random.default_rng(0))) == []


def test_batch_indices_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be"):
        list(dnnfast.batch_indices(-1, 2))
    with pytest.raises(TypeError, match="n must be"):
        list(dnnfast.batch_indices(5.0, 2))


@pytest.mark.parametrize("n, exc, match", [
    (2**63 - 1, ValueError, r"n: the order of 9,223,372,036,854,775,807 rows .* more than any machine"),
    (2**64, ValueError, "n: the order of"),
    (10**15, ValueError, "n: the order of 1,000,000,000,000,000 rows"),
    (2.5, TypeError, "n must be a non-negative integer"),
    (-3, ValueError, "n must be a non-negative integer"),
])
def test_a_row_count_no_order_can_hold_is_named(n, exc, match):
    """np.arange(2**63 - 1) is empty: batch_indices yielded empty batches about
    for ever; larger counts gave NumPy's errors naming nothing, and
    epoch_order took 2.5 as 3 rows and -3 as none."""
    for call in (lambda: dnnfast.batch_indices(n, 1), lambda: dnnfast.batching.epoch_order(n)):
        with pytest.raises(exc, match=match):
            call()


def test_batch_indices_rejects_bad_batch_size_and_missing_rng():
    with pytest.raises(ValueError, match="batch_size"):
        list(dnnfast.batch_indices(5, 0))
    with pytest.raises(ValueError, match="batch_size"):
        list(dnnfast.batch_indices(5, -2))
    with pytest.raises(TypeError, match="batch_size"):
        list(dnnfast.batch_indices(5, 2.5))
    with pytest.raises(ValueError, match="rng"):
        list(dnnfast.batch_indices(5, 2, shuffle=True))


@pytest.mark.parametrize("kw,match", [
    (dict(shuffle=True, rng="x"), "rng must be a numpy.random.Generator or None, got str"),
    (dict(shuffle=True, rng=np.random.RandomState(0)), "rng must be .* got RandomState"),
    (dict(shuffle=False, rng=7), "rng must be .* got int"),
    (dict(shuffle="yes", rng=np.random.default_rng(0)), "shuffle must be True or False, got 'yes'"),
    (dict(shuffle=1), "shuffle must be True or False, got 1"),
])
def test_batch_indices_names_a_bad_rng_or_shuffle_at_the_call(kw, match):
    # At the call itself, not at the first batch: nothing is iterated here.
    with pytest.raises(TypeError, match=match):
        dnnfast.batch_indices(5, 2, **kw)


@pytest.mark.parametrize("table", [k for k in ("generic", "avx2", "avx512", "generic512")
                                   if dnnfast._core.gemm_kernel_supported(k)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes,batch", [([30, 100, 1], 200), ([13, 100, 3], 178), ([13, 9, 3], 50),
                                         ([64, 40, 10], 64), ([5, 7, 2], 300), ([30, 2, 1], 40)])
def test_gathered_batch_gives_the_bits_of_the_batch_in_place(table, dtype, sizes, batch):
    """A shuffled batch is gathered as [X_b | 1], and the first layer's db
    comes out of its dW product (Network::bias_by_product) where that keeps
    each bit; a batch that is a slice of X is used in place, db by column
    sums. Training on rows `perm` of X and on X[perm] in order must give the
    same parameters bit for bit, with every optimizer state and the L2 term.
    (Sizes: 30 and 13 inputs take the product; 64 is a whole number of
    micro-tile rows on the 14-row tables, 300 rows more than one K slice on
    some, and 2 hidden units gemm_small_n: those keep the column sums.)"""
    previous = dnnfast._core.gemm_kernel_name()
    assert dnnfast._core.gemm_set_kernel(table) == table
    try:
        rng = np.random.default_rng(11)
        n = 2 * batch + batch // 3
        X = rng.normal(size=(n, sizes[0])).astype(dtype)
        Y = rng.uniform(0.05, 0.95, size=(n, sizes[-1])).astype(dtype)
        perm = rng.permutation(n).astype(np.int64)
        runs = []
        for Xs, Ys, order in ((X, Y, perm), (X[perm], Y[perm], np.arange(n, dtype=np.int64))):
            net = dnnfast.Network(sizes, ["relu", "sigmoid"], loss="bce", dtype=dtype, seed=4)
            P = net.parameters.copy()
            s1, s2 = np.zeros_like(P), np.zeros_like(P)
            t = np.zeros(1, dtype=np.int64)
            opts = dnnfast._core.TrainOptions(optimizer="adam", learning_rate=0.01, batch_size=batch, l2=1e-3)
            costs = [net._net.train_epoch(P, Xs, Ys, None, order, opts, s1, s2, t)[:2] for _ in range(3)]
            runs.append((P, s1, s2, costs))
        for got, want in zip(runs[0], runs[1]):
            if isinstance(got, np.ndarray):
                np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
            else:
                assert got == want
    finally:
        dnnfast._core.gemm_set_kernel(previous)
