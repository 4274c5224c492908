"""lbfgs fits and Network.loss_and_gradient over many rows: the rule of
gradient_block_rows (blocks of at most STEP_BLOCK_BYTES of the core's
workspace once there are more rows than two such blocks) against one core
call over all rows (STEP_BLOCK_BYTES set huge), alternating in one process,
one thread, float64; nanoseconds a row (an lbfgs fit: a row and an
iteration), the best of three. The measurement behind gradient_block_rows
(BENCHMARKS.md, "Measurements behind the code").

    python tools/lbfgs_block_sweep.py
"""
import time
import warnings

import numpy as np

import dnnfast
from dnnfast._train import driver

warnings.filterwarnings("ignore")


def best(f, reps=3):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        r = f()
        out.append((time.perf_counter() - t, r))
    return min(out, key=lambda x: x[0])


def main():
    dnnfast.set_num_threads(1)
    rng = np.random.default_rng(0)
    kept = driver.STEP_BLOCK_BYTES
    try:
        for d, h in ((20, 64), (100, 100), (64, 256)):
            for n in (2000, 8192, 20000, 100000):
                X = rng.standard_normal((n, d))
                y = rng.integers(0, 10, n)
                net = dnnfast.Network([d, h, 10], ["relu", "softmax"], dtype="float64", seed=0)
                res = {}
                for rule, limit in (("one call", 1 << 40), ("blocks", kept)) * 2:
                    driver.STEP_BLOCK_BYTES = limit

                    def fit():
                        m = dnnfast.MLPClassifier(hidden_layer_sizes=(h,), solver="lbfgs", max_iter=10,
                                                  random_state=0, n_threads=1)
                        return m.fit(X, y).n_iter_
                    t, iters = best(fit)
                    g, _ = best(lambda: net.loss_and_gradient(X, y))
                    res.setdefault(rule, []).append((t / n / iters * 1e9, g / n * 1e9))
                one, blk = (np.min(res[k], axis=0) for k in ("one call", "blocks"))
                print(f"{d}-{h}-10 n={n}: lbfgs {one[0]:.0f} -> {blk[0]:.0f} ns ({one[0] / blk[0]:.2f}x), "
                      f"loss_and_gradient {one[1]:.0f} -> {blk[1]:.0f} ns ({one[1] / blk[1]:.2f}x)", flush=True)
    finally:
        driver.STEP_BLOCK_BYTES = kept


if __name__ == "__main__":
    main()
