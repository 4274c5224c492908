// The avx2 vector-maths table (built with the avx2 flags and -ffp-contract=off;
// reached only through active_vmath(), after the CPU check). Same bits as
// the avx512 table (both fuse multiply-adds): see vmath.hpp. Everything here is in namespace
// isa_avx2 and the table is constant-initialised data (the rule in
// gemm/cpu_features.cpp).
#if defined(__x86_64__) || defined(_M_X64)
#define DNNFAST_VMATH_NS isa_avx2
#include "gemm/ops_avx2.hpp"
#include "nn/vmath_impl.hpp"

namespace dnnfast {
namespace isa_avx2 {

extern const VMathSet vmath_table;  // external: active_vmath() picks it
constexpr VMathSet vmath_table = make_vmath<OpsF, OpsD>("avx2");

}  // namespace isa_avx2
}  // namespace dnnfast
#endif
