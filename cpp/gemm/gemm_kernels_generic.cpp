// Portable kernels, built for baseline x86-64 (SSE2: 128-bit vectors, no FMA,
// so fma() is a multiply then an add). Also the "generic512" table: the
// AVX-512 tile shapes and blocking instantiated on 512-bit vector-extension
// types, which GCC lowers to SSE2 -- slow, but it runs the AVX-512 template
// arithmetic and edge handling on machines without AVX-512.
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_generic.hpp"

namespace dnnfast {
namespace {

// 16 xmm registers: a 4 x 2-vector tile (8 accumulators) leaves room for the
// B vectors, the broadcast and the product of the separate multiply.
const KernelSet kGeneric = {
    "generic", "generic sse2 float 4x8 / double 4x4",
    make_kernels<float, OpsGeneric<float, 16>, 4, 2>(/*mc=*/192, /*kc=*/256, /*nc=*/2048),
    make_kernels<double, OpsGeneric<double, 16>, 4, 2>(/*mc=*/96, /*kc=*/256, /*nc=*/2048),
};

const KernelSet kGeneric512 = {
    "generic512", "generic512 (avx512 template on sse2) float 14x32 / double 14x16",
    make_kernels<float, OpsGeneric<float, 64>, 14, 2>(/*mc=*/224, /*kc=*/384, /*nc=*/2048),
    make_kernels<double, OpsGeneric<double, 64>, 14, 2>(/*mc=*/112, /*kc=*/192, /*nc=*/2048),
};

}  // namespace

const KernelSet& kernels_generic() { return kGeneric; }
const KernelSet& kernels_generic512() { return kGeneric512; }

}  // namespace dnnfast
