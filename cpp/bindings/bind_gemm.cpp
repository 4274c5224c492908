// GEMM bindings, for the tests and benchmarks: gemm(A, B, trans_a, trans_b)
// and gemm_reference(...) on 2-D C-contiguous arrays of one float dtype.
#include "bindings/bindings.hpp"
#include "gemm/gemm.hpp"

namespace dnnfast::bindings {

namespace {

template <class T, bool Reference>
py::array_t<T> gemm_py(const carray<T>& A, const carray<T>& B, bool trans_a, bool trans_b) {
    require_2d(A, "A");
    require_2d(B, "B");
    const size_t M = trans_a ? A.shape(1) : A.shape(0), K = trans_a ? A.shape(0) : A.shape(1);
    const size_t Kb = trans_b ? B.shape(1) : B.shape(0), N = trans_b ? B.shape(0) : B.shape(1);
    if (K != Kb) throw std::invalid_argument("A and B: inner dimensions differ");
    py::array_t<T> C({M, N});
    const Trans ta = trans_a ? Trans::T : Trans::N, tb = trans_b ? Trans::T : Trans::N;
    const size_t lda = A.shape(1), ldb = B.shape(1);
    T* c = C.mutable_data();
    const T *a = A.data(), *b = B.data();
    {
        py::gil_scoped_release release;
        if (Reference) gemm_reference<T>(ta, tb, M, N, K, T(1), a, lda, b, ldb, T(0), c, N);
        else gemm<T>(ta, tb, M, N, K, T(1), a, lda, b, ldb, T(0), c, N);
    }
    return C;
}

template <class T>
void bind_gemm_dtype(py::module_& m) {
    m.def("gemm", &gemm_py<T, false>, py::arg("A"), py::arg("B"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, "op(A) @ op(B) with the fast GEMM.");
    m.def("gemm_reference", &gemm_py<T, true>, py::arg("A"), py::arg("B"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, "op(A) @ op(B) with the simple reference GEMM.");
}

}  // namespace

void bind_gemm(py::module_& m) {
    bind_gemm_dtype<float>(m);
    bind_gemm_dtype<double>(m);
}

}  // namespace dnnfast::bindings
