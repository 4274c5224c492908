"""One-row predict / predict_proba: dnnfast's estimators against scikit-learn's,
side by side in one process.

    PYTHONPATH=python python benchmarks/bench_predict_row.py [--hidden 100] [--seconds 0.3]

Both estimators are fitted on the same data with the same parameters (one
hidden layer, float64), then each call below is timed on the same single row
(a C-contiguous float64 array of shape (1, n_features)), the two libraries
alternating, in rounds of `--seconds` each; the best round's mean per call is
reported (the least disturbed by other load on the machine). The last lines
split dnnfast's time into the core's predict and what the Python around it
costs, and time scikit-learn's input check on the same row (check_array), the
part of scikit-learn's call that dnnfast skips for an array it can use as is.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def per_call_us(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(100):
            fn()
        n += 100
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return dt / n * 1e6


def best_of(fns, seconds, rounds):
    """{name: best mean us per call}, the callables alternating round by round."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            best[k] = min(best[k], per_call_us(fn, seconds))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--seconds", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    import dnnfast
    from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor
    from sklearn.utils import check_array

    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, args.features))
    y_class = np.arange(300) % 3
    y_reg = X @ rng.normal(size=args.features)
    kw = dict(hidden_layer_sizes=(args.hidden,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_c, theirs_c = dnnfast.MLPClassifier(**kw).fit(X, y_class), SkClassifier(**kw).fit(X, y_class)
        ours_r, theirs_r = dnnfast.MLPRegressor(**kw).fit(X, y_reg), SkRegressor(**kw).fit(X, y_reg)
    row = np.ascontiguousarray(X[:1])

    calls = {
        "MLPClassifier.predict_proba": (ours_c.predict_proba, theirs_c.predict_proba),
        "MLPClassifier.predict": (ours_c.predict, theirs_c.predict),
        "MLPRegressor.predict": (ours_r.predict, theirs_r.predict),
    }
    print(f"one row of {args.features} features, hidden_layer_sizes=({args.hidden},), float64, "
          f"dnnfast threads {dnnfast.get_num_threads()}; best of {args.rounds} rounds of {args.seconds} s")
    print(f"{'call':32s} {'dnnfast us':>11s} {'sklearn us':>11s} {'ratio':>7s}")
    for name, (ours, theirs) in calls.items():
        t = best_of({"ours": lambda: ours(row), "theirs": lambda: theirs(row)}, args.seconds, args.rounds)
        print(f"{name:32s} {t['ours']:11.2f} {t['theirs']:11.2f} {t['ours'] / t['theirs']:7.3f}")

    # Where dnnfast's time goes: the core's predict on the estimator's own
    # flat buffer, against the whole call.
    ours_c.predict_proba(row)
    P, net = ours_c._bound_params(), ours_c._core_net(row.dtype)
    t = best_of({"core": lambda: net.predict(P, row), "call": lambda: ours_c.predict_proba(row),
                 "check_array": lambda: check_array(row)}, args.seconds, args.rounds)
    print(f"dnnfast predict_proba: core predict {t['core']:.2f} us, the Python around it "
          f"{t['call'] - t['core']:.2f} us; scikit-learn's check_array on the row alone: {t['check_array']:.2f} us")


if __name__ == "__main__":
    main()
