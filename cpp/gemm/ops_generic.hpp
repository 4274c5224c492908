// Portable vector operations (GCC vector extensions, baseline x86-64: SSE2, no
// FMA, so fma() is a multiply then an add) for the kernel template
// (gemm_simd.hpp, gemm_kernels_generic.cpp) and the vector maths
// (vmath_impl.hpp, vmath_generic.cpp). Bytes > 16 is lowered to several
// SSE2 operations (the generic512 table).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace dnnfast {
namespace {

template <class T, size_t Bytes>
struct OpsGeneric {
    typedef T V __attribute__((vector_size(Bytes)));
    // The same lanes as integers of T's width.
    typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> I;
    typedef I VI __attribute__((vector_size(Bytes)));
    static V splat(T s) {
        V v;
        for (size_t l = 0; l < Bytes / sizeof(T); ++l) v[l] = s;
        return v;
    }
    static V fma(V a, V b, V c) { return a * b + c; }
    // Lanes [0, r) from p, the rest zero; nothing past p + r is read.
    static V load_head(const T* p, size_t r) {
        V v = {};
        for (size_t l = 0; l < r; ++l) v[l] = p[l];
        return v;
    }
    // t[j] in each lane, j in [0, 16) (vmath_impl.hpp's exp).
    static V lookup16(const T* t, VI j) {
        V v;
        for (size_t l = 0; l < Bytes / sizeof(T); ++l) v[l] = t[j[l]];
        return v;
    }
};

}  // namespace
}  // namespace dnnfast
