"""Thread-count policy: set_num_threads, OMP_NUM_THREADS, threadpoolctl."""
import importlib.util
import os
import warnings
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import dnnfast


def test_set_num_threads_rejects_negative_counts(restore_threads):
    with pytest.raises(ValueError, match=r"n must be in \[0, "):
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


def test_a_team_that_starts_late_pauses_threads_for_a_while(restore_threads):
    """A thread team whose member joined late (its core busy with another
    process or NumPy's spinning BLAS threads) makes the kernels run on one
    thread for a short pause, with the same results, then on threads again."""
    core = dnnfast._core
    if not core.has_openmp():
        pytest.skip("built without OpenMP")
    dnnfast.set_num_threads(2)
    rng = np.random.default_rng(3)
    X = rng.random((512, 300), dtype=np.float32)
    y = np.arange(512) % 5
    A, B = rng.random((300, 400)), rng.random((400, 500))

    def train():
        net = dnnfast.Network([300, 512, 5], ["relu", "softmax"], "cce", "float32", seed=0)
        net.fit(X, y, epochs=1, batch_size=64, learning_rate=0.05)
        return net.parameters.copy()

    # Real late teams can happen here too (an earlier test's NumPy products
    # leave OpenBLAS spinning), so "not paused" is only asserted right after
    # a sleep longer than the 50 ms pause, with no team started in between.
    time.sleep(0.2)
    assert not core.teams_paused()
    weights, product = train(), core.gemm(A, B)
    count = core.late_team_count()
    core.simulate_late_team(500.0)  # under the 1 ms threshold: not late
    assert core.late_team_count() == count
    core.simulate_late_team(5000.0)  # 5 ms: late
    assert core.late_team_count() == count + 1
    assert core.teams_paused()
    np.testing.assert_array_equal(train(), weights)
    np.testing.assert_array_equal(core.gemm(A, B), product)
    time.sleep(0.2)
    assert not core.teams_paused()
    np.testing.assert_array_equal(train(), weights)


# -- determinism: the promise is bit-identical weights for the same seed, run
# after run and on any thread count. The layers are wide enough (512) that
# every kind of step, batch size 1 included, goes above the kernels'
# threading thresholds, so 2 and 3 threads really split the work (one-row
# and three-row batches go in windows: 512 x 512 is more than 32 KiB); the
# whole-batch kind also gathers its shuffled 120 x 512 rows on 3 threads
# (gather_rows in cpp/nn/network.cpp).

_KINDS = {"batch": None, "minibatch": 16, "stochastic": 1, "small-batches": 3}


def _fit_network(dtype, batch_size, threads):
    dnnfast.set_num_threads(threads)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 512)).astype(dtype)
    y = np.arange(120) % 5
    net = dnnfast.Network([512, 512, 512, 5], ["relu", "tanh", "softmax"], "cce", dtype, seed=3)
    net.fit(X, y, epochs=2, batch_size=batch_size, learning_rate=0.05, shuffle=True)
    return net.parameters.copy(), net.predict(X)


