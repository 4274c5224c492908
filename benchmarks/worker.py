"""One measurement in a fresh process: ``python worker.py '<json task>'``.

The driver (``run.py``) starts this script once per peer and workload, with
the thread count already fixed in the environment (OMP_NUM_THREADS and the
BLAS variables), and reads the single JSON line it prints last. Every task
warms up before it is timed; data come from ``peers.make_data`` with a fixed
seed, so every peer sees the same numbers.

Task kinds:
  train    -- fit fresh networks for ``epochs`` over ``rows`` until ``min_time``
              seconds of fitting; reports the median fit's seconds (and,
              for JAX, the compile seconds, outside the fits)
  gemm     -- time C = op(A) op(B) for a list of shapes; median seconds each
  predict  -- latency of predict() on one row; median microseconds over
              at least `calls` calls and `min_time` seconds
  memory   -- peak RSS of dnnfast.Network.fit on a large float32 X
  info     -- versions, GEMM kernel name and measured FMA peaks
  peaks    -- the measured FMA peaks alone (run.py samples them through a run)

At two threads or more, train, gemm and predict also report ``cross_core``:
cross_core_slowdown() just before and just after the task.
"""
import json
import os
import resource
import sys
import time
import traceback

import numpy as np

import peers


def set_threads(peer, threads):
    """Fix the thread count inside the process, each peer by its own means.
    run.py has set OMP_NUM_THREADS and the BLAS variables (OPENBLAS_NUM_THREADS,
    ...) before starting the process: that is what sizes numpy.matmul's and
    scikit-learn's BLAS (and NumPy's, under dnnfast.reference); PyTorch is
    told again by torch.set_num_threads, dnnfast by dnnfast.set_num_threads,
    and JAX is confined to that many CPUs.

    Only the dnnfast and reference peers import dnnfast: a yardstick's
    process never loads the library it is measured against (its OpenMP
    runtime, its threads)."""
    if peer == "jax":
        # XLA's CPU client reads no OMP/BLAS variable and has no flag for a
        # thread count: it sizes its pools from the CPUs the process may use,
        # when JAX starts (so set here, before its import). What confines it
        # is that CPU affinity: as many CPUs as threads, one included. The
        # flag for no Eigen intra-op pool is not enough at one thread: the
        # runtime still runs independent operations of the program at once
        # on its other threads (the W1 epoch used 1.7 CPU-seconds per second
        # on the 2-core machine, 107k samples/s; 64-80k on one core). XLA
        # ignores a token without a leading "--" (and refuses an unknown
        # flag with one): intra_op_parallelism_threads is no XLA flag.
        cpus = sorted(os.sched_getaffinity(0))
        if threads == 1:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
    if peer == "torch":
        import torch
        torch.set_num_threads(threads)
    if peer in ("dnnfast", "reference"):
        try:
            import dnnfast
            dnnfast.set_num_threads(threads)
        except ImportError:  # the task reports it
            pass


def make_data_then_settle(rows, wl):
    """``peers.make_data`` for the workload, then a wait: its `X @ teacher`
    leaves NumPy's OpenBLAS threads spinning for about 0.1 s, and a peer with
    threads of its own (dnnfast, PyTorch) timed in that window shares a core
    with them. Waiting until they sleep times every peer on its own
    (bench_busy_cores.py measures dnnfast in that situation). Without it, a
    2-thread one-row predict measured 22-32 us instead of 17: dnnfast's first
    teams start late there and it then runs on one thread for a while."""
    data = peers.make_data(rows, wl["sizes"][0], wl["sizes"][-1], wl["dtype"])
    time.sleep(0.3)
    return data


def task_train(t):
    wl = t["workload"]
    X, Y = make_data_then_settle(t["rows"], wl)
    trainer = peers.TRAINERS[t["peer"]]
    # Warm-up: one epoch over a slice, on a throw-away network, so that thread
    # pools, allocators, lazy imports and code paths are hot before timing.
    # A peer that compiles per shape (JAX) compiles first, timed on its own
    # and reported as compile_seconds, then warms up on the full shape: a
    # slice would compile another program.
    fit = trainer(wl, seed=1)
    compile_seconds = None
    if hasattr(fit, "compile"):
        compile_seconds = fit.compile(X, Y, t["epochs"])
        fit(X, Y, t["epochs"])
    else:
        n_warm = min(len(X), max(wl["batch_size"] or 0, t.get("warm_rows", 512)))
        fit(X[:n_warm], Y[:n_warm], 1)
    # Fits of a fresh network (built untimed) until `min_time` seconds of
    # fitting have passed; the median fit is the figure. Every peer is timed
    # over about the same time, as in task_predict: one W1 fit is 0.11 s of
    # dnnfast's and 0.25-0.3 s of the others', and a single fit of the faster
    # peer fell inside or outside the machine's slow spells (see there) more
    # often than the slower peers' did.
    # The process's CPU time over the fits, all its threads, says how many
    # cores the peer kept busy: the check that a peer at n threads used n.
    times, cpu = [], 0.0
    while not times or sum(times) < t.get("min_time", 0.0):
        fit = trainer(wl, seed=0)
        c0, t0 = time.process_time(), time.perf_counter()
        figures = fit(X, Y, t["epochs"])
        times.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    out = {"seconds": float(np.median(times)), "fits": len(times), "samples": t["rows"] * t["epochs"],
           "cores": cpu / sum(times)}
    if compile_seconds is not None:
        out["compile_seconds"] = compile_seconds
    if isinstance(figures, dict):
        out.update(figures)  # the last fit's, e.g. JAX's first and last losses
    return out


