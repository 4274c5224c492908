// The paths for the thin products of backprop at batch size 1, where packing
// would cost as much as the arithmetic: M <= kSmallM (A W and dZ W^T with one
// row: matrix-vector products) and K == 1 (A^T dZ with one row: an outer
// product). Threads split the columns of C, never the K sum, so results are
// bit-identical for any thread count.
#include <algorithm>
#include <cstdint>

#include "gemm/gemm_internal.hpp"
#include "gemm/gemm_pack.hpp"
#include "threads.hpp"

namespace dnnfast {

namespace {

// Multiply-adds per thread for these memory-bound paths: 2x the blocked
// path's measured break-even (gemm_blocked.cpp), because each multiply-add
// here also moves one element of op(B) or C. Checked on the W2 workload
// (784-256-128-10 at batch size 1, 2-core EPYC): with 5e4 the 784 x 256 layer
// went to two threads and training fell from 20-25k to 12-13k samples/s
// (3.8-4.0k while the parts still shared cache lines, below), and one-row
// predict gained 1-2 us of 21-23: each core's half of a row-major W, 512 of
// every 1024 bytes, maps to half of its L2's sets and does not stay there.
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
// line shared by two cores bounces between them on every row. With parts at
// arbitrary 16-byte offsets, the 784 x 1024 float update on 2 threads took
// 140-200 us against 104-130 us on one (93-95 us now). The kernels give
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
    const size_t nb = tb == Trans::N ? kr.small_nb : 4;
    const SmallKernel<T> kernel = tb == Trans::N ? kr.small_nn : kr.small_nt;
    // A W is split along the lines of W (B), so that at batch size 1 each
    // thread reads the columns of W it updates later (gemm_rank1).
    for_column_parts(N, nb, double(M) * double(N) * double(K), tb == Trans::N ? B : C, [&](size_t j0, size_t j1) {
        const T* b = tb == Trans::N ? B + j0 : B + j0 * ldb;
        kernel(M, j1 - j0, K, alpha, a, b, ldb, beta, C + j0, ldc);
        if (ep) ep->fn(ep->ctx, C + j0, ldc, 0, j0, M, j1 - j0);
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
    // Threads split the columns, in the same blocks as gemm_small_m's A W: at
    // batch size 1 the weight update W -= lr a^T dz then touches exactly the
    // columns of W that the same thread read in the forward pass, so each
    // core's share of W stays in its own L2 instead of bouncing between them.
    for_column_parts(N, kr.small_nb, double(M) * double(N), C, [&](size_t j0, size_t j1) {
        // Vectorised for the instruction set in use: at batch size 1 this
        // sweep over W is half of a training step.
        kr.rank1(M, j1 - j0, alpha, A, a_stride, b + j0, beta, C + j0, ldc);
        if (ep) ep->fn(ep->ctx, C + j0, ldc, 0, j0, M, j1 - j0);
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
    // The same column split (blocks of small_nb) and thread count as the two
    // calls: each thread updates and reads the same columns of W.
    for_column_parts(N, kr.small_nb, double(K) * double(N), W, [&](size_t j0, size_t j1) {
        kr.rank1_gemv(K, j1 - j0, alpha, u, v + j0, W + j0, ldw, x, y + j0);
        if (ep) ep->fn(ep->ctx, y + j0, N, 0, j0, 1, j1 - j0);
    });
}

#define DNNFAST_SMALL_INSTANTIATE(T)                                                              \
    template void gemm_small_m<T>(const KernelsFor<T>&, Trans, Trans, size_t, size_t, size_t, T,   \
                                  const T*, size_t, const T*, size_t, T, T*, size_t,              \
                                  const Epilogue<T>*);                                            \
    template void gemm_rank1<T>(const KernelsFor<T>&, Trans, Trans, size_t, size_t, T, const T*, size_t, const T*,       \
                                size_t, T, T*, size_t, const Epilogue<T>*);                                            \
    template void gemm_rank1_gemv<T>(size_t, size_t, T, const T*, const T*, T*, size_t, const T*, T*,                   \
                                     const Epilogue<T>*);
DNNFAST_SMALL_INSTANTIATE(float)
DNNFAST_SMALL_INSTANTIATE(double)

}  // namespace dnnfast
