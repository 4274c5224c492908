// Optimizers: one loop over the flat parameter buffer P and its gradient G,
// whatever the depth of the network.
//
//   sgd       P -= lr G                                   (SPEC section 5)
//   momentum  V = mu V - lr G;  P += V
//   nesterov  V = mu V - lr G;  P += mu V - lr G
//   adam      m = b1 m + (1-b1) G;  v = b2 v + (1-b2) G^2;  t += 1
//             P -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)
// (the forms scikit-learn's MLP uses, so its numbers can be reproduced).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dnnfast {

enum class Optim : int { sgd = 0, momentum, nesterov, adam };

template <class T>
struct OptimizerConfig {
    Optim kind = Optim::sgd;
    T learning_rate = T(0.01);
    T momentum = T(0.9);
    T beta1 = T(0.9), beta2 = T(0.999), epsilon = T(1e-8);
    T l2 = T(0);  // L2 penalty 0.5 * l2 * sum(W^2) / D on weights (not biases, not alphas)
};

// s1: velocity (momentum, nesterov) or Adam's m; s2: Adam's v; t: Adam's step
// count. Each buffer is n long; unused ones may be null.
template <class T>
void optimizer_step(T* P, const T* G, size_t n, const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t);

}  // namespace dnnfast