def _call_seconds(f, min_time, min_calls):
    """Seconds of each call of f(), calling it at least min_calls times and
    until min_time has passed; and the cores the calls kept busy (process
    CPU seconds per second)."""
    times = []
    c0 = time.process_time()
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    cores = (time.process_time() - c0) / max(time.perf_counter() - start, 1e-9)
    return np.array(times), cores


def _median_call_seconds(f, min_time, min_calls=3):
    """Median seconds per call of f(), calling it until min_time has passed."""
    times, _ = _call_seconds(f, min_time, min_calls)
    return float(np.median(times)), len(times)


def task_gemm(t):
    rng = np.random.default_rng(0)
    dtype = np.dtype(t["dtype"])
    if t["peer"] == "dnnfast":
        from dnnfast import _core

        def mul(A, B, ta, tb):
            # Positional: pybind11 parses keyword arguments on every call,
            # about 0.3 us more, 6% of a 64x10x128 product.
            return lambda: _core.gemm(A, B, ta, tb)
    else:
        def mul(A, B, ta, tb):
            # .T views, as a NumPy user writes A.T @ B: matmul hands the
            # transposed layout to BLAS without a copy.
            Av = A.T if ta else A
            Bv = B.T if tb else B
            return lambda: np.matmul(Av, Bv)
    out = []
    for case in t["cases"]:
        M, N, K, ta, tb = case["M"], case["N"], case["K"], case["trans_a"], case["trans_b"]
        A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
        B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
        f = mul(A, B, ta, tb)
        t0 = time.perf_counter()
        f()  # warm-up (page faults, packing buffers, thread pool)
        first = time.perf_counter() - t0
        if first > 5.0:  # a very slow kernel: the one call is the measurement
            secs, calls = first, 1
        elif first > 4 * t["min_time"]:  # a slow kernel: one more call is enough to time it
            secs, calls = _median_call_seconds(f, 0.0, min_calls=1)
        else:
            f()
            secs, calls = _median_call_seconds(f, t["min_time"])
        out.append(dict(case, seconds=secs, calls=calls))
    return {"cases": out}


def task_predict(t):
    wl = t["workload"]
    X, Y = make_data_then_settle(256, wl)
    predict = peers.PREDICTORS[t["peer"]](wl, X, Y)
    x1 = np.ascontiguousarray(X[:1])
    for _ in range(t["warm_calls"]):
        predict(x1)
    # At least `calls` calls AND `min_time` seconds, the same time for every
    # peer: this machine has spells, from 40 ms to seconds long, in which a
    # core runs 1.3-1.7x slower (seen within one process, at random times), so
    # a window of 3000 x 15 us = 45 ms lands in one spell or none, and the
    # per-process median of a fast peer followed the spell more than PyTorch's
    # 225 ms did.
    times, cores = _call_seconds(lambda: predict(x1), t.get("min_time", 0.0), t["calls"])
    times = times * 1e6
    return {"median_us": float(np.median(times)), "p10_us": float(np.percentile(times, 10)),
            "p90_us": float(np.percentile(times, 90)), "calls": len(times), "cores": cores}


def _current_rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def task_memory(t):
    import dnnfast
    wl = t["workload"]
    rng = np.random.default_rng(0)
    # Generated straight into float32, so that no float64 temporary raises the
    # peak before fit starts.
    X = rng.standard_normal((t["rows"], wl["sizes"][0]), dtype=np.float32)
    Y = rng.integers(0, wl["sizes"][-1], size=t["rows"], dtype=np.int64)
    net = dnnfast.Network(sizes=wl["sizes"], activations=wl["activations"], loss=wl["loss"],
                          dtype="float32", seed=0)
    rss_before = _current_rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    net.fit(X, Y, epochs=t["epochs"], batch_size=wl["batch_size"], learning_rate=wl["learning_rate"],
            shuffle=True)
    secs = time.perf_counter() - t0
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss_before": rss_before, "peak_before": peak_before, "peak_after": peak_after,
            "x_bytes": X.nbytes, "y_bytes": Y.nbytes, "seconds": secs}


