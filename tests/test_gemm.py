"""The fast GEMM against the reference GEMM: shapes, transposes, alpha/beta,
epilogue placement, thread-count determinism and every kernel table this CPU
can run. Uses the installed dnnfast._core."""
import os
import subprocess
import sys

import numpy as np
import pytest

from dnnfast import _core

from conftest import ACT_ID, KERNEL_TABLES

# Error allowed, relative to max(|op(A)| |op(B)|): both GEMMs round each
# product and sum, in different orders (FMA or not, blocked K), so they differ
# by a few units of round-off times sqrt(K).
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
TRANS = [(False, False), (True, False), (False, True), (True, True)]

# Kernel tables this CPU can run; each test runs under each of them.
KERNELS = KERNEL_TABLES

# M, N, K: degenerate sizes, edge tiles of every kernel (MR in 4/6/14, NR in
# 4..32), the small-M and K == 1 paths, K beyond KC (several pc slices, of
# equal depth rounded to 8 with a shorter last one: 1100, 1537), N beyond NC
# and M beyond MC; one row through a W whose row blocks exceed 2 MiB (the
# AVX-512 one-row kernel prefetches those: 1 x 5000 x 1000); the 20000 x
# 100 estimators' dW1 = [X_b | 1]^T dZ (101 x 100 x 200: with op(A) = A^T,
# float64 on full-width AVX-512 reads both operands in place over 8 row
# panels).
SHAPES = [
    (1, 1, 1), (1, 7, 5), (5, 1, 9), (3, 3, 1), (1, 1, 300), (1, 300, 1), (300, 1, 1),
    (2, 33, 17), (4, 100, 64), (5, 17, 3), (6, 16, 8), (7, 17, 9), (13, 31, 257),
    (15, 33, 65), (29, 65, 193), (64, 10, 1024), (97, 130, 300), (300, 520, 700),
    (5, 2100, 40), (250, 2070, 20), (64, 10, 128), (256, 10, 1024), (128, 10, 64), (300, 3, 50), (1, 784, 256), (1, 256, 784), (784, 256, 1),
    (37, 45, 1100), (20, 50, 1537), (1, 5000, 1000), (101, 100, 200),
    # 2 or 3 columns with short dots (takes_small_n): the five loops for
    # op(A) = A with K from 7 to under 256 bytes, the small path around them
    (200, 2, 15), (70, 3, 7), (500, 3, 31), (90, 2, 6), (60, 3, 64), (130, 2, 33),
    # K up to kSmallK on rows of C narrower than kSmallKMinRowBytes: the
    # five loops; wider ones the short-K kernel
    (200, 5, 6), (64, 10, 4), (300, 4, 2), (90, 7, 3), (150, 16, 5), (40, 8, 2),
    # one to three columns with K up to kSmallK: op(A) = A in scalar chains
    # (small_k_narrow), op(A) = A^T as C^T
    (500, 1, 2), (300, 2, 3), (257, 3, 6), (100, 1, 5), (9, 2, 4), (40, 3, 2),
]


@pytest.fixture
def kernel(kernel_table):  # (conftest.py: each table in turn)
    return kernel_table


def operands(M, N, K, ta, tb, dtype, seed=0):
    rng = np.random.default_rng(seed + 7 * M + 13 * N + 31 * K)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return A, B


def bound(A, B, ta, tb):
    """max(|op(A)| |op(B)|) in float64: the scale of the rounding error."""
    a = np.abs(A.T if ta else A).astype(np.float64)
    b = np.abs(B.T if tb else B).astype(np.float64)
    return max((a @ b).max(), np.finfo(np.float64).tiny)


def assert_close(C, ref, scale, dtype):
    assert C.shape == ref.shape and C.dtype == ref.dtype
    assert np.all(np.isfinite(C))
    err = np.abs(C.astype(np.float64) - ref.astype(np.float64)).max(initial=0.0)
    assert err <= RTOL[dtype] * scale, f"error {err:.3g} > {RTOL[dtype]} * {scale:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", range(1, 34))
