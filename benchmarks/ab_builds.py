"""A/B of two builds of dnnfast's GEMM in ONE process, calls alternating.

For changes to the C++ core that move a product by a few per cent: on a
shared machine fresh processes differ from each other by 10-30% (caches,
neighbours, frequency), which hides such a change in the suite's
process-per-run figures. Here both builds' ``_core`` modules are loaded side
by side and each case alternates old, new, old, new..., so both see the same
conditions; every case first checks that both builds give the same bits.

    pip install --target /tmp/old .           # (on the old commit)
    pip install --target /tmp/new .           # (on the new one)
    python benchmarks/ab_builds.py /tmp/old /tmp/new --threads 1 --dtype float32

Each argument is a directory holding ``dnnfast/_core*.so`` (a ``--target``
install, or site-packages) or the ``.so`` itself. The cases are the G
workload's (run.py), squares included. Prints, per case, the median time of
each build and old/new for the median and the 10th percentile (> 1: the new
build is faster).

``--train W1,W4`` compares training instead: one network per build, driven
by the installed package's ``Network`` (its C++ part from each build), fits
one epoch of the workload's data in turn, ``--repeats`` times each; prints
the median epoch time of each build and old/new, and whether both networks
ended with the same parameters.

``--train`` also takes the estimators' default step on their data's shapes
(bench_sklearn.py's workloads, through ``Network.fit`` with Adam, float64,
batches of 200, an L2 term): ``digits`` (1797 x 64 -> 100 relu -> 10,
ten epochs a timing), ``digits-tanh``, ``digits-logistic``, ``big100-tanh``
and ``big100-logistic`` (20000 x 100 -> 100 -> 10, one epoch).

``--train`` also takes ``net:SIZES:OPTIMIZER:BATCH[:DTYPE[:ACTIVATION]]``
(e.g. ``net:784-128-10:adam:8``, ``net:64-256-2:sgd:64:float32:prelu``;
an optimizer written ``sgd+wd`` takes ``weight_decay=1e-4``):
hidden layers of the activation (relu unless given) and a softmax output
with cce (one output: identity with mse, a regression network), float32 unless a dtype is given, learning rate 0.01, one epoch of 1000 rows
(8192 from batches of 64), for steps whose cost depends on the batch size
and the optimizer (with ``--threads 2``: how the step splits over threads).

``--shapes 200x10x100,64x100x200:T`` times the given products (M x N x K,
``:T`` for op(A) = A^T) instead of the G cases.

``--steps adam:7510,sgd:200000`` times one optimizer update of that many
parameters (``_core.optimizer_update``, ``--dtype``), the builds
alternating, each on its own copy of the same parameters, gradients and
state; prints the median and 10th percentile of each and whether both gave
the same bits.

``--finite`` times the check that X is finite (``_core.all_finite``), which
fit and predict make before anything else, on the training workloads' X
(W1's 8192 x 784 float32, W4's float64) and on one W1 row, the builds
alternating; prints the median and 10th percentile of each and whether
both gave the same answers, on the finite X and with one NaN in it.

``--predict`` compares one-row ``predict`` latency (the P workload: the W1
network, float32), calls alternating between the builds; prints the median
and 10th percentile of each, and whether both gave the same bits.
"""
import argparse
import contextlib
import glob
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import gemm_cases  # noqa: E402


def core_path(arg):
    if os.path.isfile(arg):
        return arg
    found = sorted(glob.glob(os.path.join(arg, "dnnfast", "_core*.so")))
    if not found:
        raise SystemExit(f"{arg}: no dnnfast/_core*.so there")
    return found[0]


