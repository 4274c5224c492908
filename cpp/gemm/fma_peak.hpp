// Measured peak of the FMA units, the yardstick for GEMM efficiency.
#pragma once

namespace dnnfast {

// GFLOP/s (2 flops per FMA lane) of a register-resident FMA loop with the
// active kernel table's vectors, on `threads` threads for about `seconds`.
// dtype_double selects double lanes, else float.
double fma_peak_gflops(bool dtype_double, int threads, double seconds = 0.2);

}  // namespace dnnfast
