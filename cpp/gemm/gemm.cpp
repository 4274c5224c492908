// Fast GEMM front end. (Placeholder: forwards to the reference until the
// packed implementation lands.)
#include "gemm/gemm.hpp"

namespace dnnfast {

template <class T>
void gemm(Trans ta, Trans tb, size_t M, size_t N, size_t K, T alpha, const T* A, size_t lda,
          const T* B, size_t ldb, T beta, T* C, size_t ldc, const Epilogue<T>* ep) {
    gemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

template void gemm<float>(Trans, Trans, size_t, size_t, size_t, float, const float*, size_t,
                          const float*, size_t, float, float*, size_t, const Epilogue<float>*);
template void gemm<double>(Trans, Trans, size_t, size_t, size_t, double, const double*, size_t,
                           const double*, size_t, double, double*, size_t, const Epilogue<double>*);

}  // namespace dnnfast
