"""Finite-difference gradient checks (float64, central differences) of
Network.loss_and_gradient: every activation x every loss, and a whole
3-layer network including prelu's trainable alpha.

Step h = 1e-6: the truncation error (h^2 |C'''|) and the round-off error
(eps |C| / h ~ 1e-10) are both far below the tolerance rtol = 1e-6 with an
absolute floor of 1e-8 relative to the largest gradient entry.

Kinks: relu, leaky_relu, prelu and elu(alpha != 1) have a kink at z = 0 and
binary_step a jump there; a central difference straddling it is meaningless.
Each check therefore picks inputs (by seed) for which every pre-activation of
such a layer is at least 100 h away from 0, and asserts it.
"""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast

from conftest import ACTIVATION_NAMES, LOSS_NAMES, NATURAL_OUTPUT

# Odd output/loss pairings are built on purpose here (every activation with
# every loss); the constructor's warning about them is expected.
pytestmark = pytest.mark.filterwarnings("ignore:loss=.*this pairing does not learn:UserWarning")

H = 1e-6
RTOL = 1e-6
ATOL_REL = 1e-8
KINKED = {"relu", "leaky_relu", "prelu", "elu", "binary_step"}

# Output activations whose range suits the loss (bce and cce need Yhat in (0, 1)).
OUTPUT_OK = {
    "sse": set(ACTIVATION_NAMES),
    "mse": set(ACTIVATION_NAMES),
    "bce": {"sigmoid", "softmax"},
    "cce": {"softmax", "sigmoid"},
    "poisson": {"exp", "softplus", "sigmoid", "softmax"},  # Yhat > 0
}


def targets(loss, rng, n, m_y):
    if loss in ("sse", "mse"):
        return rng.standard_normal((n, m_y))
    if loss == "bce":
        return (rng.random((n, m_y)) < 0.5).astype(np.float64)
    if loss == "poisson":  # counts, zeros included (the 0 ln 0 = 0 term)
        return rng.poisson(1.5, size=(n, m_y)).astype(np.float64)
    Y = np.zeros((n, m_y))
    Y[np.arange(n), rng.integers(0, m_y, size=n)] = 1
    return Y


def numeric_gradient(net, X, Y):
    P = net.parameters
    g = np.zeros_like(P)
    for k in range(P.size):
        old = P[k]
        P[k] = old + H
        cp = net.cost(X, Y)
        P[k] = old - H
        cm = net.cost(X, Y)
        P[k] = old
        g[k] = (cp - cm) / (2 * H)
    return g


def kinks_are_far(net, X):
    Zs, _ = net.forward(X)
    for Z, name in zip(Zs, net.activations):
        if name in KINKED and np.min(np.abs(Z)) < 100 * H:
            return False
    return True


def build(sizes, acts, loss, n, seed, fused=True):
    """A float64 network and data whose pre-activations avoid the kinks."""
    for s in range(seed, seed + 50):
        rng = np.random.default_rng(s)
        net = dnnfast.Network(sizes, acts, loss=loss, dtype="float64", seed=s, fused=fused)
        # non-zero biases and (for prelu) non-default alphas, so every term is exercised
        for b in net.biases:
            b[...] = rng.uniform(-0.5, 0.5, size=b.shape)
        for a in net.alphas:
            if a is not None:
                a[...] = rng.uniform(0.1, 0.4, size=a.shape)
        X = rng.standard_normal((n, sizes[0]))
        Y = targets(loss, rng, n, sizes[-1])
        if kinks_are_far(net, X):
            return net, X, Y
    raise AssertionError("no seed kept every pre-activation away from the kinks")


def check_gradient(net, X, Y):
    c, g = net.loss_and_gradient(X, Y)
    np.testing.assert_allclose(c, net.cost(X, Y), rtol=1e-14)
    num = numeric_gradient(net, X, Y)
    assert np.all(np.isfinite(g))
    scale = max(np.max(np.abs(num)), 1e-3)
    np.testing.assert_allclose(g, num, rtol=RTOL, atol=ATOL_REL * scale)


def pair_cases():
    cases = []
    for loss in LOSS_NAMES:
        for act in ACTIVATION_NAMES:
            cases.append(pytest.param(act, loss, "hidden", id=f"{act}-{loss}-hidden"))
            if act in OUTPUT_OK[loss]:
                cases.append(pytest.param(act, loss, "output", id=f"{act}-{loss}-output"))
    return cases


