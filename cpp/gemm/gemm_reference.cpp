// The simple GEMM, kept beside the fast one as its algorithmic reference.
// One output element at a time, K summed in order 0..K-1.
#include "gemm/gemm.hpp"

namespace dnnfast {

template <class T>
void gemm_reference(Trans ta, Trans tb, size_t M, size_t N, size_t K, T alpha,
                    const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C, size_t ldc,
                    const Epilogue<T>* ep) {
    for (size_t i = 0; i < M; ++i) {
        for (size_t j = 0; j < N; ++j) {
            T s = 0;
            for (size_t k = 0; k < K; ++k) {
                const T a = (ta == Trans::N) ? A[i * lda + k] : A[k * lda + i];
                const T b = (tb == Trans::N) ? B[k * ldb + j] : B[j * ldb + k];
                s += a * b;
            }
            // beta == 0 overwrites C, so C may hold garbage (even NaN) on entry.
            C[i * ldc + j] = (beta == T(0)) ? alpha * s : alpha * s + beta * C[i * ldc + j];
        }
    }
    if (ep && ep->fn && M && N) ep->fn(ep->ctx, C, ldc, 0, 0, M, N);
}

template void gemm_reference<float>(Trans, Trans, size_t, size_t, size_t, float, const float*, size_t,
                                    const float*, size_t, float, float*, size_t, const Epilogue<float>*);
template void gemm_reference<double>(Trans, Trans, size_t, size_t, size_t, double, const double*, size_t,
                                     const double*, size_t, double, double*, size_t, const Epilogue<double>*);

}  // namespace dnnfast
