"""dnnfast.Network against dnnfast.reference.Network: same seed -> same initial
parameters, and the same forward pass, cost, gradients and training
trajectory (float64 tight, float32 looser)."""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast
from dnnfast import _core
from dnnfast import reference as ref

from conftest import (ACTIVATION_NAMES, DTYPES, NET_TOL, TRAIN_TOL, assert_close, onehot)


def data(loss, rng, n, m_x, m_y, dtype=np.float64):
    X = rng.standard_normal((n, m_x)).astype(dtype)
    if loss == "cce":
        return X, onehot(rng.integers(0, m_y, size=n), m_y, dtype)
    if loss == "bce":
        return X, (rng.random((n, m_y)) < 0.5).astype(dtype)
    if loss == "poisson":
        return X, rng.poisson(1.5, size=(n, m_y)).astype(dtype)
    return X, rng.standard_normal((n, m_y)).astype(dtype)


# (sizes, activations, loss): every activation appears, odd widths, n=1-wide layers.
ARCHS = [
    ([7, 13, 5], ["relu", "softmax"], "cce"),
    ([3, 1, 1], ["tanh", "sigmoid"], "bce"),
    ([13, 67, 9, 4], ["leaky_relu", "prelu", "sigmoid"], "bce"),
    ([5, 11, 3], ["elu", "identity"], "sse"),
    ([6, 9, 8, 2], ["arctan", "softplus", "relu"], "mse"),
    ([4, 10, 6, 3], ["binary_step", "softmax", "prelu"], "sse"),
    ([5, 6, 4, 3], ["tanh", ("leaky_relu", {"alpha": 0.2}), ("elu", {"alpha": 0.7})], "mse"),
    ([37, 129, 3], ["logistic", "softmax"], "cce"),
    ([5, 8, 6, 2], ["identity", "prelu", "tanh"], "sse"),  # identity hidden: A is Z
    ([4, 7, 2], ["tanh", "exp"], "poisson"),
    # one output under relu layers narrowing towards it: the output layer's
    # dZ below is written over the last hidden layer's A (the narrowest
    # buffer), and the wider dZ above it must go back into a D buffer
    ([12, 40, 30, 20, 1], ["relu", "relu", "relu", "sigmoid"], "bce"),
]
ARCH_IDS = ["-".join(a if isinstance(a, str) else a[0] for a in acts) + "-" + loss for _, acts, loss in ARCHS]


def pair(sizes, acts, loss, dtype, seed=7, **kw):
    name = np.dtype(dtype).name
    return (dnnfast.Network(sizes, acts, loss=loss, dtype=name, seed=seed, **kw),
            ref.Network(sizes, acts, loss=loss, dtype=name, seed=seed))