@pytest.mark.parametrize("kind", list(_KINDS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_network_fit_is_bit_identical_across_runs_and_thread_counts(dtype, kind, restore_threads):
    first_params, first_pred = _fit_network(dtype, _KINDS[kind], 1)
    assert np.isfinite(first_params).all()
    for threads in (1, 2, 3):  # 1 again: run to run
        params, pred = _fit_network(dtype, _KINDS[kind], threads)
        np.testing.assert_array_equal(params, first_params, err_msg=f"{threads} thread(s)")
        np.testing.assert_array_equal(pred, first_pred, err_msg=f"{threads} thread(s)")


# A stateful optimizer's step splits over the threads from fewer parameters
# when the batch's products ran on a team (optimizer_step's `spread`): here
# 149k parameters, below the 300k from which the step splits otherwise, and
# wide enough products that one-row batches team too.
@pytest.mark.parametrize("batch_size", [1, 16])
@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_step_after_a_team_is_bit_identical_on_any_thread_count(dtype, optimizer, batch_size,
                                                                       restore_threads):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((48, 400)).astype(dtype)
    y = np.arange(48) % 5

    def fit(threads):
        dnnfast.set_num_threads(threads)
        net = dnnfast.Network([400, 320, 64, 5], ["relu", "tanh", "softmax"], "cce", dtype, seed=2)
        net.fit(X, y, epochs=2, batch_size=batch_size, learning_rate=0.01, optimizer=optimizer,
                shuffle=True, seed=4)
        return net.parameters.copy()

    first = fit(1)
    assert np.isfinite(first).all()
    for threads in (2, 3):
        np.testing.assert_array_equal(fit(threads), first, err_msg=f"{threads} threads")


@pytest.mark.parametrize("solver, extra", [("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.0}),
                                           ("adam", {})], ids=["sgd-nesterov", "sgd-plain", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimator_fit_is_bit_identical_across_runs_and_thread_counts(dtype, solver, extra):
    from dnnfast import MLPClassifier

    rng = np.random.default_rng(5)
    X = rng.standard_normal((160, 48)).astype(dtype)
    y = np.arange(160) % 4
    fits = []
    for threads in (1, 1, 2, 3):
        clf = MLPClassifier(hidden_layer_sizes=(512,), solver=solver, batch_size=40, max_iter=2,
                            random_state=0, n_threads=threads, **extra)
        with np.errstate(all="ignore"), pytest.warns(Warning):  # max_iter reached: ConvergenceWarning
            clf.fit(X, y)
        fits.append((clf.coefs_ + clf.intercepts_, clf.predict_proba(X)))
    for threads, (params, proba) in zip((1, 2, 3), fits[1:]):
        for p, q in zip(params, fits[0][0]):
            assert p.dtype == dtype
            np.testing.assert_array_equal(p, q, err_msg=f"{threads} thread(s)")
        np.testing.assert_array_equal(proba, fits[0][1], err_msg=f"{threads} thread(s)")


_LBFGS_SCRIPT = """
import hashlib, warnings
import numpy as np
import dnnfast
warnings.simplefilter("ignore")  # ConvergenceWarning: few iterations on purpose
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 20))
y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
# ~36,000 parameters: long enough vectors for OpenBLAS to split its reductions over threads
est = dnnfast.MLPClassifier(hidden_layer_sizes=(300, 100), solver="lbfgs", max_iter=25, random_state=0).fit(X, y)
print(hashlib.sha256(b"".join(a.tobytes() for a in est.coefs_ + est.intercepts_)).hexdigest())
"""


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="solver='lbfgs' needs SciPy")
def test_lbfgs_weights_do_not_depend_on_blas_threads():
    """L-BFGS-B runs in SciPy's BLAS; its threaded reductions gave different
    weights for OPENBLAS_NUM_THREADS=1 and 2. The solver pins BLAS to one
    thread (threadpoolctl), so the weights are bit-identical on any count."""
    digests = set()
    for n in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
        out = subprocess.run([sys.executable, "-c", _LBFGS_SCRIPT], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


def test_lbfgs_fits_at_once_share_one_blas_limit():
    """Each lbfgs fit set BLAS to one thread and, when it ended, put back the
    count it had found: a fit ending while another thread's ran gave that one
    BLAS's two threads (other weights than a fit alone), and the one ending
    last left the process's BLAS on one thread for good. The limit is now
    shared: entered by the first fit, left by the last."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from dnnfast._estimators import _solvers

    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("no BLAS that threadpoolctl sees")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        a, b = _solvers._one_blas_thread(), _solvers._one_blas_thread()
        a.__enter__()
        assert blas_threads() == {1}
        b.__enter__()  # a second fit starts
        a.__exit__(None, None, None)  # the first ends: the second still runs on one BLAS thread
        assert blas_threads() == {1}
        b.__exit__(None, None, None)
        assert blas_threads() == {2}  # the count the first found


def test_lbfgs_blas_limit_holds_in_any_thread():
    """threadpoolctl 3.8 lets only its "controlling" thread, the first to set
    OpenBLAS's process-wide count, change it; others' limits do nothing,
    silently. A fit in the main thread made it the controller for good, so a
    later lbfgs fit in another thread ran on two BLAS threads (weights other
    than the same fit's in the main thread), and a limit entered in one thread
    and left in another was not restored."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from dnnfast._estimators import _solvers

    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("no BLAS that threadpoolctl sees")

    def in_thread(fn):
        out = []
        t = threading.Thread(target=lambda: out.append(fn()))
        t.start()
        t.join()
        return out[0]

    def fit_sees():
        with _solvers._one_blas_thread():
            return blas_threads()

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert fit_sees() == {1}  # a fit in this thread first
        assert blas_threads() == {2}
        assert in_thread(fit_sees) == {1}  # then one in another thread
        assert blas_threads() == {2}
        a, b = _solvers._one_blas_thread(), _solvers._one_blas_thread()
        assert in_thread(lambda: (a.__enter__(), blas_threads())[1]) == {1}  # entered in one thread,
        b.__enter__()
        in_thread(lambda: a.__exit__(None, None, None))
        assert blas_threads() == {1}
        in_thread(lambda: b.__exit__(None, None, None))  # left last in another
        assert blas_threads() == {2}


def test_lbfgs_fits_scan_the_loaded_libraries_once(monkeypatch):
    """Each lbfgs fit's BLAS limit made threadpoolctl scan every loaded
    library (2 ms, a small fit 2-3x scikit-learn's); the scan is made again
    only when modules were imported since."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pytest.importorskip("scipy.optimize")
    if not hasattr(threadpoolctl, "ThreadpoolController"):
        pytest.skip("threadpoolctl before 3.0")
    from dnnfast import MLPRegressor
    made = []
    real = threadpoolctl.ThreadpoolController

    def counting():
        made.append(1)
        return real()

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 4)), rng.normal(size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        MLPRegressor(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=2).fit(X, y)
        monkeypatch.setattr(threadpoolctl, "ThreadpoolController", counting)
        for _ in range(3):
            MLPRegressor(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=2).fit(X, y)
    assert len(made) <= 1, made


def test_lbfgs_blas_limit_keeps_a_count_set_back_meanwhile():
    """A user's threadpool_limits block, open in another thread when the
    lbfgs limit began and closed before it ended, sets its own count back;
    the limit's end then restored the count it had seen at its start (the
    block's), for good. It now restores only a count still at its own 1."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from dnnfast._estimators import _solvers

    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    start = blas_threads()
    if len(start) != 1 or start == {1}:
        pytest.skip(f"BLAS thread counts {start}: nothing to tell apart")
    opened, go = threading.Event(), threading.Event()

    def block():
        with threadpoolctl.threadpool_limits(limits=max(start) + 2, user_api="blas"):
            opened.set()
            go.wait(10)

    t = threading.Thread(target=block)
    t.start()
    opened.wait(10)
    limit = _solvers._one_blas_thread()
    limit.__enter__()
    try:
        assert blas_threads() == {1}
    finally:
        go.set()
        t.join()  # the block sets its count back
        limit.__exit__(None, None, None)
    assert blas_threads() == start


def test_lbfgs_fit_gives_the_users_blas_control_back():
    """Inside a user's `with threadpool_limits(limits=1)`, threadpoolctl 3.8
    lets no other thread change OpenBLAS's count; an lbfgs fit released that
    control for its own change and left it free, so another thread's limit
    then took effect. The holder gets it back."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from dnnfast._estimators import _solvers

    shared = getattr(getattr(threadpoolctl, "OpenBLASController", None), "_SHARED_STATE", None)
    if shared is None:
        pytest.skip("threadpoolctl without controlling threads (before 3.8)")

    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("no BLAS that threadpoolctl sees")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        with _solvers._one_blas_thread():
            pass
        t = threading.Thread(target=lambda: threadpoolctl.threadpool_limits(limits=2, user_api="blas"))
        t.start()
        t.join()
        assert blas_threads() == {1}


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="solver='lbfgs' needs SciPy")
def test_lbfgs_in_blocks_of_rows_is_bit_identical_on_any_thread_count(monkeypatch):
    """lbfgs sums the loss and gradient of fixed blocks of rows (Ctrl-C is
    read between them) in row order: the blocks come from the shape, never
    from timing, so the weights have the same bits on 1, 2 and 3 threads."""
    from dnnfast import MLPClassifier
    from dnnfast._estimators import _solvers
    monkeypatch.setattr(_solvers, "LBFGS_BLOCK_FLOPS", 1e6)  # 8 blocks of 64 rows here
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 20))
    y = np.arange(500) % 3
    fits = []
    for threads in (1, 1, 2, 3):
        clf = MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", max_iter=15, random_state=0,
                            n_threads=threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: few iterations on purpose
            clf.fit(X, y)
        fits.append(clf.coefs_ + clf.intercepts_)
    assert _solvers.lbfgs_block_rows(X.shape[0], sum(p.size for p in fits[0]), 1) < X.shape[0]
    for threads, params in zip((1, 2, 3), fits[1:]):
        for p, q in zip(params, fits[0]):
            np.testing.assert_array_equal(p, q, err_msg=f"{threads} thread(s)")


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_local_thread_count_is_restored_however_the_call_ends(error):
    """The estimators' per-call count (call_with_local_num_threads): set and
    put back in C++ around the call, whether it returns or raises."""
    before = dnnfast._core.set_local_num_threads(0)
    try:
        seen = []
        assert dnnfast._core.call_with_local_num_threads(3, lambda a, b: seen.append(dnnfast.get_num_threads()) or a + b,
                                                 1, 2) == 3
        assert seen == [3]

        def fails():
            seen.append(dnnfast.get_num_threads())
            raise error("inside")

        with pytest.raises(error, match="inside"):
            dnnfast._core.call_with_local_num_threads(1, fails)
        assert seen == [3, 1]
        assert dnnfast._core.set_local_num_threads(0) == 0  # nothing left behind
        with pytest.raises(ValueError, match="n must be >= 0"):
            dnnfast._core.call_with_local_num_threads(-1, fails)
        with pytest.raises(TypeError, match="takes n and fn"):
            dnnfast._core.call_with_local_num_threads(1)
        with pytest.raises(TypeError):
            dnnfast._core.call_with_local_num_threads(1.5, fails)
        with pytest.raises(OverflowError):
            dnnfast._core.call_with_local_num_threads(2**40, fails)
        assert seen == [3, 1]  # fn was not called
        assert dnnfast._core.set_local_num_threads(0) == 0
    finally:
        dnnfast._core.set_local_num_threads(before)


_HUGE_COUNT_CHILD = """
import os, sys
import numpy as np
import dnnfast
print(dnnfast.get_num_threads())
dnnfast.set_num_threads(int(sys.argv[1]))
X = np.random.default_rng(0).normal(size=(2048, 256)).astype(np.float32)
net = dnnfast.Network([256, 512, 10], ["relu", "softmax"], "cce", "float32", seed=0)
net.fit(X, np.arange(2048) % 10, epochs=1, batch_size=2048)
big = net.predict(X)
print(len(os.listdir("/proc/self/task")))
dnnfast.set_num_threads(1)
net1 = dnnfast.Network([256, 512, 10], ["relu", "softmax"], "cce", "float32", seed=0)
net1.fit(X, np.arange(2048) % 10, epochs=1, batch_size=2048)
print(int(net1.predict(X).tobytes() == big.tobytes() and net1.parameters.tobytes() == net.parameters.tobytes()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/task")
def test_a_huge_thread_count_runs_on_a_capped_team_with_the_same_bits():
    """set_num_threads(4096) on 2 cores started thousands of OpenMP threads
    (609 for 65536 here), and where the system refused them libgomp ended
    the process; OMP_NUM_THREADS=99999999999 read as 1215752191. Teams are
    at most max(64, 4 x CPUs) threads, counts at most 65536."""
    env = dict(os.environ, OMP_NUM_THREADS="99999999999")
    out = subprocess.run([sys.executable, "-c", _HUGE_COUNT_CHILD, "65536"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    reported, threads, same = map(int, out.stdout.split())
    assert reported == 65536
    assert threads <= max(64, 4 * (os.cpu_count() or 1)) + 2, threads
    assert same == 1
