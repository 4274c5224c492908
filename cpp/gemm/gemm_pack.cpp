// Packing of A and B blocks (see gemm_pack.hpp). Built for baseline x86-64:
// packing moves data, its cost is O(MK + KN) against the O(MNK) kernel.
#include "gemm/gemm_pack.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include <emmintrin.h>  // SSE2: part of baseline x86-64

namespace dnnfast {

namespace {

// dst[k * ldd + i] = src[i * lds + k] for i < rows, k < kc: the transposing
// copy of both pack_a (A row-major) and pack_b (B stored N x K). Done in 4 x 4
// (float) / 2 x 2 (double) register transposes, since one scalar store per
// element made this copy cost as much as the kernel on thin products.
template <class T>
void transpose_copy(const T* src, size_t lds, size_t rows, size_t kc, T* dst, size_t ldd) {
    for (size_t i = 0; i < rows; ++i)
        for (size_t k = 0; k < kc; ++k) dst[k * ldd + i] = src[i * lds + k];
}

template <>
void transpose_copy<float>(const float* src, size_t lds, size_t rows, size_t kc, float* dst,
                           size_t ldd) {
    size_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        const float* s = src + i * lds;
        size_t k = 0;
        for (; k + 4 <= kc; k += 4) {
            __m128 r0 = _mm_loadu_ps(s + k), r1 = _mm_loadu_ps(s + lds + k);
            __m128 r2 = _mm_loadu_ps(s + 2 * lds + k), r3 = _mm_loadu_ps(s + 3 * lds + k);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_storeu_ps(dst + k * ldd + i, r0);
            _mm_storeu_ps(dst + (k + 1) * ldd + i, r1);
            _mm_storeu_ps(dst + (k + 2) * ldd + i, r2);
            _mm_storeu_ps(dst + (k + 3) * ldd + i, r3);
        }
        for (; k < kc; ++k)
            for (size_t ii = 0; ii < 4; ++ii) dst[k * ldd + i + ii] = s[ii * lds + k];
    }
    for (; i < rows; ++i)
        for (size_t k = 0; k < kc; ++k) dst[k * ldd + i] = src[i * lds + k];
}

template <>
void transpose_copy<double>(const double* src, size_t lds, size_t rows, size_t kc, double* dst,
                            size_t ldd) {
    size_t i = 0;
    for (; i + 2 <= rows; i += 2) {
        const double* s = src + i * lds;
        size_t k = 0;
        for (; k + 2 <= kc; k += 2) {
            const __m128d r0 = _mm_loadu_pd(s + k), r1 = _mm_loadu_pd(s + lds + k);
            _mm_storeu_pd(dst + k * ldd + i, _mm_unpacklo_pd(r0, r1));
            _mm_storeu_pd(dst + (k + 1) * ldd + i, _mm_unpackhi_pd(r0, r1));
        }
        for (; k < kc; ++k) {
            dst[k * ldd + i] = s[k];
            dst[k * ldd + i + 1] = s[lds + k];
        }
    }
    for (; i < rows; ++i)
        for (size_t k = 0; k < kc; ++k) dst[k * ldd + i] = src[i * lds + k];
}

}  // namespace

template <class T>
void gemm_pack_a(Trans ta, const T* A, size_t lda, size_t i0, size_t k0, size_t mc, size_t kc,
                 size_t mr, T* dst) {
    for (size_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
        const size_t m = mc - ir < mr ? mc - ir : mr;
        if (ta == Trans::N) {
            // op(A) = A: row i is contiguous over k, so read rows, write strided.
            transpose_copy(A + (i0 + ir) * lda + k0, lda, m, kc, dst, mr);
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
            transpose_copy(B + (j0 + jr) * ldb + k0, ldb, n, kc, dst, nr);
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
