// The epoch shuffle of scikit-learn's MLP (numpy.random.RandomState.shuffle
// of a 1-D array), made on the caller's NumPy bit generator: the same draws,
// so the same permutation and the same generator state afterwards.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dnnfast {

// NumPy's bitgen_t (numpy/random/bitgen.h, the C interface every NumPy bit
// generator exposes through its "BitGenerator" capsule).
struct NumpyBitGen {
    void* state;
    uint64_t (*next_uint64)(void* st);
    uint32_t (*next_uint32)(void* st);
    double (*next_double)(void* st);
    uint64_t (*next_raw)(void* st);
};

// x[0..n) permuted as RandomState.shuffle permutes it: for i = n-1 .. 1,
// swap x[i] with x[j], j uniform in [0, i] by NumPy's random_interval
// (next_uint32 masked to the smallest 2^b - 1 >= i, redrawn while > i).
// n - 1 must fit in 32 bits (the caller checks; NumPy draws 64-bit values
// beyond). The caller holds the generator's lock.
void legacy_shuffle(const NumpyBitGen& g, int64_t* x, size_t n);

}  // namespace dnnfast
