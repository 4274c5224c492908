// Losses: the registry (one table) and, side by side, the value J and the
// gradient dYhat = scale * dJ/dYhat for each.
//
// Shapes: Y, Yhat, dYhat are m x n (rows = samples), row stride n.
// Row weights: `w` is null (every row weighs 1) or points at m weights; the
// value is sum_i w_i J_i and the gradient row i is scaled by w_i.
//
// Logarithms and the divisions of the bce / cce gradients take Yhat clipped to
// [eps, 1 - eps] with eps = the dtype's machine epsilon (float32 1.19e-7,
// float64 2.22e-16), so a saturated prediction costs -ln(eps) (15.9 / 36.0)
// instead of infinity and its gradient stays finite.
//
// poisson is half the Poisson deviance, J_i = sum_j y ln(y / Yhat) - y + Yhat
// (0 ln 0 = 0), as scikit-learn's MLPRegressor(loss="poisson"); it takes
// Yhat clipped below at the same eps, so a prediction of 0 (an exp that
// underflowed, or an output that can reach 0) gives a finite value and a
// gradient 1 - y / Yhat no larger than y / eps.
#pragma once
#include <cstddef>

namespace dnnfast {

enum class Loss : int { sse = 0, mse, bce, cce, poisson };

struct LossInfo {
    const char* name;
    Loss loss;
    const char* fused_output;  // the output activation with a fused gradient, or ""
};

inline constexpr LossInfo kLosses[] = {
    {"sse", Loss::sse, ""},
    {"mse", Loss::mse, ""},
    {"bce", Loss::bce, "sigmoid"},
    {"cce", Loss::cce, "softmax"},
    {"poisson", Loss::poisson, "exp"},
};
inline constexpr int kNumLosses = sizeof(kLosses) / sizeof(kLosses[0]);

// J(Y, Yhat) = sum over rows of w_i J_i, accumulated in double in a fixed
// order (rows in blocks of a fixed size, blocks combined in order), so the
// value does not depend on the thread count.
template <class T>
double loss_forward(Loss loss, const T* Y, const T* Yhat, size_t m, size_t n, const T* w);

// dYhat = scale * w_i * dJ/dYhat (scale is 1/n for the cost C = J/n).
template <class T>
void loss_backward(Loss loss, const T* Y, const T* Yhat, T* dYhat, size_t m, size_t n, T scale,
                   const T* w);

// Fused output gradient for softmax + cce, sigmoid + bce and exp + poisson:
// dZ = scale * w_i * (Yhat - Y), which is what the generic path (loss
// gradient, then activation derivative) gives, without its division by
// Yhat(1 - Yhat) that loses everything when Yhat saturates. For softmax +
// cce (row_sum) the softmax mixes a row's units: dZ = scale * w_i * (Yhat
// s_i - Y) with s_i the row's target sum, which is Yhat - Y, bit for bit,
// for the usual targets (one-hot rows: s_i = 1) and the true gradient for
// any others (a row of soft labels that is not a distribution).
template <class T>
void output_backward_fused(const T* Y, const T* Yhat, T* dZ, size_t m, size_t n, T scale, const T* w,
                           bool row_sum = false);

}  // namespace dnnfast
