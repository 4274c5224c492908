// Vector transcendental kernels for the activations, the softmax and the cce
// loss: one table per instruction set (vmath_generic.cpp, vmath_avx2.cpp,
// vmath_avx512.cpp), all instantiated from one template (vmath_impl.hpp), and
// chosen at run time by following the GEMM's kernel choice (active_kernels(),
// which only ever selects a table the CPU supports; DNNFAST_GEMM_KERNEL and
// gemm_set_kernel therefore force these too).
//
// Every table runs the same polynomials in the same operation order, with
// only correctly rounded IEEE operations (+ - * /, compares, bit moves, and
// the fused multiply-adds the code names: Ops::fma). The avx2 and avx512
// tables fuse those, so they give the same bits as each other; the portable
// one multiplies and then adds, and gives its own (nothing else is fused:
// the files are built with -ffp-contract=off). See vmath_impl.hpp for the
// algorithms and the error bounds.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dnnfast {

template <class T>
struct VMathFns {
    // On an m x n block (row strides given): Z[i, j] += bias[j] when bias is
    // non-null, then A[i, j] = f(Z[i, j]); A may alias Z. alpha is elu's
    // parameter (ignored by the others). A null entry would mean "no vector
    // kernel": the caller then uses the scalar struct (activations.hpp).
    // exp: e^min(z, 88) in float32, e^min(z, 709) in float64 (ExpAct).
    using BlockFwd = void (*)(T* z, size_t ldz, T* a, size_t lda, size_t m, size_t n, const T* bias, T alpha);
    BlockFwd elu, sigmoid, tanh, arctan, softplus, exp;
    // dz[j] = da[j] * sigmoid(z[j]) (softplus'); dz may alias da.
    void (*softplus_backward)(const T* z, const T* da, T* dz, size_t n);
    // a[j] = exp(z[j] - shift) (softmax); a may alias z.
    void (*exp_shifted)(const T* z, T shift, T* a, size_t n);
    // y[j] = log(x[j]) for positive normal x (the clipped cce and bce
    // probabilities, bce's 1 - q, poisson's y / q);
    // y may alias x. NaN gives NaN.
    void (*log)(const T* x, T* y, size_t n);

    // The element-wise work around the GEMM, in the instruction set's vectors
    // (the portable build of these loops is SSE2 on x86-64, and a relu
    // layer's forward and backward passes, the bias gradient and the Adam
    // step are a large part of a small model's training step: BENCHMARKS.md,
    // "Measurements behind the code": VMathFns). Same maths, operation for
    // operation, as the scalar definitions (activations.hpp, optimizers.cpp),
    // so every table gives the same bits. (The avx512 table's float64 Adam
    // divides by Newton steps that return the IEEE quotient: ops_avx512.hpp.)
    //
    // The same block form: relu: z > 0 ? z : 0; leaky: z > 0 ? z : alpha z;
    // identity: z.
    BlockFwd identity_block, relu_block, leaky_block;
    // dZ[i, j] = dA[i, j] * f'(Z[i, j]); dZ may alias dA. relu': z > 0 ? 1 :
    // 0; leaky': z > 0 ? 1 : alpha.
    using BlockBwd = void (*)(const T* z, size_t ldz, const T* da, size_t ldda, T* dz, size_t lddz, size_t m,
                              size_t n, T alpha);
    // arctan': 1 / (1 + z^2), for |z| > 1 as r^2 / (1 + r^2), r = 1 / z
    // (ArctanAct::df); alpha ignored.
    BlockBwd relu_backward_block, leaky_backward_block, atan_backward_block;
    // The same from the saved output A: tanh' = 1 - a a, sigmoid' = a (1 - a).
    using BlockBwdA = void (*)(const T* a, size_t lda, const T* da, size_t ldda, T* dz, size_t lddz, size_t m,
                               size_t n);
    BlockBwdA tanh_backward_block, sigmoid_backward_block;
    // out[j] = sum over i of X[i, j], rows added in order (the bias gradient).
    void (*column_sums)(const T* x, size_t ldx, size_t m, size_t n, T* out);
    // The optimizers' updates of n parameters p from gradients g, with their
    // state s1 (velocity / first moment) and s2 (second moment).
    void (*sgd)(T* p, const T* g, size_t n, T lr);
    void (*momentum)(T* p, const T* g, T* s1, size_t n, T lr, T mu, bool nesterov);
    void (*adam)(T* p, const T* g, T* s1, T* s2, size_t n, T lr_t, T b1, T b2, T eps);
    // The L2 term of n weights w: g[k] += c w[k] (c w rounded, then the
    // add); returns the sum of the squares double(w[k])^2, added into 32
    // partial sums (k % 32, in the order of k) joined pairwise in a fixed
    // tree. A fixed number of partial sums, so the bits are the same on
    // every table and thread count; 32 of them, so the sums' adds do not
    // wait on each other (with four, their chains bounded the pass at a
    // cycle an element).
    double (*l2_grad)(const T* w, T* g, size_t n, T c);
    // Plain SGD's L2 step made in place (Network::backward_batch): the same
    // sum of squares of w, and w[k] += d w[k] (d w rounded, then the add;
    // d = -lr c), each block squared before it is written.
    double (*l2_decay)(T* w, size_t n, T d);
    // True when none of x[0..n) is NaN or infinite: fit's and predict's
    // check of X, in the table's vectors rather than the portable build's
    // (measured in BENCHMARKS.md, `51f997c`).
    bool (*all_finite)(const T* x, size_t n);
    // A sparse X's first-layer product over its stored values (Network's
    // CSR input; CsrRows in network.hpp): for i < n, the row r = rows[i]
    // (r0 + i where rows is null), z[i m + c] = the sum over the row's stored
    // values v, in column j, in their order, of v W[j m + c], each added by
    // the table's fma (as the GEMM's chains) from 0. W is n_cols x m.
    void (*csr_times)(const int64_t* indptr, const int64_t* indices, const T* data, const int64_t* rows, size_t r0,
                      size_t n, const T* W, size_t m, T* z);
    // Its transpose, into G (n_cols x m), on the columns [c0, c1) only (a
    // thread's share): for the rows i < n in order and their stored values v
    // in column j in order, G[j m + c] = fma(s v, dz[i m + c], G[j m + c]),
    // s v rounded first (s = 1: the weight gradient X^T dZ; s = -lr: plain
    // SGD's step made in place).
    void (*csr_scatter)(const int64_t* indptr, const int64_t* indices, const T* data, const int64_t* rows, size_t r0,
                        size_t n, const T* dz, size_t m, size_t c0, size_t c1, T s, T* G);
};

struct VMathSet {
    const char* name;
    VMathFns<float> f32;
    VMathFns<double> f64;
    template <class T>
    const VMathFns<T>& get() const;
};
template <>
inline const VMathFns<float>& VMathSet::get<float>() const { return f32; }
template <>
inline const VMathFns<double>& VMathSet::get<double>() const { return f64; }

// The table matching the active GEMM kernels (generic and generic512 -> the
// portable one).
const VMathSet& active_vmath();

}  // namespace dnnfast
