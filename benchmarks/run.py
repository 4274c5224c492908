"""dnnfast benchmark suite: ``python benchmarks/run.py [--quick] [--only W1,G] [--threads 1,2]``.

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

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")

MLP_W1 = dict(sizes=[784, 256, 128, 10], activations=["relu", "relu", "softmax"], loss="cce",
              dtype="float32", learning_rate=0.05)
MLP_W3 = dict(MLP_W1, sizes=[784, 1024, 1024, 10])

# rows / epochs: (full run, --quick). Chosen so a full run of everything
# stays near 15 minutes on a 2-core machine.
WORKLOADS = {
    "W1": dict(MLP_W1, batch_size=64, title="784-256-128-10 relu/relu/softmax+cce, float32, batch 64",
               rows=(8192, 2048), epochs=(1, 1)),
    "W2": dict(MLP_W1, batch_size=1, title="784-256-128-10, float32, batch 1 (stochastic)",
               rows=(1000, 300), epochs=(1, 1)),
    "W3": dict(MLP_W3, batch_size=256, title="784-1024-1024-10 relu/relu/softmax+cce, float32, batch 256",
               rows=(4096, 1024), epochs=(1, 1)),
    "W4": dict(MLP_W1, dtype="float64", batch_size=64, title="784-256-128-10, float64, batch 64",
               rows=(8192, 2048), epochs=(1, 1)),
}
TRAIN_PEERS = ["reference", "torch", "sklearn", "dnnfast"]
PREDICT_PEERS = ["reference", "torch", "sklearn", "dnnfast"]
PEER_MODULE = {"reference": "dnnfast", "torch": "torch", "sklearn": "sklearn", "dnnfast": "dnnfast",
               "numpy": "numpy"}
PEER_NAME = {"reference": "NumPy (dnnfast.reference)", "torch": "PyTorch", "sklearn": "scikit-learn",
             "dnnfast": "dnnfast", "numpy": "numpy.matmul"}
ALL_KEYS = ["W1", "W2", "W3", "W4", "G", "P", "M", "S"]
MB = 1024 * 1024


def flops_per_sample(sizes):
    """6 * sum(m_in * m_out): forward 2*, backward 4* (dW and dA products)."""
    return 6 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def gemm_cases(quick):
    """Squares, then every product that a training step of W1 and W3 computes."""
    cases = [dict(label=f"square {s}", group="square", M=s, N=s, K=s, trans_a=False, trans_b=False)
             for s in ((256, 512, 1024) if quick else (256, 512, 1024, 2048))]
    for name, wl in (("W1", WORKLOADS["W1"]), ("W3", WORKLOADS["W3"])):
        n = wl["batch_size"]
        for l, (m_in, m_out) in enumerate(zip(wl["sizes"][:-1], wl["sizes"][1:]), start=1):
            cases.append(dict(label=f"{name} L{l} A W", group=name, M=n, N=m_out, K=m_in,
                              trans_a=False, trans_b=False))
            cases.append(dict(label=f"{name} L{l} A^T dZ", group=name, M=m_in, N=m_out, K=n,
                              trans_a=True, trans_b=False))
            if l >= 2:  # dA[0] is never formed: the input needs no gradient
                cases.append(dict(label=f"{name} L{l} dZ W^T", group=name, M=n, N=m_in, K=m_out,
                                  trans_a=False, trans_b=True))
    return cases


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
        p = subprocess.run([sys.executable, WORKER, json.dumps(task)], env=child_env(task["threads"]),
                           cwd=HERE, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout} s"}
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        err = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"exit {p.returncode}: {err[:200]}"}
    res = json.loads(lines[-1])
    res["wall"] = time.perf_counter() - t0
    return res


def installed(peer):
    return importlib.util.find_spec(PEER_MODULE[peer]) is not None


def interleave(jobs, repeats, timeout, log):
    """Run every job `repeats` times, round-robin; returns {job id: [results]}."""
    out = {j["id"]: [] for j in jobs}
    for r in range(repeats):
        for j in jobs:
            res = run_worker(j["task"], timeout)
            out[j["id"]].append(res)
            status = "ok" if res.get("ok") else "ERROR " + res.get("error", "")
            log(f"  [{r + 1}/{repeats}] {j['id']:<28s} {res.get('wall', 0):6.1f}s {status}")
            if not res.get("ok") and r == 0:
                j["failed"] = True
        jobs = [j for j in jobs if not j.get("failed")]  # a broken peer is not retried
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


# --------------------------------------------------------------------------- formatting helpers

def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def fmt_pct(x):
    return "n/a" if x is None else f"{100 * x:.0f}%"


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


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 2 repeats, 2 threads: a smoke run of a few minutes")
    ap.add_argument("--only", default=",".join(ALL_KEYS),
                    help="comma-separated subset of " + ",".join(ALL_KEYS) + " (default: all)")
    ap.add_argument("--threads", default=None,
                    help="comma-separated thread counts, each run for every peer (default 1,2; --quick: 2)")
    ap.add_argument("--repeats", type=int, default=None, help="processes per peer and workload (default 5; --quick 2)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds before a worker is killed")
    ap.add_argument("--json", default=None, help="save the raw results to this file")
    args = ap.parse_args(argv)

    keys = [k.strip().upper() for k in args.only.split(",") if k.strip()]
    bad = [k for k in keys if k not in ALL_KEYS]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose from {ALL_KEYS}")
    q = 1 if args.quick else 0
    threads = [int(t) for t in (args.threads or ("2" if args.quick else "1,2")).split(",")]
    repeats = args.repeats or (2 if args.quick else 5)
    # Seconds of fitting per training process (at least one fit): the same
    # exposure to the machine's slow spells for fast and slow peers.
    train_min_time = 0.0 if args.quick else 1.0
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]

    # ---- info: versions, kernel, FMA peaks (one process)
    peak_threads = sorted(set(threads) | {1, 2})
    info = run_worker({"kind": "info", "peer": "dnnfast", "threads": max(threads), "threads_list": peak_threads},
                      args.timeout)
    peaks = info.get("fma_peak_gflops") or {}

    def peak(dtype, th):
        return peaks.get(f"{dtype}/{th}")

    commit = None
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(HERE), "log", "-1", "--format=%h"],
                                capture_output=True, text=True).stdout.strip() or None
    except OSError:
        pass
    meta = {"commit": commit, "threads": threads, "repeats": repeats, "quick": bool(args.quick),
            "machine": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
            "cpus": os.cpu_count(), "info": info}

    # ---- build the job groups
    groups = []  # (key, threads, jobs)
    for key in keys:
        if key in WORKLOADS:
            wl = dict(WORKLOADS[key])
            rows, epochs = wl.pop("rows")[q], wl.pop("epochs")[q]
            wl.pop("title")
            for th in threads:
                jobs = [dict(id=f"{key}/{th}t/{p}", peer=p,
                             task=dict(kind="train", peer=p, threads=th, workload=wl, rows=rows, epochs=epochs,
                                       min_time=train_min_time))
                        for p in TRAIN_PEERS if installed(p)]
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
            wl = {k: v for k, v in WORKLOADS["W1"].items() if k not in ("rows", "epochs", "title")}
            for th in threads:
                jobs = [dict(id=f"P/{th}t/{p}", peer=p,
                             task=dict(kind="predict", peer=p, threads=th, workload=wl,
                                       warm_calls=200, calls=1000 if args.quick else 3000,
                                       min_time=0.2 if args.quick else 1.5))
                        for p in PREDICT_PEERS if installed(p)]
                groups.append((key, th, jobs))
        elif key == "M":
            wl = {k: v for k, v in WORKLOADS["W1"].items() if k not in ("rows", "epochs", "title")}
            th = max(threads)
            groups.append((key, th, [dict(id=f"M/{th}t/dnnfast", peer="dnnfast",
                                          task=dict(kind="memory", peer="dnnfast", threads=th, workload=wl,
                                                    rows=20000 if args.quick else 60000, epochs=1))]))
        elif key == "S":
            have = "W3" in keys and {1, 2} <= set(threads)
            if not have:
                wl = dict(WORKLOADS["W3"])
                rows, epochs = wl.pop("rows")[q], wl.pop("epochs")[q]
                wl.pop("title")
                groups.append(("S", 0, [dict(id=f"S/{th}t/dnnfast", peer="dnnfast",
                                             task=dict(kind="train", peer="dnnfast", threads=th, workload=wl,
                                                       rows=rows, epochs=epochs, min_time=train_min_time))
                                        for th in (1, 2)]))

    # ---- run
    results = {}  # job id -> list of results
    runs_json = []
    for key, th, jobs in groups:
        log(f"== {key} ({th} thread{'s' if th != 1 else ''}; {len(jobs)} peers x {repeats} repeats)"
            if th else f"== {key} (dnnfast, 1 vs 2 threads; {repeats} repeats)")
        reps = min(repeats, 3) if key == "M" else repeats
        out = interleave(jobs, reps, args.timeout, log)
        results.update(out)
        for j in jobs:
            for i, r in enumerate(out[j["id"]]):
                runs_json.append({"id": j["id"], "repeat": i, "task": j["task"], "result": r})

    # ---- the FMA peaks again: a peak is a maximum, and the machine may have
    # been busier at the start than at the end
    if peaks:
        again = run_worker({"kind": "info", "peer": "dnnfast", "threads": max(threads),
                            "threads_list": peak_threads}, args.timeout).get("fma_peak_gflops") or {}
        for k, v in again.items():
            peaks[k] = max(peaks.get(k, 0.0), v)

    # ---- report
    report = []
    p = report.append
    p("dnnfast benchmark results")
    p("=" * 25)
    p(f"commit {commit or '?'}; {meta['cpu_model']}, {meta['cpus']} CPUs; threads {threads}; "
      f"{repeats} interleaved fresh-process repeats per peer, median reported"
      + ("; QUICK run (small sizes)" if args.quick else ""))
    versions = ", ".join(f"{k} {info[k]}" for k in ("python", "numpy", "torch", "sklearn", "dnnfast") if k in info)
    p(f"versions: {versions}")
    p(f"load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
      " (other work on the machine slows every peer; the interleaving shares it out)")
    if info.get("blas"):
        p(f"NumPy BLAS: {'; '.join(info['blas'])}")
    p(f"dnnfast GEMM kernel: {info.get('gemm_kernel') or 'n/a (gemm_kernel() not available)'}; "
      f"OpenMP: {info.get('has_openmp')}")
    if peaks:
        p("measured FMA peak (dnnfast._core.fma_peak_gflops, best of the start and the end of the run): "
          + ", ".join(f"{k.replace('/', ' ')}t {v:.1f} GFLOP/s" for k, v in sorted(peaks.items())))
    else:
        p("measured FMA peak: n/a (dnnfast._core.fma_peak_gflops not available): peak fractions print n/a")
    p("GFLOP/s for training count 6*n*sum(m_in*m_out) per pass over n samples "
      "(forward 2*, backward 4*: dW = A^T dZ and dA = dZ W^T); element-wise work is not counted.")
    p("No peer forms dA[0] (the input needs no gradient), so the work done is 2*m_0*m_1 per sample less and "
      "these figures overstate it: by "
      + ", ".join(f"{100 * 2 * WORKLOADS[k]['sizes'][0] * WORKLOADS[k]['sizes'][1] / (flops_per_sample(WORKLOADS[k]['sizes']) - 2 * WORKLOADS[k]['sizes'][0] * WORKLOADS[k]['sizes'][1]):.0f}% on {k}"
                  for k in ("W1", "W3")) + " (W2, W4 as W1).")
    p("ratio = dnnfast samples/s / peer samples/s (above 1: dnnfast faster).")

    summary = {"train": {}, "gemm": {}, "predict": {}, "memory": None, "scaling": None}

    for key in keys:
        if key in WORKLOADS:
            wl = WORKLOADS[key]
            fps = flops_per_sample(wl["sizes"])
            for th in threads:
                p("")
                p(f"{key}: {wl['title']}; {wl['rows'][q]} rows x {wl['epochs'][q]} epoch(s), lr {wl['learning_rate']}, "
                  f"{th} thread(s)")
                sps, errs, runs = {}, {}, {}
                for peer in TRAIN_PEERS:
                    rs = results.get(f"{key}/{th}t/{peer}")
                    if rs is None:
                        errs[peer] = "skipped (not installed)"
                        continue
                    runs[peer] = [r["samples"] / r["seconds"] for r in rs if r.get("ok")]
                    if runs[peer]:
                        sps[peer] = median(runs[peer])
                    else:
                        errs[peer] = f"error: {first_error(rs)}"
                rows = []
                for peer in TRAIN_PEERS:
                    if peer not in sps:
                        rows.append([PEER_NAME[peer], errs[peer]])
                        continue
                    rs = runs[peer]
                    gf = sps[peer] * fps / 1e9
                    pk = peak(wl["dtype"], th)
                    ratio = sps["dnnfast"] / sps[peer] if "dnnfast" in sps else None
                    rows.append([PEER_NAME[peer], f"{sps[peer]:,.0f}", f"{min(rs):,.0f}-{max(rs):,.0f}",
                                 f"{gf:.2f}", fmt_pct(gf / pk if pk else None), len(rs),
                                 "-" if peer == "dnnfast" else fmt_ratio(ratio)])
                p(table(["peer", "samples/s", "range", "GFLOP/s", "% peak", "runs", "dnnfast/peer"], rows))
                summary["train"][f"{key}/{th}"] = {"samples_per_s": sps, "errors": errs}
        elif key == "G":
            for th in sorted({g[1] for g in groups if g[0] == "G"}):
                p("")
                p(f"G: GEMM float32, dnnfast._core.gemm vs numpy.matmul (.T views), {th} thread(s); "
                  f"GFLOP/s = 2*M*N*K / median time")
                per_peer = {}
                for peer in ("numpy", "dnnfast"):
                    rs = results.get(f"G/{th}t/{peer}", [])
                    good = [r for r in rs if r.get("ok")]
                    if not good:
                        per_peer[peer] = first_error(rs) or "no result"
                        continue
                    per_peer[peer] = {c["label"]: median([g["cases"][i]["seconds"] for g in good])
                                      for i, c in enumerate(good[0]["cases"])}
                    case_list = good[0]["cases"]
                if not all(isinstance(v, dict) for v in per_peer.values()):
                    for peer, v in per_peer.items():
                        if not isinstance(v, dict):
                            p(f"  {PEER_NAME[peer]}: error: {v}")
                    continue
                pk = peak("float32", th)
                rows = []
                gsum = {}
                for c in case_list:
                    fl = 2.0 * c["M"] * c["N"] * c["K"]
                    g_np = fl / per_peer["numpy"][c["label"]] / 1e9
                    g_df = fl / per_peer["dnnfast"][c["label"]] / 1e9
                    op = ("A^T" if c["trans_a"] else "A") + " " + ("B^T" if c["trans_b"] else "B")
                    rows.append([c["label"], f"{c['M']}x{c['N']}x{c['K']}", op, f"{g_np:.1f}", f"{g_df:.1f}",
                                 fmt_pct(g_df / pk if pk else None), fmt_ratio(g_df / g_np)])
                    gsum[c["label"]] = {"group": c["group"], "M": c["M"], "N": c["N"], "K": c["K"],
                                        "numpy_gflops": g_np, "dnnfast_gflops": g_df}
                p(table(["case", "MxNxK", "op", "numpy GF/s", "dnnfast GF/s", "% peak", "dnnfast/numpy"], rows))
                summary["gemm"][th] = gsum
        elif key == "P":
            for th in threads:
                p("")
                p(f"P: predict() latency of ONE row, W1 network, {th} thread(s); median of many calls")
                lat = {}
                rows = []
                for peer in PREDICT_PEERS:
                    rs = results.get(f"P/{th}t/{peer}")
                    if rs is None:
                        rows.append([PEER_NAME[peer], "skipped (not installed)"])
                        continue
                    good = [r for r in rs if r.get("ok")]
                    if not good:
                        rows.append([PEER_NAME[peer], f"error: {first_error(rs)}"])
                        continue
                    lat[peer] = median([r["median_us"] for r in good])
                    rows.append([PEER_NAME[peer], f"{lat[peer]:.1f}",
                                 f"{median([r['p10_us'] for r in good]):.1f}-{median([r['p90_us'] for r in good]):.1f}",
                                 None])
                for r in rows:
                    if len(r) == 4 and r[3] is None:
                        peer = [k for k, v in PEER_NAME.items() if v == r[0]][0]
                        r[3] = "-" if peer == "dnnfast" or "dnnfast" not in lat else fmt_ratio(lat[peer] / lat["dnnfast"])
                p(table(["peer", "median us", "p10-p90 us", "peer/dnnfast"], rows))
                summary["predict"][th] = lat
        elif key == "M":
            th = max(threads)
            rs = results.get(f"M/{th}t/dnnfast", [])
            good = [r for r in rs if r.get("ok")]
            p("")
            p(f"M: peak RSS of dnnfast.Network.fit, C-contiguous float32 X "
              f"({20000 if args.quick else 60000}x784) and int64 labels, W1, batch 64, 1 epoch, {th} thread(s)")
            if not good:
                p(f"  error: {first_error(rs)}")
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
        s1 = results.get("W3/1t/dnnfast") if ("W3" in keys and {1, 2} <= set(threads)) else results.get("S/1t/dnnfast")
        s2 = results.get("W3/2t/dnnfast") if ("W3" in keys and {1, 2} <= set(threads)) else results.get("S/2t/dnnfast")
        p("")
        p("S: thread scaling, dnnfast on W3, 2 threads vs 1 thread")
        g1 = [r["samples"] / r["seconds"] for r in (s1 or []) if r.get("ok")]
        g2 = [r["samples"] / r["seconds"] for r in (s2 or []) if r.get("ok")]
        if g1 and g2:
            summary["scaling"] = median(g2) / median(g1)
            p(table(["threads", "samples/s"], [["1", f"{median(g1):,.0f}"], ["2", f"{median(g2):,.0f}"]]))
            p(f"speed-up 2 vs 1 thread: {summary['scaling']:.2f}x")
        else:
            p(f"  error: {first_error(s1 or []) or first_error(s2 or []) or 'no result'}")

    targets = check_targets(keys, threads, summary, peak)
    p("")
    p("targets (ratios within this run)")
    p("-" * 32)
    for line in targets:
        p(f"{line['status']:<8s} {line['target']}: {line['detail']}")
    n_pass = sum(t["status"] == "PASS" for t in targets)
    n_fail = sum(t["status"] == "FAIL" for t in targets)
    p(f"{n_pass} PASS, {n_fail} FAIL, {len(targets) - n_pass - n_fail} not measured; "
      f"total wall time {time.perf_counter() - t_start:.0f} s")

    print("\n".join(report), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": summary, "targets": targets, "runs": runs_json}, f, indent=1,
                      default=str)
        log(f"raw results written to {args.json}")


def check_targets(keys, threads, s, peak):
    out = []

    def add(target, ratio, need, detail=None, lower_is_better=False):
        if ratio is None:
            out.append({"target": target, "status": "n/a", "detail": detail or "not measured", "ratio": None})
            return
        ok = ratio <= need if lower_is_better else ratio >= need
        out.append({"target": target, "status": "PASS" if ok else "FAIL",
                    "detail": detail or f"{ratio:.2f}x", "ratio": ratio})

    def train_ratio(key, th, peer):
        t = s["train"].get(f"{key}/{th}")
        if not t:
            return None, "not measured"
        sps = t["samples_per_s"]
        if "dnnfast" not in sps:
            return None, f"dnnfast {t['errors'].get('dnnfast')}"
        if peer not in sps:
            return None, f"{PEER_NAME[peer]} {t['errors'].get(peer)}"
        return sps["dnnfast"] / sps[peer], None

    train_targets = [("W1", "reference", 2.0), ("W1", "torch", 1.5), ("W2", "reference", 10.0),
                     ("W2", "torch", 10.0), ("W3", "torch", 1.0), ("W4", "reference", 2.0)]
    for th in threads:
        for key, peer, need in train_targets:
            if key not in keys:
                continue
            r, why = train_ratio(key, th, peer)
            add(f"{key} [{th}t] dnnfast >= {need:g}x {PEER_NAME[peer]}", r, need,
                None if r is not None else why)
    if "G" in keys:
        for th, g in sorted(s["gemm"].items()):
            for group, need, label in (("square", 0.9, "squares >= 512"), ("W1", 1.0, "W1 products"),
                                       ("W3", 1.0, "W3 products")):
                cs = {k: v for k, v in g.items() if v["group"] == group and (group != "square" or v["M"] >= 512)}
                if not cs:
                    continue
                if th not in threads and group != "square":
                    continue
                ratios = {k: v["dnnfast_gflops"] / v["numpy_gflops"] for k, v in cs.items()}
                worst = min(ratios, key=ratios.get)
                add(f"G [{th}t] GEMM {label} >= {need:g}x numpy.matmul", ratios[worst], need,
                    f"worst {ratios[worst]:.2f}x ({worst}); all: "
                    + ", ".join(f"{v:.2f}" for v in ratios.values()))
        g1 = s["gemm"].get(1, {}).get("square 1024")
        pk = peak("float32", 1)
        if g1 is None:
            add("G 1-thread GEMM 1024^3 float32 >= 75% of FMA peak", None, 0.75)
        elif pk is None:
            add("G 1-thread GEMM 1024^3 float32 >= 75% of FMA peak", None, 0.75,
                f"{g1['dnnfast_gflops']:.1f} GFLOP/s; peak n/a (fma_peak_gflops not available)")
        else:
            f = g1["dnnfast_gflops"] / pk
            add("G 1-thread GEMM 1024^3 float32 >= 75% of FMA peak", f, 0.75,
                f"{g1['dnnfast_gflops']:.1f} of {pk:.1f} GFLOP/s = {100 * f:.1f}%")
    if "P" in keys:
        for th in threads:
            lat = s["predict"].get(th, {})
            if "dnnfast" in lat and "torch" in lat:
                r = lat["dnnfast"] / lat["torch"]
                add(f"P [{th}t] predict(1 row) latency <= 1/5 of PyTorch", r, 0.2,
                    f"{lat['dnnfast']:.1f} us vs PyTorch {lat['torch']:.1f} us: {r:.2f} of PyTorch's latency "
                    f"(need <= 0.20)", lower_is_better=True)
            else:
                add(f"P [{th}t] predict(1 row) latency <= 1/5 of PyTorch", None, 0.2,
                    "dnnfast error" if "dnnfast" not in lat else "PyTorch skipped (not installed)")
    if "M" in keys:
        m = s["memory"]
        if m is None:
            add("M fit peak RSS - RSS before <= size(X)+size(Y)+50 MB", None, 1.0)
        else:
            add("M fit peak RSS - RSS before <= size(X)+size(Y)+50 MB", m["delta"] / m["budget"], 1.0,
                f"{m['delta'] / MB:.1f} MB vs {m['budget'] / MB:.1f} MB (absolute peak {m['absolute'] / MB:.1f} MB: "
                f"{'within' if m['absolute'] <= m['budget'] else 'OVER'} the budget too)", lower_is_better=True)
    if "S" in keys:
        add("S W3 dnnfast 2 threads >= 1.7x 1 thread", s["scaling"], 1.7)
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
    main()
