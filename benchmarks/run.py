"""dnnfast benchmark suite: ``python -m benchmarks [SUITE ...] [--list] [--quick] [--threads 1,2]``
(or ``python benchmarks/run.py ...``; ``--only W1,G`` picks workloads one by one).

Every peer x workload runs in its own fresh process (``worker.py``), with the
same thread count for every peer; runs are interleaved round-robin over the
peers and repeated, and the median is reported. Only ratios measured in one
run are meaningful: absolute figures move with the load on the machine.
"""
import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

from workloads import (ALL_KEYS, EX_IOERR, FAR_CORES, MAX_CORES_OVER, MAX_SPREAD, PEER_MODULE, PEER_NAME,
                       PREDICT_PEERS, SUITES, TRAIN_PEERS, WORKLOADS, DESCRIPTIONS, excess_cores, far_cores,
                       flops_per_sample, gemm_cases, json_target_problem, median, network_spec, positive_seconds,
                       run_child, spread, MAX_TIMEOUT, Terminated, write_json)

#: M (fit's peak memory) runs in at most this many processes: the figure does not move between them.
M_REPEATS = 3

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")
MB = 1024 * 1024


# --------------------------------------------------------------------------- running workers

def child_env(threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("PYTHONPATH", None)  # the installed dnnfast, never the source tree
    return env


def run_worker(task, timeout):
    t0 = time.perf_counter()
    try:
        p = run_child([sys.executable, WORKER, json.dumps(task)], env=child_env(task["threads"]), cwd=HERE,
                      timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:g} s", "wall": time.perf_counter() - t0}
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        err = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"exit {p.returncode}: {err[:200]}"}
    res = json.loads(lines[-1])
    res["wall"] = time.perf_counter() - t0
    return res


def installed(peer):
    return importlib.util.find_spec(PEER_MODULE[peer]) is not None


def interleave(jobs, repeats, timeout, log, out):
    """Run every job `repeats` times, round-robin, appending each result to
    out[job id] as it comes (an interrupted run keeps what it measured)."""
    for r in range(repeats):
        for j in jobs:
            res = run_worker(j["task"], timeout)
            out[j["id"]].append(res)
            status = "ok" if res.get("ok") else "ERROR " + res.get("error", "")
            log(f"  [{r + 1}/{repeats}] {j['id']:<28s} {res.get('wall', 0):6.1f}s {status}")
            if not res.get("ok") and r == 0:
                j["failed"] = True
        jobs = [j for j in jobs if not j.get("failed")]  # a broken peer is not retried


# --------------------------------------------------------------------------- formatting helpers

def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def fmt_pct(x):
    return "n/a" if x is None else f"{100 * x:.0f}%"


PEAK_LOW_NOTE = ("* faster than the FMA peak measured in this run: that peak (the median of the samples "
                 "through the run) was taken while the machine was busy or slow, so this run's fractions of "
                 "it mean nothing")


def fmt_peak(gflops, peak, low):
    """gflops as a share of the measured peak; a rate above the peak proves
    the peak was measured low, and is recorded in `low` rather than printed
    as more than 100%."""
    if not peak:
        return "n/a"
    if gflops > peak:
        low.add(peak)
        return ">peak*"
    return fmt_pct(gflops / peak)


