"""Repeated fit / predict cycles do not grow the process.

Every cycle builds a new model (the C++ network's constructor and destructor,
its workspaces, the parameter buffer), trains and predicts; after a warm-up
(allocator pools, lazily imported modules) resident memory must stay flat.
The hidden layer is wide enough that one leaked network per cycle (its
workspace alone is about 160 kB) would pass the limit many times over.
"""
import gc
import os
import warnings

import numpy as np
import pytest

import dnnfast

LIMIT_MB = 5.0
# The estimators' hidden width: one leaked model per cycle (parameters, Adam
# moments and the core's workspace for 40 rows, about 0.5 MB for 512 units)
# passes LIMIT_MB within a dozen of the 60 cycles.
HIDDEN = 512


def _resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)"),
    # AddressSanitizer keeps freed memory in quarantine (up to 256 MB) on purpose.
    pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""), reason="under AddressSanitizer"),
]


def _growth(cycle, n_cycles, warmup):
    for i in range(warmup):
        cycle(i)
    gc.collect()
    before = _resident_mb()
    for i in range(n_cycles):
        cycle(i)
    gc.collect()
    return _resident_mb() - before


def test_1000_network_fit_predict_cycles_do_not_grow_memory():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8))
    y = np.arange(40) % 3
    X32 = X.astype(np.float32)

    def cycle(i):
        dtype, data = ("float32", X32) if i % 2 else ("float64", X)
        net = dnnfast.Network([8, 128, 3], ["relu", "softmax"], "cce", dtype, seed=i)
        net.fit(data, y, epochs=2, batch_size=(None, 1, 8)[i % 3], learning_rate=0.1, shuffle=True)
        net.predict(data)
        net.cost(data, y)
        net.gradients(data[:5], y[:5])

    assert _growth(cycle, 1000, 100) < LIMIT_MB


def test_estimator_fit_predict_cycles_do_not_grow_memory():
    from dnnfast import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 8))
    y = np.arange(40) % 3

    def cycle(i):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning
            solver = ("adam", "sgd")[i % 2]
            clf = MLPClassifier((HIDDEN,), solver=solver, max_iter=2, random_state=i).fit(X, y)
            clf.predict_proba(X)
            reg = MLPRegressor(hidden_layer_sizes=(HIDDEN,), solver=solver, max_iter=2, random_state=i).fit(X, X[:, 0])
            reg.partial_fit(X, X[:, 0])
            reg.predict(X)

    assert _growth(cycle, 60, 10) < LIMIT_MB