@pytest.mark.parametrize("act,loss,where", pair_cases())
def test_gradient_matches_finite_differences_for_activation_and_loss(act, loss, where):
    """[3, 4, m_y]: the activation in the hidden layer (output = the loss's own
    output activation) or in the output layer (hidden = tanh)."""
    m_y = 1 if (loss in ("sse", "mse") and act != "softmax" and where == "output") else 3
    if loss == "bce" and act == "sigmoid" and where == "output":
        m_y = 2
    if where == "hidden":
        acts = [act, NATURAL_OUTPUT[loss]]
    else:
        acts = ["tanh", act]
    net, X, Y = build([3, 4, m_y], acts, loss, n=6, seed=1)
    check_gradient(net, X, Y)


@pytest.mark.parametrize("param", [("leaky_relu", {"alpha": 0.3}), ("elu", {"alpha": 0.5}),
                                   ("elu", {"alpha": 2.0})], ids=str)
def test_gradient_matches_finite_differences_with_non_default_parameter(param):
    net, X, Y = build([3, 4, 2], [param, param], "sse", n=6, seed=1)
    check_gradient(net, X, Y)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
def test_whole_3_layer_network_gradient_including_prelu_alpha(fused):
    """[5, 6, 4, 3] tanh / prelu / softmax + cce; every parameter, prelu's alpha included."""
    net, X, Y = build([5, 6, 4, 3], ["tanh", "prelu", "softmax"], "cce", n=9, seed=3, fused=fused)
    lay = net._layout[1]
    assert lay["alpha_offset"] is not None
    _, g = net.loss_and_gradient(X, Y)
    a0, a1 = lay["alpha_offset"], lay["alpha_offset"] + lay["m_out"]
    assert np.any(g[a0:a1] != 0), "prelu alpha gradient is identically zero: no negative Z in the test"
    check_gradient(net, X, Y)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "generic"])
@pytest.mark.parametrize("targets_kind", ["soft rows summing to 2", "all-zero rows", "unnormalised counts"])
def test_softmax_cce_gradient_with_targets_that_are_not_distributions(fused, targets_kind):
    """cce takes any non-negative targets. The fused softmax + cce gradient
    was Yhat - Y, which is the gradient only where a row of Y sums to 1:
    [[0, 0, 0], [2, 0, 1]] gave an error of 0.70 against a largest entry of
    0.58. It is Yhat * rowsum(Y) - Y now."""
    net, X, _ = build([4, 5, 3], ["tanh", "softmax"], "cce", n=6, seed=7, fused=fused)
    rng = np.random.default_rng(11)
    Y = {"soft rows summing to 2": 2 * rng.dirichlet(np.ones(3), size=6),
         "all-zero rows": np.where(np.arange(6)[:, None] % 2 == 0, 0.0, np.eye(3)[np.arange(6) % 3]),
         "unnormalised counts": rng.integers(0, 4, size=(6, 3)).astype(np.float64)}[targets_kind]
    check_gradient(net, X, Y)


def test_prelu_output_layer_alpha_gradient():
    net, X, Y = build([4, 5, 3], ["sigmoid", "prelu"], "mse", n=8, seed=5)
    _, g = net.loss_and_gradient(X, Y)
    lay = net._layout[1]
    assert np.any(g[lay["alpha_offset"]:lay["alpha_offset"] + 3] != 0)
    check_gradient(net, X, Y)


