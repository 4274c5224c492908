#include "threads.hpp"

#include <algorithm>
#include <atomic>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#define DNNFAST_FORK_GUARD 1
#endif

namespace dnnfast {

static std::atomic<int> g_num_threads{0};
static thread_local int t_num_threads = 0;
// Set once a kernel has asked for more than one thread (an OpenMP team).
static std::atomic<bool> g_team_started{false};

int get_num_threads() {
    if (t_num_threads > 0) return t_num_threads;
    const int n = g_num_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
#ifdef _OPENMP
    return std::max(1, omp_get_max_threads());
#else
    return 1;
#endif
}

void set_num_threads(int n) { g_num_threads.store(n < 0 ? 0 : n, std::memory_order_relaxed); }

int set_local_num_threads(int n) {
    const int prev = t_num_threads;
    t_num_threads = n < 0 ? 0 : n;
    return prev;
}

int threads_for(double work, double min_work_per_thread) {
    const int max_t = get_num_threads();
    if (max_t <= 1 || work < 2 * min_work_per_thread) return 1;
    const double t = work / min_work_per_thread;
    const int nt = t >= max_t ? max_t : std::max(1, static_cast<int>(t));
    if (nt > 1) note_team_started();
    return nt;
}

void note_team_started() {
    if (!g_team_started.load(std::memory_order_relaxed)) g_team_started.store(true, std::memory_order_relaxed);
}

#ifdef DNNFAST_FORK_GUARD
namespace {

// GNU OpenMP cannot start a team in a process forked after its parent ran
// one: the child waits for ever for pool threads that fork did not copy. So a
// child forked (os.fork, multiprocessing's 'fork') after dnnfast has used
// threads runs on one thread, which gives the same results, instead of
// hanging. Children that must use threads: the 'spawn' or 'forkserver' start
// methods.
void one_thread_after_fork() {
    if (!g_team_started.load(std::memory_order_relaxed)) return;
    g_num_threads.store(1, std::memory_order_relaxed);
    t_num_threads = 0;
}

const int fork_guard = pthread_atfork(nullptr, nullptr, one_thread_after_fork);

}  // namespace
#endif

}  // namespace dnnfast
