// The micro-kernel, small-M kernels and FMA loop, written once over a vector
// type (GCC/Clang vector extensions) and instantiated by each gemm_kernels_*.cpp
// with its own vector width and FMA. Everything has internal linkage and lives
// in the includer's namespace DNNFAST_KERNEL_NS (isa_avx2, isa_avx512 in files
// built with those flags; generic otherwise): each instruction-set file gets
// its own copy, never one the linker picked from a file built with wider
// instructions, and the ISA copies carry the isa_ name that the build and the
// CI scan use to tell them apart (rule in cpu_features.cpp). For the same
// reason nothing here calls a standard-library template that might be emitted
// out of line (a shared COMDAT copy): std::memcpy is a builtin, std::min is
// not used.
#pragma once
#include <cstddef>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include "gemm/gemm_kernels.hpp"

#ifndef DNNFAST_KERNEL_NS
#error "define DNNFAST_KERNEL_NS (isa_<name> in a file built with ISA flags) before including gemm_simd.hpp"
#endif

// The tile's store helpers are inlined into every kernel whatever the
// compiler's size heuristics say: called out of line, a tile's accumulators
// go through memory (BENCHMARKS.md, "Measurements behind the code":
// DNNFAST_KERNEL_INLINE).
#define DNNFAST_KERNEL_INLINE inline __attribute__((always_inline))

// Whether the micro-kernels apply a relu layer's epilogue as they store a
// tile (KernelsFor::fused_relu): in the tables built with AVX2 / AVX-512
// flags. The generic tables leave it to the epilogue function: their code
// is built for any CPU, and for aarch64, where the 512-bit generic tile's
// store loops written out three times made the file's compile several times
// longer (BENCHMARKS.md, "Measurements behind the code": kFusedStores).
#if defined(__AVX2__)
constexpr bool kFusedStores = true;
#else
constexpr bool kFusedStores = false;
#endif

