#include "nn/activations.hpp"

#include <algorithm>

#include "threads.hpp"

namespace dnnfast {

// Rows are split across threads; each element's value does not depend on how.
template <class T>
void activation_forward(Act act, const T* Z, T* A, size_t m, size_t n, const T* alpha, size_t alpha_stride) {
    const int nt = threads_for(double(m) * double(n) * activation_cost(act), kElementwiseMinWork);
    if (act == Act::softmax) {  // row ranges: narrow rows go through the vector exp together
        parallel_ranges(m, nt, [&](size_t i0, size_t i1) {
            softmax_forward_rows(Z + i0 * n, A + i0 * n, i1 - i0, n);
        });
        return;
    }
    // Each thread's rows in one block call, not a call per row: rows of one
    // to a few units cost a call (and a padded vector) each (BENCHMARKS.md,
    // "Measurements behind the code": activation_forward).
    parallel_ranges(m, nt, [&](size_t i0, size_t i1) {
        const T* z = Z + i0 * n;
        T* a = A + i0 * n;
        // Copy first so the block kernel can work in place on A.
        if (a != z) std::copy(z, z + (i1 - i0) * n, a);
        activation_forward_block<T>(act, a, n, a, n, i1 - i0, n, 0, nullptr, alpha, alpha_stride);
    });
}

template <class T>
void activation_backward(Act act, const T* Z, const T* A, const T* dA, T* dZ, size_t m, size_t n,
                         const T* alpha, size_t alpha_stride) {
    const int nt = threads_for(double(m) * double(n) * activation_cost(act), kElementwiseMinWork);
    parallel_ranges(m, nt, [&](size_t i0, size_t i1) {  // as activation_forward
        const size_t o = i0 * n;
        if (act == Act::softmax)
            softmax_backward_rows(A + o, n, dA + o, n, dZ + o, n, i1 - i0, n);
        else
            activation_backward_block<T>(act, Z + o, n, A + o, n, dA + o, n, dZ + o, n, i1 - i0, n, 0, alpha,
                                         alpha_stride);
    });
}

template <class T>
void prelu_alpha_backward(const T* Z, const T* dA, T* dalpha, size_t m, size_t n) {
    // Threads own column ranges and walk the rows in order (no split sum).
    // A select, not a branch: on pre-activations of mixed signs the branch
    // was mispredicted about every other element, and the select's loop
    // vectorises (BENCHMARKS.md, "Measurements behind the code":
    // prelu_alpha_backward). The branch's sums: a row with z > 0 leaves
    // dalpha as it was (no + 0, which would turn -0 into +0).
    const int nt = std::min<int>(threads_for(double(m) * double(n), kColumnSumMinWork), int(std::max<size_t>(1, n / 16)));
    parallel_ranges(n, nt, [&](size_t j0, size_t j1) {
        T* __restrict d = dalpha;
        for (size_t j = j0; j < j1; ++j) d[j] = T(0);
        for (size_t i = 0; i < m; ++i) {
            const T* __restrict z = Z + i * n;
            const T* __restrict da = dA + i * n;
            for (size_t j = j0; j < j1; ++j) {
                const T sum = d[j] + da[j] * z[j];
                d[j] = z[j] <= T(0) ? sum : d[j];
            }
        }
    });
}

#define DNNFAST_INSTANTIATE_ACTIVATIONS(T)                                                                \
    template void activation_forward<T>(Act, const T*, T*, size_t, size_t, const T*, size_t);            \
    template void activation_backward<T>(Act, const T*, const T*, const T*, T*, size_t, size_t, const T*, \
                                         size_t);                                                         \
    template void prelu_alpha_backward<T>(const T*, const T*, T*, size_t, size_t);
DNNFAST_INSTANTIATE_ACTIVATIONS(float)
DNNFAST_INSTANTIATE_ACTIVATIONS(double)

}  // namespace dnnfast
