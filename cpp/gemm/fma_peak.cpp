// FMA-peak probe (see fma_peak.hpp): calibrates an iteration count to last
// about `seconds`, then times all threads running it together.
#include "gemm/fma_peak.hpp"

#include <algorithm>
#include <chrono>

#include "gemm/gemm_kernels.hpp"
#include "threads.hpp"

namespace dnnfast {

namespace {

template <class T>
double peak(int threads, double seconds) {
    const KernelsFor<T>& kr = active_kernels().get<T>();
    using clock = std::chrono::steady_clock;
    volatile double sink = 0;
    // Calibrate: double the count until one run takes >= 20 ms.
    long iters = 1 << 16;
    double dt = 0;
    for (;;) {
        const auto t0 = clock::now();
        sink = sink + kr.fma_loop(iters);
        dt = std::chrono::duration<double>(clock::now() - t0).count();
        if (dt >= 0.02 || iters > (1L << 40)) break;
        iters *= 2;
    }
    iters = std::max(1L, long(double(iters) * seconds / 3 / dt));
    threads = forked_after_team() ? 1 : std::max(1, threads);  // no team in a forked child: threads.cpp
    if (threads > 1) note_team_started();
    // Best of three timed runs: the machine may be shared, and the peak is
    // what the FMA units can do, not what a neighbour leaves over.
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        int ran = 0;  // threads that actually ran (1 without OpenMP)
        const auto t0 = clock::now();
#pragma omp parallel num_threads(threads)
        {
            const double s = kr.fma_loop(iters);
#pragma omp critical
            {
                sink = sink + s;
                ++ran;
            }
        }
        const double t = std::chrono::duration<double>(clock::now() - t0).count();
        best = std::max(best, double(iters) * double(kr.fma_flops_per_iter) * ran / t * 1e-9);
    }
    return best;
}

}  // namespace

double fma_peak_gflops(bool dtype_double, int threads, double seconds) {
    return dtype_double ? peak<double>(threads, seconds) : peak<float>(threads, seconds);
}

}  // namespace dnnfast