namespace dnnfast {
namespace DNNFAST_KERNEL_NS {
namespace {

// Ops: a struct with vector type V (lanes of T), splat(T) -> V and
// fma(a, b, c) -> a * b + c for that instruction set.
template <class T, class Ops>
struct Simd {
    using V = typename Ops::V;
    static constexpr size_t W = sizeof(V) / sizeof(T);
    static V load(const T* p) {  // unaligned
        V v;
        std::memcpy(&v, p, sizeof(V));
        return v;
    }
    static void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
    static V load_aligned(const T* p) { return *reinterpret_cast<const V*>(p); }
    // Vector registers of the instruction set: 32 with AVX-512, 16 below.
#if defined(__AVX512F__)
    static constexpr int kRegs = 32;
#else
    static constexpr int kRegs = 16;
#endif
    // Keeps a loaded vector in a register: GCC otherwise folds the load into
    // each FMA that uses it, and an operand shared by M FMAs is loaded M times.
    // Only where the accumulators, the kept vectors and one more fit in the
    // registers (fits_in_registers): beyond that the kept vectors spill,
    // which costs more than the folded loads (BENCHMARKS.md, "Measurements
    // behind the code": Simd::fits_in_registers).
    static constexpr bool fits_in_registers(int acc, int kept) { return acc + kept + 1 <= kRegs; }
    static void in_register(V& v) {
#if defined(__AVX2__)
        __asm__("" : "+v"(v));
#else
        (void)v;
#endif
    }
    // a * b + c for one scalar with the vector FMA's rounding: scalar tails
    // that must round like their vector lanes (or like another kernel's
    // tail) use this, never a plain a * b + c, which the compiler may or may
    // not contract. Where the table has FMA, the scalar instruction: the
    // vector one on broadcasts costs a broadcast between the terms of a
    // chain and, at 512 bits on the Zen 4, both FMA pipes (BENCHMARKS.md,
    // "Measurements behind the code": small_k_narrow).
    static T fma1(T a, T b, T c) {
#if defined(__FMA__)
        if constexpr (std::is_same<T, float>::value) return __builtin_fmaf(a, b, c);
        else return __builtin_fma(a, b, c);
#else
        return Ops::fma(Ops::splat(a), Ops::splat(b), Ops::splat(c))[0];
#endif
    }
};

// relu(x + b): the forward epilogue's relu layer (Epilogue::relu_bias), as
// the vector maths computes it (x + b, then x <= 0 ? 0 : x: -0 gives 0, NaN
// stays NaN, as in dnnfast.reference, so a NaN weight is never hidden).
template <class T, class Ops>
DNNFAST_KERNEL_INLINE typename Ops::V bias_relu(typename Ops::V x, const T* b) {
    const typename Ops::V v = x + Simd<T, Ops>::load(b), zero = {};
    return v <= zero ? zero : v;
}

// x * relu'(z) for a relu layer's stored z (Epilogue::relu_mask), as the
// vector maths computes it: x * (z > 0 ? 1 : 0), so NaN and inf in x stay
// NaN where the mask is 0, as they do there.
template <class T, class Ops>
DNNFAST_KERNEL_INLINE typename Ops::V relu_masked(typename Ops::V x, const T* z) {
    const typename Ops::V zero = {}, one = Ops::splat(T(1));
    return x * (Simd<T, Ops>::load(z) > zero ? one : zero);
}
template <class T>
inline T relu_masked(T x, T z) {
    return x * static_cast<T>(z > T(0));  // a select: relu layers' signs are mixed, a branch mispredicts
}

template <class T, class Ops>
DNNFAST_KERNEL_INLINE typename Ops::V relu_epilogue(typename Ops::V r, const T* rb, const T* rm) {
    return rb ? bias_relu<T, Ops>(r, rb) : rm ? relu_masked<T, Ops>(r, rm) : r;
}

// Writes one row of a tile: c := alpha * acc + beta * c (beta == 0 overwrites,
// so C may hold NaN), then relu(c + rb[j]) with rb, or c * relu'(rm[j]) with
// rm (NV vectors of either readable). Full and edge tiles both go through
// here so that they round identically. Scaled == false: acc already holds
// alpha * acc (micro_tile scales its tile once, and not at all for alpha ==
// 1, whose product is exact), so the same bits.
template <class T, class Ops, int NV, bool Scaled = true>
DNNFAST_KERNEL_INLINE void update_row(T* c, const typename Ops::V* acc, T alpha, T beta, const T* rb = nullptr,
                                      const T* rm = nullptr) {
    using S = Simd<T, Ops>;
    const auto va = Ops::splat(alpha);
    const auto scaled = [&](typename Ops::V x) { return Scaled ? va * x : x; };
    if (beta == T(0)) {
        for (int v = 0; v < NV; ++v) {
            const size_t o = size_t(v) * S::W;
            S::store(c + o, relu_epilogue<T, Ops>(scaled(acc[v]), rb ? rb + o : nullptr, rm ? rm + o : nullptr));
        }
    } else {
        const auto vb = Ops::splat(beta);
        for (int v = 0; v < NV; ++v) {
            const size_t o = size_t(v) * S::W;
            const auto r = Ops::fma(vb, S::load(c + o), scaled(acc[v]));
            S::store(c + o, relu_epilogue<T, Ops>(r, rb ? rb + o : nullptr, rm ? rm + o : nullptr));
        }
    }
}

// update_row for the first r < W columns only, through a vector-wide
// scratch: the columns past a row's last whole vector round as its vector
// columns do.
template <class T, class Ops>
DNNFAST_KERNEL_INLINE void update_head(T* c, typename Ops::V acc, size_t r, T alpha, T beta) {
    alignas(64) T ct[Simd<T, Ops>::W] = {};
    if (beta != T(0))
        for (size_t l = 0; l < r; ++l) ct[l] = c[l];
    update_row<T, Ops, 1>(ct, &acc, alpha, beta);
    for (size_t l = 0; l < r; ++l) c[l] = ct[l];
}

// Ops::Half, where an instruction set defines it: the same operations on
// vectors of half the width. On the Zen 4 a 512-bit FMA takes both 256-bit
// FMA pipes, so a column edge that fills at most half a vector runs in half
// the FMA cycles on the narrower vectors.
template <class Ops, class = void>
struct HalfOps {
    static constexpr bool exists = false;
};
template <class Ops>
struct HalfOps<Ops, std::void_t<typename Ops::Half>> {
    static constexpr bool exists = true;
    using type = typename Ops::Half;
};

// Whether the instruction set has masked loads and stores of a vector's
// first lanes (Ops::load_head, Ops::store_head: AVX2, AVX-512).
template <class T, class Ops, class = void>
struct HasHeads : std::false_type {};
template <class T, class Ops>
struct HasHeads<T, Ops,
                std::void_t<decltype(Ops::store_head(static_cast<T*>(nullptr),
                                                     Ops::load_head(static_cast<const T*>(nullptr), size_t(0)),
                                                     size_t(0)))>> : std::true_type {};

// How the micro-kernel reads its A operand, one k at a time: a packed
// micro-panel (the MR values of one k adjacent, zero-padded), or A where it
// lies, element (i, k) at p[i * rs + k * ks]. In place, rows past m are never
// read: an edge tile computes only its own rows (below).
template <class T, int MR>
struct PackedA {
    const T* __restrict p;
    T at(int i) const { return p[i]; }
    void next() { p += MR; }
};
template <class T>
struct StridedA {
    const T* p;
    size_t rs, ks;
    const T* row = nullptr;  // row i of the current k, as at(i) walks down
    // The rows are read in order 0, 1, ... for each k (micro_tile), so one
    // pointer steps down them: with a precomputed offset per row, the
    // 10-row tile of a swapped 10-output product ran out of general
    // registers and reloaded offsets from the stack every k.
    T at(int i) {
        if (i == 0) row = p;
        const T v = *row;
        row += rs;
        return v;
    }
    void next() { p += ks; }
};

// A tile's column edge or transposed C (micro_tile's accumulators, alpha
// already applied): through a scratch tile, then the m x n part copied. C
// is read only for beta != 0 (update_row does not read the tile
// otherwise); the copies run along C's contiguous direction: rows of a
// column edge, columns of a transposed (swapped) C. The bias of a column
// edge is copied into a full-width row (nothing past rb + n is read); the
// mask is applied as the m x n part is copied out.
template <class T, class Ops, int NV, int MC>
DNNFAST_KERNEL_INLINE void store_tile_through_scratch(const typename Ops::V (&acc)[MC][NV], T alpha, T beta, T* c,
                                                      size_t rsc, size_t csc, size_t m, size_t n, const T* rb,
                                                      const T* rm, size_t rm_rs) {
    constexpr size_t NR = NV * Simd<T, Ops>::W;
    if constexpr (!kFusedStores) rb = rm = nullptr;
    alignas(64) T rb_edge[NR] = {};
    if (rb) {
        for (size_t j = 0; j < n; ++j) rb_edge[j] = rb[j];
        rb = rb_edge;
    }
    // update_row reads whole rows of the tile: with beta != 0 the lanes past
    // m x n are zeros, not whatever the stack held (never stored to C either
    // way, but arithmetic on stale bits can be slow, e.g. subnormals).
    alignas(64) T tile[MC * NR];
    if (beta != T(0)) {
        std::fill(tile, tile + MC * NR, T(0));
        if (csc == 1)
            for (size_t i = 0; i < m; ++i)
                for (size_t j = 0; j < n; ++j) tile[i * NR + j] = c[i * rsc + j];
        else
            for (size_t j = 0; j < n; ++j)
                for (size_t i = 0; i < m; ++i) tile[i * NR + j] = c[i * rsc + j * csc];
    }
#pragma GCC unroll 32
    for (int i = 0; i < MC; ++i) update_row<T, Ops, NV, false>(tile + i * NR, acc[i], alpha, beta, rb);
    if (rm)
        for (size_t i = 0; i < m; ++i)
            for (size_t j = 0; j < n; ++j) c[i * rsc + j] = relu_masked(tile[i * NR + j], rm[i * rm_rs + j]);
    else if (csc == 1)
        for (size_t i = 0; i < m; ++i)
            for (size_t j = 0; j < n; ++j) c[i * rsc + j] = tile[i * NR + j];
    else
        for (size_t j = 0; j < n; ++j)
            for (size_t i = 0; i < m; ++i) c[i * rsc + j * csc] = tile[i * NR + j];
}

// A packed tile whose columns fill one vector and at most half of a second
// (the 10 outputs of a classifier in float64 AVX-512: 8 + 2 of 16): the
// second vector's accumulators on Ops::Half. On the Zen 4 a 512-bit FMA
// takes both 256-bit pipes, so a row's k step costs 1.5 FMA cycles instead
// of 2. Each element gets the same FMA chain as in the full tile, so the
// same bits; the tile is stored through the scratch path as a two-vector
// tile whose second vector has zero upper lanes.
// Out of line, as narrow_tile below and for the same reason (BENCHMARKS.md,
// "Measurements behind the code": micro_tile_half_last).
template <class T, class Ops, int MC, class AR, int NVB>
__attribute__((noinline)) void micro_tile_half_last(size_t kc, AR a, const T* __restrict bp, T alpha, T beta,
                                                    T* c, size_t rsc, size_t csc, size_t m, size_t n, const T* rb,
                                                    const T* rm, size_t rm_rs) {
    if constexpr (MC > 1) {
        if (m < size_t(MC)) {
            micro_tile_half_last<T, Ops, MC - 1, AR, NVB>(kc, a, bp, alpha, beta, c, rsc, csc, m, n, rb, rm, rm_rs);
            return;
        }
    }
    using H = typename HalfOps<Ops>::type;
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    using VH = typename H::V;
    constexpr size_t NRB = NVB * S::W;
    if (csc == 1) {
        for (size_t i = 0; i < m; ++i) {
            __builtin_prefetch(c + i * rsc, 1, 3);
            __builtin_prefetch(c + i * rsc + n - 1, 1, 3);
        }
    }
    V acc[MC];
    VH acch[MC];
#pragma GCC unroll 32
    for (int i = 0; i < MC; ++i) {
        acc[i] = V{};
        acch[i] = VH{};
    }
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; ++k) {
        const V b0 = S::load_aligned(bp);
        const VH b1 = Simd<T, H>::load_aligned(bp + S::W);
#pragma GCC unroll 32
        for (int i = 0; i < MC; ++i) {
            const T ai = a.at(i);
            acc[i] = Ops::fma(Ops::splat(ai), b0, acc[i]);
            acch[i] = H::fma(H::splat(ai), b1, acch[i]);
        }
        a.next();
        bp += NRB;
    }
    V out[MC][2];
#pragma GCC unroll 32
    for (int i = 0; i < MC; ++i) {
        out[i][0] = alpha != T(1) ? Ops::splat(alpha) * acc[i] : acc[i];
        const VH h = alpha != T(1) ? H::splat(alpha) * acch[i] : acch[i];
        out[i][1] = V{};
        std::memcpy(&out[i][1], &h, sizeof h);
    }
    store_tile_through_scratch<T, Ops, 2, MC>(out, alpha, beta, c, rsc, csc, m, n, rb, rm, rm_rs);
}

// The micro-kernel: see MicroKernel / MicroKernelA in gemm_kernels.hpp for the
// contract. MR rows x NV vectors of accumulators live in registers for the
// whole kc loop. An edge tile of m < MR rows runs the same loop over its m rows
// only (MC, the rows computed): the padding rows cost nothing, and every
// element gets the same FMA chain as in a full tile. With 4 of 6 rows (the
// 64-row batches, and 10-row thin products cut 6 + 4) the tile still has the
// 8 independent accumulators two FMA ports of latency 4 need, so it runs at
// the full tile's rate. The FMA chain of an element does not depend on how A
// is read, so packed and in-place A give the same bits.
//
// B is a packed micro-panel (NR values of each k adjacent, aligned), or, with
// BInPlace, op(B) = B where it lies: NR contiguous values of row k at
// bp + k * b_ks, loaded unaligned. The FMA chains are the same either way.
//
// A column edge of at most one vector (n <= W: the last 4 of 100 hidden
// units in float64, the 10 outputs of a classifier in float32 AVX-512) runs
// with NV = 1, reading the first vector of each packed NVB-vector row: half
// the FMAs of the full-width edge tile, and each element's chain unchanged;
// one of at most half a vector (those 4 float64 columns on AVX-512) runs on
// Ops::Half's vectors, where the instruction set has them, and one of at
// most one and a half (10 float64 outputs) on one vector and a half-width
// one (micro_tile_half_last).
//
// rb / rm (Epilogue::relu_bias / relu_mask, csc == 1 only): the stored tile
// is relu(C + rb[j]), or C * relu'(rm[i * rm_rs + j]) (update_row): a relu
// layer's forward or backward step done in the registers.
template <class T, class Ops, int NV, int MC, class AR, bool BInPlace, int NVB>
__attribute__((noinline)) void narrow_tile(size_t kc, AR a, const T* __restrict bp, size_t b_ks, T alpha, T beta,
                                           T* c, size_t rsc, size_t csc, size_t m, size_t n, const T* rb,
                                           const T* rm, size_t rm_rs);

template <class T, class Ops, int NV, int MC, class AR, bool BInPlace = false, int NVB = NV>
void micro_tile(size_t kc, AR a, const T* __restrict bp, size_t b_ks, T alpha, T beta, T* c, size_t rsc,
                size_t csc, size_t m, size_t n, const T* rb, const T* rm, size_t rm_rs) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    if constexpr (NV > 1 && !BInPlace) {
        if (n <= S::W) {
            narrow_tile<T, Ops, 1, MC, AR, false, NVB>(kc, a, bp, b_ks, alpha, beta, c, rsc, csc, m, n, rb, rm,
                                                       rm_rs);
            return;
        }
    }
    if constexpr (NV == 2 && !BInPlace && HalfOps<Ops>::exists) {
        if (n > S::W && n <= S::W + S::W / 2) {
            micro_tile_half_last<T, Ops, MC, AR, NVB>(kc, a, bp, alpha, beta, c, rsc, csc, m, n, rb, rm, rm_rs);
            return;
        }
    }
    if constexpr (NV == 1 && HalfOps<Ops>::exists) {
        if (n <= S::W / 2) {
            narrow_tile<T, typename HalfOps<Ops>::type, 1, MC, AR, BInPlace, 2 * NVB>(kc, a, bp, b_ks, alpha, beta, c,
                                                                                   rsc, csc, m, n, rb, rm, rm_rs);
            return;
        }
    }
    if constexpr (MC > 1) {
        if (m < size_t(MC)) {
            micro_tile<T, Ops, NV, MC - 1, AR, BInPlace, NVB>(kc, a, bp, b_ks, alpha, beta, c, rsc, csc, m, n, rb,
                                                              rm, rm_rs);
            return;
        }
    }
    constexpr size_t NR = NV * S::W;       // columns this tile computes
    constexpr size_t NRB = NVB * S::W;     // row stride of the packed B micro-panel
    // Fetch the C tile while the kc loop runs: it is read (beta != 0) and
    // written only at the end, and on large C it is not in L1/L2 any more, so
    // its loads and stores would otherwise wait on memory (BENCHMARKS.md,
    // "Measurements behind the code": micro_tile).
    if (csc == 1) {
        for (size_t i = 0; i < m; ++i) {
            __builtin_prefetch(c + i * rsc, 1, 3);
            __builtin_prefetch(c + i * rsc + n - 1, 1, 3);
        }
    } else {
        for (size_t j = 0; j < n; ++j) {
            __builtin_prefetch(c + j * csc, 1, 3);
            __builtin_prefetch(c + j * csc + (m - 1) * rsc, 1, 3);
        }
    }
    V acc[MC][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MC; ++i)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = V{};
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; ++k) {
        V b[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) b[v] = BInPlace ? S::load(bp + v * S::W) : S::load_aligned(bp + v * S::W);
#pragma GCC unroll 32
        for (int i = 0; i < MC; ++i) {
            const V av = Ops::splat(a.at(i));
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[i][v] = Ops::fma(av, b[v], acc[i][v]);
        }
        a.next();
        bp += BInPlace ? b_ks : NRB;
    }
    // alpha applied once here, and skipped for the usual alpha == 1: each
    // multiply by splat(alpha) took an FMA port for a cycle, 28 per
    // 14 x 16 tile against 30 x 28 FMAs at K = 30.
    if (alpha != T(1)) {
        const V va = Ops::splat(alpha);
#pragma GCC unroll 32
        for (int i = 0; i < MC; ++i)
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[i][v] = va * acc[i][v];
    }
    if (n == NR && csc == 1) {  // m == MC here
        if constexpr (kFusedStores) {
            if (rb) {
#pragma GCC unroll 32
                for (int i = 0; i < MC; ++i) update_row<T, Ops, NV, false>(c + i * rsc, acc[i], alpha, beta, rb);
                return;
            }
            if (rm) {
#pragma GCC unroll 32
                for (int i = 0; i < MC; ++i)
                    update_row<T, Ops, NV, false>(c + i * rsc, acc[i], alpha, beta, nullptr, rm + i * rm_rs);
                return;
            }
        }
#pragma GCC unroll 32
        for (int i = 0; i < MC; ++i) update_row<T, Ops, NV, false>(c + i * rsc, acc[i], alpha, beta);
        return;
    }
    store_tile_through_scratch<T, Ops, NV, MC>(acc, alpha, beta, c, rsc, csc, m, n, rb, rm, rm_rs);
}

