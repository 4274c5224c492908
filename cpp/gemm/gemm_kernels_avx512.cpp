// AVX-512F kernels (built with -mavx512f ...; entered only after the CPU check
// in cpu_features.cpp). 32 zmm registers: a 14 x 2-vector tile keeps 28
// accumulators, 2 B vectors and 1 broadcast A value live. The same template
// runs on AVX2 machines as the "generic512" table (gemm_kernels_generic.cpp).
// Everything here is in namespace isa_avx512 and the table is
// constant-initialised data: see the rule in cpu_features.cpp.
#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_KERNEL_NS isa_avx512
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_avx512.hpp"

namespace dnnfast {
namespace isa_avx512 {
namespace {

// The packing's transposing copy (TransposeFn) in 16 x 16 float / 8 x 8
// double register transposes: a block of up to 16 (8) rows is read a vector
// of k at a time (the k tail under a mask), transposed in 4 (3) rounds of
// two-register shuffles, and each k's values stored under a mask of the
// rows, so nothing outside the panel is written. Against the generic SSE2
// 4 x 4 / 2 x 2 transposes, a quarter of the loads and stores an element,
// and half (float) or three quarters (double) of the shuffles.
void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int j = 0; j < 16; j += 2) {  // lane pairs of two rows
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
    // u[4 g + c], 128-bit chunk L: column 4 L + c of rows 4 g .. 4 g + 3.
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; ++c) {  // gather column 4 L + c's four chunks
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

void transpose8(__m512d r[8]) {
    __m512d t[8];
    // t[2 p + c], 128-bit chunk L: column 2 L + c of rows 2 p, 2 p + 1.
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm512_unpacklo_pd(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_pd(r[j], r[j + 1]);
    }
    for (int c = 0; c < 2; ++c) {
        const __m512d v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x88), v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xDD);
        const __m512d w0 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x88);
        const __m512d w1 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xDD);
        r[c] = _mm512_shuffle_f64x2(v0, w0, 0x88);
        r[4 + c] = _mm512_shuffle_f64x2(v0, w0, 0xDD);
        r[2 + c] = _mm512_shuffle_f64x2(v1, w1, 0x88);
        r[6 + c] = _mm512_shuffle_f64x2(v1, w1, 0xDD);
    }
}

// One transpose's vector type, masks and block: W x W values.
struct TransposeF32 {
    using T = float;
    using V = __m512;
    using M = __mmask16;
    static constexpr size_t W = 16;
    static V load(M m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static V zero() { return _mm512_setzero_ps(); }
    static void store(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
    static void block(V r[W]) { transpose16(r); }
};
struct TransposeF64 {
    using T = double;
    using V = __m512d;
    using M = __mmask8;
    static constexpr size_t W = 8;
    static V load(M m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
    static V zero() { return _mm512_setzero_pd(); }
    static void store(double* p, M m, V v) { _mm512_mask_storeu_pd(p, m, v); }
    static void block(V r[W]) { transpose8(r); }
};

template <class Tr, class T = typename Tr::T>
void transpose_blocks(const T* src, size_t lds, size_t rows, size_t kc, T* dst, size_t ldd) {
    constexpr size_t W = Tr::W;
    for (size_t i0 = 0; i0 < rows; i0 += W) {
        const size_t ri = rows - i0 < W ? rows - i0 : W;
        const auto row_mask = typename Tr::M((1u << ri) - 1);
        for (size_t k0 = 0; k0 < kc; k0 += W) {
            const size_t kk = kc - k0 < W ? kc - k0 : W;
            const auto k_mask = typename Tr::M((1u << kk) - 1);
            typename Tr::V r[W];
            for (size_t i = 0; i < W; ++i) r[i] = i < ri ? Tr::load(k_mask, src + (i0 + i) * lds + k0) : Tr::zero();
            Tr::block(r);
            for (size_t k = 0; k < kk; ++k) Tr::store(dst + (k0 + k) * ldd + i0, row_mask, r[k]);
        }
    }
}

template <class T>
constexpr KernelsFor<T> with_transpose(KernelsFor<T> k, TransposeFn<T> transpose) {
    k.transpose = transpose;
    return k;
}

}  // namespace

// Blocking for 48 KiB L1d, 2 MiB L2 (Sapphire Rapids): A block MC x KC =
// 336 KiB (float, 224 x 384) / 224 KiB (double, 112 x 256). Float KC 384
// (a B micro-panel of 48 KiB, streamed from L2) was chosen over 192 by an
// interleaved sweep on a 16-core Xeon with AVX-512 (n^3, n = 512-2048): 1-3%
// faster on 1 and 4 threads, 1-9% on 16 (fewer C updates per FMA); MC 448 or
// 840, and tiles 12x32, 8x48 and 6x64, were no better on one thread.
// Double KC 256, not 192: in the Xeon's one-thread sweep
// (../shared/measurements) MC 224 / KC 256 was at or above 112 / 192 in
// every column (2048^3 65% of the peak against 61%); on the Zen 4 (one
// thread, float64) 1024^3 went 49.6 -> 51.1 GFLOP/s with KC 256 and MC 112,
// MC 224 being 1% slower there, and K = 200 (the estimators' default
// batch, in every weight gradient) is one slice instead of two.
extern const KernelSet gemm_kernels;  // external: cpu_features.cpp picks it
constexpr KernelSet gemm_kernels = {
    "avx512", "avx512f float 14x32 / double 14x16",
    with_transpose(make_kernels<float, OpsF, 14, 2>(/*mc=*/224, /*kc=*/384, /*nc=*/2048),
                   &transpose_blocks<TransposeF32>),
    with_transpose(make_kernels<double, OpsD, 14, 2>(/*mc=*/112, /*kc=*/256, /*nc=*/2048),
                   &transpose_blocks<TransposeF64>),
};

}  // namespace isa_avx512
}  // namespace dnnfast
#endif
