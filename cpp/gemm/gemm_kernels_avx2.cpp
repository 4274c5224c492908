// AVX2 + FMA kernels (built with -mavx2 -mfma; entered only after the CPU
// check in cpu_features.cpp). 16 ymm registers: a 6 x 2-vector tile keeps 12
// accumulators, 2 B vectors and 1 broadcast A value live. Everything here is in
// namespace isa_avx2 and the table is constant-initialised data: see the rule
// in cpu_features.cpp.
#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_KERNEL_NS isa_avx2
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_avx2.hpp"

namespace dnnfast {
namespace isa_avx2 {

// Blocking for 32-64 KiB L1d, 512 KiB-1 MiB L2: B micro-panel KC x NR = 32 KiB
// (float) / 24 KiB (double), A block MC x KC = 240 KiB / 288 KiB, B panel
// 4 MiB / 6 MiB. Chosen on a Zen 3 (32 KiB L1d, 512 KiB L2): float KC 512
// rather than 256 for fewer C updates per FMA; MC made less than the noise
// (BENCHMARKS.md, "Measurements behind the code": gemm_kernels).
extern const KernelSet gemm_kernels;  // external: cpu_features.cpp picks it
constexpr KernelSet gemm_kernels = {
    "avx2", "avx2-fma float 6x16 / double 6x8",
    make_kernels<float, OpsF, 6, 2>(/*mc=*/120, /*kc=*/512, /*nc=*/2048),
    make_kernels<double, OpsD, 6, 2>(/*mc=*/96, /*kc=*/384, /*nc=*/2048),
};

}  // namespace isa_avx2
}  // namespace dnnfast
#endif
