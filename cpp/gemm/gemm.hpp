// GEMM front end: C := alpha * op(A) * op(B) + beta * C, row-major.
//
// op(A) is M x K, op(B) is K x N, C is M x N. With Trans::T the operand is
// read transposed in place (A stored K x M, or B stored N x K): the three
// products of backprop -- A W, A^T dZ, dZ W^T -- never materialise a
// transpose. Leading dimensions are in elements (row strides).
//
// An optional epilogue runs on each finished block of C (after the whole K
// sum), while the block is still in cache: bias + activation on the forward
// pass, the activation derivative on the backward pass.
#pragma once
#include <cstddef>

namespace dnnfast {

enum class Trans { N, T };

// Products of at most this many rows of op(A) take the small-M path
// (gemm_small.cpp), whose sums may round differently from the blocked
// path's: a caller that splits rows into pieces keeps every piece larger
// (when it has more rows than this in all) to give the bits of one call.
constexpr size_t kGemmSmallRows = 4;

// Called on the block C[i0:i0+m, j0:j0+n] (pointer c at its top-left, row
// stride ldc) once it holds its final op(A) op(B) value. Must only touch that
// block; may be called concurrently on disjoint blocks.
//
// Two epilogues of a relu layer may also be given as data, saying that fn is
// exactly one of them:
//   relu_bias: C[i, j] := relu(C[i, j] + relu_bias[j]), relu(v) = v > 0 ? v : 0
//     (the forward pass of a relu layer that keeps no Z);
//   relu_mask: C[i, j] := C[i, j] * (relu_mask[i * ldc + j] > 0 ? 1 : 0), the
//     mask laid out as C (the backward pass into a relu layer: dZ = dA relu'(z)
//     read from its A).
// The kernels may then apply it to the values in their registers as they
// store them, and fn is not called on the blocks so written. Same operations,
// same bits; C is stored once instead of stored, read back and stored again.
template <class T>
struct Epilogue {
    void (*fn)(const void* ctx, T* c, size_t ldc, size_t i0, size_t j0, size_t m, size_t n) = nullptr;
    const void* ctx = nullptr;
    const T* relu_bias = nullptr;
    const T* relu_mask = nullptr;
};

// The fast GEMM (packed, cache-blocked, vectorised, multi-threaded).
// Deterministic: the order of the K sum of each C element never depends on
// the thread count, so results are bit-identical for any thread count. The
// sum is split between threads only for one row through a large B (gemm_small.cpp:
// blocks of B's rows fixed by the shape, added in block order on one thread).
template <class T>
void gemm(Trans ta, Trans tb, size_t M, size_t N, size_t K, T alpha,
          const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C, size_t ldc,
          const Epilogue<T>* ep = nullptr);

// Stochastic gradient descent's weight step fused with the next row's
// product, in one sweep over W (K x N, row stride ldw):
//   W := W + alpha u v^T,   then   y := x W   (x: 1 x K, y: 1 x N)
// with the epilogue run on y (as a 1 x N block). Bit-identical to the two
// calls it replaces -- gemm(T, N, K, N, 1, alpha, u, K, v, N, 1, W, ldw) and
// gemm(N, N, 1, N, K, 1, x, K, W, ldw, 0, y, N, ep) -- but W is read and
// written once instead of also being read again: at batch size 1 the first
// layer's W is most of the memory traffic of a step.
template <class T>
void gemm_rank1_gemv(size_t K, size_t N, T alpha, const T* u, const T* v, T* W, size_t ldw, const T* x,
                     T* y, const Epilogue<T>* ep = nullptr);

// Stochastic gradient descent's dA through a layer and that layer's weight
// step, in one sweep over W (M x N, row stride ldw):
//   y := v W^T   (v: 1 x N, y: 1 x M, the epilogue run on y),   then
//   W[i, j] := W[i, j] + u[i] (alpha v[j])   (alpha v[j] rounded, then one FMA)
// y has the bits of gemm(N, T, 1, M, N, 1, v, N, W, ldw, 0, y, M, ep). The
// step rounds once where gemm(T, N, M, N, 1, alpha, u, M, v, N, 1, W, ldw)
// rounds alpha (u v) + W three times; W is read once instead of twice. (N <
// 2 or alpha = 0: those two calls.)
template <class T>
void gemm_dot_rank1(size_t M, size_t N, T alpha, const T* u, const T* v, T* W, size_t ldw, T* y,
                    const Epilogue<T>* ep = nullptr);

// Two products through an intermediate that is never stored whole: the
// weight gradient of a network's first layer from the dZ of the layer above,
//   D := A B^T   (n x N, K deep: A n x K, row stride lda; B stored N x K,
//                 row stride ldb), then ep run on D's blocks as gemm() runs
//                 it (ep->fn given; D laid out with row stride N),
//   C := X^T D   (M x N: X stored n x M, row stride ldx; C row stride ldc).
// The bits are those of gemm(N, T, n, N, K, 1, A, lda, B, ldb, 0, D, N, ep)
// followed by gemm(T, N, M, N, n, 1, X, ldx, D, N, 0, C, ldc), which is
// what runs where the shapes send those two calls down other paths, or X
// is too wide for the strips to pay (D: n x N scratch, used only then).
// Otherwise D is made NR columns at a time into a buffer that stays in L1,
// and each strip's columns of C are formed from it at once: D is not
// written to L2 and read back, and the first product's tiles store into L1.
template <class T>
void gemm_chain(size_t n, size_t N, size_t K, const T* A, size_t lda, const T* B, size_t ldb,
                const Epilogue<T>* ep, size_t M, const T* X, size_t ldx, T* C, size_t ldc, T* D);
// The simple GEMM: the algorithmic reference the fast one is tested against,
// same signature and contract (epilogue included), one thread.
template <class T>
void gemm_reference(Trans ta, Trans tb, size_t M, size_t N, size_t K, T alpha,
                    const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C, size_t ldc,
                    const Epilogue<T>* ep = nullptr);

}  // namespace dnnfast
