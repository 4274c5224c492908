// Input checks run on whole arrays before training or prediction.
#pragma once
#include <cstddef>

#include "nn/vmath.hpp"

namespace dnnfast {

// True when none of x[0..n) is NaN or infinite: one pass in the active
// instruction set's vectors (VMathFns::all_finite), no temporary.
template <class T>
bool all_finite(const T* x, size_t n) {
    return active_vmath().get<T>().all_finite(x, n);
}

}  // namespace dnnfast