def test_transposing_packs_take_every_k_tail(kernel, K, dtype):
    # op(A) = A and op(B) = B^T are packed through the table's transposing
    # copy, in blocks of k as wide as a vector (AVX-512: 16 float / 8
    # double, the rest under a mask): every remainder of K, with row panels
    # of 14 + 14 + 2 rows in A and 32-column panels with an 8-wide edge in B.
    M, N = 30, 200
    A, B = operands(M, N, K, False, True, dtype)
    C = _core.gemm(A, B, False, True)
    assert_close(C, _core.gemm_reference(A, B, False, True), bound(A, B, False, True), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_fast_matches_reference(kernel, M, N, K, ta, tb, dtype):
    if kernel == "generic512" and M * N * K > 2e7:
        pytest.skip("generic512 emulates 512-bit vectors: slow, large shapes covered by avx2")
    A, B = operands(M, N, K, ta, tb, dtype)
    C = _core.gemm(A, B, ta, tb)
    assert_close(C, _core.gemm_reference(A, B, ta, tb), bound(A, B, ta, tb), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("M", [20, 64, 130, 200])
def test_a_column_does_not_depend_on_the_product_width(kernel, M, ta, dtype):
    """C[:, :N] of op(A) B[:, :N] has the bits of the same columns of the
    wider product, whichever way the narrow one runs: full tiles, column
    edges of one vector, of one and a half (float64 9-12 columns and float32
    17-24 on AVX-512, on half-width vectors), or swapped (C^T)."""
    K = 100
    rng = np.random.default_rng(M)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((K, 48)).astype(dtype)
    wide = _core.gemm(A, B, ta, False)
    for N in list(range(7, 26)) + [33, 40]:
        C = _core.gemm(A, np.ascontiguousarray(B[:, :N]), ta, False)
        np.testing.assert_array_equal(C, wide[:, :N], err_msg=f"N = {N}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", range(2, 7))
def test_few_columns_of_short_dots_have_the_wide_products_bits(kernel, K, dtype):
    """One to three columns with K up to kSmallK (6) and op(A) = A run as
    scalar FMA chains (small_k_narrow), a wide product's rows as the
    short-K kernel's vectors: every element is the same chain of FMAs from
    zero, so the same bits, with beta's C added as the vectors add it."""
    M, ta = 300, False
    rng = np.random.default_rng(K)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((K, 48)).astype(dtype)
    C0 = rng.standard_normal((M, 48)).astype(dtype)
    wide = _core.gemm(A, B, ta, False)
    wide_beta = C0.copy()
    _core.gemm_update(A, B, wide_beta, -0.5, 0.75, ta, False)
    for N in (1, 2, 3):
        Bn = np.ascontiguousarray(B[:, :N])
        np.testing.assert_array_equal(_core.gemm(A, Bn, ta, False), wide[:, :N], err_msg=f"N = {N}")
        np.testing.assert_array_equal(_core.gemm(A, np.ascontiguousarray(Bn.T), ta, True), wide[:, :N],
                                      err_msg=f"N = {N}, op(B) = B^T")
        C = np.ascontiguousarray(C0[:, :N])
        _core.gemm_update(A, Bn, C, -0.5, 0.75, ta, False)
        np.testing.assert_array_equal(C, wide_beta[:, :N], err_msg=f"N = {N}, beta")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_numpy_large(dtype):
    A, B = operands(300, 520, 700, False, False, dtype)
    assert_close(_core.gemm(A, B), (A.astype(np.float64) @ B).astype(dtype), bound(A, B, False, False), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
# (1, 300, 700) and (700, 300, 1): the one-row product and the rank-1 update
# through W's row blocks (gemm_small.cpp). (128, 10, 64): column-edge tiles
# (op(A) = A) and the swapped thin product, whose tiles C takes transposed
# (op(A) = A^T), both through the micro-kernel's scratch tile. (300, 3, 50)
# and (9, 1, 40): N <= kSmallN, C^T through the small-M kernels and a scratch
# (gemm_small_n), where beta's C has to go in and out transposed. (300, 70,
# 4), (200, 37, 6) and (9, 21, 2): K <= kSmallK (6), rows from a copied
# op(B) (gemm_small_k), its last columns through a scratch; (100, 2, 3)
# its scalar chains for one to three columns. (300, 1, 1): the rank-1
# update of one column, a vector of rows at a time.
@pytest.mark.parametrize("M,N,K", [(1, 40, 30), (3, 70, 1), (37, 45, 300), (130, 70, 520), (1, 300, 700),
                                   (700, 300, 1), (128, 10, 64), (300, 3, 50), (9, 1, 40), (300, 70, 4),
                                   (200, 37, 6), (9, 21, 2), (300, 1, 1), (100, 2, 3)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.75), (0.0, 3.0), (1.5, 0.0)])
def test_alpha_beta(kernel, M, N, K, ta, tb, dtype, alpha, beta):
    A, B = operands(M, N, K, ta, tb, dtype)
    C0 = np.random.default_rng(1).standard_normal((M, N)).astype(dtype)
    if beta == 0.0:
        C0[:] = np.nan  # beta == 0 must overwrite, not multiply NaN by zero
    C, R = C0.copy(), C0.copy()
    _core.gemm_update(A, B, C, alpha, beta, ta, tb)
    _core.gemm_update(A, B, R, alpha, beta, ta, tb, reference=True)
    scale = abs(alpha) * bound(A, B, ta, tb) + abs(beta) * np.nan_to_num(np.abs(C0)).max()
    assert_close(C, R, scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", [(1, 50, 30), (4, 3000, 20), (200, 90, 1), (200, 10, 300), (37, 45, 600), (250, 2100, 300),
                                   (1, 300, 700), (700, 90, 1), (200, 2, 300), (3000, 90, 3)])
def test_epilogue_once_on_final_block_with_global_coordinates(kernel, M, N, K, ta, tb, dtype):
    # The probe epilogue maps c -> 2c + 1000 i + j: applied twice, before the
    # last K slice, or with wrong (i0, j0), the result is off by far more
    # than round-off.
    if kernel == "generic512" and M * N * K > 2e7:
        pytest.skip("slow emulation")
    A, B = operands(M, N, K, ta, tb, dtype)
    C = _core.gemm_epilogue_probe(A, B, ta, tb)
    R = _core.gemm_epilogue_probe(A, B, ta, tb, reference=True)
    assert_close(C, R, 2 * bound(A, B, ta, tb) + 1000.0 * M + N, dtype)


# Shapes of relu layers' products: a column edge of at most one vector and
# wider ones, row edges, K split into slices (600, 1100), one row
# micro-panel (B read in place), few columns (A read in place), the small
# paths (M <= 4, N <= 3 call the epilogue function; K <= 6 and K = 1, the
# rank-1 update by rows and by columns, apply the mask themselves, K <= 6
# on one to three columns in scalars).
RELU_SHAPES = [(178, 100, 13), (150, 3, 20), (13, 100, 178), (64, 256, 784), (200, 10, 300), (37, 45, 600), (97, 130, 1100),
               (5, 33, 17), (300, 520, 70), (3, 50, 30), (200, 2, 40), (150, 64, 5), (150, 37, 3), (1, 37, 20),
               (200, 100, 1), (3000, 700, 1), (150, 3, 4), (150, 2, 2), (150, 2, 6),
               (130, 1, 2), (300, 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", RELU_SHAPES)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_relu_epilogue_in_the_kernel_stores_is_the_epilogue_function(kernel, direction, M, N, K, ta, tb, dtype):
    # A relu layer's epilogue applied by the kernels as they store C
    # (Epilogue::relu_bias forward, relu_mask backward) gives the bits of the
    # epilogue function run on the stored block, for any thread count, B
    # packed beforehand or not; both agree with the reference GEMM's. Row 0
    # of op(A) holds a NaN (one-row products are left finite): forward, relu
    # keeps its row NaN (as np.maximum, dnnfast.reference's relu); backward,
    # it stays NaN wherever the mask is 0 too, as NaN * 0 does in the vector
    # maths.
    if kernel == "generic512" and M * N * K > 2e7:
        pytest.skip("slow emulation")
    A, B = operands(M, N, K, ta, tb, dtype)
    r = 1 if M > 1 else 0
    if r:
        A[0, 0] = np.nan  # element (0, 0) of op(A) either way
    rng = np.random.default_rng(M + N)
    if direction == "forward":
        data = rng.standard_normal(N).astype(dtype)
        if N > 1:
            data[::3] -= 4.0  # columns mostly cut to zero
        product = _core.gemm_bias_relu
    else:
        data = rng.standard_normal((M, N)).astype(dtype)  # a relu layer's z: relu' is z > 0
        data[:, ::5] = -0.0
        data[1::4, 1::3] = np.nan
        product = _core.gemm_relu_mask
    ref = product(A, B, data, ta, tb, reference=True)
    saved = _core.get_num_threads()
    try:
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            C = product(A, B, data, ta, tb)
            assert C.tobytes() == product(A, B, data, ta, tb, fused=False).tobytes()
            if not tb:
                P = product(A, B, data, ta, packed=True)
                assert P.tobytes() == product(A, B, data, ta, fused=False, packed=True).tobytes()
    finally:
        _core.set_num_threads(saved)
    if direction == "forward":
        assert np.all(np.isnan(C[:r])) and np.all(np.isnan(ref[:r]))
        assert np.all(C[r:] >= 0) and (C[r:] > 0).mean() > 0.1
    else:
        assert np.all(np.isnan(C[:r])) and np.all(np.isnan(ref[:r]))
        cut = ~(data[r:] > 0)
        assert np.all(C[r:][cut] == 0) and cut.mean() > 0.3 and np.all(C[r:][~cut] != 0)
    assert_close(C[r:], ref[r:], bound(A[r:] if not ta else A[:, r:], B, ta, tb), dtype)


def test_relu_epilogue_bias_and_mask_must_match_the_product():
    A, B = operands(5, 7, 3, False, False, np.float64)
    with pytest.raises(ValueError, match="bias"):
        _core.gemm_bias_relu(A, B, np.zeros(6))
    with pytest.raises(ValueError, match="bias"):
        _core.gemm_bias_relu(A, B, np.zeros((1, 7)))
    with pytest.raises(ValueError, match="mask"):
        _core.gemm_relu_mask(A, B, np.zeros((5, 6)))
    with pytest.raises(ValueError, match="mask"):
        _core.gemm_relu_mask(A, B, np.zeros(35))


# The first layer's weight gradient through the layer above (n, x_ld, m_in,
# m_out: X is n x x_ld, the layer above's W m_in x m_out): the products in
# NR-wide strips where both go to the five loops in one K slice (digits'
# and the 20000 x 100 set's batches and a last short batch; the least
# shape for strips; partial strips; one strip narrower than NR; N of one
# whole strip; an X too wide to read in place, packed once; n and K beyond a
# table's KC for one dtype only), and the two calls where either product
# takes another path or X is wider than the strips gain on (n <= 6, x_ld <=
# 4, m_in <= 3, m_out <= 6, n or K beyond every KC, x_ld 785).
CHAIN_SHAPES = [
    (200, 65, 100, 10), (200, 101, 100, 10), (37, 65, 100, 10), (7, 5, 4, 7), (40, 300, 20, 8), (64, 785, 40, 12),
    (9, 20, 33, 8), (250, 14, 16, 20), (300, 20, 40, 10), (50, 20, 30, 300),
    (6, 10, 20, 10), (50, 4, 20, 10), (50, 10, 3, 10), (50, 10, 20, 5), (500, 12, 20, 10), (40, 12, 20, 500),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu", "elu", "identity"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,x_ld,m_in,m_out", CHAIN_SHAPES, ids=lambda v: str(v))
def test_first_layer_gradient_in_strips_has_the_two_products_bits(kernel, n, x_ld, m_in, m_out, dtype, act,
                                                                   threads, restore_threads):
    """dense_backward_first_layer (gemm_chain) == X^T dense_backward_input(...), bit for bit, and
    within round-off of the float64 reference."""
    import dnnfast
    from dnnfast import reference as ref

    dnnfast.set_num_threads(threads)
    rng = np.random.default_rng(n + 3 * x_ld + 7 * m_in + 11 * m_out)
    X = rng.standard_normal((n, x_ld)).astype(dtype)
    dZ = rng.standard_normal((n, m_out)).astype(dtype)
    W = rng.standard_normal((m_in, m_out)).astype(dtype)
    Z = (2 * rng.standard_normal((n, m_in))).astype(dtype)
    a = {"leaky_relu": 0.1, "elu": 1.0}.get(act)
    alpha = np.array([a] if a is not None else [], dtype=dtype)
    A = ref.activation_forward(act, Z, a).astype(dtype)
    G = _core.dense_backward_first_layer(X, dZ, W, Z, A, ACT_ID[act], alpha)
    D = _core.dense_backward_input(dZ, W, Z, A, ACT_ID[act], alpha)
    assert G.shape == (x_ld, m_in) and G.dtype == dtype
    assert np.array_equal(G, _core.gemm(X, D, trans_a=True))
    D64 = ref.activation_backward(act, Z.astype(np.float64), A.astype(np.float64),
                                  dZ.astype(np.float64) @ W.astype(np.float64).T, a)
    expected = X.astype(np.float64).T @ D64
    # |sigma'| <= 1 for these: the rounding of both products scales with |X|^T |dZ| |W|^T
    absolute = np.abs(dZ.astype(np.float64)) @ np.abs(W.astype(np.float64)).T
    scale = float((np.abs(X.astype(np.float64)).T @ absolute).max())
    np.testing.assert_allclose(G, expected, rtol=0, atol=4 * RTOL[dtype] * scale)


def test_first_layer_gradient_checks_its_arguments():
    X, dZ, W, Z = np.zeros((5, 3)), np.zeros((5, 2)), np.zeros((4, 2)), np.zeros((5, 4))
    alpha = np.zeros(0)
    with pytest.raises(ValueError, match="X must have"):
        _core.dense_backward_first_layer(np.zeros((6, 3)), dZ, W, Z, Z, ACT_ID["relu"], alpha)
    with pytest.raises(ValueError, match="W must have"):
        _core.dense_backward_first_layer(X, dZ, np.zeros((4, 3)), Z, Z, ACT_ID["relu"], alpha)
    with pytest.raises(ValueError, match="Z_prev"):
        _core.dense_backward_first_layer(X, dZ, W, np.zeros((5, 3)), np.zeros((5, 3)), ACT_ID["relu"], alpha)
    for act in ("softmax", "prelu"):
        with pytest.raises(ValueError, match="act_prev"):
            _core.dense_backward_first_layer(X, dZ, W, Z, Z, ACT_ID[act], np.full(4, 0.25))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", [(300, 520, 700), (1000, 20, 300), (1, 5000, 700), (3, 4100, 513), (2000, 1500, 1),
                                   (4100, 3, 513), (4100, 300, 3)])
def test_bit_identical_for_any_thread_count(M, N, K, ta, tb, dtype):
    A, B = operands(M, N, K, ta, tb, dtype)
    saved = _core.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            results.append(_core.gemm(A, B, ta, tb))
    finally:
        _core.set_num_threads(saved)
    assert results[0].tobytes() == results[1].tobytes()
    assert results[0].tobytes() == results[2].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,N", [(1, 7), (3, 40), (784, 256), (50, 37), (300, 1000), (2, 5000), (129, 65)])
def test_rank1_gemv_is_the_two_calls_it_fuses(kernel, K, N, dtype):
    # W := W + alpha u v^T then y := x W, in one sweep over W, must be the
    # rank-1 update followed by the one-row product bit for bit (at batch
    # size 1 training takes this path and must not change its results),
    # for any thread count.
    if kernel == "generic512" and K * N > 1e5:
        pytest.skip("slow emulation")
    rng = np.random.default_rng(K * 7 + N)
    W0 = rng.standard_normal((K, N)).astype(dtype)
    u, v, x = (rng.standard_normal((1, m)).astype(dtype) for m in (K, N, K))
    alpha = dtype(-0.05)
    W_ref = W0.copy()
    _core.gemm_update(u, v, W_ref, alpha, 1.0, True, False)
    y_ref = _core.gemm(x, W_ref)[0]
    saved = _core.get_num_threads()
    try:
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            W = W0.copy()
            y = _core.gemm_rank1_gemv(W, u[0], v[0], x[0], alpha)
            assert W.tobytes() == W_ref.tobytes()
            assert y.tobytes() == y_ref.tobytes()
    finally:
        _core.set_num_threads(saved)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N", [(1, 7), (3, 40), (256, 128), (128, 10), (50, 37), (17, 16), (33, 2),
                                 (300, 1000), (129, 65), (40, 1), (5, 0)])
