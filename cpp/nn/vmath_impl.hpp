// The vector maths behind vmath.hpp, written once over a vector-op shim (Ops:
// V, VI and splat, as in gemm/ops_*.hpp) and instantiated by each
// vmath_*.cpp inside namespace dnnfast::DNNFAST_VMATH_NS (isa_<name> in a file
// built with ISA flags) and an anonymous one, so no symbol compiled with ISA
// flags is shared with generic code (the rule in gemm/cpu_features.cpp), and
// the tables are constant-initialised.
//
// Algorithms (own derivations; coefficients fitted by tools/fit_vmath.py):
//  expm1 (tanh, elu): n = round(x / ln 2) by the 1.5*2^p "magic" add,
//    r = x - n ln2 with ln 2 split Cody-Waite style (hi has so few bits that
//    n*hi is exact), expm1(r) = r + r^2 P(r) on |r| <= 0.35,
//    expm1(x) = 2^n expm1(r) + (2^n - 1) (exact scaling, one rounding).
//    float32: P minimax degree 5; float64: Taylor to r^13.
//  exp (sigmoid, softplus, softmax, the exp activation): the same reduction by ln2/16, x =
//    (16 m + j) ln2/16 + r, |r| <= ln2/32, so P needs half the terms
//    (float32 Taylor to r^3, float64 to r^7); exp = (T_j + (T_j expm1(r) +
//    t_j)) 2^m1 2^m2, where 2^(j/16) = T_j + t_j (hi and lo tables, looked up
//    per lane by Ops::lookup16), so only the last addition rounds at the
//    result's scale; two scalings, so denormal results round once and
//    overflow gives inf. expm1 keeps the coarse reduction: 2^(j/16) - 1
//    would cancel against T_j's rounding near 0.
//  log: x = 2^k m, m in [sqrt(1/2), sqrt(2)), s = (m-1)/(m+1),
//    log m = 2s + s w R(w), w = s^2; log x = k ln2_hi + (log m + k ln2_lo).
//    float32: R minimax degree 2; float64: Taylor (10 terms).
//    log1p(u), 0 <= u <= 1: s = 1 + u, c = u - (s - 1) (exact), log s + c / s.
//  atan: |x| > tan(3pi/8): pi/2 + atan(-1/|x|); > tan(pi/8): pi/4 +
//    atan((|x|-1)/(|x|+1)); then atan t = t + t z P(z), z = t^2, |t| <= 0.4143,
//    pi/2 and pi/4 as hi + lo. P: float32 minimax degree 4, float64
//    Chebyshev degree 10.
//  tanh = sign(x) q, q = t / (t + 2), t = expm1(2|x|), |x| clamped where tanh
//    rounds to 1; this expm1 of a non-negative argument takes exp's finer
//    reduction (expm1_nonneg: float32 Taylor to r^4, float64 exp's terms),
//    about a tenth fewer operations than the coarse one.
//    sigmoid = (z >= 0 ? 1 : e) / (1 + e), e = exp(-|z|).
//    softplus = max(z, 0) + log1p(exp(-|z|)).  elu = alpha expm1(z), z < 0.
// Each a b + c above is fused where the table has FMA (avx2, avx512: one
// rounding, and a quarter to a third fewer vector operations than a
// multiply and an add; measured in BENCHMARKS.md, `dcca32e`); generic
// rounds twice, so the FMA tables give the same bits as each other and
// generic its own, all within the same bounds.
// Every input is clamped (NaN-preserving compares) before any 2^n is built,
// so no intermediate overflows for any finite or infinite input; NaN in
// gives NaN out. Measured error bounds: tests/test_activation_accuracy.py.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "nn/vmath.hpp"

// Forced inline: the kernels are called twice in each row loop (body and
// tail), and GCC would otherwise call them out of line, passing 512-bit
// vectors through memory (BENCHMARKS.md, "Measurements behind the code":
// DNNFAST_VINLINE).
#define DNNFAST_VINLINE __attribute__((always_inline)) inline
#define DNNFAST_VINLINE_LAMBDA __attribute__((always_inline))

#ifndef DNNFAST_VMATH_NS
#error "define DNNFAST_VMATH_NS (isa_<name> in a file built with ISA flags) before including vmath_impl.hpp"
#endif

