// Thread-count policy shared by every kernel.
#pragma once
#include <cstddef>

namespace dnnfast {

// Threads the kernels may use now: the value given to set_num_threads(), or,
// when none was given (0), OpenMP's omp_get_max_threads() -- which follows
// OMP_NUM_THREADS and threadpoolctl's limits. Always >= 1.
int get_num_threads();
// n >= 1 fixes the count; n == 0 returns to following OpenMP.
void set_num_threads(int n);
// Threads worth using for `work` multiply-adds (or element operations):
// small problems run on one thread, where the fork/join would cost more than
// it saves.
int threads_for(double work, double min_work_per_thread);

}  // namespace dnnfast
