"""The element-wise kernels around the GEMM (cpp/nn/vmath.hpp: bias + relu /
leaky_relu / identity, their derivatives and tanh's, sigmoid's and arctan's, the bias gradient's column sums,
the sgd / momentum / nesterov / adam steps and the L2 term) on every kernel table this
CPU can run: each must give, bit for bit, the scalar definition written out
in NumPy operation by operation (the same IEEE operations in the same order),
so every table gives the same bits. Sizes cover whole vectors, tails, rows
shorter than a vector and blocks with a row stride."""
from __future__ import annotations

import numpy as np
import pytest

from dnnfast import _core

from conftest import ACT_ID, DTYPES

TABLES = [k for k in ("generic", "avx2", "avx512") if _core.gemm_kernel_supported(k)]


@pytest.fixture
def table(request):
    previous = _core.gemm_kernel_name()
    assert _core.gemm_set_kernel(request.param) == request.param
    yield request.param
    _core.gemm_set_kernel(previous)


def same_bits(got, want):
    """Bitwise equality (so -0 differs from +0); NaN matches NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(got) & np.isnan(want)
    ints = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    diff = (got.view(ints) != want.view(ints)) & ~nan
    assert not diff.any(), f"{diff.sum()} elements differ, first at {np.argwhere(diff)[0]}: " \
        f"{got[tuple(np.argwhere(diff)[0])]!r} vs {want[tuple(np.argwhere(diff)[0])]!r}"


def values(dtype, shape, rng):
    """Random values with zeros of both signs, extremes, infinities and NaN."""
    fi = np.finfo(dtype)
    v = rng.standard_normal(shape).astype(dtype)
    flat = v.reshape(-1)
    special = np.array([0.0, -0.0, fi.max, -fi.max, np.inf, -np.inf, np.nan, fi.tiny, -fi.tiny,
                        float(fi.smallest_subnormal), -float(fi.smallest_subnormal)], dtype)
    k = min(flat.size, special.size)
    flat[rng.choice(flat.size, k, replace=False)] = special[:k]
    return v


def forward_def(name, z, alpha):
    if name == "identity":
        return z.copy()
    if name == "relu":  # z <= 0 ? 0 : z: NaN stays NaN, as np.maximum (the reference)
        return np.where(z <= 0, z.dtype.type(0), z)
    return np.where(z > 0, z, alpha * z)


SHAPES = [(1, 1), (3, 5), (2, 16), (7, 33), (64, 100), (5, 257), (300, 1), (45, 3)]


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["identity", "relu", "leaky_relu"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_piecewise_linear_forward_and_backward(table, dtype, name, shape, rng):
    alpha = np.array([0.1 if name == "leaky_relu" else 0.0], dtype)[: 1 if name == "leaky_relu" else 0]
    a = dtype(alpha[0]) if alpha.size else dtype(0)
    Z = values(dtype, shape, rng)
    with np.errstate(all="ignore"):
        same_bits(_core.activation_forward(ACT_ID[name], Z, alpha), forward_def(name, Z, a))
        if name == "identity":
            return
        A = forward_def(name, Z, a)
        dA = values(dtype, shape, rng)
        slope = np.where(Z > 0, dtype(1), dtype(0) if name == "relu" else a)
        same_bits(_core.activation_backward(ACT_ID[name], Z, A, dA, alpha), dA * slope)


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_derivatives_from_the_output(table, dtype, name, shape, rng):
    """tanh' = 1 - a a and sigmoid' = a (1 - a), from the saved output A."""
    A = values(dtype, shape, rng)
    Z = values(dtype, shape, rng)  # not read by these two
    dA = values(dtype, shape, rng)
    one = dtype(1)
    with np.errstate(all="ignore"):
        want = dA * (one - A * A) if name == "tanh" else dA * (A * (one - A))
        same_bits(_core.activation_backward(ACT_ID[name], Z, A, dA, np.zeros(0, dtype)), want)


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_arctan_derivative_from_z(table, dtype, shape, rng):
    """arctan' = 1 / (1 + z z), and for |z| > 1 r r / (1 + r r) with r = 1 / z
    (ArctanAct::df), on values of every magnitude: 1e19 in float32 makes r r
    subnormal, 1e20 makes it 0."""
    Z = values(dtype, shape, rng)
    dA = values(dtype, shape, rng)
    one = dtype(1)
    with np.errstate(all="ignore"):
        Z.reshape(-1)[::3] *= dtype(10) ** rng.integers(-30, 30, Z.size).astype(dtype)[::3]
        r = one / Z
        want = dA * np.where(np.abs(Z) > one, (r * r) / (one + r * r), one / (one + Z * Z))
        same_bits(_core.activation_backward(ACT_ID["arctan"], Z, Z, dA, np.zeros(0, dtype)), want)


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["identity", "relu", "leaky_relu"])
@pytest.mark.parametrize("shape", [(3, 5), (50, 100), (37, 130), (300, 1), (70, 2)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_bias_then_activation_in_the_gemm_epilogue(table, dtype, name, shape, rng):
    """dense_forward through the identity matrix: the GEMM gives X exactly,
    and the epilogue adds the bias and applies sigma on blocks of C."""
    m, n = shape
    X = rng.standard_normal((m, n)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    alpha = np.array([0.2], dtype) if name == "leaky_relu" else np.zeros(0, dtype)
    Z, A = _core.dense_forward(X, np.eye(n, dtype=dtype), b, ACT_ID[name], alpha)
    z = X + b
    same_bits(Z, z)
    same_bits(A, forward_def(name, z, dtype(0.2)))


# Widths around the kernels' strips of up to 8 vectors and their ragged edge.
COLUMN_SHAPES = SHAPES + [(200, 1), (3, 70), (6, 9), (9, 96), (4, 136), (3, 1031)]


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", COLUMN_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_column_sums_add_rows_in_order(table, dtype, shape, rng):
    X = rng.standard_normal(shape).astype(dtype)
    want = np.zeros((1, shape[1]), dtype)
    for row in X:
        want = want + row
    same_bits(_core.column_sums(X), want)


def optimizer_def(name, P, G, s1, s2, t, lr, mu, b1, b2, eps):
    """The scalar definitions of cpp/nn/optimizers.cpp, operation by operation."""
    T = P.dtype.type
    lr, mu, b1, b2, eps = T(lr), T(mu), T(b1), T(b2), T(eps)
    if name == "sgd":
        return P - lr * G, s1, s2, t
    if name == "momentum":
        s1 = mu * s1 - lr * G
        return P + s1, s1, s2, t
    if name == "nesterov":
        s1 = mu * s1 - lr * G
        return P + (mu * s1 - lr * G), s1, s2, t
    t += 1
    lr_t = T(float(lr) * np.sqrt(1.0 - float(b2) ** t) / (1.0 - float(b1) ** t))
    s1 = b1 * s1 + (T(1) - b1) * G
    s2 = b2 * s2 + (T(1) - b2) * G * G
    return P - lr_t * s1 / (np.sqrt(s2) + eps), s1, s2, t


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("size", [1, 7, 100, 3103])
def test_optimizer_steps(table, dtype, name, size, rng):
    P = rng.standard_normal(size).astype(dtype)
    s1 = np.zeros(size, dtype)
    s2 = np.zeros(size, dtype)
    wP, ws1, ws2, wt = P.copy(), s1.copy(), s2.copy(), 0
    t = 0
    hyper = dict(lr=0.01, mu=0.9, b1=0.9, b2=0.999, eps=1e-8)
    options = _core.TrainOptions(optimizer=name, learning_rate=hyper["lr"], momentum=hyper["mu"],
                                 beta1=hyper["b1"], beta2=hyper["b2"], epsilon=hyper["eps"])
    for _ in range(3):  # a few steps, so the state buffers matter
        G = rng.standard_normal(size).astype(dtype)
        t = _core.optimizer_update(options, P, G, s1, s2, t)
        wP, ws1, ws2, wt = optimizer_def(name, wP, G, ws1, ws2, wt, **hyper)
    same_bits(P, wP)
    if name != "sgd":
        same_bits(s1, ws1)
    if name == "adam":
        same_bits(s2, ws2)
        assert t == wt == 3


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_quotient_at_the_edges(table, dtype, rng):
    """On the avx512 table Adam's float64 quotient comes from Newton steps
    and a remainder correction (cpp/gemm/ops_avx512.hpp, OpsD::div_rn), not
    the divider, with the divider kept for the operands those steps cannot
    round correctly: every table must still give the IEEE quotient's bits.
    First gradients from subnormal to overflowing, zeros of both signs,
    NaN and inf over several steps, with epsilon's significand all ones
    (where g^2 underflows to 0 the divisor is epsilon itself); then one
    case for each fallback, each of which fails without it."""
    fi = np.finfo(dtype)
    size = 4099
    eps = float(np.nextafter(dtype(2), dtype(0)) * dtype(2.0 ** -27))
    hyper = dict(lr=1e20, mu=0.9, b1=0.9, b2=0.999, eps=eps)
    options = _core.TrainOptions(optimizer="adam", learning_rate=hyper["lr"], beta1=hyper["b1"],
                                 beta2=hyper["b2"], epsilon=hyper["eps"])
    P = rng.standard_normal(size).astype(dtype)
    s1, s2 = np.zeros(size, dtype), np.zeros(size, dtype)
    wP, ws1, ws2, wt, t = P.copy(), s1.copy(), s2.copy(), 0, 0
    # Exponents from the subnormals' to past the largest finite value.
    lo, hi = fi.minexp - fi.nmant, fi.maxexp + 2
    tiny = float(2.0 ** ((fi.minexp - fi.nmant) // 2 - 2))  # (1 - b2) g^2 underflows to 0
    for step in range(4):
        with np.errstate(over="ignore"):  # past the largest value: inf, as meant
            mag = rng.uniform(1, 2, size) * 2.0 ** rng.integers(lo, hi, size).astype(float)
            G = (mag * rng.choice([-1.0, 1.0], size)).astype(dtype)
        kind = rng.integers(0, 6, size)
        kind[::4] = 0  # a quarter of the lanes keep s2 = 0 throughout
        G[kind == 0] = (rng.uniform(1, 2, (kind == 0).sum()) * tiny).astype(dtype)
        G[kind == 1] = rng.standard_normal((kind == 1).sum()).astype(dtype)
        G[kind == 2] = 0.0 if step % 2 else -0.0
        G[:3] = [np.nan, np.inf, -np.inf] if step == 3 else G[:3]
        with np.errstate(all="ignore"):
            t = _core.optimizer_update(options, P, G, s1, s2, t)
            wP, ws1, ws2, wt = optimizer_def("adam", wP, G, ws1, ws2, wt, **hyper)
        same_bits(P, wP)
        same_bits(s1, ws1)
        same_bits(s2, ws2)
    # The cases the test is for were reached: divisors equal to epsilon with
    # a nonzero numerator.
    assert np.count_nonzero((ws2 == 0) & (ws1 != 0)) > 100
    # With beta1 = beta2 = 0: s1 = 0 s1 + g, s2 = g^2 and lr_t = lr, so the
    # numerators are lr s1 and, where g^2 underflows, the divisor is epsilon.
    # P = -0, so P - q = -q shows every bit of each quotient, its sign at 0
    # included. Each case breaks one condition of the Newton steps:
    half = lo // 2
    cases = [
        # powers of two over an all-ones epsilon: ties an ulp-off reciprocal rounds wrong
        (2.0 ** 100, eps, (half - 12, half - 2), False, 0.0),
        # numerators of -0 (s1 starts at -0 and g = -0), where q0 + r y is +0
        (2.0 ** 100, 1e-8, (half - 12, half - 2), False, -0.0),
        # numerators near 2^-1020 over 1e-12: normal quotients whose remainder underflows
        (2.0 ** -480, 1e-12, (half - 12, half - 2), True, 0.0),
        # g^2 overflows: divisors of inf under finite numerators (quotient 0)
        (2.0 ** -100, 1e-8, (520, 530), True, 0.0),
    ]
    for lr, eps_c, (e0, e1), spread, s1_start in cases:
        if 2.0 ** e1 > float(fi.max):
            continue  # float32's range: nothing of this case to build
        options = _core.TrainOptions(optimizer="adam", learning_rate=lr, beta1=0.0, beta2=0.0, epsilon=eps_c)
        G = 2.0 ** rng.integers(e0, e1, size).astype(float)
        if spread:
            G *= rng.uniform(1, 2, size)
        G = G.astype(dtype)
        G[1::2] *= -1
        G[rng.random(size) < 0.05] = 0.0
        G[rng.random(size) < 0.05] = -0.0
        P = np.full(size, -0.0, dtype)
        s1, s2 = np.full(size, s1_start, dtype), np.zeros(size, dtype)
        _core.optimizer_update(options, P, G, s1, s2, 0)
        with np.errstate(all="ignore"):
            wP, ws1, ws2, _ = optimizer_def("adam", np.full(size, -0.0, dtype), G, np.full(size, s1_start, dtype),
                                            np.zeros(size, dtype), 0, lr=lr, mu=0.0, b1=0.0, b2=0.0, eps=eps_c)
        same_bits(P, wP)
        same_bits(s1, ws1)


def test_optimizer_update_checks_its_buffers():
    P = np.zeros(4)
    with pytest.raises(ValueError, match="grads"):
        _core.optimizer_update(_core.TrainOptions(optimizer="sgd"), P, np.zeros(3), P, P, 0)
    with pytest.raises(ValueError, match="state1"):
        _core.optimizer_update(_core.TrainOptions(optimizer="adam"), P, np.zeros(4), np.zeros(3), P, 0)


def l2_sum_def(W):
    """The penalty's sum of squares as VMathFns::l2_grad defines it: the squares
    (in float64) of element k added into partial sum k % 32 in the order of k,
    then the 32 sums joined pairwise (16 + 16, 8 + 8, ...)."""
    w = W.ravel().astype(np.float64)
    part = np.zeros(32)
    for k in range(w.size):  # scalar adds, in order: what the definition is
        part[k % 32] = part[k % 32] + w[k] * w[k]
    h = 16
    while h:
        part[:h] = part[:h] + part[h:2 * h]
        h //= 2
    return part[0]


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_term_in_its_defined_order(table, dtype, rng):
    # Layers of 65 x 37 (whole blocks of 32 and a tail), 37 x 7 and 7 x 2:
    # the gradient's L2 term and the penalty, bit for bit as defined.
    import dnnfast
    net = dnnfast.Network([65, 37, 7, 2], ["tanh", "relu", "softmax"], loss="cce", dtype=dtype, seed=3)
    net.parameters[:] = rng.standard_normal(net.parameters.size).astype(dtype)
    X = rng.standard_normal((11, 65)).astype(dtype)
    Y = np.eye(2, dtype=dtype)[rng.integers(0, 2, 11)]
    P = net.parameters
    G0, G1 = np.empty_like(P), np.empty_like(P)
    c0, pen0 = net._net.loss_and_gradient(P, X, Y, None, None, 0.0, G0)
    l2 = 0.3
    c1, pen1 = net._net.loss_and_gradient(P, X, Y, None, None, l2, G1)
    assert c1 == c0 and pen0 == 0.0
    T = np.dtype(dtype).type
    l2_t = float(T(l2))  # the core holds the coefficient in the network's dtype
    coef = T(l2_t / 11)
    want = G0.copy()
    sq = 0.0
    for W, off in zip(net.weights, [lay["w_offset"] for lay in net._layout]):
        want[off:off + W.size] = G0[off:off + W.size] + coef * W.ravel()
        sq += l2_sum_def(W)
    same_bits(G1, want)
    assert pen1 == 0.5 * l2_t * sq / 11
    # Plain SGD's L2 term made in place (l2_decay): the same penalty, its sum
    # of squares taken before the step
    options = _core.TrainOptions(optimizer="sgd", learning_rate=0.01, batch_size=11, weight_decay=l2)
    _, pen_sum, _ = net._net.train_epoch(P, X, Y, None, np.arange(11, dtype=np.int64), options)
    assert pen_sum == (0.0 + 0.5 * l2_t * sq) * 11


@pytest.mark.parametrize("table", TABLES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 63, 64, 65, 1000, 65536, 65537, 65536 + 64 + 5, 200003])
def test_all_finite_on_every_table(table, dtype, n):
    # The check of X before fit and predict (VMathFns::all_finite): finite
    # extremes pass; one NaN or infinity anywhere -- the first element, the
    # last, inside the vector loop, in the scalar tail, in the first 64 K
    # block or after it -- fails.
    rng = np.random.default_rng(n)
    fi = np.finfo(dtype)
    x = rng.standard_normal(n).astype(dtype)
    extremes = np.array([fi.max, -fi.max, fi.tiny, -0.0, float(fi.smallest_subnormal)], dtype)
    x[: min(n, extremes.size)] = extremes[: min(n, extremes.size)]
    assert _core.all_finite(x) is True
    spots = {0, n - 1, n // 2, max(0, n - 3), min(n - 1, 65535), min(n - 1, 65536 + 70)} if n else set()
    for at in sorted(spots):
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[at] = bad
            assert _core.all_finite(y) is False, (at, bad)
