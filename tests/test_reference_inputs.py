"""dnnfast.reference refuses bad input with an error that names the argument,
as dnnfast itself does, instead of truncating, broadcasting or computing NaN
(the yardstick must not measure a wrong answer); valid input gives the same
bits as before the checks."""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast  # noqa: F401  (the package the yardstick belongs to)
from dnnfast import reference


def _data(n=20):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, n)


def _net():
    return reference.Network([4, 5, 3], ["relu", "softmax"], seed=0)


# -- the constructor ---------------------------------------------------------

@pytest.mark.parametrize("sizes,exc", [([2.7, 3], TypeError), ("23", TypeError), ([True, 3], TypeError),
                                       ([float("nan"), 3], TypeError), ({4, 3}, TypeError), (None, TypeError),
                                       ([3], ValueError), ([3, 0], ValueError)],
                         ids=["float", "str", "bool", "nan", "set", "None", "one", "zero"])
def test_sizes_refused(sizes, exc):
    with pytest.raises(exc, match="sizes"):
        reference.Network(sizes, ["relu"])


@pytest.mark.parametrize("acts,exc", [(None, TypeError), (5, TypeError), (["relu", "relu"], ValueError)])
def test_activations_refused(acts, exc):
    with pytest.raises(exc, match="activations"):
        reference.Network([3, 2], acts)


@pytest.mark.parametrize("seed,exc", [(-1, ValueError), (2.5, TypeError), ("abc", TypeError), (True, TypeError)])
def test_seed_refused(seed, exc):
    with pytest.raises(exc, match="seed"):
        reference.Network([3, 2], "relu", seed=seed)


@pytest.mark.parametrize("dtype,exc", [(None, TypeError), ("nope", ValueError), ("float16", ValueError)])
def test_dtype_refused(dtype, exc):
    with pytest.raises(exc, match="dtype"):
        reference.Network([3, 2], "relu", dtype=dtype)


def test_an_alpha_not_finite_in_the_dtype_is_refused_as_by_network():
    """alpha = 1e300 is finite as a Python float and inf in float32: dnnfast.Network
    refused it, the reference predicted -inf."""
    for cls in (dnnfast.Network, reference.Network):
        with pytest.raises(ValueError, match=r"activations\[0\]: alpha of 'leaky_relu' is 1e\+300, which is not finite "
                                             r"in float32"):
            cls([3, 2], [("leaky_relu", {"alpha": 1e300})], loss="sse", dtype="float32", seed=0)
        cls([3, 2], [("leaky_relu", {"alpha": 1e300})], loss="sse", dtype="float64", seed=0)  # finite there


# -- fit's scalars -------------------------------------------------------------

