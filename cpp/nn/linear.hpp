// The linear layer Z = A W + b, forward and backward side by side.
//
//   A  is n x m_in      W is m_in x m_out      b is 1 x m_out
//   Z, dZ are n x m_out                        dA is n x m_in
#pragma once
#include <cstddef>

#include "gemm/gemm.hpp"
#include "gemm/packed_b.hpp"
#include "nn/activations.hpp"

namespace dnnfast {

// Z = A W + b.
template <class T>
void linear_forward(T* Z, const T* A, const T* W, const T* b, size_t n, size_t m_in, size_t m_out);

// dW = A^T dZ, db = 1^T dZ (column sums), dA = dZ W^T (skipped when dA is null).
template <class T>
void linear_backward(T* dW, T* db, T* dA, const T* A, const T* W, const T* dZ, size_t n, size_t m_in,
                     size_t m_out);

// Z = A_in W + b and A_out = sigma(Z) in one pass: bias and an element-wise
// activation are applied by the GEMM epilogue on each finished block of Z;
// softmax, which needs whole rows, runs after the GEMM. A_out may equal Z
// (identity, or when Z need not be kept). Row i of A_in is at A_in + i * lda
// (lda 0: m_in).
template <class T>
void dense_forward(T* Z, T* A_out, const T* A_in, const T* W, const T* b, size_t n, size_t m_in,
                   size_t m_out, Act act, const T* alpha, size_t alpha_stride, size_t lda = 0);

// The same with W kept packed (the first layer during SGD training): the
// product skips packing W and gives the same bits when
// packed_b_matches_gemm(n, m_in, m_out).
template <class T>
void dense_forward(T* Z, T* A_out, const T* A_in, const PackedB<T>& W, const T* b, size_t n, Act act,
                   const T* alpha, size_t alpha_stride);

// dense_forward of one row x (n = 1) right after the step W := W + step u v^T
// (u: m_in, v: m_out), both in one sweep over W (gemm_rank1_gemv): the
// stochastic gradient step of the previous row fused with this row's forward
// pass. Bit-identical to the step followed by dense_forward.
template <class T>
void dense_forward_row_after_step(T* Z, T* A_out, const T* x, T* W, const T* b, size_t m_in, size_t m_out,
                                  Act act, const T* alpha, size_t alpha_stride, T step, const T* u, const T* v);

// dA_prev = dZ W^T, then dZ_prev = dA_prev (.) sigma'(Z_prev) applied by the
// GEMM epilogue in the same buffer (element-wise activations); softmax runs the
// JVP after. D (n x m_in) receives dZ_prev.
template <class T>
void dense_backward_input(T* D, const T* dZ, const T* W, const T* Z_prev, const T* A_prev, size_t n,
                          size_t m_in, size_t m_out, Act act_prev, const T* alpha, size_t alpha_stride);

// The first layer's [dW; db] = X^T dZ_prev from the layer above's dZ:
// dense_backward_input (dZ_prev = (dZ W^T) (.) sigma'(Z_prev)) and then the
// weight-gradient product, in one pass that never stores dZ_prev whole
// (gemm_chain): G (x_ld x m_in) gets gemm(T, N, x_ld, m_in, n, 1, X, x_ld,
// dZ_prev, m_in, 0, G, m_in)'s bits. X is [X_b | 1], x_ld wide. D (n x
// m_in) is scratch, written only where the shapes take the two calls. Not
// for act_prev softmax or prelu.
template <class T>
void dense_backward_first_layer(T* G, const T* X, size_t x_ld, const T* dZ, const T* W, const T* Z_prev,
                                const T* A_prev, size_t n, size_t m_in, size_t m_out, Act act_prev, const T* alpha,
                                size_t alpha_stride, T* D);

// dense_backward_input of one row (n = 1), then W's stochastic step
// W := W + A_prev (step dZ)^T (A_prev: the layer's input row), both in one
// sweep over W (gemm_dot_rank1: D has dense_backward_input's bits, the step
// one rounding). Not for act_prev softmax or prelu.
template <class T>
void dense_backward_input_row_then_step(T* D, const T* dZ, T* W, const T* Z_prev, const T* A_prev, size_t m_in,
                                        size_t m_out, Act act_prev, const T* alpha, size_t alpha_stride, T step);

// out[j] = sum_i X[i, j], rows summed in order whatever the thread count.
template <class T>
void column_sums(const T* X, T* out, size_t m, size_t n);

}  // namespace dnnfast
