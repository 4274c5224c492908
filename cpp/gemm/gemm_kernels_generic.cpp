// Portable kernels, built for the target's baseline: on x86-64 SSE2 (128-bit
// vectors, no FMA, so fma() is a multiply then an add), on other CPUs (aarch64:
// NEON) whatever the compiler makes of 128-bit vector-extension types; the
// only tables there. Also the "generic512" table: the AVX-512 tile shapes and
// blocking instantiated on 512-bit vector-extension types, which GCC lowers to
// SSE2 -- slow, but it runs the AVX-512 template arithmetic and edge handling
// on machines without AVX-512.
#define DNNFAST_KERNEL_NS generic
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_generic.hpp"

namespace dnnfast {
namespace generic {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_GENERIC_VECTORS "sse2"
#else
#define DNNFAST_GENERIC_VECTORS "128-bit vectors"
#endif

}  // namespace

// 16 xmm registers: a 4 x 2-vector tile (8 accumulators) leaves room for the
// B vectors, the broadcast and the product of the separate multiply.
constexpr KernelSet gemm_kernels = {
    "generic", "generic " DNNFAST_GENERIC_VECTORS " float 4x8 / double 4x4",
    make_kernels<float, OpsGeneric<float, 16>, 4, 2>(/*mc=*/192, /*kc=*/256, /*nc=*/2048),
    make_kernels<double, OpsGeneric<double, 16>, 4, 2>(/*mc=*/96, /*kc=*/256, /*nc=*/2048),
};

constexpr KernelSet gemm_kernels512 = {
    "generic512", "generic512 (avx512 template on " DNNFAST_GENERIC_VECTORS ") float 14x32 / double 14x16",
    make_kernels<float, OpsGeneric<float, 64>, 14, 2>(/*mc=*/224, /*kc=*/384, /*nc=*/2048),
    make_kernels<double, OpsGeneric<double, 64>, 14, 2>(/*mc=*/112, /*kc=*/256, /*nc=*/2048),
};

}  // namespace generic
}  // namespace dnnfast
