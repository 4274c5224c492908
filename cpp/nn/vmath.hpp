// Vector transcendental kernels for the activations, the softmax and the cce
// loss: one table per instruction set (vmath_generic.cpp, vmath_avx2.cpp,
// vmath_avx512.cpp), all instantiated from one template (vmath_impl.hpp), and
// chosen at run time by following the GEMM's kernel choice (active_kernels(),
// which only ever selects a table the CPU supports; DNNFAST_GEMM_KERNEL and
// gemm_set_kernel therefore force these too).
//
// Every table computes the same bits: the same polynomials, the same operation
// order, only correctly rounded IEEE operations (+ - * /, compares, bit
// moves), and no fused multiply-add (the ISA files are built with
// -ffp-contract=off, the portable one has no FMA). See vmath_impl.hpp for
// the algorithms and the error bounds.
#pragma once
#include <cstddef>

namespace dnnfast {

template <class T>
struct VMathFns {
    // a[j] = sigma(z[j]) for j < n; a may alias z. alpha is elu's parameter
    // (ignored by the others). A null entry means "no vector kernel": the
    // caller uses the scalar std:: one (float64 arctan).
    using Fwd = void (*)(const T* z, T* a, size_t n, T alpha);
    Fwd elu, sigmoid, tanh, arctan, softplus;
    // dz[j] = da[j] * sigmoid(z[j]) (softplus'); dz may alias da.
    void (*softplus_backward)(const T* z, const T* da, T* dz, size_t n);
    // a[j] = exp(z[j] - shift) (softmax); a may alias z.
    void (*exp_shifted)(const T* z, T shift, T* a, size_t n);
    // y[j] = log(x[j]) for positive normal x (the clipped cce probabilities);
    // y may alias x. NaN gives NaN.
    void (*log)(const T* x, T* y, size_t n);
};

struct VMathSet {
    const char* name;
    VMathFns<float> f32;
    VMathFns<double> f64;
    template <class T>
    const VMathFns<T>& get() const;
};
template <>
inline const VMathFns<float>& VMathSet::get<float>() const { return f32; }
template <>
inline const VMathFns<double>& VMathSet::get<double>() const { return f64; }

// The table matching the active GEMM kernels (generic and generic512 -> the
// portable one).
const VMathSet& active_vmath();

}  // namespace dnnfast
