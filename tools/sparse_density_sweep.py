"""Where a sparse X should go to the core as CSR: the estimators' fit (adam,
3 epochs) and predict_proba on a scipy CSR X of each density, with the core
reading its CSR against X made dense in blocks (dnnfast._train.rows'
CORE_CSR_MAX_DENSITY set to 1 and to 0 in turn, alternating, twice each;
medians of 3 timings a call), one thread. Prints dense-blocks / CSR time
ratios (above 1: the CSR is faster). The measurement behind
CORE_CSR_MAX_DENSITY (BENCHMARKS.md, "Measurements behind the code").

    python tools/sparse_density_sweep.py            # every shape and density
    python tools/sparse_density_sweep.py text       # 20000 columns, 20 values a row (0.1%) only
"""
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

import dnnfast
from dnnfast._train import rows

warnings.filterwarnings("ignore")


def timed(f, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return np.median(ts)


SWEEP = (0.05, 0.1, 0.15, 0.2, 0.3)
SHAPES = {"all": [(1000, 64, 4000, SWEEP), (20000, 64, 2000, (0.001,) + SWEEP), (784, 256, 4000, SWEEP),
                  (100, 100, 20000, SWEEP)],
          "text": [(20000, 64, 2000, (0.001,))]}


def main(which):
    rng = np.random.default_rng(0)
    kept = rows.CORE_CSR_MAX_DENSITY
    try:
        for d, h, n, densities in SHAPES[which]:
            for density in densities:
                X = sp.random(n, d, density=density, format="csr", random_state=1)
                y = rng.integers(0, 5, n)
                out = []
                for limit in (1.0, 0.0, 1.0, 0.0):
                    rows.CORE_CSR_MAX_DENSITY = limit
                    m = dnnfast.MLPClassifier(hidden_layer_sizes=(h,), max_iter=3, tol=0, n_iter_no_change=100,
                                              random_state=0, n_threads=1)
                    out.append((limit, timed(lambda: m.fit(X, y)), timed(lambda: m.predict_proba(X))))
                ratio = [np.median([o[k] for o in out if o[0] == 0.0]) / np.median([o[k] for o in out if o[0] == 1.0])
                         for k in (1, 2)]
                print(f"d={d} h={h} n={n} density={density}: dense-blocks/csr fit {ratio[0]:.2f}x "
                      f"predict {ratio[1]:.2f}x", flush=True)
    finally:
        rows.CORE_CSR_MAX_DENSITY = kept


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