def load_core(path, tag):
    """The extension module at path, as its own module (its name must end in _core).

    The installed package's own ``_core`` is reused: an extension cannot be
    initialised twice in one process.
    """
    try:
        import dnnfast
        if os.path.samefile(path, dnnfast._core.__file__):
            return dnnfast._core
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(f"{tag}._core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--only", default="", help="comma-separated substrings of case labels")
    ap.add_argument("--shapes", default="",
                    help="comma-separated products MxNxK (op(A) = A) or MxNxK:T (op(A) = A^T) instead of the G cases")
    ap.add_argument("--flops", type=float, default=3e7, help="multiply-adds timed per case and build")
    ap.add_argument("--train", default="", help="comma-separated training workloads (W1..W4, or the "
                    "estimators' steps: digits, digits-tanh, digits-logistic, big100-tanh, big100-logistic) "
                    "instead of GEMMs")
    ap.add_argument("--repeats", type=int, default=11, help="epochs timed per build with --train")
    ap.add_argument("--predict", action="store_true", help="one-row predict latency instead of GEMMs")
    ap.add_argument("--finite", action="store_true", help="the check that X is finite instead of GEMMs")
    ap.add_argument("--steps", default="", help="comma-separated optimizer:parameters (e.g. adam:7510) "
                    "instead of GEMMs: one optimizer update each")
    args = ap.parse_args(argv)
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    old, new = load_core(core_path(args.old), "old"), load_core(core_path(args.new), "new")
    if old is new:
        raise SystemExit("old and new are the same build")
    for core in (old, new):
        core.set_num_threads(args.threads)
    if args.train:
        return train_ab(old, new, [w for w in args.train.split(",") if w], args)
    if args.predict:
        return predict_ab(old, new, args)
    if args.finite:
        return finite_ab(old, new, args)
    if args.steps:
        return steps_ab(old, new, [c for c in args.steps.split(",") if c], args)
    dtype = np.dtype(args.dtype)
    wanted = [s for s in args.only.split(",") if s]
    rng = np.random.default_rng(0)
    print(f"old {core_path(args.old)}\nnew {core_path(args.new)}\n{args.threads} thread(s), {dtype.name}")
    print(f"{'case':14s} {'MxNxK':>15s} {'op':>6s} {'old us':>10s} {'new us':>10s} {'old/new':>8s} {'p10':>6s}")
    for case in shape_cases(args.shapes) if args.shapes else gemm_cases(quick=False):
        if wanted and not any(w in case["label"] for w in wanted):
            continue
        M, N, K, ta, tb = case["M"], case["N"], case["K"], case["trans_a"], case["trans_b"]
        A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
        B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
        if old.gemm(A, B, ta, tb).tobytes() != new.gemm(A, B, ta, tb).tobytes():
            print(f"{case['label']}: the two builds give different bits")
        calls = int(min(4000, max(10, args.flops / (M * N * K))))
        t_old, t_new = np.empty(calls), np.empty(calls)
        for i in range(calls):
            t0 = time.perf_counter_ns()
            old.gemm(A, B, ta, tb)
            t1 = time.perf_counter_ns()
            new.gemm(A, B, ta, tb)
            t_new[i] = time.perf_counter_ns() - t1
            t_old[i] = t1 - t0
        op = ("A^T" if ta else "A") + " " + ("B^T" if tb else "B")
        med_o, med_n = np.median(t_old) / 1e3, np.median(t_new) / 1e3
        p10 = np.percentile(t_old, 10) / np.percentile(t_new, 10)
        print(f"{case['label']:14s} {f'{M}x{N}x{K}':>15s} {op:>6s} {med_o:10.1f} {med_n:10.1f} "
              f"{med_o / med_n:8.2f} {p10:6.2f}", flush=True)


def shape_cases(text):
    """--shapes: "200x10x100,64x100x200:T" -> cases as gemm_cases gives them."""
    cases = []
    for item in (t for t in text.split(",") if t):
        dims, _, op = item.partition(":")
        try:
            M, N, K = (int(d) for d in dims.split("x"))
        except ValueError:
            raise SystemExit(f"--shapes: {item!r} is not MxNxK or MxNxK:T") from None
        if min(M, N, K) < 1 or op not in ("", "T"):
            raise SystemExit(f"--shapes: {item!r} is not MxNxK or MxNxK:T with positive sizes")
        cases.append(dict(label="shape", M=M, N=N, K=K, trans_a=op == "T", trans_b=False))
    return cases


def networks(old, new, wl):
    """One network of the workload per build, the same initial parameters."""
    import dnnfast
    nets = []
    for core in (old, new):
        net = dnnfast.Network(wl["sizes"], wl["activations"], loss=wl["loss"], dtype=wl["dtype"], seed=0)
        net._build_core(core)
        nets.append(net)
    return nets


