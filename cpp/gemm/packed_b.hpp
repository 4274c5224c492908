// A right-hand operand kept packed between products.
//
// The blocked GEMM packs op(B) again on every call (gemm_blocked.cpp). A
// training step multiplies the first layer's W (A W) and then updates it
// (W := W - lr A^T dZ), every step: with W held here in the packed layout,
// the product reads it as it lies and the update writes it back in that
// layout, so W is never packed during an epoch (BENCHMARKS.md, "Measurements
// behind the code": PackedB).
#pragma once
#include <cstddef>

#include "gemm/gemm.hpp"
#include "gemm/gemm_pack.hpp"

namespace dnnfast {

template <class T>
struct KernelsFor;

// Depth of the K slices of the blocked path: equal slices of at most KC,
// rounded up to a multiple of 8 (K = 784 with KC = 512 is 2 x 392, not
// 512 + 272: a short last slice would pay a full pass over C for little
// work). Depends on K and KC only, never on the thread count.
size_t k_slice_depth(size_t K, size_t KC);

// A K x N matrix in the layout the blocked path packs op(B) into: K cut into
// slices of k_slice_depth(K, KC); each slice's columns in NR-wide panels,
// stored k-major (the NR values of one k adjacent), the last panel padded
// with zeros. The slice starting at row k0 begins at data() + k0 * npad(),
// and its panel of columns [j, j + NR) j * kc elements further (kc: the
// slice's depth). Tied to the kernel table it was packed for.
template <class T>
class PackedB {
public:
    // Allocates for K x N under the active kernels, so that pack() of that
    // shape allocates nothing (for training loops).
    void reserve(size_t K, size_t N);
    // B (K x N, row stride ldb) in, under the active kernels.
    void pack(const T* B, size_t ldb, size_t K, size_t N);
    // The matrix back out to B (row stride ldb).
    void unpack(T* B, size_t ldb) const;

    size_t rows() const { return K_; }
    size_t cols() const { return N_; }
    size_t npad() const { return npad_; }  // N rounded up to whole panels
    size_t depth() const { return ks_; }   // k_slice_depth(K, KC)
    const KernelsFor<T>& kernels() const { return *kr_; }
    const T* data() const { return buf_.data(); }
    T* data() { return buf_.data(); }

private:
    void layout(size_t K, size_t N);
    const KernelsFor<T>* kr_ = nullptr;
    size_t K_ = 0, N_ = 0, npad_ = 0, ks_ = 0;
    PackBuffer<T> buf_;
};

// Whether the products of a training step with a K x N weight matrix and
// batch M -- A W (M x K times K x N) and the update W := alpha A^T dZ + W --
// are ones gemm() runs on its blocked path, unswapped: then gemm_packed_b and
// gemm_into_packed compute them with exactly gemm()'s arithmetic (same bits),
// and the caller may keep W packed. Small batches (M <= kSmallM), K == 1 and
// thin W (N < 4 NR, whose update gemm() computes transposed) keep plain W.
template <class T>
bool packed_b_matches_gemm(size_t M, size_t K, size_t N);

// Whether gemm() computing an (M + 1) x N C with this K sums each element
// in one FMA chain from k = 0 in order (K within one slice, and not the few
// columns of gemm_small_n, whose one-row products sum K in blocks), and the
// row M fits in the last row tile of M rows (M not a multiple of the
// micro-tile's rows). Network::bias_by_product.
template <class T>
bool gemm_one_chain_with_spare_row(size_t M, size_t N, size_t K);

// C := alpha op(A) B + beta C (+ epilogue), B packed: gemm() with op(B) = B,
// without packing it. Same bits as gemm() on the unpacked B.
template <class T>
void gemm_packed_b(Trans ta, size_t M, T alpha, const T* A, size_t lda, const PackedB<T>& B, T beta, T* C,
                   size_t ldc, const Epilogue<T>* ep = nullptr);

// W := alpha op(A) op(B) + beta W for the packed W (op(A): W.rows() x K,
// op(B): K x W.cols()), written in place in the packed layout. Same bits as
// gemm() on the unpacked W.
template <class T>
void gemm_into_packed(Trans ta, Trans tb, size_t K, T alpha, const T* A, size_t lda, const T* B, size_t ldb,
                      T beta, PackedB<T>& W);

}  // namespace dnnfast
