// AVX2 + FMA vector operations for the kernel template (gemm_simd.hpp): float
// and double lanes of 256 bits. Included only by files built with -mavx2
// -mfma (gemm_kernels_avx2.cpp, tools/gemm_sweep.cpp), each getting its own
// internal copy, in namespace isa_avx2.
#pragma once
#if !(defined(__x86_64__) || defined(_M_X64))
#error "ops_avx2.hpp is x86-64 only: include it only from *_avx2.cpp files"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace dnnfast {
namespace isa_avx2 {
namespace {

struct OpsF {
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t VI __attribute__((vector_size(32)));  // same lanes as integers (vmath_impl.hpp)
    static V splat(float s) { return _mm256_set1_ps(s); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    // Lanes [0, r) from p, the rest zero; nothing past p + r is read (r < 8).
    static V load_head(const float* p, size_t r) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(r)), lane));
    }
    // Lanes [0, r) to p; nothing past p + r is written (r < 8).
    static void store_head(float* p, V v, size_t r) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(r)), lane), v);
    }
    // t[j] in each lane, j in [0, 16) (vmath_impl.hpp's exp): each half of
    // the table permuted, then bit 3 of j (moved to the sign bit) picks.
    static V lookup16(const float* t, VI j) {
        const __m256i i = (__m256i)j;
        const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t), i);
        const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 8), i);
        return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)));
    }
};
struct OpsD {
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t VI __attribute__((vector_size(32)));
    static V splat(double s) { return _mm256_set1_pd(s); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V load_head(const double* p, size_t r) {
        const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
        return _mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(r)), lane));
    }
    static void store_head(double* p, V v, size_t r) {
        const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
        _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(r)), lane), v);
    }
    // t[j], j in [0, 16): a gather with 32-bit indices (j's low halves).
    // Not vgatherqpd with j as it is: under qemu-x86_64 7.2 (Debian 12's,
    // which CI's Haswell check runs under) that returned wrong entries in
    // the fused tanh and softmax, where the hardware did not; the zero
    // source and full mask spelled out, as GCC 12 warns of the undefined
    // one in _mm256_i32gather_pd.
    static V lookup16(const double* t, VI j) {
        const __m256i lo32 = _mm256_permutevar8x32_epi32((__m256i)j, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
        return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), t, _mm256_castsi256_si128(lo32),
                                        _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), 8);
    }
};

}  // namespace
}  // namespace isa_avx2
}  // namespace dnnfast
