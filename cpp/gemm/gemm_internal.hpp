// The GEMM's internal paths, chosen by the front end (gemm.cpp). Each takes
// the front end's already-checked arguments (M, N, K > 0, alpha != 0).
#pragma once
#include <cstddef>

#include "gemm/gemm.hpp"
#include "gemm/gemm_kernels.hpp"

namespace dnnfast {

// Whether gemm() sends an M x N x K product (K >= 1) to gemm_blocked, the
// five loops; the other shapes take the paths below.
inline bool takes_five_loops(size_t M, size_t N, size_t K) {
    return K > kSmallK && M > kSmallM && N > kSmallN;
}

// Whether a product with N <= kSmallN columns (and M > kSmallM, K > 1) takes
// gemm_small_n, C^T through the small-M kernels; else K <= kSmallK takes
// gemm_small_k (its scalar chains, small_k_narrow) and a longer K the five
// loops. With op(A) = A those kernels take dot products along A's rows, K
// long, whose tails of less than a vector run element by element: for 2 or
// 3 columns and dots of more than kSmallK and fewer than kSmallNMinDotBytes
// bytes the five loops are faster, up to several times, and beyond it the
// small path as fast or faster. One column with K > kSmallK and op(A) = A^T
// (rows of A streamed, M long) keep the small path; K up to kSmallK with
// op(A) = A, where every dot is a tail, went 2-12x faster as scalar chains
// (BENCHMARKS.md, "Measurements behind the code": takes_small_n,
// small_k_narrow).
constexpr size_t kSmallNMinDotBytes = 256;
inline bool takes_small_n(Trans ta, size_t N, size_t K, size_t elem_bytes) {
    return ta == Trans::T || (K > kSmallK && (N == 1 || K * elem_bytes >= kSmallNMinDotBytes));
}

// The packed five-loop algorithm (gemm_blocked.cpp), any shape.
template <class T>
void gemm_blocked(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep);

// M <= kSmallM: streams op(B) once, no packing (gemm_small.cpp).
template <class T>
void gemm_small_m(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep);

// N <= kSmallN, M > kSmallM: C^T through gemm_small_m, then transposed
// (gemm_small.cpp).
template <class T>
void gemm_small_n(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep);

// 2 <= K <= kSmallK, M > kSmallM: rows of C from op(B) copied once
// (gemm_small.cpp).
template <class T>
void gemm_small_k(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep);

// K == 1: the outer product C := alpha * a b^T + beta * C (gemm_small.cpp).
template <class T>
void gemm_rank1(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, T alpha, const T* A, size_t lda,
                const T* B, size_t ldb, T beta, T* C, size_t ldc, const Epilogue<T>* ep);

}  // namespace dnnfast
