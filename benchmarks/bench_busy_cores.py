"""dnnfast on 2 threads when the cores are busy with something else.

Two situations, each against the same work on idle cores:

  after-numpy   each GEMM call comes right after a NumPy matrix product, whose
                OpenBLAS threads then spin for about 0.1 s (products of one
                batch-64 W1 step and of W3, median GFLOP/s);
  busy-procs    a W1 epoch (4096 rows, batch 64) while other processes spin
                on every core (median seconds).

With ``--far-cores SECONDS``, a third instead, for that long: W1 epochs (8192
rows, batch 64) each after the suite's cross-core probe (worker.py's
cross_core_slowdown: how much slower a core reads 8 MB another core just
wrote than 8 MB of its own), every pair printed, then the median samples/s
of the epochs after a probe at most and above FAR_CORES: whether the host
placed the two virtual CPUs on cores that share no cache, and what that
costs the threads' exchanges of data.

dnnfast notices a thread team whose members join late (their core is held by
another thread) and runs on one thread for a short pause; `late teams` counts
how often that happened. Usage:

    python benchmarks/bench_busy_cores.py [--threads 2] [--repeats 5] [--far-cores SECONDS]
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import FAR_CORES  # noqa: E402


def spin(stop):
    while not stop.is_set():
        pass


def gemm_cases():
    # (label, M, N, K, trans_a, trans_b): batch-64 W1 products, and W3's.
    return [("W1 L1 A W", 64, 256, 784, False, False), ("W1 L1 A^T dZ", 784, 256, 64, True, False),
            ("W1 L2 A W", 64, 128, 256, False, False), ("W1 L2 dZ W^T", 64, 256, 128, False, True),
            ("W3 L1 A W", 256, 1024, 784, False, False), ("W3 L2 A^T dZ", 1024, 1024, 256, True, False)]


def bench_after_numpy(core, calls):
    rng = np.random.default_rng(0)
    M = rng.standard_normal((256, 256), dtype=np.float32)
    rows = []
    for label, m, n, k, ta, tb in gemm_cases():
        A = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        B = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        flop = 2.0 * m * n * k

        def one():
            t0 = time.perf_counter()
            core.gemm(A, B, trans_a=ta, trans_b=tb)
            return time.perf_counter() - t0
        for _ in range(5):
            one()
        time.sleep(0.3)  # OpenBLAS's threads go to sleep
        idle = [one() for _ in range(calls)]
        busy = []
        for _ in range(calls):
            M @ M
            busy.append(one())
        rows.append((label, f"{m}x{n}x{k}", flop / np.median(idle) / 1e9, flop / np.median(busy) / 1e9))
    return rows


def w1_epoch_seconds(dnnfast, X, y):
    net = dnnfast.Network([784, 256, 128, 10], ["relu", "relu", "softmax"], "cce", dtype="float32", seed=0)
    t0 = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=64, learning_rate=0.05)
    return time.perf_counter() - t0


def epochs_near_and_far(dnnfast, seconds):
    from worker import cross_core_slowdown
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8192, 784), dtype=np.float32)
    y = rng.integers(0, 10, 8192)
    w1_epoch_seconds(dnnfast, X[:512], y[:512])  # warm-up
    pairs, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        probe = cross_core_slowdown()
        if probe is None:
            raise SystemExit("--far-cores: the process may use one CPU only")
        pairs.append((probe, len(X) / w1_epoch_seconds(dnnfast, X, y)))
    print(f"\nfar-cores: {len(pairs)} x (cross-core probe, W1 epoch samples/s) over {seconds:g} s")
    print(" ".join(f"{p:.2f}|{s / 1e3:.0f}k" for p, s in pairs))
    for name, sel in (("near", [s for p, s in pairs if p <= FAR_CORES]),
                      (f"far (probe > {FAR_CORES:g})", [s for p, s in pairs if p > FAR_CORES])):
        print(f"{name}: {len(sel)} epochs" + (f", median {np.median(sel):,.0f} samples/s" if sel else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="W1 epochs per situation")
    ap.add_argument("--calls", type=int, default=40, help="GEMM calls per case and situation")
    ap.add_argument("--far-cores", type=float, default=None, metavar="SECONDS",
                    help="instead: W1 epochs, each after the cross-core probe, for this long")
    args = ap.parse_args()

    import dnnfast
    from dnnfast import _core
    dnnfast.set_num_threads(args.threads)
    print(f"dnnfast {dnnfast.__version__}, {args.threads} threads, {os.cpu_count()} CPUs")
    if args.far_cores is not None:
        epochs_near_and_far(dnnfast, args.far_cores)
        return

    late0 = _core.late_team_count()
    print("\nafter-numpy: median GFLOP/s of dnnfast._core.gemm")
    print(f"{'case':<14}{'MxNxK':>14}{'idle cores':>12}{'after numpy':>13}")
    for label, shape, idle, busy in bench_after_numpy(_core, args.calls):
        print(f"{label:<14}{shape:>14}{idle:>12.1f}{busy:>13.1f}")
    print(f"late teams: {_core.late_team_count() - late0}")

    rng = np.random.default_rng(0)
    X = rng.standard_normal((4096, 784), dtype=np.float32)
    y = rng.integers(0, 10, 4096)
    w1_epoch_seconds(dnnfast, X[:512], y[:512])  # warm-up
    time.sleep(0.3)
    idle = [w1_epoch_seconds(dnnfast, X, y) for _ in range(args.repeats)]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=spin, args=(stop,)) for _ in range(os.cpu_count() or 1)]
    for p in procs:
        p.start()
    try:
        time.sleep(1.0)  # the spinners have started
        late0 = _core.late_team_count()
        busy = [w1_epoch_seconds(dnnfast, X, y) for _ in range(args.repeats)]
        late = _core.late_team_count() - late0
    finally:
        stop.set()
        for p in procs:
            p.join()
    print(f"\nbusy-procs: W1 epoch, 4096 rows, median of {args.repeats}, with {len(procs)} spinning processes")
    print(f"idle cores {np.median(idle):.3f} s, busy cores {np.median(busy):.3f} s; late teams: {late}")


if __name__ == "__main__":
    main()
