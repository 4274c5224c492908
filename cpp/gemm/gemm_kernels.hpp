// The kernel table: what one instruction set provides to the GEMM, and the
// run-time choice of which table is used. Everything here is plain data and
// function pointers, so that only the *_avx2.cpp / *_avx512.cpp files hold
// code built with those instruction sets. (Those files include this header:
// it must keep defining no function, inline or template, that generic code
// also uses -- see the rule in cpu_features.cpp.)
#pragma once
#include <cstddef>

#include "gemm/gemm.hpp"

namespace dnnfast {

// Micro-kernel contract: C[0:m, 0:n] := alpha * Ap * Bp + beta * C, where Ap is
// an MR x kc micro-panel (column of MR per k), Bp a kc x NR micro-panel (row of
// NR per k), m <= MR and n <= NR (edge tiles included), element (i, j) of C at
// c[i * rsc + j * csc]; beta == 0 overwrites C. In a table with fused_relu,
// with C in rows (csc == 1), the stored value may then go through a relu
// layer's epilogue (Epilogue::relu_bias / relu_mask, at most one of them
// set): relu(value + relu_bias[j]) (columns 0:n of the tile), or value *
// (relu_mask[i * mask_rs + j] > 0 ? 1 : 0) (relu_mask at the tile's
// top-left, rows mask_rs apart: C's rsc where the mask is laid out as C).
// Without fused_relu both must be null.
template <class T>
using MicroKernel = void (*)(size_t kc, const T* ap, const T* bp, T alpha, T beta, T* c,
                             size_t rsc, size_t csc, size_t m, size_t n, const T* relu_bias, const T* relu_mask,
                             size_t mask_rs);
// The same with A read in place, element (i, k) of the tile at a[i * a_rs +
// k * a_ks], rows i < m only: no packing, for blocks of A used by few column
// micro-panels. Same arithmetic, same bits, as MicroKernel on the packed panel.
template <class T>
using MicroKernelA = void (*)(size_t kc, const T* a, size_t a_rs, size_t a_ks, const T* bp, T alpha,
                              T beta, T* c, size_t rsc, size_t csc, size_t m, size_t n, const T* relu_bias,
                              const T* relu_mask, size_t mask_rs);

// The same with op(B) = B read in place: row k of the NR-wide micro-panel at
// b + k * b_ks, n == NR only (a full panel). Same bits as MicroKernel.
template <class T>
using MicroKernelB = void (*)(size_t kc, const T* ap, const T* b, size_t b_ks, T alpha, T beta, T* c,
                              size_t rsc, size_t csc, size_t m, size_t n, const T* relu_bias,
                              const T* relu_mask, size_t mask_rs);

// Both read in place: A as MicroKernelA, op(B) = B as MicroKernelB (n == NR).
// For A^T B with few rows of C (dW = X^T dZ of a few dozen features): the
// MR values of one k of op(A) = A^T lie contiguous in A, as in a packed
// micro-panel, so packing them only copied them. Same bits.
template <class T>
using MicroKernelAB = void (*)(size_t kc, const T* a, size_t a_rs, size_t a_ks, const T* b, size_t b_ks,
                               T alpha, T beta, T* c, size_t rsc, size_t csc, size_t m, size_t n,
                               const T* relu_bias, const T* relu_mask, size_t mask_rs);

// Small-M kernels (M <= kSmallM rows of A, contiguous M x K with row stride K):
// C[0:M, 0:n] := alpha * A * op(B)[:, 0:n] + beta * C.
// small_nn streams B stored K x n (row stride ldb), small_nt takes dot products
// with the rows of B stored n x K (row stride ldb).
constexpr size_t kSmallM = kGemmSmallRows;
// N <= kSmallN (and M > kSmallM): the same kernels on C^T (gemm_small_n).
constexpr size_t kSmallN = 3;
template <class T>
using SmallKernel = void (*)(size_t M, size_t n, size_t K, T alpha, const T* a, const T* B,
                             size_t ldb, T beta, T* C, size_t ldc);

// Rank-1 kernel (K == 1): C[i, 0:n] := alpha * (a[i * a_stride] * b[0:n]) + beta * C[i, 0:n]
// for i < M (row stride ldc), then times (relu_mask[i * ldc + j] > 0 ? 1 : 0)
// where relu_mask is set (as the micro-kernel). At batch size 1 this is the
// weight update.
template <class T>
using Rank1Kernel = void (*)(size_t M, size_t n, T alpha, const T* a, size_t a_stride, const T* b, T beta,
                             T* C, size_t ldc, const T* relu_mask);

// Short-K kernel (2 <= K <= kSmallK, e.g. dZ W^T through a classifier's few
// outputs): C[i, 0:n] := alpha * sum_k a(i, k) bp[k, 0:n] + beta * C[i, 0:n]
// for i < m, a(i, k) at a[i * a_rs + k * a_ks], bp the K rows of op(B) with
// row stride ldbp (a whole number of vectors, zero-padded past n). Each
// element is the FMA chain over k from zero, stored as the micro-kernel
// stores it (relu_mask included), so the bits are those of the five loops.
// Up to kSmallK it beats the five loops, whose packing costs more than a
// chain of a few FMAs; from about 8 it does not (BENCHMARKS.md,
// "Measurements behind the code": kSmallK).
constexpr size_t kSmallK = 6;
// ... for rows of C of at least this many bytes: narrower ones (float32 N
// up to 15, float64 up to 7) go through the kernel's scratch tail row by
// row, where the five loops are faster, up to several times (BENCHMARKS.md,
// "Measurements behind the code": kSmallKMinRowBytes); but up to kSmallN
// columns (n <= 3) run as scalar FMA chains, the same bits, faster than
// either (small_k_narrow).
constexpr size_t kSmallKMinRowBytes = 64;
template <class T>
using SmallKKernel = void (*)(size_t m, size_t n, size_t K, T alpha, const T* a, size_t a_rs, size_t a_ks,
                              const T* bp, size_t ldbp, T beta, T* C, size_t ldc, const T* relu_mask);

// Rank-1 update then a row through the updated matrix, in one sweep over W
// (K x n, row stride ldw): W := W + alpha * u v^T (as Rank1Kernel with beta =
// 1), then y[0:n] := x W (as small_nn with one row, alpha = 1, beta = 0), each
// element through exactly the arithmetic of those two kernels.
template <class T>
using Rank1GemvKernel = void (*)(size_t K, size_t n, T alpha, const T* u, const T* v, T* W, size_t ldw,
                                 const T* x, T* y);

// A one-row product through W^T, then a rank-1 step of W, in one sweep over
// W (m x n, row stride ldw): y[0:m] := v W^T (as small_nt with one row,
// alpha = 1, beta = 0: the same bits), then W[i, j] := W[i, j] + u[i] *
// (alpha * v[j]), alpha * v[j] rounded, then one FMA (one rounding of the
// step where Rank1Kernel's formula, which must match the micro-kernel's,
// has three, and one multiply an element instead of two): a stochastic
// step's dA through a layer's W, and that W's step.
template <class T>
using DotRank1Kernel = void (*)(size_t m, size_t n, T alpha, const T* u, const T* v, T* W, size_t ldw, T* y);

// The transposing copy behind packing op(A) = A and op(B) = B^T
// (gemm_pack.cpp): dst[k * ldd + i] = src[i * lds + k] for i < rows, k < kc,
// nothing else written. The generic one (every table but avx512) is SSE2
// 4 x 4 (float) / 2 x 2 (double) register transposes on x86-64, a plain
// loop elsewhere; the avx512 table's transposes 16 x 16 / 8 x 8 blocks. It
// moves data only: every table packs the same values.
template <class T>
using TransposeFn = void (*)(const T* src, size_t lds, size_t rows, size_t kc, T* dst, size_t ldd);
void transpose_generic(const float* src, size_t lds, size_t rows, size_t kc, float* dst, size_t ldd);
void transpose_generic(const double* src, size_t lds, size_t rows, size_t kc, double* dst, size_t ldd);

template <class T>
struct KernelsFor {
    size_t mr, nr;      // register tile of the micro-kernel
    size_t lanes;       // of one vector: a column edge of at most this many runs one vector wide
    bool half_edge;     // an edge of lanes + lanes / 2 runs on one vector and a half-width one
    size_t mc, kc, nc;  // cache blocking: A block MC x KC in L2, B micro-panel KC x NR in L1, B panel KC x NC in L3
    size_t small_nb;    // column block of small_nn; thread splits of N are multiples of it
    MicroKernel<T> micro;
    MicroKernelA<T> micro_a;
    MicroKernelB<T> micro_b;
    MicroKernelAB<T> micro_ab;
    SmallKernel<T> small_nn, small_nt;
    Rank1Kernel<T> rank1;
    SmallKKernel<T> small_k;
    Rank1GemvKernel<T> rank1_gemv;
    DotRank1Kernel<T> dot_rank1;
    TransposeFn<T> transpose;
    bool fused_relu;  // the micro-kernels take relu_bias / relu_mask (the ISA-flagged tables)
    double (*fma_loop)(long iters);  // register-resident FMAs; returns a sink value
    size_t fma_flops_per_iter;       // flops one iteration of fma_loop performs
};

struct KernelSet {
    const char* name;   // as accepted by DNNFAST_GEMM_KERNEL
    const char* label;  // human-readable, with the tile shapes
    KernelsFor<float> f32;
    KernelsFor<double> f64;
    template <class T>
    const KernelsFor<T>& get() const;
};
template <>
inline const KernelsFor<float>& KernelSet::get<float>() const { return f32; }
template <>
inline const KernelsFor<double>& KernelSet::get<double>() const { return f64; }

// One table per instruction set, each constant-initialised data (no code runs
// to build it) defined in its gemm_kernels_*.cpp. generic512 runs the 512-bit
// template with baseline instructions: slow, for testing the AVX-512 tile
// shapes on machines without AVX-512. The tables built with ISA flags
// (isa_avx2::gemm_kernels, isa_avx512::gemm_kernels) are declared only where
// they are chosen, in cpu_features.cpp, after the CPU check.
namespace generic {
extern const KernelSet gemm_kernels;
extern const KernelSet gemm_kernels512;
}  // namespace generic

// The table in use (cpu_features.cpp): the best the CPU supports, or the one
// named by DNNFAST_GEMM_KERNEL when the CPU supports it. Chosen once.
const KernelSet& active_kernels();
// For tests: select by name ("auto" = the default choice). Returns the name
// of the table now active (the default when `name` is unsupported or unknown).
const char* set_active_kernels(const char* name);
// Whether this CPU can run the named table.
bool kernels_supported(const char* name);
// Whether this CPU runs a 512-bit FMA as two 256-bit halves (the Zen 4):
// there a half-width vector's FMA costs half as much (gemm_blocked.cpp's
// cost of a column edge).
bool fma512_in_halves();

}  // namespace dnnfast
