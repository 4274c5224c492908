"""Accuracy of the vector transcendental kernels (cpp/nn/vmath_impl.hpp)
against dnnfast.reference, over dense sweeps with the extremes, on every
kernel table this CPU can run; and that the tables with FMA (avx2, avx512)
give the same bits as each other. (generic, without FMA, rounds a b + c
twice: its own bits, within the same bounds.)

Error bounds (the promise; the maxima measured over these sweeps on an AMD
Zen 5, the same on the generic, avx2 and avx512 tables, are in brackets.
Since the avx2 and avx512 tables fuse multiply-adds, their maxima on an
Intel Xeon (Emerald Rapids) equal the generic table's there but for float32
elu, 0.77 ulp against 0.74, and arctan, 1.56 against 1.95):

  float32, in ulps of the correctly rounded result, against the reference
  evaluated in float64:  sigmoid 4 [2.25], tanh 4 [1.74*], softplus 4 [2.86],
  elu 4 [0.81], arctan 4 [1.95], exp 4 [0.66, Zen 4], softplus' (dA * sigmoid) 4 [2.79];
  softmax (rows of 10 to 3000, against the exact softmax of z - max as
  float32 rounds it) 4 [1.62]: exp, then the row sum in float64.
  float64, relative, against the reference in float64 (NumPy / libm, itself
  within about 1 ulp): 1e-15 for all of them [sigmoid 3.3e-16, tanh 3.2e-16*,
  softplus 6.6e-16, elu 2.2e-16, exp 2.2e-16 (Zen 4), softplus' 4.3e-16, softmax 6.4e-16 (rows
  of 10 to 3000, wider than 16 summed with compensation);
  arctan 2.2e-16 (on the AMD Zen 4)]; the cce loss's log (float64 for both
  dtypes) 1e-15 [2.2e-16]; the poisson loss's terms 2e-15 of their parts'
  magnitudes. (*: tanh since its expm1 goes through exp's
  reduction, measured on an Intel Xeon, Emerald Rapids; before, 1.79 ulp
  and 3.9e-16 there.)

Non-finite and limit values (+-inf, +-max, NaN) must equal the reference's.
"""
from __future__ import annotations

import numpy as np
import pytest

from dnnfast import _core
from dnnfast import reference as ref

from conftest import ACT_ID, LOSS_ID

TABLES = [k for k in ("generic", "avx2", "avx512") if _core.gemm_kernel_supported(k)]
# Tables whose kernels fuse a b + c (FMA) give the same bits as each other;
# generic, a multiply then an add, its own (vmath_impl.hpp).
FMA_TABLES = {"avx2", "avx512"}


def assert_same_bits_per_kind(outs, what):
    """Every FMA table the same bits as the first FMA table; generic alone."""
    fused = [t for t in outs if t in FMA_TABLES]
    for t in fused[1:]:
        np.testing.assert_array_equal(outs[t], outs[fused[0]], err_msg=f"{what}: {t} differs from {fused[0]}")
NAMES = ["sigmoid", "tanh", "softplus", "elu", "arctan", "exp"]
ULP_BOUND = 4.0           # float32
REL_BOUND = 1e-15         # float64


@pytest.fixture
def on_table():
    """Call f() with the named kernel table forced; the previous one restored."""
    previous = _core.gemm_kernel_name()

    def run(table, f):
        assert _core.gemm_set_kernel(table) == table
        try:
            return f()
        finally:
            _core.gemm_set_kernel(previous)
    yield run
    _core.gemm_set_kernel(previous)


def sweep(dtype):
    """Dense over [-40, 40], log-spaced magnitudes from the smallest subnormal
    to max (both signs), and the special values. Odd length: vector tails."""
    fi = np.finfo(dtype)
    lin = np.linspace(-40, 40, 160001)
    special = [0.0, -0.0, fi.max, -fi.max, np.inf, -np.inf, np.nan, fi.tiny, -fi.tiny,
               float(fi.smallest_subnormal), -float(fi.smallest_subnormal)]
    with np.errstate(over="ignore"):
        mags = np.geomspace(float(fi.smallest_subnormal), float(fi.max), 6001)
        return np.concatenate([lin, mags, -mags, special]).astype(dtype).reshape(1, -1)


def alpha(name, dtype):
    return np.array([1.0], dtype) if name == "elu" else np.zeros(0, dtype)


def check_bound(got, exact, dtype, what, ulps=None):
    """float32: ulps against the float64 value; float64: relative error.
    Non-finite expected values must match exactly (NaN as NaN)."""
    got = np.asarray(got)
    exact = np.asarray(exact, dtype=np.float64)
    fin = np.isfinite(exact)
    special_ok = (got[~fin] == exact[~fin]) | (np.isnan(got[~fin]) & np.isnan(exact[~fin]))
    assert special_ok.all(), f"{what}: non-finite mismatch at {np.flatnonzero(~fin)[~special_ok][:5]}"
    g, e = got[fin].astype(np.float64), exact[fin]
    assert np.isfinite(g).all(), f"{what}: non-finite output where the reference is finite"
    if dtype == np.float32:
        with np.errstate(over="ignore"):  # the spacing at float32's max is inf: error 0 there
            ulp = np.spacing(np.abs(e).astype(np.float32)).astype(np.float64)
        err = np.abs(g - e) / ulp
        assert err.max() <= (ulps or ULP_BOUND), f"{what}: {err.max():.2f} ulp at z index {np.argmax(err)}"
    else:
        err = np.abs(g - e) / np.maximum(np.abs(e), np.finfo(np.float64).tiny)
        assert err.max() <= REL_BOUND, f"{what}: relative error {err.max():.3g}"


