"""Compare two runs of the suite: ``python benchmarks/compare.py old.json new.json``.

Both files are ``run.py --json`` outputs. For every workload, thread count and
peer measured in both (each GEMM case on its own), it prints each run's
figure as run.py's report prints it, new/old, and the spread of each run,
(max - min) / median over its processes. The figure is the median of the
per-process figures, but for a GEMM case: 2*M*N*K over the median of the
per-process seconds (run.py's GFLOP/s, from the seconds in the summary; the
median of per-process GFLOP/s differs from it with an even number of
processes), its spread that of the seconds. Then, per workload and thread
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
from workloads import PEER_NAME, cli, median, spread  # noqa: E402


class BadInput(Exception):
    """A file that is not a run.py --json output; the message names it."""


def figures(doc):
    """{(workload, threads, peer): (figure, spread, unit, higher is better)} of one run.

    The figure is the one run.py's report prints: the median of the
    per-process figures (samples/s, us, MB), and for a GEMM case 2*M*N*K over
    the median of the per-process seconds, with the spread of those seconds
    (run.py's GFLOP/s and spread columns)."""
    per_process = {}
    gemm = {}  # (case label, threads, peer) -> [2*M*N*K, per-process seconds]
    for run in doc.get("runs", []):
        r, task = run["result"], run["task"]
        if not r.get("ok"):
            continue
        key, th, peer = run["id"].split("/")
        kind = task["kind"]
        if kind == "train":
            per_process.setdefault((key, th, peer), ([], "samples/s", True))[0].append(r["samples"] / r["seconds"])
        elif kind == "predict":
            per_process.setdefault((key, th, peer), ([], "us", False))[0].append(r["median_us"])
        elif kind == "gemm":
            for c in r["cases"]:
                gemm.setdefault((c["label"], th, peer), [2.0 * c["M"] * c["N"] * c["K"], []])[1].append(c["seconds"])
        elif kind == "memory":
            per_process.setdefault((key, th, peer), ([], "MB", False))[0].append(
                (r["peak_after"] - r["rss_before"]) / 2**20)
    # The seconds run.py computed its GEMM figures from (the same as the runs'
    # where both peers ran; the summary has no thread count where one failed).
    for th, cases in (doc["summary"].get("gemm") or {}).items():
        for label, c in cases.items():
            for peer in ("numpy", "dnnfast"):
                secs = c.get(f"{peer}_seconds")
                if secs:
                    gemm[(label, f"{th}t", peer)] = [2.0 * c["M"] * c["N"] * c["K"], [float(x) for x in secs]]
    out = {k: (median(xs), spread(xs), unit, hib) for k, (xs, unit, hib) in per_process.items()}
    for (label, th, peer), (fl, secs) in gemm.items():
        out[(f"G {label}", th, peer)] = (fl / median(secs) / 1e9, spread(secs), "GFLOP/s", True)
    return out


def load(path):
    """The run.py --json document in `path`; BadInput saying why not."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise BadInput(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a benchmarks JSON (not UTF-8 text)") from None
    if not text.strip():
        raise BadInput(f"{path}: empty file, not a benchmarks JSON (run.py --json FILE writes one)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not valid JSON ({e.msg}: line {e.lineno} column {e.colno}; "
                       "a truncated file, or a run that did not finish writing it?)") from None
    except RecursionError:  # the parser recurses per level
        raise BadInput(f"{path}: not a benchmarks JSON (nested too deeply to read)") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: not a benchmarks JSON (a JSON {type(doc).__name__}, "
                       "not an object with 'meta' and 'summary')")
    if not isinstance(doc.get("meta"), dict) or not isinstance(doc.get("summary"), dict):
        raise BadInput(f"{path}: not a benchmarks JSON (no 'meta' and 'summary'; run.py --json FILE writes one)")
    if not isinstance(doc.get("runs", []), list):
        raise BadInput(f"{path}: not a benchmarks JSON ('runs' is not a list)")
    try:
        figures(doc)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
        raise BadInput(f"{path}: not a benchmarks JSON as run.py writes it ({type(e).__name__}: {e})") from None
    return doc


def ratio(a, b):
    return a / b if b else None


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
        mo, so, unit, hib = fo[k]
        mn, sn = fn[k][:2]
        change = ratio(mn, mo)
        noise = None if so is None or sn is None else max(so, sn)
        rows.append([k[0], k[1], PEER_NAME.get(k[2], k[2]), f"{mo:,.1f}", f"{mn:,.1f}", unit,
                     "n/a" if change is None else f"{change:.3f}", pct(so), pct(sn),
                     "" if change is None else verdict(change, noise, hib)])
    lines += ["", "medians (per-process figures; GEMM: 2*M*N*K / median seconds, as run.py; "
              "spread = (max-min)/median)"]
    lines.append(table(["workload", "threads", "peer", "old", "new", "unit", "new/old", "spread old",
                        "spread new", "flag"], rows) if rows else "no workload measured in both runs")

    # dnnfast against each peer, within each run, then across the runs
    rows = []
    for k in common:
        w, th, peer = k
        ref = (w, th, "dnnfast")
        if peer == "dnnfast" or ref not in fo or ref not in fn:
            continue
        hib = fo[k][3]
        rs = []
        for f in (fo, fn):
            (d, sd), (pr, sp) = f[ref][:2], f[k][:2]
            r = ratio(d, pr) if hib else ratio(pr, d)
            rs.append((r, None if sd is None or sp is None else sd + sp))
        change = None if None in (rs[0][0], rs[1][0]) else ratio(rs[1][0], rs[0][0])
        noise = None if rs[0][1] is None or rs[1][1] is None else max(rs[0][1], rs[1][1])
        rows.append([w, th, PEER_NAME.get(peer, peer), *("n/a" if x is None else f"{x:.2f}x" for x, _ in rs),
                     "n/a" if change is None else f"{change:.3f}", pct(rs[0][1]), pct(rs[1][1]),
                     "" if change is None else verdict(change, noise, True)])
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
    try:
        docs = [load(path) for path in (args.old, args.new)]
    except BadInput as e:
        ap.error(str(e))
    print(compare(*docs))


if __name__ == "__main__":
    cli(main, "compare.py")
