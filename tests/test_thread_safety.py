"""One model used from several threads, and from a forked child.

The promises (see dnnfast/_locking.py): predictions from several threads at
once give the serial answer; a second fit while one runs raises RuntimeError
and changes nothing; a prediction asked for during a fit waits for the fit
and answers with the fitted model; copies and unpickled models have a lock of
their own; a child forked after multi-threaded training predicts (on one
thread) instead of hanging.
"""
import copy
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import dnnfast
from conftest import BlockedStream
from dnnfast._locking import model_lock

TIMEOUT = 60  # seconds: a deadlock fails the test instead of hanging the run


def _data(n=300, m=20, k=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)).astype(dtype), np.arange(n) % k


def _network(dtype="float64"):
    X, y = _data(dtype=dtype)
    net = dnnfast.Network([20, 64, 3], ["tanh", "softmax"], "cce", dtype, seed=0)
    net.fit(X, y, epochs=2, batch_size=32, learning_rate=0.1)
    return net


def _estimators(dtype=np.float64):
    from dnnfast import MLPClassifier, MLPRegressor

    X, y = _data(dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        clf = MLPClassifier((32,), max_iter=3, random_state=0).fit(X, y)
        reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(X, X[:, :2])
    return clf, reg


def _inputs(dtype):
    """Inputs of many sizes: one row, a few, and more than one 1024-row chunk."""
    rng = np.random.default_rng(1)
    return [rng.standard_normal((n, 20)).astype(dtype) for n in (1, 2, 7, 64, 1500, 3, 1, 300)]


def _run_concurrently(fn, inputs, workers=4, rounds=3):
    """fn on every input, `rounds` times over, from `workers` threads started together."""
    start = threading.Barrier(workers)

    def work(w):
        start.wait(TIMEOUT)
        return [fn(inputs[(w + r) % len(inputs)]) for r in range(rounds * len(inputs))]

    with ThreadPoolExecutor(workers) as pool:
        results = [f.result(TIMEOUT) for f in [pool.submit(work, w) for w in range(workers)]]
    return [(w, r, out) for w, outs in enumerate(results) for r, out in enumerate(outs)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_concurrent_network_predictions_equal_the_serial_ones(dtype):
    net = _network(dtype)
    inputs = _inputs(dtype)
    serial = [net.predict(X) for X in inputs]
    for w, r, out in _run_concurrently(net.predict, inputs):
        np.testing.assert_array_equal(out, serial[(w + r) % len(inputs)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concurrent_estimator_predictions_equal_the_serial_ones(dtype, restore_threads):
    clf, reg = _estimators(dtype)
    inputs = _inputs(dtype)
    dnnfast.set_num_threads(0)
    before = dnnfast.get_num_threads()
    for fn in (clf.predict_proba, clf.predict, reg.predict):
        serial = [fn(X) for X in inputs]
        for w, r, out in _run_concurrently(fn, inputs):
            np.testing.assert_array_equal(out, serial[(w + r) % len(inputs)])
    # Each call ran on its own thread count (one thread for these small
    # steps) without touching the process-wide one.
    assert dnnfast.get_num_threads() == before


def test_predictions_racing_repeated_fits_see_only_whole_fits():
    """Readers hammer a network that another thread fits again and again:
    every answer must be that of the parameters between two fits, never of
    a fit's middle epoch or of a half-updated buffer."""
    net = _network()
    X, y = _data()
    Xq = X[:5]
    snapshots = [net.parameters.copy()]
    done = threading.Event()

    def fitter():
        try:
            for _ in range(12):
                net.fit(X, y, epochs=2, batch_size=16, learning_rate=0.05, shuffle=True)
                snapshots.append(net.parameters.copy())  # only this thread fits: no race here
        finally:
            done.set()

    def reader():
        seen = []
        while not done.is_set():
            seen.append(net.predict(Xq))
        return seen

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(reader) for _ in range(2)]
        pool.submit(fitter).result(TIMEOUT)
        answers = [a for r in readers for a in r.result(TIMEOUT)]
    probe = dnnfast.Network([20, 64, 3], ["tanh", "softmax"], "cce", "float64", seed=0)
    allowed = []
    for p in snapshots:
        probe.parameters[:] = p
        allowed.append(probe.predict(Xq))
    assert answers
    for a in answers:
        assert any(np.array_equal(a, b) for b in allowed), "a prediction saw parameters in the middle of a fit"


def _check_fit_excludes_and_predict_waits(model, start_fit, fit_again, predict, X):
    """start_fit() blocks inside a fit until `release()`; meanwhile another
    fit raises and a prediction waits, then sees the fitted model."""
    release, entered, fit_thread = start_fit()
    try:
        assert entered.wait(TIMEOUT), "the fit did not start"
        assert model_lock(model).fitting
        with pytest.raises(RuntimeError, match="already being fitted in another thread"):
            fit_again()
        answers = []
        reader = threading.Thread(target=lambda: answers.append(predict(X)))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive(), "predict returned while the fit held the model"
    finally:
        release()
    fit_thread.join(TIMEOUT)
    reader.join(TIMEOUT)
    assert not fit_thread.is_alive() and not reader.is_alive()
    assert not model_lock(model).fitting
    np.testing.assert_array_equal(answers[0], predict(X))  # the fitted model's answer


def test_network_second_fit_raises_and_predict_waits_for_the_fit(monkeypatch):
    net = _network()
    X, y = _data()
    stream = BlockedStream(TIMEOUT)
    monkeypatch.setattr(sys, "stdout", stream)
    errors = []

    def start_fit():
        def fit():
            try:
                net.fit(X, y, epochs=3, batch_size=32, learning_rate=0.1, verbose=True)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
        t = threading.Thread(target=fit)
        t.start()
        return stream.release.set, stream.entered, t

    before = net.parameters.copy()

    def fit_again():
        mid = net.parameters.copy()  # the running fit is parked: nothing moves
        try:
            net.fit(X, y, epochs=1)
        finally:
            np.testing.assert_array_equal(net.parameters, mid)

    _check_fit_excludes_and_predict_waits(net, start_fit, fit_again, net.predict, X)
    assert not errors
    assert not np.array_equal(net.parameters, before)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_estimator_second_fit_raises_and_predict_waits_for_the_fit(method, monkeypatch):
    from dnnfast._estimators import _solvers

    clf, _ = _estimators()
    X, y = _data()
    entered, release = threading.Event(), threading.Event()

    class BlockingProgress(_solvers.Progress):
        def update(self, *args, **kwargs):
            entered.set()
            assert release.wait(TIMEOUT)
            return super().update(*args, **kwargs)

    monkeypatch.setattr(_solvers, "Progress", BlockingProgress)
    errors = []

    def start_fit():
        def fit():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if method == "fit":
                        clf.set_params(max_iter=2).fit(X, y)
                    else:
                        clf.partial_fit(X, y)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
        t = threading.Thread(target=fit)
        t.start()
        return release.set, entered, t

    def fit_again():
        getattr(clf, method)(X, y)

    _check_fit_excludes_and_predict_waits(clf, start_fit, fit_again, clf.predict_proba, X)
    assert not errors


def test_a_read_inside_the_own_fit_and_nested_reads_do_not_deadlock():
    net = _network()
    X, _ = _data()
    lock = model_lock(net)
    lock.acquire_write("Network")
    try:
        assert net.predict(X).shape == (300, 3)  # this thread's own fit may read
    finally:
        lock.release_write()
    lock.acquire_read()
    try:
        assert net.gradients(X, np.arange(300) % 3)[0][0].shape == (20, 64)  # nested reads
        with pytest.raises(RuntimeError, match="from inside one of its own predictions"):
            net.fit(X, np.arange(300) % 3)
    finally:
        lock.release_read()
    assert not lock.fitting


def test_with_lock_is_a_read_that_lets_exceptions_through_and_releases():
    # `with lock:` is the reads' hot path (its own CPython methods, not
    # pybind11's): an exception in the block goes on, the read ends with it,
    # and an end of a read never begun is refused by name.
    lock = model_lock(_network())
    with pytest.raises(ZeroDivisionError):
        with lock:
            assert lock.reading
            with lock:  # nested
                1 / 0
    assert not lock.reading and not lock.fitting
    assert lock.__enter__() is None
    assert lock.__exit__(None, None, None) is False
    with pytest.raises(RuntimeError, match="release of a read this thread does not hold"):
        lock.__exit__(None, None, None)
    lock.acquire_write("Network")  # free again: no read is left behind
    lock.release_write()
    bare = type(lock).__new__(type(lock))  # no __init__: no C++ lock behind it
    with pytest.raises(TypeError, match="__init__ was not called"):
        with bare:
            pass


def test_copies_and_unpickled_models_have_a_free_lock_of_their_own():
    clf, reg = _estimators()
    X, y = _data()
    lock = model_lock(clf)
    lock.acquire_write("MLPClassifier")  # as if a fit were running
    try:
        for twin in (copy.deepcopy(clf), pickle.loads(pickle.dumps(clf))):
            assert model_lock(twin) is not lock and not model_lock(twin).fitting
            np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                twin.partial_fit(X, y)  # not blocked by the original's fit
    finally:
        lock.release_write()
    net = _network()
    shallow = copy.copy(net)  # a whole copy too: the state is copied under the lock (dnnfast/_locking.py)
    assert model_lock(shallow) is not model_lock(net) and shallow.parameters is not net.parameters
    np.testing.assert_array_equal(shallow.parameters, net.parameters)
    assert isinstance(pickle.loads(pickle.dumps(model_lock(net))), type(model_lock(net)))


_FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, os, sys
    import numpy as np
    import dnnfast

    def child_predict(args):
        params, X, threads = args
        if threads:
            dnnfast.set_num_threads(threads)
        net = make_net()
        net.parameters[:] = params
        return net.predict(X), dnnfast.get_num_threads()

    def make_net():
        return dnnfast.Network([256, 256, 10], ["relu", "softmax"], "cce", "float64", seed=0)

    if __name__ == "__main__":
        dnnfast.set_num_threads(2)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((1200, 256))
        y = np.arange(1200) % 10
        net = make_net()
        net.fit(X, y, epochs=1, batch_size=600, learning_rate=0.05)  # two-thread GEMMs
        expected = net.predict(X)
        method = sys.argv[1]
        if method == "os.fork":
            pid = os.fork()
            if pid == 0:
                same = np.array_equal(net.predict(X), expected)
                os._exit(0 if same and dnnfast.get_num_threads() == 1 else 3)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        else:
            with mp.get_context(method).Pool(1) as pool:
                # a spawned child starts afresh and may use threads again
                ask = None if method == "fork" else 2
                out, threads = pool.apply(child_predict, ((net.parameters, X, ask),))
            assert np.array_equal(out, expected)
            assert threads == (1 if method == "fork" else 2), threads
        assert dnnfast.get_num_threads() == 2  # the parent keeps its count
        print("ok")
""")


@pytest.mark.parametrize("method", ["os.fork", "fork", "spawn"])
def test_a_child_process_predicts_after_multithreaded_training(method, tmp_path):
    """GNU OpenMP cannot start threads in a child forked after the parent ran
    a team; dnnfast runs such a child on one thread (same answers) instead of
    hanging. 'spawn' children keep their threads."""
    if not dnnfast._core.has_openmp() and method != "spawn":
        pytest.skip("built without OpenMP")
    script = tmp_path / "fork_child.py"
    script.write_text(_FORK_SCRIPT)
    out = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
