"""Every activation and loss at the edges of each dtype.

Inputs: +-finfo.max, +-tiny, the smallest subnormal, 0, -0.0, the exp
overflow threshold +-(ln(max) + 1), +-sqrt(max) (where z*z overflows), and
ordinary values. The single C++ ops (standalone and inside the GEMM epilogue)
must give finite values equal to dnnfast.reference, which must itself be
finite there and raise no overflow warning; bce and cce take Yhat at exactly
0 and 1 (and outside [0, 1]) through their clipping.

The one value that cannot be finite: the sse / mse cost of a float64
prediction near finfo.max, whose square is beyond the range of double; it is
inf in both implementations. Its gradient stays finite.
"""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast
from dnnfast import _core
from dnnfast import reference as ref

from conftest import ACT_DEFAULT, ACT_ID, ACTIVATION_NAMES, DTYPES, LOSS_ID, TOL

ELEMENTWISE = [n for n in ACTIVATION_NAMES if n != "softmax"]


def extremes(dtype):
    fi = np.finfo(dtype)
    big_exp = float(np.log(fi.max)) + 1
    vals = [fi.max, -fi.max, fi.tiny, -fi.tiny, fi.smallest_subnormal, 0.0, -0.0, 1.0, -1.0,
            big_exp, -big_exp, np.sqrt(fi.max) * 2, -np.sqrt(fi.max) * 2, 1e4, -1e4, 30.0, -30.0]
    return np.array([vals], dtype=dtype)


def alpha_of(name, m, dtype):
    if name == "prelu":
        return np.full(m, ACT_DEFAULT[name], dtype=dtype)
    if name in ("leaky_relu", "elu"):
        return np.array([ACT_DEFAULT[name]], dtype=dtype)
    return np.zeros(0, dtype=dtype)


def ref_alpha(name, alpha):
    return None if alpha.size == 0 else (alpha if name == "prelu" else alpha[0])


def assert_equal_within_tol(got, want, dtype, what):
    """Same values to the dtype's op tolerance; tiny subnormal differences allowed."""
    assert np.all(np.isfinite(want)), f"reference not finite: {what}"
    assert np.all(np.isfinite(got)), f"C++ not finite: {what}: {got}"
    np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"], atol=float(np.finfo(dtype).tiny),
                               err_msg=what)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_activation_and_derivative_at_the_dtype_edges(name, dtype):
    Z = extremes(dtype)
    alpha = alpha_of(name, Z.shape[1], dtype)
    A = _core.activation_forward(ACT_ID[name], Z, alpha)
    assert_equal_within_tol(A, ref.activation_forward(name, Z, ref_alpha(name, alpha)), dtype, f"{name}")
    dA = np.ones_like(Z)
    dZ = _core.activation_backward(ACT_ID[name], Z, A, dA, alpha)
    assert_equal_within_tol(dZ, ref.activation_backward(name, Z, A, dA, ref_alpha(name, alpha)), dtype,
                            f"{name}'")
    # the limits at +-max, by hand
    al = ACT_DEFAULT[name]
    mx = float(np.finfo(dtype).max)
    e_clip = np.exp(88.0 if dtype == np.float32 else 709.0)
    want = {
        "identity": ([mx, -mx], [1, 1]), "relu": ([mx, 0], [1, 0]), "leaky_relu": ([mx, -al * mx], [1, al]),
        "prelu": ([mx, -al * mx], [1, al]), "elu": ([mx, -al], [1, 0]), "sigmoid": ([1, 0], [0, 0]),
        "tanh": ([1, -1], [0, 0]), "arctan": ([np.pi / 2, -np.pi / 2], [0, 0]), "softplus": ([mx, 0], [1, 0]),
        "binary_step": ([1, 0], [0, 0]),
        # exp's argument is clipped at 88 (float32) / 709 (float64); sigma' = A
        "exp": ([e_clip, 0], [e_clip, 0]),
    }[name]
    np.testing.assert_allclose(A[0, :2], want[0], rtol=TOL[dtype]["rtol"])
    np.testing.assert_allclose(dZ[0, :2], want[1], rtol=TOL[dtype]["rtol"], atol=1e-30)
    # at 0 and -0.0: the sign of zero changes nothing but the identity's
    np.testing.assert_array_equal(np.abs(A[0, 5]), np.abs(A[0, 6]))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_in_the_gemm_epilogue_at_the_dtype_edges(name, dtype):
    """dense_forward / dense_backward_input apply the same functions inside the
    GEMM: with W = I and b = 0, Z is the input and A must be sigma(Z)."""
    A_in = extremes(dtype)
    k = A_in.shape[1]
    W = np.eye(k, dtype=dtype)
    alpha = alpha_of(name, k, dtype)
    Z, A = _core.dense_forward(A_in, W, np.zeros(k, dtype), ACT_ID[name], alpha)
    np.testing.assert_array_equal(Z, A_in)
    assert_equal_within_tol(A, ref.activation_forward(name, Z, ref_alpha(name, alpha)), dtype, name)
    D = _core.dense_backward_input(np.ones((1, k), dtype), W, Z, A, ACT_ID[name], alpha)
    assert_equal_within_tol(D, ref.activation_backward(name, Z, A, np.ones_like(Z), ref_alpha(name, alpha)),
                            dtype, f"{name}'")