// A column edge's tile (one vector, or one of Ops::Half's), called out of
// line from the full tile's dispatch. GCC had kept these out of line by its
// own measure until the kernels took one argument more (mask_rs), then
// inlined them, and the narrow products ran slower (BENCHMARKS.md,
// "Measurements behind the code": narrow_tile).
template <class T, class Ops, int NV, int MC, class AR, bool BInPlace, int NVB>
__attribute__((noinline)) void narrow_tile(size_t kc, AR a, const T* __restrict bp, size_t b_ks, T alpha, T beta,
                                           T* c, size_t rsc, size_t csc, size_t m, size_t n, const T* rb,
                                           const T* rm, size_t rm_rs) {
    micro_tile<T, Ops, NV, MC, AR, BInPlace, NVB>(kc, a, bp, b_ks, alpha, beta, c, rsc, csc, m, n, rb, rm, rm_rs);
}

template <class T, class Ops, int MR, int NV>
void micro_kernel(size_t kc, const T* ap, const T* bp, T alpha, T beta, T* c, size_t rsc, size_t csc,
                  size_t m, size_t n, const T* rb, const T* rm, size_t rm_rs) {
    micro_tile<T, Ops, NV, MR>(kc, PackedA<T, MR>{ap}, bp, 0, alpha, beta, c, rsc, csc, m, n, rb, rm, rm_rs);
}

template <class T, class Ops, int MR, int NV>
void micro_kernel_a(size_t kc, const T* a, size_t a_rs, size_t a_ks, const T* bp, T alpha, T beta, T* c,
                    size_t rsc, size_t csc, size_t m, size_t n, const T* rb, const T* rm, size_t rm_rs) {
    micro_tile<T, Ops, NV, MR>(kc, StridedA<T>{a, a_rs, a_ks}, bp, 0, alpha, beta, c, rsc, csc, m, n, rb, rm,
                               rm_rs);
}

template <class T, class Ops, int MR, int NV>
void micro_kernel_b(size_t kc, const T* ap, const T* b, size_t b_ks, T alpha, T beta, T* c, size_t rsc,
                    size_t csc, size_t m, size_t n, const T* rb, const T* rm, size_t rm_rs) {
    micro_tile<T, Ops, NV, MR, PackedA<T, MR>, true>(kc, PackedA<T, MR>{ap}, b, b_ks, alpha, beta, c, rsc, csc, m,
                                                     n, rb, rm, rm_rs);
}

template <class T, class Ops, int MR, int NV>
void micro_kernel_ab(size_t kc, const T* a, size_t a_rs, size_t a_ks, const T* b, size_t b_ks, T alpha, T beta,
                     T* c, size_t rsc, size_t csc, size_t m, size_t n, const T* rb, const T* rm, size_t rm_rs) {
    micro_tile<T, Ops, NV, MR, StridedA<T>, true>(kc, StridedA<T>{a, a_rs, a_ks}, b, b_ks, alpha, beta, c, rsc, csc,
                                                  m, n, rb, rm, rm_rs);
}