def test_dot_rank1_is_the_product_then_a_one_rounding_step(kernel, M, N, dtype):
    # y := v W^T then W := W + u (alpha v) in one sweep over W (a stochastic
    # step's dA through a hidden layer and that layer's step): y must be the
    # one-row product through W^T bit for bit, and each W element the step
    # rounded once after alpha v_j is rounded, for any thread count. With
    # float32 operands the float64 sum below is that value before its one
    # rounding (u_i (alpha v_j) is exact in float64); with float64 it is within
    # two roundings. The tables without FMA hardware (generic on x86) round
    # the product too: within an ulp. N < 2 takes the two separate calls.
    if kernel == "generic512" and M * N > 1e5:
        pytest.skip("slow emulation")
    rng = np.random.default_rng(M * 7 + N)
    W0 = rng.standard_normal((M, N)).astype(dtype)
    u, v = (rng.standard_normal((1, m)).astype(dtype) for m in (M, N))
    alpha = dtype(-0.05)
    y_ref = _core.gemm(v, W0, False, True)[0]
    if N < 2:
        W_ref = W0.copy()
        _core.gemm_update(u, v, W_ref, alpha, 1.0, True, False)
    else:
        step = u[0].astype(np.float64)[:, None] * (alpha * v[0]).astype(np.float64)[None, :]
        exact = W0.astype(np.float64) + step
    saved = _core.get_num_threads()
    try:
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            W = W0.copy()
            y = _core.gemm_dot_rank1(W, u[0], v[0], alpha)
            assert y.tobytes() == y_ref.tobytes()
            if N < 2:
                assert W.tobytes() == W_ref.tobytes()
            elif dtype == np.float32 and kernel.startswith("avx"):
                assert W.tobytes() == exact.astype(np.float32).tobytes()
            else:
                eps = np.finfo(dtype).eps
                bound = 2 * eps * (np.abs(W0) + np.abs(step))
                assert np.all(np.abs(W.astype(np.float64) - exact) <= bound)
    finally:
        _core.set_num_threads(saved)


