// Size arithmetic that refuses to wrap around.
#pragma once
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace dnnfast {

inline size_t checked_mul(size_t a, size_t b, const char* what) {
    if (a != 0 && b > std::numeric_limits<size_t>::max() / a)
        throw std::overflow_error(std::string(what) + ": size overflows size_t");
    return a * b;
}

inline size_t checked_add(size_t a, size_t b, const char* what) {
    if (b > std::numeric_limits<size_t>::max() - a)
        throw std::overflow_error(std::string(what) + ": size overflows size_t");
    return a + b;
}

}  // namespace dnnfast
