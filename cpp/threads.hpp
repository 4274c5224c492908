// Thread-count policy shared by every kernel.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dnnfast {

// The largest count the API takes (dnnfast._validation.MAX_THREADS): an
// OMP_NUM_THREADS beyond it (99999999999 read as 1215752191) is taken as it.
constexpr int kMaxThreads = 1 << 16;
// Threads the kernels may use now: the calling thread's own count
// (set_local_num_threads), else the value given to set_num_threads(), or,
// when none was given (0), OpenMP's omp_get_max_threads() -- which follows
// OMP_NUM_THREADS and threadpoolctl's limits. In [1, kMaxThreads].
int get_num_threads();
// The most OpenMP threads a team starts: max(64, 4 x the CPUs). A larger
// count runs as this many threads, each taking several of the count's tasks
// (the same results: they never depend on the split). set_num_threads(4096)
// on 2 cores started thousands of threads, and where the system refused
// them libgomp ended the process ("Thread creation failed").
int team_cap();
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
// True in a process forked after its parent ran a team: every count is 1 there
// (GNU OpenMP's pool did not survive the fork), see threads.cpp.
bool forked_after_team();

// Busy cores. A team member that joins a team long after it was asked for
// means another runnable thread holds its core: another process, or a
// library's spinning threads (NumPy's OpenBLAS spins for about 0.1 s after
// each of its calls). Every team then waits for that member's next time
// slice, which is far longer than a small product (BENCHMARKS.md,
// "Measurements behind the code": kLateTeamNs). So after a team
// started that late, threads_for() answers 1 for a while, then tries again.
// Results do not depend on the thread count, so this changes speed only.
// The monotonic clock, in nanoseconds.
int64_t team_clock_ns();
// How late (ns) the last member of a team joined it; called by run_team.
void note_team_start(int64_t delay_ns);
// Teams started late so far in this process, and whether threads_for() is
// answering 1 now because of one (for tests and diagnostics).
int64_t late_team_count();
bool teams_paused();

// Teams of more than one thread the calling thread has asked for so far
// (run_team): a caller compares two readings to learn whether the work
// between them was split across cores (optimizer_step's `spread`).
inline thread_local int64_t t_teams_asked = 0;
inline int64_t teams_asked_here() { return t_teams_asked; }

// task(i) for every i in [0, nt), one per member of a team of nt threads
// (a smaller team from OpenMP runs several each), timing how late the
// members join. The one way the kernels start threads. nt <= 1 runs task(0)
// with no OpenMP region at all: libgomp runs even a one-thread team through
// its barrier, two futex system calls per region, which at batch size 1 cost
// more than the product itself.
template <class F>
inline void run_team(int nt, F&& task) {
    if (nt <= 1) {
        task(0);
        return;
    }
    ++t_teams_asked;
    if (forked_after_team()) {  // no team in a forked child (threads.cpp), whatever count a caller passes
        for (int i = 0; i < nt; ++i) task(i);
        return;
    }
#ifdef _OPENMP
    const int64_t t0 = team_clock_ns();
    std::atomic<int64_t> late{0};
#pragma omp parallel num_threads(nt < team_cap() ? nt : team_cap())
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        if (t != 0) {
            const int64_t d = team_clock_ns() - t0;
            int64_t prev = late.load(std::memory_order_relaxed);
            while (d > prev && !late.compare_exchange_weak(prev, d, std::memory_order_relaxed)) {
            }
        }
        for (int i = t; i < nt; i += team) task(i);
    }
    note_team_start(late.load(std::memory_order_relaxed));
#else
    for (int i = 0; i < nt; ++i) task(i);
#endif
}

// Column sums (bias and prelu gradients) are bound by memory bandwidth, not
// by the core, so they split only very large inputs (BENCHMARKS.md,
// "Measurements behind the code": kColumnSumMinWork).
inline constexpr double kColumnSumMinWork = 4.0e6;

}  // namespace dnnfast

namespace dnnfast {

// for i in [0, n): f(i), split statically over nt threads. With nt <= 1 it is
// a plain loop: no OpenMP region at all, which matters at batch size 1 where
// a region's fork/join would cost more than the work.
template <class F>
inline void parallel_for(size_t n, int nt, F&& f) {
    if (nt <= 1 || n < 2) {
        for (size_t i = 0; i < n; ++i) f(i);
        return;
    }
    run_team(nt, [&](int t) {
        const size_t end = n * size_t(t + 1) / size_t(nt);
        for (size_t i = n * size_t(t) / size_t(nt); i < end; ++i) f(i);
    });
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
    run_team(nt, [&](int t) { f(n * size_t(t) / size_t(nt), n * size_t(t + 1) / size_t(nt)); });
}

}  // namespace dnnfast
