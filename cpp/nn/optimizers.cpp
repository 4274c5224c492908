#include "nn/optimizers.hpp"

#include <cmath>

#include "nn/vmath.hpp"
#include "threads.hpp"

namespace dnnfast {

template <class T>
void optimizer_step(T* P, const T* G, size_t n, const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t,
                    bool spread) {
    const T lr = opt.learning_rate, mu = opt.momentum;
    // With G and P in one core's cache, a second thread pays only once the
    // step outgrows the fork and join. With G spread over the cores (a
    // team's products wrote it), one thread stepping all of it pulls the
    // other cores' part across, and P goes back to them for the next
    // batch's products: splitting the step pays from far fewer parameters
    // (BENCHMARKS.md, "Measurements behind the code": optimizer_step).
    const int nt = threads_for(double(n), spread ? 20000.0 : 150000.0);
    // Each thread steps a contiguous range with the vector kernel (vmath.hpp).
    const VMathFns<T>& v = active_vmath().template get<T>();
    switch (opt.kind) {
        case Optim::sgd:
            parallel_ranges(n, nt, [&](size_t k0, size_t k1) { v.sgd(P + k0, G + k0, k1 - k0, lr); });
            break;
        case Optim::momentum:
        case Optim::nesterov: {
            const bool nesterov = opt.kind == Optim::nesterov;
            parallel_ranges(n, nt, [&](size_t k0, size_t k1) {
                v.momentum(P + k0, G + k0, s1 + k0, k1 - k0, lr, mu, nesterov);
            });
            break;
        }
        case Optim::adam: {
            *t += 1;
            const double tt = double(*t);
            const T b1 = opt.beta1, b2 = opt.beta2, eps = opt.epsilon;
            const T lr_t = T(double(lr) * std::sqrt(1.0 - std::pow(double(b2), tt)) /
                             (1.0 - std::pow(double(b1), tt)));
            parallel_ranges(n, nt, [&](size_t k0, size_t k1) {
                v.adam(P + k0, G + k0, s1 + k0, s2 + k0, k1 - k0, lr_t, b1, b2, eps);
            });
            break;
        }
    }
}

template void optimizer_step<float>(float*, const float*, size_t, const OptimizerConfig<float>&, float*, float*,
                                    int64_t*, bool);
template void optimizer_step<double>(double*, const double*, size_t, const OptimizerConfig<double>&, double*,
                                     double*, int64_t*, bool);

}  // namespace dnnfast