def table(headers, rows):
    """Plain-text table; a row of two cells whose second is a str spanning the rest (errors, skips)."""
    full = [r for r in rows if len(r) == len(headers)]
    widths = [max([len(str(h))] + [len(str(r[i])) for r in full]) for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(f"{str(c):<{w}}" if i == 0 else f"{str(c):>{w}}"
                         for i, (c, w) in enumerate(zip(cells, widths)))
    line = fmt(headers)
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(fmt(r) if len(r) == len(headers) else f"{str(r[0]):<{widths[0]}}  {r[1]}")
    return "\n".join(out)


def first_error(results):
    for r in results:
        if not r.get("ok"):
            return r.get("error", "?")
    return None


def failure(results):
    """Why a job has no good result: 'error: ' and its first error, or that
    it never ran (the run was interrupted before it)."""
    e = first_error(results or [])
    return NOT_RUN if e is None else f"error: {e}"


NOT_RUN = "not run (interrupted)"


# --------------------------------------------------------------------------- suites and --list

def list_text():
    """--list: the suites, then the workloads, one line each."""
    out = ["suites (python -m benchmarks [SUITE ...], default all):"]
    for name, su in SUITES.items():
        what = ",".join(su["keys"]) if "keys" in su else su["script"]
        out.append(f"  {name:<12s} {what:<20s} {su['about']}")
    out += ["", "workloads (--only KEY,KEY picks them one by one):"]
    for k in ALL_KEYS:
        out.append(f"  {k:<3s} {DESCRIPTIONS[k]}")
    out += ["", "training peers: " + ", ".join(PEER_NAME[p] for p in TRAIN_PEERS)
            + "; JAX on " + ",".join(k for k, w in WORKLOADS.items() if "jax" in w["peers"])
            + "; a peer that is not installed is skipped with a line saying so"]
    return "\n".join(out)


def selection(suites, only, error):
    """The workload keys (in ALL_KEYS order, each once) and the script suites to run."""
    if only is not None:
        if suites:
            error(f"give suites ({' '.join(suites)}) or --only, not both")
        keys = [k.strip().upper() for k in only.split(",") if k.strip()]
        if not keys:  # an empty --only ran the whole suite, "--only ," nothing
            error(f"--only: no workload given; choose from {ALL_KEYS}")
        bad = [k for k in keys if k not in ALL_KEYS]
        if bad:
            error(f"unknown workload(s) {bad}; choose from {ALL_KEYS}")
        return [k for k in ALL_KEYS if k in keys], []
    names = suites or ["all"]
    bad = [n for n in names if n not in SUITES]
    if bad:
        error(f"unknown suite(s) {bad}; choose from {list(SUITES)} (--list describes them)")
    keys, scripts = set(), []
    for n in names:
        su = SUITES[n]
        keys |= set(su.get("keys", []))
        for sc in ([n] if "script" in su else []) + su.get("scripts", []):
            if sc not in scripts:
                scripts.append(sc)
    return [k for k in ALL_KEYS if k in keys], scripts


def run_script_suite(name, quick, log):
    """A suite that is a separate script: run it as it is, with its own
    defaults, and pass its report through."""
    path = os.path.join(HERE, SUITES[name]["script"])
    head = f"{name}: python benchmarks/{SUITES[name]['script']}"
    if not os.path.exists(path):
        return f"{head}: skipped (the script is not in this tree)", 0
    if quick:
        return f"{head}: skipped with --quick (it has its own options; run it directly)", 0
    log(f"== {name} (python benchmarks/{SUITES[name]['script']}, its own defaults)")
    p = run_child([sys.executable, path], cwd=os.path.dirname(HERE))
    sys.stderr.write(p.stderr)
    return f"{head} (exit {p.returncode})\n{p.stdout.rstrip()}", p.returncode


# --------------------------------------------------------------------------- reliability

def unreliable_reasons(load, cpus, series):
    """Why a comparison cannot be read as PASS/FAIL (empty: it can).

    load: the higher of the 1-minute load averages at the start and the end;
    series: {name: per-process figures} of every compared peer."""
    reasons = []
    if load is not None and load > cpus:
        reasons.append(f"load average {load:.1f} > {cpus} CPUs")
    for name, xs in series.items():
        sp = spread(xs)
        if sp is None:
            reasons.append(f"{name}: {len(xs)} run(s), spread unknown")
        elif sp > MAX_SPREAD:
            reasons.append(f"{name} spread {100 * sp:.1f}% > {100 * MAX_SPREAD:.0f}%")
    return reasons


def fmt_spread(xs):
    sp = spread(xs)
    return "n/a" if sp is None else f"{100 * sp:.0f}%"


def median_cores(results):
    """The median over a peer's processes of the cores each kept busy (its
    CPU seconds per second of the timed part); None where not reported."""
    cs = [r["cores"] for r in results if r.get("ok") and r.get("cores") is not None]
    return median(cs) if cs else None


def fmt_cores(c):
    return "n/a" if c is None else f"{c:.2f}"


def cross_core_runs(results):
    """Per run of a peer that reported the cross-core probe (two threads or
    more): the larger of its figures before and after the run."""
    out = []
    for r in results:
        xs = [x for x in (r.get("cross_core") or []) if x is not None] if r.get("ok") else []
        if xs:
            out.append(max(xs))
    return out


def cross_core_note(probes):
    """The line under a table at two threads or more: each peer's range of
    the cross-core probe, and its runs whose cores were far apart."""
    parts = [f"{name} {min(xs):.1f}-{max(xs):.1f}x" + (f" ({sum(x > FAR_CORES for x in xs)} of {len(xs)} runs far)"
                                                        if max(xs) > FAR_CORES else "")
             for name, xs in probes.items() if xs]
    if not parts:
        return None
    return ("cross-core probe (a core reading 8 MB another core just wrote, against 8 MB of its own; the larger "
            f"of before and after each run; far apart above {FAR_CORES:g}x): " + ", ".join(parts))


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="*", metavar="SUITE",
                    help="suites to run: " + ", ".join(SUITES) + " (default: all; --list describes them)")
    ap.add_argument("--list", action="store_true", help="print the suites and workloads, one line each, and exit")
    ap.add_argument("--quick", action="store_true", help="small sizes, 2 repeats, 2 threads: a smoke run of a few minutes")
    ap.add_argument("--only", default=None,
                    help="comma-separated workloads from " + ",".join(ALL_KEYS) + ", instead of suites")
    ap.add_argument("--threads", default=None,
                    help="comma-separated thread counts, each run for every peer (default 1,2; --quick: 2)")
    ap.add_argument("--repeats", type=int, default=None, help="processes per peer and workload (default 5; --quick 2)")
    ap.add_argument("--timeout", type=positive_seconds, default=600.0,
                    help=f"seconds before a worker is killed (> 0, at most {MAX_TIMEOUT}: a week)")
    ap.add_argument("--json", default=None, help="save the workloads' raw results to this file (benchmarks/compare.py "
                    "reads it); not the script suites'")
    args = ap.parse_args(argv)
    if args.list:
        print(list_text())
        return

    keys, scripts = selection(args.suites, args.only, ap.error)
    if args.json and not keys:  # else silently no file
        ap.error(f"--json holds the workloads' results ({','.join(ALL_KEYS)}), and {' and '.join(scripts)} "
                 "run none: the scripts report on their own (python benchmarks/bench_sklearn.py --json FILE)")
    q = 1 if args.quick else 0
    threads = []
    # At most the CPUs this process may use: JAX is confined to as many CPUs
    # as threads (worker.set_threads), and cannot be given more, so beyond
    # them the peers would not run with the same count (100000 was taken, and
    # every worker failed). Two at least, the default's count, wherever it runs.
    max_threads = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    for t in (args.threads if args.threads is not None else ("2" if args.quick else "1,2")).split(","):
        try:
            th = int(t)
        except ValueError:
            th = 0
        if not 1 <= th <= max_threads:
            ap.error(f"--threads: comma-separated thread counts from 1 to {max_threads} (the CPUs this process may "
                     f"use), got {args.threads!r}")
        if th not in threads:
            threads.append(th)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    if repeats < 1:
        ap.error(f"--repeats must be >= 1, got {repeats}")
    if args.json and json_target_problem(args.json):  # else found at the end of a 15-minute run
        ap.error(f"--json: {json_target_problem(args.json)}")
    # Seconds of fitting per training process (at least one fit): the same
    # exposure to the machine's slow spells for fast and slow peers.
    train_min_time = 0.0 if args.quick else 1.0
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    cpus = os.cpu_count()

    report, doc, broken, interrupted = [], None, [], None
    if keys:
        report, doc, broken, interrupted = run_workloads(args, keys, q, threads, repeats, train_min_time, log,
                                                         t_start, load_start, cpus)
    failed = []
    for name in scripts:
        if interrupted:
            report += ["", f"{name}: {NOT_RUN}"]
            continue
        try:
            text, rc = run_script_suite(name, args.quick, log)
        except KeyboardInterrupt as e:  # the script was killed (run_child): its output is lost
            interrupted = e
            text, rc = f"{name}: python benchmarks/{SUITES[name]['script']}: interrupted, its report lost", 0
        report += ["", text]
        if rc:
            failed.append(name)
    if interrupted:
        report += ["", f"INTERRUPTED ({interruption(interrupted)}): the report above gives what was measured "
                       "before it"]
    # The report first: a --json that cannot be written loses the file, not
    # the run's results; and the JSON whatever became of stdout.
    try:
        print("\n".join(report).lstrip("\n"), flush=True)
    finally:
        if args.json and doc is not None:
            try:
                write_json(args.json, doc)
            except OSError as e:
                sys.stderr.write(f"{ap.prog}: --json {args.json}: cannot write it ({e.strerror or e}); the report "
                                 "has the results, and a file that was there is unchanged\n")
                sys.exit(EX_IOERR)
            log(f"raw results{' (of the interrupted run)' if interrupted else ''} written to {args.json}"
            + (f" (the workloads'; not those of {', '.join(scripts)})" if scripts else ""))
    if interrupted:
        raise interrupted  # the entry point's status: 130, 143 for SIGTERM
    why = ([f"{len(broken)} worker(s) failed ({', '.join(broken)}; their errors above)"] if broken else []) + (
        [f"{', '.join(failed)}: the script failed (its output above)"] if failed else [])
    if why:  # the report is incomplete
        sys.exit(f"{ap.prog}: " + "; ".join(why))


