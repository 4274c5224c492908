// The paths for the thin products of backprop at batch size 1, where packing
// would cost as much as the arithmetic: M <= kSmallM (A W and dZ W^T with one
// row: matrix-vector products) and K == 1 (A^T dZ with one row: an outer
// product). Threads split the columns of C, or, for a one-row product through
// a large W, the rows of W into blocks fixed by the shape alone (row_blocks),
// whose partial sums are added in one order whatever the thread count. So
// results are bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "gemm/gemm_internal.hpp"
#include "gemm/gemm_pack.hpp"
#include "threads.hpp"

namespace dnnfast {

namespace {

// Multiply-adds per thread for these memory-bound paths: 2x the blocked
// path's measured break-even (gemm_blocked.cpp), because each multiply-add
// here also moves one element of op(B) or C. With 5e4, W2's 784 x 256 layer
// at batch size 1 went to two threads and training slowed down: each core's
// half of a row-major W, 512 of every 1024 bytes, maps to half of its L2's
// sets and does not stay there. Those two products now split W's rows
// instead (row_blocks, below); this column split serves the 2-4 row
// products, dZ W^T and the smaller updates. (BENCHMARKS.md, "Measurements
// behind the code": kMinWorkPerThreadSmall.)
constexpr double kMinWorkPerThreadSmall = 2.0e5;

// Columns [begin, end) of part p of parts: whole blocks of nb columns,
// counted from `lead` columns before column 0 (lead < nb), so the first
// block is nb - lead columns and the others begin at columns m nb - lead.
void split_cols(size_t n, size_t nb, size_t lead, int parts, int p, size_t& begin, size_t& end) {
    const size_t blocks = (n + lead + nb - 1) / nb;
    const auto at = [&](int q) {
        const size_t b = blocks * size_t(q) / size_t(parts) * nb;
        return std::min(n, b > lead ? b - lead : 0);
    };
    begin = at(p);
    end = at(p + 1);
}

// fn(j0, j1) on each thread's part of the N columns, in blocks of nb
// columns or more, on as many threads as `work` multiply-adds are worth: the
// one column split of every path here. The parts meet at cache-line
// boundaries of `row` (W, or C), and of all its rows when their stride is a
// whole number of lines (a 256-column float W), so no line of W is written
// by two threads: at batch size 1 the weight update writes W itself, and a
// line shared by two cores bounces between them on every row; with parts at
// arbitrary 16-byte offsets two threads were slower than one (BENCHMARKS.md,
// "Measurements behind the code": for_column_parts). The kernels give
// every column the same bits wherever its part begins.
template <class T, class F>
void for_column_parts(size_t N, size_t nb, double work, const T* row, const F& fn) {
    constexpr size_t line = 64 / sizeof(T);
    nb = (nb + line - 1) / line * line;
    const size_t lead = reinterpret_cast<std::uintptr_t>(row) / sizeof(T) % nb;
    int nt = threads_for(work, kMinWorkPerThreadSmall);
    nt = int(std::max<size_t>(1, std::min<size_t>(size_t(nt), (N + nb - 1) / nb)));
    run_team(nt, [&](int t) {
        size_t j0, j1;
        split_cols(N, nb, lead, nt, t, j0, j1);
        if (j0 < j1) fn(j0, j1);
    });
}

// One-row products through a large W (x W, and the fused update + product)
// sum each column in row_blocks(K, N) blocks of consecutive rows of W, the
// blocks' sums then added in block order; each thread takes whole blocks, so
// its part of W is contiguous, and the weight update (gemm_rank1) gives each
// thread the same rows. Splitting W by columns instead (for_column_parts)
// gives each core 512 of every 1024 bytes of a 256-column float W, which map
// to half the sets of its L2: a 784 x 256 W's half (401 KB) does not stay in
// a 512 KiB L2 between calls (BENCHMARKS.md, "Measurements behind the code":
// row_blocks). The blocks depend on the shape only (never on the thread
// count, so neither do the bits): at least kMinBlockRows rows and
// kMinBlockWork multiply-adds each, at most kMaxBlocks.
constexpr size_t kMinBlockRows = 64;
constexpr double kMinBlockWork = 5.0e4;
constexpr size_t kMaxBlocks = 8;
// Multiply-adds per thread for the row-block split: two threads from 1e5 up;
// below, the fork and join cost what the split saves (BENCHMARKS.md,
// "Measurements behind the code": kMinWorkPerThreadRows).
constexpr double kMinWorkPerThreadRows = 5.0e4;

size_t row_blocks(size_t K, size_t N) {
    const size_t by_work = size_t(double(K) * double(N) / kMinBlockWork);
    return std::max<size_t>(1, std::min({K / kMinBlockRows, by_work, kMaxBlocks}));
}

// Rows [k0, k1) of block b of nb blocks over K rows.
void block_rows(size_t K, size_t nb, size_t b, size_t& k0, size_t& k1) {
    k0 = K * b / nb;
    k1 = K * (b + 1) / nb;
}

// fn(b, k0, k1) for every row block b of nb over K rows, on as many threads
// as `work` multiply-adds are worth (at most nb); thread t takes the blocks
// [nb t / nt, nb (t + 1) / nt), so its rows are contiguous.
template <class F>
void for_row_blocks(size_t K, size_t nb, double work, const F& fn) {
    const int nt = int(std::min<size_t>(size_t(threads_for(work, kMinWorkPerThreadRows)), nb));
    run_team(nt, [&](int t) {
        for (size_t b = nb * size_t(t) / size_t(nt); b < nb * size_t(t + 1) / size_t(nt); ++b) {
            size_t k0, k1;
            block_rows(K, nb, b, k0, k1);
            fn(b, k0, k1);
        }
    });
}

// y[0:N] := alpha * (sum of the blocks' sums) + beta * y (beta == 0
// overwrites y), then the epilogue on y: the one row-block product.
// block_sum(k0, k1, p) writes the sum of W's rows [k0, k1) into p[0:N]; the
// blocks run on the threads `work` multiply-adds are worth, and their sums,
// each row on its own cache lines, are added in block order on the calling
// thread.
template <class T, class F>
void row_block_product(size_t K, size_t N, size_t blocks, double work, T alpha, T beta, T* y,
                       const Epilogue<T>* ep, const F& block_sum) {
    static thread_local PackBuffer<T> sums;
    constexpr size_t line = 64 / sizeof(T);
    const size_t ldp = (N + line - 1) / line * line;
    T* P = sums.get(blocks * ldp);
    for_row_blocks(K, blocks, work, [&](size_t b, size_t k0, size_t k1) { block_sum(k0, k1, P + b * ldp); });
    for (size_t b = 1; b < blocks; ++b)  // into block 0's row, a contiguous (vectorised) pass per block
        for (size_t j = 0; j < N; ++j) P[j] += P[b * ldp + j];
    for (size_t j = 0; j < N; ++j) {
        const T r = alpha * P[j];
        y[j] = beta == T(0) ? r : std::fma(beta, y[j], r);
    }
    if (ep) ep->fn(ep->ctx, y, N, 0, 0, 1, N);
}

}  // namespace

template <class T>
void gemm_small_m(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep) {
    // The kernels want op(A) as M contiguous rows of K; copying it is M*K, tiny
    // next to streaming op(B) (K*N).
    const T* a = A;
    if (ta == Trans::T || lda != K) {
        static thread_local PackBuffer<T> buf;
        T* p = buf.get(M * K);
        for (size_t i = 0; i < M; ++i)
            for (size_t k = 0; k < K; ++k) p[i * K + k] = ta == Trans::N ? A[i * lda + k] : A[k * lda + i];
        a = p;
    }
    const double work = double(M) * double(N) * double(K);
    const size_t blocks = M == 1 && tb == Trans::N ? row_blocks(K, N) : 1;
    if (blocks > 1) {
        row_block_product(K, N, blocks, work, alpha, beta, C, ep, [&](size_t k0, size_t k1, T* p) {
            kr.small_nn(1, N, k1 - k0, T(1), a + k0, B + k0 * ldb, ldb, T(0), p, N);
        });
        return;
    }
    const size_t nb = tb == Trans::N ? kr.small_nb : 4;
    const SmallKernel<T> kernel = tb == Trans::N ? kr.small_nn : kr.small_nt;
    // A W is split along the lines of W (B), so that at batch size 1 each
    // thread reads the columns of W it updates later (gemm_rank1).
    for_column_parts(N, nb, work, tb == Trans::N ? B : C, [&](size_t j0, size_t j1) {
        const T* b = tb == Trans::N ? B + j0 : B + j0 * ldb;
        kernel(M, j1 - j0, K, alpha, a, b, ldb, beta, C + j0, ldc);
        if (ep) ep->fn(ep->ctx, C + j0, ldc, 0, j0, M, j1 - j0);
    });
}

template <class T>
void gemm_small_n(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep) {
    // C^T = op(B)^T op(A)^T has N <= kSmallN rows: the small-M kernels stream
    // op(A) once (the rows of A as dot products, or A^T's rows as they lie),
    // where the five loops would pack all of op(A) for NR-wide tiles holding
    // one to three useful columns. At four columns the five loops were
    // already faster, hence N <= 3 (BENCHMARKS.md, "Measurements behind the
    // code": gemm_small_n). C^T goes to a scratch, is transposed into C, and
    // the epilogue runs on the whole of C.
    static thread_local PackBuffer<T> buf;
    T* ct = buf.get(N * M);
    if (beta != T(0))
        for (size_t i = 0; i < M; ++i)
            for (size_t j = 0; j < N; ++j) ct[j * M + i] = C[i * ldc + j];
    gemm_small_m(kr, tb == Trans::N ? Trans::T : Trans::N, ta == Trans::N ? Trans::T : Trans::N, N, M, K, alpha,
                 B, ldb, A, lda, beta, ct, M, static_cast<const Epilogue<T>*>(nullptr));
    for (size_t i = 0; i < M; ++i)
        for (size_t j = 0; j < N; ++j) C[i * ldc + j] = ct[j * M + i];
    if (ep) ep->fn(ep->ctx, C, ldc, 0, 0, M, N);
}

template <class T>
void gemm_small_k(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep) {
    // 2 <= K <= kSmallK: each element of C is a chain of a few FMAs, so the
    // five loops' packing and their C tiles stored and then read again by the
    // epilogue cost more than the arithmetic (BENCHMARKS.md, "Measurements
    // behind the code": gemm_small_k). Here op(B), K x N, is copied once
    // into rows zero-padded to a whole number of vectors, and C is written
    // row by row, each thread's rows going through the epilogue while still
    // in cache.
    // Same FMA chains and stores as the five loops: the same bits.
    constexpr size_t kPad = 16;  // a multiple of every table's vector length
    const size_t ldbp = (N + kPad - 1) / kPad * kPad;
    static thread_local PackBuffer<T> buf;
    T* bp = buf.get(K * ldbp);
    for (size_t k = 0; k < K; ++k) {
        T* row = bp + k * ldbp;
        for (size_t j = 0; j < N; ++j) row[j] = tb == Trans::N ? B[k * ldb + j] : B[j * ldb + k];
        for (size_t j = N; j < ldbp; ++j) row[j] = T(0);
    }
    const size_t a_rs = ta == Trans::N ? lda : 1, a_ks = ta == Trans::N ? 1 : lda;
    const T* const mask = ep ? ep->relu_mask : nullptr;  // relu' applied as the kernel stores (Epilogue)
    // Rows per epilogue call: about 16 KiB of C, so it is still in L1.
    const size_t rows = std::max<size_t>(1, 16384 / sizeof(T) / std::max<size_t>(1, N));
    const int nt = int(std::min<size_t>(size_t(threads_for(double(M) * double(N) * double(K), kMinWorkPerThreadSmall)),
                                        (M + rows - 1) / rows));
    run_team(nt, [&](int t) {
        const size_t i_begin = M * size_t(t) / size_t(nt), i_end = M * size_t(t + 1) / size_t(nt);
        for (size_t i0 = i_begin; i0 < i_end; i0 += rows) {
            const size_t m = std::min(rows, i_end - i0);
            kr.small_k(m, N, K, alpha, A + i0 * a_rs, a_rs, a_ks, bp, ldbp, beta, C + i0 * ldc, ldc,
                       mask ? mask + i0 * ldc : nullptr);
            if (ep && !mask) ep->fn(ep->ctx, C + i0 * ldc, ldc, i0, 0, m, N);
        }
    });
}

template <class T>
void gemm_rank1(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, T alpha, const T* A, size_t lda,
                const T* B, size_t ldb, T beta, T* C, size_t ldc, const Epilogue<T>* ep) {
    // op(A) is a column (M x 1), op(B) a row (1 x N); make the row contiguous.
    const T* b = B;
    if (tb == Trans::T && ldb != 1) {
        static thread_local PackBuffer<T> buf;
        T* p = buf.get(N);
        for (size_t j = 0; j < N; ++j) p[j] = B[j * ldb];
        b = p;
    }
    const size_t a_stride = ta == Trans::N ? lda : 1;
    const T* const mask = ep ? ep->relu_mask : nullptr;  // relu' applied as the kernel stores (Epilogue)
    // At batch size 1 the weight update W -= lr a^T dz: threads take the same
    // row blocks of W as the one-row product through it (x W) reads, so each
    // core's share of W stays in its own L2 from one step to the next.
    const size_t blocks = row_blocks(M, N);
    if (blocks > 1) {
        for_row_blocks(M, blocks, double(M) * double(N), [&](size_t, size_t i0, size_t i1) {
            kr.rank1(i1 - i0, N, alpha, A + i0 * a_stride, a_stride, b, beta, C + i0 * ldc, ldc,
                     mask ? mask + i0 * ldc : nullptr);
            if (ep && !mask) ep->fn(ep->ctx, C + i0 * ldc, ldc, i0, 0, i1 - i0, N);
        });
        return;
    }
    // Threads split the columns, in the same blocks as gemm_small_m's A W: at
    // batch size 1 the weight update W -= lr a^T dz then touches exactly the
    // columns of W that the same thread read in the forward pass, so each
    // core's share of W stays in its own L2 instead of bouncing between them.
    for_column_parts(N, kr.small_nb, double(M) * double(N), C, [&](size_t j0, size_t j1) {
        // Vectorised for the instruction set in use: at batch size 1 this
        // sweep over W is half of a training step.
        kr.rank1(M, j1 - j0, alpha, A, a_stride, b + j0, beta, C + j0, ldc, mask ? mask + j0 : nullptr);
        if (ep && !mask) ep->fn(ep->ctx, C + j0, ldc, 0, j0, M, j1 - j0);
    });
}

template <class T>
void gemm_rank1_gemv(size_t K, size_t N, T alpha, const T* u, const T* v, T* W, size_t ldw, const T* x,
                     T* y, const Epilogue<T>* ep) {
    if (N == 0) return;
    if (ep && !ep->fn) ep = nullptr;
    const KernelsFor<T>& kr = active_kernels().get<T>();
    if (K == 0 || alpha == T(0)) {  // the degenerate cases, through the two calls it stands for
        gemm<T>(Trans::T, Trans::N, K, N, 1, alpha, u, K, v, N, T(1), W, ldw);
        gemm<T>(Trans::N, Trans::N, 1, N, K, T(1), x, K, W, ldw, T(0), y, N, ep);
        return;
    }
    // The same row blocks, or column split, and thread count as the two calls:
    // each thread updates and reads the same part of W, and y gets the bits of
    // the one-row product.
    const size_t blocks = row_blocks(K, N);
    if (blocks > 1) {
        row_block_product(K, N, blocks, double(K) * double(N), T(1), T(0), y, ep, [&](size_t k0, size_t k1, T* p) {
            kr.rank1_gemv(k1 - k0, N, alpha, u + k0, v, W + k0 * ldw, ldw, x + k0, p);
        });
        return;
    }
    for_column_parts(N, kr.small_nb, double(K) * double(N), W, [&](size_t j0, size_t j1) {
        kr.rank1_gemv(K, j1 - j0, alpha, u, v + j0, W + j0, ldw, x, y + j0);
        if (ep) ep->fn(ep->ctx, y + j0, N, 0, j0, 1, j1 - j0);
    });
}

template <class T>
void gemm_dot_rank1(size_t M, size_t N, T alpha, const T* u, const T* v, T* W, size_t ldw, T* y,
                    const Epilogue<T>* ep) {
    if (M == 0) return;
    if (ep && !ep->fn) ep = nullptr;
    // One column (the product's K = 1 takes the rank-1 path), or no step:
    // through the two calls it stands for.
    if (N < 2 || alpha == T(0)) {
        gemm<T>(Trans::N, Trans::T, 1, M, N, T(1), v, N, W, ldw, T(0), y, M, ep);
        gemm<T>(Trans::T, Trans::N, M, N, 1, alpha, u, M, v, N, T(1), W, ldw);
        return;
    }
    const KernelsFor<T>& kr = active_kernels().get<T>();
    // Each row's dot is whole on one thread, so any split gives the same
    // bits; the row blocks of the rank-1 update keep each core on its rows.
    for_row_blocks(M, row_blocks(M, N), double(M) * double(N), [&](size_t, size_t i0, size_t i1) {
        kr.dot_rank1(i1 - i0, N, alpha, u + i0, v, W + i0 * ldw, ldw, y + i0);
    });
    if (ep) ep->fn(ep->ctx, y, M, 0, 0, 1, M);
}

#define DNNFAST_SMALL_INSTANTIATE(T)                                                              \
    template void gemm_small_m<T>(const KernelsFor<T>&, Trans, Trans, size_t, size_t, size_t, T,   \
                                  const T*, size_t, const T*, size_t, T, T*, size_t,              \
                                  const Epilogue<T>*);                                            \
    template void gemm_small_k<T>(const KernelsFor<T>&, Trans, Trans, size_t, size_t, size_t, T,   \
                                  const T*, size_t, const T*, size_t, T, T*, size_t,              \
                                  const Epilogue<T>*);                                            \
    template void gemm_small_n<T>(const KernelsFor<T>&, Trans, Trans, size_t, size_t, size_t, T,   \
                                  const T*, size_t, const T*, size_t, T, T*, size_t,              \
                                  const Epilogue<T>*);                                            \
    template void gemm_rank1<T>(const KernelsFor<T>&, Trans, Trans, size_t, size_t, T, const T*, size_t, const T*,       \
                                size_t, T, T*, size_t, const Epilogue<T>*);                                            \
    template void gemm_rank1_gemv<T>(size_t, size_t, T, const T*, const T*, T*, size_t, const T*, T*,                   \
                                     const Epilogue<T>*);                                                               \
    template void gemm_dot_rank1<T>(size_t, size_t, T, const T*, const T*, T*, size_t, T*, const Epilogue<T>*);
DNNFAST_SMALL_INSTANTIATE(float)
DNNFAST_SMALL_INSTANTIATE(double)

}  // namespace dnnfast
