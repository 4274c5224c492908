// Thread-count policy shared by every kernel.
#pragma once
#include <cstddef>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dnnfast {

// Threads the kernels may use now: the calling thread's own count
// (set_local_num_threads), else the value given to set_num_threads(), or,
// when none was given (0), OpenMP's omp_get_max_threads() -- which follows
// OMP_NUM_THREADS and threadpoolctl's limits. Always >= 1.
int get_num_threads();
// n >= 1 fixes the count; n == 0 returns to following OpenMP.
void set_num_threads(int n);
// The same for the calling thread only, over the process-wide count (n == 0
// removes it); returns the previous value. A per-call thread count (the
// estimators' n_threads) set this way cannot leak into, or be undone by,
// another thread that sets its own at the same time.
int set_local_num_threads(int n);
// Threads worth using for `work` multiply-adds (or element operations):
// small problems run on one thread, where the fork/join would cost more than
// it saves.
int threads_for(double work, double min_work_per_thread);
// Records that an OpenMP team of more than one thread has run (threads_for
// does it for every kernel): a process forked afterwards stays on one thread,
// see threads.cpp.
void note_team_started();

// Column sums (bias and prelu gradients) are bound by memory bandwidth: on the
// 2-core EPYC two threads never beat one up to 1.6M elements (262 vs 311 us),
// so they split only very large inputs.
inline constexpr double kColumnSumMinWork = 4.0e6;

}  // namespace dnnfast

namespace dnnfast {

// for i in [0, n): f(i), split statically over nt threads. With nt <= 1 it is
// a plain loop: no OpenMP region at all, which matters at batch size 1 where
// a region's fork/join would cost more than the work.
template <class F>
inline void parallel_for(size_t n, int nt, F&& f) {
    if (nt <= 1) {
        for (size_t i = 0; i < n; ++i) f(i);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long long i = 0; i < static_cast<long long>(n); ++i) f(static_cast<size_t>(i));
}

}  // namespace dnnfast

namespace dnnfast {

// Splits [0, n) into nt contiguous ranges and calls f(begin, end) once per
// range, each on its own thread. Used for column reductions: a thread owns
// whole columns and walks the rows in order, so no sum is split.
template <class F>
inline void parallel_ranges(size_t n, int nt, F&& f) {
    if (nt <= 1 || n < 2) {
        f(size_t(0), n);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        size_t t = 0, tn = 1;
#ifdef _OPENMP
        t = size_t(omp_get_thread_num());
        tn = size_t(omp_get_num_threads());
#endif
        f(n * t / tn, n * (t + 1) / tn);
    }
}

}  // namespace dnnfast