@pytest.mark.parametrize("kw,exc,name", [
    (dict(epochs=-3), ValueError, "epochs"), (dict(epochs=True), TypeError, "epochs"),
    (dict(epochs=2.0), TypeError, "epochs"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(learning_rate=None), TypeError, "learning_rate"), (dict(learning_rate="0.1"), TypeError, "learning_rate"),
    (dict(learning_rate=-5.0), ValueError, "learning_rate"), (dict(learning_rate=True), TypeError, "learning_rate"),
    (dict(epochs=0, batch_size=0), ValueError, "batch_size"), (dict(epochs=0, shuffle="no"), TypeError, "shuffle"),
    (dict(seed=-1), ValueError, "seed"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_fit_scalars_refused_and_nothing_trained(kw, exc, name):
    X, y = _data()
    net = _net()
    before = [w.copy() for w in net.weights]
    with pytest.raises(exc, match=name):
        net.fit(X, y, **{"epochs": 2, **kw})
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


# -- X and Y at the Network API ---------------------------------------------------

def _bad_X():
    X, _ = _data()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    return [(Xn, ValueError), (np.full((20, 4), np.inf), ValueError), (np.ones(4), ValueError),
            (np.ones((20, 5)), ValueError), (np.ones((0, 4)), ValueError), (np.full((20, 4), "a"), TypeError),
            (np.ones((20, 4), dtype=complex), TypeError), (np.full((20, 4), 1e300), ValueError)]


@pytest.mark.parametrize("method", ["fit", "predict", "cost", "gradients", "forward"])
@pytest.mark.parametrize("case", range(len(_bad_X())),
                         ids=["nan", "inf", "1-D", "5-cols", "empty", "str", "complex", "too-large-f32"])
def test_X_refused(method, case):
    Xbad, exc = _bad_X()[case]
    _, y = _data()
    net = _net()
    args = (Xbad,) if method in ("predict", "forward") else (Xbad, y)
    with pytest.raises(exc, match="X"):
        getattr(net, method)(*args)


def _bad_Y():
    _, y = _data()
    neg = y.copy()
    neg[0] = -1
    frac = y.astype(float)
    frac[0] = 2.7
    big = y.copy()
    big[0] = 3
    nanl = y.astype(float)
    nanl[0] = np.nan
    onehot = np.eye(3)[y]
    onehot_nan = onehot.copy()
    onehot_nan[0, 0] = np.nan
    return [(neg, ValueError), (frac, ValueError), (big, ValueError), (nanl, ValueError),
            (np.concatenate([y, y]), ValueError), (y[:5], ValueError), (y.astype(bool), TypeError),
            (onehot[:, :1], ValueError), (onehot_nan, ValueError), (np.ones((20, 3, 1)), ValueError),
            (y.astype(str), TypeError)]


@pytest.mark.parametrize("method", ["fit", "cost", "gradients"])
@pytest.mark.parametrize("case", range(len(_bad_Y())),
                         ids=["label-1", "label2.7", "label3", "label-nan", "too-long", "too-short", "bool",
                              "one-column", "onehot-nan", "3-D", "str"])
def test_Y_refused(method, case):
    Ybad, exc = _bad_Y()[case]
    X, _ = _data()
    with pytest.raises(exc, match="Y"):
        getattr(_net(), method)(X, Ybad)


@pytest.mark.parametrize("loss, act, Y, where", [
    ("cce", "softmax", -np.eye(2), ">= 0"),
    ("bce", "sigmoid", np.full((2, 2), 5.0), r"in \[0, 1\]"),
    ("poisson", "exp", np.full((2, 2), -3.0), ">= 0"),
], ids=["cce-negative", "bce-5", "poisson-negative"])
@pytest.mark.parametrize("method", ["fit", "cost", "gradients"])
def test_targets_outside_the_losss_range_are_refused_as_by_network(method, loss, act, Y, where):
    """The reference returned a negative cce or bce cost and a NaN poisson one
    where dnnfast.Network refuses the targets."""
    for cls in (dnnfast.Network, reference.Network):
        net = cls([3, 2], [act], loss=loss, dtype="float64", seed=0)
        with pytest.raises(ValueError, match=f"Y: the {loss} loss needs targets {where}"):
            getattr(net, method)(-np.ones((2, 3)), Y)


def test_sse_Y_with_too_few_columns_refused():
    X, _ = _data()
    net = reference.Network([4, 3], ["identity"], loss="sse", seed=0)
    with pytest.raises(ValueError, match="Y has 1 columns"):
        net.fit(X, np.ones(20))  # a (20, 1) Y would broadcast against (20, 3)


# -- the module's functions ------------------------------------------------------------

F = np.ones((3, 4))


@pytest.mark.parametrize("call", [
    lambda: reference.activation_forward("nope", F),
    lambda: reference.activation_backward("nope", F, F, F),
    lambda: reference.loss_forward("nope", F, F),
    lambda: reference.loss_backward("nope", F, F, 1.0),
    lambda: reference.gradients([np.ones((4, 2))], [np.zeros((1, 2))], [("relu", None)], "nope", F, np.ones((3, 2))),
], ids=["activation_forward", "activation_backward", "loss_forward", "loss_backward", "gradients"])
def test_unknown_name_lists_the_known_ones(call):
    with pytest.raises(ValueError, match=r"unknown .*'nope'; known: .*(relu|cce)"):
        call()


I = np.ones((3, 4), dtype=np.int64)
L = [[1.0] * 4] * 3


@pytest.mark.parametrize("call,name", [
    (lambda: reference.activation_forward("relu", L), "Z"),
    (lambda: reference.activation_forward("sigmoid", I), "Z"),
    (lambda: reference.activation_backward("relu", F, F, I), "dA"),
    (lambda: reference.activation_backward("relu", F, I, F), "A"),
    (lambda: reference.prelu_alpha_backward(I, F), "Z"),
    (lambda: reference.loss_forward("sse", F, I), "Yhat"),
    (lambda: reference.loss_forward("sse", L, F), "Y"),
    (lambda: reference.loss_backward("sse", F, F, "0.5"), "scale"),
    (lambda: reference.loss_backward("sse", F, F, True), "scale"),
    (lambda: reference.output_backward_fused(F, I, 0.5), "Yhat"),
    (lambda: reference.linear_forward(I, np.ones((4, 2)), np.zeros((1, 2))), "A"),
    (lambda: reference.linear_backward(F, np.ones((4, 2)), np.ones((3, 2), dtype=np.int32)), "dZ"),
    (lambda: reference.sgd_update(np.ones(3), np.ones(3), "0.1"), "learning_rate"),
    (lambda: reference.sgd_update(np.ones(3), [1.0, 1.0, 1.0], 0.1), "grads"),
    (lambda: reference.activation_forward("leaky_relu", F, "0.1"), "alpha"),
    (lambda: reference.softmax_jacobian(I), "A"),
], ids=["list-Z", "int-Z", "int-dA", "int-A", "prelu-int-Z", "int-Yhat", "list-Y", "str-scale", "bool-scale",
        "fused-int-Yhat", "int-A", "int-dZ", "str-rate", "list-grads", "str-alpha", "int-jacobian"])
def test_non_float_arrays_refused(call, name):
    with pytest.raises(TypeError, match=name):
        call()


@pytest.mark.parametrize("call,names", [
    (lambda: reference.loss_forward("cce", np.ones((3, 1)), np.full((3, 4), .25)), "Y.*Yhat"),
    (lambda: reference.loss_backward("sse", np.ones((1, 4)), F, 1.0), "Y.*Yhat"),
    (lambda: reference.output_backward_fused(np.ones((3, 1)), F, 1.0), "Y.*Yhat"),
    (lambda: reference.loss_forward("sse", F, F, np.ones(1)), "w"),
    (lambda: reference.loss_backward("sse", F, F, 1.0, np.ones((3, 1))), "w"),
    (lambda: reference.linear_forward(F, np.ones((4, 2)), np.zeros((3, 2))), "b"),
    (lambda: reference.linear_forward(F, np.ones((4, 2)), np.zeros((1, 1))), "b"),
    (lambda: reference.linear_forward(F, np.ones((5, 2)), np.zeros((1, 2))), "A.*W"),
    (lambda: reference.linear_backward(F, np.ones((4, 2)), np.ones((3, 1))), "dZ"),
    (lambda: reference.activation_backward("tanh", F, F, np.ones((1, 4))), "dA.*Z"),
    (lambda: reference.prelu_alpha_backward(F, np.ones((3, 1))), "dA.*Z"),
    (lambda: reference.sgd_update(np.ones((3, 2)), np.ones((1, 2)), 0.1), "grads.*params"),
    (lambda: reference.activation_forward("prelu", F, np.ones(3)), "alpha"),
    (lambda: reference.softmax_backward_literal(F, np.ones((3, 1))), "dA.*A"),
], ids=["cce-Y-column", "sse-Y-row", "fused-Y", "w-short", "w-2D", "b-rows", "b-1x1", "A-W", "dZ", "act-dA",
        "prelu-dA", "sgd", "alpha-length", "literal"])
def test_shapes_that_only_broadcast_refused(call, names):
    with pytest.raises(ValueError, match=names):
        call()


W1, W2, b1, b2 = np.ones((4, 5)), np.ones((5, 3)), np.zeros((1, 5)), np.zeros((1, 3))
ACTS = [("relu", None), ("softmax", None)]


@pytest.mark.parametrize("Ws,bs,acts", [([W1, W2], [b1], ACTS), ([W1], [b1, b2], ACTS), ([W1, W2], [b1, b2], ACTS[:1]),
                                        ([], [], [])], ids=["1-bias", "1-weight", "1-activation", "none"])
@pytest.mark.parametrize("fn", ["forward", "gradients"])
def test_layer_lists_of_different_lengths_refused(fn, Ws, bs, acts):
    X = np.ones((2, 4))
    args = (Ws, bs, acts, X) if fn == "forward" else (Ws, bs, acts, "cce", X, np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="weights, biases and activations"):
        getattr(reference, fn)(*args)


def test_gradients_refuses_a_non_bool_fused():
    with pytest.raises(TypeError, match="fused"):
        reference.gradients([W1, W2], [b1, b2], ACTS, "cce", np.ones((2, 4)), np.full((2, 3), 1 / 3), fused="no")


# -- valid input: the same bits as the code before the checks -------------------------

def _original_prepare(net, X, Y):
    # Network._prepare as it was before the checks.
    X = np.ascontiguousarray(X, dtype=net.dtype)
    Y = np.asarray(Y)
    if Y.ndim == 1 and net.loss == "cce":
        Y = np.eye(net.sizes[-1], dtype=net.dtype)[Y.astype(np.int64)]
    return X, np.ascontiguousarray(Y.reshape(len(Y), -1), dtype=net.dtype)


def _original_fit(net, X, Y, epochs, batch_size, learning_rate, rng):
    # Network.fit as it was before the checks, on the module's own arithmetic.
    X, Y = _original_prepare(net, X, Y)
    history = []
    for _ in range(epochs):
        total = 0.0
        order = rng.permutation(X.shape[0]).astype(np.int64, copy=False)
        size = batch_size or X.shape[0]
        for start in range(0, X.shape[0], size):
            idx = order[start:start + size]
            c, dWs, dbs, dalphas = reference.gradients(net.weights, net.biases, net._activations(), net.loss,
                                                       X[idx], Y[idx])
            for l in range(len(net.weights)):
                net.weights[l] -= net.weights[l].dtype.type(learning_rate) * dWs[l]
                net.biases[l] -= net.biases[l].dtype.type(learning_rate) * dbs[l]
                if dalphas[l] is not None:
                    net.alphas[l] -= net.alphas[l].dtype.type(learning_rate) * dalphas[l]
            total += c * len(idx)
        history.append(total / X.shape[0])
    return history


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes,acts,loss,labels", [
    ([4, 5, 3], ["relu", "softmax"], "cce", "int"),
    ([4, 5, 3], ["tanh", "softmax"], "cce", "float"),
    ([4, 6, 2], [("prelu", {"alpha": 0.1}), "identity"], "sse", None),
    ([4, 3, 1], ["elu", "sigmoid"], "bce", None),
], ids=["cce-int-labels", "cce-float-labels", "prelu-sse", "bce"])
def test_valid_input_gives_the_same_bits(sizes, acts, loss, labels, dtype):
    rng = np.random.default_rng(5)
    X = rng.integers(-3, 4, (17, 4)) if labels == "float" else rng.normal(size=(17, 4))  # integer X converted
    if labels:
        Y = rng.integers(0, sizes[-1], 17).astype(np.int64 if labels == "int" else np.float64)
    elif loss == "bce":
        Y = rng.integers(0, 2, 17).astype(float)  # 1-D, one output
    else:
        Y = rng.normal(size=(17, sizes[-1]))
    new = reference.Network(sizes, acts, loss=loss, dtype=dtype, seed=3)
    old = reference.Network(sizes, acts, loss=loss, dtype=dtype, seed=3)
    h_new = new.fit(X, Y, epochs=3, batch_size=5, learning_rate=0.05, shuffle=True, seed=11)["cost"]
    h_old = _original_fit(old, X, Y, 3, 5, 0.05, np.random.default_rng(11))
    assert h_new == h_old
    for a, b in zip(new.weights + new.biases, old.weights + old.biases):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for a, b in zip(new.alphas, old.alphas):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
    Xo, Yo = _original_prepare(old, X, Y)
    assert np.array_equal(new.predict(X), reference.forward(old.weights, old.biases, old._activations(), Xo)[1][-1])
    assert new.cost(X, Y) == reference.loss_forward(loss, Yo, new.predict(X)) / 17


@pytest.mark.parametrize("name, default", [("leaky_relu", 0.1), ("elu", 1.0), ("prelu", 0.25)])
def test_an_omitted_alpha_is_the_activations_default(name, default):
    """SPEC section 3's defaults, as Network takes a bare name: an omitted
    alpha was 0, so leaky_relu without it computed relu."""
    Z = np.array([[-1.0, 2.0, -0.5]])
    for dtype in (np.float32, np.float64):
        Zd = Z.astype(dtype)
        np.testing.assert_array_equal(reference.activation_forward(name, Zd), reference.activation_forward(name, Zd, default))
        A = reference.activation_forward(name, Zd)
        ones = np.ones_like(Zd)
        np.testing.assert_array_equal(reference.activation_backward(name, Zd, A, ones),
                                      reference.activation_backward(name, Zd, A, ones, default))
    assert reference.activation_forward("leaky_relu", Z)[0, 0] == -0.1


def test_names_are_taken_as_network_takes_them():
    """"logistic" (scikit-learn's name) and any case: Network took them, the functions refused them."""
    Z = np.array([[-1.0, 0.0, 3.0]])
    np.testing.assert_array_equal(reference.activation_forward("logistic", Z), reference.activation_forward("sigmoid", Z))
    np.testing.assert_array_equal(reference.activation_forward("ReLU", Z), reference.activation_forward("relu", Z))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        reference.activation_forward("swish", Z)


def test_loss_names_are_taken_in_any_case_as_network_takes_them():
    """Activation names were case-insensitive in the functions, loss names not
    ("SSE" was unknown to loss_forward, known to both Networks); gradients
    compared the names as typed, so "PReLU" had no alpha gradient."""
    Y, P = np.eye(3)[[0, 2]], np.full((2, 3), 1 / 3)
    assert reference.loss_forward("SSE", Y, P) == reference.loss_forward("sse", Y, P)
    np.testing.assert_array_equal(reference.loss_backward("Cce", Y, P, 0.5), reference.loss_backward("cce", Y, P, 0.5))
    assert reference.Network([2, 2], "identity", loss="SSE").loss == "sse"
    X = np.random.default_rng(0).normal(size=(4, 3))
    Ws, bs, Y4 = [np.full((3, 2), 0.1), np.ones((2, 2))], [np.zeros((1, 2))] * 2, np.eye(2)[[0, 1, 0, 1]]
    lower = reference.gradients(Ws, bs, [("prelu", np.full(2, 0.25)), ("softmax", None)], "cce", X, Y4)
    mixed = reference.gradients(Ws, bs, [("PReLU", np.full(2, 0.25)), ("Softmax", None)], "CCE", X, Y4)
    assert lower[0] == mixed[0] and mixed[3][0] is not None
    for a, b in zip(lower[1] + lower[2] + lower[3][:1], mixed[1] + mixed[2] + mixed[3][:1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        reference.loss_forward("hinge", Y, P)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_softmax_and_prelu_alpha_gradient_need_matrices(shape):
    """A 1-D Z gave NumPy's AxisError; a 3-D one was normalised over its
    second axis, rows that did not sum to 1 (the C++ op says "Z must be 2-D")."""
    Z = np.arange(float(np.prod(shape))).reshape(shape)
    with pytest.raises(ValueError, match=r"Z must be 2-D"):
        reference.activation_forward("softmax", Z)
    with pytest.raises(ValueError, match=r"must be 2-D"):
        reference.activation_backward("softmax", Z, Z, Z)
    with pytest.raises(ValueError, match=r"must be 2-D"):
        reference.prelu_alpha_backward(Z, Z)


@pytest.mark.parametrize("rate", [1.5, 2])
def test_a_learning_rate_above_1_is_refused_as_by_network(rate):
    """SPEC section 5: 0 < alpha <= 1; dnnfast.Network.fit refuses more, the reference took it."""
    p, g = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match="learning_rate must be <= 1"):
        reference.sgd_update(p, g, rate)
    net = reference.Network([2, 2], ["softmax"], seed=0)
    with pytest.raises(ValueError, match="learning_rate must be <= 1"):
        net.fit(np.ones((4, 2)), np.array([0, 1, 0, 1]), epochs=1, learning_rate=rate)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_fused_is_taken_as_network_takes_it(dtype, rtol):
    """The reference's Network takes Network's constructor, ``fused`` too: the
    generic chain's gradients agree with dnnfast's generic path, and the
    argument is checked as dnnfast checks it."""
    X, y = _data(30)
    Xd = X.astype(dtype)
    for fused in (True, False):
        ref = reference.Network([4, 5, 3], ["tanh", "softmax"], dtype=dtype, seed=2, fused=fused)
        net = dnnfast.Network([4, 5, 3], ["tanh", "softmax"], dtype=dtype, seed=2, fused=fused)
        assert ref.fused is fused
        (rW, rb), (nW, nb) = ref.gradients(Xd, y), net.gradients(Xd, y)
        for a, b in zip(rW + rb, nW + nb):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
        ref.fit(Xd, y, epochs=2, batch_size=8, learning_rate=0.1)
        net.fit(Xd, y, epochs=2, batch_size=8, learning_rate=0.1)
        for a, b in zip(ref.weights, net.weights):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    with pytest.raises(TypeError, match="fused"):
        reference.Network([4, 3], ["softmax"], fused="no")


def test_gradients_do_not_form_the_inputs_gradient(monkeypatch):
    """The yardstick does the work training needs: dA[0] = dZ W[0]^T, which
    nothing uses and dnnfast never forms, was computed at every step (28% more
    arithmetic on W1 than the benchmarks count for the NumPy peer)."""
    calls = []
    real = reference.linear_backward

    def recording(A, W, dZ, need_dA=True):
        calls.append(need_dA)
        return real(A, W, dZ, need_dA)

    monkeypatch.setattr(reference, "linear_backward", recording)
    X, y = _data()
    net = reference.Network([4, 6, 5, 3], ["relu", "tanh", "softmax"], dtype="float64", seed=0)
    before = [w.copy() for w in net.weights]
    net.fit(X, y, epochs=1)
    assert calls == [True, True, False]
    assert all(not np.array_equal(a, b) for a, b in zip(before, net.weights))  # every layer still trained
    A, W, dZ = np.ones((2, 3)), np.ones((3, 4)), np.ones((2, 4))
    dW, db, dA = real(A, W, dZ, need_dA=False)
    assert dA is None and dW.shape == (3, 4) and db.shape == (1, 4)


# -- ndarray subclasses ------------------------------------------------------

_rng = np.random.default_rng(3)
_S = _rng.standard_normal((3, 3))  # square: a matrix product fits where the element-wise one is meant
_D = _rng.standard_normal((3, 3))
_P = reference.activation_forward("softmax", _S)
_E = np.eye(3)
_W = np.array([1.0, 2.0, 3.0])

SUBCLASS_CALLS = {
    "activation_forward": lambda f: reference.activation_forward("tanh", f(_S)),
    "activation_forward-softmax": lambda f: reference.activation_forward("softmax", f(_S)),
    "activation_forward-alpha": lambda f: reference.activation_forward("prelu", _S, f(_W)),
    "activation_backward": lambda f: reference.activation_backward("tanh", f(_S), f(np.tanh(_S)), f(_D)),
    "activation_backward-softmax": lambda f: reference.activation_backward("softmax", f(_S), f(_P), f(_D)),
    "prelu_alpha_backward": lambda f: reference.prelu_alpha_backward(f(_S), f(_D)),
    "softmax_backward_literal": lambda f: reference.softmax_backward_literal(f(_P), f(_D)),
    "loss_forward": lambda f: reference.loss_forward("mse", f(_E), f(_P), f(_W)),
    "loss_backward": lambda f: reference.loss_backward("sse", f(_E), f(_P), 0.5, f(_W)),
    "output_backward_fused": lambda f: reference.output_backward_fused(f(_E), f(_P), 0.5, f(_W)),
    "linear_forward": lambda f: reference.linear_forward(f(_S), f(_D), f(_W[None])),
    "linear_backward": lambda f: reference.linear_backward(f(_S), f(_D), f(_P)),
    "forward": lambda f: reference.forward([f(_S)], [f(_W[None])], [("tanh", None)], f(_D))[1],
    "gradients": lambda f: reference.gradients([f(_S)], [f(_W[None])], [("softmax", None)], "cce", f(_D), f(_E)),
}


def _leaves(x):
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [x]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's
@pytest.mark.parametrize("call", SUBCLASS_CALLS.values(), ids=SUBCLASS_CALLS)
def test_ndarray_subclasses_give_the_plain_arrays_results(call):
    """np.matrix turned * and ** into matrix products (activation_backward,
    the losses: wrong answers of the right shape); a masked array with
    nothing masked is its data."""
    want = _leaves(call(lambda a: a))
    for make in (np.matrix, np.ma.masked_array):
        got = _leaves(call(lambda a: make(a) if a.ndim == 2 or make is not np.matrix else a))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert type(g) is type(w) and (g is None or np.array_equal(g, w))


@pytest.mark.parametrize("call", SUBCLASS_CALLS.values(), ids=SUBCLASS_CALLS)
def test_masked_entries_are_refused_naming_the_argument(call):
    """A masked Yhat's masked entries were left out of the loss (cce: -3.0
    for 5.5), a masked Z's used by softmax."""
    def mask(a):
        m = np.zeros(a.shape, bool)
        m.flat[0] = True
        return np.ma.masked_array(a, mask=m)
    with pytest.raises(TypeError, match="is a masked array with masked entries"):
        call(mask)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_sgd_update_of_a_matrix_updates_it_element_wise_in_place():
    p, g = np.matrix(_S.copy()), np.matrix(_D)
    want = _S - 0.5 * _D
    reference.sgd_update(p, g, 0.5)
    np.testing.assert_array_equal(np.asarray(p), want)


_Z = np.array([[1.0, -1.0]])
_Y32, _P32 = np.zeros((1, 2), np.float32), np.full((1, 2), 0.5, np.float32)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: reference.activation_forward("leaky_relu", _Z, float("nan")), ValueError, "alpha must be finite in float64"),
    (lambda: reference.activation_forward("elu", _Z, float("inf")), ValueError, "alpha must be finite in float64"),
    (lambda: reference.activation_backward("leaky_relu", _Z, _Z, _Z, float("nan")), ValueError, "alpha must be finite"),
    (lambda: reference.activation_forward("prelu", _Z, np.array([0.25, np.nan])), ValueError, "alpha must be finite"),
    (lambda: reference.activation_forward("leaky_relu", _Z.astype(np.float32), 1e300), ValueError,
     "alpha must be finite in float32"),
    (lambda: reference.activation_forward("exp", np.array([[12.0]], np.float16)), TypeError,
     "Z must be a NumPy array of dtype float32 or float64, got an array of dtype float16"),
    (lambda: reference.loss_forward("sse", _Y32, _P32.astype(np.float16)), TypeError, "Yhat .* float16"),
    (lambda: reference.loss_backward("sse", _Y32, _P32, 1e300), ValueError, "scale must be finite in float32"),
    (lambda: reference.output_backward_fused(_Y32, _P32, 1e300), ValueError, "scale must be finite in float32"),
    (lambda: reference.sgd_update(np.zeros((1, 2), np.float32), np.full((1, 2), 1e300), 0.5), TypeError,
     "grads has dtype float64 but params has float32"),
], ids=["nan-alpha", "inf-alpha", "nan-alpha-backward", "nan-prelu-alpha", "alpha-inf-in-float32", "float16-Z",
        "float16-Yhat", "loss-scale-inf-in-float32", "fused-scale-inf-in-float32", "sgd-float64-grads"])
