// GEMM blocking and tile-shape sweep: the five loops (gemm_blocked) run with
// kernel tables built here from the same template (gemm_simd.hpp) but other
// MR x NR tiles and MC / KC / NC blockings, on n^3 float and double squares
// and on the products of one training step of the benchmark's W1 (batch 64)
// and W3 (batch 256) networks, interleaved round-robin, median GFLOP/s and %
// of the measured FMA peak. For choosing a table's blocking on a new
// machine; not part of the package.
//
//   tools/gemm_sweep.sh [avx2|avx512] [THREADS] [ROUNDS]
//
// Built with -DSWEEP_AVX512 the variants use 512-bit vectors (run only on a
// CPU with AVX-512F), else 256-bit AVX2 + FMA. Every product's C[5][7] is
// checked against a float64 dot product.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gemm/fma_peak.hpp"
#include "gemm/gemm_internal.hpp"
#include "threads.hpp"

// The kernel template in the same ISA namespace as the package's own copy.
#ifdef SWEEP_AVX512
#define DNNFAST_KERNEL_NS isa_avx512
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_avx512.hpp"
#else
#define DNNFAST_KERNEL_NS isa_avx2
#include "gemm/gemm_simd.hpp"
#include "gemm/ops_avx2.hpp"
#endif

using namespace dnnfast;
using namespace dnnfast::DNNFAST_KERNEL_NS;

namespace {

// A product C = op(A) op(B), M x N x K.
struct Product {
    size_t M, N, K;
    Trans ta, tb;
};

// Every product of one SGD step of a layer-width list at batch `n`: A W and
// A^T dZ per layer, dZ W^T from the second layer on (dA of the input is
// never formed).
std::vector<Product> step_products(std::vector<size_t> sizes, size_t n) {
    std::vector<Product> out;
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
        const size_t in = sizes[l], o = sizes[l + 1];
        out.push_back({n, o, in, Trans::N, Trans::N});
        out.push_back({in, o, n, Trans::T, Trans::N});
        if (l > 0) out.push_back({n, in, o, Trans::N, Trans::T});
    }
    return out;
}

struct Case {
    const char* name;
    std::vector<Product> products;
};

const std::vector<Case>& cases() {
    static const std::vector<Case> c = {
        {"512^3", {{512, 512, 512, Trans::N, Trans::N}}},
        {"1024^3", {{1024, 1024, 1024, Trans::N, Trans::N}}},
        {"2048^3", {{2048, 2048, 2048, Trans::N, Trans::N}}},
        {"W1 step", step_products({784, 256, 128, 10}, 64)},
        {"W3 step", step_products({784, 1024, 1024, 10}, 256)},
    };
    return c;
}

// "MRxNR mcMC kcKC (now)" of a table's blocking.
template <class T>
std::string now_label(const KernelsFor<T>& k) {
    return std::to_string(k.mr) + "x" + std::to_string(k.nr) + " mc" + std::to_string(k.mc) + " kc" +
           std::to_string(k.kc) + " (now)";
}

template <class T>
struct Variant {
    std::string name;
    KernelsFor<T> k;
    std::vector<std::vector<double>> gflops;
};

// Operands of every product of a case, filled once (normal values).
template <class T>
struct CaseData {
    std::vector<std::vector<T>> A, B, C;
    explicit CaseData(const Case& c) {
        std::mt19937 gen(1);
        std::normal_distribution<double> d;
        for (const Product& p : c.products) {
            A.emplace_back(p.M * p.K);
            B.emplace_back(p.K * p.N);
            C.emplace_back(p.M * p.N);
            for (T& x : A.back()) x = T(d(gen));
            for (T& x : B.back()) x = T(d(gen));
        }
    }
};

template <class T>
void run_case(const KernelsFor<T>& kr, const Case& c, CaseData<T>& o) {
    for (size_t i = 0; i < c.products.size(); ++i) {
        const Product& p = c.products[i];
        const size_t lda = p.ta == Trans::N ? p.K : p.M, ldb = p.tb == Trans::N ? p.N : p.K;
        gemm_blocked<T>(kr, p.ta, p.tb, p.M, p.N, p.K, T(1), o.A[i].data(), lda, o.B[i].data(), ldb, T(0),
                        o.C[i].data(), p.N, nullptr);
    }
}

// C[5][7] of the case's first product against a float64 dot product.
template <class T>
void check(const Case& c, const CaseData<T>& o) {
    const Product& p = c.products[0];
    double ref = 0;
    for (size_t k = 0; k < p.K; ++k) ref += double(o.A[0][5 * p.K + k]) * double(o.B[0][k * p.N + 7]);
    if (std::abs(ref - double(o.C[0][5 * p.N + 7])) > (sizeof(T) == 4 ? 1e-4 : 1e-10) * double(p.K)) {
        std::fprintf(stderr, "%s: wrong product: C[5][7] = %g, expected %g\n", c.name, double(o.C[0][5 * p.N + 7]),
                     ref);
        std::exit(1);
    }
}