def run_workloads(args, keys, q, threads, repeats, train_min_time, log, t_start, load_start, cpus):
    # Ctrl-C or SIGTERM (the KeyboardInterrupt) stops the measurements; the
    # report then gives what was measured before it, marked interrupted.
    interrupted = None
    # ---- info: versions, kernel, FMA peaks (one process)
    peak_threads = sorted(set(threads) | {1, 2})
    info = {"ok": False, "error": NOT_RUN}
    try:
        info = run_worker({"kind": "info", "peer": "dnnfast", "threads": max(threads),
                           "threads_list": peak_threads}, args.timeout)
    except KeyboardInterrupt as e:
        interrupted = e
    # The FMA peaks are sampled through the run: before every group of jobs
    # and at the end, each sample the best of three short measurements. The
    # figure is their median. The Xeon's speed moved by a third within half
    # an hour (float32 peak 187-245 GFLOP/s), and 1024^3 timed next to a
    # peak measurement ran at 81-84% of it; against the best sample of a
    # run, the figure before, the suite put it at 65%.
    peak_samples = {k: [v] for k, v in (info.get("fma_peak_gflops") or {}).items()}

    peaks_failed = []

    def sample_peaks():
        if peak_samples:
            res = run_worker({"kind": "peaks", "peer": "dnnfast", "threads": max(threads),
                              "threads_list": peak_threads}, args.timeout)
            if not res.get("ok"):
                peaks_failed.append(res.get("error"))
            for k, v in (res.get("fma_peak_gflops") or {}).items():
                peak_samples.setdefault(k, []).append(v)

    peaks = {}  # the medians, once the run is over

    def peak(dtype, th):
        return peaks.get(f"{dtype}/{th}")

    commit = None
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(HERE), "log", "-1", "--format=%h"],
                                capture_output=True, text=True).stdout.strip() or None
    except OSError:
        pass
    meta = {"commit": commit, "threads": threads, "repeats": repeats, "quick": bool(args.quick),
            "keys": keys, "machine": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
            "cpus": cpus, "max_spread": MAX_SPREAD, "load_start": load_start, "info": info}

    # ---- build the job groups
    groups = []  # (key, threads, jobs)
    for key in keys:
        if key in WORKLOADS:
            rows, epochs = WORKLOADS[key]["rows"][q], WORKLOADS[key]["epochs"][q]
            for th in threads:
                jobs = [dict(id=f"{key}/{th}t/{p}", peer=p,
                             task=dict(kind="train", peer=p, threads=th, workload=network_spec(key), rows=rows,
                                       epochs=epochs, min_time=train_min_time))
                        for p in WORKLOADS[key]["peers"] if installed(p)]
                groups.append((key, th, jobs))
        elif key == "G":
            cases = gemm_cases(bool(args.quick))
            for th in threads:
                jobs = [dict(id=f"G/{th}t/{p}", peer=p,
                             task=dict(kind="gemm", peer=p, threads=th, dtype="float32", cases=cases,
                                       min_time=0.1 if args.quick else 0.15))
                        for p in ("numpy", "dnnfast")]
                groups.append((key, th, jobs))
            if 1 not in threads:  # the 1-thread peak check needs its own run
                c = [dict(label="square 1024", group="square", M=1024, N=1024, K=1024, trans_a=False, trans_b=False)]
                groups.append(("G", 1, [dict(id=f"G/1t/{p}", peer=p,
                                             task=dict(kind="gemm", peer=p, threads=1, dtype="float32", cases=c,
                                                       min_time=0.25)) for p in ("numpy", "dnnfast")]))
        elif key == "P":
            for th in threads:
                jobs = [dict(id=f"P/{th}t/{p}", peer=p,
                             task=dict(kind="predict", peer=p, threads=th, workload=network_spec("W1"),
                                       warm_calls=200, calls=1000 if args.quick else 3000,
                                       min_time=0.2 if args.quick else 1.5))
                        for p in PREDICT_PEERS if installed(p)]
                groups.append((key, th, jobs))
        elif key == "M":
            th = max(threads)
            groups.append((key, th, [dict(id=f"M/{th}t/dnnfast", peer="dnnfast",
                                          task=dict(kind="memory", peer="dnnfast", threads=th,
                                                    workload=network_spec("W1"),
                                                    rows=20000 if args.quick else 60000, epochs=1))]))
        elif key == "S":
            have = "W3" in keys and {1, 2} <= set(threads)
            if not have:
                rows, epochs = WORKLOADS["W3"]["rows"][q], WORKLOADS["W3"]["epochs"][q]
                groups.append(("S", 0, [dict(id=f"S/{th}t/dnnfast", peer="dnnfast",
                                             task=dict(kind="train", peer="dnnfast", threads=th,
                                                       workload=network_spec("W3"), rows=rows, epochs=epochs,
                                                       min_time=train_min_time))
                                        for th in (1, 2)]))

    # ---- run
    results = {j["id"]: [] for _, _, jobs in groups for j in jobs}  # job id -> list of results
    try:
        for key, th, jobs in groups:
            if interrupted:
                break
            reps = min(repeats, M_REPEATS) if key == "M" else repeats
            log(f"== {key} (dnnfast, 1 vs 2 threads; {reps} repeats)" if key == "S" else
                f"== {key} ({th} thread{'s' if th != 1 else ''}; {len(jobs)} peers x {reps} repeats)")
            sample_peaks()
            interleave(jobs, reps, args.timeout, log, results)
        if not interrupted:
            sample_peaks()
    except KeyboardInterrupt as e:
        interrupted = e
    if interrupted:
        log("interrupted: the report gives what was measured before")
    runs_json = [{"id": j["id"], "repeat": i, "task": j["task"], "result": r}
                 for _, _, jobs in groups for j in jobs for i, r in enumerate(results[j["id"]])]
    peaks.update({k: median(v) for k, v in peak_samples.items()})
    meta["fma_peak_samples"] = peak_samples
    meta["interrupted"] = bool(interrupted)
    load_end = os.getloadavg()[0]
    meta["load_end"] = load_end
    busy = max(load_start, load_end)

    # ---- report
    report = []
    p = report.append
    p("dnnfast benchmark results")
    p("=" * 25)
    p(f"commit {commit or '?'}; {meta['cpu_model']}, {cpus} CPUs; threads {threads}; "
      f"{repeats} interleaved fresh-process repeats per peer (M: {min(repeats, M_REPEATS)}), median reported"
      + ("; QUICK run (small sizes)" if args.quick else ""))
    if interrupted:
        p(f"INTERRUPTED ({interruption(interrupted)}) after {time.perf_counter() - t_start:.0f} s: the figures "
          f"below are those measured before it; a row reading '{NOT_RUN}' was not measured")
    # Why the GEMM kernel and the FMA peak are unknown, where they are: the
    # lines below said "gemm_kernel() not available" after the info worker
    # had failed, blaming the build.
    if not info.get("ok"):
        unknown = ("the info worker was not run (interrupted)" if info.get("error") == NOT_RUN else
                   "the info worker failed")
        p(f"info worker: {NOT_RUN if info.get('error') == NOT_RUN else 'FAILED (' + str(info.get('error')) + ')'}: "
          "versions, GEMM kernel and FMA peak unknown")
    elif info.get("dnnfast_error"):
        unknown = f"dnnfast did not import: {info['dnnfast_error']}"
    else:
        unknown = None
    versions = ", ".join(f"{k} {info[k]}" for k in ("python", "numpy", "torch", "sklearn", "jax", "dnnfast")
                         if k in info)
    p(f"versions: {versions}")
    p(f"load average (1 min) at start {load_start:.2f}, at end {load_end:.2f} on {cpus} CPUs"
      + (f": more than the CPUs, so every timing target below is UNRELIABLE (M, a memory figure, is not)"
         if busy > cpus else
         " (other work on the machine slows every peer; the interleaving shares it out)"))
    if info.get("blas"):
        p(f"NumPy BLAS: {'; '.join(info['blas'])}")
    kernel_text = info.get("gemm_kernel") or f"n/a ({unknown or 'gemm_kernel() not available'})"
    p(f"dnnfast GEMM kernel: {kernel_text}; OpenMP: {info.get('has_openmp', 'n/a')}")
    if peaks:
        n = min(len(v) for v in peak_samples.values())
        p(f"measured FMA peak (dnnfast._core.fma_peak_gflops: the median of {n} samples through the run, "
          "each the best of three; their range): "
          + ", ".join(f"{k.replace('/', ' ')}t {v:.1f} GFLOP/s ({min(peak_samples[k]):.0f}-"
                      f"{max(peak_samples[k]):.0f})" for k, v in sorted(peaks.items())))
    else:
        p(f"measured FMA peak: n/a ({unknown or 'dnnfast._core.fma_peak_gflops not available'}): peak fractions "
          "print n/a")
    p("GFLOP/s for training count the work done per sample: forward 2*sum(m_in*m_out), dW = A^T dZ "
      "2*sum(m_in*m_out), dA = dZ W^T 2*sum over layers 2..L (no peer forms dA[0]); element-wise work "
      "is not counted. " + ", ".join(f"{k} {flops_per_sample(WORKLOADS[k]['sizes']) / 1e6:.3f}"
                                      for k in ("W1", "W3")) + " MFLOP per sample (W2, W4 as W1).")
    p("ratio = dnnfast samples/s / peer samples/s (above 1: dnnfast faster); spread = (max-min)/median "
      "of the processes; cores = the process's CPU seconds per second of the timed part, all its threads "
      "(median of the processes); a target is UNRELIABLE when the load average exceeds the CPUs, a compared "
      f"peer's spread exceeds {100 * MAX_SPREAD:.0f}% (or it has one run), or a compared peer kept more "
      f"than {MAX_CORES_OVER:g}x its thread count of cores busy, or, at two threads or more, had runs whose "
      f"cores were far apart (the cross-core probe above {FAR_CORES:g}x, printed under each table).")

    summary = {"train": {}, "gemm": {}, "gemm_cross_core": {}, "gemm_errors": {}, "predict": {}, "memory": None,
               "scaling": None}
    peak_low = set()  # (dtype, threads) whose measured peak some rate of this run exceeded

    for key in keys:
        if key in WORKLOADS:
            wl = WORKLOADS[key]
            fps = flops_per_sample(wl["sizes"])
            for th in threads:
                p("")
                p(f"{key}: {wl['title']}; {wl['rows'][q]} rows x {wl['epochs'][q]} epoch(s), lr {wl['learning_rate']}, "
                  f"{th} thread(s)")
                sps, errs, runs, extra, cores, probes = {}, {}, {}, {}, {}, {}
                for peer in wl["peers"]:
                    rs = results.get(f"{key}/{th}t/{peer}")
                    if rs is None:
                        errs[peer] = ("skipped (jax is not installed: pip install jax to compare)" if peer == "jax"
                                      else "skipped (not installed)")
                        continue
                    runs[peer] = [r["samples"] / r["seconds"] for r in rs if r.get("ok")]
                    cores[peer] = median_cores(rs)
                    probes[peer] = cross_core_runs(rs)
                    if runs[peer]:
                        sps[peer] = median(runs[peer])
                        good = [r for r in rs if r.get("ok")]
                        if "compile_seconds" in good[0]:
                            extra[peer] = {k: median([r[k] for r in good])
                                           for k in ("compile_seconds", "loss_first", "loss_last") if k in good[0]}
                    else:
                        errs[peer] = failure(rs)
                rows, low = [], set()
                for peer in wl["peers"]:
                    if peer not in sps:
                        rows.append([PEER_NAME[peer], errs[peer]])
                        continue
                    rs = runs[peer]
                    gf = sps[peer] * fps / 1e9
                    pk = peak(wl["dtype"], th)
                    ratio = sps["dnnfast"] / sps[peer] if "dnnfast" in sps else None
                    rows.append([PEER_NAME[peer], f"{sps[peer]:,.0f}", f"{min(rs):,.0f}-{max(rs):,.0f}",
                                 fmt_spread(rs), fmt_cores(cores[peer]), f"{gf:.2f}", fmt_peak(gf, pk, low), len(rs),
                                 "-" if peer == "dnnfast" else fmt_ratio(ratio)])
                p(table(["peer", "samples/s", "range", "spread", "cores", "GFLOP/s", "% peak", "runs",
                         "dnnfast/peer"], rows))
                if low:
                    p(PEAK_LOW_NOTE)
                    peak_low.add((wl["dtype"], th))
                note = cross_core_note({PEER_NAME[k]: v for k, v in probes.items()})
                if note:
                    p(note)
                for peer, e in extra.items():
                    p(f"{PEER_NAME[peer]}: compile {e['compile_seconds']:.2f} s per process (median; not in "
                      f"samples/s); mean loss of the first tenth of the mini-batches {e['loss_first']:.3f}, "
                      f"of the last tenth {e['loss_last']:.3f}")
                summary["train"][f"{key}/{th}"] = {"samples_per_s": sps, "runs": runs, "errors": errs,
                                                   "compile": extra, "cores": cores, "cross_core": probes}
        elif key == "G":
            for th in sorted({g[1] for g in groups if g[0] == "G"}):
                p("")
                p(f"G: GEMM float32, dnnfast._core.gemm vs numpy.matmul (.T views), {th} thread(s); "
                  f"GFLOP/s = 2*M*N*K / median time; spread: the larger of the two peers'")
                per_peer, per_run, probes = {}, {}, {}
                for peer in ("numpy", "dnnfast"):
                    rs = results.get(f"G/{th}t/{peer}", [])
                    probes[peer] = cross_core_runs(rs)
                    good = [r for r in rs if r.get("ok")]
                    if not good:
                        per_peer[peer] = failure(rs)
                        continue
                    per_run[peer] = {c["label"]: [g["cases"][i]["seconds"] for g in good]
                                     for i, c in enumerate(good[0]["cases"])}
                    per_peer[peer] = {k: median(v) for k, v in per_run[peer].items()}
                    case_list = good[0]["cases"]
                if not all(isinstance(v, dict) for v in per_peer.values()):
                    errors = {peer: v for peer, v in per_peer.items() if not isinstance(v, dict)}
                    for peer, v in errors.items():
                        p(f"  {PEER_NAME[peer]}: {v}")
                    summary["gemm_errors"][th] = errors  # the targets read n/a, naming the error
                    continue
                pk = peak("float32", th)
                rows, low = [], set()
                gsum = {}
                for c in case_list:
                    fl = 2.0 * c["M"] * c["N"] * c["K"]
                    g_np = fl / per_peer["numpy"][c["label"]] / 1e9
                    g_df = fl / per_peer["dnnfast"][c["label"]] / 1e9
                    sp = [spread(per_run[pr][c["label"]]) for pr in ("numpy", "dnnfast")]
                    op = ("A^T" if c["trans_a"] else "A") + " " + ("B^T" if c["trans_b"] else "B")
                    rows.append([c["label"], f"{c['M']}x{c['N']}x{c['K']}", op, f"{g_np:.1f}", f"{g_df:.1f}",
                                 fmt_peak(g_df, pk, low), fmt_ratio(g_df / g_np),
                                 "n/a" if None in sp else f"{100 * max(sp):.0f}%"])
                    gsum[c["label"]] = {"group": c["group"], "M": c["M"], "N": c["N"], "K": c["K"],
                                        "numpy_gflops": g_np, "dnnfast_gflops": g_df,
                                        "numpy_seconds": per_run["numpy"][c["label"]],
                                        "dnnfast_seconds": per_run["dnnfast"][c["label"]]}
                p(table(["case", "MxNxK", "op", "numpy GF/s", "dnnfast GF/s", "% peak", "dnnfast/numpy", "spread"],
                        rows))
                if low:
                    p(PEAK_LOW_NOTE)
                    peak_low.add(("float32", th))
                note = cross_core_note({PEER_NAME[k]: v for k, v in probes.items()})
                if note:
                    p(note)
                summary["gemm"][th] = gsum
                summary["gemm_cross_core"][th] = probes
        elif key == "P":
            for th in threads:
                p("")
                p(f"P: predict() latency of ONE row, W1 network, {th} thread(s); median of many calls")
                lat, lat_runs, cores, probes, errs = {}, {}, {}, {}, {}
                rows = []
                for peer in PREDICT_PEERS:
                    rs = results.get(f"P/{th}t/{peer}")
                    good = [r for r in rs or [] if r.get("ok")]
                    if not good:
                        errs[peer] = "skipped (not installed)" if rs is None else failure(rs)
                        rows.append([PEER_NAME[peer], errs[peer]])
                        continue
                    lat_runs[peer] = [r["median_us"] for r in good]
                    lat[peer] = median(lat_runs[peer])
                    cores[peer] = median_cores(rs)
                    probes[peer] = cross_core_runs(rs)
                    rows.append([PEER_NAME[peer], f"{lat[peer]:.1f}",
                                 f"{median([r['p10_us'] for r in good]):.1f}-{median([r['p90_us'] for r in good]):.1f}",
                                 fmt_spread(lat_runs[peer]), fmt_cores(cores[peer]), None])
                for r in rows:
                    if len(r) == 6 and r[5] is None:
                        peer = [k for k, v in PEER_NAME.items() if v == r[0]][0]
                        r[5] = "-" if peer == "dnnfast" or "dnnfast" not in lat else fmt_ratio(lat[peer] / lat["dnnfast"])
                p(table(["peer", "median us", "p10-p90 us", "spread", "cores", "peer/dnnfast"], rows))
                note = cross_core_note({PEER_NAME[k]: v for k, v in probes.items()})
                if note:
                    p(note)
                summary["predict"][th] = {"median_us": lat, "runs": lat_runs, "cores": cores, "cross_core": probes,
                                          "errors": errs}
        elif key == "M":
            th = max(threads)
            rs = results.get(f"M/{th}t/dnnfast", [])
            good = [r for r in rs if r.get("ok")]
            p("")
            p(f"M: peak RSS of dnnfast.Network.fit, C-contiguous float32 X "
              f"({20000 if args.quick else 60000}x784) and int64 labels, W1, batch 64, 1 epoch, {th} thread(s)")
            if not good:
                p(f"  {failure(rs)}")
            else:
                r = good[0]
                delta = median([g["peak_after"] - g["rss_before"] for g in good])
                absolute = median([g["peak_after"] for g in good])
                budget = r["x_bytes"] + r["y_bytes"] + 50 * MB
                p(table(["figure", "MB"], [
                    ["size(X)", f"{r['x_bytes'] / MB:.1f}"], ["size(Y)", f"{r['y_bytes'] / MB:.1f}"],
                    ["RSS before fit", f"{median([g['rss_before'] for g in good]) / MB:.1f}"],
                    ["peak RSS after fit (absolute)", f"{absolute / MB:.1f}"],
                    ["peak RSS - RSS before fit", f"{delta / MB:.1f}"],
                    ["budget size(X)+size(Y)+50 MB", f"{budget / MB:.1f}"]]))
                summary["memory"] = {"delta": delta, "absolute": absolute, "budget": budget}

    # thread scaling
    if "S" in keys:
        from_w3 = "W3" in keys and {1, 2} <= set(threads)
        s1 = results.get("W3/1t/dnnfast" if from_w3 else "S/1t/dnnfast")
        s2 = results.get("W3/2t/dnnfast" if from_w3 else "S/2t/dnnfast")
        p("")
        p("S: thread scaling, dnnfast on W3, 2 threads vs 1 thread")
        g1 = [r["samples"] / r["seconds"] for r in (s1 or []) if r.get("ok")]
        g2 = [r["samples"] / r["seconds"] for r in (s2 or []) if r.get("ok")]
        if g1 and g2:
            summary["scaling"] = {"ratio": median(g2) / median(g1), "runs_1t": g1, "runs_2t": g2,
                                  "cross_core_2t": cross_core_runs(s2)}
            p(table(["threads", "samples/s", "spread"], [["1", f"{median(g1):,.0f}", fmt_spread(g1)],
                                                         ["2", f"{median(g2):,.0f}", fmt_spread(g2)]]))
            p(f"speed-up 2 vs 1 thread: {summary['scaling']['ratio']:.2f}x")
            note = cross_core_note({"dnnfast 2t": summary["scaling"]["cross_core_2t"]})
            if note:
                p(note)
        else:
            p(f"  {failure(s1) if not g1 else failure(s2)}")

    meta["peak_measured_low"] = sorted(f"{d}/{t}" for d, t in peak_low)
    targets = check_targets(keys, threads, summary, peak, busy, cpus, peak_low, kernel=info.get("gemm_kernel"),
                            unknown=unknown)
    p("")
    p("targets (ratios within this run)")
    p("-" * 32)
    for line in targets:
        p(f"{line['status']:<10s} {line['target']}: {line['detail']}"
          + (f" [would be {line['verdict']}; {'; '.join(line['unreliable'])}]" if line["unreliable"] else ""))
    counts = {st: sum(t["status"] == st for t in targets) for st in ("PASS", "FAIL", "UNRELIABLE")}
    p(f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['UNRELIABLE']} UNRELIABLE, "
      f"{len(targets) - sum(counts.values())} not measured; total wall time {time.perf_counter() - t_start:.0f} s")

    # Every worker that failed, once: the run exits non-zero (its report is incomplete).
    broken = ([] if info.get("ok") or info.get("error") == NOT_RUN else ["info"]) + (
        ["peaks"] if peaks_failed else []) + [jid for jid, rs in results.items() if any(not r.get("ok") for r in rs)]
    return report, {"meta": meta, "summary": summary, "targets": targets, "runs": runs_json}, broken, interrupted