// Stores alpha * s + beta * c for one scalar (tails of the small kernels).
template <class T>
inline T scale_store(T s, T alpha, T beta, T c) {
    return beta == T(0) ? alpha * s : alpha * s + beta * c;
}

// small_nn for a fixed row count M: NV vectors x M rows of accumulators walk
// down all K rows of B, so each C element gets its whole K sum in one chain.
// Blocks of NV vectors, then of one vector, then the last few columns in one
// padded vector (small_nn_rows); all three compute and store a column alike,
// so every column gets the same bits whichever of them computes it, and a
// thread's part of the columns may begin and end anywhere.
template <class T, class Ops, int M, int NV>
size_t small_nn_blocks(size_t j, size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta, T* C,
                       size_t ldc) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    constexpr size_t NB = NV * S::W;
    for (; j + NB <= n; j += NB) {
        V acc[M][NV];
        for (int i = 0; i < M; ++i)
            for (int v = 0; v < NV; ++v) acc[i][v] = V{};
        const T* b = B + j;
        for (size_t k = 0; k < K; ++k, b += ldb) {
            V bv[NV];
            // Loaded once for the M rows instead of once per row (BENCHMARKS.md,
            // "Measurements behind the code": small_nn_blocks).
            for (int v = 0; v < NV; ++v) {
                bv[v] = S::load(b + v * S::W);
                if constexpr (M > 1 && S::fits_in_registers(M * NV, NV)) S::in_register(bv[v]);
            }
            for (int i = 0; i < M; ++i) {
                const V av = Ops::splat(a[i * K + k]);
                for (int v = 0; v < NV; ++v) acc[i][v] = Ops::fma(av, bv[v], acc[i][v]);
            }
        }
        for (int i = 0; i < M; ++i) update_row<T, Ops, NV>(C + i * ldc + j, acc[i], alpha, beta);
    }
    return j;
}

template <class T, class Ops, int M, int NV>
void small_nn_rows(size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta, T* C,
                   size_t ldc) {
    using V = typename Ops::V;
    size_t j = small_nn_blocks<T, Ops, M, NV>(0, n, K, alpha, a, B, ldb, beta, C, ldc);
    if constexpr (NV > 1) j = small_nn_blocks<T, Ops, M, 1>(j, n, K, alpha, a, B, ldb, beta, C, ldc);
    if (j == n) return;
    // The last n % W columns in the lanes of one vector, B's rows copied in
    // zero-padded: each lane is the FMA chain over k from zero that a vector
    // column gets, and the M chains run side by side instead of M x (n % W)
    // latency-bound scalar chains one after another (BENCHMARKS.md,
    // "Measurements behind the code": small_nn_rows).
    const size_t r = n - j;
    V acc[M];
    for (int i = 0; i < M; ++i) acc[i] = V{};
    for (size_t k = 0; k < K; ++k) {
        // A masked load: a row built in a stack buffer and loaded back waits
        // on the store-to-load forward every k (BENCHMARKS.md, "Measurements
        // behind the code": small_nn_rows).
        const V bv = Ops::load_head(B + k * ldb + j, r);
        for (int i = 0; i < M; ++i) acc[i] = Ops::fma(Ops::splat(a[i * K + k]), bv, acc[i]);
    }
    // Stored through update_row, as the vector columns are: the same
    // rounding of alpha and beta in every column.
    for (int i = 0; i < M; ++i) update_head<T, Ops>(C + i * ldc + j, acc[i], r, alpha, beta);
}

// small_nn_rows<1, 4> with 32 vector registers (AVX-512): NV vectors of
// sums stay in registers while the block walks all K rows of B, so a
// multiply-add costs one load of B and nothing else; with NV = 16 a row's
// block is 1 KiB (a 256-column float W's whole row), wide enough for the
// hardware prefetcher to stream, and no sum goes through L1 as in
// small_nn_row's passes. Beyond 2 MiB of B (from memory) each row is
// prefetched kFarAhead rows on, so that its lines arrive by the time the
// block reaches it. Narrower vectors make blocks too narrow to stream, so the
// other tables keep small_nn_row's order. Each column is one FMA chain over
// k from zero, as there. (BENCHMARKS.md, "Measurements behind the code":
// row_blocks_in_registers.)
template <class T, class Ops, int NV>
size_t row_blocks_in_registers(size_t j, size_t nvec, size_t K, T alpha, const T* a, const T* B, size_t ldb,
                               T beta, T* C, bool far) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    constexpr size_t NB = NV * S::W;
    constexpr size_t kLine = 64 / sizeof(T);
    constexpr size_t kFarAhead = 8;
    for (; j + NB <= nvec; j += NB) {
        V acc[NV];
        for (int v = 0; v < NV; ++v) acc[v] = V{};
        const T* b = B + j;
        size_t k = 0;
        if (far)
            for (; k + kFarAhead < K; ++k, b += ldb) {
                for (size_t l = 0; l < NB; l += kLine) __builtin_prefetch(b + kFarAhead * ldb + l, 0, 3);
                const V av = Ops::splat(a[k]);
                for (int v = 0; v < NV; ++v) acc[v] = Ops::fma(av, S::load(b + v * S::W), acc[v]);
            }
        for (; k < K; ++k, b += ldb) {
            const V av = Ops::splat(a[k]);
            for (int v = 0; v < NV; ++v) acc[v] = Ops::fma(av, S::load(b + v * S::W), acc[v]);
        }
        update_row<T, Ops, NV>(C + j, acc, alpha, beta);
    }
    // The rest of the vector columns in halving blocks: at most one of each.
    if constexpr (NV > 1) return row_blocks_in_registers<T, Ops, NV / 2>(j, nvec, K, alpha, a, B, ldb, beta, C, far);
    return j;
}

// small_nn_rows<1, 4> for one row of A: with 32 vector registers in
// register blocks (row_blocks_in_registers, above), the columns past the last
// whole vector in one more vector's lanes. Otherwise by rows of B instead
// of column blocks: the sums of a chunk of columns stay in L1 while B is
// read row after row, in memory order (walking 32 columns down all K rows
// was slower when B comes from L3). Four rows of B go into the sums per
// pass over them: one load and one store of a sum vector per four FMAs
// instead of per FMA, which had bound the loop to the store port. While a
// pass runs, the next pass's four rows are prefetched, a line at a time,
// which hides B's latency when it comes from L3; from L2 it changes nothing
// measurable. Each column gets the same FMA chain over k from zero, in a
// vector lane or, past the last whole vector, in the scalar chain that rounds
// like one, so the results are those of small_nn_rows<1, 4>. (BENCHMARKS.md,
// "Measurements behind the code": small_nn_row.)
template <class T, class Ops>
void small_nn_row(size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta, T* C) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    constexpr size_t CHUNK = 256 * S::W;  // 8 KiB of float sums
    constexpr size_t KB = 4;              // rows of B per pass over the sums
    constexpr size_t kLine = 64 / sizeof(T);
    const size_t nvec = n / S::W * S::W;
    if constexpr (S::kRegs == 32) {
        const bool far = K * ldb * sizeof(T) > (size_t(2) << 20);
        row_blocks_in_registers<T, Ops, 16>(0, nvec, K, alpha, a, B, ldb, beta, C, far);
        if (nvec == n) return;
        const size_t r = n - nvec;
        V tail{};
        for (size_t k = 0; k < K; ++k) tail = Ops::fma(Ops::splat(a[k]), Ops::load_head(B + k * ldb + nvec, r), tail);
        update_head<T, Ops>(C + nvec, tail, r, alpha, beta);
        return;
    }
    alignas(64) T acc[CHUNK];
    for (size_t j0 = 0; j0 < n; j0 += CHUNK) {
        const size_t nc = n - j0 < CHUNK ? n - j0 : CHUNK;
        const size_t nv = j0 + nc <= nvec ? nc : nvec - j0;  // vector columns of this chunk (CHUNK is whole vectors)
        for (size_t j = 0; j < nc; ++j) acc[j] = T(0);
        size_t k = 0;
        for (; k + KB <= K; k += KB) {
            const T* b = B + k * ldb + j0;
            V av[KB];
            for (size_t q = 0; q < KB; ++q) av[q] = Ops::splat(a[k + q]);
            const bool ahead = k + 2 * KB <= K;
            for (size_t j = 0; j < nv; j += S::W) {
                if (ahead && j % kLine == 0)
                    for (size_t q = KB; q < 2 * KB; ++q) __builtin_prefetch(b + q * ldb + j, 0, 3);
                V s = S::load(acc + j);
#pragma GCC unroll 4
                for (size_t q = 0; q < KB; ++q) s = Ops::fma(av[q], S::load(b + q * ldb + j), s);
                S::store(acc + j, s);
            }
            for (size_t j = nv; j < nc; ++j)
                for (size_t q = 0; q < KB; ++q) acc[j] = S::fma1(a[k + q], b[q * ldb + j], acc[j]);
        }
        for (; k < K; ++k) {
            const T* b = B + k * ldb + j0;
            const V av = Ops::splat(a[k]);
            for (size_t j = 0; j < nv; j += S::W) S::store(acc + j, Ops::fma(av, S::load(b + j), S::load(acc + j)));
            for (size_t j = nv; j < nc; ++j) acc[j] = S::fma1(a[k], b[j], acc[j]);
        }
        for (size_t j = 0; j < nv; j += S::W) {
            const V v = S::load(acc + j);
            update_row<T, Ops, 1>(C + j0 + j, &v, alpha, beta);
        }
        for (size_t j = nv; j < nc; ++j) C[j0 + j] = scale_store(acc[j], alpha, beta, C[j0 + j]);
    }
}

