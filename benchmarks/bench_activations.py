"""Cost of the transcendental activations in training (issue 19, target 1).

    python benchmarks/bench_activations.py                          # both suites
    python benchmarks/bench_activations.py --suite net --repeats 5 [--dtype float64]
    python benchmarks/bench_activations.py --builds before=/old/python,after=/new/python

Suites:
  net      ms per epoch of a network 20000x100 -> (256, 128) -> 10 (softmax
           + cce, SGD, batch 200; float32, or --dtype float64) per hidden
           activation, and the ratio to the relu network's epoch.
  sklearn  MLPClassifier(activation="tanh" / "logistic") fit time on digits
           (default parameters, random_state=0), dnnfast against scikit-learn.

Every measurement is its own fresh process (this script with --worker) with
the thread count fixed in its environment and by dnnfast.set_num_threads;
processes are interleaved (one round over every build / peer and activation,
repeated) and the median is printed with the range. --builds names several
dnnfast trees (the directory holding the `dnnfast` package, put first on
PYTHONPATH) to compare builds in the same interleaved run; by default the
dnnfast that Python finds. The load average is printed before and after: on
a shared machine only ratios within one run mean anything.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

SKIP_SKLEARN = ("bench_activations.py: suite sklearn skipped: scikit-learn is not installed (pip install "
                "scikit-learn); it compares MLPClassifier(activation=\"tanh\" / \"logistic\") fit times on the "
                "digits, dnnfast against scikit-learn")
NET_ACTS = ["relu", "sigmoid", "elu", "arctan", "tanh", "softplus"]
SK_ACTS = ["tanh", "logistic"]


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import cli, have_sklearn, positive_int, positive_seconds, run_worker  # noqa: E402


def work_net(act, threads, dtype="float32"):
    import numpy as np
    import dnnfast

    dnnfast.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 100)).astype(dtype)
    Y = np.argmax(X @ rng.standard_normal((100, 10)).astype(dtype), axis=1).astype(np.int64)

    def net():
        return dnnfast.Network(sizes=[100, 256, 128, 10], activations=[act, act, "softmax"], loss="cce",
                               dtype=dtype, seed=0)

    net().fit(X[:2000], Y[:2000], epochs=1, batch_size=200, learning_rate=0.01)  # warm-up
    n = net()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        n.fit(X, Y, epochs=1, batch_size=200, learning_rate=0.01)
        times.append(time.perf_counter() - t0)
    return {"ms": 1e3 * statistics.median(times)}


def work_sklearn(peer, act, threads):
    import warnings

    warnings.simplefilter("ignore")
    from sklearn.datasets import load_digits

    if peer == "sklearn":
        from sklearn.neural_network import MLPClassifier
    else:
        import dnnfast
        from dnnfast.estimators import MLPClassifier

        dnnfast.set_num_threads(threads)
    X, y = load_digits(return_X_y=True)
    MLPClassifier(activation=act, max_iter=1, random_state=0).fit(X[:300], y[:300])  # warm-up
    clf = MLPClassifier(activation=act, random_state=0)
    t0 = time.perf_counter()
    clf.fit(X, y)
    return {"s": time.perf_counter() - t0, "n_iter": int(clf.n_iter_)}


def spawn(task, pythonpath, threads, timeout):
    """One measurement in a fresh process: its result, or {"error": why} (``workloads.run_worker``)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        env[var] = str(threads)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return run_worker(__file__, task, env, timeout)


def measure(tasks, repeats, threads, timeout, value):
    """Every (cell, task, pythonpath) of ``tasks`` ``repeats`` times,
    interleaved: {cell: [value(result), ...]}, or {cell: "why"} for a cell
    whose worker failed (printed as it happens; that cell is not run again)."""
    res = {cell: [] for cell, _, _ in tasks}
    for r in range(repeats):
        for cell, task, path in tasks:
            if not isinstance(res[cell], list):
                continue
            out = spawn(task, path, threads, timeout)
            if "error" in out:
                print(f"  [{r + 1}/{repeats}] {' '.join(cell)}: ERROR {out['error']}", flush=True)
                res[cell] = out["error"]
            else:
                res[cell].append(value(out))
    return res