def steps_ab(old, new, cases, args, calls=4000):
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"{args.threads} thread(s), {dtype.name}")
    print(f"{'optimizer':10s} {'params':>8s} {'old us':>9s} {'new us':>9s} {'old/new':>8s} {'p10':>6s}  same bits")
    for case in cases:
        name, _, n = case.partition(":")
        try:
            n = int(n)
        except ValueError:
            raise SystemExit(f"--steps: {case!r} is not optimizer:parameters") from None
        # Gradients of a few orders of magnitude and state from a few earlier
        # steps, as in a fit; each build steps its own copy.
        G = (rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 0, n)).astype(dtype)
        runs = []
        for core in (old, new):
            opts = core.TrainOptions(optimizer=name, learning_rate=1e-3)
            P, s1, s2 = rng.standard_normal(n).astype(dtype), np.zeros(n, dtype), np.zeros(n, dtype)
            runs.append([core, opts, P, s1, s2, 0])
        runs[1][2][:] = runs[0][2]
        for r in runs:
            for _ in range(5):
                r[5] = r[0].optimizer_update(r[1], r[2], G, r[3], r[4], r[5])
        same = all(a.tobytes() == b.tobytes() for a, b in zip(runs[0][2:5], runs[1][2:5]))
        t = np.empty((calls, 2))
        for i in range(calls):
            for b in ((0, 1) if i % 2 == 0 else (1, 0)):
                core, opts, P, s1, s2, step = runs[b]
                t0 = time.perf_counter_ns()
                runs[b][5] = core.optimizer_update(opts, P, G, s1, s2, step)
                t[i, b] = time.perf_counter_ns() - t0
        med, p10 = np.median(t, axis=0) / 1e3, np.percentile(t, 10, axis=0) / 1e3
        print(f"{name:10s} {n:8d} {med[0]:9.2f} {med[1]:9.2f} {med[0] / med[1]:8.3f} {p10[0] / p10[1]:6.3f}  "
              f"{'yes' if same else 'NO'}", flush=True)