def test_vmath_table_follows_the_gemm_kernel(on_table):
    want = {"generic": "generic", "avx2": "avx2", "avx512": "avx512"}
    for t in TABLES:
        assert on_table(t, _core.vmath_kernel) == want[t]
    assert on_table("generic512", _core.vmath_kernel) == "generic"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_forward_error_bound_every_table(name, dtype, on_table):
    Z = sweep(dtype)
    a = alpha(name, dtype)
    Z64 = Z.astype(np.float64)
    if name == "exp":  # the clip of the kernel's dtype (float32: 88), not float64's 709
        Z64 = np.minimum(Z64, 88.0 if dtype == np.float32 else 709.0)
    with np.errstate(all="ignore"):
        exact = ref.activation_forward(name, Z64, 1.0 if name == "elu" else None)
    outs = {t: on_table(t, lambda: _core.activation_forward(ACT_ID[name], Z, a)) for t in TABLES}
    for t, A in outs.items():
        assert A.dtype == dtype
        check_bound(A, exact, dtype, f"{name} {t}")
    assert_same_bits_per_kind(outs, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_backward_error_bound_every_table(dtype, on_table, rng):
    Z = sweep(dtype)
    dA = rng.uniform(0.5, 2.0, Z.shape).astype(dtype)
    A = np.zeros_like(Z)  # softplus' does not use A
    with np.errstate(all="ignore"):
        exact = ref.activation_backward("softplus", Z.astype(np.float64), A.astype(np.float64),
                                        dA.astype(np.float64))
    outs = {t: on_table(t, lambda: _core.activation_backward(ACT_ID["softplus"], Z, A, dA, alpha("", dtype)))
            for t in TABLES}
    for t, dZ in outs.items():
        check_bound(dZ, exact, dtype, f"softplus' {t}")
    assert_same_bits_per_kind(outs, "softplus'")


@pytest.mark.parametrize("width", [10, 16, 17, 37, 1000, 3000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_error_bound_every_table(dtype, width, on_table, rng):
    """Within the bound at any width: the row sum's error grows with the
    width where it is summed in the dtype in order (float32 28 ulp at 1000
    classes, float64 2.1e-15 relative; cpp/nn/activations.hpp)."""
    fi = np.finfo(dtype)
    Z = (rng.uniform(-60, 60, (64, width))).astype(dtype)
    Z[0, :3] = [fi.max, -fi.max, 0]          # spans more than the range: z - max is -inf
    Z[1, :] = -fi.max                        # all equal, at the extreme
    Z[2, :5] = [np.inf, 0, 1, 2, 3]          # +inf entry: NaN row in the reference too
    Z[3, :] = np.linspace(-110, 0, width)    # exp down to (and below) the denormals
    Z[4, :] = rng.uniform(-1, 1, width)      # entries alike: the widest sums
    # The exact softmax of the differences z - max as the dtype rounds them
    # (that rounding, up to half an ulp of |z - max|, is the same in every
    # implementation and in the reference run in the dtype), in long double
    # (a float64 sum of 3000 entries would add its own 1e-15): what is left
    # is the exp, the row sum and the division.
    with np.errstate(all="ignore"):
        D = (Z - Z.max(axis=1, keepdims=True)).astype(np.longdouble)
        E = np.exp(D)
        exact = E / E.sum(axis=1, keepdims=True)
    outs = {t: on_table(t, lambda: _core.activation_forward(ACT_ID["softmax"], Z, np.zeros(0, dtype)))
            for t in TABLES}
    for t, A in outs.items():
        check_bound(A, exact, dtype, f"softmax {t}, width {width}")
    assert_same_bits_per_kind(outs, "softmax")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cce_loss_log_every_table(dtype, on_table, rng):
    n, m = 300, 130  # more than one 64-entry chunk of the vector log per row
    Y = (rng.random((n, m)) < 0.5).astype(dtype) * rng.uniform(0.1, 1, (n, m)).astype(dtype)
    P = rng.uniform(0, 1, (n, m)).astype(dtype)
    P[0, :4] = [0.0, 1.0, np.finfo(dtype).tiny, np.finfo(dtype).eps]  # clipped to [eps, 1 - eps]
    # dnnfast sums the logs in float64 for both dtypes: the reference in
    # float64 on the probabilities clipped as dnnfast clips them (dtype's eps)
    eps = np.finfo(dtype).eps
    exact = ref.loss_forward("cce", Y.astype(np.float64), np.clip(P, eps, 1 - eps).astype(np.float64))
    terms = np.abs(Y.astype(np.float64) * np.log(np.clip(P, eps, 1 - eps).astype(np.float64)))
    # dnnfast adds the terms in order (row by row, blocks of rows), the
    # reference pairwise: besides the log's 1e-15, the recursive-summation
    # bound (count of terms) * 2^-53 on the sum of magnitudes.
    tol = (REL_BOUND + terms.size * 2.0 ** -53) * terms.sum()
    got = {t: on_table(t, lambda: _core.loss_forward(LOSS_ID["cce"], Y, P, None)) for t in TABLES}
    for t, J in got.items():
        assert abs(J - exact) <= tol, f"cce {t}: {J!r} vs {exact!r}"
    assert_same_bits_per_kind(got, "cce")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cce_log_per_term_every_table(dtype, on_table):
    """One-hot rows, one row per call: J = -log(clip(p)) alone, so the bound
    is the log's own: 1e-15 relative (the log is taken in float64 for both
    dtypes), over a sweep of p from below eps to above 1 - eps."""
    fi = np.finfo(dtype)
    p = np.concatenate([np.geomspace(float(fi.eps) / 4, 1.0, 500), np.linspace(0.5, 1.0, 101),
                        [0.0, float(fi.tiny), 1 - float(fi.eps), 1.0]]).astype(dtype)
    Y = np.zeros((1, 70), dtype)
    Y[0, 69] = 1
    exact = -np.log(np.clip(p, fi.eps, 1 - fi.eps).astype(np.float64))
    for t in TABLES:
        def run():
            out = []
            for v in p:
                P = np.full((1, 70), 0.5, dtype)
                P[0, 69] = v
                out.append(_core.loss_forward(LOSS_ID["cce"], Y, P, None))
            return np.array(out)
        J = on_table(t, run)
        rel = np.abs(J - exact) / np.maximum(np.abs(exact), 1e-300)
        assert rel.max() <= REL_BOUND, f"cce log {t}: {rel.max():.3g} at p={p[np.argmax(rel)]!r}"



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_loss_per_term_every_table(dtype, on_table):
    """One entry per call, y ln(y / Yhat) - y + Yhat against long double, y
    and Yhat over the dtype's range: the vector log takes every quotient from
    the smallest normal double to the largest (float64's quotients that
    underflow, overflow or are subnormal take libm's). Within the log's
    1e-15 and a few roundings of the three parts' magnitudes."""
    fi = np.finfo(dtype)
    top = 1e300 if dtype == np.float64 else float(fi.max)  # float64: y ln(y / eps) stays finite
    ys = np.concatenate([[0.0, float(fi.smallest_subnormal), float(fi.tiny), 1.0, 3.0],
                         np.geomspace(float(fi.tiny), top, 40)]).astype(dtype)
    with np.errstate(over="ignore"):  # geomspace's last power, rounded back to max
        ps = np.concatenate([[0.0, float(fi.eps) / 2, 1.0, 2.0, float(fi.max)],
                             np.geomspace(float(fi.eps), float(fi.max), 40)]).astype(dtype)
    Y, P = (a.ravel() for a in np.meshgrid(ys, ps))
    y = Y.astype(np.longdouble)
    q = np.maximum(P, fi.eps).astype(np.longdouble)
    with np.errstate(divide="ignore", invalid="ignore"):
        ylog = np.where(y == 0, 0, y * np.log(y / q))
    exact = (ylog - y + q).astype(np.float64)
    tol = (2e-15 * (np.abs(ylog) + y + q)).astype(np.float64)

    def run():
        return np.array([_core.loss_forward(LOSS_ID["poisson"], Y[k:k + 1, None], P[k:k + 1, None], None)
                         for k in range(Y.size)])
    for t in TABLES:
        J = on_table(t, run)
        err = np.abs(J - exact)
        assert np.all(err <= tol), (f"poisson {t}: {np.max(err / tol):.3g} x the bound at y, Yhat = "
                                    f"{Y[np.argmax(err / tol)]!r}, {P[np.argmax(err / tol)]!r}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_row_width_does_not_change_a_bit(name, dtype, on_table, rng):
    """The kernels take a row's tail as an overlapping last vector (rows
    shorter than a vector: a padded buffer), so an element's value must not
    depend on the row's width or its place in the row: widths 1..40 against
    one long row, on every table."""
    z = (rng.standard_normal(41 * 40) * 4).astype(dtype)
    a = alpha(name, dtype)
    for t in TABLES:
        long_row = on_table(t, lambda: _core.activation_forward(ACT_ID[name], z.reshape(1, -1), a))[0]
        for w in range(1, 41):
            k = (z.size // w) * w
            Z = np.ascontiguousarray(z[:k].reshape(-1, w))
            got = on_table(t, lambda: _core.activation_forward(ACT_ID[name], Z, a)).ravel()
            np.testing.assert_array_equal(got, long_row[:k], err_msg=f"{name} {t} width {w}")
