#include "threads.hpp"

#include <algorithm>
#include <atomic>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dnnfast {

static std::atomic<int> g_num_threads{0};
static thread_local int t_num_threads = 0;

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
    return t >= max_t ? max_t : std::max(1, static_cast<int>(t));
}

}  // namespace dnnfast
