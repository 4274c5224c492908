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
