#include "threads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
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

// Set in a child forked after a team ran (see one_thread_after_fork below):
// from then on every count is 1, whatever set_num_threads or a per-call
// n_threads asks for.
static std::atomic<bool> g_forked_after_team{false};

int get_num_threads() {
    if (g_forked_after_team.load(std::memory_order_relaxed)) return 1;
    if (t_num_threads > 0) return t_num_threads;
    const int n = g_num_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
#ifdef _OPENMP
    return std::min(kMaxThreads, std::max(1, omp_get_max_threads()));
#else
    return 1;
#endif
}

int team_cap() {
    static const int cap = [] {
        int procs = 1;
#ifdef _OPENMP
        procs = std::max(1, omp_get_num_procs());
#endif
        return std::max(64, 4 * procs);
    }();
    return cap;
}

void set_num_threads(int n) { g_num_threads.store(n < 0 ? 0 : std::min(n, kMaxThreads), std::memory_order_relaxed); }

int set_local_num_threads(int n) {
    const int prev = t_num_threads;
    t_num_threads = n < 0 ? 0 : n;
    return prev;
}

namespace {

// A team member that joins more than kLateTeamNs after the team was asked
// for has waited for a core; threads_for() then answers 1 for kPauseNs.
// Without the pause every team waits for a time slice of the busy core (one
// held by, e.g., NumPy's spinning OpenBLAS thread), and the products run far
// below the one-thread speed; with it they run at that speed. Teams of
// healthy runs do not join as late as kLateTeamNs; a lower bound flagged
// some. The pause is shorter than OpenBLAS's spin (about 0.1 s): a long
// busy spell costs one late team per pause, and threads come back soon
// after the core is free. (BENCHMARKS.md, "Measurements behind the code":
// kLateTeamNs.)
constexpr int64_t kLateTeamNs = 1000000;
constexpr int64_t kPauseNs = 50000000;

std::atomic<int64_t> g_paused_until{0};
std::atomic<int64_t> g_late_teams{0};

}  // namespace

int64_t team_clock_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

void note_team_start(int64_t delay_ns) {
    if (delay_ns <= kLateTeamNs) return;
    g_late_teams.fetch_add(1, std::memory_order_relaxed);
    g_paused_until.store(team_clock_ns() + kPauseNs, std::memory_order_relaxed);
}

int64_t late_team_count() { return g_late_teams.load(std::memory_order_relaxed); }

bool forked_after_team() { return g_forked_after_team.load(std::memory_order_relaxed); }

bool teams_paused() {
    const int64_t until = g_paused_until.load(std::memory_order_relaxed);
    return until != 0 && team_clock_ns() < until;
}

int threads_for(double work, double min_work_per_thread) {
    const int max_t = get_num_threads();
    if (max_t <= 1 || work < 2 * min_work_per_thread) return 1;
    if (teams_paused()) return 1;
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
// threads runs every kernel on one thread, which gives the same results,
// instead of hanging -- for good: a later set_num_threads(n) or a per-call
// count (the estimators' n_threads) is accepted and changes nothing, and
// get_num_threads() says 1, the count the kernels use. (Only clearing the
// counts, as before, let the child's set_num_threads(2) start a team and
// hang.) Children that must use threads: the 'spawn' or 'forkserver' start
// methods.
void one_thread_after_fork() {
    if (!g_team_started.load(std::memory_order_relaxed)) return;
    g_forked_after_team.store(true, std::memory_order_relaxed);
    t_num_threads = 0;
}

const int fork_guard = pthread_atfork(nullptr, nullptr, one_thread_after_fork);

}  // namespace
#endif

}  // namespace dnnfast
