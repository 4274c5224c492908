#include "bindings/bindings.hpp"
namespace dnnfast::bindings {
void bind_network(py::module_&) {}
}
