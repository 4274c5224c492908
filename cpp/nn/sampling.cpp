#include "nn/sampling.hpp"

namespace dnnfast {

void legacy_shuffle(const NumpyBitGen& g, int64_t* x, size_t n) {
    if (n < 2) return;
    uint32_t (*const next)(void*) = g.next_uint32;
    void* const st = g.state;
    // One draw per pass, and no branch on whether it was accepted: a
    // rejected draw (about 3 in 10) swaps x[i] with itself and keeps i.
    // NumPy's loop (redraw while > i) mispredicts a branch on most
    // rejections (BENCHMARKS.md, "Measurements behind the code":
    // legacy_shuffle).
    size_t i = n - 1;
    while (i > 0) {
        const uint64_t mask = ~uint64_t(0) >> __builtin_clzll(uint64_t(i));
        const uint64_t v = uint64_t(next(st)) & mask;
        const bool accept = v <= i;
        const size_t j = accept ? size_t(v) : i;
        const int64_t a = x[i], b = x[j];
        x[j] = a;
        x[i] = b;
        i -= accept;
    }
}

}  // namespace dnnfast