def test_values_not_finite_in_the_computing_dtype_are_refused(call, exc, message):
    """NaN or infinite alphas gave NaN or -inf outputs without a word; 1e300 is
    finite as a Python float and inf in float32 (alpha, scale, float64 grads
    cast into float32 params); exp's clip is float32's or float64's, so a
    float16 exp(12) overflowed. dnnfast's ops take float32 and float64 only."""
    with pytest.raises(exc, match=message):
        call()
    # The same values in range compute as before: float64 alpha and scale, grads of params' dtype.
    reference.activation_forward("leaky_relu", _Z, 1e300)
    reference.loss_backward("sse", _Y32.astype(np.float64), _P32.astype(np.float64), 1e300)
    reference.sgd_update(np.zeros((1, 2), np.float32), np.full((1, 2), 1e30, np.float32), 0.5)


_NO_UNITS = np.zeros((2, 0))


@pytest.mark.parametrize("call, name", [
    (lambda: reference.activation_forward("softmax", _NO_UNITS), "Z"),
    (lambda: reference.activation_backward("softmax", _NO_UNITS, _NO_UNITS, _NO_UNITS), "Z"),
    (lambda: reference.loss_forward("mse", _NO_UNITS, _NO_UNITS), "Yhat"),
    (lambda: reference.loss_forward("sse", _NO_UNITS, _NO_UNITS), "Yhat"),
    (lambda: reference.loss_backward("mse", _NO_UNITS, _NO_UNITS, 0.5), "Yhat"),
    (lambda: reference.output_backward_fused(_NO_UNITS, _NO_UNITS, 0.5, row_sum=True), "Yhat"),
], ids=["softmax", "softmax-backward", "mse", "sse", "mse-backward", "fused"])
def test_rows_of_no_units_are_refused_naming_the_argument(call, name):
    """softmax of a (2, 0) Z raised NumPy's "zero-size array to reduction
    operation maximum", naming nothing; mse of (2, 0) was NaN. No layer of
    dnnfast.Network has 0 units; 0 rows stay fine."""
    with pytest.raises(ValueError, match=rf"^{name} has 0 columns"):
        call()
    assert reference.activation_forward("softmax", np.zeros((0, 3))).shape == (0, 3)
    assert reference.loss_forward("mse", np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def test_read_only_params_are_refused_naming_params():
    """NumPy's "output array is read-only" named no argument; nothing is changed."""
    p = np.zeros((1, 2))
    p.flags.writeable = False
    with pytest.raises(ValueError, match="params is read-only"):
        reference.sgd_update(p, np.ones((1, 2)), 0.1)
    assert not p.any()


def test_big_endian_and_safely_cast_arrays_are_computed_as_before():
    """The dtype checks compared dtypes with their byte order: a '>f8' array
    (np.load of a big-endian file) was refused, and float32 grads into
    float64 params, which lose nothing, too. dnnfast.Network takes both."""
    Z = np.array([[0.5, -1.0]], dtype=">f8")
    np.testing.assert_array_equal(reference.activation_forward("tanh", Z), np.tanh(Z.astype(np.float64)))
    params = np.ones(3)
    reference.sgd_update(params, np.full(3, 0.5, dtype=np.float32), 0.1)
    np.testing.assert_array_equal(params, np.full(3, 0.95))
    with pytest.raises(TypeError, match="grads has dtype float64 but params has float32"):
        reference.sgd_update(np.ones(3, dtype=np.float32), np.full(3, 1e300), 0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_learning_rate_below_the_smallest_normal_number_is_refused_as_by_network_fit(dtype):
    """A float32 learning rate below 1.17549e-38 became 0 in params' dtype and
    sgd_update changed nothing, without a word (dnnfast.Network.fit refuses
    it); reference.Network.fit refuses it before any epoch."""
    tiny = float(np.finfo(dtype).tiny)
    p = np.ones(3, dtype)
    with pytest.raises(ValueError, match=f"learning_rate must be at least {tiny:g} for {np.dtype(dtype).name} "
                                         f"params, got {tiny / 2!r}"):
        reference.sgd_update(p, np.ones(3, dtype), tiny / 2)
    np.testing.assert_array_equal(p, 1)
    reference.sgd_update(p, np.ones(3, dtype), tiny)  # the smallest normal number itself is taken
    net = reference.Network([4, 5, 3], ["relu", "softmax"], dtype=dtype, seed=0)
    W = [w.copy() for w in net.weights]
    X, y = _data()
    with pytest.raises(ValueError, match=f"learning_rate must be at least {tiny:g} for a {np.dtype(dtype).name} "
                                         "network"):
        net.fit(X, y, epochs=1, learning_rate=tiny / 2)
    for a, b in zip(W, net.weights):
        np.testing.assert_array_equal(a, b)
    # float32's floor is no floor for float64 params: 1e-39 is normal there
    if dtype is np.float64:
        reference.sgd_update(np.ones(3), np.ones(3), 1e-39)
