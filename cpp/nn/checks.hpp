// Input checks run on whole arrays before training or prediction.
#pragma once
#include <cstddef>

namespace dnnfast {

// True when none of x[0..n) is NaN or infinite. One vectorisable pass with no
// temporary: x * 0 is 0 for every finite x and NaN otherwise, and a NaN
// survives the sum.
template <class T>
bool all_finite(const T* x, size_t n) {
    constexpr size_t kLanes = 16;
    T acc[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (size_t k = 0; k < kLanes; ++k) acc[k] += x[i + k] * T(0);
        // Stop early on a bad block of 64 K elements rather than scanning on.
        if ((i & 0xFFFF) == 0) {
            T s = 0;
            for (size_t k = 0; k < kLanes; ++k) s += acc[k];
            if (s != T(0)) return false;
        }
    }
    T s = 0;
    for (size_t k = 0; k < kLanes; ++k) s += acc[k];
    for (; i < n; ++i) s += x[i] * T(0);
    return s == T(0);
}

}  // namespace dnnfast