namespace dnnfast {
namespace DNNFAST_VMATH_NS {
namespace {

template <class T>
struct VConst;

template <>
struct VConst<float> {
    using I = int32_t;
    static constexpr int kMant = 23;
    static constexpr I kBias = 127;
    static constexpr I kMantMask = 0x007fffff;
    static constexpr I kSqrtHalfBits = 0x3f3504f3;  // sqrt(1/2) rounded
    static constexpr I kOneBits = 0x3f800000;
    static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    static constexpr float kLog2e = 1.44269504088896341f;
    static constexpr float kLn2Hi = 0.693145751953125f;  // 16 bits: n * hi exact for |n| < 256
    static constexpr float kLn2Lo = 1.428606765330187e-06f;
    static constexpr float kExpLo = -104.0f;  // exp rounds to 0 below, to inf above kExpHi
    static constexpr float kExpHi = 89.0f;
    static constexpr float kExpm1Lo = -87.0f;  // expm1 is -1 below; 2^n stays normal
    static constexpr float kExpm1Hi = 88.0f;
    static constexpr float kTanhCut = 9.5f;  // tanh rounds to 1 beyond 9.01
    // exp's reduction by ln2/16: n < 2^12 in magnitude, so hi has 12 bits.
    static constexpr float kLog2e16 = 23.083120654223414f;
    static constexpr float kLn2Hi16 = 0.0433197021484375f;  // 2839 / 2^16
    static constexpr float kLn2Lo16 = 1.996636559080389e-06f;
    static constexpr float kExpP16[] = {0.5f, 0.16666666666666666f};
    // expm1 on |r| <= ln2/32, where the result may be as small as r: one
    // Taylor term more than exp's (truncation below 2e-9 relative).
    static constexpr float kExpm1P16[] = {0.5f, 0.16666666666666666f, 0.041666666666666664f};
    // exp of x in [kExpLo, 0]: m >= -151, so 2^(m + 30) is normal.
    static constexpr I kNonPosShift = 30;
    static constexpr float kNonPosUnshift = 0x1p-30f;
    alignas(64) static constexpr float kExp2J16[16] = {
        0x1p+0f, 0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f, 0x1.3dea64p+0f,
        0x1.4bfdaep+0f, 0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
        0x1.ae89fap+0f, 0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f};
    alignas(64) static constexpr float kExp2J16Lo[16] = {  // 2^(j/16) - kExp2J16[j], rounded
        0x0p+0f, 0x1.9f3122p-25f, -0x1.c15742p-27f, 0x1.ceac48p-25f, 0x1.4636e2p-25f, 0x1.824684p-25f,
        -0x1.593abcp-25f, -0x1.5bd5ecp-27f, 0x1.9fcef4p-26f, -0x1.829fd0p-25f, 0x1.15506ep-27f, 0x1.51f848p-27f,
        -0x1.a94b14p-26f, -0x1.3d56b2p-27f, -0x1.822dbcp-27f, 0x1.52486cp-27f};
    static constexpr float kPio2Hi = 1.5707963705062866f, kPio2Lo = -4.371138828673793e-08f;
    static constexpr float kPio4Hi = 0.7853981852531433f, kPio4Lo = -2.1855694143368964e-08f;
    // expm1(r) = r + r^2 P(r), minimax for relative error on |r| <= 0.35.
    static constexpr float kExpm1P[] = {0.5f, 0.1666666716337204f, 0.04166634380817413f,
                                        0.008333271369338036f, 0.0013942047953605652f,
                                        0.0001991501630982384f};
    // 2 atanh(s) = 2s + s w R(w), w = s^2 <= 0.02944.
    static constexpr float kLogR[] = {0.6666677594184875f, 0.3997744917869568f, 0.29874423146247864f};
    // atan(t) = t + t z P(z), z = t^2 <= 0.1716.
    static constexpr float kAtanP[] = {-0.33333316445350647f, 0.19998478889465332f, -0.14243625104427338f,
                                       0.10594246536493301f, -0.060787782073020935f};
};

constexpr double fact(int k) { return k <= 1 ? 1.0 : k * fact(k - 1); }

template <>
struct VConst<double> {
    using I = int64_t;
    static constexpr int kMant = 52;
    static constexpr I kBias = 1023;
    static constexpr I kMantMask = 0x000fffffffffffffLL;
    static constexpr I kSqrtHalfBits = 0x3fe6a09e667f3bcdLL;
    static constexpr I kOneBits = 0x3ff0000000000000LL;
    static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
    static constexpr double kLog2e = 1.4426950408889634;
    static constexpr double kLn2Hi = 0.6931471806019545;  // 32 bits: n * hi exact for |n| < 2^21
    static constexpr double kLn2Lo = -4.2009150726810846e-11;
    static constexpr double kExpLo = -746.0;
    static constexpr double kExpHi = 710.0;
    static constexpr double kExpm1Lo = -708.0;
    static constexpr double kExpm1Hi = 709.0;
    static constexpr double kTanhCut = 19.5;  // tanh rounds to 1 beyond 19.06
    // exp's reduction by ln2/16: n < 2^15 in magnitude, so n * hi (32 bits) is exact.
    static constexpr double kLog2e16 = 23.083120654223414;
    static constexpr double kLn2Hi16 = kLn2Hi / 16;  // exact: a power of two
    static constexpr double kLn2Lo16 = kLn2Lo / 16;
    // Taylor: truncation below 1.3e-18 relative on |r| <= ln2/32.
    static constexpr double kExpP16[] = {1 / fact(2), 1 / fact(3), 1 / fact(4),
                                         1 / fact(5), 1 / fact(6), 1 / fact(7)};
    // expm1 on |r| <= ln2/32: exp's terms suffice (truncation below 6e-17
    // relative to a result of at least |r|).
    static constexpr const double (&kExpm1P16)[6] = kExpP16;
    // exp of x in [kExpLo, 0]: m >= -1077, so 2^(m + 60) is normal.
    static constexpr I kNonPosShift = 60;
    static constexpr double kNonPosUnshift = 0x1p-60;
    alignas(64) static constexpr double kExp2J16[16] = {
        0x1p+0,           0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
        0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
        0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
        0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0};
    alignas(64) static constexpr double kExp2J16Lo[16] = {
        0x0p+0, 0x1.8a62e4adc610bp-54, -0x1.19041b9d78a76p-55, 0x1.9b07eb6c70573p-54,
        0x1.6f46ad23182e4p-55, 0x1.ada0911f09ebcp-55, 0x1.d4397afec42e2p-56, 0x1.6324c054647adp-54,
        -0x1.bdd3413b26456p-54, -0x1.41577ee04992fp-55, 0x1.6e9f156864b27p-54, 0x1.c7c46b071f2bep-56,
        0x1.7a1cd345dcc81p-54, 0x1.11065895048ddp-55, 0x1.2ed02d75b3707p-55, -0x1.e9c23179c2893p-54};
    static constexpr double kPio2Hi = 1.5707963267948966, kPio2Lo = 6.123233995736766e-17;
    static constexpr double kPio4Hi = 0.7853981633974483, kPio4Lo = 3.061616997868383e-17;
    // Taylor: truncation below 2e-17 relative on |r| <= 0.35.
    static constexpr double kExpm1P[] = {1 / fact(2),  1 / fact(3),  1 / fact(4),  1 / fact(5),
                                         1 / fact(6),  1 / fact(7),  1 / fact(8),  1 / fact(9),
                                         1 / fact(10), 1 / fact(11), 1 / fact(12), 1 / fact(13)};
    // Taylor 2/(2k+1): truncation below 1e-18 relative for w <= 0.02944.
    static constexpr double kLogR[] = {2.0 / 3,  2.0 / 5,  2.0 / 7,  2.0 / 9,  2.0 / 11,
                                       2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19, 2.0 / 21};
    // atan(t) = t + t z P(z), z = t^2 <= 0.1716: Chebyshev fit of degree 10
    // (tools/fit_vmath.py, mpmath), weighted error z |P - P*| below 1.2e-17.
    static constexpr double kAtanP[] = {-0.3333333333333333,  0.19999999999995435, -0.142857142846489,
                                        0.11111111013838829,  -0.09090904520585284, 0.07692181855485963,
                                        -0.06664492656910195, 0.05857985845660759,  -0.05084597277598541,
                                        0.03920705609755284,  -0.019146788052377524};
};

template <class T, class Ops>
struct VMath {
    using V = typename Ops::V;
    using VI = typename Ops::VI;
    using C = VConst<T>;
    using I = typename C::I;
    static constexpr size_t L = sizeof(V) / sizeof(T);

