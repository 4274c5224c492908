"""dnnfast.MLPClassifier against sklearn.neural_network.MLPClassifier: fit time.

    python benchmarks/bench_sklearn.py                    # all workloads, 3 repeats, 2 threads
    python benchmarks/bench_sklearn.py --repeats 5 --threads 1 --only digits-adam

Both estimators get identical parameters and data. Each fit runs in its own
fresh process (this script with ``--worker``), with the thread count fixed in
the child's environment (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS)
and, for dnnfast, ``dnnfast.set_num_threads``. Runs alternate between the two
libraries (dnnfast, scikit-learn, dnnfast, ...) and the median of the repeats
is reported. Each worker first fits on a small slice (imports, thread pools,
allocators warm), then times one fit. Only the ratio within one run means
anything: the absolute times move with the load on the machine.

Workloads:
  digits-adam / digits-sgd  the default MLPClassifier() (solver adam, or sgd)
                            on the 1797 x 64 digits data, up to max_iter=200
                            epochs with the default stopping rule
  big-adam / big-sgd        20000 x 784 Gaussian data with labels from a random
                            linear teacher (10 classes), hidden_layer_sizes=(256, 128),
                            max_iter=5 epochs (float64, like the digits)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "digits-adam": dict(data="digits", params=dict(solver="adam")),
    "digits-sgd": dict(data="digits", params=dict(solver="sgd")),
    "big-adam": dict(data="big", params=dict(solver="adam", hidden_layer_sizes=(256, 128), max_iter=5)),
    "big-sgd": dict(data="big", params=dict(solver="sgd", hidden_layer_sizes=(256, 128), max_iter=5)),
}
PEERS = ["dnnfast", "sklearn"]


def load(data):
    import numpy as np

    if data == "digits":
        try:
            from dnnfast.datasets import load_digits

            return load_digits()
        except ImportError:
            from sklearn.datasets import load_digits

            return load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 784))
    teacher = rng.standard_normal((784, 10))
    return X, np.argmax(X @ teacher, axis=1)


def worker(task):
    """Fit once (after a warm-up) and print one JSON line."""
    import warnings

    warnings.simplefilter("ignore")
    threads = task["threads"]
    if task["peer"] == "dnnfast":
        import dnnfast
        from dnnfast.estimators import MLPClassifier

        dnnfast.set_num_threads(threads)
    else:
        from sklearn.neural_network import MLPClassifier
    wl = WORKLOADS[task["workload"]]
    X, y = load(wl["data"])
    params = dict(wl["params"], random_state=0)
    MLPClassifier(**dict(params, max_iter=1)).fit(X[:500], y[:500])  # warm-up
    clf = MLPClassifier(**params)
    t0 = time.perf_counter()
    clf.fit(X, y)
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "n_iter": int(clf.n_iter_), "loss": float(clf.loss_),
                      "train_accuracy": float(clf.score(X, y))}))


def run_one(peer, workload, threads, timeout):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    task = json.dumps({"peer": peer, "workload": workload, "threads": threads})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", task], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{peer}/{workload} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", help="write raw results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    for k in keys:
        if k not in WORKLOADS:
            ap.error(f"unknown workload {k!r}; known: {', '.join(WORKLOADS)}")
    results = {k: {p: [] for p in PEERS} for k in keys}
    for r in range(args.repeats):
        for k in keys:
            for p in (PEERS if r % 2 == 0 else PEERS[::-1]):  # interleaved, alternating who goes first
                res = run_one(p, k, args.threads, args.timeout)
                results[k][p].append(res)
                print(f"  [{r + 1}/{args.repeats}] {k:12s} {p:8s} {res['seconds']:8.3f} s  "
                      f"n_iter={res['n_iter']}  loss={res['loss']:.6g}", flush=True)
    print(f"\nfit time, median of {args.repeats} (threads={args.threads})\n")
    print("| workload | dnnfast s | scikit-learn s | speed-up | n_iter (dnnfast / sklearn) |")
    print("|---|---|---|---|---|")
    summary = {}
    for k in keys:
        med = {p: statistics.median(x["seconds"] for x in results[k][p]) for p in PEERS}
        its = {p: results[k][p][0]["n_iter"] for p in PEERS}
        ratio = med["sklearn"] / med["dnnfast"]
        summary[k] = dict(median_seconds=med, speedup=ratio, n_iter=its)
        print(f"| {k} | {med['dnnfast']:.3f} | {med['sklearn']:.3f} | {ratio:.1f}x | "
              f"{its['dnnfast']} / {its['sklearn']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "repeats": args.repeats, "runs": results, "summary": summary},
                      f, indent=1)


if __name__ == "__main__":
    main()
