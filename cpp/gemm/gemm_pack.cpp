// Packing of A and B blocks (see gemm_pack.hpp). Built for the target's
// baseline (no ISA flags): packing moves data, its cost is O(MK + KN) against
// the O(MNK) kernel. The SSE2 transposes below are x86-64 only (SSE2 is part
// of its baseline); other CPUs use the plain loop.
#include "gemm/gemm_pack.hpp"

#include "gemm/gemm_kernels.hpp"
#include "gemm/packed_b.hpp"
#include "checked.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_PACK_SSE2 1
#include <emmintrin.h>  // SSE2: part of baseline x86-64
#endif

namespace dnnfast {

namespace {

// dst[k * ldd + i] = src[i * lds + k] for i < rows, k < kc: the transposing
// copy of both pack_a (A row-major) and pack_b (B stored N x K), one panel
// (rows <= MR or NR) at a time, for the tables without their own
// (transpose_generic, below). Done in 4 x 4 (float) / 2 x 2 (double)
// register transposes, since one scalar store per element made this copy
// cost as much as the kernel on thin products. In blocks of k four cache
// lines of a source row long: a row group reads its lines whole, in order,
// before the next group, and the block's stores stay within a few KiB of
// the panel. (Walking down the whole panel per row group made the copy
// store-bound; all rows per k step, with rows 4 KiB apart and so in one L1
// set, re-read every line; blocks of one line left float64 slower than the
// whole-panel walk: BENCHMARKS.md, "Measurements behind the code":
// transpose_copy.)
template <class T>
void transpose_copy(const T* src, size_t lds, size_t rows, size_t kc, T* dst, size_t ldd) {
    for (size_t i = 0; i < rows; ++i)
        for (size_t k = 0; k < kc; ++k) dst[k * ldd + i] = src[i * lds + k];
}

#ifdef DNNFAST_PACK_SSE2
template <>
void transpose_copy<float>(const float* src, size_t lds, size_t rows, size_t kc, float* dst,
                           size_t ldd) {
    constexpr size_t KB = 64;  // four 64-byte lines of a row
    const size_t r4 = rows / 4 * 4;
    for (size_t kb = 0; kb < kc; kb += KB) {
        const size_t ke = kb + KB < kc ? kb + KB : kc;
        const size_t k4 = kb + (ke - kb) / 4 * 4;
        size_t i = 0;
        for (; i < r4; i += 4)
            for (size_t k = kb; k < k4; k += 4) {
                const float* s = src + i * lds + k;
                float* d = dst + k * ldd + i;
                __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + lds);
                __m128 r2 = _mm_loadu_ps(s + 2 * lds), r3 = _mm_loadu_ps(s + 3 * lds);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _mm_storeu_ps(d, r0);
                _mm_storeu_ps(d + ldd, r1);
                _mm_storeu_ps(d + 2 * ldd, r2);
                _mm_storeu_ps(d + 3 * ldd, r3);
            }
        if (i + 2 <= rows) {  // two rows left (MR = 6, 14): 2 x 4 transposes
            for (size_t k = kb; k < k4; k += 4) {
                const float* s = src + i * lds + k;
                float* d = dst + k * ldd + i;
                const __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + lds);
                const __m128 lo = _mm_unpacklo_ps(r0, r1), hi = _mm_unpackhi_ps(r0, r1);
                _mm_storel_pi(reinterpret_cast<__m64*>(d), lo);
                _mm_storeh_pi(reinterpret_cast<__m64*>(d + ldd), lo);
                _mm_storel_pi(reinterpret_cast<__m64*>(d + 2 * ldd), hi);
                _mm_storeh_pi(reinterpret_cast<__m64*>(d + 3 * ldd), hi);
            }
            i += 2;
        }
        for (; i < rows; ++i)
            for (size_t k = kb; k < k4; ++k) dst[k * ldd + i] = src[i * lds + k];
        for (size_t k = k4; k < ke; ++k)
            for (size_t ii = 0; ii < rows; ++ii) dst[k * ldd + ii] = src[ii * lds + k];
    }
}

