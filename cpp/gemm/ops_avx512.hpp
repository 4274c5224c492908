// AVX-512F vector operations for the kernel template (gemm_simd.hpp): float
// and double lanes of 512 bits. Included only by files built with
// -mavx512f (gemm_kernels_avx512.cpp, tools/gemm_sweep.cpp), each getting its
// own internal copy, in namespace isa_avx512.
#pragma once
#if !(defined(__x86_64__) || defined(_M_X64))
#error "ops_avx512.hpp is x86-64 only: include it only from *_avx512.cpp files"
#endif
#include <immintrin.h>

#include <cstdint>

namespace dnnfast {
namespace isa_avx512 {
namespace {

struct OpsF {
    typedef float V __attribute__((vector_size(64)));
    typedef int32_t VI __attribute__((vector_size(64)));  // same lanes as integers (vmath_impl.hpp)
    static V splat(float s) { return _mm512_set1_ps(s); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
};
struct OpsD {
    typedef double V __attribute__((vector_size(64)));
    typedef int64_t VI __attribute__((vector_size(64)));
    static V splat(double s) { return _mm512_set1_pd(s); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
};

}  // namespace
}  // namespace isa_avx512
}  // namespace dnnfast