def _fma_peaks(threads_list):
    """{"dtype/threads": GFLOP/s} from dnnfast._core.fma_peak_gflops; {} where it is missing."""
    from dnnfast import _core
    peak = getattr(_core, "fma_peak_gflops", None)
    if peak is None:
        return {}
    # Each the best of three: a moment of load on a shared machine does not
    # lower it.
    return {f"{dtype}/{th}": max(float(peak(dtype, th)) for _ in range(3))
            for dtype in ("float32", "float64") for th in threads_list}


def task_peaks(t):
    return {"fma_peak_gflops": _fma_peaks(t["threads_list"])}


def task_info(t):
    info = {"numpy": np.__version__, "python": sys.version.split()[0]}
    try:
        import dnnfast
        from dnnfast import _core
        info["dnnfast"] = getattr(dnnfast, "__version__", "?")
        info["has_openmp"] = bool(getattr(_core, "has_openmp", lambda: None)())
        kernel = getattr(_core, "gemm_kernel", None)
        info["gemm_kernel"] = kernel() if kernel else None
        info["fma_peak_gflops"] = _fma_peaks(t["threads_list"])
        info["has_network"] = hasattr(dnnfast, "Network")
        try:
            import dnnfast.reference  # noqa: F401
            info["has_reference"] = True
        except ImportError:
            info["has_reference"] = False
    except ImportError as e:
        info["dnnfast_error"] = str(e)
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        import sklearn
        info["sklearn"] = sklearn.__version__
    except ImportError:
        pass
    try:  # the version without importing JAX, which starts its runtime
        from importlib.metadata import PackageNotFoundError, version
        info["jax"] = version("jax")
    except PackageNotFoundError:
        pass
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = sorted({f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})"
                               for p in threadpool_info() if p.get("user_api") == "blas"})
    except ImportError:
        pass
    return info


def cross_core_slowdown(nbytes=8 << 20, reps=3):
    """How many times slower one of the process's CPUs reads nbytes that
    another CPU has just written than nbytes it wrote itself (the best of
    reps each); None with fewer than two CPUs. About 1 where the two cores
    share a last-level cache. The process is moved between the first two of
    its CPUs and put back on all of them: pool threads started later inherit
    the full set.

    Why: on the Zen 4 KVM guest, in spells of 5-60 s, this read was 1.6-2.5x
    slower (0.9-1.3x otherwise): the host had placed the two virtual CPUs on
    cores that share no cache. Each core alone, and both at once on their
    own data, ran at full speed, but every multi-threaded peer exchanges
    data between its threads, and dnnfast's W1 at two threads fell from
    about 160k to 105k samples/s for the length of a spell (BENCHMARKS.md)."""
    mask = os.sched_getaffinity(0)
    cpus = sorted(mask)
    if len(cpus) < 2:
        return None
    theirs, own = np.empty(nbytes // 8), np.empty(nbytes // 8)
    cross = local = float("inf")
    try:
        for r in range(reps):
            os.sched_setaffinity(0, {cpus[0]})
            np.copyto(theirs, float(r))
            os.sched_setaffinity(0, {cpus[1]})
            t0 = time.perf_counter()
            theirs.sum()
            cross = min(cross, time.perf_counter() - t0)
            np.copyto(own, float(r))
            t0 = time.perf_counter()
            own.sum()
            local = min(local, time.perf_counter() - t0)
    finally:
        os.sched_setaffinity(0, mask)
    return cross / local


TASKS = {"train": task_train, "gemm": task_gemm, "predict": task_predict, "memory": task_memory,
         "info": task_info, "peaks": task_peaks}


def main():
    task = json.loads(sys.argv[1])
    try:
        set_threads(task.get("peer"), task["threads"])
        # Where the peer runs threads: how far apart the cores were, just
        # before and just after the measurement (run.py flags such runs).
        probe = task["threads"] >= 2 and task["kind"] in ("train", "gemm", "predict")
        before = cross_core_slowdown() if probe else None
        result = {"ok": True, **TASKS[task["kind"]](task)}
        if probe:
            result["cross_core"] = [before, cross_core_slowdown()]
    except Exception as e:  # reported to the driver, which prints it in the table
        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
