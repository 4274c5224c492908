// The portable vector-maths table (baseline x86-64, 128-bit vectors), and the
// run-time choice of table, which follows the GEMM kernels' choice.
#include <cstring>

#include "gemm/gemm_kernels.hpp"
#include "gemm/ops_generic.hpp"
#include "nn/vmath_impl.hpp"

namespace dnnfast {
namespace {

constexpr VMathSet kSet = make_vmath<OpsGeneric<float, 16>, OpsGeneric<double, 16>>("generic");

}  // namespace

const VMathSet& vmath_generic() { return kSet; }

const VMathSet& active_vmath() {
    // By name, so nothing built with ISA flags runs unless active_kernels()
    // (which checked the CPU) picked that instruction set.
    const char* k = active_kernels().name;
    if (!std::strcmp(k, "avx512")) return vmath_avx512();
    if (!std::strcmp(k, "avx2")) return vmath_avx2();
    return kSet;
}

}  // namespace dnnfast