template <class T, class Ops>
void small_nn(size_t M, size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta,
              T* C, size_t ldc) {
    switch (M) {
        case 1: small_nn_row<T, Ops>(n, K, alpha, a, B, ldb, beta, C); break;
        case 2: small_nn_rows<T, Ops, 2, 4>(n, K, alpha, a, B, ldb, beta, C, ldc); break;
        case 3: small_nn_rows<T, Ops, 3, 4>(n, K, alpha, a, B, ldb, beta, C, ldc); break;
        default:
            for (size_t i = 0; i < M; i += 4) {
                const size_t m = M - i < 4 ? M - i : 4;
                if (m == 4) small_nn_rows<T, Ops, 4, 2>(n, K, alpha, a + i * K, B, ldb, beta, C + i * ldc, ldc);
                else small_nn<T, Ops>(m, n, K, alpha, a + i * K, B, ldb, beta, C + i * ldc, ldc);
            }
    }
}

// The k tail of a dot product a . b, added to the sum s of its vector part:
// one FMA a term (Ops::fma, as the vector lanes would add it; the compiler
// contracted the plain s += a b to the same on the FMA tables), so that
// tail_dots can add W tails at once in vector lanes with the same bits.
template <class T, class Ops>
inline T dot_tail(T s, size_t k_end, size_t K, const T* a, const T* b) {
    for (size_t k = k_end; k < K; ++k) s = Simd<T, Ops>::fma1(a[k], b[k], s);
    return s;
}

// The end of one dot product a . b of length K, its vector part summed in
// acc (lanes over k < k_end): lanes summed in order, then the k tail. Every
// (i, j) of small_nt goes through exactly this arithmetic.
template <class T, class Ops>
inline T dot_finish(typename Ops::V acc, size_t k_end, size_t K, const T* a, const T* b) {
    using S = Simd<T, Ops>;
    alignas(64) T lanes[S::W];
    S::store(lanes, acc);
    T s = 0;
    for (size_t l = 0; l < S::W; ++l) s += lanes[l];
    return dot_tail<T, Ops>(s, k_end, K, a, b);
}

// The lane sums of dot_finish for W accumulators at once, where the compiler
// has vector shuffles: the W x W block of lanes transposed in registers
// (log2 W rounds of two-vector shuffles), then the W transposed vectors
// added in lane order, so out[j] gets acc[j]'s lanes summed in the same
// order as one by one, the same bits. One at a time, each sum goes through
// memory and a chain of W - 1 scalar adds, which dominated a one-row step's
// dA (BENCHMARKS.md, "Measurements behind the code": lane_sums).
#if defined(__AVX2__) && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define DNNFAST_VECTOR_LANE_SUMS 1
// Lane p of the shuffle that pairs blocks of Q lanes of a and b: within
// each 2Q-lane group, the low (Hi false) or high Q lanes of a, then of b.
constexpr int block_lane(size_t W, size_t Q, bool hi, size_t p) {
    const size_t group = p / (2 * Q) * (2 * Q), off = p % (2 * Q), from = hi ? Q : 0;
    return off < Q ? int(group + from + off) : int(W + group + from + off - Q);
}
template <class V, size_t W, size_t Q, bool Hi, size_t... P>
DNNFAST_KERNEL_INLINE V pair_blocks(V a, V b, std::index_sequence<P...>) {
    return __builtin_shufflevector(a, b, block_lane(W, Q, Hi, P)...);
}
// r[0..W) := its transpose: rows i and i + Q exchange blocks of Q lanes,
// for Q = W/2, W/4, ..., 1.
template <class V, size_t W, size_t Q = W / 2>
DNNFAST_KERNEL_INLINE void transpose_lanes(V* r) {
    for (size_t i = 0; i < W; ++i)
        if (i / Q % 2 == 0) {
            const V lo = pair_blocks<V, W, Q, false>(r[i], r[i + Q], std::make_index_sequence<W>{});
            const V hi = pair_blocks<V, W, Q, true>(r[i], r[i + Q], std::make_index_sequence<W>{});
            r[i] = lo;
            r[i + Q] = hi;
        }
    if constexpr (Q > 1) transpose_lanes<V, W, Q / 2>(r);
}
// The packing's transposing copy (TransposeFn, for the tables that set it)
// in W x W blocks: up to W rows read a vector of k at a time (the k tail by
// Ops::load_head), transposed by transpose_lanes, and each k's values
// stored by Ops::store_head over the block's rows, so nothing outside the
// panel is written. Against the generic SSE2 4 x 4 / 2 x 2 transposes (16
// floats / 8 doubles to a vector), a quarter of the loads and stores.
template <class T, class Ops>
void transpose_blocks(const T* src, size_t lds, size_t rows, size_t kc, T* dst, size_t ldd) {
    using V = typename Ops::V;
    constexpr size_t W = Simd<T, Ops>::W;
    for (size_t i0 = 0; i0 < rows; i0 += W) {
        const size_t ri = rows - i0 < W ? rows - i0 : W;
        for (size_t k0 = 0; k0 < kc; k0 += W) {
            const size_t kk = kc - k0 < W ? kc - k0 : W;
            V r[W];
            for (size_t i = 0; i < W; ++i) r[i] = i < ri ? Ops::load_head(src + (i0 + i) * lds + k0, kk) : V{};
            transpose_lanes<V, W>(r);
            for (size_t k = 0; k < kk; ++k) Ops::store_head(dst + (k0 + k) * ldd + i0, r[k], ri);
        }
    }
}
template <class T, class Ops>
DNNFAST_KERNEL_INLINE typename Ops::V lane_sums(typename Ops::V* acc) {
    using S = Simd<T, Ops>;
    transpose_lanes<typename Ops::V, S::W>(acc);
    typename Ops::V s = {};
    for (size_t l = 0; l < S::W; ++l) s = s + acc[l];
    return s;
}
// The k tails of W dot products at once: s holds their sums so far (lane
// j: row j's), t the tails of the W rows of b (Ops::load_head, r < W values
// from column k_end each), transposed here in registers so that t[k] holds
// column k_end + k of the W rows; each is added as dot_tail adds it (one FMA
// a term, in k order), so lane j gets row j's dot_tail bits. One row at a
// time those are chains of r dependent scalar FMAs, each term waiting for
// the one before (BENCHMARKS.md, "Measurements behind the code": tail_dots).
template <class T, class Ops>
DNNFAST_KERNEL_INLINE typename Ops::V tail_dots(typename Ops::V s, typename Ops::V* t, size_t r, const T* a) {
    transpose_lanes<typename Ops::V, Simd<T, Ops>::W>(t);
    for (size_t k = 0; k < r; ++k) s = Ops::fma(Ops::splat(a[k]), t[k], s);
    return s;
}
#endif
#endif

