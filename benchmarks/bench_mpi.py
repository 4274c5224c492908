"""Data-parallel training over MPI: 1 vs 2 ranks on this machine, the
allreduce time per step, and a model of the speed-up on N machines.

    python benchmarks/bench_mpi.py [--repeats 3] [--only W1,W3] [--json out.json]

Needs ``pip install "dnnfast[mpi]"`` (mpi4py, and MPICH's ``mpiexec`` next to
the Python executable or on PATH). The driver launches, for W1 and W3 of the
suite (see README.md), fresh ``mpiexec -n R`` runs of this file with
``--worker``:

- ``plain``: one process, ``Network.fit`` (the epoch loop in C++), 1 thread;
- ``1 rank`` / ``2 ranks``: ``Network.fit`` inside ``dnnfast.distributed.Context``,
  1 thread per rank (``OMP_NUM_THREADS=1``);
- ``1 rank x 2 threads``: the other way to use the same two cores.

Each worker times 1 epoch after a warm-up epoch, and the 2-rank run also
times the in-place ``Allreduce`` of the step's buffer (parameters + 3) alone.
The 1-rank run times the two halves of a step, ``gradient_sum`` on b rows
for b = B, B/2, ..., B/16 and ``apply_gradient_sum`` (the optimizer step,
which every rank repeats on all parameters), which feed the model:

    T(N) = t_grad(B / N) + t_apply + T_allreduce(N)
    T_allreduce(N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency   (ring)
    speed-up(N) = (t_grad(B) + t_apply) / T(N)

for the bandwidth measured here (shared memory) and two typical networks.
Every machine is assumed as fast as one thread of this one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WORKLOADS = {
    "W1": dict(sizes=[784, 256, 128, 10], batch=64, rows=8192,
               title="784-256-128-10 relu/relu/softmax+cce, float32, batch 64, 8192 rows"),
    "W3": dict(sizes=[784, 1024, 1024, 10], batch=256, rows=4096,
               title="784-1024-1024-10 relu/relu/softmax+cce, float32, batch 256, 4096 rows"),
}
NETWORKS = [("10 GbE", 1.1e9, 30e-6), ("100 Gb/s InfiniBand", 11e9, 2e-6)]
MACHINES = [2, 4, 8, 16, 32]


# --------------------------------------------------------------------------- worker (under mpiexec)

def worker(key, mode, out):
    import numpy as np

    import dnnfast
    from peers import make_data

    wl = WORKLOADS[key]
    X, y = make_data(wl["rows"], wl["sizes"][0], wl["sizes"][-1], "float32")
    kwargs = dict(sizes=wl["sizes"], activations=["relu", "relu", "softmax"], loss="cce", dtype="float32")
    fit = dict(batch_size=wl["batch"], learning_rate=0.05, shuffle=True)
    result = {}
    if mode == "plain":
        net = dnnfast.Network(seed=0, **kwargs)
        net.fit(X[:2048], y[:2048], epochs=1, **fit)  # warm-up
        t0 = time.perf_counter()
        net.fit(X, y, epochs=1, **fit)
        result["epoch_s"] = time.perf_counter() - t0
        json.dump(result, open(out, "w"))
        return

    from mpi4py import MPI

    from dnnfast.distributed import Context

    ctx = Context()
    rows = ctx.block(wl["rows"])
    lo, hi = rows.start, rows.stop
    net = dnnfast.Network(seed=0, **kwargs)
    with ctx:
        net.fit(X[lo:lo + 2048 // ctx.size], y[lo:lo + 2048 // ctx.size], epochs=1, **fit)  # warm-up
        ctx.comm.Barrier()
        t0 = time.perf_counter()
        net.fit(X[lo:hi], y[lo:hi], epochs=1, **fit)
        ctx.comm.Barrier()
        result["epoch_s"] = time.perf_counter() - t0
    buf = np.zeros(net.num_params + 3, dtype=np.float32)
    result["bytes"] = buf.nbytes
    if ctx.size > 1:
        reps = 200 if key == "W1" else 50
        for _ in range(10):
            ctx.sum_(buf)
        ctx.comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            ctx.sum_(buf)
        result["allreduce_s"] = (time.perf_counter() - t0) / reps
    else:
        core, P = net._net, net.parameters
        Y = np.zeros((wl["rows"], wl["sizes"][-1]), dtype=np.float32)
        Y[np.arange(wl["rows"]), y] = 1
        G = np.empty_like(P)
        grad = {}
        for div in (1, 2, 4, 8, 16, 32):
            b = max(1, wl["batch"] // div)
            rows = np.arange(b, dtype=np.int64)
            times = []
            for _ in range(15):
                t0 = time.perf_counter()
                core.gradient_sum(P, X, Y, None, rows, G)
                times.append(time.perf_counter() - t0)
            grad[div] = statistics.median(times)
        times = []
        sgd_options = dnnfast._core.TrainOptions(optimizer="sgd", learning_rate=0.05)
        for _ in range(15):
            G[:] = 0
            t0 = time.perf_counter()
            core.apply_gradient_sum(P, G, 1.0, sgd_options)
            times.append(time.perf_counter() - t0)
        result["grad_s"] = grad
        result["apply_s"] = statistics.median(times)
    if ctx.rank == 0:
        result["mpi"] = MPI.Get_library_version().splitlines()[0]
        json.dump(result, open(out, "w"))


# --------------------------------------------------------------------------- driver

def mpiexec():
    here = Path(sys.executable).with_name("mpiexec")
    if here.exists():
        return str(here)
    import shutil

    found = shutil.which("mpiexec")
    if not found:
        sys.exit('bench_mpi: no mpiexec found; pip install "dnnfast[mpi]"')
    return found


def launch(key, mode, ranks, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        cmd = [sys.executable, __file__, "--worker", key, mode, out]
        if mode != "plain":
            cmd = [mpiexec(), "-n", str(ranks)] + cmd
        subprocess.run(cmd, check=True, env=env, timeout=600)
        return json.load(open(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="W1,W3", help="workloads, e.g. W1")
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs=3, metavar=("KEY", "MODE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker)

    import dnnfast

    print(f"dnnfast {dnnfast.__version__}, {os.cpu_count()} cpus, repeats {args.repeats} (median)")
    configs = [("plain, 1 thread", "plain", 1, 1), ("Context, 1 rank x 1 thread", "mpi", 1, 1),
               ("Context, 2 ranks x 1 thread", "mpi", 2, 1), ("Context, 1 rank x 2 threads", "mpi", 1, 2)]
    raw = {}
    for key in args.only.split(","):
        wl = WORKLOADS[key]
        runs = {name: [] for name, *_ in configs}
        for _ in range(args.repeats):  # interleaved
            for name, mode, ranks, threads in configs:
                runs[name].append(launch(key, mode, ranks, threads))
        raw[key] = runs
        print(f"\n{key}: {wl['title']}, 1 epoch")
        if "mpi" in runs[configs[1][0]][0]:
            print(f"MPI: {runs[configs[1][0]][0]['mpi']}")
        base = statistics.median(r["epoch_s"] for r in runs[configs[0][0]])
        print(f"{'configuration':32s} {'samples/s':>10s} {'vs plain':>9s}")
        for name, *_ in configs:
            t = statistics.median(r["epoch_s"] for r in runs[name])
            print(f"{name:32s} {wl['rows'] / t:10,.0f} {base / t:8.2f}x")
        two = runs[configs[2][0]]
        one = runs[configs[1][0]]
        ar = statistics.median(r["allreduce_s"] for r in two)
        nbytes = two[0]["bytes"]
        bw = nbytes / ar  # 2 ranks: the ring moves 2 (N-1)/N = 1 buffer per rank
        steps = -(-wl["rows"] // wl["batch"])
        t2 = statistics.median(r["epoch_s"] for r in two)
        print(f"allreduce of {nbytes / 1e6:.2f} MB (2 ranks, shared memory): {ar * 1e6:,.0f} us per step "
              f"= {100 * ar * steps / t2:.0f}% of the 2-rank epoch; bus bandwidth {bw / 1e9:.2f} GB/s")
        grad = {int(k): statistics.median(r["grad_s"][k] for r in one) for k in one[0]["grad_s"]}
        apply_s = statistics.median(r["apply_s"] for r in one)
        single = grad[1] + apply_s
        print(f"one step on 1 thread: gradient of {wl['batch']} rows {grad[1] * 1e3:.2f} ms, "
              f"optimizer step {apply_s * 1e3:.2f} ms; gradient of B/N rows: "
              + ", ".join(f"N={d} {grad[d] * 1e3:.2f} ms" for d in sorted(grad) if d > 1))
        print("model: expected speed-up on N machines (1 rank each), T(N) = t_grad(B/N) + t_apply + T_ar(N)")
        nets = [("measured here", bw, 0.0)] + NETWORKS
        print(f"{'N':>4s} " + " ".join(f"{n + f' ({b / 1e9:.1f} GB/s)':>28s}" for n, b, _ in nets))
        for n in MACHINES:
            g = grad.get(n, grad[max(grad)] * max(grad) / n)  # beyond the measured sizes: linear in rows
            cells = []
            for _, b, lat in nets:
                t_ar = 2 * (n - 1) / n * nbytes / b + 2 * (n - 1) * lat
                cells.append(f"{single / (g + apply_s + t_ar):27.2f}x")
            print(f"{n:4d} " + " ".join(cells))
    if args.json:
        json.dump(raw, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