template <>
void transpose_copy<double>(const double* src, size_t lds, size_t rows, size_t kc, double* dst,
                            size_t ldd) {
    constexpr size_t KB = 32;  // four 64-byte lines of a row
    const size_t r2 = rows / 2 * 2;
    for (size_t kb = 0; kb < kc; kb += KB) {
        const size_t ke = kb + KB < kc ? kb + KB : kc;
        const size_t k2 = kb + (ke - kb) / 2 * 2;
        for (size_t i = 0; i < r2; i += 2)
            for (size_t k = kb; k < k2; k += 2) {
                const double* s = src + i * lds + k;
                double* d = dst + k * ldd + i;
                const __m128d r0 = _mm_loadu_pd(s), r1 = _mm_loadu_pd(s + lds);
                _mm_storeu_pd(d, _mm_unpacklo_pd(r0, r1));
                _mm_storeu_pd(d + ldd, _mm_unpackhi_pd(r0, r1));
            }
        if (r2 < rows)
            for (size_t k = kb; k < k2; ++k) dst[k * ldd + r2] = src[r2 * lds + k];
        if (k2 < ke)
            for (size_t i = 0; i < rows; ++i) dst[k2 * ldd + i] = src[i * lds + k2];
    }
}
#endif  // DNNFAST_PACK_SSE2

}  // namespace

void transpose_generic(const float* src, size_t lds, size_t rows, size_t kc, float* dst, size_t ldd) {
    transpose_copy(src, lds, rows, kc, dst, ldd);
}
void transpose_generic(const double* src, size_t lds, size_t rows, size_t kc, double* dst, size_t ldd) {
    transpose_copy(src, lds, rows, kc, dst, ldd);
}

namespace {

// Panels of a row-major source whose panel rows are contiguous -- op(A) = A^T
// (A stored K x M, MR values of one k adjacent) and op(B) = B (K x N, NR
// values adjacent): the whole P-wide panels of columns [j0, j0 + cols), rows
// [k0, k0 + kc), each stored k-major. Done row by row, so the source is read in
// order and each piece is a fixed-size copy; walking one panel down all kc
// rows instead costs a strided read and a variable-length copy per row
// (BENCHMARKS.md, "Measurements behind the code": pack_rows_fixed).
// Returns the columns done (a multiple of P); the caller packs the rest.
template <size_t P, class T>
size_t pack_rows_fixed(const T* src, size_t ld, size_t k0, size_t j0, size_t kc, size_t cols, T* dst) {
    const size_t full = cols / P * P;
    for (size_t k = 0; k < kc; ++k) {
        const T* s = src + (k0 + k) * ld + j0;
        T* d = dst + k * P;
        for (size_t j = 0; j < full; j += P, d += P * kc) std::memcpy(d, s + j, P * sizeof(T));
    }
    return full;
}

template <class T>
size_t pack_rows(const T* src, size_t ld, size_t k0, size_t j0, size_t kc, size_t cols, size_t p,
                 T* dst) {
    switch (p) {  // the panel widths of the kernel tables
        case 4: return pack_rows_fixed<4>(src, ld, k0, j0, kc, cols, dst);
        case 6: return pack_rows_fixed<6>(src, ld, k0, j0, kc, cols, dst);
        case 8: return pack_rows_fixed<8>(src, ld, k0, j0, kc, cols, dst);
        case 14: return pack_rows_fixed<14>(src, ld, k0, j0, kc, cols, dst);
        case 16: return pack_rows_fixed<16>(src, ld, k0, j0, kc, cols, dst);
        case 32: return pack_rows_fixed<32>(src, ld, k0, j0, kc, cols, dst);
        default: return 0;  // the caller's general loop does every panel
    }
}

}  // namespace

template <class T>
void gemm_pack_a(Trans ta, const T* A, size_t lda, size_t i0, size_t k0, size_t mc, size_t kc,
                 size_t mr, T* dst, TransposeFn<T> transpose) {
    // A partial micro-panel's rows past m are left as they are: the micro-tile
    // computes exactly its m rows and never reads them, and zeroing them is
    // not free on short products (BENCHMARKS.md, "Measurements behind the
    // code": gemm_pack_a).
    size_t done = 0;
    if (ta == Trans::T) {
        done = pack_rows(A, lda, k0, i0, kc, mc, mr, dst);
        dst += done * kc;
    }
    for (size_t ir = done; ir < mc; ir += mr, dst += mr * kc) {
        const size_t m = mc - ir < mr ? mc - ir : mr;
        if (ta == Trans::N) {
            // op(A) = A: row i is contiguous over k, so read rows, write strided.
            transpose(A + (i0 + ir) * lda + k0, lda, m, kc, dst, mr);
        } else {
            // op(A) = A^T, A stored K x M: the MR values of one k are contiguous.
            for (size_t k = 0; k < kc; ++k) {
                const T* src = A + (k0 + k) * lda + i0 + ir;
                T* d = dst + k * mr;
                for (size_t i = 0; i < m; ++i) d[i] = src[i];
            }
        }
    }
}


