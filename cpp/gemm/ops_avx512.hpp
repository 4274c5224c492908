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
    static V sqrt(V x) { return _mm512_maskz_sqrt_pd(__mmask8(0xff), x); }
    // a / b with the divider's bits, mostly without the divider: on Intel
    // cores a zmm double division issues once in 16 cycles, the bound of
    // Adam's step (vmath_impl.hpp), while FMAs issue twice a cycle.
    //   y = 1/b within an ulp by Newton steps y += y (1 - b y) from vrcp14pd
    //   (relative error below 2^-14: 2^-28, then 2^-56 plus the rounding);
    //   one step more gives y = RN(1/b) unless b's significand is all ones
    //   (Markstein's reciprocal theorem); then q0 = a y is within an ulp of
    //   a / b, its remainder a - b q0 is exact in one FMA, and q0 + r y
    //   rounded once is RN(a / b) (Markstein's quotient theorem; Muller et
    //   al., Handbook of Floating-Point Arithmetic, 2nd ed., section 4.7).
    // Both theorems assume nothing overflows or underflows: with |a| and |b|
    // in [2^-450, 2^450] (or a = 0), y and q0 are normal (q0 within
    // [2^-901, 2^901]) and the remainder is a multiple of 2^-555, so that
    // holds. A vector with a lane outside that (a NaN or an infinity
    // included) or an all-ones significand in b goes to the divider whole:
    // every lane gets the IEEE quotient (tests/test_elementwise_tables.py,
    // with operands that break each of those conditions). Not for float,
    // whose division issues once in about 10 cycles for 16 lanes: there the
    // steps and checks were slower (BENCHMARKS.md, the `f0f6a78` section).
    static V div_rn(V a, V b) {
        const __m512d lo = _mm512_set1_pd(0x1p-450), hi = _mm512_set1_pd(0x1p450), one = _mm512_set1_pd(1.0);
        const __m512i mant = _mm512_set1_epi64(0x000fffffffffffffLL);
        const __m512d aa = _mm512_abs_pd(a), ab = _mm512_abs_pd(b);
        __mmask8 ok = _mm512_cmp_pd_mask(ab, lo, _CMP_GE_OQ);
        ok = _mm512_mask_cmp_pd_mask(ok, ab, hi, _CMP_LE_OQ);
        ok = _mm512_mask_cmp_epi64_mask(ok, _mm512_and_si512(_mm512_castpd_si512(b), mant), mant, _MM_CMPINT_NE);
        const __mmask8 zero = _mm512_cmp_pd_mask(a, _mm512_setzero_pd(), _CMP_EQ_OQ);
        __mmask8 a_ok = _mm512_cmp_pd_mask(aa, lo, _CMP_GE_OQ);
        a_ok = _mm512_mask_cmp_pd_mask(a_ok, aa, hi, _CMP_LE_OQ);
        if (__mmask8(ok & (a_ok | zero)) != 0xff) return a / b;
        __m512d y = _mm512_maskz_rcp14_pd(__mmask8(0xff), b);
        for (int s = 0; s < 3; ++s) y = _mm512_fmadd_pd(_mm512_fnmadd_pd(b, y, one), y, y);
        const __m512d q0 = _mm512_mul_pd(a, y);
        const __m512d q = _mm512_fmadd_pd(_mm512_fnmadd_pd(q0, b, a), y, q0);
        return _mm512_mask_blend_pd(zero, q, q0);  // a = -0: q0 is -0 (q would be +0)
    }
};

}  // namespace
}  // namespace isa_avx512
}  // namespace dnnfast
