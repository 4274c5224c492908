// The binding layer: the only code that includes pybind11. Each file binds one
// concept; module.cpp assembles them into dnnfast._core.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include <stdexcept>
#include <string>

namespace dnnfast::bindings {

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;  // no forcecast: callers pass the exact dtype

// Checks done again here (Python validates first) so that no pointer reaches a
// kernel with a shape it does not expect, whatever the caller.
template <class T>
inline void require_2d(const carray<T>& a, const char* name) {
    if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + " must be 2-D");
}

void bind_threads(py::module_& m);
void bind_gemm(py::module_& m);
void bind_ops(py::module_& m);
void bind_network(py::module_& m);
void bind_lock(py::module_& m);

}  // namespace dnnfast::bindings
