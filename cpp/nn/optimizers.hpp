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

// The registry: the names users type, exported as _core.OPTIMIZERS and
// mirrored by name in python/dnnfast/_registry.py (like ACTIVATIONS, LOSSES).
struct OptimizerInfo {
    const char* name;
    Optim id;
    int state_buffers;  // 0: none; 1: state1 (velocity); 2: state1, state2 and the step count t (Adam)
};
inline constexpr OptimizerInfo kOptimizers[] = {
    {"sgd", Optim::sgd, 0},
    {"momentum", Optim::momentum, 1},
    {"nesterov", Optim::nesterov, 1},
    {"adam", Optim::adam, 2},
};
inline constexpr int kNumOptimizers = int(sizeof(kOptimizers) / sizeof(kOptimizers[0]));

template <class T>
struct OptimizerConfig {
    Optim kind = Optim::sgd;
    T learning_rate = T(0.01);
    T momentum = T(0.9);
    T beta1 = T(0.9), beta2 = T(0.999), epsilon = T(1e-8);
    // Two forms of the L2 penalty on weights (not biases, not alphas), D the
    // batch's row count (or weight sum):
    T l2 = T(0);            // 0.5 * l2 * sum(W^2) / D: scikit-learn's alpha (the estimators)
    T weight_decay = T(0);  // 0.5 * weight_decay * sum(W^2), whatever D (Network.fit's weight_decay)
};

// s1: velocity (momentum, nesterov) or Adam's m; s2: Adam's v; t: Adam's step
// count. Each buffer is n long; unused ones may be null. spread: G was just
// written by a team of threads (the batch's products), so it lies in more
// than one core's cache; the step then splits from fewer parameters.
// Every element's arithmetic is the same on any split.
template <class T>
void optimizer_step(T* P, const T* G, size_t n, const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t,
                    bool spread = false);

}  // namespace dnnfast