// C[0:MI, j:j+NB] of small_nt: MI rows of a (MI <= kSmallM) against NB rows
// of B, each vector of a B row loaded once for all MI rows, so that op(B) is
// streamed once rather than once per row of a (BENCHMARKS.md, "Measurements
// behind the code": small_nt_block).
template <class T, class Ops, int MI, int NB>
inline void small_nt_block(size_t j, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta, T* C,
                           size_t ldc) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    const size_t kv = K / S::W * S::W;
    const T* b = B + j * ldb;
    V acc[MI][NB];
    for (int i = 0; i < MI; ++i)
        for (int jj = 0; jj < NB; ++jj) acc[i][jj] = V{};
    for (size_t k = 0; k < kv; k += S::W) {
        V bv[NB];
        for (int jj = 0; jj < NB; ++jj) {
            bv[jj] = S::load(b + jj * ldb + k);
            S::in_register(bv[jj]);  // small_nt_rows picks NB so that they fit
        }
        for (int i = 0; i < MI; ++i) {
            const V av = S::load(a + i * K + k);
            for (int jj = 0; jj < NB; ++jj) acc[i][jj] = Ops::fma(av, bv[jj], acc[i][jj]);
        }
    }
    for (int i = 0; i < MI; ++i)
        for (int jj = 0; jj < NB; ++jj) {
            T* c = C + i * ldc + j + jj;
            *c = scale_store(dot_finish<T, Ops>(acc[i][jj], kv, K, a + i * K, b + jj * ldb), alpha, beta, *c);
        }
}

// B rows per block of small_nt_rows (MI >= 2): as many as fit in the
// registers with their accumulators, up to eight.
template <class S, int MI>
constexpr int small_nt_block_rows() {
    for (int nb = 8; nb > 1; --nb)
        if ((MI <= 2 || nb <= 4) && S::fits_in_registers(MI * nb, nb)) return nb;
    return 1;
}

template <class T, class Ops, int MI>
void small_nt_rows(size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta, T* C, size_t ldc) {
    constexpr int NB = small_nt_block_rows<Simd<T, Ops>, MI>();
    size_t j = 0;
    for (; j + NB <= n; j += NB) small_nt_block<T, Ops, MI, NB>(j, K, alpha, a, B, ldb, beta, C, ldc);
    for (; j < n; ++j) small_nt_block<T, Ops, MI, 1>(j, K, alpha, a, B, ldb, beta, C, ldc);
}

// One row of a against JB rows of B (b[0..JB)): the dots of small_nt for M
// = 1, B in memory operands: the blocked form above, made to share B's loads
// among rows of a, gains nothing with one row and was slower (BENCHMARKS.md,
// "Measurements behind the code": dots).
template <class T, class Ops, int JB>
inline void dots(size_t K, const T* a, const T* const* b, T* out) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    V acc[JB];
    for (int j = 0; j < JB; ++j) acc[j] = V{};
    size_t k = 0;
    for (; k + S::W <= K; k += S::W) {
        const V av = S::load(a + k);
        for (int j = 0; j < JB; ++j) acc[j] = Ops::fma(av, S::load(b[j] + k), acc[j]);
    }
    for (int j = 0; j < JB; ++j) out[j] = dot_finish<T, Ops>(acc[j], k, K, a, b[j]);
}

#ifdef DNNFAST_VECTOR_LANE_SUMS
// dots for W rows of B, ldb apart, their lane sums added as vectors
// (lane_sums). One pointer steps down the rows at each k: W row pointers
// kept apart did not fit in the general registers and were reloaded from
// the stack every k.
template <class T, class Ops>
inline void dots_w(size_t K, const T* a, const T* b, size_t ldb, T* out) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    constexpr size_t W = S::W;
    V acc[W];
    for (size_t j = 0; j < W; ++j) acc[j] = V{};
    size_t k = 0;
    for (; k + W <= K; k += W) {
        const V av = S::load(a + k);
        const T* row = b + k;
        for (size_t j = 0; j < W; ++j, row += ldb) acc[j] = Ops::fma(av, S::load(row), acc[j]);
    }
    V s = lane_sums<T, Ops>(acc);
    if (k < K) {
        V t[W];
        for (size_t j = 0; j < W; ++j) t[j] = Ops::load_head(b + j * ldb + k, K - k);
        s = tail_dots<T, Ops>(s, t, K - k, a + k);
    }
    S::store(out, s);
}
#endif

template <class T, class Ops>
void small_nt_row(size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta, T* C) {
    size_t j = 0;
#ifdef DNNFAST_VECTOR_LANE_SUMS
    // W rows of B at a time, their lane sums added as vectors (lane_sums).
    constexpr int JW = int(Simd<T, Ops>::W);
    for (; j + JW <= n; j += JW) {
        alignas(64) T s[JW];
        dots_w<T, Ops>(K, a, B + j * ldb, ldb, s);
        for (int jj = 0; jj < JW; ++jj) C[j + jj] = scale_store(s[jj], alpha, beta, C[j + jj]);
    }
#endif
    constexpr int JB = 4;
    for (; j + JB <= n; j += JB) {
        const T* b[JB];
        for (int jj = 0; jj < JB; ++jj) b[jj] = B + (j + jj) * ldb;
        T s[JB];
        dots<T, Ops, JB>(K, a, b, s);
        for (int jj = 0; jj < JB; ++jj) C[j + jj] = scale_store(s[jj], alpha, beta, C[j + jj]);
    }
    for (; j < n; ++j) {
        const T* b[1] = {B + j * ldb};
        T s[1];
        dots<T, Ops, 1>(K, a, b, s);
        C[j] = scale_store(s[0], alpha, beta, C[j]);
    }
}

template <class T, class Ops>
void small_nt(size_t M, size_t n, size_t K, T alpha, const T* a, const T* B, size_t ldb, T beta,
              T* C, size_t ldc) {
    if (M == 1) {
        small_nt_row<T, Ops>(n, K, alpha, a, B, ldb, beta, C);
        return;
    }
    for (size_t i = 0; i < M; i += 4) {
        const size_t m = M - i < 4 ? M - i : 4;
        const T* ai = a + i * K;
        T* ci = C + i * ldc;
        switch (m) {
            case 1: small_nt_row<T, Ops>(n, K, alpha, ai, B, ldb, beta, ci); break;
            case 2: small_nt_rows<T, Ops, 2>(n, K, alpha, ai, B, ldb, beta, ci, ldc); break;
            case 3: small_nt_rows<T, Ops, 3>(n, K, alpha, ai, B, ldb, beta, ci, ldc); break;
            default: small_nt_rows<T, Ops, 4>(n, K, alpha, ai, B, ldb, beta, ci, ldc);
        }
    }
}

// Peak-FMA probe: NACC independent accumulators (more than FMA latency x
// FMA ports) updated in registers; the result only keeps the loop alive.
template <class T, class Ops>
double fma_loop(long iters) {
    using V = typename Ops::V;
    constexpr int NACC = 12;
    V acc[NACC];
    for (int r = 0; r < NACC; ++r) acc[r] = Ops::splat(T(r));
    const V m = Ops::splat(T(0.999999)), add = Ops::splat(T(1e-6));
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int r = 0; r < NACC; ++r) acc[r] = Ops::fma(acc[r], m, add);
    }
    T s = 0;
    for (int r = 0; r < NACC; ++r) s += acc[r][0];
    return double(s);
}

