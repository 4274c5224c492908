// The portable vector-maths table (the target's baseline vectors), and the
// run-time choice of table, which follows the GEMM kernels' choice.
#include <cstring>

#include "gemm/gemm_kernels.hpp"
#include "gemm/ops_generic.hpp"
#define DNNFAST_VMATH_NS generic
#include "nn/vmath_impl.hpp"

namespace dnnfast {
namespace generic {

constexpr VMathSet vmath_table = make_vmath<OpsGeneric<float, 16>, OpsGeneric<double, 16>>("generic");

}  // namespace generic

#ifdef DNNFAST_X86_KERNELS
namespace isa_avx2 { extern const VMathSet vmath_table; }
namespace isa_avx512 { extern const VMathSet vmath_table; }
#endif

const VMathSet& active_vmath() {
    // By name, so nothing built with ISA flags runs unless active_kernels()
    // (which checked the CPU) picked that instruction set.
#ifdef DNNFAST_X86_KERNELS
    const char* k = active_kernels().name;
    if (!std::strcmp(k, "avx512")) return isa_avx512::vmath_table;
    if (!std::strcmp(k, "avx2")) return isa_avx2::vmath_table;
#endif
    return generic::vmath_table;
}

}  // namespace dnnfast
