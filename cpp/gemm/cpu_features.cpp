// Run-time kernel choice: the widest instruction set this CPU supports, or the
// one named by DNNFAST_GEMM_KERNEL (generic | generic512 | avx2 | avx512) when
// the CPU supports it. Decided once, on first use.
//
// The rule for code built with instruction-set flags (CMakeLists.txt gives
// them to every file named *_avx2.cpp / *_avx512.cpp, in any directory, and
// compiles those files only for x86-64): the wheel must load and run on any
// x86-64 CPU, so no instruction from such a file may execute before the CPU
// check here has chosen it.
//  1. Nothing in an ISA file runs at load time: no dynamic initialiser. A
//     table of kernels is constexpr (constant-initialised data: function
//     pointers the loader relocates, no code), never built by a function call.
//  2. Every CPU reaches ISA code only through such a table, after the check;
//     functions every CPU calls (accessors, by_name below) live in files built
//     without ISA flags. Generic code names an ISA table only under
//     #ifdef DNNFAST_X86_KERNELS: on other CPUs the ISA files are not built.
//  3. Everything an ISA file defines is in namespace dnnfast::isa_<isa>
//     (isa_avx2, isa_avx512), with internal linkage (anonymous namespace)
//     except the tables. So no inline function, template instantiation or
//     COMDAT copy compiled with AVX can be shared with, and picked by the
//     linker for, generic code. Headers an ISA file includes keep their own
//     code in that namespace too (gemm_simd.hpp takes it as DNNFAST_KERNEL_NS,
//     ops_avx2.hpp / ops_avx512.hpp fix it), and ISA files call no
//     standard-library template that could be emitted out of line.
// The build puts every function of an isa_ namespace into its own section
// (.text.dnnfast_isa, cmake/isa_sections.ld), and .ci/check_isa.sh fails when
// an AVX/AVX2/AVX-512 instruction appears outside it or generic code calls
// into it directly; it also runs the package under qemu on CPUs without AVX
// and without AVX-512.
#include <atomic>
#include <cstdio>
#ifdef DNNFAST_X86_KERNELS
#include <cpuid.h>
#endif
#include <cstdlib>
#include <cstring>

#include "gemm/gemm_kernels.hpp"

// DNNFAST_X86_KERNELS: set by CMakeLists.txt when it compiles the
// *_avx2.cpp / *_avx512.cpp files (x86-64 targets only).
#if defined(DNNFAST_X86_KERNELS) && !(defined(__x86_64__) || defined(_M_X64))
#error "DNNFAST_X86_KERNELS is for x86-64 targets only"
#endif

namespace dnnfast {

#ifdef DNNFAST_X86_KERNELS
// Defined (constexpr) in gemm_kernels_avx2.cpp / gemm_kernels_avx512.cpp.
namespace isa_avx2 {
extern const KernelSet gemm_kernels;
}
namespace isa_avx512 {
extern const KernelSet gemm_kernels;
}
#endif

namespace {

#ifdef DNNFAST_X86_KERNELS
bool cpu_has_avx2_fma() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512() {
    __builtin_cpu_init();
    return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw");
}
#endif

bool always() { return true; }

// Every table, widest first, with the CPU test that must pass before any of
// its functions is called.
struct Entry {
    const KernelSet* set;
    bool (*supported)();
};
constexpr Entry kTables[] = {
#ifdef DNNFAST_X86_KERNELS
    {&isa_avx512::gemm_kernels, cpu_has_avx512},
    {&isa_avx2::gemm_kernels, cpu_has_avx2_fma},
#endif
    {&generic::gemm_kernels, always},
    {&generic::gemm_kernels512, always},  // slow: never the automatic choice
};

const KernelSet& best_kernels() {
    for (const Entry& e : kTables)
        if (e.set != &generic::gemm_kernels512 && e.supported()) return *e.set;
    return generic::gemm_kernels;
}

const Entry* by_name(const char* name) {
    if (!name) return nullptr;
    for (const Entry& e : kTables)
        if (!std::strcmp(name, e.set->name)) return &e;
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
    return *by_name(env)->set;
}

std::atomic<const KernelSet*> g_active{nullptr};

}  // namespace

bool kernels_supported(const char* name) {
    const Entry* e = by_name(name);
    return e && e->supported();
}

const KernelSet& active_kernels() {
    const KernelSet* k = g_active.load(std::memory_order_acquire);
    if (k) return *k;
    static const KernelSet& chosen = initial_kernels();  // thread-safe, once
    g_active.store(&chosen, std::memory_order_release);
    return chosen;
}

bool fma512_in_halves() {
#ifdef DNNFAST_X86_KERNELS  // (without the ISA files no table has half-width vectors)
    // AMD family 19h with AVX-512 is the Zen 4, which executes a 512-bit
    // FMA on both of its 256-bit FMA pipes (Zen 3, also 19h, has no
    // AVX-512; the Zen 5, family 1Ah, has full-width pipes).
    static const bool halves = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
        unsigned family = (a >> 8) & 0xf;
        if (family == 0xf) family += (a >> 20) & 0xff;
        __builtin_cpu_init();
        return __builtin_cpu_is("amd") && family == 0x19 && __builtin_cpu_supports("avx512f");
    }();
    return halves;
#else
    return false;
#endif
}

const char* set_active_kernels(const char* name) {
    const KernelSet* k = (name && kernels_supported(name)) ? by_name(name)->set : &best_kernels();
    g_active.store(k, std::memory_order_release);
    return k->name;
}

}  // namespace dnnfast