template <class T>
void gemm_pack_b(Trans tb, const T* B, size_t ldb, size_t k0, size_t j0, size_t kc, size_t nc,
                 size_t nr, T* dst, TransposeFn<T> transpose) {
    size_t done = 0;
    if (tb == Trans::N) {
        done = pack_rows(B, ldb, k0, j0, kc, nc, nr, dst);
        dst += done * kc;
    }
    for (size_t jr = done; jr < nc; jr += nr, dst += nr * kc) {
        const size_t n = nc - jr < nr ? nc - jr : nr;
        // A partial panel's columns past n are zeros (the kernels compute
        // those lanes, never storing them; stale bits could be slow
        // subnormals), zeroed for the whole panel at once: zeroing them row
        // by row compiled to a memset call for each k. The copies below
        // write only the n columns.
        if (n < nr) std::memset(dst, 0, kc * nr * sizeof(T));
        if (tb == Trans::N) {
            // op(B) = B: the NR values of one k are contiguous.
            for (size_t k = 0; k < kc; ++k) {
                const T* src = B + (k0 + k) * ldb + j0 + jr;
                T* d = dst + k * nr;
                for (size_t j = 0; j < n; ++j) d[j] = src[j];
            }
        } else {
            // op(B) = B^T, B stored N x K: column j of op(B) is row j of B.
            transpose(B + (j0 + jr) * ldb + k0, ldb, n, kc, dst, nr);
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

template <class T>
void PackedB<T>::layout(size_t K, size_t N) {
    kr_ = &active_kernels().get<T>();
    const size_t NR = kr_->nr;
    K_ = K;
    N_ = N;
    npad_ = checked_mul((N + NR - 1) / NR, NR, "packed matrix");
    ks_ = K ? k_slice_depth(K, kr_->kc) : 0;
    buf_.get(std::max<size_t>(1, checked_mul(K, npad_, "packed matrix")));
}

template <class T>
void PackedB<T>::reserve(size_t K, size_t N) {
    layout(K, N);
}

template <class T>
void PackedB<T>::pack(const T* B, size_t ldb, size_t K, size_t N) {
    layout(K, N);
    for (size_t p0 = 0; p0 < K; p0 += ks_)
        gemm_pack_b(Trans::N, B, ldb, p0, 0, std::min(ks_, K - p0), N, kr_->nr, buf_.data() + p0 * npad_,
                    kr_->transpose);
}

template <class T>
void PackedB<T>::unpack(T* B, size_t ldb) const {
    const size_t NR = kr_ ? kr_->nr : 1;
    for (size_t p0 = 0; p0 < K_; p0 += ks_) {
        const size_t kc = std::min(ks_, K_ - p0);
        const T* s = buf_.data() + p0 * npad_;
        for (size_t j0 = 0; j0 < N_; j0 += NR, s += kc * NR) {
            const size_t n = std::min(NR, N_ - j0);
            for (size_t k = 0; k < kc; ++k) std::memcpy(B + (p0 + k) * ldb + j0, s + k * NR, n * sizeof(T));
        }
    }
}

#define DNNFAST_PACK_INSTANTIATE(T)                                                              \
    template void gemm_pack_a<T>(Trans, const T*, size_t, size_t, size_t, size_t, size_t, size_t, \
                                 T*, TransposeFn<T>);                                            \
    template void gemm_pack_b<T>(Trans, const T*, size_t, size_t, size_t, size_t, size_t, size_t, \
                                 T*, TransposeFn<T>);                                            \
    template class PackBuffer<T>;                                                                \
    template class PackedB<T>;
DNNFAST_PACK_INSTANTIATE(float)
DNNFAST_PACK_INSTANTIATE(double)

}  // namespace dnnfast