// The rank-1 kernel (contract in gemm_kernels.hpp). Every column goes through
// the same formula, alpha * (a_i * b_j) then + beta * c, vector lanes and
// tail alike.
template <class T, class Ops>
void rank1_rows(size_t M, size_t n, T alpha, const T* a, size_t a_stride, const T* b, T beta, T* C,
                size_t ldc, const T* rm) {
    using S = Simd<T, Ops>;
    const auto valpha = Ops::splat(alpha), vbeta = Ops::splat(beta);
    if (n == 1 && a_stride == 1 && ldc == 1) {
        // One column (a one-output layer's dZ W^T): C is a vector like a,
        // taken a vector of rows at a time, each through the formula below.
        const auto vb = Ops::splat(b[0]);
        size_t i = 0;
        for (; i + S::W <= M; i += S::W) {
            auto r = valpha * (S::load(a + i) * vb);
            if (beta != T(0)) r = Ops::fma(vbeta, S::load(C + i), r);
            S::store(C + i, rm ? relu_masked<T, Ops>(r, rm + i) : r);
        }
        for (; i < M; ++i) {
            T r = alpha * (a[i] * b[0]);
            if (beta != T(0)) r = S::fma1(beta, C[i], r);
            C[i] = rm ? relu_masked(r, rm[i]) : r;
        }
        return;
    }
    for (size_t i = 0; i < M; ++i) {
        const T ai = a[i * a_stride];
        const auto va = Ops::splat(ai);
        T* c = C + i * ldc;
        size_t j = 0;
        if (rm) {  // a relu layer's dZ: the values below, masked
            const T* mi = rm + i * ldc;
            for (; j + S::W <= n; j += S::W) {
                const auto r = valpha * (va * S::load(b + j));
                S::store(c + j, relu_masked<T, Ops>(beta == T(0) ? r : Ops::fma(vbeta, S::load(c + j), r), mi + j));
            }
            for (; j < n; ++j) {
                const T r = alpha * (ai * b[j]);
                c[j] = relu_masked(beta == T(0) ? r : S::fma1(beta, c[j], r), mi[j]);
            }
            continue;
        }
        if (beta == T(0)) {
            for (; j + S::W <= n; j += S::W) S::store(c + j, valpha * (va * S::load(b + j)));
            for (; j < n; ++j) c[j] = alpha * (ai * b[j]);
        } else {
            for (; j + S::W <= n; j += S::W)
                S::store(c + j, Ops::fma(vbeta, S::load(c + j), valpha * (va * S::load(b + j))));
            for (; j < n; ++j) {
                const T r = alpha * (ai * b[j]);
                c[j] = S::fma1(beta, c[j], r);
            }
        }
    }
}

// small_k_rows for rows of NC <= kSmallN columns and K terms known here:
// each element's FMA chain in scalars, stored as update_row stores a lane
// (alpha s, or beta c + alpha s in one FMA, then relu_mask), so the bits of
// the vector path. A vector for one to three columns does 1/16 to 3/16 of
// useful work through the scratch tail; the C^T of gemm_small_n sums a
// vector's lanes for each element (BENCHMARKS.md, "Measurements behind the
// code": small_k_narrow).
template <class T, class Ops, int NC, int KK, bool BetaZero, bool Masked>
void small_k_narrow_rows(size_t m, T alpha, const T* a, size_t a_rs, size_t a_ks, const T (&b)[KK][NC], T beta,
                         T* C, size_t ldc, const T* rm) {
    using S = Simd<T, Ops>;
    for (size_t i = 0; i < m; ++i) {
        T av[KK];
        for (int k = 0; k < KK; ++k) av[k] = a[i * a_rs + size_t(k) * a_ks];
        T r[NC];
        for (int j = 0; j < NC; ++j) {
            T s = T(0);
            for (int k = 0; k < KK; ++k) s = S::fma1(av[k], b[k][j], s);
            r[j] = alpha * s;
        }
        T* c = C + i * ldc;
        for (int j = 0; j < NC; ++j) {
            T v = BetaZero ? r[j] : S::fma1(beta, c[j], r[j]);
            c[j] = Masked ? relu_masked(v, rm[i * ldc + size_t(j)]) : v;
        }
    }
}

template <class T, class Ops, int NC, int KK>
__attribute__((noinline)) void small_k_narrow(size_t m, T alpha, const T* a, size_t a_rs, size_t a_ks, const T* bp, size_t ldbp, T beta,
                    T* C, size_t ldc, const T* rm) {
    T b[KK][NC];
    for (int k = 0; k < KK; ++k)
        for (int j = 0; j < NC; ++j) b[k][j] = bp[size_t(k) * ldbp + size_t(j)];
    if (beta == T(0)) {
        if (rm) small_k_narrow_rows<T, Ops, NC, KK, true, true>(m, alpha, a, a_rs, a_ks, b, beta, C, ldc, rm);
        else small_k_narrow_rows<T, Ops, NC, KK, true, false>(m, alpha, a, a_rs, a_ks, b, beta, C, ldc, rm);
    } else {
        if (rm) small_k_narrow_rows<T, Ops, NC, KK, false, true>(m, alpha, a, a_rs, a_ks, b, beta, C, ldc, rm);
        else small_k_narrow_rows<T, Ops, NC, KK, false, false>(m, alpha, a, a_rs, a_ks, b, beta, C, ldc, rm);
    }
}

// The short-K kernel (contract in gemm_kernels.hpp) for K = KK: four
// vectors of a row at a time, each an FMA chain over the K rows of bp from
// zero, then stored by update_row, as micro_tile stores a tile (relu_mask
// included); the last columns under a mask (or through a vector-wide
// scratch, bp being zero-padded), so every column gets the same
// arithmetic. K is known here, so the broadcasts of a row stay in
// registers, and the vectors after the last four are independent chains in
// one pass: with K a loop bound they went through the stack, and one chain
// at a time bounded rows of one to three vectors by its K dependent FMAs
// (BENCHMARKS.md, "Measurements behind the code": small_k_rows).
template <class T, class Ops>
DNNFAST_KERNEL_INLINE void small_k_store(T* c, typename Ops::V acc, size_t r, T alpha, T beta, const T* mi) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    if (r == S::W) {
        update_row<T, Ops, 1>(c, &acc, alpha, beta, nullptr, mi);
    } else if constexpr (HasHeads<T, Ops>::value) {
        // The last r columns as update_row computes lanes, masked.
        V v = Ops::splat(alpha) * acc;
        if (beta != T(0)) v = Ops::fma(Ops::splat(beta), Ops::load_head(c, r), v);
        if (mi) v = v * (Ops::load_head(mi, r) > V{} ? Ops::splat(T(1)) : V{});
        Ops::store_head(c, v, r);
    } else {
        alignas(64) T ct[S::W] = {};
        if (beta != T(0))
            for (size_t l = 0; l < r; ++l) ct[l] = c[l];
        update_row<T, Ops, 1>(ct, &acc, alpha, beta);
        for (size_t l = 0; l < r; ++l) c[l] = mi ? relu_masked(ct[l], mi[l]) : ct[l];
    }
}

template <class T, class Ops, int KK>
__attribute__((noinline)) void small_k_rows_k(size_t m, size_t n, T alpha, const T* a, size_t a_rs, size_t a_ks, const T* bp, size_t ldbp,
                    T beta, T* C, size_t ldc, const T* rm) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    const size_t n4 = n / (4 * S::W) * (4 * S::W);
    const size_t nv = (n - n4 + S::W - 1) / S::W;  // vectors after the last four, the last maybe part of one
    for (size_t i = 0; i < m; ++i) {
        V av[KK];
        for (int k = 0; k < KK; ++k) av[k] = Ops::splat(a[i * a_rs + size_t(k) * a_ks]);
        T* c = C + i * ldc;
        const T* mi = rm ? rm + i * ldc : nullptr;
        for (size_t j = 0; j < n4; j += 4 * S::W) {
            V acc[4] = {};
            for (int k = 0; k < KK; ++k)
                for (int v = 0; v < 4; ++v) acc[v] = Ops::fma(av[k], S::load(bp + k * ldbp + j + v * S::W), acc[v]);
            update_row<T, Ops, 4>(c + j, acc, alpha, beta, nullptr, mi ? mi + j : nullptr);
        }
        // The rest, up to three whole vectors and a part of one, in one
        // pass of independent chains (bp's padding makes every load whole).
        if (nv == 0) continue;
        V acc[4] = {};
        for (int k = 0; k < KK; ++k)
            for (size_t v = 0; v < 4; ++v)
                if (v < nv) acc[v] = Ops::fma(av[k], S::load(bp + k * ldbp + n4 + v * S::W), acc[v]);
        for (size_t v = 0; v < nv; ++v) {
            const size_t j = n4 + v * S::W, r = n - j < S::W ? n - j : S::W;
            small_k_store<T, Ops>(c + j, acc[v], r, alpha, beta, mi ? mi + j : nullptr);
        }
    }
}

