"""Compare two runs of the suite: ``python benchmarks/compare.py old.json new.json``.

Both files are ``run.py --json`` outputs. For every workload, thread count and
peer measured in both (each GEMM case on its own), it prints the median of
the per-process figures in each run, new/old, and the spread of each run,
(max - min) / median over its processes. Then, per workload and thread
count, dnnfast's ratio against each peer in each run and new/old of that.

A change is flagged when it lies beyond the runs' own noise:
- a median: |new/old - 1| greater than the larger of the two spreads;
- a dnnfast/peer ratio: |new/old - 1| greater than the larger of the two
  runs' ratio spreads, a ratio's spread being dnnfast's spread plus the
  peer's (their relative errors add).
"?" marks a figure with fewer than two processes in a run: its spread, and
so the flag, is unknown. Absolute figures of two runs differ with the load
on the machine; the ratios within each run are what compares.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import PEER_NAME, median, spread  # noqa: E402


def figures(doc):
    """{(workload, threads, peer): (per-process figures, unit, higher is better)} of one run."""
    out = {}
    for run in doc.get("runs", []):
        r, task = run["result"], run["task"]
        if not r.get("ok"):
            continue
        key, th, peer = run["id"].split("/")
        kind = task["kind"]
        if kind == "train":
            out.setdefault((key, th, peer), ([], "samples/s", True))[0].append(r["samples"] / r["seconds"])
        elif kind == "predict":
            out.setdefault((key, th, peer), ([], "us", False))[0].append(r["median_us"])
        elif kind == "gemm":
            for c in r["cases"]:
                gf = 2.0 * c["M"] * c["N"] * c["K"] / c["seconds"] / 1e9
                out.setdefault((f"G {c['label']}", th, peer), ([], "GFLOP/s", True))[0].append(gf)
        elif kind == "memory":
            out.setdefault((key, th, peer), ([], "MB", False))[0].append(
                (r["peak_after"] - r["rss_before"]) / 2**20)
    return out


def verdict(change, noise, higher_is_better):
    """'better' / 'worse' when the change exceeds the noise, '' when not, '?' when the noise is unknown."""
    if noise is None:
        return "?"
    if abs(change - 1.0) <= noise:
        return ""
    return "better" if (change > 1.0) == higher_is_better else "worse"


def pct(x):
    return "n/a" if x is None else f"{100 * x:.0f}%"


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(f"{h:<{w}}" if i < 3 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(headers, widths)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(f"{str(c):<{w}}" if i < 3 else f"{str(c):>{w}}"
                             for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def compare(old, new):
    fo, fn = figures(old), figures(new)
    common = [k for k in fn if k in fo]
    lines = []
    for name, doc in (("old", old), ("new", new)):
        m = doc.get("meta", {})
        loads = [m[k] for k in ("load_start", "load_end") if isinstance(m.get(k), (int, float))]
        busy = bool(loads) and isinstance(m.get("cpus"), int) and max(loads) > m["cpus"]
        lines.append(f"{name}: commit {m.get('commit', '?')}, {m.get('cpu_model', '?')}, {m.get('cpus', '?')} CPUs, "
                     "load average " + (" -> ".join(f"{x:.2f}" for x in loads) or "?")
                     + (" (above the CPUs: the run's targets are UNRELIABLE)" if busy else "")
                     + f", {m.get('repeats', '?')} repeats" + (", QUICK" if m.get("quick") else ""))

    rows = []
    for k in common:
        xo, unit, hib = fo[k]
        xn = fn[k][0]
        mo, mn = median(xo), median(xn)
        so, sn = spread(xo), spread(xn)
        change = mn / mo
        noise = None if so is None or sn is None else max(so, sn)
        rows.append([k[0], k[1], PEER_NAME.get(k[2], k[2]), f"{mo:,.1f}", f"{mn:,.1f}", unit, f"{change:.3f}",
                     pct(so), pct(sn), verdict(change, noise, hib)])
    lines += ["", "medians (per-process figures; spread = (max-min)/median)"]
    lines.append(table(["workload", "threads", "peer", "old", "new", "unit", "new/old", "spread old",
                        "spread new", "flag"], rows) if rows else "no workload measured in both runs")

    # dnnfast against each peer, within each run, then across the runs
    rows = []
    for k in common:
        w, th, peer = k
        ref = (w, th, "dnnfast")
        if peer == "dnnfast" or ref not in fo or ref not in fn:
            continue
        hib = fo[k][2]
        rs = []
        for f in (fo, fn):
            d, pr = f[ref][0], f[k][0]
            r = median(d) / median(pr) if hib else median(pr) / median(d)
            sd, sp = spread(d), spread(pr)
            rs.append((r, None if sd is None or sp is None else sd + sp))
        change = rs[1][0] / rs[0][0]
        noise = None if rs[0][1] is None or rs[1][1] is None else max(rs[0][1], rs[1][1])
        rows.append([w, th, PEER_NAME.get(peer, peer), f"{rs[0][0]:.2f}x", f"{rs[1][0]:.2f}x", f"{change:.3f}",
                     pct(rs[0][1]), pct(rs[1][1]), verdict(change, noise, True)])
    lines += ["", "dnnfast against each peer (above 1x: dnnfast faster, or leaner)"]
    lines.append(table(["workload", "threads", "peer", "old ratio", "new ratio", "new/old", "noise old",
                        "noise new", "flag"], rows) if rows else "no peer measured beside dnnfast in both runs")

    only = sorted(set(fo) ^ set(fn))
    if only:
        lines += ["", "in one run only: " + ", ".join(
            f"{'/'.join(k)} ({'old' if k in fo else 'new'})" for k in only)]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="run.py --json output of the earlier run")
    ap.add_argument("new", help="run.py --json output of the later run")
    args = ap.parse_args(argv)
    docs = []
    for path in (args.old, args.new):
        with open(path) as f:
            docs.append(json.load(f))
    print(compare(*docs))


if __name__ == "__main__":
    main()
