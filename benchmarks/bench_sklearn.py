"""dnnfast's estimators against scikit-learn's: fit time.

    python benchmarks/bench_sklearn.py                    # all workloads, 5 repeats, 1 thread
    python benchmarks/bench_sklearn.py --repeats 3 --threads 2 --only digits,wine

Both estimators get identical parameters and data. Each peer's fits run in
fresh processes (this script with ``--worker``), with the thread count fixed
in the child's environment (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ...) and,
for dnnfast, ``dnnfast.set_num_threads``. Processes alternate between the two
libraries, who goes first alternating too. Each process fits once on a small
slice (imports, thread pools, allocators warm), then times fits of the whole
set until 0.3 s have passed (at least one, at most 7) and reports their
median: a 20 ms fit timed once is mostly noise. The table gives the median of
the processes' medians. Only the ratio within one run means anything.

A workload with a target prints PASS or FAIL against it, or UNRELIABLE when
the machine was busier than its cores, a peer's processes spread by more
than the suite's limit (benchmarks/workloads.py, MAX_SPREAD), or a peer kept
more cores busy than its threads allow (MAX_CORES_OVER; "cores" is each
process's CPU seconds per second of fitting). The last column gives the
fit's share of the float64 FMA peak, and the share a fit at the target's
speed would need: over 100%, no code could meet the target on this machine.

Workloads (X standardised with its mean and standard deviation, float64):
  breast_cancer, wine, digits   MLPClassifier() with default parameters on
                                scikit-learn's data sets (569 x 30, 178 x 13,
                                1797 x 64); target 5x
  diabetes                      MLPRegressor() with default parameters (442 x 10); target 5x
  digits-tanh, digits-logistic  MLPClassifier(activation=...) on the digits; target 3x
  big100-tanh, big100-logistic  20000 x 100 Gaussian data, labels from a random
                                linear teacher (10 classes), activation=...,
                                max_iter=10; target 3x
  big784-adam, big784-sgd       20000 x 784 of the same kind, hidden_layer_sizes=(256, 128),
                                max_iter=5, solver adam / sgd; no target
  text20k                       a sparse CSR X, 4000 x 20000 with 20 values a row (a
                                bag of words' shape), labels from a random linear teacher
                                (10 classes), MLPClassifier(max_iter=5); no target. Its
                                "% peak" counts the first layer's products over the stored
                                values only, the work dnnfast does.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from workloads import (EX_IOERR, MAX_SPREAD, cli, excess_cores, flops_per_sample, have_sklearn, json_target_problem,
                       positive_int, positive_seconds, run_worker, spread, write_json)

CLF, REG = "classifier", "regressor"
WORKLOADS = {
    "breast_cancer": dict(data="breast_cancer", kind=CLF, params={}, target=5.0),
    "wine": dict(data="wine", kind=CLF, params={}, target=5.0),
    "digits": dict(data="digits", kind=CLF, params={}, target=5.0),
    "diabetes": dict(data="diabetes", kind=REG, params={}, target=5.0),
    "digits-tanh": dict(data="digits", kind=CLF, params=dict(activation="tanh"), target=3.0),
    "digits-logistic": dict(data="digits", kind=CLF, params=dict(activation="logistic"), target=3.0),
    "big100-tanh": dict(data="big100", kind=CLF, params=dict(activation="tanh", max_iter=10), target=3.0),
    "big100-logistic": dict(data="big100", kind=CLF, params=dict(activation="logistic", max_iter=10), target=3.0),
    "big784-adam": dict(data="big784", kind=CLF, params=dict(solver="adam", hidden_layer_sizes=(256, 128),
                                                             max_iter=5), target=None),
    "big784-sgd": dict(data="big784", kind=CLF, params=dict(solver="sgd", hidden_layer_sizes=(256, 128),
                                                            max_iter=5), target=None),
    "text20k": dict(data="text20k", kind=CLF, params=dict(max_iter=5), target=None),
}
PEERS = ["dnnfast", "sklearn"]
TIMED_SECONDS, MAX_FITS = 0.3, 7


def load(data):
    import numpy as np

    if data == "text20k":
        import scipy.sparse

        rng = np.random.default_rng(0)
        n, d = 4000, 20000
        X = scipy.sparse.random(n, d, density=20 / d, format="csr", random_state=0)
        return X, np.argmax(X @ rng.standard_normal((d, 10)), axis=1)
    if data.startswith("big"):
        d = int(data[3:])
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, d))
        teacher = rng.standard_normal((d, 10))
        return X, np.argmax(X @ teacher, axis=1)
    if data == "digits":
        from dnnfast.datasets import load_digits  # shipped with dnnfast, the same data as scikit-learn's

        X, y = load_digits()
    else:
        import sklearn.datasets

        X, y = getattr(sklearn.datasets, "load_" + data)(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0), y


def worker(task):
    """Fit once on a slice (warm-up), then time whole fits; print one JSON line."""
    import warnings

    warnings.simplefilter("ignore")
    threads = task["threads"]
    wl = WORKLOADS[task["workload"]]
    if task["peer"] == "dnnfast":
        import dnnfast

        dnnfast.set_num_threads(threads)
        Est = dnnfast.MLPClassifier if wl["kind"] == CLF else dnnfast.MLPRegressor
    else:
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        Est = MLPClassifier if wl["kind"] == CLF else MLPRegressor
    X, y = load(wl["data"])
    params = dict(wl["params"], random_state=0)
    Est(**dict(params, max_iter=1)).fit(X[:500], y[:500])  # warm-up
    times, cpu = [], 0.0
    t_end = time.perf_counter() + TIMED_SECONDS
    while not times or (len(times) < MAX_FITS and time.perf_counter() < t_end):
        est = Est(**params)
        c0, t0 = time.process_time(), time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    out = {"seconds": statistics.median(times), "fits": len(times), "n_iter": int(est.n_iter_),
           "loss": float(est.loss_), "score": float(est.score(X, y)), "cores": cpu / sum(times),
           "sizes": [int(c.shape[0]) for c in est.coefs_] + [int(est.coefs_[-1].shape[1])], "rows": int(X.shape[0]),
           "inputs": X.nnz / X.shape[0] if hasattr(X, "nnz") else None}
    if task["peer"] == "dnnfast":
        # The float64 FMA peak at this thread count, sampled right after the
        # fits (this machine's speed moves over minutes): what the fit's work
        # could take at best, the bound a speed-up target is set against.
        out["peak_gflops"] = max(dnnfast._core.fma_peak_gflops("float64", threads) for _ in range(3))
    # cores: the process's CPU seconds per second of fitting, all its threads.
    print(json.dumps(out))


def run_one(peer, workload, threads, timeout):
    """One worker process: its JSON line, or {"error": why} (``workloads.run_worker``)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    return run_worker(__file__, {"peer": peer, "workload": workload, "threads": threads}, env, timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    ap.add_argument("--repeats", type=positive_int, default=5, help="processes per peer and workload (>= 1)")
    ap.add_argument("--threads", type=positive_int, default=1, help="thread count of every peer (>= 1)")
    ap.add_argument("--timeout", type=positive_seconds, default=1800,
                    help="seconds before a worker is killed (its workload then reads as an error)")
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
    if args.json and json_target_problem(args.json):
        ap.error(f"--json: {json_target_problem(args.json)}")
    if not have_sklearn():
        # A missing optional peer is a skip, as in run.py.
        print("bench_sklearn.py: skipped: scikit-learn is not installed (pip install scikit-learn); it compares "
              "the fit time of dnnfast's MLPClassifier / MLPRegressor against scikit-learn's on "
              + ", ".join(keys), flush=True)
        return
    results = {k: {p: [] for p in PEERS} for k in keys}
    errors = {}  # workload -> "peer: why" of its first failed worker; not run again
    load_start = os.getloadavg()[0]
    for r in range(args.repeats):
        for k in keys:
            if k in errors:
                continue
            for p in (PEERS if r % 2 == 0 else PEERS[::-1]):  # interleaved, alternating who goes first
                res = run_one(p, k, args.threads, args.timeout)
                if "error" in res:
                    errors[k] = f"{p}: {res['error']}"
                    print(f"  [{r + 1}/{args.repeats}] {k:12s} {p:8s} ERROR {res['error']}", flush=True)
                    break
                results[k][p].append(res)
                print(f"  [{r + 1}/{args.repeats}] {k:12s} {p:8s} {res['seconds']:8.3f} s  "
                      f"({res['fits']} fits)  n_iter={res['n_iter']}  loss={res['loss']:.6g}", flush=True)
    load = max(load_start, os.getloadavg()[0])
    cpus = os.cpu_count() or 1
    print(f"\nfit time, median of {args.repeats} processes (threads={args.threads}); load average "
          f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, {cpus} CPUs\n")
    print("| workload | dnnfast s | scikit-learn s | speed-up | target | spread (dnnfast / sklearn) | "
          "cores (dnnfast / sklearn) | n_iter (dnnfast / sklearn) | % peak (dnnfast / at the target) |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for k in keys:
        if k in errors:
            summary[k] = dict(error=errors[k], target=WORKLOADS[k]["target"], status="ERROR")
            print(f"| {k} | error ({errors[k]}) | - | - | {'-' if WORKLOADS[k]['target'] is None else 'ERROR'} "
                  "| - | - | - | - |")
            continue
        med = {p: statistics.median(x["seconds"] for x in results[k][p]) for p in PEERS}
        sp = {p: spread([x["seconds"] for x in results[k][p]]) for p in PEERS}
        its = {p: results[k][p][0]["n_iter"] for p in PEERS}
        cores = {p: statistics.median(x["cores"] for x in results[k][p]) for p in PEERS}
        ratio = med["sklearn"] / med["dnnfast"]
        target = WORKLOADS[k]["target"]
        # The fit's products as work done (workloads.flops_per_sample) over
        # the float64 FMA peak: the share of it dnnfast ran at, and the share
        # a fit `target` times faster than scikit-learn's would need. Over
        # 100%, the target is beyond this machine's FMA units, whatever the
        # code around the products does.
        d = results[k]["dnnfast"][0]
        flops = its["dnnfast"] * d["rows"] * flops_per_sample(d["sizes"], d.get("inputs"))
        peak = statistics.median(x["peak_gflops"] for x in results[k]["dnnfast"]) * 1e9
        share = flops / med["dnnfast"] / peak
        need = flops / (med["sklearn"] / target) / peak if target is not None else None
        status = ""
        if target is not None:
            why = [f"load {load:.1f} > {cpus} CPUs"] if load > cpus else []
            why += [f"{p} spread {'n/a' if v is None else f'{100 * v:.0f}%'}" for p, v in sp.items()
                    if v is None or v > MAX_SPREAD]
            why += excess_cores(cores, args.threads)
            verdict = "PASS" if ratio >= target else "FAIL"
            beyond = "; beyond the FMA peak" if need > 1 else ""
            status = (f"{verdict} (>= {target:g}x{beyond})" if not why
                      else f"UNRELIABLE ({verdict}{beyond}; {', '.join(why)})")
        summary[k] = dict(median_seconds=med, speedup=ratio, n_iter=its, spread=sp, cores=cores, target=target,
                          status=status, gflop=flops / 1e9, peak_gflops=peak / 1e9, peak_share=share,
                          peak_share_at_target=need)
        sps = " / ".join("-" if v is None else f"{100 * v:.0f}%" for v in sp.values())
        print(f"| {k} | {med['dnnfast']:.4f} | {med['sklearn']:.4f} | {ratio:.2f}x | {status or '-'} | {sps} | "
              f"{cores['dnnfast']:.2f} / {cores['sklearn']:.2f} | {its['dnnfast']} / {its['sklearn']} | "
              f"{100 * share:.0f}% / {'-' if need is None else f'{100 * need:.0f}%'} |")
    if len(errors) < len(keys):
        print("\n% peak: the fit's floating-point operations in its products (forward, dW, and dA but the "
              "first layer's; benchmarks/workloads.py, flops_per_sample) a second, over dnnfast's float64 FMA "
              "peak at this thread count (the median of its processes' samples); \"at the target\": the share "
              "a fit target times faster than scikit-learn's would need, over 100% beyond the FMA peak.")
    if args.json:
        try:
            write_json(args.json, {"threads": args.threads, "repeats": args.repeats, "runs": results,
                                   "summary": summary, "errors": errors})
        except OSError as e:
            sys.stderr.write(f"bench_sklearn.py: --json {args.json}: cannot write it ({e.strerror or e}); the "
                             "table above has the results, and a file that was there is unchanged\n")
            sys.exit(EX_IOERR)
    if errors:
        sys.exit(f"bench_sklearn.py: {len(errors)} of {len(keys)} workload(s) failed: "
                 + "; ".join(f"{k} ({e})" for k, e in errors.items()))


if __name__ == "__main__":
    cli(main, "bench_sklearn.py")