def finite_ab(old, new, args):
    from peers import make_data
    from workloads import WORKLOADS
    print(f"old {core_path(args.old)}\nnew {core_path(args.new)}")
    print(f"{'X':22s} {'old us':>9s} {'new us':>9s} {'old/new':>8s} {'p10':>6s}  same answers")
    for key, rows in (("W1", 8192), ("W4", 8192), ("W1", 1)):
        wl = WORKLOADS[key]
        X, _ = make_data(rows, wl["sizes"][0], wl["sizes"][-1], wl["dtype"])
        bad = X.copy()
        bad.flat[bad.size * 2 // 3] = np.nan
        same = all(old.all_finite(a) == new.all_finite(a) for a in (X, bad))
        calls = 21 if rows > 1 else 20001
        t = np.empty((calls, 2))
        for i in range(calls):
            for b in ((0, 1) if i % 2 == 0 else (1, 0)):
                t0 = time.perf_counter_ns()
                (old, new)[b].all_finite(X)
                t[i, b] = time.perf_counter_ns() - t0
        med, p10 = np.median(t, axis=0) / 1e3, np.percentile(t, 10, axis=0) / 1e3
        label = f"{key} {rows} x {X.shape[1]} {X.dtype.name}"
        print(f"{label:22s} {med[0]:9.2f} {med[1]:9.2f} {med[0] / med[1]:8.3f} {p10[0] / p10[1]:6.3f}  "
              f"{'yes' if same else 'NO'}", flush=True)


def predict_ab(old, new, args, calls=20000):
    from peers import make_data
    from workloads import WORKLOADS
    wl = WORKLOADS["W1"]
    X, _ = make_data(1, wl["sizes"][0], wl["sizes"][-1], wl["dtype"])
    nets = networks(old, new, wl)
    same = nets[0].predict(X).tobytes() == nets[1].predict(X).tobytes()
    for net in nets:
        for _ in range(500):
            net.predict(X)
    t = np.empty((calls, 2))
    for i in range(calls):
        for b in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.perf_counter_ns()
            nets[b].predict(X)
            t[i, b] = time.perf_counter_ns() - t0
    med, p10 = np.median(t, axis=0) / 1e3, np.percentile(t, 10, axis=0) / 1e3
    print(f"old {core_path(args.old)}\nnew {core_path(args.new)}\n{args.threads} thread(s)")
    print(f"predict, one row of W1: old {med[0]:.1f} us (p10 {p10[0]:.1f}), new {med[1]:.1f} us (p10 {p10[1]:.1f}); "
          f"old/new {med[0] / med[1]:.3f} (p10 {p10[0] / p10[1]:.3f}); same bits: {'yes' if same else 'NO'}")


@contextlib.contextmanager
def options_from(core):
    """The training driver builds each epoch's TrainOptions from the package's
    own ``_core``; a network of another build takes only that build's type."""
    from dnnfast._train import driver
    own = driver._core
    driver._core = core
    try:
        yield
    finally:
        driver._core = own


# The estimators' step (MLPClassifier's defaults: Adam, lr 1e-3, batches of
# 200, float64) on bench_sklearn.py's shapes, with Network.fit.
_DIGITS = dict(sizes=[64, 100, 10], loss="cce", dtype="float64", batch_size=200, rows=(1797,), epochs=10,
               adam=True)
_BIG100 = dict(_DIGITS, sizes=[100, 100, 10], rows=(20000,), epochs=1)
STEP_WORKLOADS = {
    "digits": dict(_DIGITS, activations=["relu", "softmax"]),
    "digits-tanh": dict(_DIGITS, activations=["tanh", "softmax"]),
    "digits-logistic": dict(_DIGITS, activations=["sigmoid", "softmax"]),
    "big100-tanh": dict(_BIG100, activations=["tanh", "softmax"]),
    "big100-logistic": dict(_BIG100, activations=["sigmoid", "softmax"]),
}


def net_workload(name):
    """--train net:SIZES:OPTIMIZER:BATCH[:DTYPE[:ACTIVATION]] -> a workload dict."""
    parts = name.split(":")
    if len(parts) not in (4, 5, 6) or parts[0] != "net":
        raise SystemExit(f"--train: {name!r} is not net:SIZES:OPTIMIZER:BATCH[:DTYPE[:ACTIVATION]]")
    try:
        sizes = [int(v) for v in parts[1].split("-")]
        batch = int(parts[3])
    except ValueError:
        raise SystemExit(f"--train: {name!r}: SIZES and BATCH must be integers") from None
    if len(sizes) < 2 or min(sizes) < 1 or batch < 1:
        raise SystemExit(f"--train: {name!r}: at least two positive sizes and a positive batch")
    hidden = parts[5] if len(parts) == 6 else "relu"
    optimizer, wd = (parts[2][:-3], 1e-4) if parts[2].endswith("+wd") else (parts[2], 0.0)
    regression = sizes[-1] == 1
    return dict(sizes=sizes, activations=[hidden] * (len(sizes) - 2) + ["identity" if regression else "softmax"],
                loss="mse" if regression else "cce",
                dtype=parts[4] if len(parts) >= 5 else "float32", batch_size=batch,
                rows=(8192 if batch >= 64 else 1000,), learning_rate=0.01, optimizer=optimizer, weight_decay=wd)


def train_ab(old, new, names, args):
    from peers import make_data
    from workloads import WORKLOADS
    WORKLOADS = dict(WORKLOADS, **STEP_WORKLOADS, **{n: net_workload(n) for n in names if n.startswith("net:")})
    print(f"old {core_path(args.old)}\nnew {core_path(args.new)}\n{args.threads} thread(s)")
    width = max([9] + [len(n) for n in names])
    print(f"{'workload':{width}s} {'rows':>6s} {'old ms':>9s} {'new ms':>9s} {'old/new':>8s} {'p10':>6s}  same parameters")
    for name in names:
        if name not in WORKLOADS:
            raise SystemExit(f"--train: unknown workload {name!r} (one of {', '.join(WORKLOADS)})")
        wl = WORKLOADS[name]
        rows = wl["rows"][0]
        X, Y = make_data(rows, wl["sizes"][0], wl["sizes"][-1], wl["dtype"])
        if wl["loss"] == "mse":  # a regression target: the sum of X's columns
            Y = X.sum(axis=1, keepdims=True, dtype=X.dtype)
        nets = networks(old, new, wl)
        times = np.empty((args.repeats, 2))
        for r in range(args.repeats):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                with options_from((old, new)[i]):
                    t0 = time.perf_counter()
                    if wl.get("adam"):
                        nets[i].fit(X, Y, epochs=wl["epochs"], batch_size=wl["batch_size"], learning_rate=1e-3,
                                    shuffle=True, optimizer="adam", weight_decay=1e-4)
                    else:
                        nets[i].fit(X, Y, epochs=1, batch_size=wl["batch_size"], learning_rate=wl["learning_rate"],
                                    shuffle=True, optimizer=wl.get("optimizer", "sgd"),
                                    weight_decay=wl.get("weight_decay", 0.0))
                    times[r, i] = time.perf_counter() - t0
        med = np.median(times, axis=0) * 1e3
        p10 = np.percentile(times, 10, axis=0)
        same = nets[0].parameters.tobytes() == nets[1].parameters.tobytes()
        print(f"{name:{width}s} {rows:6d} {med[0]:9.1f} {med[1]:9.1f} {med[0] / med[1]:8.3f} {p10[0] / p10[1]:6.3f}  "
              f"{'yes' if same else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