def softmax_rows(dtype):
    fi = np.finfo(dtype)
    mx, t = fi.max, fi.tiny
    return np.array([[mx, -mx, 0.0], [mx, mx, -mx], [-mx, -mx, -mx], [t, -t, 0.0], [0.0, -0.0, 0.0],
                     [mx, mx / 2, -mx / 2], [1e4, -1e4, 1.0], [-mx, 0.0, -mx]], dtype=dtype)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_its_jvp_at_the_dtype_edges(dtype):
    Z = softmax_rows(dtype)
    none = np.zeros(0, dtype)
    A = _core.activation_forward(ACT_ID["softmax"], Z, none)
    assert_equal_within_tol(A, ref.activation_forward("softmax", Z), dtype, "softmax")
    np.testing.assert_allclose(A.sum(axis=1), 1, rtol=TOL[dtype]["rtol"])
    np.testing.assert_allclose(A[:3], [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=TOL[dtype]["rtol"])
    dA = np.tile(np.array([[1.0, -2.0, 0.5]], dtype), (Z.shape[0], 1))
    dZ = _core.activation_backward(ACT_ID["softmax"], Z, A, dA, none)
    assert_equal_within_tol(dZ, ref.activation_backward("softmax", Z, A, dA), dtype, "softmax'")


def predictions(dtype):
    """Yhat at and beyond the ends of [0, 1]."""
    fi = np.finfo(dtype)
    return np.array([0.0, 1.0, -0.0, fi.tiny, fi.smallest_subnormal, 1 - fi.epsneg / 2, fi.eps / 2, 0.5,
                     1.5, -0.5, fi.max, -fi.max], dtype=dtype)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["bce", "cce"])
def test_log_losses_clip_any_prediction(loss, dtype):
    p = predictions(dtype)
    # each prediction against target 1 and target 0 (bce: two columns; cce: the
    # prediction in column 0, the target class 0 or 1)
    P = np.column_stack([p, 1 - p]).astype(dtype) if loss == "cce" else np.column_stack([p, p]).astype(dtype)
    Y = np.tile(np.array([[1, 0]], dtype), (p.size, 1))
    for Yt in (Y, 1 - Y):
        J = _core.loss_forward(LOSS_ID[loss], Yt, P)
        J_ref = ref.loss_forward(loss, Yt, P)
        assert np.isfinite(J) and np.isfinite(J_ref)
        np.testing.assert_allclose(J, J_ref, rtol=1e-6)
        per_row_max = -np.log(np.finfo(dtype).eps) * 2
        assert J <= per_row_max * p.size  # the clip bounds every term by -ln(eps)
        g = _core.loss_backward(LOSS_ID[loss], Yt, P, 0.5)
        assert_equal_within_tol(g, ref.loss_backward(loss, Yt, P, 0.5), dtype, f"{loss} gradient")
        fused = _core.output_backward_fused(Yt, P, 0.5)
        assert np.all(np.isfinite(fused))
        np.testing.assert_array_equal(fused, ref.output_backward_fused(Yt, P, 0.5))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["sse", "mse"])
def test_squared_losses_at_the_dtype_edges(loss, dtype):
    fi = np.finfo(dtype)
    P = np.array([[fi.max, -fi.max, fi.tiny, 0.0, -0.0, np.sqrt(fi.max), 1.0]], dtype=dtype).T
    Y = np.zeros_like(P)
    J = _core.loss_forward(LOSS_ID[loss], Y, P)
    with np.errstate(over="ignore"):  # float64: max^2 is beyond double, inf in both
        J_ref = ref.loss_forward(loss, Y, P)
    if dtype == np.float32:
        assert np.isfinite(J)  # accumulated in double
    np.testing.assert_allclose(J, J_ref, rtol=1e-12)
    g = _core.loss_backward(LOSS_ID[loss], Y, P, 0.5)
    assert_equal_within_tol(g, ref.loss_backward(loss, Y, P, 0.5), dtype, f"{loss} gradient")
    # without the two entries at +-max the cost is finite in both dtypes
    J_ok = _core.loss_forward(LOSS_ID[loss], Y[2:], P[2:])
    assert np.isfinite(J_ok)
    np.testing.assert_allclose(J_ok, ref.loss_forward(loss, Y[2:], P[2:]), rtol=1e-12)


def test_poisson_cost_is_finite_when_y_over_yhat_underflows():
    """y = 5e-324, yhat = 2: y / yhat underflows to 0 and log(0) = -inf; the
    cost takes log(y) - log(yhat) there instead (found by test_properties)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # identity + poisson, on purpose
        net = dnnfast.Network([1, 1], ["identity"], loss="poisson", dtype="float64", seed=0)
    net.weights[0][:] = 1.0
    X, Y = np.array([[2.0]]), np.array([[5e-324]])
    c = net.cost(X, Y)
    expected = 5e-324 * (np.log(5e-324) - np.log(2.0)) - 5e-324 + 2.0
    assert np.isfinite(c) and abs(c - expected) <= 1e-15 * abs(expected)
