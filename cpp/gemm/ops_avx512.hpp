// AVX-512F vector operations for the kernel template (gemm_simd.hpp): float
// and double lanes of 512 bits. Included only by files built with
// -mavx512f (gemm_kernels_avx512.cpp, tools/gemm_sweep.cpp), each getting its
// own internal copy, in namespace isa_avx512.
#pragma once
#if !(defined(__x86_64__) || defined(_M_X64))
#error "ops_avx512.hpp is x86-64 only: include it only from *_avx512.cpp files"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace dnnfast {
namespace isa_avx512 {
namespace {

// 256-bit halves: the micro-tile's column edge of at most half a vector
// (the last 4 of 100 float64 columns) runs on these (HalfOps in
// gemm_simd.hpp); each element gets the same FMA chain, so the same bits.
struct OpsHalfF {
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t VI __attribute__((vector_size(32)));
    static V splat(float s) { return _mm256_set1_ps(s); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V load_head(const float* p, size_t r) { return _mm256_maskz_loadu_ps(__mmask8((1u << r) - 1), p); }
};
struct OpsHalfD {
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t VI __attribute__((vector_size(32)));
    static V splat(double s) { return _mm256_set1_pd(s); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V load_head(const double* p, size_t r) { return _mm256_maskz_loadu_pd(__mmask8((1u << r) - 1), p); }
};

struct OpsF {
    using Half = OpsHalfF;
    typedef float V __attribute__((vector_size(64)));
    typedef int32_t VI __attribute__((vector_size(64)));  // same lanes as integers (vmath_impl.hpp)
    static V splat(float s) { return _mm512_set1_ps(s); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    // Lanes [0, r) from p, the rest zero; nothing past p + r is read (r <= 16).
    static V load_head(const float* p, size_t r) { return _mm512_maskz_loadu_ps(__mmask16((1u << r) - 1), p); }
    // Lanes [0, r) to p; nothing past p + r is written (r <= 16).
    static void store_head(float* p, V v, size_t r) { _mm512_mask_storeu_ps(p, __mmask16((1u << r) - 1), v); }
    // t[j] in each lane, j in [0, 16) (vmath_impl.hpp's exp): one register.
    // The zero-masked form with every lane selected is the same vpermps;
    // GCC 12's plain form passes an undefined vector and warns
    // (-Wmaybe-uninitialized) wherever it is inlined.
    static V lookup16(const float* t, VI j) {
        return _mm512_maskz_permutexvar_ps(__mmask16(0xffff), (__m512i)j, _mm512_loadu_ps(t));
    }
};
struct OpsD {
    using Half = OpsHalfD;
    typedef double V __attribute__((vector_size(64)));
    typedef int64_t VI __attribute__((vector_size(64)));
    static V splat(double s) { return _mm512_set1_pd(s); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V load_head(const double* p, size_t r) { return _mm512_maskz_loadu_pd(__mmask8((1u << r) - 1), p); }
    static void store_head(double* p, V v, size_t r) { _mm512_mask_storeu_pd(p, __mmask8((1u << r) - 1), v); }
    // t[j], j in [0, 16): a permute of two registers.
    static V lookup16(const double* t, VI j) {
        return _mm512_permutex2var_pd(_mm512_loadu_pd(t), (__m512i)j, _mm512_loadu_pd(t + 8));
    }
};

}  // namespace
}  // namespace isa_avx512
}  // namespace dnnfast
