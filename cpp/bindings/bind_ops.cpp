#include "bindings/bindings.hpp"
namespace dnnfast::bindings {
void bind_ops(py::module_&) {}
}
