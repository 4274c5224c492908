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
//
// A weight matrix kept packed between products (PackedB, packed_b.hpp) runs
// the same loops without packing B (gemm_packed_b), and takes its update in
// the packed layout, as the C of a product per slice of its rows
// (gemm_into_packed): same loops, same bits.
#include <algorithm>
#include <cmath>

#include "gemm/gemm_internal.hpp"
#include "gemm/gemm_pack.hpp"
#include "gemm/packed_b.hpp"
#include "threads.hpp"

namespace dnnfast {

namespace {

// Multiply-adds per thread below which a second thread costs more than it
// saves (fork/join, and each thread packing its own panels): the break-even
// of one against two threads on small squares. threads_for() asks for 2x
// this before adding a thread (BENCHMARKS.md, "Measurements behind the
// code": kMinWorkPerThread).
constexpr double kMinWorkPerThread = 1.0e5;

// Row micro-panels of a block that may read one op(B) = B panel in place
// instead of packing it (five_loops): up to this many, the panel is still in
// L1 for the later row panels and skipping the pack gains; from 6 on, the
// AVX2 and generic float64 tiles start to lose (BENCHMARKS.md, "Measurements
// behind the code": kBInPlacePanels).
constexpr size_t kBInPlacePanels = 5;
// Where the 512-bit FMAs run at full width (not the Zen 4's halves) and A is
// read in place too (float64's 14-row tiles, op(A) = A^T: a_with_b in
// five_loops), up to this many row panels, for a B at most
// kBInPlaceWideMaxPanels NR wide: wider B lost (BENCHMARKS.md,
// "Measurements behind the code": kBInPlacePanelsWide).
constexpr size_t kBInPlacePanelsWide = 12;
constexpr size_t kBInPlaceWideMaxPanels = 8;

// Where the five loops find op(B) and put C. By default op(B) is packed
// here, slice by slice, and C(i, j) is at C[i * rsc + j * csc]. Prepacked:
// op(B) is a whole PackedB (the slice at row pc begins at b_packed + pc *
// b_npad). c_panel != 0: C is itself in the PackedB layout (rsc = NR, csc =
// 1), each NR-wide column panel c_panel elements after the one before it.
// Swapped: the problem is C^T, and the epilogue gets blocks of the caller's
// C (rows and columns exchanged).
template <class T>
struct Operands {
    const T* b_packed = nullptr;
    size_t b_npad = 0;
    size_t c_panel = 0;
    bool swapped = false;
    bool a_in_place = false;
};

// Whether op(A) = A^T may be read where it lies (the comment in five_loops):
// the MR values of one k, contiguous in A, span more than a cache line, and
// A's rows are not a multiple of 4 KiB apart.
template <class T>
bool a_t_in_place(size_t MR, size_t lda) {
    return MR * sizeof(T) > 64 && lda * sizeof(T) % 4096 != 0;
}

template <class T>
void five_loops(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t i_begin, size_t i_end,
                size_t j_begin, size_t j_end, size_t K, T alpha, const T* A, size_t lda,
                const T* B, size_t ldb, T beta, T* C, size_t rsc, size_t csc, const Operands<T>& io,
                const Epilogue<T>* ep) {
    const size_t MR = kr.mr, NR = kr.nr, MC = kr.mc, KC = kr.kc, NC = kr.nc;
    const bool swapped = io.swapped;
    // Few rows (dW = A^T dZ of an input with a few dozen features, or a
    // swapped thin product's 10 rows): each NR-wide panel of op(B) = B serves
    // at most kBInPlacePanels row micro-panels, so it is read where it lies
    // instead of being packed first (only the column edge is packed), and
    // the row panels after the first find it in L1. Not where A would itself
    // be read in place (N <= 4 NR: one row panel only, as A's reads then
    // cost more than the pack saved), nor where B's rows are a multiple of
    // 4 KiB apart (every k in the same L1 set, so the panel does not stay
    // in L1).
    // The rows of A are then packed, which the in-place B kernel needs.
    // Same FMA chains, same bits.
    //
    // With B read in place and op(A) = A^T, A is read in place too: the MR
    // values of one k lie contiguous in A as in a packed micro-panel, so
    // the pack only copied them. Only where those MR values span more than
    // a cache line (float64 on the 14-row tiles): narrower, each line of A
    // is shared by two or more row panels and fetched again for each, which
    // costs more than the pack saves (BENCHMARKS.md, "Measurements behind
    // the code": five_loops). Not where A's rows are a multiple of 4 KiB
    // apart (as B above). Where both go in place on full-width AVX-512 and B
    // is at most kBInPlaceWideMaxPanels NR wide, up to kBInPlacePanelsWide
    // row panels.
    const bool a_with_b = ta == Trans::T && a_t_in_place<T>(MR, lda);
    const bool wide = a_with_b && j_end - j_begin <= kBInPlaceWideMaxPanels * NR && !fma512_in_halves();
    const size_t rows = i_end - i_begin;
    const bool b_in_place = tb == Trans::N && !io.b_packed &&
                            (rows <= MR || (rows <= (wide ? kBInPlacePanelsWide : kBInPlacePanels) * MR &&
                                            !io.a_in_place && ldb * sizeof(T) % 4096 != 0));
    const bool a_in_place = io.a_in_place && !b_in_place;
    const bool ab_in_place = b_in_place && a_with_b;
    // A relu layer's epilogue applied by the micro-kernel as it stores the
    // last slice's tiles (Epilogue::relu_bias / relu_mask): C in rows, not swapped.
    const bool in_kernel = kr.fused_relu && ep && !swapped && !io.c_panel && csc == 1;
    const T* const relu_bias = in_kernel ? ep->relu_bias : nullptr;
    const T* const relu_mask = in_kernel && !relu_bias ? ep->relu_mask : nullptr;
    // Element (i, k) of op(A) in place.
    const size_t a_rs = ta == Trans::N ? lda : 1, a_ks = ta == Trans::N ? 1 : lda;
    static thread_local PackBuffer<T> a_buf, b_buf;
    T* ap = a_in_place || ab_in_place ? nullptr : a_buf.get(MC * KC);
    T* const b_own = io.b_packed ? nullptr : b_buf.get(KC * NC);
    const T* bp = b_own;
    const size_t KS = k_slice_depth(K, KC);
    // jc: NC-wide column panels of C, so the packed KC x NC slice of B stays in L3.
    for (size_t jc = j_begin; jc < j_end; jc += NC) {
        const size_t nc = std::min(NC, j_end - jc);
        // pc: KC-deep slices of the K sum, so one B micro-panel (KC x NR) fits in L1.
        for (size_t pc = 0; pc < K; pc += KS) {
            const size_t kc = std::min(KS, K - pc);
            const T beta_p = pc == 0 ? beta : T(1);  // later slices accumulate
            const bool last = pc + kc == K;
            // jc is a multiple of NR: its panel starts jc * kc into the slice.
            const size_t n_full = b_in_place ? nc / NR * NR : 0;  // columns read in place
            if (io.b_packed)
                bp = io.b_packed + pc * io.b_npad + jc * kc;
            else if (n_full < nc)
                gemm_pack_b(tb, B, ldb, pc, jc + n_full, kc, nc - n_full, NR, b_own, kr.transpose);
            // ic: MC-tall row blocks of A, packed once per slice and kept in L2 (or read in place).
            for (size_t ic = i_begin; ic < i_end; ic += MC) {
                const size_t mc = std::min(MC, i_end - ic);
                if (!a_in_place && !ab_in_place) gemm_pack_a(ta, A, lda, ic, pc, mc, kc, MR, ap, kr.transpose);
                // jr: NR-wide micro-panels of the packed B slice.
                for (size_t jr = 0; jr < nc; jr += NR) {
                    const size_t nr = std::min(NR, nc - jr);
                    T* c = C + ic * rsc + (io.c_panel ? (jc + jr) / NR * io.c_panel : (jc + jr) * csc);
                    const T* rb = last && relu_bias ? relu_bias + jc + jr : nullptr;
                    const T* rm = last && relu_mask ? relu_mask + (c - C) : nullptr;  // laid out as C
                    // ir: MR-tall micro-panels of the A block, one register tile each.
                    for (size_t ir = 0; ir < mc; ir += MR) {
                        const T* rmi = rm ? rm + ir * rsc : nullptr;
                        if (jr < n_full && ab_in_place)
                            kr.micro_ab(kc, A + (ic + ir) * a_rs + pc * a_ks, a_rs, a_ks, B + pc * ldb + jc + jr,
                                        ldb, alpha, beta_p, c + ir * rsc, rsc, csc, std::min(MR, mc - ir), nr, rb,
                                        rmi, rsc);
                        else if (jr < n_full)
                            kr.micro_b(kc, ap + ir * kc, B + pc * ldb + jc + jr, ldb, alpha, beta_p, c + ir * rsc,
                                       rsc, csc, std::min(MR, mc - ir), nr, rb, rmi, rsc);
                        else if (a_in_place || ab_in_place)
                            kr.micro_a(kc, A + (ic + ir) * a_rs + pc * a_ks, a_rs, a_ks, bp + (jr - n_full) * kc, alpha,
                                       beta_p, c + ir * rsc, rsc, csc, std::min(MR, mc - ir), nr, rb, rmi, rsc);
                        else
                            kr.micro(kc, ap + ir * kc, bp + (jr - n_full) * kc, alpha, beta_p, c + ir * rsc, rsc,
                                     csc, std::min(MR, mc - ir), nr, rb, rmi, rsc);
                    }
                    // The mc x nr strip is final after the last slice and still in cache.
                    if (last && ep && !rb && !rm) {
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
void thread_grid(size_t M, size_t N, size_t K, size_t MR, size_t NR, size_t NC, bool b_prepacked, int nt,
                 int& tm, int& tn) {
    double best = INFINITY;
    tm = nt;
    tn = 1;
    for (int r = 1; r <= nt; ++r) {
        if (nt % r) continue;
        const int c = nt / r;
        const double mt = double((M + MR - 1) / MR + r - 1) / r * MR;  // rows of the largest part
        const double ntl = double((N + NR - 1) / NR + c - 1) / c * NR;
        const double kernel = mt * ntl * double(K) / double(NR);
        const double pack = mt * double(K) * std::ceil(ntl / double(NC)) + (b_prepacked ? 0.0 : double(K) * ntl);
        if (kernel + pack < best) {
            best = kernel + pack;
            tm = r;
            tn = c;
        }
    }
}

// How a product is shared out: nt threads in a tm x tn grid of rectangles of
// C (aligned to MR x NR). A function of the shape and thread count only.
struct Grid {
    int nt = 1, tm = 1, tn = 1;
};

template <class T>
Grid plan_grid(const KernelsFor<T>& kr, size_t M, size_t N, size_t K, bool b_prepacked, int nt) {
    const size_t tiles = ((M + kr.mr - 1) / kr.mr) * ((N + kr.nr - 1) / kr.nr);
    Grid g;
    g.nt = int(std::max<size_t>(1, std::min<size_t>(size_t(nt), tiles)));
    if (g.nt > 1) thread_grid(M, N, K, kr.mr, kr.nr, kr.nc, b_prepacked, g.nt, g.tm, g.tn);
    return g;
}

// Part t of the product under grid g (nothing for t >= g.nt).
template <class T>
void grid_part(const Grid& g, int t, const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
               T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C, size_t rsc, size_t csc,
               const Operands<T>& io, const Epilogue<T>* ep) {
    if (t >= g.nt) return;
    size_t i0 = 0, i1 = M, j0 = 0, j1 = N;
    if (g.nt > 1) {
        split(M, kr.mr, g.tm, t / g.tn, i0, i1);
        split(N, kr.nr, g.tn, t % g.tn, j0, j1);
    }
    if (i0 < i1 && j0 < j1)
        five_loops(kr, ta, tb, i0, i1, j0, j1, K, alpha, A, lda, B, ldb, beta, C, rsc, csc, io, ep);
}

// The five loops on as many threads as the product is worth.
template <class T>
void run_blocked(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K, T alpha,
                 const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C, size_t rsc, size_t csc,
                 const Operands<T>& io, const Epilogue<T>* ep) {
    const int nt = threads_for(double(M) * double(N) * double(K), kMinWorkPerThread);
    const Grid g = plan_grid(kr, M, N, K, io.b_packed != nullptr, nt);
    run_team(g.nt, [&](int t) {
        grid_part(g, t, kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, rsc, csc, io, ep);
    });
}

// Whether the five loops read op(A) in place for a product N wide: a block
// of A used by at most 4 column micro-panels costs about as much to pack as
// those few passes over it.
template <class T>
bool reads_a_in_place(const KernelsFor<T>& kr, size_t N) {
    return N <= 4 * kr.nr;
}

// Kernel work per k of an M x N C, in element multiply-adds: the micro-tile
// runs a short row edge with exactly its rows (m < MR), and a column edge
// one vector wide when it fits in one (micro_tile), one and a half wide when
// it fits there and the table has half-width vectors (micro_tile_half_last),
// else NR wide.
double kernel_work(size_t M, size_t N, size_t nr, size_t lanes, bool half_edge) {
    const size_t edge = N % nr;
    const size_t cols = N / nr * nr +
                        (edge == 0                                   ? 0
                         : edge <= lanes                             ? lanes
                         : half_edge && edge <= lanes + lanes / 2 ? lanes + lanes / 2
                                                                     : nr);
    return double(M) * double(cols);
}

// Cost of the transposing copy that packs op(B)^T = A (stored M x K) as the
// swapped problem's B, per element, in the same units, fitted with the 1.15
// margin below to op(A) = A products timed both ways (BENCHMARKS.md,
// "Measurements behind the code": kTransposeCopyWork).
constexpr double kTransposeCopyWork = 2.0;

// Whether gemm_blocked computes C^T = op(B)^T op(A)^T instead: thin C (N
// below a few NR, e.g. the 1-10 outputs of a model) fills NR-wide tiles
// poorly, while its N rows make exact micro-tiles in the swapped problem.
// With op(A) = A the swapped B operand is A read across its rows, packed by
// a transposing copy, whose cost is counted; op(A) = A^T packs by rows.
//
// The unswapped problem's edge of one and a half vectors is counted as such
// only where its half-width FMAs cost half (fma512_in_halves: the Zen 4;
// elsewhere they cost as much as full ones), where the swapped problem
// would pay the transposing copy, and from kHalfEdgeMinRows rows: with
// fewer rows, or where the swapped B packs by rows (op(A) = A^T), counting
// it did not gain reliably over the full vector's cost (BENCHMARKS.md,
// "Measurements behind the code": kHalfEdgeMinRows).
constexpr size_t kHalfEdgeMinRows = 128;

// Where 512-bit FMAs run at full width (Intel Xeons, the Zen 5) the kernel
// does twice the Zen 4's work per cycle, while the transposing copy, which
// from a few dozen rows reads A from L2, does not speed up with it: there
// op(A) = A is not swapped from this many rows on; below, swapping is still
// better (BENCHMARKS.md, "Measurements behind the code": kFullWidthKeepRows).
constexpr size_t kFullWidthKeepRows = 48;

bool swaps(Trans ta, size_t M, size_t N, size_t nr, size_t lanes, bool half_edge) {
    if (N >= 4 * nr) return false;
    // (half_edge: a 512-bit table)
    if (ta == Trans::N && half_edge && M >= kFullWidthKeepRows && !fma512_in_halves()) return false;
    double swapped = kernel_work(N, M, nr, lanes, half_edge);
    if (ta == Trans::N) swapped += kTransposeCopyWork * double(M);
    const bool half_here = half_edge && ta == Trans::N && M >= kHalfEdgeMinRows && fma512_in_halves();
    return swapped * 1.15 < kernel_work(M, N, nr, lanes, half_here);
}

}  // namespace

size_t k_slice_depth(size_t K, size_t KC) {
    const size_t slices = (K + KC - 1) / KC;
    return std::min(KC, ((K + slices - 1) / slices + 7) / 8 * 8);
}

template <class T>
void gemm_blocked(const KernelsFor<T>& kr, Trans ta, Trans tb, size_t M, size_t N, size_t K,
                  T alpha, const T* A, size_t lda, const T* B, size_t ldb, T beta, T* C,
                  size_t ldc, const Epilogue<T>* ep) {
    // Thin C: solve C^T = op(B)^T op(A)^T when that costs clearly less (the
    // margin pays for the transposed, scalar tile stores) (BENCHMARKS.md,
    // "Measurements behind the code": gemm_blocked).
    size_t rsc = ldc, csc = 1;
    Operands<T> io;
    if (swaps(ta, M, N, kr.nr, kr.lanes, kr.half_edge)) {
        std::swap(M, N);
        std::swap(A, B);
        std::swap(lda, ldb);
        const Trans t = ta;
        ta = tb == Trans::N ? Trans::T : Trans::N;
        tb = t == Trans::N ? Trans::T : Trans::N;
        std::swap(rsc, csc);
        io.swapped = true;
    }
    io.a_in_place = reads_a_in_place(kr, N);
    run_blocked(kr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, rsc, csc, io, ep);
}

// Rows of the second product (the first layer's inputs + 1) up to which
// gemm_chain goes by strips. Each strip reads all of X^T again, where the
// five loops keep an MC-row block of it in L2 for every column panel, so
// with many rows the strips lose to the two calls (BENCHMARKS.md,
// "Measurements behind the code": kChainMaxRowPanels).
constexpr size_t kChainMaxRowPanels = 24;

template <class T>
void gemm_chain(size_t n, size_t N, size_t K, const T* A, size_t lda, const T* B, size_t ldb,
                const Epilogue<T>* ep, size_t M, const T* X, size_t ldx, T* C, size_t ldc, T* D) {
    const KernelsFor<T>& kr = active_kernels().get<T>();
    const size_t MR = kr.mr, NR = kr.nr;
    // Where gemm() sends both products to the five loops, each in one K
    // slice, every element of D and of C is one FMA chain from zero over its
    // K, whichever tiles compute it: then the strips give the two calls' bits.
    const bool strips = ep && ep->fn && takes_five_loops(n, N, K) && takes_five_loops(M, N, n) && K <= kr.kc &&
                        n <= kr.kc && M <= kChainMaxRowPanels * MR;
    if (!strips) {
        gemm<T>(Trans::N, Trans::T, n, N, K, T(1), A, lda, B, ldb, T(0), D, N, ep);
        gemm<T>(Trans::T, Trans::N, M, N, n, T(1), X, ldx, D, N, T(0), C, ldc);
        return;
    }
    // A packed once, for every strip. X^T read in place where the five loops
    // read op(A) = A^T so (a_with_b: MR values of one k span more than a
    // line; up to as many row panels), else packed once too.
    static thread_local PackBuffer<T> a_buf, x_buf;
    T* const ap = a_buf.get((n + MR - 1) / MR * MR * K);
    gemm_pack_a(Trans::N, A, lda, 0, 0, n, K, MR, ap, kr.transpose);
    const bool x_in_place = a_t_in_place<T>(MR, ldx) && M <= kBInPlacePanelsWide * MR;
    T* const xp = x_in_place ? nullptr : x_buf.get((M + MR - 1) / MR * MR * n);
    if (xp) gemm_pack_a(Trans::T, X, ldx, 0, 0, M, n, MR, xp, kr.transpose);
    // A relu layer's mask applied by the kernel as it stores each tile (its
    // rows N apart, the strip's NR), as the five loops apply it.
    const T* const relu_mask = kr.fused_relu ? ep->relu_mask : nullptr;
    const size_t n_strips = (N + NR - 1) / NR;
    const int nt = int(std::min<size_t>(n_strips, size_t(threads_for(double(n) * double(N) * double(K + M),
                                                                            kMinWorkPerThread))));
    run_team(nt, [&](int t) {
        size_t s0 = 0, s1 = n_strips;
        split(n_strips, 1, nt, t, s0, s1);
        // The strip of D, n x NR: laid out as a packed micro-panel of the
        // second product's op(B) (NR values of one k adjacent).
        static thread_local PackBuffer<T> b_buf, d_buf;
        T* const bp = b_buf.get(K * NR);
        T* const dp = d_buf.get(n * NR);
        for (size_t s = s0; s < s1; ++s) {
            const size_t j0 = s * NR, nr = std::min(NR, N - j0);
            // A partial strip's lanes past nr are computed by the second
            // product and never stored: zeros, not stale bits.
            if (nr < NR) std::fill(dp, dp + n * NR, T(0));
            gemm_pack_b(Trans::T, B, ldb, 0, j0, K, nr, NR, bp, kr.transpose);
            for (size_t ir = 0; ir < n; ir += MR) {
                const size_t m = std::min(MR, n - ir);
                kr.micro(K, ap + ir * K, bp, T(1), T(0), dp + ir * NR, NR, 1, m, nr, nullptr,
                         relu_mask ? relu_mask + ir * N + j0 : nullptr, N);
            }
            // The whole strip at once (still in L1): one call, not one a tile.
            if (!relu_mask) ep->fn(ep->ctx, dp, NR, 0, j0, n, nr);
            for (size_t ir = 0; ir < M; ir += MR) {
                const size_t m = std::min(MR, M - ir);
                T* const c = C + ir * ldc + j0;
                if (xp)
                    kr.micro(n, xp + ir * n, dp, T(1), T(0), c, ldc, 1, m, nr, nullptr, nullptr, 0);
                else
                    kr.micro_a(n, X + ir, 1, ldx, dp, T(1), T(0), c, ldc, 1, m, nr, nullptr, nullptr, 0);
            }
        }
    });
}

template <class T>
bool packed_b_matches_gemm(size_t M, size_t K, size_t N) {
    // gemm() takes the blocked path for K > 1 and M > kSmallM; the update
    // (K x N from M rows, op(A) = A^T) is swapped only for N < 4 NR.
    const KernelsFor<T>& kr = active_kernels().get<T>();
    return M > kSmallM && K > kSmallM && N >= 4 * kr.nr;
}

template <class T>
bool gemm_one_chain_with_spare_row(size_t M, size_t N, size_t K) {
    const KernelsFor<T>& kr = active_kernels().get<T>();
    return K <= kr.kc && N > kSmallN && M % kr.mr != 0;
}

template <class T>
void gemm_packed_b(Trans ta, size_t M, T alpha, const T* A, size_t lda, const PackedB<T>& B, T beta, T* C,
                   size_t ldc, const Epilogue<T>* ep) {
    const size_t K = B.rows(), N = B.cols();
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == T(0)) {  // no product to add: gemm() scales C without reading B
        gemm<T>(ta, Trans::N, M, N, K, alpha, A, lda, nullptr, N, beta, C, ldc, ep);
        return;
    }
    if (ep && !ep->fn) ep = nullptr;
    const KernelsFor<T>& kr = B.kernels();
    Operands<T> io;
    io.b_packed = B.data();
    io.b_npad = B.npad();
    io.a_in_place = reads_a_in_place(kr, N);
    run_blocked<T>(kr, ta, Trans::N, M, N, K, alpha, A, lda, nullptr, 0, beta, C, ldc, 1, io, ep);
}

template <class T>
void gemm_into_packed(Trans ta, Trans tb, size_t K, T alpha, const T* A, size_t lda, const T* B, size_t ldb,
                      T beta, PackedB<T>& W) {
    const size_t M = W.rows(), N = W.cols();
    if (M == 0 || N == 0) return;
    const KernelsFor<T>& kr = W.kernels();
    const size_t NR = kr.nr, KS = W.depth();
    // Row i of op(A) starts at a_row * i.
    const size_t a_row = ta == Trans::N ? lda : 1;
    if (K == 0 || alpha == T(0)) {  // as gemm(): W := beta W (beta == 0 overwrites); padding included
        T* w = W.data();
        for (size_t e = 0, ne = M * W.npad(); e < ne; ++e) w[e] = beta == T(0) ? T(0) : beta * w[e];
        return;
    }
    // One product per slice of W's rows: within a slice, C(i, j) is at
    // i * NR + j % NR of the panel of column j, and panels are kc * NR apart.
    // The slices write disjoint rows, so one team does them all, each thread
    // its own part of each slice.
    const int nt = threads_for(double(M) * double(N) * double(K), kMinWorkPerThread);
    Operands<T> io;
    io.a_in_place = reads_a_in_place(kr, N);
    run_team(nt, [&](int t) {
        for (size_t p0 = 0; p0 < M; p0 += KS) {
            const size_t kc = std::min(KS, M - p0);
            Operands<T> sl = io;
            sl.c_panel = NR * kc;
            const Grid g = plan_grid(kr, kc, N, K, false, nt);
            grid_part<T>(g, t, kr, ta, tb, kc, N, K, alpha, A + p0 * a_row, lda, B, ldb, beta,
                         W.data() + p0 * W.npad(), NR, 1, sl, nullptr);
        }
    });
}

template void gemm_blocked<float>(const KernelsFor<float>&, Trans, Trans, size_t, size_t, size_t,
                                  float, const float*, size_t, const float*, size_t, float, float*,
                                  size_t, const Epilogue<float>*);
template void gemm_blocked<double>(const KernelsFor<double>&, Trans, Trans, size_t, size_t, size_t,
                                   double, const double*, size_t, const double*, size_t, double,
                                   double*, size_t, const Epilogue<double>*);

#define DNNFAST_PACKED_INSTANTIATE(T)                                                                     \
    template bool packed_b_matches_gemm<T>(size_t, size_t, size_t);                                      \
    template bool gemm_one_chain_with_spare_row<T>(size_t, size_t, size_t);                               \
    template void gemm_packed_b<T>(Trans, size_t, T, const T*, size_t, const PackedB<T>&, T, T*, size_t,   \
                                   const Epilogue<T>*);                                                   \
    template void gemm_into_packed<T>(Trans, Trans, size_t, T, const T*, size_t, const T*, size_t, T,     \
                                      PackedB<T>&);                                                       \
    template void gemm_chain<T>(size_t, size_t, size_t, const T*, size_t, const T*, size_t,               \
                                const Epilogue<T>*, size_t, const T*, size_t, T*, size_t, T*);
DNNFAST_PACKED_INSTANTIATE(float)
DNNFAST_PACKED_INSTANTIATE(double)

}  // namespace dnnfast