template <class T, class Ops>
void small_k_rows(size_t m, size_t n, size_t K, T alpha, const T* a, size_t a_rs, size_t a_ks, const T* bp,
                  size_t ldbp, T beta, T* C, size_t ldc, const T* rm) {
    static_assert(kSmallN == 3 && kSmallK == 6, "one case a column count and a K");
    // K (2 to kSmallK: K = 1 is gemm_rank1's) as a constant of the kernels,
    // each out of line: inlined into this dispatch, their loops ran up to
    // 1.3x slower (BENCHMARKS.md, "Measurements behind the code":
    // small_k_narrow).
    const auto run = [&](auto kk) {
        constexpr int KK = decltype(kk)::value;
        if (n == 1) small_k_narrow<T, Ops, 1, KK>(m, alpha, a, a_rs, a_ks, bp, ldbp, beta, C, ldc, rm);
        else if (n == 2) small_k_narrow<T, Ops, 2, KK>(m, alpha, a, a_rs, a_ks, bp, ldbp, beta, C, ldc, rm);
        else if (n == 3) small_k_narrow<T, Ops, 3, KK>(m, alpha, a, a_rs, a_ks, bp, ldbp, beta, C, ldc, rm);
        else small_k_rows_k<T, Ops, KK>(m, n, alpha, a, a_rs, a_ks, bp, ldbp, beta, C, ldc, rm);
    };
    switch (K) {
        case 2: run(std::integral_constant<int, 2>{}); break;
        case 3: run(std::integral_constant<int, 3>{}); break;
        case 4: run(std::integral_constant<int, 4>{}); break;
        case 5: run(std::integral_constant<int, 5>{}); break;
        default: run(std::integral_constant<int, 6>{});
    }
}

// The rank-1 update and the next row's product in one sweep (contract in
// gemm_kernels.hpp): row k of W is updated as rank1_rows does it (vector
// lanes, then the scalar tail) and, still in registers, added into y as
// small_nn_row adds it (one FMA chain per column over k from zero, vector
// lanes and scalar tail rounding alike). y stays in L1; W is read and written
// once instead of being read a second time by the next forward pass. (Four
// rows of W per pass over y, as small_nn_row does, measured no faster: the
// loop is bound by W's load and store.)
template <class T, class Ops>
void rank1_gemv_rows(size_t K, size_t n, T alpha, const T* u, const T* v, T* W, size_t ldw, const T* x,
                     T* y) {
    using S = Simd<T, Ops>;
    const size_t nvec = n / S::W * S::W;
    const auto valpha = Ops::splat(alpha), vone = Ops::splat(T(1));
    for (size_t j = 0; j < n; ++j) y[j] = T(0);
    for (size_t k = 0; k < K; ++k) {
        T* w = W + k * ldw;
        const auto va = Ops::splat(u[k]);
        const auto vx = Ops::splat(x[k]);
        size_t j = 0;
        for (; j < nvec; j += S::W) {
            const auto wj = Ops::fma(vone, S::load(w + j), valpha * (va * S::load(v + j)));
            S::store(w + j, wj);
            S::store(y + j, Ops::fma(vx, wj, S::load(y + j)));
        }
        for (; j < n; ++j) {
            const T r = alpha * (u[k] * v[j]);
            w[j] = S::fma1(T(1), w[j], r);
            y[j] = S::fma1(x[k], w[j], y[j]);
        }
    }
}

// The one-row product through W^T and the step in one sweep (contract in
// gemm_kernels.hpp): each vector of row i of W is loaded once, added into
// the row's dot with v as small_nt_row adds it, and, still in a register,
// stepped by one FMA, w + u_i (alpha v_j), and stored. The lanes are summed
// as small_nt_row sums them (lane_sums and tail_dots, or dot_finish one row
// at a time), the tail columns dotted with their old values.
template <class T, class Ops>
void dot_rank1_rows(size_t m, size_t n, T alpha, const T* u, const T* v, T* W, size_t ldw, T* y) {
    using S = Simd<T, Ops>;
    using V = typename Ops::V;
    const size_t nv = n / S::W * S::W;
    const V valpha = Ops::splat(alpha);
    size_t i = 0;
#ifdef DNNFAST_VECTOR_LANE_SUMS
    // W rows at a time, each vector of v loaded once for them.
    constexpr size_t R = S::W;
    const V svt = nv < n ? valpha * Ops::load_head(v + nv, n - nv) : V{};  // alpha v of the tail columns
    for (; i + R <= m; i += R) {
        V acc[R];
        for (size_t r = 0; r < R; ++r) acc[r] = V{};
        for (size_t j = 0; j < nv; j += S::W) {
            const V vj = S::load(v + j), avj = valpha * vj;
            T* w = W + i * ldw + j;
            for (size_t r = 0; r < R; ++r, w += ldw) {
                const V wj = S::load(w);
                acc[r] = Ops::fma(vj, wj, acc[r]);
                S::store(w, Ops::fma(Ops::splat(u[i + r]), avj, wj));
            }
        }
        V s = lane_sums<T, Ops>(acc);
        if (nv < n) {
            // The tail columns: stepped from the old values kept in t, which
            // tail_dots then adds. All R loads before the first store: a
            // masked store spans a whole vector of addresses, which covers
            // the next row's tail, and a load behind it waits for it
            // (BENCHMARKS.md, "Measurements behind the code": dot_rank1_rows).
            V t[R];
            for (size_t r = 0; r < R; ++r) t[r] = Ops::load_head(W + (i + r) * ldw + nv, n - nv);
            for (size_t r = 0; r < R; ++r)
                Ops::store_head(W + (i + r) * ldw + nv, Ops::fma(Ops::splat(u[i + r]), svt, t[r]), n - nv);
            s = tail_dots<T, Ops>(s, t, n - nv, v + nv);
        }
        S::store(y + i, s);
    }
#endif
    for (; i < m; ++i) {
        T* w = W + i * ldw;
        const V ui = Ops::splat(u[i]);
        V acc = V{};
        for (size_t j = 0; j < nv; j += S::W) {
            const V vj = S::load(v + j), wj = S::load(w + j);
            acc = Ops::fma(vj, wj, acc);
            S::store(w + j, Ops::fma(ui, valpha * vj, wj));
        }
        y[i] = dot_finish<T, Ops>(acc, nv, n, v, w);
        for (size_t j = nv; j < n; ++j) w[j] = S::fma1(u[i], alpha * v[j], w[j]);
    }
}

// constexpr: a table is constant-initialised data, so no code of the
// including file runs when the module is loaded.
template <class T, class Ops, int MR, int NV>
constexpr KernelsFor<T> make_kernels(size_t mc, size_t kc, size_t nc) {
    constexpr size_t W = Simd<T, Ops>::W;
    KernelsFor<T> k{};
    k.mr = MR;
    k.nr = NV * W;
    k.lanes = W;
    k.half_edge = NV == 2 && HalfOps<Ops>::exists;
    k.mc = mc;
    k.kc = kc;
    k.nc = nc;
    k.small_nb = 4 * W;  // the widest column block small_nn uses
    k.micro = &micro_kernel<T, Ops, MR, NV>;
    k.micro_a = &micro_kernel_a<T, Ops, MR, NV>;
    k.micro_b = &micro_kernel_b<T, Ops, MR, NV>;
    k.micro_ab = &micro_kernel_ab<T, Ops, MR, NV>;
    k.small_nn = &small_nn<T, Ops>;
    k.small_nt = &small_nt<T, Ops>;
    k.rank1 = &rank1_rows<T, Ops>;
    k.small_k = &small_k_rows<T, Ops>;
    k.rank1_gemv = &rank1_gemv_rows<T, Ops>;
    k.dot_rank1 = &dot_rank1_rows<T, Ops>;
    k.transpose = &transpose_generic;  // a table may set its own
    k.fused_relu = kFusedStores;
    k.fma_loop = &fma_loop<T, Ops>;
    k.fma_flops_per_iter = 12 * 2 * W;
    return k;
}

}  // namespace
}  // namespace DNNFAST_KERNEL_NS
}  // namespace dnnfast