    static V sp(T s) { return Ops::splat(s); }
    static VI spi(I s) { return VI{} + s; }
    static V load(const T* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
    static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
    static VI bits(V v) { return (VI)v; }
    static V from_bits(VI i) { return (V)i; }
    static V vabs(V x) { return from_bits(bits(x) & spi(~(I(1) << (8 * sizeof(T) - 1)))); }
    static V copysign_of(V mag, V sgn) { return from_bits(bits(mag) | (bits(sgn) & spi(I(1) << (8 * sizeof(T) - 1)))); }
    // NaN-preserving clamps: a NaN compares false and passes through.
    static V clamp_lo(V x, T lo) { return x < sp(lo) ? sp(lo) : x; }
    static V clamp_hi(V x, T hi) { return x > sp(hi) ? sp(hi) : x; }
    static V pow2(VI n) { return from_bits((n + spi(C::kBias)) << C::kMant); }
    // a b + c: one rounding where the table has FMA (avx2, avx512), a
    // multiply then an add where it has not (generic), so those tables keep
    // the bits of the unfused expression.
    static V fma(V a, V b, V c) { return Ops::fma(a, b, c); }

    // Horner for short polynomials; from 8 terms (the float64 Taylor ones)
    // two Horner chains in x^2, even and odd terms, joined at the end: half
    // the dependency chain, which bounded the float64 kernels' throughput.
    template <size_t N>
    static V horner(V x, const T (&c)[N]) {
        if constexpr (N >= 8) {
            const V x2 = x * x;
            constexpr size_t ne = (N + 1) / 2, no = N / 2;  // c[0], c[2], ... and c[1], c[3], ...
            V pe = sp(c[2 * (ne - 1)]);
            for (size_t k = ne - 1; k-- > 0;) pe = fma(pe, x2, sp(c[2 * k]));
            V po = sp(c[2 * (no - 1) + 1]);
            for (size_t k = no - 1; k-- > 0;) po = fma(po, x2, sp(c[2 * k + 1]));
            return fma(x, po, pe);
        } else {
            V p = sp(c[N - 1]);
            for (size_t k = N - 1; k-- > 0;) p = fma(p, x, sp(c[k]));
            return p;
        }
    }

    // x = n ln2 / S + r (S = 1 or 16, by the constants given: log2(e) S and
    // ln2 / S in hi + lo parts); returns expm1(r) by the coefficients P.
    template <size_t N>
    DNNFAST_VINLINE static V reduce(V x, VI& n, T log2e_s, T ln2_hi, T ln2_lo, const T (&P)[N]) {
        const V k = fma(x, sp(log2e_s), sp(C::kMagic));
        const V nf = k - sp(C::kMagic);
        n = bits(k) - bits(sp(C::kMagic));
        const V r = fma(-nf, sp(ln2_lo), fma(-nf, sp(ln2_hi), x));
        return fma(r * r, horner(r, P), r);
    }
    // x = n ln2 + r; returns expm1(r).
    DNNFAST_VINLINE static V reduce_expm1(V x, VI& n) {
        return reduce(x, n, C::kLog2e, C::kLn2Hi, C::kLn2Lo, C::kExpm1P);
    }
    // x = (16 m + j) ln2/16 + r, 0 <= j < 16: n = 16 m + j, and returns
    // expm1(r) by the coefficients P.
    template <size_t N>
    DNNFAST_VINLINE static V reduce16(V x, VI& n, const T (&P)[N]) {
        return reduce(x, n, C::kLog2e16, C::kLn2Hi16, C::kLn2Lo16, P);
    }
    // exp of x <= 0 (or NaN) needs no upper clamp, expm1 of x already in
    // range no clamp at all: a clamp that cannot bind changes no bit, and
    // tanh's and sigmoid's arguments are known to lie there (two to four
    // vector operations fewer of their forty-odd).
    template <bool NonPositive = false>
    DNNFAST_VINLINE static V exp(V x) {
        x = clamp_lo(x, C::kExpLo);
        if constexpr (!NonPositive) x = clamp_hi(x, C::kExpHi);
        VI n;
        const V em = reduce16(x, n, C::kExpP16);
        const VI j = n & spi(15);
        const V t = Ops::lookup16(C::kExp2J16, j);  // 2^(j/16) = t + tl, tl below half an ulp of t
        const V p = t + fma(t, em, Ops::lookup16(C::kExp2J16Lo, j));
        const VI m = n >> 4;
        if constexpr (NonPositive) {
            // m >= kExpLo / ln2 - 1 here, so 2^(m + kNonPosShift) is normal
            // and p 2^(m + kNonPosShift) exact: the same one rounding as
            // below, with one power of two built instead of two.
            return (p * pow2(m + spi(C::kNonPosShift))) * sp(C::kNonPosUnshift);
        } else {
            const VI m1 = m >> 1;
            return (p * pow2(m1)) * pow2(m - m1);
        }
    }
    template <bool InRange = false>
    DNNFAST_VINLINE static V expm1(V x) {
        if constexpr (!InRange) x = clamp_hi(clamp_lo(x, C::kExpm1Lo), C::kExpm1Hi);
        VI n;
        const V em = reduce_expm1(x, n);
        const V s = pow2(n);
        return fma(s, em, s - sp(T(1)));
    }
    // Positive normal x (or NaN).
    DNNFAST_VINLINE static V log(V x) {
        VI ix = bits(x) + spi(C::kOneBits - C::kSqrtHalfBits);
        const VI k = (ix >> C::kMant) - spi(C::kBias);
        ix = (ix & spi(C::kMantMask)) + spi(C::kSqrtHalfBits);
        const V f = from_bits(ix) - sp(T(1));
        const V s = f / (sp(T(2)) + f);
        const V w = s * s;
        const V lm = fma(s * w, horner(w, C::kLogR), s * sp(T(2)));
        const V kf = from_bits(k + bits(sp(C::kMagic))) - sp(C::kMagic);  // exact int -> float
        const V r = fma(kf, sp(C::kLn2Hi), fma(kf, sp(C::kLn2Lo), lm));
        return x != x ? x : r;
    }
    // 0 <= u <= 1 (or NaN).
    DNNFAST_VINLINE static V log1p01(V u) {
        const V s = sp(T(1)) + u;
        const V c = u - (s - sp(T(1)));
        return log(s) + c / s;
    }
    DNNFAST_VINLINE static V atan(V x) {
        const V ax = vabs(x);
        const auto big = ax > sp(T(2.414213562373095));
        const auto mid = ax > sp(T(0.41421356237309503));
        const V num = big ? sp(T(-1)) : (mid ? ax - sp(T(1)) : ax);
        const V den = big ? ax : (mid ? ax + sp(T(1)) : sp(T(1)));
        const V t = num / den;
        const V hi = big ? sp(C::kPio2Hi) : (mid ? sp(C::kPio4Hi) : sp(T(0)));
        const V lo = big ? sp(C::kPio2Lo) : (mid ? sp(C::kPio4Lo) : sp(T(0)));
        const V z = t * t;
        const V p = fma(t * z, horner(z, C::kAtanP), t);
        return copysign_of(hi + (p + lo), x);
    }
    // expm1(y) for 0 <= y <= 2 kTanhCut (or NaN), through exp's finer
    // reduction: expm1(y) = (2^m T_j - 1) + 2^m (T_j expm1(r) + t_j).
    // 2^m T_j - 1 is exact while 2^m's ulp divides 1 (m up to the
    // mantissa's bits; beyond, y > 36 in float64, its rounding is below half
    // an ulp of the result), and 0 when m = j = 0, where the result is
    // expm1(r) itself; so nothing cancels, and the polynomial has half of
    // expm1's terms.
    DNNFAST_VINLINE static V expm1_nonneg(V y) {
        VI n;
        const V em = reduce16(y, n, C::kExpm1P16);
        const VI j = n & spi(15);
        const V t = Ops::lookup16(C::kExp2J16, j);
        const V s = pow2(n >> 4);
        return fma(s, fma(t, em, Ops::lookup16(C::kExp2J16Lo, j)), fma(s, t, sp(T(-1))));
    }
    DNNFAST_VINLINE static V tanh(V x) {
        const V ax = clamp_hi(vabs(x), C::kTanhCut);
        const V t = expm1_nonneg(ax + ax);
        return copysign_of(t / (t + sp(T(2))), x);
    }
    DNNFAST_VINLINE static V sigmoid(V z) {
        const V e = exp<true>(-vabs(z));
        return (z >= sp(T(0)) ? sp(T(1)) : e) / (sp(T(1)) + e);
    }
    DNNFAST_VINLINE static V softplus(V z) {
        const V e = exp<true>(-vabs(z));
        return (z > sp(T(0)) ? z : sp(T(0))) + log1p01(e);
    }
    DNNFAST_VINLINE static V elu(V z, V alpha) {
        const V em = expm1(z > sp(T(0)) ? sp(T(0)) : z);
        return z >= sp(T(0)) ? z : alpha * em;
    }

    // Whole vectors; the tail as the last L elements (overlapping the body),
    // loaded and computed before the body writes anything, so a may alias
    // z; rows shorter than a vector through a padded buffer. Every element
    // goes through the same lane arithmetic wherever it sits, so the result
    // does not depend on the row length or where a block starts.
    template <class F>
    static DNNFAST_VINLINE void map(const T* z, T* a, size_t n, F f) {
        if (n < L) {
            T buf[L];
            for (size_t l = 0; l < L; ++l) buf[l] = l < n ? z[l] : T(1);
            store(buf, f(load(buf)));
            for (size_t l = 0; l < n; ++l) a[l] = buf[l];
            return;
        }
        const bool ragged = n % L != 0;  // whole vectors: no tail to redo
        const V tail = ragged ? f(load(z + n - L)) : V{};
        for (size_t j = 0; j + L <= n; j += L) store(a + j, f(load(z + j)));
        if (ragged) store(a + n - L, tail);
    }
    template <class F>
    static DNNFAST_VINLINE void map2(const T* z, const T* d, T* a, size_t n, F f) {
        if (n < L) {
            T bz[L], bd[L];
            for (size_t l = 0; l < L; ++l) { bz[l] = l < n ? z[l] : T(1); bd[l] = l < n ? d[l] : T(1); }
            store(bz, f(load(bz), load(bd)));
            for (size_t l = 0; l < n; ++l) a[l] = bz[l];
            return;
        }
        const bool ragged = n % L != 0;  // whole vectors: no tail to redo
        const V tail = ragged ? f(load(z + n - L), load(d + n - L)) : V{};
        for (size_t j = 0; j + L <= n; j += L) store(a + j, f(load(z + j), load(d + j)));
        if (ragged) store(a + n - L, tail);
    }

    // A block (the GEMM epilogue's strip of m rows, n columns, or a whole
    // contiguous array): z := z + bias (row-broadcast, when given), then
    // a := f(z). One call per strip, with the row loop and the constants
    // inside, instead of a call per row of one or two vectors. With A on Z
    // (a == z: a layer that keeps no Z of its own, network.cpp's
    // pre_activation) z + b is not stored but passed straight to f, one
    // pass instead of two. Rows narrower than a vector (a column edge, such
    // as the last 4 of 100 units in float64) are copied side by side into a
    // buffer so that each vector holds several of them. Lanes are computed
    // alike wherever an element sits, and z + b is the same addition either
    // way, so the bits do not depend on the strip's shape or on where z + b
    // goes.
    template <class F>
    static DNNFAST_VINLINE void map_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n,
                                          const T* bias, F f) {
        const T* fb = bias && a == z && lda == ldz ? bias : nullptr;  // the bias added on the way into f
        if (bias && !fb)
            for (size_t i = 0; i < m; ++i) {
                T* zi = z + i * ldz;
                size_t j = 0;
                for (; j + L <= n; j += L) store(zi + j, load(zi + j) + load(bias + j));
                for (; j < n; ++j) zi[j] = zi[j] + bias[j];
            }
        if (!fb && (m == 1 || (ldz == n && lda == n))) {  // contiguous
            map(z, a, m * n, f);
        } else if (n >= L) {
            const auto f_of_sum = [f](V v, V b) DNNFAST_VINLINE_LAMBDA { return f(v + b); };
            for (size_t i = 0; i < m; ++i) {
                if (fb) map2(z + i * ldz, fb, a + i * lda, n, f_of_sum);
                else map(z + i * ldz, a + i * lda, n, f);
            }
        } else {
            constexpr size_t kBuf = 16 * L;
            T buf[kBuf];
            const size_t rows = kBuf / n;
            for (size_t i0 = 0; i0 < m; i0 += rows) {
                const size_t r = m - i0 < rows ? m - i0 : rows;
                for (size_t i = 0; i < r; ++i)
                    for (size_t j = 0; j < n; ++j) {
                        const T v = z[(i0 + i) * ldz + j];
                        buf[i * n + j] = fb ? v + fb[j] : v;
                    }
                map(buf, buf, r * n, f);
                for (size_t i = 0; i < r; ++i)
                    for (size_t j = 0; j < n; ++j) a[(i0 + i) * lda + j] = buf[i * n + j];
            }
        }
    }
    static void elu_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T alpha) {
        const V al = sp(alpha);
        map_block(z, ldz, a, lda, m, n, bias, [al](V v) DNNFAST_VINLINE_LAMBDA { return elu(v, al); });
    }
    static void sigmoid_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T) {
        map_block(z, ldz, a, lda, m, n, bias, [](V v) DNNFAST_VINLINE_LAMBDA { return sigmoid(v); });
    }
    static void tanh_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T) {
        map_block(z, ldz, a, lda, m, n, bias, [](V v) DNNFAST_VINLINE_LAMBDA { return tanh(v); });
    }
    static void atan_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T) {
        map_block(z, ldz, a, lda, m, n, bias, [](V v) DNNFAST_VINLINE_LAMBDA { return atan(v); });
    }
    static void softplus_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T) {
        map_block(z, ldz, a, lda, m, n, bias, [](V v) DNNFAST_VINLINE_LAMBDA { return softplus(v); });
    }
    static void exp_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T) {
        // clipped first (NaN kept), as ExpAct: e^z finite for every z
        map_block(z, ldz, a, lda, m, n, bias,
                  [](V v) DNNFAST_VINLINE_LAMBDA { return exp(clamp_hi(v, T(sizeof(T) == 4 ? 88 : 709))); });
    }
    static void softplus_backward_rows(const T* z, const T* da, T* dz, size_t n) {
        map2(z, da, dz, n, [](V v, V d) DNNFAST_VINLINE_LAMBDA { return d * sigmoid(v); });
    }
    static void exp_shifted_rows(const T* z, T shift, T* a, size_t n) {
        const V s = sp(shift);
        map(z, a, n, [s](V v) DNNFAST_VINLINE_LAMBDA { return exp(v - s); });
    }
    static void log_rows(const T* x, T* y, size_t n) {
        map(x, y, n, [](V v) DNNFAST_VINLINE_LAMBDA { return log(v); });  // padding lanes hold 1
    }

    // The element-wise kernels (vmath.hpp): plain loops, which the compiler
    // vectorises for this file's instruction set; -ffp-contract=off keeps
    // every operation as written, so the bits are the scalar definitions'.
    template <int Kind>  // 0 identity, 1 relu, 2 leaky
    static T unit(T z, T alpha) {
        if constexpr (Kind == 0) return z;
        else if constexpr (Kind == 1) return z <= T(0) ? T(0) : z;  // NaN stays NaN, as in the reference
        else return z > T(0) ? z : alpha * z;
    }
    template <int Kind>
    static V unit(V z, V alpha) {
        if constexpr (Kind == 0) return z;
        else if constexpr (Kind == 1) return z <= sp(0) ? sp(0) : z;
        else return z > sp(0) ? z : alpha * z;
    }
    // Explicit vectors, not loops left to the vectoriser: the GEMM epilogue
    // calls these on strips one or two vectors wide, where the vectorised
    // loops' alias checks and remainder handling cost more than the work.
    // With A on Z (a == z, a relu layer that keeps no Z) each element is
    // stored once, as f(z + b).
    // One run of len elements: z + b (b = bias[j], or bias[0] for all with
    // Broadcast), then unit<Kind>.
    template <int Kind, bool Broadcast>
    static DNNFAST_VINLINE void unit_run(T* z, T* a, size_t len, const T* bias, T alpha) {
        const V al = sp(alpha);
        const V b0 = Broadcast && bias ? sp(bias[0]) : V{};
        const bool keep_z = bias && a != z;  // Z holds z + b apart from A
        const bool write_a = Kind != 0 || a != z || bias;
        size_t j = 0;
        for (; j + L <= len; j += L) {
            V v = load(z + j);
            if (bias) v = v + (Broadcast ? b0 : load(bias + j));
            if (keep_z) store(z + j, v);
            if (write_a) store(a + j, unit<Kind>(v, al));
        }
        for (; j < len; ++j) {
            T v = z[j];
            if (bias) v = v + bias[Broadcast ? 0 : j];
            if (keep_z) z[j] = v;
            a[j] = unit<Kind>(v, alpha);
        }
    }
    template <int Kind>
    static void unit_block(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T alpha) {
        if (m > 1 && ldz == n && lda == n && (n == 1 || !bias)) {
            // Contiguous rows with nothing per column (or one unit, its
            // bias the same for every row: a regression network's output):
            // one long run of vectors, where rows narrower than a vector
            // would each be a scalar tail. The same arithmetic an element.
            unit_run<Kind, true>(z, a, m * n, bias, alpha);
            return;
        }
        for (size_t i = 0; i < m; ++i) unit_run<Kind, false>(z + i * ldz, a + i * lda, n, bias, alpha);
    }
    template <int Kind>  // 1 relu, 2 leaky
    static void unit_backward_block(const T* z, size_t ldz, const T* da, size_t ldda, T* dz, size_t lddz,
                                    size_t m, size_t n, T alpha) {
        const T low = Kind == 1 ? T(0) : alpha;
        const V one = sp(1), lowv = sp(low);
        for (size_t i = 0; i < m; ++i) {
            const T* zi = z + i * ldz;
            const T* dai = da + i * ldda;
            T* dzi = dz + i * lddz;
            size_t j = 0;
            for (; j + L <= n; j += L) store(dzi + j, load(dai + j) * (load(zi + j) > sp(0) ? one : lowv));
            for (; j < n; ++j) dzi[j] = dai[j] * (zi[j] > T(0) ? T(1) : low);
        }
    }
    // arctan' (ArctanAct::df, operation for operation): 1 / (1 + z^2), and
    // for |z| > 1 r^2 / (1 + r^2) with r = 1 / z; the lane's other form,
    // computed too, is dropped by the select. Rows through map2 (its tail
    // and short rows in whole vectors).
    static void atan_backward_block(const T* z, size_t ldz, const T* da, size_t ldda, T* dz, size_t lddz, size_t m,
                                    size_t n, T) {
        for (size_t i = 0; i < m; ++i)
            map2(z + i * ldz, da + i * ldda, dz + i * lddz, n, [](V v, V d) DNNFAST_VINLINE_LAMBDA {
                const V one = sp(T(1));
                const V r = one / v;
                const V rr = r * r;
                return d * (vabs(v) > one ? rr / (one + rr) : one / (one + v * v));
            });
    }
    template <int Kind>  // 0 tanh, 1 sigmoid
    static void output_backward_block(const T* a, size_t lda, const T* da, size_t ldda, T* dz, size_t lddz,
                                      size_t m, size_t n) {
        const V one = sp(1);
        for (size_t i = 0; i < m; ++i) {
            const T* ai = a + i * lda;
            const T* dai = da + i * ldda;
            T* dzi = dz + i * lddz;
            size_t j = 0;
            for (; j + L <= n; j += L) {
                const V av = load(ai + j);
                store(dzi + j, load(dai + j) * (Kind == 0 ? one - av * av : av * (one - av)));
            }
            for (; j < n; ++j) dzi[j] = dai[j] * (Kind == 0 ? T(1) - ai[j] * ai[j] : ai[j] * (T(1) - ai[j]));
        }
    }
    // NV vectors of columns from x + j summed down all m rows in registers:
    // NV independent chains, so the adds run at their throughput, not their
    // latency.
    template <size_t NV>
    static DNNFAST_VINLINE void column_strip(const T* x, size_t ldx, size_t m, const size_t (&j)[NV], T* out) {
        V acc[NV] = {};
        for (size_t i = 0; i < m; ++i)
            for (size_t v = 0; v < NV; ++v) acc[v] = acc[v] + load(x + i * ldx + j[v]);
        for (size_t v = 0; v < NV; ++v) store(out + j[v], acc[v]);
    }
    template <size_t NV>
    static DNNFAST_VINLINE void column_strip_at(const T* x, size_t ldx, size_t m, size_t j0, size_t nv,
                                                size_t tail, T* out) {
        size_t j[NV];
        for (size_t v = 0; v < NV; ++v) j[v] = v < nv ? j0 + v * L : tail;
        column_strip<NV>(x, ldx, m, j, out);
    }
    static void column_sums_block(const T* x, size_t ldx, size_t m, size_t n, T* out) {
        // Strips of up to 8 vectors; a ragged edge as one more vector ending
        // at column n (overlapping the last whole one: its columns are summed
        // again, in the same order, to the same values), in the last strip.
        // Each column is added down the rows in order from 0, so the bits
        // are those of the scalar loop. (The edge columns one at a time, each
        // a chain of dependent adds, had cost more: BENCHMARKS.md,
        // "Measurements behind the code": column_sums_block.)
        if (n < L) {
            for (size_t j = 0; j < n; ++j) {
                T s = 0;
                for (size_t i = 0; i < m; ++i) s += x[i * ldx + j];
                out[j] = s;
            }
            return;
        }
        const size_t whole = n / L;
        const bool ragged = n % L != 0;
        const size_t tail = n - L;
        size_t vec = 0;
        while (vec < whole || (ragged && vec == whole)) {
            const size_t left = whole - vec;  // whole vectors still to sum
            const size_t nv = left < 8 ? left : 8;
            const size_t extra = ragged && left <= 7 ? 1 : 0;  // the edge rides in this strip
            const size_t j0 = vec * L;
            switch (nv + extra) {
                case 1: column_strip_at<1>(x, ldx, m, j0, nv, tail, out); break;
                case 2: column_strip_at<2>(x, ldx, m, j0, nv, tail, out); break;
                case 3: column_strip_at<3>(x, ldx, m, j0, nv, tail, out); break;
                case 4: column_strip_at<4>(x, ldx, m, j0, nv, tail, out); break;
                case 5: column_strip_at<5>(x, ldx, m, j0, nv, tail, out); break;
                case 6: column_strip_at<6>(x, ldx, m, j0, nv, tail, out); break;
                case 7: column_strip_at<7>(x, ldx, m, j0, nv, tail, out); break;
                default: column_strip_at<8>(x, ldx, m, j0, nv, tail, out); break;
            }
            vec += nv;
            if (extra) break;
        }
    }
    static void sgd_step(T* __restrict p, const T* __restrict g, size_t n, T lr) {
        for (size_t k = 0; k < n; ++k) p[k] -= lr * g[k];
    }
    static void momentum_step(T* __restrict p, const T* __restrict g, T* __restrict s1, size_t n, T lr, T mu,
                              bool nesterov) {
        if (nesterov)
            for (size_t k = 0; k < n; ++k) {
                s1[k] = mu * s1[k] - lr * g[k];
                p[k] += mu * s1[k] - lr * g[k];
            }
        else
            for (size_t k = 0; k < n; ++k) {
                s1[k] = mu * s1[k] - lr * g[k];
                p[k] += s1[k];
            }
    }
    template <class O, class = void>
    struct HasDivRn : std::false_type {};
    template <class O>
    struct HasDivRn<O, std::void_t<decltype(O::div_rn(V{}, V{}))>> : std::true_type {};
    static void adam_step(T* __restrict p, const T* __restrict g, T* __restrict s1, T* __restrict s2, size_t n,
                          T lr_t, T b1, T b2, T eps) {
        const T c1 = T(1) - b1, c2 = T(1) - b2;
        size_t k = 0;
        if constexpr (HasDivRn<Ops>::value) {
            // Where the table divides without the divider (Ops::div_rn:
            // avx512 float64), the loop below a vector at a time: each
            // operation as written (vector operators are not contracted
            // under -ffp-contract=off; the square root is IEEE, and div_rn
            // returns the IEEE quotient), so the same bits.
            const V vb1 = sp(b1), vb2 = sp(b2), vc1 = sp(c1), vc2 = sp(c2), vlr = sp(lr_t), veps = sp(eps);
            for (; k + L <= n; k += L) {
                const V gk = load(g + k);
                const V m = vb1 * load(s1 + k) + vc1 * gk;
                const V v = vb2 * load(s2 + k) + vc2 * gk * gk;
                store(s1 + k, m);
                store(s2 + k, v);
                store(p + k, load(p + k) - Ops::div_rn(vlr * m, Ops::sqrt(v) + veps));
            }
        }
        for (; k < n; ++k) {
            s1[k] = b1 * s1[k] + c1 * g[k];
            s2[k] = b2 * s2[k] + c2 * g[k] * g[k];
            p[k] -= lr_t * s1[k] / (std::sqrt(s2[k]) + eps);
        }
    }

    // VMathFns::l2_grad: whole blocks of kParts weights, each square added
    // into its own partial sum, which the compiler keeps in vector registers
    // (float widened lane by lane); the tail in the same order, one at a time.
    // (out: g for l2_grad, w itself for l2_decay, each block of w squared
    // before it is written.)
    static DNNFAST_VINLINE double squares_and_l2(const T* w, T* out, size_t n, T c) {
        constexpr size_t kParts = 32;
        double acc[kParts] = {};
        size_t k = 0;
        for (; k + kParts <= n; k += kParts) {
            for (size_t u = 0; u < kParts; ++u) {
                const double x = double(w[k + u]);
                acc[u] = acc[u] + x * x;
            }
            for (size_t u = 0; u < kParts; ++u) out[k + u] += c * w[k + u];
        }
        for (; k < n; ++k) {
            const double x = double(w[k]);
            acc[k % kParts] = acc[k % kParts] + x * x;
            out[k] += c * w[k];
        }
        for (size_t h = kParts / 2; h > 0; h /= 2)
            for (size_t u = 0; u < h; ++u) acc[u] = acc[u] + acc[u + h];
        return acc[0];
    }
    static double l2_grad(const T* __restrict w, T* __restrict g, size_t n, T c) {
        return squares_and_l2(w, g, n, c);
    }
    // VMathFns::l2_decay: the same sum of squares, and w[k] += d w[k].
    static double l2_decay(T* w, size_t n, T d) { return squares_and_l2(w, w, n, d); }

    // VMathFns::all_finite: x * 0 is 0 for every finite x and NaN
    // otherwise, and a NaN survives the sums; four vector sums so the adds
    // do not wait on each other, looked at every 64 K values so a bad block
    // stops the scan there.
    static bool all_finite(const T* x, size_t n) {
        constexpr size_t kStep = 4 * L, kBlock = 65536;
        const V zero = sp(T(0));
        size_t i = 0;
        while (n - i >= kStep) {
            V s0 = zero, s1 = zero, s2 = zero, s3 = zero;
            const size_t end = i + std::min(kBlock, (n - i) / kStep * kStep);
            for (; i < end; i += kStep) {
                s0 = s0 + load(x + i) * zero;
                s1 = s1 + load(x + i + L) * zero;
                s2 = s2 + load(x + i + 2 * L) * zero;
                s3 = s3 + load(x + i + 3 * L) * zero;
            }
            T lanes[L];
            store(lanes, (s0 + s1) + (s2 + s3));
            for (size_t l = 0; l < L; ++l)
                if (lanes[l] != T(0)) return false;
        }
        T s = 0;
        for (; i < n; ++i) s += x[i] * T(0);
        return s == T(0);
    }

    // The first `r` (< L) values at p as a vector (the rest 0), and back:
    // a row's ragged edge, computed with the same vector operations as the
    // whole vectors before it, so each column's bits do not depend on
    // where the edge falls.
    static V load_part(const T* p, size_t r) {
        T buf[L] = {};
        std::memcpy(buf, p, r * sizeof(T));
        return load(buf);
    }
    static void store_part(T* p, V v, size_t r) {
        T buf[L];
        store(buf, v);
        std::memcpy(p, buf, r * sizeof(T));
    }

    // VMathFns::csr_times: each row's columns in strips of up to four
    // vectors held in registers over the row's stored values, so each value
    // costs a load of its W row's strip and an fma per vector; z is written
    // once.
    template <size_t NV>
    static DNNFAST_VINLINE void csr_strip(const int64_t* indices, const T* data, int64_t p0, int64_t p1,
                                          const T* __restrict W, size_t m, size_t c, size_t r, T* __restrict z) {
        V acc[NV];
        for (size_t v = 0; v < NV; ++v) acc[v] = sp(T(0));
        for (int64_t p = p0; p < p1; ++p) {
            const V x = sp(data[p]);
            const T* w = W + size_t(indices[p]) * m + c;
            for (size_t v = 0; v < NV; ++v)
                acc[v] = fma(x, r && v + 1 == NV ? load_part(w + v * L, r) : load(w + v * L), acc[v]);
        }
        for (size_t v = 0; v < NV; ++v) {
            if (r && v + 1 == NV)
                store_part(z + c + v * L, acc[v], r);
            else
                store(z + c + v * L, acc[v]);
        }
    }
    static void csr_times(const int64_t* indptr, const int64_t* indices, const T* data, const int64_t* rows,
                          size_t r0, size_t n, const T* W, size_t m, T* z) {
        for (size_t i = 0; i < n; ++i) {
            const size_t row = rows ? size_t(rows[i]) : r0 + i;
            const int64_t p0 = indptr[row], p1 = indptr[row + 1];
            T* zi = z + i * m;
            size_t c = 0;
            for (; c + 4 * L <= m; c += 4 * L) csr_strip<4>(indices, data, p0, p1, W, m, c, 0, zi);
            const size_t whole = (m - c) / L, r = (m - c) % L;  // what is left: whole vectors, then r columns
            switch (whole + (r ? 1 : 0)) {
                case 1: csr_strip<1>(indices, data, p0, p1, W, m, c, r, zi); break;
                case 2: csr_strip<2>(indices, data, p0, p1, W, m, c, r, zi); break;
                case 3: csr_strip<3>(indices, data, p0, p1, W, m, c, r, zi); break;
                case 4: csr_strip<4>(indices, data, p0, p1, W, m, c, r, zi); break;
                default: break;
            }
        }
    }
    // VMathFns::csr_scatter.
    static void csr_scatter(const int64_t* indptr, const int64_t* indices, const T* data, const int64_t* rows,
                            size_t r0, size_t n, const T* dz, size_t m, size_t c0, size_t c1, T s, T* G) {
        for (size_t i = 0; i < n; ++i) {
            const size_t row = rows ? size_t(rows[i]) : r0 + i;
            const T* d = dz + i * m;
            for (int64_t p = indptr[row]; p < indptr[row + 1]; ++p) {
                const V x = sp(s * data[p]);
                T* g = G + size_t(indices[p]) * m;
                size_t c = c0;
                for (; c + L <= c1; c += L) store(g + c, fma(x, load(d + c), load(g + c)));
                if (c < c1) store_part(g + c, fma(x, load_part(d + c, c1 - c), load_part(g + c, c1 - c)), c1 - c);
            }
        }
    }

    static constexpr VMathFns<T> table() {
        return VMathFns<T>{&elu_block,   &sigmoid_block, &tanh_block,
                           &atan_block, &softplus_block, &exp_block, &softplus_backward_rows,
                           &exp_shifted_rows, &log_rows,
                           &unit_block<0>, &unit_block<1>, &unit_block<2>,
                           &unit_backward_block<1>, &unit_backward_block<2>, &atan_backward_block,
                           &output_backward_block<0>, &output_backward_block<1>,
                           &column_sums_block, &sgd_step, &momentum_step, &adam_step, &l2_grad, &l2_decay,
                           &all_finite, &csr_times, &csr_scatter};
    }
};

// Ops for float and double -> one VMathSet.
template <class OpsF, class OpsD>
constexpr VMathSet make_vmath(const char* name) {
    return VMathSet{name, VMath<float, OpsF>::table(), VMath<double, OpsD>::table()};
}

}  // namespace
}  // namespace DNNFAST_VMATH_NS
}  // namespace dnnfast

#undef DNNFAST_VINLINE
#undef DNNFAST_VINLINE_LAMBDA