template <class T>
double time_case(const KernelsFor<T>& kr, const Case& c, CaseData<T>& o) {
    double flops = 0;
    for (const Product& p : c.products) flops += 2.0 * double(p.M) * double(p.N) * double(p.K);
    run_case(kr, c, o);  // warm: pages, packing buffers, thread pool
    check(c, o);
    std::vector<double> ts;
    const auto start = std::chrono::steady_clock::now();
    while (ts.size() < 3 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 0.25) {
        const auto t0 = std::chrono::steady_clock::now();
        run_case(kr, c, o);
        ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ts.begin(), ts.end());
    return flops / ts[ts.size() / 2] / 1e9;
}

template <class T>
void sweep(std::vector<Variant<T>>& variants, int rounds, double peak) {
    const std::vector<Case>& cs = cases();
    std::vector<CaseData<T>> ops;
    for (const Case& c : cs) ops.emplace_back(c);
    for (auto& v : variants) v.gflops.assign(cs.size(), {});
    for (int r = 0; r < rounds; ++r)
        for (auto& v : variants)
            for (size_t i = 0; i < cs.size(); ++i) v.gflops[i].push_back(time_case<T>(v.k, cs[i], ops[i]));
    for (auto& v : variants) {
        std::printf("%-7s %-24s", sizeof(T) == 4 ? "float" : "double", v.name.c_str());
        for (size_t i = 0; i < cs.size(); ++i) {
            std::vector<double> g = v.gflops[i];
            std::sort(g.begin(), g.end());
            const double m = g[g.size() / 2];
            std::printf("  %s %6.1f (%2.0f%%)", cs[i].name, m, 100 * m / peak);
        }
        std::printf("\n");
    }
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    if (threads < 1 || rounds < 1) {
        std::fprintf(stderr, "usage: %s [THREADS >= 1] [ROUNDS >= 1]\n", argv[0]);
        return 2;
    }
    set_num_threads(threads);
    // The first row of each sweep is the package's own table for this
    // instruction set, as gemm_kernels_*.cpp sets it, so it cannot go stale;
    // the peak is measured with the same table.
#ifdef SWEEP_AVX512
    set_active_kernels("avx512");
#else
    set_active_kernels("avx2");
#endif
    const KernelSet& now = active_kernels();
    double peak_f = 0, peak_d = 0;
    for (int i = 0; i < 3; ++i) {  // a peak is a maximum
        peak_f = std::max(peak_f, fma_peak_gflops(false, threads));
        peak_d = std::max(peak_d, fma_peak_gflops(true, threads));
    }
    std::printf("%d thread(s), %d rounds; FMA peak (%s) float %.1f, double %.1f GFLOP/s; median GFLOP/s (%% of peak)\n",
                threads, rounds, active_kernels().label, peak_f, peak_d);
#ifdef SWEEP_AVX512
    std::vector<Variant<float>> vf = {
        {now_label(now.f32), now.f32},
        {"14x32 mc224 kc192", make_kernels<float, OpsF, 14, 2>(224, 192, 2048)},
        {"14x32 mc448 kc256", make_kernels<float, OpsF, 14, 2>(448, 256, 4096)},
        {"14x32 mc840 kc384", make_kernels<float, OpsF, 14, 2>(840, 384, 4096)},
        {"12x32 mc480 kc384", make_kernels<float, OpsF, 12, 2>(480, 384, 3072)},
        {"8x48 mc480 kc256", make_kernels<float, OpsF, 8, 3>(480, 256, 3072)},
        {"6x64 mc480 kc256", make_kernels<float, OpsF, 6, 4>(480, 256, 3072)},
    };
    std::vector<Variant<double>> vd = {
        {now_label(now.f64), now.f64},
        {"14x16 mc112 kc192", make_kernels<double, OpsD, 14, 2>(112, 192, 2048)},
        {"14x16 mc224 kc256", make_kernels<double, OpsD, 14, 2>(224, 256, 4096)},
        {"12x16 mc480 kc384", make_kernels<double, OpsD, 12, 2>(480, 384, 3072)},
        {"8x24 mc240 kc256", make_kernels<double, OpsD, 8, 3>(240, 256, 3072)},
    };
#else
    std::vector<Variant<float>> vf = {
        {now_label(now.f32), now.f32},
        {"6x16 mc240 kc256", make_kernels<float, OpsF, 6, 2>(240, 256, 2048)},
        {"4x24 mc120 kc384", make_kernels<float, OpsF, 4, 3>(120, 384, 2048)},
    };
    std::vector<Variant<double>> vd = {
        {now_label(now.f64), now.f64},
        {"6x8 mc96 kc512", make_kernels<double, OpsD, 6, 2>(96, 512, 2048)},
        {"4x12 mc120 kc256", make_kernels<double, OpsD, 4, 3>(120, 256, 2048)},
    };
#endif
    sweep(vf, rounds, peak_f);
    sweep(vd, rounds, peak_d);
    return 0;
}
