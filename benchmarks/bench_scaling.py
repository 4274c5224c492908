"""Thread scaling of dnnfast beyond the two cores of the dev machine.

``python benchmarks/bench_scaling.py [--threads 1,2,4,8,16] [--repeats 5]``

For each thread count: the measured FMA peak (``_core.fma_peak_gflops``),
GEMM squares (float32, GFLOP/s and the fraction of that count's peak) and
one-epoch training of W1 and W3 (samples/s), with the speed-up over one
thread and the parallel efficiency (speed-up / threads). dnnfast only, in one
process: the thread counts are interleaved round-robin and the median of the
repeats is reported, so a spell of load on the machine is shared out over
them. Peers are compared by ``run.py`` (``--threads N`` takes any count).

The count of late thread teams (``_core.late_team_count``) is printed too: a
team whose member joined more than 1 ms late makes the kernels pause
threading for 50 ms, which on an oversubscribed machine is the right thing
and in a scaling run a sign that the machine was not idle. So is the suite's
cross-core probe (``worker.cross_core_slowdown``), taken at the start of
every round: above ``FAR_CORES``, two of the process's cores shared no cache
then, and threads exchanging data ran slower in that round (BENCHMARKS.md).
"""
import argparse
import os
import sys
import time

import numpy as np

import dnnfast
from dnnfast import _core

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402  (benchmarks/peers.py: the same data as run.py)
from workloads import FAR_CORES, WORKLOADS, flops_per_sample  # noqa: E402
from worker import _median_call_seconds, cross_core_slowdown  # noqa: E402


def default_threads():
    n = os.cpu_count() or 1
    out, t = [], 1
    while t < n:
        out.append(t)
        t *= 2
    return out + [n]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1, 2, 4, ... cpu_count)")
    ap.add_argument("--repeats", type=int, default=5, help="rounds over the thread counts (median reported)")
    ap.add_argument("--gemm", default="1024,2048", help="float32 square sizes ('' for none)")
    ap.add_argument("--train", default="W1,W3", help="training workloads of run.py ('' for none)")
    ap.add_argument("--rows", type=int, default=None, help="training rows per epoch (default: run.py's)")
    args = ap.parse_args(argv)

    threads = [int(t) for t in args.threads.split(",")] if args.threads else default_threads()
    sizes = [int(s) for s in args.gemm.split(",") if s.strip()]
    train = [w.strip().upper() for w in args.train.split(",") if w.strip()]
    for w in train:
        if w not in WORKLOADS or WORKLOADS[w]["batch_size"] == 1:
            ap.error(f"--train takes mini-batch workloads of run.py, not {w!r}")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    rng = np.random.default_rng(0)
    # C is written in place (gemm_update, beta = 0): a fresh output per call
    # would time the page faults of a new allocation along with the product.
    squares = {n: (rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32),
                   np.empty((n, n), dtype=np.float32)) for n in sizes}

    def product(n):
        A, B, C = squares[n]
        return lambda: _core.gemm_update(A, B, C, 1.0, 0.0, False, False, False)
    data, nets = {}, {}
    for w in train:
        wl = WORKLOADS[w]
        rows = args.rows or wl["rows"][0]
        data[w] = peers.make_data(rows, wl["sizes"][0], wl["sizes"][-1], wl["dtype"])
        for th in threads:
            nets[w, th] = dnnfast.Network(sizes=wl["sizes"], activations=wl["activations"], loss=wl["loss"],
                                          dtype=wl["dtype"], seed=0)
    time.sleep(0.3)  # NumPy's BLAS threads from make_data go to sleep

    def fit(w, th, rows=None):
        wl = WORKLOADS[w]
        X, Y = data[w]
        nets[w, th].fit(X[:rows], Y[:rows], epochs=1, batch_size=wl["batch_size"],
                        learning_rate=wl["learning_rate"], shuffle=True)

    # Warm-up: every path at every count (thread pools, packing buffers, pages).
    for th in threads:
        dnnfast.set_num_threads(th)
        for n in sizes:
            product(n)()
        for w in train:
            fit(w, th, rows=512)

    peak = {th: [] for th in threads}
    gemm = {(n, th): [] for n in sizes for th in threads}
    sps = {(w, th): [] for w in train for th in threads}
    late0 = _core.late_team_count()
    probes = []
    for r in range(args.repeats):
        probes.append(cross_core_slowdown())
        for th in threads:
            dnnfast.set_num_threads(th)
            peak[th].append(_core.fma_peak_gflops("float32", th))
            for n in sizes:
                gemm[n, th].append(2.0 * n ** 3 / _median_call_seconds(product(n), 0.3)[0] / 1e9)
            for w in train:
                t0 = time.perf_counter()
                fit(w, th)
                sps[w, th].append(len(data[w][0]) / (time.perf_counter() - t0))
        log(f"  round {r + 1}/{args.repeats} done, late teams so far {_core.late_team_count() - late0}")
    dnnfast.set_num_threads(0)

    med = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"dnnfast {dnnfast.__version__} thread scaling; {os.cpu_count()} CPUs; kernel {_core.gemm_kernel()}; "
          f"median of {args.repeats} interleaved rounds; late teams {_core.late_team_count() - late0}")
    if any(p is not None for p in probes):
        far = sum(p is not None and p > FAR_CORES for p in probes)
        print("cross-core probe at the start of each round (a core reading 8 MB another just wrote, against its "
              f"own; far apart above {FAR_CORES:g}): " + " ".join("n/a" if p is None else f"{p:.2f}" for p in probes)
              + f" ({far} of {len(probes)} rounds far)")
    print("peak: FMA peak of that many threads (max of the rounds); GEMM: float32 n^3, GFLOP/s and % of peak; "
          "training: samples/s, x = speed-up over the first count, eff = speed-up / thread ratio")
    head = ["threads", "peak GF/s"]
    for n in sizes:
        head += [f"gemm {n}", "% peak"]
    for w in train:
        head += [f"{w} samples/s", "x", "eff"]
    rows = []
    t_first = threads[0]
    for th in threads:
        pk = max(peak[th])
        row = [str(th), f"{pk:.0f}"]
        for n in sizes:
            g = med(gemm[n, th])
            row += [f"{g:.0f}", f"{100 * g / pk:.0f}%"]
        for w in train:
            s = med(sps[w, th])
            x = s / med(sps[w, t_first])
            row += [f"{s:,.0f}", f"{x:.2f}", f"{x / (th / t_first):.2f}"]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    for w in train:
        print(f"{w}: {WORKLOADS[w]['title']}, {len(data[w][0])} rows, "
              f"{flops_per_sample(WORKLOADS[w]['sizes']) / 1e6:.2f} MFLOP per sample (the work done: no dA[0])")


if __name__ == "__main__":
    main()