def interruption(e):
    return "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"


def check_targets(keys, threads, s, peak, load, cpus, peak_low=(), kernel=None, unknown=None):
    """One line per target: PASS/FAIL from ratios measured in this run, or
    UNRELIABLE (with the verdict it would have had) when the load or the
    compared peers' spread says the ratio cannot be trusted. ``kernel``: the
    name of dnnfast's GEMM tables (the share of the peak W1 must reach
    depends on the instruction set); ``unknown``: why the kernel and the
    peaks are unknown, where the info worker failed (else the build lacks
    them)."""
    out = []

    def add(target, ratio, need, detail=None, lower_is_better=False, series=None, use_load=True, also=()):
        if ratio is None:
            out.append({"target": target, "status": "n/a", "detail": detail or "not measured", "ratio": None,
                        "verdict": None, "unreliable": []})
            return
        ok = ratio <= need if lower_is_better else ratio >= need
        verdict = "PASS" if ok else "FAIL"
        why = unreliable_reasons(load if use_load else None, cpus, series or {}) + list(also)
        out.append({"target": target, "status": "UNRELIABLE" if why else verdict, "verdict": verdict,
                    "unreliable": why, "detail": detail or f"{ratio:.2f}x", "ratio": ratio})

    def train_ratio(key, th, peer):
        t = s["train"].get(f"{key}/{th}")
        if not t:
            return None, "not measured", None, []
        sps = t["samples_per_s"]
        if "dnnfast" not in sps:
            return None, f"dnnfast {t['errors'].get('dnnfast')}", None, []
        if peer not in sps:
            return None, f"{PEER_NAME[peer]} {t['errors'].get(peer)}", None, []
        cores, probes = t.get("cores", {}), t.get("cross_core", {})
        over = (excess_cores({"dnnfast": cores.get("dnnfast"), PEER_NAME[peer]: cores.get(peer)}, th)
                + far_cores({"dnnfast": probes.get("dnnfast"), PEER_NAME[peer]: probes.get(peer)}))
        return (sps["dnnfast"] / sps[peer], None, {"dnnfast": t["runs"]["dnnfast"], PEER_NAME[peer]: t["runs"][peer]},
                over)

    # (workload, peer, ratio needed, thread counts it applies to; None: all).
    # W1: 2x NumPy and 2x PyTorch at one and two threads (issue 19, target 2).
    train_targets = [("W1", "reference", 2.0, None), ("W1", "torch", 2.0, None), ("W2", "reference", 10.0, None),
                     ("W2", "torch", 10.0, None), ("W2", "jax", 2.5, {1}), ("W3", "torch", 1.0, None),
                     ("W4", "reference", 2.0, None)]
    for th in threads:
        for key, peer, need, only in train_targets:
            if key not in keys or (only and th not in only):
                continue
            r, why, series, over = train_ratio(key, th, peer)
            detail = why
            if r is not None:
                # The share of the FMA peak a run `need` times the peer's
                # speed would take, counting the work done: over 100%, the
                # target is beyond this machine's FMA units.
                wl, pk = WORKLOADS[key], peak(WORKLOADS[key]["dtype"], th)
                gf = need * s["train"][f"{key}/{th}"]["samples_per_s"][peer] * flops_per_sample(wl["sizes"]) / 1e9
                detail = f"{r:.2f}x" + (f" ({need:g}x: {100 * gf / pk:.0f}% of the {wl['dtype']} FMA peak)"
                                        if pk else "")
            add(f"{key} [{th}t] dnnfast >= {need:g}x {PEER_NAME[peer]}", r, need, detail, series=series, also=over)
    # W1's share of the one-thread float32 FMA peak, counting the work done
    # (issue 19, target 2): 65% with the AVX-512 tables, 80% with AVX2.
    t1 = s["train"].get("W1/1") if "W1" in keys and 1 in threads else None
    if t1 is not None:
        need = 0.65 if (kernel or "").startswith("avx512") else 0.80 if (kernel or "").startswith("avx2") else None
        name = f"W1 [1t] dnnfast >= {100 * need:.0f}% of the float32 FMA peak" if need else "W1 [1t] share of the FMA peak"
        pk = peak("float32", 1)
        if need is None:
            add(name, None, 0.0, (f"no target for the {kernel} tables" if kernel else
                                  f"GEMM tables unknown ({unknown or 'the info line above'})")
                + " (AVX-512: 65%, AVX2: 80%)")
        elif "dnnfast" not in t1["samples_per_s"] or pk is None:
            add(name, None, need, f"dnnfast {t1['errors'].get('dnnfast')}" if pk is not None else
                f"peak n/a ({unknown or 'fma_peak_gflops not available'})")
        else:
            gf = t1["samples_per_s"]["dnnfast"] * flops_per_sample(WORKLOADS["W1"]["sizes"]) / 1e9
            # A rate above the measured peak proves the peak was measured low
            # (as the tables' ">peak*"): never printed as more than 100%.
            low = gf > pk or ("float32", 1) in peak_low
            add(name, gf / pk, need, (f">100% ({gf:.1f} GFLOP/s, above the measured {pk:.1f})" if gf > pk else
                                      f"{100 * gf / pk:.0f}% ({gf:.1f} of {pk:.1f} GFLOP/s)"),
                series={"dnnfast": t1["runs"]["dnnfast"]},
                also=["a rate of this run exceeded the measured 1-thread float32 peak"] if low else [])
    if "G" in keys:
        gemm_errors = s.get("gemm_errors", {})

        def gemm_error(th):
            return "; ".join(f"{PEER_NAME[peer]} {e}" for peer, e in gemm_errors.get(th, {}).items()) or None

        for th in threads:  # not the 1-thread 1024^3 run made for the peak check alone
            g = s["gemm"].get(th)
            for group, need, label in (("square", 0.9, "squares >= 512"), ("W1", 1.0, "W1 products"),
                                       ("W3", 1.0, "W3 products")):
                name = f"G [{th}t] GEMM {label} >= {need:g}x numpy.matmul"
                if g is None:  # a peer's worker failed: the line says so, rather than vanish
                    add(name, None, need, gemm_error(th))
                    continue
                cs = {k: v for k, v in g.items() if v["group"] == group and (group != "square" or v["M"] >= 512)}
                if not cs:
                    continue
                ratios = {k: v["dnnfast_gflops"] / v["numpy_gflops"] for k, v in cs.items()}
                worst = min(ratios, key=ratios.get)
                series = {f"{pr} {k}": v[f"{pr}_seconds"] for k, v in cs.items() for pr in ("numpy", "dnnfast")}
                probes = s.get("gemm_cross_core", {}).get(th, {})
                add(name, ratios[worst], need,
                    f"worst {ratios[worst]:.2f}x ({worst}); all: "
                    + ", ".join(f"{v:.2f}" for v in ratios.values()), series=series,
                    also=far_cores({PEER_NAME[k]: v for k, v in probes.items()}))
        g1 = s["gemm"].get(1, {}).get("square 1024")
        pk = peak("float32", 1)
        name = "G 1-thread GEMM 1024^3 float32 >= 75% of FMA peak"
        if g1 is None:
            add(name, None, 0.75, gemm_error(1))
        elif pk is None:
            add(name, None, 0.75, f"{g1['dnnfast_gflops']:.1f} GFLOP/s; peak n/a "
                f"({unknown or 'fma_peak_gflops not available'})")
        else:
            gf = g1["dnnfast_gflops"]
            # As W1's share above: a rate over the measured peak proves the
            # peak was measured low, and is never printed as more than 100%.
            low = gf > pk or ("float32", 1) in peak_low
            add(name, gf / pk, 0.75, (f">100% ({gf:.1f} GFLOP/s, above the measured {pk:.1f})" if gf > pk else
                                      f"{gf:.1f} of {pk:.1f} GFLOP/s = {100 * gf / pk:.1f}%"),
                series={"dnnfast square 1024": g1["dnnfast_seconds"]},
                also=["a GEMM ran faster than the measured 1-thread peak"] if low else [])
    if "P" in keys:
        for th in threads:
            pr = s["predict"].get(th, {"median_us": {}, "runs": {}})
            lat = pr["median_us"]
            name = f"P [{th}t] predict(1 row) latency <= 1/5 of PyTorch"
            if "dnnfast" in lat and "torch" in lat:
                r = lat["dnnfast"] / lat["torch"]
                cores, probes = pr.get("cores", {}), pr.get("cross_core", {})
                add(name, r, 0.2, f"{lat['dnnfast']:.1f} us vs PyTorch {lat['torch']:.1f} us: {r:.2f} of PyTorch's "
                    f"latency (need <= 0.20)", lower_is_better=True,
                    series={"dnnfast": pr["runs"]["dnnfast"], "PyTorch": pr["runs"]["torch"]},
                    also=excess_cores({"dnnfast": cores.get("dnnfast"), "PyTorch": cores.get("torch")}, th)
                    + far_cores({"dnnfast": probes.get("dnnfast"), "PyTorch": probes.get("torch")}))
            else:  # the peer's own line: skipped, or its error, as the training targets say
                errs = pr.get("errors", {})
                add(name, None, 0.2, f"dnnfast {errs.get('dnnfast', 'not measured')}" if "dnnfast" not in lat
                    else f"PyTorch {errs.get('torch', 'not measured')}")
    if "M" in keys:
        m = s["memory"]
        name = "M fit peak RSS - RSS before <= size(X)+size(Y)+50 MB"
        if m is None:
            add(name, None, 1.0)
        else:
            # Memory does not move with the load or between processes: no
            # reliability rule applies.
            add(name, m["delta"] / m["budget"], 1.0,
                f"{m['delta'] / MB:.1f} MB vs {m['budget'] / MB:.1f} MB (absolute peak {m['absolute'] / MB:.1f} MB: "
                f"{'within' if m['absolute'] <= m['budget'] else 'OVER'} the budget too)", lower_is_better=True,
                use_load=False)
    if "S" in keys:
        sc = s["scaling"]
        add("S W3 dnnfast 2 threads >= 1.7x 1 thread", sc and sc["ratio"], 1.7,
            series=sc and {"dnnfast 1t": sc["runs_1t"], "dnnfast 2t": sc["runs_2t"]},
            also=far_cores({"dnnfast 2t": sc["cross_core_2t"]}) if sc else ())
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    from workloads import cli
    cli(main, "run.py")