def test_every_activation_is_covered_by_the_architectures():
    used = {a if isinstance(a, str) else a[0] for _, acts, _ in ARCHS for a in acts}
    used = {"sigmoid" if a == "logistic" else a for a in used}
    assert used == set(ACTIVATION_NAMES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes,acts,loss", ARCHS, ids=ARCH_IDS)
def test_same_seed_gives_reference_initial_parameters(sizes, acts, loss, dtype):
    net, rnet = pair(sizes, acts, loss, dtype)
    for l in range(len(sizes) - 1):
        np.testing.assert_array_equal(net.weights[l], rnet.weights[l])
        np.testing.assert_array_equal(net.biases[l], rnet.biases[l])
        assert net.weights[l].dtype == dtype
        if net.alphas[l] is not None:
            np.testing.assert_array_equal(net.alphas[l], rnet.alphas[l])
            np.testing.assert_array_equal(net.alphas[l], 0.25)


def test_initial_weights_are_glorot_uniform_and_seeded():
    net = dnnfast.Network([50, 30, 10], ["relu", "softmax"], dtype="float64", seed=1)
    r = np.sqrt(6 / 80)
    W = net.weights[0]
    assert np.all(np.abs(W) <= r) and np.max(np.abs(W)) > 0.9 * r
    np.testing.assert_array_equal(net.biases[0], 0)
    again = dnnfast.Network([50, 30, 10], ["relu", "softmax"], dtype="float64", seed=1)
    other = dnnfast.Network([50, 30, 10], ["relu", "softmax"], dtype="float64", seed=2)
    np.testing.assert_array_equal(net.parameters, again.parameters)
    assert not np.array_equal(net.parameters, other.parameters)


def perturb_biases(net, rnet, rng):
    """Non-zero biases (identical in both) so the bias path is tested."""
    for l in range(len(net.biases)):
        b = rng.uniform(-0.3, 0.3, size=net.biases[l].shape).astype(net.dtype)
        net.biases[l][...] = b
        rnet.biases[l][...] = b


@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes,acts,loss", ARCHS, ids=ARCH_IDS)
def test_forward_predict_cost_gradients_match_reference(sizes, acts, loss, dtype, n, rng):
    net, rnet = pair(sizes, acts, loss, dtype)
    perturb_biases(net, rnet, rng)
    X, Y = data(loss, rng, n, sizes[0], sizes[-1], dtype)
    Zs, As = net.forward(X)
    rZs, rAs = rnet.forward(X)
    assert len(Zs) == len(sizes) - 1 and len(As) == len(sizes)
    np.testing.assert_array_equal(As[0], X)
    for l in range(len(Zs)):
        assert Zs[l].dtype == dtype and As[l + 1].shape == (n, sizes[l + 1])
        # the inputs of each layer differ by round-off: compare against the
        # reference's own values with a network-level tolerance
        assert_close(Zs[l], rZs[l], dtype, tol=NET_TOL, scale=max(1.0, np.max(np.abs(rZs[l]))))
        if acts[l] != "binary_step":
            assert_close(As[l + 1], rAs[l + 1], dtype, tol=NET_TOL, scale=1.0)
    P = net.predict(X)
    np.testing.assert_array_equal(P, As[-1])  # predict is forward's last A, bit for bit
    c = net.cost(X, Y)
    np.testing.assert_allclose(c, rnet.cost(X, Y), rtol=NET_TOL[dtype]["rtol"] * 10)
    dWs, dbs = net.gradients(X, Y)
    rdWs, rdbs = rnet.gradients(X, Y)
    for l in range(len(dWs)):
        s = max(np.max(np.abs(rdWs[l])), np.max(np.abs(rdbs[l])), 1e-3)
        assert_close(dWs[l], rdWs[l], dtype, tol=NET_TOL, scale=s, factor=10, err_msg=f"dW[{l}]")
        assert_close(dbs[l], rdbs[l], dtype, tol=NET_TOL, scale=s, factor=10, err_msg=f"db[{l}]")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes,acts,loss", ARCHS, ids=ARCH_IDS)
def test_flat_gradient_layout_matches_reference_including_alpha(sizes, acts, loss, dtype, rng):
    net, rnet = pair(sizes, acts, loss, dtype)
    X, Y = data(loss, rng, 23, sizes[0], sizes[-1], dtype)
    c, g = net.loss_and_gradient(X, Y)
    rc, rdWs, rdbs, rdas = ref.gradients(rnet.weights, rnet.biases, rnet._activations(), loss, X, Y)
    np.testing.assert_allclose(c, rc, rtol=NET_TOL[dtype]["rtol"] * 10)
    parts = []
    for l in range(len(rdWs)):
        parts += [rdWs[l].ravel(), rdbs[l].ravel()] + ([rdas[l].ravel()] if rdas[l] is not None else [])
    expected = np.concatenate(parts)
    assert_close(g, expected, dtype, tol=NET_TOL, scale=max(np.max(np.abs(expected)), 1e-3), factor=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_gives_the_same_bits_with_or_without_its_fast_path(dtype):
    # An X already C-contiguous in the model's dtype, with few rows, goes
    # straight to the core; converted input, and (here forced) the memory
    # check of the other path, give the same predictions bit for bit.
    net = dnnfast.Network([6, 9, 4], ["tanh", "softmax"], dtype=dtype, seed=0)
    X = np.random.default_rng(0).standard_normal((7, 6)).astype(dtype)
    fast = net.predict(X)
    assert fast.tobytes() == net.predict(np.asfortranarray(X)).tobytes()
    assert fast.tobytes() == net.predict(X.tolist()).tobytes()
    assert fast.tobytes() == net.predict(X=X).tobytes()  # X by keyword, through the read lock's wrapper
    class Sub(np.ndarray):
        pass
    assert fast.tobytes() == net.predict(X.view(Sub)).tobytes()
    assert net._predict_rows >= 7
    net._predict_rows = 0
    assert fast.tobytes() == net.predict(X).tobytes()
    assert_close(fast, ref.Network([6, 9, 4], ["tanh", "softmax"], dtype=dtype, seed=0).predict(X), dtype,
                 tol=NET_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_cores_fast_predict_takes_only_x_as_validation_would_leave_it(dtype):
    # predict_as_is predicts an X that needs no conversion and no memory
    # check, and answers None for anything else, which Network.predict then
    # validates in full (and names in its errors).
    net = dnnfast.Network([6, 9, 4], ["tanh", "softmax"], dtype=dtype, seed=0)
    X = np.random.default_rng(0).standard_normal((7, 6)).astype(dtype)
    P = net.parameters
    assert net._net.predict_as_is(P, X, 7).tobytes() == net._net.predict(P, X).tobytes()
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    for bad in (X.astype(other), np.asfortranarray(X), X[::2], X.astype(np.int64), X.view(np.matrix), X.tolist(),
                X[0], X[None], X[:, :5], X[:0], None, "X"):
        assert net._net.predict_as_is(P, bad, 7) is None
    assert net._net.predict_as_is(P, X, 6) is None  # more rows than the limit
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        net._net.predict_as_is(P, X, 7)
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.predict(X)


def test_the_core_takes_only_c_contiguous_arrays_of_its_dtype():
    # Network validates and converts X before the core sees it; the core
    # refuses anything else rather than converting or copying it in silence.
    net = dnnfast.Network([6, 9, 4], ["tanh", "softmax"], dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((7, 6))
    expected = net._net.predict(net.parameters, X)
    assert expected.tobytes() == net.predict(X).tobytes()
    for bad in (X.astype(np.float32), np.asfortranarray(X), X[::2], X.astype(np.int64)):
        with pytest.raises(TypeError):
            net._net.predict(net.parameters, bad)
    with pytest.raises(TypeError):
        net._net.predict(net.parameters.astype(np.float32), X)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes,acts,loss", [
    ([7, 13, 5], ["relu", "softmax"], "cce"),
    ([13, 67, 9, 4], ["leaky_relu", "prelu", "sigmoid"], "bce"),
    ([37, 129, 3], ["tanh", "softmax"], "cce"),
    ([3, 1, 1], ["tanh", "sigmoid"], "bce"),
    ([6, 9, 3], ["tanh", "exp"], "poisson"),
], ids=["softmax-cce", "prelu-sigmoid-bce", "wide-softmax-cce", "1-unit-sigmoid-bce", "exp-poisson"])
def test_fused_and_generic_output_paths_agree(sizes, acts, loss, dtype, rng):
    fused = dnnfast.Network(sizes, acts, loss=loss, dtype=np.dtype(dtype).name, seed=3, fused=True)
    generic = dnnfast.Network(sizes, acts, loss=loss, dtype=np.dtype(dtype).name, seed=3, fused=False)
    np.testing.assert_array_equal(fused.parameters, generic.parameters)
    X, Y = data(loss, rng, 41, sizes[0], sizes[-1], dtype)
    upper = np.inf if loss == "poisson" else 1 - 1e-3  # exp's output is a rate, not a probability
    assert np.all((fused.predict(X) > 1e-3) & (fused.predict(X) < upper))  # not saturated
    c1, g1 = fused.loss_and_gradient(X, Y)
    c2, g2 = generic.loss_and_gradient(X, Y)
    assert c1 == c2
    assert_close(g1, g2, dtype, tol=NET_TOL, scale=np.max(np.abs(g2)), factor=10)


def assert_follows_reference(net, rnet, hist, rhist, dtype):
    """After the same fit: every layer's W, b (and prelu's alphas) and the
    cost history of net against the reference network's, within TRAIN_TOL
    (weights relative to the layer's largest reference weight, at least 1)."""
    for l in range(len(rnet.weights)):
        s = max(1.0, np.max(np.abs(rnet.weights[l])))
        assert_close(net.weights[l], rnet.weights[l], dtype, tol=TRAIN_TOL, scale=s, err_msg=f"W[{l}]")
        assert_close(net.biases[l], rnet.biases[l], dtype, tol=TRAIN_TOL, scale=s, err_msg=f"b[{l}]")
        if net.alphas[l] is not None:
            assert_close(net.alphas[l], rnet.alphas[l], dtype, tol=TRAIN_TOL, scale=1.0, err_msg=f"alpha[{l}]")
    assert_close(np.array(hist["cost"]), np.array(rhist["cost"]), dtype, tol=TRAIN_TOL)


FIT_CASES = [
    dict(batch_size=None, shuffle=False),
    dict(batch_size=1, shuffle=False),
    dict(batch_size=1, shuffle=True),
    dict(batch_size=8, shuffle=True),
    dict(batch_size=7, shuffle=True),    # 7 does not divide 45: a short last batch
    dict(batch_size=45, shuffle=True),   # one batch, shuffled
    dict(batch_size=100, shuffle=False), # larger than n: one batch of n
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", FIT_CASES, ids=lambda k: f"bs{k['batch_size']}-{'shuffle' if k['shuffle'] else 'ordered'}")
@pytest.mark.parametrize("sizes,acts,loss", [
    ([6, 9, 4], ["tanh", "softmax"], "cce"),
    ([6, 8, 5, 2], ["prelu", "elu", "sigmoid"], "bce"),
    ([6, 7, 3], ["leaky_relu", "identity"], "sse"),
], ids=["tanh-softmax-cce", "prelu-elu-sigmoid-bce", "leaky-identity-sse"])
def test_fit_follows_the_reference_trajectory(sizes, acts, loss, kw, dtype):
    rng = np.random.default_rng(0)
    X, Y = data(loss, rng, 45, sizes[0], sizes[-1], dtype)
    net, rnet = pair(sizes, acts, loss, dtype, seed=11)
    hist = net.fit(X, Y, epochs=3, learning_rate=0.05, **kw)
    rhist = rnet.fit(X, Y, epochs=3, learning_rate=0.05, **kw)
    assert len(hist["cost"]) == 3
    assert_follows_reference(net, rnet, hist, rhist, dtype)
    # the parameters did move
    fresh = dnnfast.Network(sizes, acts, loss=loss, dtype=np.dtype(dtype).name, seed=11)
    assert not np.array_equal(fresh.parameters, net.parameters)


# A first layer wide enough to be kept packed under every kernel table: the
# rule asks for at least 4 column micro-panels, and the widest panel is
# AVX-512's float NR = 32.
WIDE = 128


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [8, 13, 50])
def test_fit_keeping_the_first_layer_packed_follows_the_reference(batch_size, dtype):
    # Plain SGD keeps the first layer's W packed across the batches of an
    # epoch when the layer is wide enough (70 x WIDE here). n = 107: the last
    # batch has 3 rows with batch_size 13, and takes the unpacked path in the
    # middle of the epoch.
    name = np.dtype(dtype).name
    assert _core.packed_b_matches_gemm(name, batch_size, 70, WIDE)
    assert not _core.packed_b_matches_gemm(name, 107 % 13, 70, WIDE)
    rng = np.random.default_rng(3)
    X, Y = data("cce", rng, 107, 70, 4, dtype)
    net, rnet = pair([70, WIDE, 4], ["relu", "softmax"], "cce", dtype, seed=5)
    hist = net.fit(X, Y, epochs=3, batch_size=batch_size, learning_rate=0.05, shuffle=True)
    rhist = rnet.fit(X, Y, epochs=3, batch_size=batch_size, learning_rate=0.05, shuffle=True)
    assert_follows_reference(net, rnet, hist, rhist, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("sizes,acts,loss", [
    ([70, WIDE, 4], ["relu", "softmax"], "cce"),
    ([70, WIDE, 9, 3], ["prelu", "tanh", "identity"], "mse"),
    ([300, 40], ["softmax"], "cce"),
], ids=["relu-softmax", "prelu-tanh-identity", "one-layer"])
def test_stochastic_sgd_in_windows_follows_the_reference(sizes, acts, loss, shuffle, dtype):
    # Plain SGD one row a step on a first W larger than 32 KiB (70 x 128 is
    # 35 KiB in float32) takes the rows in windows of STOCHASTIC_WINDOW: the
    # first layer's products for a window at once, each row corrected for
    # the steps before it. n = 107 ends each epoch on a short window.
    assert sizes[0] * sizes[1] * np.dtype(dtype).itemsize > 32 * 1024
    assert 107 % _core.STOCHASTIC_WINDOW != 0
    rng = np.random.default_rng(8)
    X, Y = data(loss, rng, 107, sizes[0], sizes[-1], dtype)
    net, rnet = pair(sizes, acts, loss, dtype, seed=9)
    hist = net.fit(X, Y, epochs=2, batch_size=1, learning_rate=0.02, shuffle=shuffle, seed=4)
    rhist = rnet.fit(X, Y, epochs=2, batch_size=1, learning_rate=0.02, shuffle=shuffle, seed=4)
    assert_follows_reference(net, rnet, hist, rhist, dtype)
    fresh = dnnfast.Network(sizes, acts, loss=loss, dtype=np.dtype(dtype).name, seed=9)
    assert not np.array_equal(fresh.weights[0], net.weights[0])


# Plain SGD in batches of a few rows on the same first Ws goes in windows
# too: a window holds _core.stochastic_window_batches(b) whole batches, each
# batch's first-layer input corrected for the window's earlier batches.
SMALL_BATCH_ARCHS = [
    ([70, WIDE, 4], ["relu", "softmax"], "cce"),
    ([70, WIDE, 9, 3], ["prelu", "tanh", "identity"], "mse"),
    ([300, 40], ["softmax"], "cce"),
    ([70, WIDE, 5], ["identity", "sigmoid"], "bce"),
]


def window_rows(batch_size, first_w_bytes):
    """Rows of the core's windows of batch_size rows on that first W (at least two batches)."""
    rows = _core.stochastic_window_batches(batch_size, first_w_bytes) * batch_size
    assert rows >= 2 * batch_size
    return rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("batch_size", [2, 3, 4])
@pytest.mark.parametrize("sizes,acts,loss", SMALL_BATCH_ARCHS,
                         ids=["relu-softmax", "prelu-tanh-identity", "one-layer", "identity-sigmoid"])
def test_small_batch_sgd_in_windows_follows_the_reference(sizes, acts, loss, batch_size, shuffle, dtype):
    # n = 107 ends each epoch on a short window whose last batch is short
    # (3: windows of 10 batches, 30 rows, which do not fill 32).
    assert 107 % window_rows(batch_size, sizes[0] * sizes[1] * np.dtype(dtype).itemsize) % batch_size != 0
    rng = np.random.default_rng(8)
    X, Y = data(loss, rng, 107, sizes[0], sizes[-1], dtype)
    net, rnet = pair(sizes, acts, loss, dtype, seed=9)
    hist = net.fit(X, Y, epochs=2, batch_size=batch_size, learning_rate=0.02, shuffle=shuffle, seed=4)
    rhist = rnet.fit(X, Y, epochs=2, batch_size=batch_size, learning_rate=0.02, shuffle=shuffle, seed=4)
    assert_follows_reference(net, rnet, hist, rhist, dtype)
    fresh = dnnfast.Network(sizes, acts, loss=loss, dtype=np.dtype(dtype).name, seed=9)
    assert not np.array_equal(fresh.weights[0], net.weights[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size,n", [(5, 107), (12, 65)])
def test_larger_batches_in_windows_on_a_first_w_beyond_the_caches_follow_the_reference(batch_size, n, dtype):
    # Batches of more than a few rows go in windows only on a first W of
    # more than 8 MiB (here 1025 x 2050 float32, 513 x 2050 float64), not on
    # the small ones above. 5: windows of 6 batches (30 rows), 12: of 2 (24
    # rows); each n ends on a short window whose last batch is short.
    itemsize = np.dtype(dtype).itemsize
    sizes = [(8 << 20) // (2050 * itemsize) + 1, 2050, 3]
    rows = window_rows(batch_size, sizes[0] * sizes[1] * itemsize)
    assert _core.stochastic_window_batches(batch_size, 70 * WIDE * itemsize) == 1
    assert n % rows > batch_size and n % rows % batch_size != 0
    rng = np.random.default_rng(8)
    X, Y = data("cce", rng, n, sizes[0], sizes[-1], dtype)
    net, rnet = pair(sizes, ["tanh", "softmax"], "cce", dtype, seed=9)
    hist = net.fit(X, Y, epochs=1, batch_size=batch_size, learning_rate=0.02, shuffle=True, seed=4)
    rhist = rnet.fit(X, Y, epochs=1, batch_size=batch_size, learning_rate=0.02, shuffle=True, seed=4)
    assert_follows_reference(net, rnet, hist, rhist, dtype)


def weighted_reference_epoch(rnet, X, Y, w, order, batch_size, lr):
    """One epoch of plain SGD with row weights, step by step from
    dnnfast.reference's one-row gradients: each batch's step is
    sum_i (w_i / D) grad_i (D = the batch's total weight; none when D = 0).
    Returns the epoch's sum of n_batch * (the batch's weighted cost)."""
    cost_sum = 0.0
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        D = float(np.sum(w[idx], dtype=np.float64))
        if D == 0:
            continue
        acc, cost = None, 0.0
        for i in idx:
            c, dWs, dbs, das = ref.gradients(rnet.weights, rnet.biases, rnet._activations(), rnet.loss,
                                             X[i:i + 1], Y[i:i + 1], rnet.fused)
            f = float(w[i]) / D
            parts = [g.astype(np.float64) * f for g in dWs + dbs + [a for a in das if a is not None]]
            acc = parts if acc is None else [a + p for a, p in zip(acc, parts)]
            cost += f * c
        params = rnet.weights + rnet.biases + [a for a in rnet.alphas if a is not None]
        for p, g in zip(params, acc):
            p[...] = (p - lr * g).astype(p.dtype)
        cost_sum += cost * len(idx)
    return cost_sum


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", ["some-zero", "tiny"])
@pytest.mark.parametrize("gathered", [False, True], ids=["slices", "gathered"])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("sizes,acts,loss", [SMALL_BATCH_ARCHS[0], SMALL_BATCH_ARCHS[1]],
                         ids=["relu-softmax", "prelu-tanh-identity"])
def test_sgd_in_windows_with_row_weights_follows_the_reference(sizes, acts, loss, batch_size, gathered, weights,
                                                               dtype):
    # Each batch's steps take its rows' w_i / D, a batch of zero total
    # weight takes none, and weights whose sum's reciprocal is not a normal
    # number ("tiny") are divided by D: in windows as step by step. The
    # rows in the epoch's order (slices of X) or shuffled (gathered).
    n = 107
    rng = np.random.default_rng(8)
    X, Y = data(loss, rng, n, sizes[0], sizes[-1], dtype)
    order = (rng.permutation(n) if gathered else np.arange(n)).astype(np.int64)
    if weights == "tiny":
        w = rng.uniform(0.5, 2.0, n) * (1e-40 if dtype == np.float32 else 1e-310)
        with np.errstate(over="ignore"):  # (1 / D overflows in the dtype: the division rule)
            assert not np.isfinite(np.array(1.0, dtype) / np.array(np.sum(w[:batch_size]), dtype))
    else:
        w = rng.uniform(0.0, 2.0, n)
        w[::7] = 0
        w[order[9:12]] = 0  # a batch of 3 (and three of 1) with no weight
    w = w.astype(dtype)
    net, rnet = pair(sizes, acts, loss, dtype, seed=9)
    P = net.parameters
    opts = _core.TrainOptions(learning_rate=0.05, batch_size=batch_size)
    costs, rcosts = [], []
    for _ in range(2):
        costs.append(net._net.train_epoch(P, X, Y, w, order, opts)[0])
        rcosts.append(weighted_reference_epoch(rnet, X, Y, w, order, batch_size, 0.05))
    assert_follows_reference(net, rnet, {"cost": costs}, {"cost": rcosts}, dtype)


# One-row windows keep the bits they had before batches of several rows
# went in windows: the hash of the parameters after a fit and a weighted,
# shuffled epoch, per kernel table (the tables' products round apart).
ONE_ROW_WINDOW_BITS = {
    "generic": {np.float32: "2790c44b7f12153d", np.float64: "c3eba756cd700d9a"},
    "avx2": {np.float32: "a2dd0f5cf35e28f4", np.float64: "6b76f16c35297306"},
    "avx512": {np.float32: "a2dd0f5cf35e28f4", np.float64: "7c10d04d320c927d"},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("table", list(ONE_ROW_WINDOW_BITS))
def test_one_row_windows_keep_their_bits(table, dtype):
    import hashlib

    if not _core.gemm_kernel_supported(table):
        pytest.skip(f"no {table} kernels on this CPU")
    previous = _core.gemm_kernel_name()
    assert _core.gemm_set_kernel(table) == table
    try:
        rng = np.random.default_rng(8)
        X = rng.standard_normal((107, 70)).astype(dtype)
        Y = np.eye(4, dtype=dtype)[rng.integers(0, 4, 107)]
        w = rng.uniform(0, 2, 107).astype(dtype)
        w[::7] = 0
        net = dnnfast.Network([70, WIDE, 4], ["relu", "softmax"], loss="cce", dtype=np.dtype(dtype).name, seed=9)
        assert 70 * WIDE * np.dtype(dtype).itemsize > 32 * 1024  # one-row steps in windows
        net.fit(X, Y, epochs=2, batch_size=1, learning_rate=0.05, shuffle=True, seed=4)
        P = net.parameters.copy()
        order = np.random.default_rng(5).permutation(107).astype(np.int64)
        net._net.train_epoch(P, X, Y, w, order, _core.TrainOptions(learning_rate=0.05, batch_size=1))
    finally:
        _core.gemm_set_kernel(previous)
    assert hashlib.sha256(P.tobytes()).hexdigest()[:16] == ONE_ROW_WINDOW_BITS[table][dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_first_layer_is_written_back_after_every_fit(dtype):
    # One fit over all batches (W packed from the first batch to the end of
    # the epoch) and one fit per batch (packed and unpacked around each)
    # give the same bits; a fit leaves P's W up to date (the prediction
    # after it reads P).
    assert _core.packed_b_matches_gemm(np.dtype(dtype).name, 40, 70, WIDE)
    rng = np.random.default_rng(4)
    X, Y = data("cce", rng, 3 * 40 + 3, 70, 4, dtype)
    a = dnnfast.Network([70, WIDE, 4], ["relu", "softmax"], loss="cce", dtype=np.dtype(dtype).name, seed=6)
    b = dnnfast.Network([70, WIDE, 4], ["relu", "softmax"], loss="cce", dtype=np.dtype(dtype).name, seed=6)
    a.fit(X, Y, epochs=1, batch_size=40, learning_rate=0.1, shuffle=False)
    for b0 in range(0, len(X), 40):
        b.fit(X[b0:b0 + 40], Y[b0:b0 + 40], epochs=1, batch_size=40, learning_rate=0.1, shuffle=False)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    fresh = dnnfast.Network([70, WIDE, 4], ["relu", "softmax"], loss="cce", dtype=np.dtype(dtype).name, seed=6)
    assert not np.array_equal(fresh.weights[0], a.weights[0])
    Z1 = np.maximum(X @ a.weights[0] + a.biases[0], 0) @ a.weights[1] + a.biases[1]
    P = np.exp(Z1 - Z1.max(axis=1, keepdims=True))
    assert_close(a.predict(X), P / P.sum(axis=1, keepdims=True), dtype, tol=NET_TOL)


def test_fit_with_explicit_seed_matches_reference_and_ignores_network_generator():
    rng = np.random.default_rng(1)
    X, Y = data("cce", rng, 30, 4, 3)
    a, ra = pair([4, 5, 3], ["tanh", "softmax"], "cce", np.float64, seed=1)
    b = dnnfast.Network([4, 5, 3], ["tanh", "softmax"], loss="cce", dtype="float64", seed=1)
    b._rng.random(5)  # advance the network's own generator: must not matter with seed=
    a.fit(X, Y, epochs=2, batch_size=4, shuffle=True, seed=99, learning_rate=0.1)
    ra.fit(X, Y, epochs=2, batch_size=4, shuffle=True, seed=99, learning_rate=0.1)
    b.fit(X, Y, epochs=2, batch_size=4, shuffle=True, seed=99, learning_rate=0.1)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    for l in range(2):
        assert_close(a.weights[l], ra.weights[l], np.float64, tol=TRAIN_TOL)


def test_shuffle_changes_the_trajectory():
    rng = np.random.default_rng(2)
    X, Y = data("cce", rng, 30, 4, 3)
    a = dnnfast.Network([4, 5, 3], ["tanh", "softmax"], loss="cce", dtype="float64", seed=1)
    b = dnnfast.Network([4, 5, 3], ["tanh", "softmax"], loss="cce", dtype="float64", seed=1)
    a.fit(X, Y, epochs=2, batch_size=4, shuffle=True, learning_rate=0.1)
    b.fit(X, Y, epochs=2, batch_size=4, shuffle=False, learning_rate=0.1)
    assert not np.array_equal(a.parameters, b.parameters)


def test_mini_batch_of_n_equals_batch_gradient_descent():
    rng = np.random.default_rng(3)
    X, Y = data("sse", rng, 20, 4, 2)
    a = dnnfast.Network([4, 6, 2], ["tanh", "identity"], loss="sse", dtype="float64", seed=1)
    b = dnnfast.Network([4, 6, 2], ["tanh", "identity"], loss="sse", dtype="float64", seed=1)
    a.fit(X, Y, epochs=3, batch_size=None, learning_rate=0.1)
    b.fit(X, Y, epochs=3, batch_size=20, learning_rate=0.1)
    np.testing.assert_array_equal(a.parameters, b.parameters)


def test_one_batch_update_is_w_minus_lr_grad():
    rng = np.random.default_rng(4)
    X, Y = data("cce", rng, 10, 4, 3)
    net = dnnfast.Network([4, 5, 3], ["prelu", "softmax"], loss="cce", dtype="float64", seed=1)
    P0 = net.parameters.copy()
    _, g = net.loss_and_gradient(X, Y)
    hist = net.fit(X, Y, epochs=1, learning_rate=0.3)
    np.testing.assert_allclose(net.parameters, P0 - 0.3 * g, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(hist.cost[0], dnnfast.Network([4, 5, 3], ["prelu", "softmax"], loss="cce",
                                                             dtype="float64", seed=1).cost(X, Y), rtol=1e-15)


def test_history_has_one_cost_and_time_per_epoch():
    rng = np.random.default_rng(5)
    X, Y = data("cce", rng, 12, 3, 2)
    net = dnnfast.Network([3, 4, 2], ["relu", "softmax"], loss="cce", dtype="float32", seed=0)
    hist = net.fit(X, Y, epochs=4, batch_size=5)
    assert isinstance(hist, dnnfast.History)
    assert len(hist["cost"]) == 4 and len(hist.cost) == 4 and len(hist["time"]) == 4
    assert all(np.isfinite(hist.cost)) and all(t >= 0 for t in hist.time)
    P = net.parameters.copy()
    empty = net.fit(X, Y, epochs=0)
    assert empty.cost == [] and empty.time == []
    np.testing.assert_array_equal(net.parameters, P)  # zero epochs: no update
    with pytest.raises(AttributeError):
        hist.nonexistent


@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_labels_for_cce_equal_one_hot(dtype):
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, size=25)
    X = rng.standard_normal((25, 5)).astype(dtype)
    Yoh = onehot(labels, 4, dtype)
    name = np.dtype(dtype).name
    a = dnnfast.Network([5, 6, 4], ["tanh", "softmax"], loss="cce", dtype=name, seed=2)
    b = dnnfast.Network([5, 6, 4], ["tanh", "softmax"], loss="cce", dtype=name, seed=2)
    assert a.cost(X, labels) == a.cost(X, Yoh)
    for x, y in zip(a.gradients(X, labels), a.gradients(X, Yoh)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    for lab in (labels.astype(np.int32), labels.astype(np.uint8), list(labels)):
        assert a.cost(X, lab) == a.cost(X, Yoh)
    a.fit(X, labels, epochs=2, batch_size=7, shuffle=True)
    b.fit(X, Yoh, epochs=2, batch_size=7, shuffle=True)
    np.testing.assert_array_equal(a.parameters, b.parameters)


def test_weights_and_biases_are_assignable_views_of_parameters():
    net = dnnfast.Network([3, 4, 2], ["tanh", "identity"], loss="sse", dtype="float64", seed=0)
    Ws = [np.arange(12.0).reshape(3, 4), np.arange(8.0).reshape(4, 2)]
    bs = [np.ones((1, 4)), np.full((1, 2), 2.0)]
    net.weights = Ws
    net.biases = bs
    np.testing.assert_array_equal(net.parameters[:12], np.arange(12.0))
    np.testing.assert_array_equal(net.parameters[12:16], 1.0)
    for got, want in zip(net.weights, Ws):
        np.testing.assert_array_equal(got, want)
    # list-of-lists and float32 input are converted to the network's dtype
    net.weights = [w.astype(np.float32).tolist() for w in Ws]
    np.testing.assert_array_equal(net.weights[1], Ws[1])
    X = np.array([[0.1, -0.2, 0.3]])
    np.testing.assert_allclose(net.predict(X), np.tanh(X @ Ws[0] + 1) @ Ws[1] + 2, rtol=1e-14)
    # writing through a view changes the network
    net.weights[0][0, 0] = 100.0
    assert net.parameters[0] == 100.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_parameters_and_optimizer_state_start_on_a_cache_line(dtype, tmp_path):
    # The core reads W in place on its one-row paths. From NumPy's 16-byte
    # alignment a weight row's vector loads straddle two cache lines: one-row
    # predict of the W1 network was 1.5x slower on an Intel Xeon.
    import copy
    import pickle

    from dnnfast._train.state import TrainState

    net = dnnfast.Network([20, 16, 3], ["relu", "softmax"], dtype=dtype, seed=0)
    net.save(tmp_path / "net.npz")
    nets = {"constructed": net, "pickled": pickle.loads(pickle.dumps(net)), "deep-copied": copy.deepcopy(net),
            "loaded": dnnfast.load(tmp_path / "net.npz")}
    for how, n in nets.items():
        assert n.parameters.ctypes.data % 64 == 0, how
        assert n.parameters.flags.c_contiguous and n.parameters.flags.writeable, how
        assert n.parameters.dtype == np.dtype(dtype) and n.parameters.shape == net.parameters.shape, how
        np.testing.assert_array_equal(n.parameters, net.parameters)
        assert all(np.shares_memory(W, n.parameters) for W in n.weights), how  # views of the one buffer
    state = TrainState(net.parameters.size, dtype, "adam", np.random.default_rng(0))
    for buf in (state.state1, state.state2):
        assert buf.ctypes.data % 64 == 0 and buf.shape == net.parameters.shape and not buf.any()


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8"])
def test_aligned_buffers_have_the_asked_size_type_and_alignment(dtype):
    from dnnfast._buffers import ALIGN, aligned, aligned_empty, aligned_zeros

    for n in (0, 1, 3, 17, 1000):
        for a in (aligned_empty(n, dtype), aligned_zeros(n, dtype)):
            assert a.shape == (n,) and a.dtype == np.dtype(dtype)
            assert n == 0 or a.ctypes.data % ALIGN == 0  # an empty array has no data to place
            assert a.flags.c_contiguous and a.flags.writeable
        assert not aligned_zeros(n, dtype).any()
    off = np.arange(40, dtype=dtype)[1:]  # 1 element past NumPy's own start
    got = aligned(off)
    assert got.ctypes.data % ALIGN == 0
    np.testing.assert_array_equal(got, off)
    same = aligned_zeros(8, dtype)
    assert aligned(same) is same


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_and_elu_parameters_reach_the_core(dtype):
    name = np.dtype(dtype).name
    X = np.array([[-1.0, -2.0]], dtype=dtype)
    for act, alpha, f in [("leaky_relu", 0.2, lambda z: np.where(z > 0, z, 0.2 * z)),
                          ("elu", 0.5, lambda z: np.where(z >= 0, z, 0.5 * np.expm1(z)))]:
        net = dnnfast.Network([2, 2], [(act, {"alpha": alpha})], loss="sse", dtype=name, seed=0)
        net.weights = [np.eye(2)]
        np.testing.assert_allclose(net.predict(X), f(X.astype(np.float64)), rtol=1e-6)
        default = dnnfast.Network([2, 2], [act], loss="sse", dtype=name, seed=0)
        default.weights = [np.eye(2)]
        d = 0.1 if act == "leaky_relu" else 1.0
        np.testing.assert_allclose(default.predict(X),
                                   np.where(X > 0, X, d * (X if act == "leaky_relu" else np.expm1(X))),
                                   rtol=1e-6)


def test_predict_in_chunks_equals_one_forward():
    """predict processes large inputs in chunks; the result must not depend on it."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((2500, 6))
    net = dnnfast.Network([6, 9, 3], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    P = net.predict(X)
    np.testing.assert_array_equal(P[1100:1200], net.predict(X[1100:1200]))
    np.testing.assert_array_equal(P, net.forward(X)[1][-1])
    rnet = ref.Network([6, 9, 3], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    Y = onehot(rng.integers(0, 3, 2500), 3, np.float64)
    np.testing.assert_allclose(net.cost(X, Y), rnet.cost(X, Y), rtol=1e-12)


def test_aliases_and_case_insensitive_names():
    a = dnnfast.Network([3, 2], ["LOGISTIC"], loss="BCE", dtype="float64", seed=0)
    b = dnnfast.Network([3, 2], ["sigmoid"], loss="bce", dtype="float64", seed=0)
    assert a.activations == ["sigmoid"] and a.loss == "bce"
    X = np.ones((2, 3))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert set(dnnfast.activation_names()) == set(ACTIVATION_NAMES)
    assert dnnfast.loss_names() == ["sse", "mse", "bce", "cce", "poisson"]


@pytest.mark.parametrize("layout", ["fortran", "strided", "float32-into-float64", "int"])
def test_any_memory_layout_of_X_gives_the_same_answer(layout):
    rng = np.random.default_rng(8)
    X = rng.integers(-3, 4, size=(9, 5)).astype(np.float64)
    net = dnnfast.Network([5, 4, 2], ["tanh", "softmax"], loss="cce", dtype="float64", seed=0)
    want = net.predict(X)
    Xv = {"fortran": np.asfortranarray(X), "strided": np.repeat(X, 2, axis=1)[:, ::2],
          "float32-into-float64": X.astype(np.float32), "int": X.astype(np.int64)}[layout]
    np.testing.assert_array_equal(net.predict(Xv), want)


def test_activations_may_be_one_spec_for_all_layers_or_any_sequence():
    X = np.random.default_rng(9).standard_normal((4, 3))
    base = dnnfast.Network([3, 4, 2], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    as_tuple = dnnfast.Network([3, 4, 2], ("relu", "softmax"), loss="cce", dtype="float64", seed=0)
    assert as_tuple.activations == ["relu", "softmax"]
    np.testing.assert_array_equal(as_tuple.predict(X), base.predict(X))
    one = dnnfast.Network([3, 4, 2], ("leaky_relu", {"alpha": 0.3}), loss="sse", dtype="float64", seed=0)
    assert one.activations == ["leaky_relu", "leaky_relu"]
    assert dnnfast.Network([3, 4, 2], "tanh", loss="sse").activations == ["tanh", "tanh"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
@pytest.mark.parametrize("acts,loss", [(["tanh", "softmax"], "cce"), (["tanh", "sigmoid"], "bce")],
                         ids=["softmax-cce", "sigmoid-bce"])
def test_saturated_network_has_finite_cost_and_gradient(acts, loss, fused, dtype):
    """Huge weights saturate the output; the clipped loss keeps cost and gradient finite."""
    name = np.dtype(dtype).name
    net = dnnfast.Network([3, 4, 3], acts, loss=loss, dtype=name, seed=0, fused=fused)
    net.weights = [w * 1e4 for w in net.weights]
    rng = np.random.default_rng(10)
    X = rng.standard_normal((8, 3)).astype(dtype)
    Y = onehot(rng.integers(0, 3, 8), 3, dtype)
    P = net.predict(X)
    assert np.any((P == 0) | (P == 1))  # really saturated
    c, g = net.loss_and_gradient(X, Y)
    assert np.isfinite(c) and np.all(np.isfinite(g))
    assert c <= -np.log(np.finfo(dtype).eps) * 3 + 1e-3  # at most -ln(eps) per output
    hist = net.fit(X, Y, epochs=2, batch_size=3, learning_rate=0.01)
    assert np.all(np.isfinite(hist.cost)) and np.all(np.isfinite(net.parameters))


def test_layers_swapped_through_the_setters_are_swapped():
    """net.weights = [net.weights[1], net.weights[0]]: the values are views of
    the buffer the setter writes, and layer 0's write overwrote layer 1's
    source; both layers ended up holding the old layer 1."""
    net = dnnfast.Network([3, 3, 3], ["tanh", "identity"], loss="sse", dtype="float64", seed=0)
    W0, W1 = (w.copy() for w in net.weights)
    net.weights = [net.weights[1], net.weights[0]]
    assert np.array_equal(net.weights[0], W1) and np.array_equal(net.weights[1], W0)
    net.biases = [np.full((1, 3), 1.0), np.full((1, 3), 2.0)]
    net.biases = [net.biases[1], net.biases[0]]
    assert net.biases[0][0, 0] == 2.0 and net.biases[1][0, 0] == 1.0


def test_sizes_and_activations_cannot_be_edited_in_place_and_copies_stay_lists():
    """net.sizes[1] = 100 described another model: repr said 100 units,
    predict used 4, and save wrote a file dnnfast.load refused."""
    import copy
    import pickle

    net = dnnfast.Network([3, 4, 2], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    for edit in (lambda: net.sizes.__setitem__(1, 100), lambda: net.sizes.append(5),
                 lambda: net.activations.__setitem__(1, "identity"), lambda: net.activations.sort()):
        with pytest.raises(TypeError, match="fixed when the network is made"):
            edit()
    assert net.sizes == [3, 4, 2] and net.activations == ["relu", "softmax"]
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert other.sizes == [3, 4, 2] and type(pickle.loads(pickle.dumps(other.sizes))) is list
        with pytest.raises(TypeError, match="fixed"):
            other.sizes[0] = 1


def test_assigning_one_layer_of_the_handed_out_list_is_refused_with_what_to_do():
    """net.weights[0] = W raised nothing and changed nothing: the list is made on each access."""
    net = dnnfast.Network([3, 4, 2], ["prelu", "softmax"], loss="cce", dtype="float64", seed=0)
    for name in ("weights", "biases", "alphas"):
        with pytest.raises(TypeError, match=rf"net\.{name}\[l\]\[\.\.\.\] = value"):
            getattr(net, name)[0] = getattr(net, name)[0] * 2
    net.weights[0][...] = 1.5  # the way that works
    assert np.all(net.weights[0] == 1.5)


def test_a_target_just_outside_the_loss_range_is_shown_as_it_is():
    net = dnnfast.Network([2, 1], ["sigmoid"], loss="bce", dtype="float64", seed=0)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 0\.\.1\.0000001$"):  # was "got 0..1"
        net.cost(np.ones((2, 2)), np.array([[0.0], [1.0000001]]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_target_range_is_shown_without_the_dtypes_round_off(dtype):
    """A float32 network showed the target 1.1 as 1.100000023841858."""
    X = np.zeros((3, 2))
    Y = np.array([[0.0], [0.5], [1.1]])
    net = dnnfast.Network([2, 1], ["sigmoid"], loss="bce", dtype=dtype, seed=0)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 0\.\.1\.1$"):
        net.fit(X, Y)
    with pytest.raises(ValueError, match=r"validation_data\[1\]: .* got -1\.1\.\.-0$"):
        net.fit(X, Y * 0 + 0.5, validation_data=(X, -Y))
    net = dnnfast.Network([2, 1], ["exp"], loss="poisson", dtype=dtype, seed=0)
    with pytest.raises(ValueError, match=r"targets >= 0, got -0\.33\.\.-0$"):
        net.cost(X, -Y * 0.3)


@pytest.mark.parametrize("alpha", [np.float32(0.25), np.int64(1), np.float16(0.5)], ids=lambda a: type(a).__name__)
def test_an_activation_parameter_may_be_any_numpy_real_scalar(alpha):
    """np.float32(0.2) was refused: "alpha ... must be a finite number"."""
    net = dnnfast.Network([2, 3, 1], [("leaky_relu", {"alpha": alpha}), "identity"], loss="sse", seed=0)
    z = np.array([[-1.0, -2.0]], dtype=np.float32)
    ref = dnnfast.Network([2, 3, 1], [("leaky_relu", {"alpha": float(alpha)}), "identity"], loss="sse", seed=0)
    assert net.predict(z).tobytes() == ref.predict(z).tobytes()
