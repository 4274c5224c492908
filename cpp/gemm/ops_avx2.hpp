// AVX2 + FMA vector operations for the kernel template (gemm_simd.hpp): float
// and double lanes of 256 bits. Included only by files built with -mavx2
// -mfma (gemm_kernels_avx2.cpp, tools/gemm_sweep.cpp), each getting its own
// internal copy, in namespace isa_avx2.
#pragma once
#if !(defined(__x86_64__) || defined(_M_X64))
#error "ops_avx2.hpp is x86-64 only: include it only from *_avx2.cpp files"
#endif
#include <immintrin.h>

#include <cstdint>

namespace dnnfast {
namespace isa_avx2 {
namespace {

struct OpsF {
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t VI __attribute__((vector_size(32)));  // same lanes as integers (vmath_impl.hpp)
    static V splat(float s) { return _mm256_set1_ps(s); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
};
struct OpsD {
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t VI __attribute__((vector_size(32)));
    static V splat(double s) { return _mm256_set1_pd(s); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
};

}  // namespace
}  // namespace isa_avx2
}  // namespace dnnfast
