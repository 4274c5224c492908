// The avx2 vector-maths table (built with the avx2 flags and -ffp-contract=off;
// reached only through active_vmath(), after the CPU check). Same bits as
// the portable table: see vmath.hpp.
#include "gemm/ops_avx2.hpp"
#include "nn/vmath_impl.hpp"

namespace dnnfast {
namespace {

constexpr VMathSet kSet = make_vmath<OpsF, OpsD>("avx2");

}  // namespace

const VMathSet& vmath_avx2() { return kSet; }

}  // namespace dnnfast
