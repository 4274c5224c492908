// Run-time kernel choice: the widest instruction set this CPU supports, or the
// one named by DNNFAST_GEMM_KERNEL (generic | generic512 | avx2 | avx512) when
// the CPU supports it. Decided once, on first use.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gemm/gemm_kernels.hpp"

namespace dnnfast {

namespace {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw");
#else
    return false;
#endif
}

const KernelSet& best_kernels() {
    if (cpu_has_avx512()) return kernels_avx512();
    if (cpu_has_avx2_fma()) return kernels_avx2();
    return kernels_generic();
}

const KernelSet* by_name(const char* name) {
    if (!name) return nullptr;
    if (!std::strcmp(name, "generic")) return &kernels_generic();
    if (!std::strcmp(name, "generic512")) return &kernels_generic512();
    if (!std::strcmp(name, "avx2")) return &kernels_avx2();
    if (!std::strcmp(name, "avx512")) return &kernels_avx512();
    return nullptr;
}

const KernelSet& initial_kernels() {
    const char* env = std::getenv("DNNFAST_GEMM_KERNEL");
    if (!env || !*env || !std::strcmp(env, "auto")) return best_kernels();
    if (!kernels_supported(env)) {
        std::fprintf(stderr,
                     "dnnfast: DNNFAST_GEMM_KERNEL=%s is unknown or not supported by this CPU; "
                     "using %s\n", env, best_kernels().name);
        return best_kernels();
    }
    return *by_name(env);
}

std::atomic<const KernelSet*> g_active{nullptr};

}  // namespace

bool kernels_supported(const char* name) {
    const KernelSet* k = by_name(name);
    if (!k) return false;
    if (k == &kernels_avx512()) return cpu_has_avx512();
    if (k == &kernels_avx2()) return cpu_has_avx2_fma();
    return true;  // generic, generic512: baseline instructions only
}

const KernelSet& active_kernels() {
    const KernelSet* k = g_active.load(std::memory_order_acquire);
    if (k) return *k;
    static const KernelSet& chosen = initial_kernels();  // thread-safe, once
    g_active.store(&chosen, std::memory_order_release);
    return chosen;
}

const char* set_active_kernels(const char* name) {
    const KernelSet* k = (name && kernels_supported(name)) ? by_name(name) : &best_kernels();
    g_active.store(k, std::memory_order_release);
    return k->name;
}

}  // namespace dnnfast