def at_offset(a, offset):
    """A C-contiguous copy of `a` that starts `offset` elements into its buffer."""
    buf = np.empty(a.size + offset, dtype=a.dtype)
    out = buf[offset:].reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1, 3, 5, 7, 15])
def test_small_paths_split_columns_anywhere_with_the_same_bits(kernel, offset, dtype):
    # The one-to-four-row products, the rank-1 update and the two fused
    # sweeps (step + product, product through W^T + step) split their
    # columns between threads at cache-line boundaries of W, or (one row
    # through this 700 x 1501 W, and the updates of it) W's rows into
    # blocks fixed by the shape, wherever W lies: for every
    # placement of the operands in memory the bits are those of one thread on
    # aligned operands, on 1 to 3 threads (N = 1501: parts of any length,
    # vector lanes and scalar tails alike).
    if kernel == "generic512":
        pytest.skip("slow emulation; the other tables cover the split")
    K, N = 700, 1501
    rng = np.random.default_rng(offset)
    W0 = rng.standard_normal((K, N)).astype(dtype)
    Bt = rng.standard_normal((N, K)).astype(dtype)
    A = rng.standard_normal((4, K)).astype(dtype)
    u, v, x = (rng.standard_normal((1, m)).astype(dtype) for m in (K, N, K))
    alpha = dtype(-0.05)

    def results(threads, off):
        _core.set_num_threads(threads)
        W = at_offset(W0, off)
        out = [_core.gemm(at_offset(A[:m], off), W) for m in (1, 2, 3, 4)]
        out += [_core.gemm(at_offset(A[:m], off), at_offset(Bt, off), False, True) for m in (1, 4)]
        _core.gemm_update(at_offset(u, off), at_offset(v, off), W, alpha, 1.0, True, False)  # K == 1
        out.append(W.copy())
        out.append(_core.gemm_rank1_gemv(W, at_offset(u[0], off), at_offset(v[0], off), at_offset(x[0], off), alpha))
        out.append(W.copy())
        out.append(_core.gemm_dot_rank1(W, at_offset(u[0], off), at_offset(v[0], off), alpha))
        out.append(W)
        return [o.tobytes() for o in out]

    saved = _core.get_num_threads()
    try:
        expected = results(1, 0)
        for t in (1, 2, 3):
            assert results(t, offset) == expected, f"{t} threads"
    finally:
        _core.set_num_threads(saved)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row_dots_sum_their_lanes_as_four_rows_do(kernel, dtype):
    # C = a B^T for one row of a (a one-row step's dA) sums the lanes of W
    # dot products at once, transposed in registers; with two to four rows
    # each dot's lanes are summed one by one. Same order, so the same bits:
    # every K about a vector's width (tails, K below one vector) and N off a
    # multiple of W rows (the rows after the last W go one by one).
    if kernel == "generic512":
        pytest.skip("slow emulation; the other tables cover the kernels")
    for K in (1, 3, 7, 8, 15, 16, 17, 31, 100, 128, 130, 700):
        for N in (5, 16, 37, 256):
            rng = np.random.default_rng(K * 1000 + N)
            A = rng.standard_normal((4, K)).astype(dtype)
            Bt = rng.standard_normal((N, K)).astype(dtype)
            one = _core.gemm(A[:1], Bt, False, True)
            four = _core.gemm(A, Bt, False, True)
            assert one.tobytes() == four[:1].tobytes(), f"K={K} N={N}"
            assert_close(one, _core.gemm_reference(A[:1], Bt, False, True), bound(A[:1], Bt, False, True), dtype)