def parse_builds(text, error):
    """--builds name=path,... as {name: path}; `error` (ap.error) on a bad one."""
    builds = {}
    for item in (b.strip() for b in text.split(",")):
        if not item:
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            error(f"--builds: name=path,name=path, got {item!r}")
        if name in builds:
            error(f"--builds: the name {name!r} is given twice")
        if name == "sklearn":
            error("--builds: 'sklearn' names the scikit-learn column; name the build otherwise")
        if not os.path.isdir(path):
            error(f"--builds: {name}={path}: no such directory (the one holding the dnnfast package)")
        builds[name] = path
    return builds or {"dnnfast": ""}


def med(xs):
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["net", "sklearn", "all"], default="all")
    ap.add_argument("--repeats", type=positive_int, default=3, help="processes per build / peer and activation (>= 1)")
    ap.add_argument("--threads", type=positive_int, default=1, help="thread count of every process (>= 1)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="of the net suite")
    ap.add_argument("--timeout", type=positive_seconds, default=600,
                    help="seconds before a worker is killed (its cell then reads as an error)")
    ap.add_argument("--builds", default="", help="name=path,name=path (default: the dnnfast Python finds)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        t = json.loads(a.worker)
        r = work_net(t["act"], t["threads"], t["dtype"]) if t["suite"] == "net" else work_sklearn(t["peer"], t["act"], t["threads"])
        print(json.dumps(r))
        return
    builds = parse_builds(a.builds, ap.error)
    skip_sklearn = a.suite in ("sklearn", "all") and not have_sklearn()
    if skip_sklearn and a.suite == "sklearn":
        print(SKIP_SKLEARN, flush=True)
        return
    print(f"threads={a.threads} repeats={a.repeats} load average before: {os.getloadavg()}")
    failed = False
    if a.suite in ("net", "all"):
        tasks = [((b, act), {"suite": "net", "act": act, "threads": a.threads, "dtype": a.dtype}, path)
                 for act in NET_ACTS for b, path in builds.items()]
        res = measure(tasks, a.repeats, a.threads, a.timeout, lambda r: r["ms"])
        print(f"\n{a.dtype} 20000x100 -> (256, 128) -> 10, batch 200: ms per epoch, median [min-max]; ratio to relu")
        print("| activation | " + " | ".join(builds) + " |")
        print("|---|" + "---|" * len(builds))
        for act in NET_ACTS:
            cells = []
            for b in builds:
                xs, relu = res[b, act], res[b, "relu"]
                if isinstance(xs, str):
                    cells.append(f"error ({xs})")
                    failed = True
                    continue
                m, lo, hi = med(xs)
                ratio = f"{m / med(relu)[0]:.2f}x" if isinstance(relu, list) else "-"
                cells.append(f"{m:.1f} [{lo:.1f}-{hi:.1f}] {ratio}")
            print(f"| {act} | " + " | ".join(cells) + " |")
    if skip_sklearn:
        print("\n" + SKIP_SKLEARN, flush=True)
    elif a.suite in ("sklearn", "all"):
        peers = {"sklearn": ("sklearn", "")} | {b: ("dnnfast", p) for b, p in builds.items()}
        tasks = [((name, act), {"suite": "sklearn", "peer": peer, "act": act, "threads": a.threads}, path)
                 for act in SK_ACTS for name, (peer, path) in peers.items()]
        res = measure(tasks, a.repeats, a.threads, a.timeout, lambda r: r)
        print("\ndigits MLPClassifier(activation=...) fit s, median [min-max] (n_iter); speed-up over scikit-learn")
        print("| activation | " + " | ".join(peers) + " |")
        print("|---|" + "---|" * len(peers))
        for act in SK_ACTS:
            sk = res["sklearn", act]
            base = med([r["s"] for r in sk])[0] if isinstance(sk, list) else None
            cells = []
            for p in peers:
                rs = res[p, act]
                if isinstance(rs, str):
                    cells.append(f"error ({rs})")
                    failed = True
                    continue
                m, lo, hi = med([r["s"] for r in rs])
                speedup = f"{base / m:.2f}x" if base is not None else "-"
                cells.append(f"{m:.3f} [{lo:.3f}-{hi:.3f}] ({rs[0]['n_iter']}) {speedup}")
            print(f"| {act} | " + " | ".join(cells) + " |")
    print(f"\nload average after: {os.getloadavg()}")
    if failed:
        sys.exit("bench_activations.py: some measurements failed (their cells read 'error')")


if __name__ == "__main__":
    cli(main, "bench_activations.py")
