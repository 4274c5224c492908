// The five-loop algorithm of GotoBLAS/BLIS: C is cut into NC-wide column
// panels (jc), K into KC-deep slices (pc, B slice packed once and reused from
// L3/L2), rows into MC-tall blocks (ic, A block packed and kept in L2), and
// each block is swept by MR x NR micro-tiles (jr, ir) held in registers.
//
// Threads: C is split into a grid of rectangles aligned to MR x NR, and each
// thread runs the five loops on its own rectangle with its own packed
// buffers. No thread ever sums part of another's K range, and the pc slicing
// does not depend on the split, so results are bit-identical for any thread
// count.
//
// Thin C (N below a few NR, e.g. the 10 outputs of a classifier) wastes most
// of each NR-wide tile. With op(A) = A^T it is computed as C^T = op(B)^T
// op(A)^T, where the thin side meets the shorter MR (the kernel then stores
// its tiles transposed); with op(A) = A, A is read in place, unpacked, as it
// is whenever its block serves only a few column micro-panels. Neither choice
// changes any element's FMA chain.
#include <algorithm>
#include <cmath>

#include "gemm/gemm_internal.hpp"
#include "gemm/gemm_pack.hpp"
#include "threads.hpp"

namespace dnnfast {

namespace {

// Multiply-adds per thread below which a second thread costs more than it
// saves (fork/join, and each thread packing its own panels). Measured on the
// 2-core AMD EPYC dev machine, AVX2 float n^3 squares, best of 300, 1 vs 2
// threads: n=32 (3.3e4) 3 vs 3 us; n=40 (6.4e4) 4 vs 4-5 us; n=48 (1.1e5)
// 5 vs 4 us; n=64 (2.6e5) 9 vs 6-7 us; n=128 (2.1e6) 55 vs 30 us. Break-even
// near 1e5 in all; threads_for() asks for 2x this before adding a thread.
constexpr double kMinWorkPerThread = 1.0e5;

// C(i, j) is at C[i * rsc + j * csc]; swapped: the problem is C^T, and the
// epilogue gets blocks of the caller's C (rows and columns exchanged).
template <class T>
void five_loops(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t i_begin, size_t i_end,
                size_t j_begin, size_t j_end, size_t K, T alpha, const T* A, size_t lda,
                const T* B, size_t ldb, T beta, T* C, size_t rsc, size_t csc, bool swapped,
                bool a_in_place, const Epilogue<T>* ep) {
    const size_t MR = kr.mr, NR = kr.nr, MC = kr.mc, KC = kr.kc, NC = kr.nc;
    // Element (i, k) of op(A) in place.
    const size_t a_rs = ta == Trans::N ? lda : 1, a_ks = ta == Trans::N ? 1 : lda;
    static thread_local PackBuffer<T> a_buf, b_buf;
    T* ap = a_in_place ? nullptr : a_buf.get(MC * KC);
    T* bp = b_buf.get(KC * NC);
    // Equal slices of at most KC (K = 784 is 2 x 392, not 512 + 272): a short
    // last slice would pay a full C update for little work. Depends on K only.
    const size_t slices = (K + KC - 1) / KC;
    const size_t KS = std::min(KC, ((K + slices - 1) / slices + 7) / 8 * 8);
    // jc: NC-wide column panels of C, so the packed KC x NC slice of B stays in L3.
    for (size_t jc = j_begin; jc < j_end; jc += NC) {
        const size_t nc = std::min(NC, j_end - jc);
        // pc: KC-deep slices of the K sum, so one B micro-panel (KC x NR) fits in L1.
        for (size_t pc = 0; pc < K; pc += KS) {
            const size_t kc = std::min(KS, K - pc);
            const T beta_p = pc == 0 ? beta : T(1);  // later slices accumulate
            const bool last = pc + kc == K;
            gemm_pack_b(tb, B, ldb, pc, jc, kc, nc, NR, bp);
            // ic: MC-tall row blocks of A, packed once per slice and kept in L2 (or read in place).
            for (size_t ic = i_begin; ic < i_end; ic += MC) {
                const size_t mc = std::min(MC, i_end - ic);
                if (!a_in_place) gemm_pack_a(ta, A, lda, ic, pc, mc, kc, MR, ap);
                // jr: NR-wide micro-panels of the packed B slice.
                for (size_t jr = 0; jr < nc; jr += NR) {
                    const size_t nr = std::min(NR, nc - jr);
                    T* c = C + ic * rsc + (jc + jr) * csc;
                    // ir: MR-tall micro-panels of the A block, one register tile each.
                    for (size_t ir = 0; ir < mc; ir += MR) {
                        if (a_in_place)
                            kr.micro_a(kc, A + (ic + ir) * a_rs + pc * a_ks, a_rs, a_ks, bp + jr * kc, alpha,
                                       beta_p, c + ir * rsc, rsc, csc, std::min(MR, mc - ir), nr);
                        else
                            kr.micro(kc, ap + ir * kc, bp + jr * kc, alpha, beta_p, c + ir * rsc, rsc,
                                     csc, std::min(MR, mc - ir), nr);
                    }
                    // The mc x nr strip is final after the last slice and still in cache.
                    if (last && ep) {
                        if (swapped) ep->fn(ep->ctx, c, csc, jc + jr, ic, nr, mc);
                        else ep->fn(ep->ctx, c, rsc, ic, jc + jr, mc, nr);
                    }
                }
            }
        }
    }
}

// Rows/columns [begin, end) of part `p` of `parts`, in whole tiles of `tile`.
void split(size_t n, size_t tile, int parts, int p, size_t& begin, size_t& end) {
    const size_t tiles = (n + tile - 1) / tile;
    begin = std::min(n, tiles * size_t(p) / size_t(parts) * tile);
    end = std::min(n, tiles * size_t(p + 1) / size_t(parts) * tile);
}

// Chooses tm x tn = nt (rows x columns of the thread grid) minimising the
// largest thread's kernel time plus its packing, in multiply-add units: a
// packed element costs about one vector FMA's worth of kernel time.
void thread_grid(size_t M, size_t N, size_t K, size_t MR, size_t NR, size_t NC, int nt, int& tm,
                 int& tn) {
    double best = INFINITY;
    tm = nt;
    tn = 1;
    for (int r = 1; r <= nt; ++r) {
        if (nt % r) continue;
        const int c = nt / r;
        const double mt = double((M + MR - 1) / MR + r - 1) / r * MR;  // rows of the largest part
        const double ntl = double((N + NR - 1) / NR + c - 1) / c * NR;
        const double kernel = mt * ntl * double(K) / double(NR);
        const double pack = mt * double(K) * std::ceil(ntl / double(NC)) + double(K) * ntl;
        if (kernel + pack < best) {
            best = kernel + pack;
            tm = r;
            tn = c;
        }
    }
}

}  // namespace

// Fraction of the tile area a rows x cols problem uses with mr x nr tiles.
double tile_use(size_t rows, size_t cols, size_t mr, size_t nr) {
    return double(rows) * double(cols) /
           (double((rows + mr - 1) / mr * mr) * double((cols + nr - 1) / nr * nr));
}

template <class T>
void gemm_blocked(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep) {
    // Thin C (N below a few NR, e.g. the 10 outputs of a classifier).
    // op(A) = A^T: solve C^T = op(B)^T op(A)^T when that fills the tiles
    // clearly better (the margin pays for the transposed, scalar tile stores).
    // op(A) = A is not swapped: its rows would become a B operand packed by a
    // transposing copy; it is read in place below instead. Measured (median
    // time, alternating in one process, float32): 256 x 10 x 1024 1.23x
    // faster at 1 thread, 1.32x at 2; 64 x 10 x 128 1.03x / 1.07x.
    size_t rsc = ldc, csc = 1;
    bool swapped = false;
    if (ta == Trans::T && N < 4 * kr.nr &&
        tile_use(N, M, kr.mr, kr.nr) > 1.15 * tile_use(M, N, kr.mr, kr.nr)) {
        std::swap(M, N);
        std::swap(A, B);
        std::swap(lda, ldb);
        const Trans t = ta;
        ta = tb == Trans::N ? Trans::T : Trans::N;
        tb = t == Trans::N ? Trans::T : Trans::N;
        std::swap(rsc, csc);
        swapped = true;
    }
    // A block used by at most 4 column micro-panels is read where it lies:
    // packing it would cost about as much as those few passes over it.
    const bool a_in_place = N <= 4 * kr.nr;
    const size_t tiles = ((M + kr.mr - 1) / kr.mr) * ((N + kr.nr - 1) / kr.nr);
    int nt = threads_for(double(M) * double(N) * double(K), kMinWorkPerThread);
    nt = int(std::min<size_t>(size_t(nt), tiles));
    if (nt <= 1) {
        five_loops(kr, ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, rsc, csc, swapped, a_in_place, ep);
        return;
    }
    int tm, tn;
    thread_grid(M, N, K, kr.mr, kr.nr, kr.nc, nt, tm, tn);
    run_team(nt, [&](int t) {
        size_t i0, i1, j0, j1;
        split(M, kr.mr, tm, t / tn, i0, i1);
        split(N, kr.nr, tn, t % tn, j0, j1);
        if (i0 < i1 && j0 < j1)
            five_loops(kr, ta, tb, i0, i1, j0, j1, K, alpha, A, lda, B, ldb, beta, C, rsc, csc,
                       swapped, a_in_place, ep);
    });
}

template void gemm_blocked<float>(const KernelsFor<float>&, Trans, Trans, size_t, size_t, size_t,
                                  float, const float*, size_t, const float*, size_t, float, float*,
                                  size_t, const Epilogue<float>*);
template void gemm_blocked<double>(const KernelsFor<double>&, Trans, Trans, size_t, size_t, size_t,
                                   double, const double*, size_t, const double*, size_t, double,
                                   double*, size_t, const Epilogue<double>*);

}  // namespace dnnfast
