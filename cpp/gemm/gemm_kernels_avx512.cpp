// AVX-512F kernels (built with -mavx512f ...; entered only after the CPU check
// in cpu_features.cpp). 32 zmm registers: a 14 x 2-vector tile keeps 28
// accumulators, 2 B vectors and 1 broadcast A value live. The same template
// runs on AVX2 machines as the "generic512" table (gemm_kernels_generic.cpp).
// Everything here is in namespace isa_avx512 and the table is
// constant-initialised data: see the rule in cpu_features.cpp.
#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_KERNEL_NS isa_avx512
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_avx512.hpp"

namespace dnnfast {
namespace isa_avx512 {
namespace {

// The table's own transposing copy for packing (transpose_blocks).
template <class T>
constexpr KernelsFor<T> with_transpose(KernelsFor<T> k, TransposeFn<T> transpose) {
    k.transpose = transpose;
    return k;
}

}  // namespace

// Blocking for 48 KiB L1d, 2 MiB L2 (Sapphire Rapids): A block MC x KC =
// 336 KiB (float, 224 x 384) / 224 KiB (double, 112 x 256). Float KC 384
// (a B micro-panel of 48 KiB, streamed from L2) rather than 192: fewer C
// updates per FMA; larger MC and other tile shapes were no better. Double
// KC 256, not 192, for the same reason, with MC 112 (224 was no better on
// the Zen 4); and K = 200 (the estimators' default batch, in every weight
// gradient) is one slice instead of two. (BENCHMARKS.md, "Measurements
// behind the code": gemm_kernels.)
extern const KernelSet gemm_kernels;  // external: cpu_features.cpp picks it
constexpr KernelSet gemm_kernels = {
    "avx512", "avx512f float 14x32 / double 14x16",
    with_transpose(make_kernels<float, OpsF, 14, 2>(/*mc=*/224, /*kc=*/384, /*nc=*/2048),
                   &transpose_blocks<float, OpsF>),
    with_transpose(make_kernels<double, OpsD, 14, 2>(/*mc=*/112, /*kc=*/256, /*nc=*/2048),
                   &transpose_blocks<double, OpsD>),
};

}  // namespace isa_avx512
}  // namespace dnnfast
#endif
