// The avx512 vector-maths table (built with the avx512 flags and -ffp-contract=off;
// reached only through active_vmath(), after the CPU check). Same bits as
// the avx2 table (both fuse multiply-adds): see vmath.hpp. Everything here is in namespace
// isa_avx512 and the table is constant-initialised data (the rule in
// gemm/cpu_features.cpp).
#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_VMATH_NS isa_avx512
#include "gemm/ops_avx512.hpp"
#include "nn/vmath_impl.hpp"

namespace dnnfast {
namespace isa_avx512 {

extern const VMathSet vmath_table;  // external: active_vmath() picks it
constexpr VMathSet vmath_table = make_vmath<OpsF, OpsD>("avx512");

}  // namespace isa_avx512
}  // namespace dnnfast
#endif