def test_parameter_layout_is_W_b_alpha_per_layer():
    net = dnnfast.Network([5, 6, 4, 3], ["tanh", "prelu", "softmax"], loss="cce", dtype="float64", seed=0)
    expected, off = [], 0
    for m_in, m_out, act in zip([5, 6, 4], [6, 4, 3], ["tanh", "prelu", "softmax"]):
        lay = dict(m_in=m_in, m_out=m_out, w_offset=off, b_offset=off + m_in * m_out)
        off += m_in * m_out + m_out
        lay["alpha_offset"] = off if act == "prelu" else None
        off += m_out if act == "prelu" else 0
        expected.append(lay)
    assert net._layout == expected
    assert net.num_params == off
    # the views are views of the flat buffer
    net.parameters[:] = np.arange(off)
    np.testing.assert_array_equal(net.weights[1].ravel(), np.arange(36, 36 + 24))
    np.testing.assert_array_equal(net.biases[1].ravel(), np.arange(60, 64))
    np.testing.assert_array_equal(net.alphas[1], np.arange(64, 68))
    assert net.alphas[0] is None and net.alphas[2] is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_poisson_gradient_matches_finite_differences_in_both_dtypes(dtype):
    """The fused exp + poisson output, fused and generic, in each dtype. float32's
    analytic gradient is compared at the same (float32-rounded) point with
    float64 central differences, to float32's precision (rtol 1e-4)."""
    net64, X, Y = build([3, 4, 2], ["tanh", "exp"], "poisson", n=6, seed=1)
    for fused in (True, False):
        if dtype == "float64":
            generic = dnnfast.Network([3, 4, 2], ["tanh", "exp"], loss="poisson", dtype="float64", fused=fused)
            generic.parameters[...] = net64.parameters
            check_gradient(generic, X, Y)
            continue
        net = dnnfast.Network([3, 4, 2], ["tanh", "exp"], loss="poisson", dtype="float32", fused=fused)
        net.parameters[...] = net64.parameters.astype(np.float32)
        net64.parameters[...] = net.parameters.astype(np.float64)
        X32 = X.astype(np.float32)
        _, g = net.loss_and_gradient(X32, Y.astype(np.float32))
        num = numeric_gradient(net64, X32.astype(np.float64), Y)
        np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-5 * max(np.abs(num).max(), 1e-3))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_a_gradient_over_many_rows_in_blocks_is_the_references(monkeypatch, dtype, tol):
    """Network.loss_and_gradient over more rows than two blocks of a few MB
    of workspace sums blocks (gradient_block_rows; one call computed each
    layer for all rows from memory, 2x the time a row): the reference's
    cost and gradient over all rows, the float32 one computed in float64."""
    from dnnfast import reference
    from dnnfast._train import driver

    calls = []
    real = driver.gradient_in_blocks
    monkeypatch.setattr(dnnfast.network, "gradient_in_blocks",
                        lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    rng = np.random.default_rng(0)
    net = dnnfast.Network([20, 64, 10], ["tanh", "softmax"], dtype=dtype, seed=0)
    n = 9000
    X = rng.standard_normal((n, 20)).astype(dtype)
    y = rng.integers(0, 10, n)
    c, grad = net.loss_and_gradient(X, y)
    assert calls and calls[0] < n // 2  # (blocks of 1823 float64 rows, 3647 float32: 4 MiB)
    Ws = [W.astype(np.float64) for W in net.weights]
    bs = [b.astype(np.float64) for b in net.biases]
    rc, dWs, dbs, _ = reference.gradients(Ws, bs, [("tanh", None), ("softmax", None)], "cce",
                                          X.astype(np.float64), np.eye(10)[y])
    ref = np.concatenate([dWs[0].ravel(), dbs[0].ravel(), dWs[1].ravel(), dbs[1].ravel()])
    assert abs(c - rc) <= tol * abs(rc)
    assert np.abs(grad - ref).max() <= tol * np.abs(ref).max()


def test_a_float32_gradient_in_blocks_is_finite_where_the_mean_is():
    """The blocks are summed as their means times their weights: their
    float32 sums over a block's rows overflowed (1e18 inputs, 150000 rows
    a block) where the mean gradient, as one call gives it, is finite."""
    net = dnnfast.Network([1, 1], ["identity"], loss="mse", dtype="float32", seed=0)
    net.parameters[:] = [1.0, 0.0]
    n_one = 2 * (4 << 20) // 28  # the most rows one call takes (28 bytes of workspace a row)
    results = []
    for n in (n_one, n_one + 1):  # one call; blocks
        X = np.full((n, 1), 1e18, dtype=np.float32)
        results.append(net.loss_and_gradient(X, np.zeros((n, 1), dtype=np.float32)))
    (c1, g1), (c2, g2) = results
    assert np.isfinite(c2) and np.isfinite(g2).all()
    np.testing.assert_allclose(g2, g1, rtol=1e-5)
    assert c2 == pytest.approx(c1, rel=1e-5)
