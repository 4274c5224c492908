// Activations: the registry (one table), and forward/backward kernels side by
// side. Element-wise activations are written as one struct each with
//   f(z)            -> sigma(z)
//   df(z, a, alpha) -> sigma'(z), using the saved output a where the maths
//                      allows (A(1-A) for sigmoid, 1-A^2 for tanh),
// and the block kernels below loop over them, so the GEMM epilogue and the
// standalone ops share one definition. Softmax mixes a row, so it has its own
// row kernels (max-subtracted forward, Jacobian-vector product backward).
//
// Parameters: `alpha` points at the activation's parameter; alpha_stride is 0
// for a scalar (leaky_relu, elu) and 1 for one per unit (prelu). Unused for
// the others (may be null).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "nn/vmath.hpp"

namespace dnnfast {

enum class Act : int {
    identity = 0, relu, leaky_relu, prelu, elu, sigmoid, tanh, arctan, softplus, binary_step, softmax, exp
};

struct ActivationInfo {
    const char* name;
    Act act;
    bool has_param;      // takes alpha
    double default_param;
    bool per_unit;       // alpha is one value per unit (prelu) rather than a scalar
    double cost;         // time per element relative to relu (measured, float32 forward on one thread; sets the threading threshold)
};

// The registry: the one place an activation is named. Python mirrors it by
// reading this table (dnnfast._core.activations()).
inline constexpr ActivationInfo kActivations[] = {
    {"identity", Act::identity, false, 0.0, false, 1},
    {"relu", Act::relu, false, 0.0, false, 1},
    {"leaky_relu", Act::leaky_relu, true, 0.1, false, 1},
    {"prelu", Act::prelu, true, 0.25, true, 1},
    {"elu", Act::elu, true, 1.0, false, 3},
    {"sigmoid", Act::sigmoid, false, 0.0, false, 3},
    {"tanh", Act::tanh, false, 0.0, false, 3},
    {"arctan", Act::arctan, false, 0.0, false, 2},
    {"softplus", Act::softplus, false, 0.0, false, 5},
    {"binary_step", Act::binary_step, false, 0.0, false, 1},
    {"softmax", Act::softmax, false, 0.0, false, 20},
    {"exp", Act::exp, false, 0.0, false, 20},
};
inline constexpr int kNumActivations = sizeof(kActivations) / sizeof(kActivations[0]);

inline bool is_elementwise(Act a) { return a != Act::softmax; }

// Whether sigma' can be formed from the output A alone, so that a layer
// need not keep its pre-activation Z apart from A: relu' is z > 0, which is
// a > 0 for a = (z > 0 ? z : 0), NaN and -0 included; tanh' = 1 - a a and
// sigmoid' = a (1 - a) read A only (activation_backward_block).
inline bool derivative_from_output(Act a) { return a == Act::relu || a == Act::tanh || a == Act::sigmoid; }

inline double activation_cost(Act a) { return kActivations[static_cast<int>(a)].cost; }

// Element operations (in relu-equivalents) per thread below which a second
// thread does not pay: threads_for() asks for twice this, the break-even of
// one against two threads (BENCHMARKS.md, "Measurements behind the code":
// kElementwiseMinWork).
inline constexpr double kElementwiseMinWork = 75000.0;

// ---- element-wise activations: sigma and sigma' -----------------------------

template <class T> struct IdentityAct {
    static T f(T z, T) { return z; }
    static T df(T, T, T) { return T(1); }
};
template <class T> struct ReluAct {
    static T f(T z, T) { return z <= T(0) ? T(0) : z; }  // NaN stays NaN (as np.maximum)
    static T df(T z, T, T) { return z > T(0) ? T(1) : T(0); }
};
// leaky_relu and prelu share the maths; they differ in where alpha lives.
template <class T> struct LeakyReluAct {
    static T f(T z, T alpha) { return z > T(0) ? z : alpha * z; }
    static T df(T z, T, T alpha) { return z > T(0) ? T(1) : alpha; }
};
template <class T> struct EluAct {
    // expm1 keeps alpha(e^z - 1) accurate for small |z|; for z -> -inf it
    // tends to -alpha without overflow.
    static T f(T z, T alpha) { return z >= T(0) ? z : alpha * std::expm1(z); }
    static T df(T z, T a, T alpha) { return z >= T(0) ? T(1) : a + alpha; }
};
template <class T> struct SigmoidAct {
    // Two branches so exp never sees a large positive argument.
    static T f(T z, T) {
        if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
        const T e = std::exp(z);
        return e / (T(1) + e);
    }
    static T df(T, T a, T) { return a * (T(1) - a); }
};
template <class T> struct TanhAct {
    static T f(T z, T) { return std::tanh(z); }
    static T df(T, T a, T) { return T(1) - a * a; }
};
template <class T> struct ArctanAct {
    static T f(T z, T) { return std::atan(z); }
    // 1 / (1 + z^2); for |z| > 1 as r^2 / (1 + r^2) with r = 1/z, so z^2
    // never overflows and huge |z| gives the true limit, 0.
    static T df(T z, T, T) {
        if (std::fabs(z) > T(1)) {
            const T r = T(1) / z;
            return r * r / (T(1) + r * r);
        }
        return T(1) / (T(1) + z * z);
    }
};
template <class T> struct SoftplusAct {
    // ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|): no overflow, no lost answer.
    static T f(T z, T) { return std::max(z, T(0)) + std::log1p(std::exp(-std::fabs(z))); }
    static T df(T z, T, T) { return SigmoidAct<T>::f(z, T(0)); }
};
template <class T> struct BinaryStepAct {
    static T f(T z, T) { return z >= T(0) ? T(1) : T(0); }
    // sigma' is 0 everywhere (undefined at 0, defined as 0 there).
    static T df(T, T, T) { return T(0); }
};

template <class T> struct ExpAct {
    // The output of a Poisson (log-link) model. z is clipped at 88 (float32)
    // or 709 (float64), just under ln(max), so e^z is finite for every z (a
    // larger z gives e^88 = 1.65e38 / e^709 = 8.2e307); sigma' = A, the saved
    // output, so it is the same clipped value.
    static T f(T z, T) { return std::exp(std::min(z, T(sizeof(T) == 4 ? 88 : 709))); }
    static T df(T, T a, T) { return a; }
};

// Calls fn(ActStruct{}) for an element-wise activation; returns false for softmax.
template <class T, class Fn>
inline bool visit_elementwise(Act act, Fn&& fn) {
    switch (act) {
        case Act::identity: fn(IdentityAct<T>{}); return true;
        case Act::relu: fn(ReluAct<T>{}); return true;
        case Act::leaky_relu:
        case Act::prelu: fn(LeakyReluAct<T>{}); return true;
        case Act::elu: fn(EluAct<T>{}); return true;
        case Act::sigmoid: fn(SigmoidAct<T>{}); return true;
        case Act::tanh: fn(TanhAct<T>{}); return true;
        case Act::arctan: fn(ArctanAct<T>{}); return true;
        case Act::softplus: fn(SoftplusAct<T>{}); return true;
        case Act::binary_step: fn(BinaryStepAct<T>{}); return true;
        case Act::exp: fn(ExpAct<T>{}); return true;
        case Act::softmax: return false;
    }
    return false;
}

// The vector block kernel (vmath.hpp, the table of the active instruction
// set: bias, then sigma) for an activation with one alpha, or null: the
// scalar structs above then run. Those structs remain the definition of the
// maths the vector kernels follow.
template <class T>
inline typename VMathFns<T>::BlockFwd vector_block_forward(Act act) {
    const VMathFns<T>& v = active_vmath().template get<T>();
    switch (act) {
        case Act::identity: return v.identity_block;
        case Act::relu: return v.relu_block;
        case Act::leaky_relu:
        case Act::prelu: return v.leaky_block;
        case Act::elu: return v.elu;
        case Act::sigmoid: return v.sigmoid;
        case Act::tanh: return v.tanh;
        case Act::arctan: return v.arctan;
        case Act::softplus: return v.softplus;
        case Act::exp: return v.exp;
        default: return nullptr;
    }
}

// ---- block kernels (m rows x n cols, row strides given; j0 = first unit) -----

// A := sigma(Z) on a block; A may alias Z. When bias is non-null it is added to
// Z first (Z := Z + b[j0 + j]), which is how the GEMM epilogue applies
// Z = A W + b and sigma in one pass over the freshly computed block.
template <class T>
void activation_forward_block(Act act, T* Z, size_t ldz, T* A, size_t lda, size_t m, size_t n,
                              size_t j0, const T* bias, const T* alpha, size_t alpha_stride) {
    if (alpha_stride == 0) {
        if (const auto fn = vector_block_forward<T>(act)) {
            fn(Z, ldz, A, lda, m, n, bias ? bias + j0 : nullptr, alpha ? alpha[0] : T(0));
            return;
        }
    }
    visit_elementwise<T>(act, [&](auto op) {
        using Op = decltype(op);
        for (size_t i = 0; i < m; ++i) {
            T* z = Z + i * ldz;
            T* a = A + i * lda;
            if (bias) for (size_t j = 0; j < n; ++j) z[j] += bias[j0 + j];
            if (alpha_stride == 0) {
                const T al = alpha ? alpha[0] : T(0);
                for (size_t j = 0; j < n; ++j) a[j] = Op::f(z[j], al);
            } else {
                for (size_t j = 0; j < n; ++j) a[j] = Op::f(z[j], alpha[j0 + j]);
            }
        }
    });
}

// dZ := dA (.) sigma'(Z) on a block (element-wise activations only); dZ may
// alias dA.
template <class T>
void activation_backward_block(Act act, const T* Z, size_t ldz, const T* A, size_t lda,
                               const T* dA, size_t ldda, T* dZ, size_t lddz, size_t m, size_t n,
                               size_t j0, const T* alpha, size_t alpha_stride) {
    if (m > 1 && alpha_stride == 0 && ldz == n && lda == n && ldda == n && lddz == n) {
        // Contiguous rows, nothing per column: one long row, so narrow
        // layers' rows (one to a few units) are not each a vector tail.
        // Every element's arithmetic is the same wherever it sits.
        n *= m;
        m = 1;
    }
    if (act == Act::softplus) {  // the one sigma' that needs a transcendental
        const auto fn = active_vmath().template get<T>().softplus_backward;
        for (size_t i = 0; i < m; ++i) fn(Z + i * ldz, dA + i * ldda, dZ + i * lddz, n);
        return;
    }
    if (alpha_stride == 0 && (act == Act::relu || act == Act::leaky_relu || act == Act::prelu)) {
        const VMathFns<T>& v = active_vmath().template get<T>();
        (act == Act::relu ? v.relu_backward_block : v.leaky_backward_block)(Z, ldz, dA, ldda, dZ, lddz, m, n,
                                                                            alpha ? alpha[0] : T(0));
        return;
    }
    if (act == Act::arctan) {
        active_vmath().template get<T>().atan_backward_block(Z, ldz, dA, ldda, dZ, lddz, m, n, T(0));
        return;
    }
    if (act == Act::tanh || act == Act::sigmoid) {
        const VMathFns<T>& v = active_vmath().template get<T>();
        (act == Act::tanh ? v.tanh_backward_block : v.sigmoid_backward_block)(A, lda, dA, ldda, dZ, lddz, m, n);
        return;
    }
    visit_elementwise<T>(act, [&](auto op) {
        using Op = decltype(op);
        for (size_t i = 0; i < m; ++i) {
            const T* z = Z + i * ldz;
            const T* a = A + i * lda;
            const T* da = dA + i * ldda;
            T* dz = dZ + i * lddz;
            if (alpha_stride == 0) {
                const T al = alpha ? alpha[0] : T(0);
                for (size_t j = 0; j < n; ++j) dz[j] = da[j] * Op::df(z[j], a[j], al);
            } else {
                for (size_t j = 0; j < n; ++j) dz[j] = da[j] * Op::df(z[j], a[j], alpha[j0 + j]);
            }
        }
    });
}

// ---- softmax: row kernels -----------------------------------------------------

// A[i,:] = exp(Z[i,:] - max) / sum over m contiguous rows of n: max-
// subtracted, so exp never overflows for any finite z (z - max may round to
// -inf when the row spans more than the dtype's range; its exp is 0, the
// right answer), and the largest entry's exp is exactly 1 (sum >= 1, no
// 0/0). A may alias Z.
//
// z - max goes into A for every row, then one call of the vector exp over
// the whole block, then the rows are normalised: a classifier's few
// classes fill whole vectors (a row narrower than a vector alone costs a
// padded call per row), and the normalising reads A long after the exp
// stored it. Through a 256-entry buffer instead, the copy out read each
// chunk right after the exp's stores, with loads straddling two of them,
// which the store queue cannot forward (BENCHMARKS.md, "Measurements behind
// the code": softmax_forward_rows). z - max is the same correctly rounded
// subtraction either way, and the vector exp computes each lane alike
// wherever it sits, so the bits do not depend on the row length or the
// block.
//
// Each row's max and sum are chains of dependent operations, taken in column
// order (the sum's order is its bits, the same on every kernel table); rows
// go through them kSoftmaxRows at a time, so the chains (and the divisions)
// of different rows overlap instead of each waiting out the one before
// (BENCHMARKS.md, "Measurements behind the code": kSoftmaxRows).
constexpr size_t kSoftmaxRows = 4;

// The row sum's error grows with the row's width (one rounding an entry):
// in float32 in order it was 28 ulp of an entry at 1000 classes, 57 at 3000
// against the exp's 4, and rows of 10000 summed to 1 within 2e-5. So a
// float32 row is summed, inverted and scaled in double: the entries are
// then within the exp's error plus one rounding at any width. A float64 row
// wider than kSoftmaxPlainWidth is summed with each addition's error kept
// (TwoSum) and added at the end: 2.1e-15 relative at 1000 classes, 3.9e-15
// at 3000 in plain order, against the documented 1e-15. The narrow rows of
// a classifier keep the plain chain, whose error at 16 entries stays below
// that bound and which the compensated one would slow (its six additions an
// entry). Each way's order is fixed by the width alone: the same bits on
// every thread count and table.
constexpr size_t kSoftmaxPlainWidth = 16;

template <class T>
using SoftmaxSum = std::conditional_t<std::is_same_v<T, float>, double, T>;

// R rows from row i0: A = Z - row max (phase 0), or A /= row sum (phase 1).
template <size_t R, int Phase, class T>
void softmax_rows_block(const T* Z, T* A, size_t i0, size_t n) {
    using S = std::conditional_t<Phase == 0, T, SoftmaxSum<T>>;
    S acc[R], err[R];
    for (size_t r = 0; r < R; ++r) {
        acc[r] = Phase == 0 ? -std::numeric_limits<S>::infinity() : S(0);
        err[r] = S(0);
    }
    if constexpr (Phase == 0) {
        for (size_t j = 0; j < n; ++j)
            for (size_t r = 0; r < R; ++r) acc[r] = std::max(acc[r], Z[(i0 + r) * n + j]);
    } else if (std::is_same_v<S, T> && n > kSoftmaxPlainWidth) {
        for (size_t j = 0; j < n; ++j)
            for (size_t r = 0; r < R; ++r) {  // TwoSum: t + e == acc + x exactly
                const S x = A[(i0 + r) * n + j], t = acc[r] + x, bp = t - acc[r];
                err[r] += (acc[r] - (t - bp)) + (x - bp);
                acc[r] = t;
            }
        for (size_t r = 0; r < R; ++r) acc[r] += err[r];
    } else {
        for (size_t j = 0; j < n; ++j)
            for (size_t r = 0; r < R; ++r) acc[r] += S(A[(i0 + r) * n + j]);
    }
    for (size_t r = 0; r < R; ++r) {
        T* a = A + (i0 + r) * n;
        if constexpr (Phase == 0) {
            const T* z = Z + (i0 + r) * n;
            for (size_t j = 0; j < n; ++j) a[j] = z[j] - acc[r];
        } else {
            const S inv = S(1) / acc[r];
            for (size_t j = 0; j < n; ++j) a[j] = T(S(a[j]) * inv);
        }
    }
}

template <int Phase, class T>
void softmax_rows_phase(const T* Z, T* A, size_t m, size_t n) {
    size_t i = 0;
    for (; i + kSoftmaxRows <= m; i += kSoftmaxRows) softmax_rows_block<kSoftmaxRows, Phase>(Z, A, i, n);
    for (; i < m; ++i) softmax_rows_block<1, Phase>(Z, A, i, n);
}

template <class T>
void softmax_forward_rows(const T* Z, T* A, size_t m, size_t n) {
    softmax_rows_phase<0>(Z, A, m, n);
    active_vmath().template get<T>().exp_shifted(A, T(0), A, m * n);
    softmax_rows_phase<1>(A, A, m, n);
}

// dZ[i,:] = A[i,:] (.) (dA[i,:] - dA[i,:].A[i,:]): the softmax Jacobian-vector
// product, i.e. the double contraction of dA with the 4-index Jacobian, one
// row at a time. Works for any upstream gradient dA (any loss). dZ may alias dA.
template <class T>
void softmax_backward_rows(const T* A, size_t lda, const T* dA, size_t ldda, T* dZ, size_t lddz,
                           size_t m, size_t n) {
    for (size_t i = 0; i < m; ++i) {
        const T* a = A + i * lda;
        const T* da = dA + i * ldda;
        T* dz = dZ + i * lddz;
        T dot = 0;
        for (size_t j = 0; j < n; ++j) dot += da[j] * a[j];
        for (size_t j = 0; j < n; ++j) dz[j] = a[j] * (da[j] - dot);
    }
}

// ---- whole-matrix ops (rows split across threads; every element's value is
// independent of the split) ----------------------------------------------------

template <class T>
void activation_forward(Act act, const T* Z, T* A, size_t m, size_t n, const T* alpha, size_t alpha_stride);
template <class T>
void activation_backward(Act act, const T* Z, const T* A, const T* dA, T* dZ, size_t m, size_t n,
                         const T* alpha, size_t alpha_stride);
// prelu's parameter gradient: dalpha[j] = sum_i dA[i,j] * (Z[i,j] <= 0 ? Z[i,j] : 0).
// Columns are split across threads, each summing its rows in order.
template <class T>
void prelu_alpha_backward(const T* Z, const T* dA, T* dalpha, size_t m, size_t n);

}  // namespace dnnfast
