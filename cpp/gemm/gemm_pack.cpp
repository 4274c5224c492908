// Packing of A and B blocks (see gemm_pack.hpp). Built for baseline x86-64:
// packing moves data, its cost is O(MK + KN) against the O(MNK) kernel.
#include "gemm/gemm_pack.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

namespace dnnfast {

template <class T>
void gemm_pack_a(Trans ta, const T* A, size_t lda, size_t i0, size_t k0, size_t mc, size_t kc,
                 size_t mr, T* dst) {
    for (size_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
        const size_t m = mc - ir < mr ? mc - ir : mr;
        if (ta == Trans::N) {
            // op(A) = A: row i is contiguous over k, so read rows, write strided.
            for (size_t i = 0; i < m; ++i) {
                const T* src = A + (i0 + ir + i) * lda + k0;
                for (size_t k = 0; k < kc; ++k) dst[k * mr + i] = src[k];
            }
            for (size_t i = m; i < mr; ++i)
                for (size_t k = 0; k < kc; ++k) dst[k * mr + i] = T(0);
        } else {
            // op(A) = A^T, A stored K x M: the MR values of one k are contiguous.
            for (size_t k = 0; k < kc; ++k) {
                const T* src = A + (k0 + k) * lda + i0 + ir;
                T* d = dst + k * mr;
                for (size_t i = 0; i < m; ++i) d[i] = src[i];
                for (size_t i = m; i < mr; ++i) d[i] = T(0);
            }
        }
    }
}

template <class T>
void gemm_pack_b(Trans tb, const T* B, size_t ldb, size_t k0, size_t j0, size_t kc, size_t nc,
                 size_t nr, T* dst) {
    for (size_t jr = 0; jr < nc; jr += nr, dst += nr * kc) {
        const size_t n = nc - jr < nr ? nc - jr : nr;
        if (tb == Trans::N) {
            // op(B) = B: the NR values of one k are contiguous.
            for (size_t k = 0; k < kc; ++k) {
                const T* src = B + (k0 + k) * ldb + j0 + jr;
                T* d = dst + k * nr;
                for (size_t j = 0; j < n; ++j) d[j] = src[j];
                for (size_t j = n; j < nr; ++j) d[j] = T(0);
            }
        } else {
            // op(B) = B^T, B stored N x K: column j of op(B) is row j of B.
            for (size_t j = 0; j < n; ++j) {
                const T* src = B + (j0 + jr + j) * ldb + k0;
                for (size_t k = 0; k < kc; ++k) dst[k * nr + j] = src[k];
            }
            for (size_t j = n; j < nr; ++j)
                for (size_t k = 0; k < kc; ++k) dst[k * nr + j] = T(0);
        }
    }
}

template <class T>
PackBuffer<T>::~PackBuffer() {
    std::free(data_);
}

template <class T>
T* PackBuffer<T>::get(size_t n) {
    if (n > size_) {
        std::free(data_);
        data_ = nullptr;
        size_ = 0;
        const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
        void* p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        data_ = static_cast<T*>(p);
        size_ = n;
    }
    return data_;
}

#define DNNFAST_PACK_INSTANTIATE(T)                                                              \
    template void gemm_pack_a<T>(Trans, const T*, size_t, size_t, size_t, size_t, size_t, size_t, \
                                 T*);                                                            \
    template void gemm_pack_b<T>(Trans, const T*, size_t, size_t, size_t, size_t, size_t, size_t, \
                                 T*);                                                            \
    template class PackBuffer<T>;
DNNFAST_PACK_INSTANTIATE(float)
DNNFAST_PACK_INSTANTIATE(double)

}  // namespace dnnfast
