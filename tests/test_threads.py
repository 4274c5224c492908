"""Thread-count policy: set_num_threads, OMP_NUM_THREADS, threadpoolctl."""
import os
import subprocess
import sys

import numpy as np
import pytest

import dnnfast


def test_set_num_threads_rejects_negative_counts(restore_threads):
    with pytest.raises(ValueError, match="n must be >= 0"):
        dnnfast.set_num_threads(-1)


def test_zero_returns_to_following_openmp(restore_threads):
    dnnfast.set_num_threads(0)
    default = dnnfast.get_num_threads()
    dnnfast.set_num_threads(default + 2)
    assert dnnfast.get_num_threads() == default + 2
    dnnfast.set_num_threads(0)
    assert dnnfast.get_num_threads() == default


@pytest.mark.parametrize("n", ["1", "3"])
def test_omp_num_threads_is_respected(n):
    env = dict(os.environ, OMP_NUM_THREADS=n)
    out = subprocess.run([sys.executable, "-c", "import dnnfast; print(dnnfast.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    expected = n if dnnfast._core.has_openmp() else "1"
    assert out.stdout.strip() == expected


def test_threadpool_limits_caps_the_core(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not dnnfast._core.has_openmp():
        pytest.skip("built without OpenMP")
    dnnfast.set_num_threads(0)
    before = dnnfast.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert dnnfast.get_num_threads() == 1
        # and training under the limit still gives the answer of any other count
        X = np.random.default_rng(0).random((300, 20))
        y = np.arange(300) % 3
        net = dnnfast.Network([20, 16, 3], ["relu", "softmax"], "cce", "float64", seed=0)
        net.fit(X, y, epochs=2, batch_size=64, learning_rate=0.1)
        limited = net.parameters.copy()
    assert dnnfast.get_num_threads() == before
    net = dnnfast.Network([20, 16, 3], ["relu", "softmax"], "cce", "float64", seed=0)
    net.fit(X, y, epochs=2, batch_size=64, learning_rate=0.1)
    np.testing.assert_array_equal(limited, net.parameters)


def test_training_after_numpy_blas_calls_gives_the_same_weights(restore_threads):
    """NumPy's BLAS threads alive in the process (just used) change nothing."""
    rng = np.random.default_rng(1)
    X = rng.random((400, 30), dtype=np.float32)
    y = np.arange(400) % 4
    runs = []
    for warm_blas in (False, True):
        if warm_blas:
            M = rng.random((300, 300))
            _ = M @ M  # wakes NumPy's BLAS thread pool
        net = dnnfast.Network([30, 32, 4], ["relu", "softmax"], "cce", "float32", seed=0)
        net.fit(X, y, epochs=2, batch_size=32, learning_rate=0.05)
        runs.append(net.parameters.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
