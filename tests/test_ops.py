"""Every single C++ op against dnnfast.reference, in float32 and float64, on
shapes that are not multiples of any block size; plus numerical stability of
the activations and losses at extreme inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dnnfast import _core
from dnnfast import reference as ref

from conftest import (ACT_DEFAULT, ACT_ID, ACTIVATION_NAMES, DTYPES, LOSS_ID, LOSS_NAMES, SHAPES, TOL,
                      alpha_for, assert_close, ref_alpha)


def random_Z(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def valid_targets(loss, rng, shape, dtype):
    """(Y, Yhat) in the domain of the loss, Yhat away from saturation."""
    if loss in ("sse", "mse"):
        return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    if loss == "bce":
        Y = (rng.random(shape) < 0.5).astype(dtype)
        return Y, rng.uniform(0.02, 0.98, size=shape).astype(dtype)
    if loss == "poisson":  # counts (zeros included) and positive rates
        return rng.poisson(2.0, size=shape).astype(dtype), rng.uniform(0.05, 5.0, size=shape).astype(dtype)
    # cce: one-hot rows and softmax-like rows
    labels = rng.integers(0, shape[1], size=shape[0])
    Y = np.zeros(shape, dtype=dtype)
    Y[np.arange(shape[0]), labels] = 1
    P = rng.uniform(0.05, 1.0, size=shape)
    return Y, (P / P.sum(axis=1, keepdims=True)).astype(dtype)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def test_activation_registry_matches_spec_table():
    expected = {"identity": (False, 0.0), "relu": (False, 0.0), "leaky_relu": (True, 0.1),
                "prelu": (True, 0.25), "elu": (True, 1.0), "sigmoid": (False, 0.0), "tanh": (False, 0.0),
                "arctan": (False, 0.0), "softplus": (False, 0.0), "binary_step": (False, 0.0),
                "softmax": (False, 0.0), "exp": (False, 0.0)}
    got = {name: (has, default) for name, _, has, default, _ in _core.ACTIVATIONS}
    assert got == expected
    assert [r[0] for r in _core.ACTIVATIONS if r[4]] == ["prelu"]  # only prelu is per unit
    assert sorted(r[1] for r in _core.ACTIVATIONS) == list(range(len(expected)))


def test_loss_registry_matches_spec_table():
    assert {name: fused for name, _, fused in _core.LOSSES} == {
        "sse": "", "mse": "", "bce": "sigmoid", "cce": "softmax", "poisson": "exp"}


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

ACT_PARAMS = [(name, None) for name in ACTIVATION_NAMES] + [("leaky_relu", 0.2), ("elu", 0.5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name,value", ACT_PARAMS, ids=lambda p: str(p))
def test_activation_forward_matches_reference(name, value, shape, dtype, rng):
    Z = random_Z(rng, shape, dtype)
    alpha = alpha_for(name, shape[1], dtype, rng=rng, value=value)
    A = _core.activation_forward(ACT_ID[name], Z, alpha)
    expected = ref.activation_forward(name, Z, ref_alpha(name, alpha))
    assert A.dtype == dtype
    assert_close(A, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name,value", ACT_PARAMS, ids=lambda p: str(p))
def test_activation_backward_matches_reference(name, value, shape, dtype, rng):
    Z = random_Z(rng, shape, dtype)
    alpha = alpha_for(name, shape[1], dtype, rng=rng, value=value)
    A = ref.activation_forward(name, Z, ref_alpha(name, alpha)).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    dZ = _core.activation_backward(ACT_ID[name], Z, A, dA, alpha)
    expected = ref.activation_backward(name, Z, A, dA, ref_alpha(name, alpha))
    assert dZ.dtype == dtype
    assert_close(dZ, expected, dtype, scale=float(np.max(np.abs(dA))))


def test_activation_values_by_hand():
    """A few values worked by hand (SPEC section 3), float64."""
    Z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    f = lambda name, alpha=np.zeros(0): _core.activation_forward(ACT_ID[name], Z, alpha)  # noqa: E731
    np.testing.assert_array_equal(f("relu"), [[0, 0, 0, 0.5, 2]])
    np.testing.assert_allclose(f("leaky_relu", np.array([0.1])), [[-0.2, -0.05, 0, 0.5, 2]], rtol=1e-15)
    np.testing.assert_array_equal(f("binary_step"), [[0, 0, 1, 1, 1]])
    np.testing.assert_allclose(f("elu", np.array([1.0])), [[np.expm1(-2), np.expm1(-0.5), 0, 0.5, 2]],
                               rtol=1e-15)
    np.testing.assert_allclose(f("sigmoid"), 1 / (1 + np.exp(-Z)), rtol=1e-15)
    np.testing.assert_allclose(f("softplus"), np.log1p(np.exp(Z)), rtol=1e-15)
    np.testing.assert_allclose(f("arctan"), np.arctan(Z), rtol=1e-15)
    np.testing.assert_allclose(f("exp"), np.exp(Z), rtol=1e-15)
    S = f("softmax")
    np.testing.assert_allclose(S, np.exp(Z) / np.exp(Z).sum(), rtol=1e-14)
    np.testing.assert_allclose(S.sum(), 1.0, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_prelu_alpha_backward_matches_reference(shape, dtype, rng):
    Z = random_Z(rng, shape, dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    got = _core.prelu_alpha_backward(Z, dA)
    expected = ref.prelu_alpha_backward(Z, dA)
    assert got.shape == (shape[1],)
    # a column sum of n products: scale by the sum of magnitudes
    assert_close(got, expected, dtype, scale=float(np.max(np.sum(np.abs(dA * Z), axis=0))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_softmax_jvp_equals_literal_4_index_contraction(shape, dtype, rng):
    if shape[0] * shape[1] > 2000:
        shape = (9, 11)  # the literal tensor is (n m)^2 entries
    Z = random_Z(rng, shape, dtype)
    A = _core.activation_forward(ACT_ID["softmax"], Z, np.zeros(0, dtype))
    dA = rng.standard_normal(shape).astype(dtype)
    dZ = _core.activation_backward(ACT_ID["softmax"], Z, A, dA, np.zeros(0, dtype))
    literal = ref.softmax_backward_literal(A.astype(np.float64), dA.astype(np.float64))
    assert_close(dZ, literal, dtype, scale=float(np.max(np.abs(dA))))


def test_softmax_jacobian_is_the_spec_formula(rng):
    n, m = 3, 4
    A = ref.activation_forward("softmax", rng.standard_normal((n, m)))
    J = ref.softmax_jacobian(A)
    assert J.shape == (n, m, n, m)
    for i in range(n):
        for j in range(m):
            for u in range(n):
                for v in range(m):
                    if i != u:
                        want = 0.0
                    elif j == v:
                        want = A[i, j] * (1 - A[i, j])
                    else:
                        want = -A[i, j] * A[i, v]
                    assert J[i, j, u, v] == want
    # and it is the derivative of softmax: finite differences of one row
    Z = rng.standard_normal((1, m))
    A1 = ref.activation_forward("softmax", Z)
    h = 1e-6
    for v in range(m):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[0, v] += h
        Zm[0, v] -= h
        col = (ref.activation_forward("softmax", Zp) - ref.activation_forward("softmax", Zm)) / (2 * h)
        np.testing.assert_allclose(ref.softmax_jacobian(A1)[0, :, 0, v], col[0], rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# Stability at extreme inputs
# ---------------------------------------------------------------------------

def huge_values(dtype):
    big = float(np.finfo(dtype).max) / 2
    return [1e4, 1e30, big]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "softplus", "elu", "tanh", "arctan", "relu", "leaky_relu",
                                  "prelu", "identity", "binary_step"])
def test_activation_at_huge_inputs_is_finite_and_correct(name, dtype):
    for v in huge_values(dtype):
        Z = np.array([[v, -v]], dtype=dtype)
        alpha = alpha_for(name, 2, dtype)
        A = _core.activation_forward(ACT_ID[name], Z, alpha)
        assert np.all(np.isfinite(A)), (name, v, A)
        al = ACT_DEFAULT[name]
        want = {
            "sigmoid": [1.0, 0.0],
            "softplus": [v, 0.0],
            "elu": [v, -al],
            "tanh": [1.0, -1.0],
            "arctan": [np.arctan(v), -np.arctan(v)],
            "relu": [v, 0.0],
            "leaky_relu": [v, -al * v],
            "prelu": [v, -al * v],
            "identity": [v, -v],
            "binary_step": [1.0, 0.0],
        }[name]
        assert_close(A, np.array([want]), dtype, err_msg=f"{name} at +-{v}")
        dA = np.ones_like(Z)
        dZ = _core.activation_backward(ACT_ID[name], Z, A, dA, alpha)
        assert np.all(np.isfinite(dZ)), (name, v, dZ)
        dwant = {
            "sigmoid": [0.0, 0.0], "softplus": [1.0, 0.0], "elu": [1.0, 0.0], "tanh": [0.0, 0.0],
            "arctan": [0.0, 0.0], "relu": [1.0, 0.0], "leaky_relu": [1.0, al], "prelu": [1.0, al],
            "identity": [1.0, 1.0], "binary_step": [0.0, 0.0],
        }[name]
        np.testing.assert_allclose(dZ, np.array([dwant]), atol=1e-6 if v == 1e4 else 1e-20,
                                   err_msg=f"{name}' at +-{v}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_is_clipped_below_overflow_and_its_derivative_is_the_output(dtype):
    """exp's argument is clipped at 88 (float32) / 709 (float64), just under
    ln(max): e^z stays finite for every z, e^-huge is 0, and sigma' = A."""
    clip = 88.0 if dtype == np.float32 else 709.0
    none = np.zeros(0, dtype)
    for v in huge_values(dtype) + [clip, clip + 1]:
        Z = np.array([[v, -v]], dtype=dtype)
        A = _core.activation_forward(ACT_ID["exp"], Z, none)
        assert np.all(np.isfinite(A)), (v, A)
        np.testing.assert_allclose(A, [[np.exp(min(v, clip)), np.exp(-v)]], rtol=4 * np.finfo(dtype).eps,
                                   atol=float(np.finfo(dtype).tiny))  # e^-88 is subnormal in float32
        assert_close(A, ref.activation_forward("exp", Z), dtype)
        dZ = _core.activation_backward(ACT_ID["exp"], Z, A, np.ones_like(Z), none)
        np.testing.assert_array_equal(dZ, A)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_loss_by_hand_and_at_a_zero_prediction(dtype):
    """Half the Poisson deviance, y ln(y / Yhat) - y + Yhat with 0 ln 0 = 0;
    Yhat = 0 (an exp that underflowed) is clipped at the dtype's eps, so the
    value and the gradient stay finite."""
    Y = np.array([[0.0, 2.0], [3.0, 1.0]], dtype=dtype)
    P = np.array([[0.5, 1.0], [3.0, 4.0]], dtype=dtype)
    want = 0.5 + (2 * np.log(2.0) - 2 + 1) + 0.0 + (np.log(0.25) - 1 + 4)
    np.testing.assert_allclose(_core.loss_forward(LOSS_ID["poisson"], Y, P), want, rtol=1e-6)
    np.testing.assert_allclose(_core.loss_backward(LOSS_ID["poisson"], Y, P, 1.0), 1 - Y / P, rtol=1e-6)
    Z = np.array([[1.0, 0.0]], dtype=dtype)
    zero = np.array([[0.0, 0.0]], dtype=dtype)
    eps = float(np.finfo(dtype).eps)
    J = _core.loss_forward(LOSS_ID["poisson"], Z, zero)
    np.testing.assert_allclose(J, -np.log(eps) - 1 + eps, rtol=1e-6)
    g = _core.loss_backward(LOSS_ID["poisson"], Z, zero, 1.0)
    assert np.all(np.isfinite(g))
    assert_close(g, ref.loss_backward("poisson", Z, zero, 1.0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (67, 129), (300, 37)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fused_exp_poisson_equals_generic_chain(weighted, shape, dtype, rng):
    """dZ = (Yhat - Y) / n: the generic path (1 - Y / Yhat) * Yhat agrees."""
    Y = rng.poisson(2.0, size=shape).astype(dtype)
    Z = rng.uniform(-3, 3, size=shape).astype(dtype)
    none = np.zeros(0, dtype)
    A = _core.activation_forward(ACT_ID["exp"], Z, none)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    scale = 1.0 / shape[0]
    dA = _core.loss_backward(LOSS_ID["poisson"], Y, A, scale, w)
    generic = _core.activation_backward(ACT_ID["exp"], Z, A, dA, none)
    fused = _core.output_backward_fused(Y, A, scale, w)
    assert_close(generic, fused, dtype, scale=scale * 20 * (2.0 if weighted else 1.0), factor=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(300, 1), (50, 3), (7, 33)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_unweighted_output_gradients_have_the_row_by_row_bits(shape, dtype, rng):
    """Without row weights the loss gradient and the fused output gradient
    take all rows as one run; with row weights of one they go row by row
    through the same formula (scale * 1 is scale): the same bits, for every
    loss, on one output, a few and many."""
    Y = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    P = rng.uniform(0.05, 0.95, size=shape).astype(dtype)
    ones = np.ones(shape[0], dtype)
    for loss in LOSS_NAMES:
        np.testing.assert_array_equal(_core.loss_backward(LOSS_ID[loss], Y, P, 0.3),
                                      _core.loss_backward(LOSS_ID[loss], Y, P, 0.3, ones), err_msg=loss)
    np.testing.assert_array_equal(_core.output_backward_fused(Y, P, 0.3), _core.output_backward_fused(Y, P, 0.3, ones))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_at_huge_inputs_is_finite_and_correct(dtype):
    for v in huge_values(dtype):
        Z = np.array([[v, -v, 0.0], [v, v, -v], [-v, -v, -v], [v, v - 1, -v]], dtype=dtype)
        A = _core.activation_forward(ACT_ID["softmax"], Z, np.zeros(0, dtype))
        assert np.all(np.isfinite(A)), (v, A)
        want = ref.activation_forward("softmax", Z.astype(np.float64))
        assert_close(A, want, dtype, err_msg=f"softmax at +-{v}")
        np.testing.assert_allclose(A[:3], [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
        dZ = _core.activation_backward(ACT_ID["softmax"], Z, A, np.ones_like(Z), np.zeros(0, dtype))
        assert np.all(np.isfinite(dZ))
        np.testing.assert_allclose(dZ, 0, atol=1e-6)  # a constant dA does not move softmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["bce", "cce"])
def test_loss_with_saturated_prediction_is_finite_and_clipped_at_eps(loss, dtype):
    """Yhat exactly 0 or 1 on the wrong class costs -ln(eps) (eps = the dtype's
    epsilon, see cpp/nn/losses.hpp), and the gradients stay finite."""
    eps = np.finfo(dtype).eps
    if loss == "cce":
        Y = np.array([[1, 0, 0], [0, 1, 0]], dtype=dtype)
        P = np.array([[0, 1, 0], [0, 1, 0]], dtype=dtype)  # row 0 wrong and saturated, row 1 right
        want = -np.log(eps) - np.log(1 - eps)
    else:
        Y = np.array([[1, 0], [0, 1]], dtype=dtype)
        P = np.array([[0, 1], [0, 1]], dtype=dtype)  # row 0 wrong twice, row 1 right twice
        want = -2 * np.log(eps) - 2 * np.log1p(-eps)
    J = _core.loss_forward(LOSS_ID[loss], Y, P)
    assert np.isfinite(J)
    np.testing.assert_allclose(J, want, rtol=1e-6)
    np.testing.assert_allclose(J, ref.loss_forward(loss, Y, P), rtol=1e-6)
    g = _core.loss_backward(LOSS_ID[loss], Y, P, 0.5)
    assert np.all(np.isfinite(g))
    assert_close(g, ref.loss_backward(loss, Y, P, 0.5), dtype)
    fused = _core.output_backward_fused(Y, P, 0.5)
    np.testing.assert_array_equal(fused, 0.5 * (P - Y))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_loss_forward_matches_reference(loss, weighted, shape, dtype, rng):
    Y, P = valid_targets(loss, rng, shape, dtype)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    J = _core.loss_forward(LOSS_ID[loss], Y, P, w)
    expected = ref.loss_forward(loss, Y, P, w)
    # accumulated in double on both sides: only the float32 inputs' log differ
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(J, expected, rtol=rtol)


def test_bce_loss_term_by_term_to_round_off():
    """Each bce term, one 1 x 1 call at a time, against NumPy's log and log1p
    in float64: the vector logs (log1p(-q) from log(1 - q) and its rounding
    error) stay within a few ulp from q = eps, where log(1 - q) alone can be
    off by a third (and at 1e-12 in the fifth digit), up to 1 - eps."""
    eps = np.finfo(np.float64).eps
    qs = np.concatenate([np.geomspace(eps, 0.5, 300), 1 - np.geomspace(eps, 0.5, 300), [0.5, 1 - eps]])
    worst = 0.0
    for y in (0.0, 1.0, 0.3):
        for q in qs:
            J = _core.loss_forward(LOSS_ID["bce"], np.array([[y]]), np.array([[q]]))
            want = -(y * np.log(q) + (1 - y) * np.log1p(-q))
            worst = max(worst, abs(J - want) / abs(want))
    assert worst <= 1e-15, worst


# Widths about the vector log's 256-entry buffer and 64-column narrow rows
# (cpp/nn/losses.cpp: vlog_rows_loss), and output layers of 1000+ units.
VLOG_WIDTHS = [1, 63, 64, 65, 255, 256, 257, 511, 513, 1000, 3000]
VLOG_TABLES = [k for k in ("generic", "avx2", "avx512") if _core.gemm_kernel_supported(k)]


def on_each_table(f):
    """{table: f()} with each vector-maths table this CPU runs forced in turn."""
    previous = _core.gemm_kernel_name()
    try:
        out = {}
        for t in VLOG_TABLES:
            assert _core.gemm_set_kernel(t) == t
            out[t] = f()
        return out
    finally:
        _core.gemm_set_kernel(previous)


def wide_loss_case(loss, rng, shape, dtype):
    """valid_targets with the extremes sprinkled in: bce predictions at 0, 1,
    eps and 1 - eps (clipped to [eps, 1 - eps]) and soft labels; poisson
    targets of 0 and 1e30 and predictions of 0 and 1e-30 (clipped to eps)
    and 1e30 (all finite for the reference in both dtypes)."""
    Y, P = valid_targets(loss, rng, shape, dtype)
    eps = np.finfo(dtype).eps
    flat_p, flat_y = P.reshape(-1), Y.reshape(-1)
    if loss == "bce":
        for k, v in enumerate([0.0, 1.0, eps, 1 - eps]):
            flat_p[k::7] = v
        flat_y[3::5] = 0.25
    else:
        flat_y[::6] = 0
        flat_y[1::11] = 1e30
        for k, v in enumerate([0.0, 1e-30, 1e30]):
            flat_p[2 * k::13] = v
    return Y, P


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss", ["bce", "poisson"])
def test_bce_and_poisson_loss_of_wide_rows_matches_reference(loss, weighted, dtype, rng):
    """Rows about the vector log's buffer and wider than it, which go through
    it a column chunk at a time, at the clip extremes: as close to the
    reference as narrow rows are."""
    rtol = 1e-6 if dtype == np.float32 else 1e-12  # as test_loss_forward_matches_reference
    for m, n in [(5, n) for n in VLOG_WIDTHS] + [(300, 1000)]:
        Y, P = wide_loss_case(loss, rng, (m, n), dtype)
        w = rng.uniform(0.1, 2.0, size=m).astype(dtype) if weighted else None
        J = _core.loss_forward(LOSS_ID[loss], Y, P, w)
        np.testing.assert_allclose(J, ref.loss_forward(loss, Y, P, w), rtol=rtol, err_msg=f"{m} x {n}")


def test_poisson_loss_where_y_over_yhat_is_no_normal_number():
    """float64 y / Yhat underflowing (5e-324 / 2), overflowing (1e300 /
    1e-10, 1e300 / 0 clipped to eps) or subnormal (1e-300 / 1e10) inside rows
    the vector log takes a chunk at a time: those entries take the scalar
    log, y (ln y - ln Yhat) where the quotient is 0 or inf, as narrow rows do
    (the reference's own log(y / Yhat) is -inf or inf there)."""
    pairs = [(5e-324, 2.0), (1e300, 1e-10), (1e300, 0.0), (1e-300, 1e10), (0.0, 1e-300)]
    eps = float(np.finfo(np.float64).eps)

    def term(y, p):
        y, q = float(y), max(float(p), eps)
        r = y / q
        ylog = 0.0 if y == 0 else y * math.log(r) if 0 < r < math.inf else y * (math.log(y) - math.log(q))
        return ylog - y + q

    for n in [1, 64, 257, 1000]:
        Y = np.full((2, n), 3.0)
        P = np.full((2, n), 2.5)
        for k, (y, p) in enumerate(pairs):
            Y.flat[k * (2 * n) // len(pairs)] = y
            P.flat[k * (2 * n) // len(pairs)] = p
        want = math.fsum(term(y, p) for y, p in zip(Y.flat, P.flat))
        J = _core.loss_forward(LOSS_ID["poisson"], Y, P)
        assert np.isfinite(J) and abs(J - want) <= 1e-12 * abs(want), (n, J, want)


def entry_by_entry(loss, Y, P, w):
    """sum over rows of w_i J_i as loss_forward adds it (rows in order, one
    block: m <= 256), with J_i the row's entries, each from a 1 x 1 call,
    added in column order."""
    s = 0.0
    for i in range(Y.shape[0]):
        r = 0.0
        for j in range(Y.shape[1]):
            r += _core.loss_forward(LOSS_ID[loss], Y[i:i + 1, j:j + 1], P[i:i + 1, j:j + 1])
        s += (1.0 if w is None else float(w[i])) * r
    return s


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["bce", "poisson"])
def test_bce_and_poisson_rows_sum_the_terms_of_narrow_rows_at_any_width(loss, dtype, rng):
    """A row's value, however wide, is its entries' terms, each the bits a
    1 x 1 call gives, added in column order: the same bits as a buffer as
    large as the row would give, on every table."""
    for n in VLOG_WIDTHS:
        Y, P = wide_loss_case(loss, rng, (3, n), dtype)
        if loss == "poisson" and dtype == np.float64:  # quotients that take the scalar log
            k = min(n, 3)
            Y[0, -k:], P[0, -k:] = [5e-324, 1e300, 1e-300][:k], [2.0, 1e-10, 1e10][:k]
        w = rng.uniform(0.1, 2.0, size=3).astype(dtype)
        got = on_each_table(lambda: (_core.loss_forward(LOSS_ID[loss], Y, P, w), entry_by_entry(loss, Y, P, w)))
        for t, (J, want) in got.items():
            assert J == want, f"{loss} width {n} on {t}: {J!r} != {want!r}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["bce", "poisson"])
def test_each_entry_of_a_wide_row_costs_what_it_costs_alone(loss, dtype):
    """One entry from a sweep of predictions, at columns in every chunk, in a
    row whose other entries cost next to nothing (bce: y = 1, Yhat = 1;
    poisson: y = 0, Yhat = 0, both clipped): the row's value shows every bit
    of that entry's term, which must be the bits of a 1 x 1 call."""
    eps = float(np.finfo(dtype).eps)
    xs = np.geomspace(eps, 1 - eps, 60).astype(dtype)
    fill_y, fill_p = (1.0, 1.0) if loss == "bce" else (0.0, 0.0)
    alone = lambda y, p: _core.loss_forward(LOSS_ID[loss], np.array([[y]], dtype), np.array([[p]], dtype))

    def run():
        bad = []
        v_fill = alone(fill_y, fill_p)
        for n in VLOG_WIDTHS:
            for k, x in enumerate(xs):
                y = float(k % 2) if loss == "bce" else 3.0
                c = (k * 37) % n
                Y, P = np.full((1, n), fill_y, dtype), np.full((1, n), fill_p, dtype)
                Y[0, c], P[0, c] = y, x
                v = alone(y, x)
                want = 0.0
                for j in range(n):
                    want += v if j == c else v_fill
                if _core.loss_forward(LOSS_ID[loss], Y, P) != want:
                    bad.append((n, c, float(x)))
        return bad

    for t, bad in on_each_table(run).items():
        assert not bad, f"{loss} on {t}: {len(bad)} entries, first (width, column, Yhat) {bad[0]}"


def test_every_loss_takes_the_same_vector_log():
    """bce's log q and poisson's log(y / q) are cce's log, bit for bit: one
    entry each, y / q = x for poisson (q = 1), on every table."""
    eps = np.finfo(np.float64).eps
    xs = np.concatenate([np.geomspace(eps, 0.5, 400), np.linspace(0.5, 1 - eps, 101)])
    one = np.ones((1, 1))

    def run():
        out = []
        for x in xs:
            X = np.array([[x]])
            log_x = -_core.loss_forward(LOSS_ID["cce"], one, X)
            out.append((log_x, _core.loss_forward(LOSS_ID["bce"], one, X),
                        _core.loss_forward(LOSS_ID["poisson"], X, one)))
        return out

    for t, out in on_each_table(run).items():
        for x, (log_x, bce, poisson) in zip(xs, out):
            assert bce == -log_x, (t, x)
            assert poisson == (x * log_x - x) + 1.0, (t, x)


def narrow_bce_case(n, dtype):
    """300 x n fixed values (no random stream): soft labels 0, 1/4 .. 1 and
    predictions in (0, 1) with 0 and 1 among them, row weights."""
    i, j = np.arange(300)[:, None], np.arange(n)[None, :]
    P = ((i * 131 + j * 71) % 1009 + 0.5) / 1009
    P[(i + j) % 11 == 0] = 0.0
    P[(i + 2 * j) % 13 == 0] = 1.0
    Y = ((i * 7 + j * 3) % 5) / 4
    w = 0.5 + (np.arange(300) % 13) / 8
    return Y.astype(dtype), P.astype(dtype), w.astype(dtype)


# bce of narrow_bce_case as the narrow rows' vector log gave it before rows
# of any width took that path (the same on every table for these values).
NARROW_BCE_BITS = {
    ("float32", 1): "0x1.6135671d49fe1p+9",
    ("float32", 3): "0x1.36fe1d3a3a756p+11",
    ("float32", 10): "0x1.f86b3ffcaf5bbp+12",
    ("float32", 64): "0x1.8cf04dcf9e0eap+15",
    ("float64", 1): "0x1.2af07a27ffa87p+10",
    ("float64", 3): "0x1.16da262eef28ap+12",
    ("float64", 10): "0x1.bfd7ef387b114p+13",
    ("float64", 64): "0x1.5e089fea1d4a3p+16",
}


@pytest.mark.parametrize("case", sorted(NARROW_BCE_BITS), ids=lambda c: f"{c[0]}-{c[1]}")
def test_narrow_bce_rows_keep_their_bits(case):
    """Rows up to 64 wide keep the bits they had (recorded values): a fit's
    cost history on a narrow bce model does not move."""
    dtype, n = case
    Y, P, w = narrow_bce_case(n, np.dtype(dtype))
    got = on_each_table(lambda: _core.loss_forward(LOSS_ID["bce"], Y, P, w))
    for t, J in got.items():
        assert J.hex() == NARROW_BCE_BITS[case], f"{dtype} width {n} on {t}: {J.hex()}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_loss_backward_matches_reference(loss, weighted, shape, dtype, rng):
    Y, P = valid_targets(loss, rng, shape, dtype)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    scale = 1.0 / shape[0]
    g = _core.loss_backward(LOSS_ID[loss], Y, P, scale, w)
    expected = ref.loss_backward(loss, Y, P, scale, w)
    assert g.dtype == dtype
    assert_close(g, expected, dtype)


def test_loss_values_by_hand():
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    P = np.array([[0.8, 0.2], [0.4, 0.6]])
    np.testing.assert_allclose(_core.loss_forward(LOSS_ID["sse"], Y, P), 0.5 * (0.04 + 0.04 + 0.16 + 0.16))
    np.testing.assert_allclose(_core.loss_forward(LOSS_ID["mse"], Y, P), (0.08 + 0.32) / 2)
    np.testing.assert_allclose(_core.loss_forward(LOSS_ID["cce"], Y, P), -np.log(0.8) - np.log(0.6))
    np.testing.assert_allclose(_core.loss_forward(LOSS_ID["bce"], Y, P),
                               -2 * np.log(0.8) - 2 * np.log(0.6))
    w = np.array([2.0, 0.5])
    np.testing.assert_allclose(_core.loss_forward(LOSS_ID["cce"], Y, P, w),
                               -2 * np.log(0.8) - 0.5 * np.log(0.6))
    np.testing.assert_allclose(_core.loss_backward(LOSS_ID["mse"], Y, P, 1.0), 2 * (P - Y) / 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_output_backward_fused_matches_reference(weighted, shape, dtype, rng):
    Y, P = valid_targets("cce", rng, shape, dtype)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    g = _core.output_backward_fused(Y, P, 0.25, w)
    assert_close(g, ref.output_backward_fused(Y, P, 0.25, w), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2), (7, 13), (67, 129), (300, 37)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fused_softmax_cce_equals_generic_chain(weighted, shape, dtype, rng):
    """output_backward_fused == activation_backward(softmax, loss_backward(cce))."""
    labels = rng.integers(0, shape[1], size=shape[0])
    Y = np.zeros(shape, dtype=dtype)
    Y[np.arange(shape[0]), labels] = 1
    Z = rng.standard_normal(shape).astype(dtype)
    none = np.zeros(0, dtype)
    A = _core.activation_forward(ACT_ID["softmax"], Z, none)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    scale = 1.0 / shape[0]
    dA = _core.loss_backward(LOSS_ID["cce"], Y, A, scale, w)
    generic = _core.activation_backward(ACT_ID["softmax"], Z, A, dA, none)
    fused = _core.output_backward_fused(Y, A, scale, w)
    # the generic path divides by A and multiplies back: a few ulps per entry
    assert_close(generic, fused, dtype, scale=scale * (2.0 if weighted else 1.0), factor=4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 2), (7, 13), (67, 129)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fused_softmax_cce_with_row_sums_equals_generic_chain_for_any_targets(weighted, shape, dtype, rng):
    """row_sum: Yhat * rowsum(Y) - Y, the softmax's Jacobian applied to cce's
    gradient for any non-negative Y (without it, only rows summing to 1);
    the same bits as without it where a row sums to exactly 1."""
    Y = (rng.random(shape) * (rng.random(shape) < 0.5)).astype(dtype)  # zeros, and rows of any sum
    Y[0] = 0
    Z = rng.standard_normal(shape).astype(dtype)
    none = np.zeros(0, dtype)
    A = _core.activation_forward(ACT_ID["softmax"], Z, none)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    scale = 1.0 / shape[0]
    dA = _core.loss_backward(LOSS_ID["cce"], Y, A, scale, w)
    generic = _core.activation_backward(ACT_ID["softmax"], Z, A, dA, none)
    fused = _core.output_backward_fused(Y, A, scale, w, row_sum=True)
    assert_close(generic, fused, dtype, scale=scale * (2.0 if weighted else 1.0) * shape[1], factor=8)
    assert_close(fused, ref.output_backward_fused(Y, A, scale, w, row_sum=True), dtype,
                 scale=scale * (2.0 if weighted else 1.0))
    one_hot = np.zeros(shape, dtype)
    one_hot[np.arange(shape[0]), rng.integers(0, shape[1], size=shape[0])] = 1
    assert (_core.output_backward_fused(one_hot, A, scale, w, row_sum=True).tobytes()
            == _core.output_backward_fused(one_hot, A, scale, w).tobytes())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (67, 129), (300, 37)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fused_sigmoid_bce_equals_generic_chain_when_not_saturated(weighted, shape, dtype, rng):
    Y = (rng.random(shape) < 0.5).astype(dtype)
    Z = rng.uniform(-4, 4, size=shape).astype(dtype)  # sigmoid in (0.018, 0.982)
    none = np.zeros(0, dtype)
    A = _core.activation_forward(ACT_ID["sigmoid"], Z, none)
    w = rng.uniform(0.1, 2.0, size=shape[0]).astype(dtype) if weighted else None
    scale = 1.0 / shape[0]
    dA = _core.loss_backward(LOSS_ID["bce"], Y, A, scale, w)
    generic = _core.activation_backward(ACT_ID["sigmoid"], Z, A, dA, none)
    fused = _core.output_backward_fused(Y, A, scale, w)
    assert_close(generic, fused, dtype, scale=scale * (2.0 if weighted else 1.0), factor=10)


# ---------------------------------------------------------------------------
# Linear layer, dense (fused epilogue) ops, column sums, sgd
# ---------------------------------------------------------------------------

# (n, m_in, m_out); the last spans several cache blocks of any blocked GEMM in every dimension
LINEAR_SHAPES = [(1, 1, 1), (1, 5, 3), (7, 13, 5), (67, 129, 33), (300, 37, 71), (131, 259, 517)]


def linear_inputs(rng, n, mi, mo, dtype):
    A = rng.standard_normal((n, mi)).astype(dtype)
    W = (rng.standard_normal((mi, mo)) / np.sqrt(mi)).astype(dtype)
    b = rng.standard_normal((1, mo)).astype(dtype)
    return A, W, b


def gemm_scale(X, Y):
    """max over entries of sum_k |X_ik||Y_kj|: the size of the terms summed."""
    return float(np.max(np.abs(X.astype(np.float64)) @ np.abs(Y.astype(np.float64))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,mi,mo", LINEAR_SHAPES)
def test_linear_forward_matches_reference(n, mi, mo, dtype, rng):
    A, W, b = linear_inputs(rng, n, mi, mo, dtype)
    Z = _core.linear_forward(A, W, b)
    assert Z.shape == (n, mo) and Z.dtype == dtype
    expected = ref.linear_forward(A.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    assert_close(Z, expected, dtype, scale=gemm_scale(A, W) + np.max(np.abs(b)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,mi,mo", LINEAR_SHAPES)
def test_linear_backward_matches_reference(n, mi, mo, dtype, rng):
    A, W, _ = linear_inputs(rng, n, mi, mo, dtype)
    dZ = rng.standard_normal((n, mo)).astype(dtype)
    dW, db, dA = _core.linear_backward(A, W, dZ)
    eW, eb, eA = ref.linear_backward(A.astype(np.float64), W.astype(np.float64), dZ.astype(np.float64))
    assert dW.shape == (mi, mo) and db.shape == (1, mo) and dA.shape == (n, mi)
    assert_close(dW, eW, dtype, scale=gemm_scale(A.T, dZ))
    assert_close(db, eb, dtype, scale=float(np.max(np.abs(dZ).sum(axis=0))))
    assert_close(dA, eA, dtype, scale=gemm_scale(dZ, W.T))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,mi,mo", LINEAR_SHAPES)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_dense_forward_equals_linear_then_activation(name, n, mi, mo, dtype, rng):
    """Bias and activation fused in the GEMM epilogue == linear_forward then the activation."""
    A, W, b = linear_inputs(rng, n, mi, mo, dtype)
    alpha = alpha_for(name, mo, dtype, rng=rng)
    Z, Aout = _core.dense_forward(A, W, b, ACT_ID[name], alpha)
    Zref = ref.linear_forward(A.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    s = gemm_scale(A, W) + np.max(np.abs(b))
    assert_close(Z, Zref, dtype, scale=s)
    # the activation of the op's own Z: exact same inputs for both
    assert_close(Aout, ref.activation_forward(name, Z, ref_alpha(name, alpha)), dtype)
    if name not in ("binary_step",):  # away from its jump, sigma(Z) is close to sigma(Zref)
        Aref = ref.activation_forward(name, Zref, None if alpha.size == 0 else
                                      (alpha.astype(np.float64) if name == "prelu" else float(alpha[0])))
        assert_close(Aout, Aref, dtype, scale=max(s, 1.0), factor=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,mi,mo", LINEAR_SHAPES)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_dense_backward_input_equals_matmul_then_derivative(name, n, mi, mo, dtype, rng):
    """dZ_prev = (dZ W^T) (.) sigma'(Z_prev), the derivative fused in the GEMM epilogue."""
    _, W, _ = linear_inputs(rng, n, mi, mo, dtype)
    dZ = rng.standard_normal((n, mo)).astype(dtype)
    Z_prev = random_Z(rng, (n, mi), dtype)
    alpha = alpha_for(name, mi, dtype, rng=rng)
    A_prev = ref.activation_forward(name, Z_prev, ref_alpha(name, alpha)).astype(dtype)
    D = _core.dense_backward_input(dZ, W, Z_prev, A_prev, ACT_ID[name], alpha)
    dA = _core.linear_backward(np.zeros((n, mi), dtype), W, dZ)[2]
    expected = ref.activation_backward(name, Z_prev, A_prev, dA.astype(np.float64),
                                       None if alpha.size == 0 else
                                       (alpha.astype(np.float64) if name == "prelu" else float(alpha[0])))
    assert D.shape == (n, mi)
    # sigma' scales the GEMM's round-off: up to e^|Z| for exp, at most ~1 for the others
    ones = np.ones_like(Z_prev)
    deriv = ref.activation_backward(name, Z_prev, A_prev, ones, None if alpha.size == 0 else ref_alpha(name, alpha))
    scale = gemm_scale(dZ, W.T) * max(1.0, float(np.max(np.abs(deriv))))
    assert_close(D, expected, dtype, scale=scale)
    dA_ref = dZ.astype(np.float64) @ W.astype(np.float64).T
    expected2 = ref.activation_backward(name, Z_prev.astype(np.float64), A_prev.astype(np.float64), dA_ref,
                                        None if alpha.size == 0 else
                                        (alpha.astype(np.float64) if name == "prelu" else float(alpha[0])))
    assert_close(D, expected2, dtype, scale=scale, factor=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(1000, 3), (2, 500)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_column_sums_matches_numpy(shape, dtype, rng):
    X = rng.standard_normal(shape).astype(dtype)
    s = _core.column_sums(X)
    assert s.shape == (1, shape[1]) and s.dtype == dtype
    assert_close(s, X.astype(np.float64).sum(axis=0, keepdims=True), dtype,
                 scale=float(np.max(np.abs(X).sum(axis=0))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 7, 129, 300 * 37 + 1, 250001])
def test_sgd_update_in_place_matches_reference(size, dtype, rng):
    P = rng.standard_normal(size).astype(dtype)
    G = rng.standard_normal(size).astype(dtype)
    expected = P.copy()
    ref.sgd_update(expected, G, 0.05)
    before = P.copy()
    out = _core.sgd_update(P, G, 0.05)
    assert out is None
    assert not np.array_equal(P, before)  # updated in place
    assert_close(P, expected, dtype, scale=float(np.max(np.abs(before))))


def test_ops_keep_float32_and_float64_apart(rng):
    """Each dtype runs its own kernel: float32 inputs give float32 outputs."""
    for dtype in DTYPES:
        Z = rng.standard_normal((3, 4)).astype(dtype)
        assert _core.activation_forward(ACT_ID["tanh"], Z, np.zeros(0, dtype)).dtype == dtype
        assert _core.column_sums(Z).dtype == dtype
