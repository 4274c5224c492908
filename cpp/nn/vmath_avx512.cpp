// The avx512 vector-maths table (built with the avx512 flags and -ffp-contract=off;
// reached only through active_vmath(), after the CPU check). Same bits as
// the portable table: see vmath.hpp.
#include "gemm/ops_avx512.hpp"
#include "nn/vmath_impl.hpp"

namespace dnnfast {
namespace {

constexpr VMathSet kSet = make_vmath<OpsF, OpsD>("avx512");

}  // namespace

const VMathSet& vmath_avx512() { return kSet; }

}  // namespace dnnfast
