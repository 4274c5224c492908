// GEMM bindings, for the tests and benchmarks: gemm(A, B, trans_a, trans_b)
// and gemm_reference(...) on 2-D C-contiguous arrays of one float dtype, the
// in-place update gemm_update(A, B, C, ...) with alpha/beta, an epilogue
// probe, the products on a packed B, the kernel choice, and the FMA-peak
// probe.
#include <string>

#include "bindings/bindings.hpp"
#include "gemm/fma_peak.hpp"
#include "gemm/gemm.hpp"
#include "gemm/gemm_kernels.hpp"
#include "gemm/packed_b.hpp"

namespace dnnfast::bindings {

namespace {

struct Shape {
    size_t M, N, K, lda, ldb;
    Trans ta, tb;
};

template <class T>
Shape check_shapes(const carray<T>& A, const carray<T>& B, bool trans_a, bool trans_b) {
    require_2d(A, "A");
    require_2d(B, "B");
    Shape s;
    s.M = trans_a ? A.shape(1) : A.shape(0);
    s.K = trans_a ? A.shape(0) : A.shape(1);
    const size_t Kb = trans_b ? B.shape(1) : B.shape(0);
    s.N = trans_b ? B.shape(0) : B.shape(1);
    if (s.K != Kb) throw std::invalid_argument("A and B: inner dimensions differ");
    s.lda = A.shape(1);
    s.ldb = B.shape(1);
    s.ta = trans_a ? Trans::T : Trans::N;
    s.tb = trans_b ? Trans::T : Trans::N;
    return s;
}

template <class T>
void run(bool reference, const Shape& s, T alpha, const T* a, const T* b, T beta, T* c,
         const Epilogue<T>* ep = nullptr) {
    ReleaseGil release;
    if (reference) gemm_reference<T>(s.ta, s.tb, s.M, s.N, s.K, alpha, a, s.lda, b, s.ldb, beta, c, s.N, ep);
    else gemm<T>(s.ta, s.tb, s.M, s.N, s.K, alpha, a, s.lda, b, s.ldb, beta, c, s.N, ep);
}

template <class T, bool Reference>
py::array_t<T> gemm_py(const carray<T>& A, const carray<T>& B, bool trans_a, bool trans_b) {
    const Shape s = check_shapes(A, B, trans_a, trans_b);
    py::array_t<T> C({s.M, s.N});
    run<T>(Reference, s, T(1), A.data(), B.data(), T(0), C.mutable_data());
    return C;
}

// C := alpha op(A) op(B) + beta C, in place.
template <class T>
void gemm_update_py(const carray<T>& A, const carray<T>& B, carray<T>& C, T alpha, T beta,
                    bool trans_a, bool trans_b, bool reference) {
    const Shape s = check_shapes(A, B, trans_a, trans_b);
    require_2d(C, "C");
    if (size_t(C.shape(0)) != s.M || size_t(C.shape(1)) != s.N)
        throw std::invalid_argument("C must be M x N");
    run<T>(reference, s, alpha, A.data(), B.data(), beta, C.mutable_data());
}

// Epilogue probe: c := 2 c + 1000 i + j on each block it is given. Called
// twice, too early (before the last K slice), or with wrong (i0, j0), the
// result differs from 2 op(A) op(B) + 1000 i + j.
template <class T>
void probe_epilogue(const void*, T* c, size_t ldc, size_t i0, size_t j0, size_t m, size_t n) {
    for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < n; ++j)
            c[i * ldc + j] = T(2) * c[i * ldc + j] + T(1000) * T(i0 + i) + T(j0 + j);
}

template <class T>
py::array_t<T> gemm_epilogue_probe_py(const carray<T>& A, const carray<T>& B, bool trans_a,
                                      bool trans_b, bool reference) {
    const Shape s = check_shapes(A, B, trans_a, trans_b);
    py::array_t<T> C({s.M, s.N});
    Epilogue<T> ep;
    ep.fn = &probe_epilogue<T>;
    run<T>(reference, s, T(1), A.data(), B.data(), T(0), C.mutable_data(), &ep);
    return C;
}

// A relu layer's epilogues: relu(op(A) op(B) + bias) (forward) and
// op(A) op(B) * (mask > 0 ? 1 : 0) (backward, the mask laid out as C), done as
// the kernels store C (fused: Epilogue::relu_bias / relu_mask) or by the
// epilogue function on each finished block (what the reference GEMM and the
// paths without the fused form do); with packed, B is packed first
// (gemm_packed_b).
template <class T>
struct ReluEpilogue {
    const T* bias;
    const T* mask;
    size_t ld;
    static void run(const void* ctx, T* c, size_t ldc, size_t i0, size_t j0, size_t m, size_t n) {
        const auto& e = *static_cast<const ReluEpilogue*>(ctx);
        for (size_t i = 0; i < m; ++i)
            for (size_t j = 0; j < n; ++j) {
                T& v = c[i * ldc + j];
                if (e.bias) {
                    const T x = v + e.bias[j0 + j];
                    v = x <= T(0) ? T(0) : x;
                } else {
                    v = v * (e.mask[(i0 + i) * e.ld + j0 + j] > T(0) ? T(1) : T(0));
                }
            }
    }
};

template <class T, bool Backward>
py::array_t<T> gemm_relu_py(const carray<T>& A, const carray<T>& B, const carray<T>& data, bool trans_a,
                            bool trans_b, bool fused, bool packed, bool reference) {
    const Shape s = check_shapes(A, B, trans_a, trans_b);
    if (!Backward && (data.ndim() != 1 || size_t(data.shape(0)) != s.N))
        throw std::invalid_argument("bias must be 1-D with N = op(B).shape[1] values");
    if (Backward && (data.ndim() != 2 || size_t(data.shape(0)) != s.M || size_t(data.shape(1)) != s.N))
        throw std::invalid_argument("mask must be M x N, the shape of op(A) @ op(B)");
    if (packed && (trans_b || reference)) throw std::invalid_argument("packed: B untransposed, not the reference");
    py::array_t<T> C({s.M, s.N});
    T* c = C.mutable_data();
    const ReluEpilogue<T> ctx{Backward ? nullptr : data.data(), Backward ? data.data() : nullptr, s.N};
    Epilogue<T> ep{&ReluEpilogue<T>::run, &ctx};
    if (fused) (Backward ? ep.relu_mask : ep.relu_bias) = data.data();
    if (!packed) {
        run<T>(reference, s, T(1), A.data(), B.data(), T(0), c, &ep);
        return C;
    }
    ReleaseGil release;
    PackedB<T> Bp;
    Bp.pack(B.data(), s.ldb, s.K, s.N);
    gemm_packed_b<T>(s.ta, s.M, T(1), A.data(), s.lda, Bp, T(0), c, s.N, &ep);
    return C;
}

// W := W + alpha u v^T then y := x W, in place on W (the fused SGD step of
// stochastic training's first layer).
template <class T>
py::array_t<T> gemm_rank1_gemv_py(carray<T>& W, const carray<T>& u, const carray<T>& v, const carray<T>& x,
                                  T alpha) {
    require_2d(W, "W");
    const size_t K = W.shape(0), N = W.shape(1);
    if (size_t(u.size()) != K || size_t(x.size()) != K) throw std::invalid_argument("u and x: need W.shape[0] values");
    if (size_t(v.size()) != N) throw std::invalid_argument("v: need W.shape[1] values");
    py::array_t<T> y(N);
    T* wp = W.mutable_data();
    T* yp = y.mutable_data();
    {
        ReleaseGil release;
        gemm_rank1_gemv<T>(K, N, alpha, u.data(), v.data(), wp, N, x.data(), yp);
    }
    return y;
}

// y := v W^T, then W := W + alpha u v^T in place on W (a stochastic step's
// dA through a hidden layer, fused with that layer's step); returns y.
template <class T>
py::array_t<T> gemm_dot_rank1_py(carray<T>& W, const carray<T>& u, const carray<T>& v, T alpha) {
    require_2d(W, "W");
    const size_t M = W.shape(0), N = W.shape(1);
    if (size_t(u.size()) != M) throw std::invalid_argument("u: need W.shape[0] values");
    if (size_t(v.size()) != N) throw std::invalid_argument("v: need W.shape[1] values");
    py::array_t<T> y(M);
    T* wp = W.mutable_data();
    T* yp = y.mutable_data();
    {
        ReleaseGil release;
        gemm_dot_rank1<T>(M, N, alpha, u.data(), v.data(), wp, N, yp);
    }
    return y;
}

// op(A) @ B with B packed first (PackedB), through gemm_packed_b; with
// probe, the epilogue of gemm_epilogue_probe.
template <class T>
py::array_t<T> gemm_packed_b_py(const carray<T>& A, const carray<T>& B, bool trans_a, bool probe) {
    const Shape s = check_shapes(A, B, trans_a, false);
    py::array_t<T> C({s.M, s.N});
    T* c = C.mutable_data();
    Epilogue<T> ep;
    ep.fn = &probe_epilogue<T>;
    {
        ReleaseGil release;
        PackedB<T> Bp;
        Bp.pack(B.data(), s.ldb, s.K, s.N);
        gemm_packed_b<T>(s.ta, s.M, T(1), A.data(), s.lda, Bp, T(0), c, s.N, probe ? &ep : nullptr);
    }
    return C;
}

// W := alpha op(A) op(B) + beta W in place, W packed first, updated in the
// packed layout (gemm_into_packed), then unpacked.
template <class T>
void gemm_into_packed_py(const carray<T>& A, const carray<T>& B, carray<T>& W, T alpha, T beta, bool trans_a,
                         bool trans_b) {
    const Shape s = check_shapes(A, B, trans_a, trans_b);
    require_2d(W, "W");
    if (size_t(W.shape(0)) != s.M || size_t(W.shape(1)) != s.N) throw std::invalid_argument("W must be M x N");
    T* w = W.mutable_data();
    ReleaseGil release;
    PackedB<T> Wp;
    Wp.pack(w, s.N, s.M, s.N);
    gemm_into_packed<T>(s.ta, s.tb, s.K, alpha, A.data(), s.lda, B.data(), s.ldb, beta, Wp);
    Wp.unpack(w, s.N);
}

template <class T>
void bind_gemm_dtype(py::module_& m) {
    m.def("gemm_packed_b", &gemm_packed_b_py<T>, py::arg("A"), py::arg("B"), py::arg("trans_a") = false,
          py::arg("probe") = false, "op(A) @ B with B packed beforehand (the first layer's product in training).");
    m.def("gemm_into_packed", &gemm_into_packed_py<T>, py::arg("A"), py::arg("B"), py::arg("W").noconvert(),
          py::arg("alpha"), py::arg("beta"), py::arg("trans_a") = false, py::arg("trans_b") = false,
          "W := alpha op(A) op(B) + beta W in place, computed on W packed (the first layer's SGD update).");
    m.def("gemm_rank1_gemv", &gemm_rank1_gemv_py<T>, py::arg("W").noconvert(), py::arg("u"), py::arg("v"),
          py::arg("x"), py::arg("alpha"), "W := W + alpha u v^T (in place), then return x W.");
    m.def("gemm_dot_rank1", &gemm_dot_rank1_py<T>, py::arg("W").noconvert(), py::arg("u"), py::arg("v"),
          py::arg("alpha"), "y := v W^T, then W := W + alpha u v^T (in place); returns y.");
    m.def("gemm", &gemm_py<T, false>, py::arg("A"), py::arg("B"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, "op(A) @ op(B) with the fast GEMM.");
    m.def("gemm_reference", &gemm_py<T, true>, py::arg("A"), py::arg("B"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, "op(A) @ op(B) with the simple reference GEMM.");
    m.def("gemm_update", &gemm_update_py<T>, py::arg("A"), py::arg("B"), py::arg("C").noconvert(),
          py::arg("alpha"), py::arg("beta"), py::arg("trans_a") = false, py::arg("trans_b") = false,
          py::arg("reference") = false, "C := alpha op(A) op(B) + beta C in place.");
    m.def("gemm_epilogue_probe", &gemm_epilogue_probe_py<T>, py::arg("A"), py::arg("B"),
          py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("reference") = false,
          "op(A) @ op(B) with the test epilogue c := 2c + 1000 i + j.");
    m.def("gemm_bias_relu", &gemm_relu_py<T, false>, py::arg("A"), py::arg("B"), py::arg("bias"),
          py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("fused") = true, py::arg("packed") = false,
          py::arg("reference") = false,
          "relu(op(A) @ op(B) + bias): a relu layer's forward epilogue, fused into the kernels' stores or not.");
    m.def("gemm_relu_mask", &gemm_relu_py<T, true>, py::arg("A"), py::arg("B"), py::arg("mask"),
          py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("fused") = true, py::arg("packed") = false,
          py::arg("reference") = false,
          "op(A) @ op(B) * (mask > 0): a relu layer's backward epilogue, fused into the kernels' stores or not.");
}

}  // namespace

void bind_gemm(py::module_& m) {
    bind_gemm_dtype<float>(m);
    bind_gemm_dtype<double>(m);
    m.def("gemm_kernel", []() { return std::string(active_kernels().label); },
          "The micro-kernels in use, with their tile shapes.");
    m.def("gemm_kernel_name", []() { return std::string(active_kernels().name); },
          "Name of the kernel table in use (as DNNFAST_GEMM_KERNEL takes it).");
    m.def("gemm_set_kernel", [](const std::string& name) { return std::string(set_active_kernels(name.c_str())); },
          py::arg("name"),
          "For tests: use the named kernels (generic, generic512, avx2, avx512, auto); an "
          "unsupported name falls back to the default. Returns the name now in use.");
    m.def("packed_b_matches_gemm", [](const std::string& dtype, size_t M, size_t K, size_t N) {
        if (dtype != "float32" && dtype != "float64") throw std::invalid_argument("dtype: float32 or float64");
        return dtype == "float64" ? packed_b_matches_gemm<double>(M, K, N) : packed_b_matches_gemm<float>(M, K, N);
    }, py::arg("dtype"), py::arg("M"), py::arg("K"), py::arg("N"),
          "Whether training with batches of M rows keeps a K x N first-layer W packed.");
    m.def("gemm_kernel_supported", [](const std::string& name) { return kernels_supported(name.c_str()); },
          py::arg("name"));
    m.def("fma_peak_gflops", [](const std::string& dtype, int threads) {
        if (dtype != "float32" && dtype != "float64") throw std::invalid_argument("dtype: float32 or float64");
        if (threads < 1) throw std::invalid_argument("threads must be >= 1");
        ReleaseGil release;
        return fma_peak_gflops(dtype == "float64", threads);
    }, py::arg("dtype"), py::arg("threads"),
          "Measured peak GFLOP/s (2 flops per FMA lane) of the active kernels' FMA units.");
}

}  // namespace dnnfast::bindings
