// Fast GEMM front end: handles the degenerate cases, then picks a path --
// outer product (K == 1), matrix-vector style (M <= kSmallM, or N <= kSmallN
// on the transposed problem but for short dots: takes_small_n), rows from a
// copied op(B) (K <= kSmallK: vectors of a row, or scalar chains for up to
// kSmallN columns), or the packed five-loop algorithm -- with the micro-kernels of the instruction set chosen
// at run time (cpu_features.cpp). The choice depends on the shape only, never
// on the thread count, so results stay bit-identical across thread counts.
//
// Single-thread thresholds (kMinWorkPerThread in gemm_blocked.cpp, and
// kMinWorkPerThreadSmall / kMinWorkPerThreadRows in gemm_small.cpp; their
// measurements in BENCHMARKS.md, "Measurements behind the code").
#include "gemm/gemm.hpp"
#include "gemm/gemm_internal.hpp"
#include "gemm/gemm_kernels.hpp"

namespace dnnfast {

template <class T>
void gemm(Trans ta, Trans tb, size_t M, size_t N, size_t K, T alpha, const T* A, size_t lda,
          const T* B, size_t ldb, T beta, T* C, size_t ldc, const Epilogue<T>* ep) {
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == T(0)) {
        // No product to add: C := beta C (beta == 0 overwrites, even NaN).
        for (size_t i = 0; i < M; ++i)
            for (size_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
        if (ep) ep->fn(ep->ctx, C, ldc, 0, 0, M, N);
        return;
    }
    if (ep && !ep->fn) ep = nullptr;
    const KernelsFor<T>& kr = active_kernels().get<T>();
    if (takes_five_loops(M, N, K))
        gemm_blocked(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
    else if (K == 1)
        gemm_rank1(kr, ta, tb, M, N, alpha, A, lda, B, ldb, beta, C, ldc, ep);
    else if (M <= kSmallM)
        gemm_small_m(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
    else if (N <= kSmallN && takes_small_n(ta, N, K, sizeof(T)))
        gemm_small_n(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
    else if (K <= kSmallK && (N <= kSmallN || N * sizeof(T) >= kSmallKMinRowBytes))
        gemm_small_k(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
    else  // (N <= kSmallN: takes_small_n's short dots; K <= kSmallK: 4 columns to rows narrower than kSmallKMinRowBytes)
        gemm_blocked(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

template void gemm<float>(Trans, Trans, size_t, size_t, size_t, float, const float*, size_t,
                          const float*, size_t, float, float*, size_t, const Epilogue<float>*);
template void gemm<double>(Trans, Trans, size_t, size_t, size_t, double, const double*, size_t,
                           const double*, size_t, double, double*, size_t, const Epilogue<double>*);

}  // namespace dnnfast