# Shapes of a training step's first layer, batch M through a K x N W: a few
# rows, K beyond KC (several slices; 784 is the W1 workload's), N off the
# panel width, the W1 and W3 layers themselves.
PACKED_SHAPES = [(5, 7, 3), (64, 784, 256), (64, 784, 1024), (37, 1100, 70), (9, 1537, 33), (200, 40, 130),
                 (6, 300, 8), (1, 784, 256), (130, 3, 500)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("M,K,N", PACKED_SHAPES)
def test_product_with_packed_b_is_gemm(kernel, M, K, N, ta, dtype):
    # With B packed beforehand the product skips packing it. Wherever
    # gemm() takes its blocked path (packed_b_matches_gemm) the result is
    # gemm()'s bit for bit, epilogue included, for any thread count;
    # elsewhere it agrees with the reference GEMM to round-off.
    if kernel == "generic512" and M * N * K > 2e7:
        pytest.skip("slow emulation")
    A, B = operands(M, N, K, ta, False, dtype)
    ref = _core.gemm_reference(A, B, ta, False)
    saved = _core.get_num_threads()
    try:
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            C = _core.gemm_packed_b(A, B, ta)
            assert_close(C, ref, bound(A, B, ta, False), dtype)
            if _core.packed_b_matches_gemm(np.dtype(dtype).name, M, K, N):
                assert C.tobytes() == _core.gemm(A, B, ta).tobytes()
                assert _core.gemm_packed_b(A, B, ta, probe=True).tobytes() == \
                    _core.gemm_epilogue_probe(A, B, ta).tobytes()
    finally:
        _core.set_num_threads(saved)
    R = _core.gemm_epilogue_probe(A, B, ta, reference=True)
    assert_close(_core.gemm_packed_b(A, B, ta, probe=True), R, 2 * bound(A, B, ta, False) + 1000.0 * M + N, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", PACKED_SHAPES)
@pytest.mark.parametrize("alpha,beta", [(-0.05, 1.0), (0.5, 0.75), (0.0, 1.0), (1.5, 0.0)])
def test_update_of_packed_w_is_gemm(kernel, M, K, N, alpha, beta, dtype):
    # W := alpha A^T dZ + beta W computed on W packed and written back in the
    # packed layout, then unpacked (padding and slices round-trip): gemm()'s
    # bits where packed_b_matches_gemm, the reference's values to round-off
    # everywhere; alpha = 0, beta = 1 leaves W exactly as it was.
    if kernel == "generic512" and M * N * K > 2e7:
        pytest.skip("slow emulation")
    rng = np.random.default_rng(M + 3 * K + 7 * N)
    X = rng.standard_normal((M, K)).astype(dtype)
    dZ = rng.standard_normal((M, N)).astype(dtype)
    W0 = rng.standard_normal((K, N)).astype(dtype)
    R = W0.copy()
    _core.gemm_update(X, dZ, R, alpha, beta, True, False, reference=True)
    G = W0.copy()
    _core.gemm_update(X, dZ, G, alpha, beta, True, False)
    scale = abs(alpha) * bound(X, dZ, True, False) + abs(beta) * np.abs(W0).max()
    saved = _core.get_num_threads()
    try:
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            W = W0.copy()
            _core.gemm_into_packed(X, dZ, W, alpha, beta, True, False)
            assert_close(W, R, scale, dtype)
            if alpha == 0.0 and beta == 1.0:
                assert W.tobytes() == W0.tobytes()
            if _core.packed_b_matches_gemm(np.dtype(dtype).name, M, K, N):
                assert W.tobytes() == G.tobytes()
    finally:
        _core.set_num_threads(saved)


def test_packed_shapes_cover_both_sides_of_the_rule():
    # The cases above include layers that keep W packed and layers that do not.
    rule = [_core.packed_b_matches_gemm("float32", M, K, N) for M, K, N in PACKED_SHAPES]
    assert any(rule) and not all(rule)
    assert _core.packed_b_matches_gemm("float64", 64, 784, 256)
    assert not _core.packed_b_matches_gemm("float64", 4, 784, 256)  # a batch of 4 takes gemm's small path
    with pytest.raises(ValueError, match="dtype"):
        _core.packed_b_matches_gemm("int8", 64, 784, 256)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        _core.gemm(np.ones((3, 4)), np.ones((5, 6)))


def test_kernel_env_var_selects_and_falls_back():
    code = "from dnnfast import _core; print(_core.gemm_kernel_name())"
    for name in ("generic", "generic512"):
        env = dict(os.environ, DNNFAST_GEMM_KERNEL=name)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == name
    env = dict(os.environ, DNNFAST_GEMM_KERNEL="no-such-isa")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() in KERNELS and "not supported" in out.stderr


def test_kernel_label_and_fma_peak():
    assert _core.gemm_kernel()
    for dtype in ("float32", "float64"):
        assert _core.fma_peak_gflops(dtype, 1) > 0.1
    with pytest.raises(ValueError):
        _core.fma_peak_gflops("int8", 1)


def _cpu_features():
    """This CPU's features as NumPy's own run-time detection (CPUID) sees them:
    an independent check of dnnfast's choice, and right under qemu too."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


def test_automatic_kernel_matches_cpu_features():
    f = _cpu_features()
    avx2 = f.get("AVX2", False) and f.get("FMA3", False)
    avx512 = avx2 and all(f.get(k, False) for k in ("AVX512F", "AVX512DQ", "AVX512VL", "AVX512BW"))
    expected = "avx512" if avx512 else "avx2" if avx2 else "generic"
    assert _core.gemm_kernel_supported("avx2") == bool(avx2)
    assert _core.gemm_kernel_supported("avx512") == bool(avx512)
    assert _core.gemm_kernel_supported("generic") and _core.gemm_kernel_supported("generic512")
    previous = _core.gemm_kernel_name()
    try:
        assert _core.gemm_set_kernel("auto") == expected
    finally:
        _core.gemm_set_kernel(previous)
    # In a fresh process, with the choice left to dnnfast.
    env = {k: v for k, v in os.environ.items() if k != "DNNFAST_GEMM_KERNEL"}
    code = "from dnnfast import _core; print(_core.gemm_kernel_name())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
