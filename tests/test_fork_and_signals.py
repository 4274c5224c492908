"""The model lock under fork, signals and copies (dnnfast/_locking.py).

- A child forked after multi-threaded OpenMP work runs on one thread, whatever
  it asks for (GNU libgomp's pool does not survive fork), and says so.
- A child forked while another thread fits a model gets a free lock and a
  whole training state (the fork waits for the fit's next step boundary).
- A KeyboardInterrupt from a signal handler, wherever it lands in a read or
  a fit, never leaves the lock held; a wait for a fit is interruptible.
- A child forked while other threads predict can fit (no core mutex is left
  held by a thread that is gone).
- copy.deepcopy and pickle during a fit give a whole training state, never
  a torn one.
- The interpreter exits cleanly while a daemon thread is inside a fit.

Each case that could hang runs in a subprocess, or a thread, with a timeout.
"""
import copy
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import dnnfast
from conftest import BlockedStream
from dnnfast._locking import model_lock

TIMEOUT = 60  # seconds: a deadlock fails the test instead of hanging the run

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def _run_script(tmp_path, source, *args):
    """Run `source` as a script in a session of its own; on a timeout kill the
    whole session, forked children included (a hung child outlives its parent)."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:  # the hang this file is about
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"timed out after {TIMEOUT} s: a hang")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any child left behind
        except ProcessLookupError:
            pass
    assert proc.returncode == 0 and stdout.strip().endswith("ok"), (stdout[-2000:], stderr[-3000:])
    return stdout


# -- fork after multi-threaded work ------------------------------------------

_FORK_ASKS_FOR_THREADS = """
    import multiprocessing as mp, os, sys, warnings
    import numpy as np
    import dnnfast

    def fit_in_child(seed):
        X, y = data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = dnnfast.MLPClassifier((128,), max_iter=2, batch_size=300, random_state=seed, n_threads=2).fit(X, y)
        return [c.copy() for c in clf.coefs_], dnnfast.get_num_threads()

    def data():
        rng = np.random.default_rng(0)
        return rng.standard_normal((600, 256)), np.arange(600) % 4

    if __name__ == "__main__":
        dnnfast.set_num_threads(2)
        X, y = data()
        net = dnnfast.Network([256, 256, 4], ["relu", "softmax"], "cce", "float64", seed=0)
        net.fit(X, y, epochs=1, batch_size=600, learning_rate=0.05)  # two-thread GEMMs: libgomp's pool exists
        expected = net.predict(X)
        if sys.argv[1] == "os.fork":
            pid = os.fork()
            if pid == 0:  # the child asks for threads again
                dnnfast.set_num_threads(2)
                same = np.array_equal(net.predict(X), expected)
                prev = dnnfast._core.set_local_num_threads(2)
                ok = same and dnnfast.get_num_threads() == 1
                os._exit(0 if ok else 3)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "child saw threads or other answers"
        else:
            ref = [fit_in_child(s)[0] for s in (1, 2)]  # bit-identical on any thread count
            with mp.get_context("fork").Pool(2) as pool:
                got = pool.map(fit_in_child, (1, 2))
            for (coefs, threads), want in zip(got, ref):
                assert threads == 1, threads
                assert all(np.array_equal(a, b) for a, b in zip(coefs, want))
        assert dnnfast.get_num_threads() == 2  # the parent keeps its count
        print("ok")
"""


@needs_fork
@pytest.mark.parametrize("how", ["os.fork", "pool"])
def test_a_forked_child_that_asks_for_threads_runs_on_one_and_never_hangs(how, tmp_path):
    if not dnnfast._core.has_openmp():
        pytest.skip("built without OpenMP")
    _run_script(tmp_path, _FORK_ASKS_FOR_THREADS, how)


# -- fork while another thread fits ------------------------------------------

_FORK_DURING_A_FIT = """
    import os, sys, threading, time
    import numpy as np
    import dnnfast
    from dnnfast._locking import model_lock

    EPOCHS = 40

    def make():
        return dnnfast.Network([64, 256, 4], ["tanh", "softmax"], "cce", "float64", seed=0)

    if __name__ == "__main__":
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((2000, 64)), np.arange(2000) % 4
        net = make()
        out = sys.argv[1]
        fitter = threading.Thread(target=lambda: net.fit(X, y, epochs=EPOCHS, batch_size=8, learning_rate=0.01))
        fitter.start()
        while not model_lock(net).fitting:
            pass
        time.sleep(0.05)  # into the epochs: the C++ loop runs without the GIL, the fork lands mid-epoch
        pid = os.fork()
        if pid == 0:
            # The fitting thread does not exist here: the lock must be free,
            # and the model a whole training state.
            try:
                np.save(out, net.parameters)
                net.predict(X[:3])
                net.fit(X[:50], y[:50], epochs=1)
                os._exit(0)
            except BaseException:
                os._exit(4)
        fitter.join()
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        seen = np.load(out)
        twin = make()
        states = [twin.parameters.copy()]
        for _ in range(EPOCHS):  # fit(epochs=k) is k fits of one epoch, bit for bit
            twin.fit(X, y, epochs=1, batch_size=8, learning_rate=0.01)
            states.append(twin.parameters.copy())
        assert np.array_equal(states[-1], net.parameters)
        epochs = [k for k, s in enumerate(states) if np.array_equal(s, seen)]
        assert epochs, "the child saw parameters from the middle of an epoch"
        print(f"child saw epoch {epochs[0]}; ok")
"""


_FORK_DURING_PREDICTIONS = """
    import os, threading, time
    import numpy as np
    import dnnfast

    if __name__ == "__main__":
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((4000, 64)), np.arange(4000) % 4
        net = dnnfast.Network([64, 512, 4], ["tanh", "softmax"], "cce", "float64", seed=0)
        stop = threading.Event()

        def predict():
            while not stop.is_set():
                net.predict(X)

        readers = [threading.Thread(target=predict) for _ in range(2)]
        for t in readers:
            t.start()
        for _ in range(5):
            time.sleep(0.02)  # into the predictions: they run without the GIL
            pid = os.fork()
            if pid == 0:
                # A core call of another thread held the network's workspace
                # mutex when a fork landed in it: this fit waited for ever.
                try:
                    net.fit(X[:100], y[:100], epochs=1, batch_size=10)
                    net.predict(X[:3])
                    os._exit(0)
                except BaseException:
                    os._exit(4)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        stop.set()
        for t in readers:
            t.join()
        print("ok")
"""


@needs_fork
def test_a_child_forked_during_predictions_in_other_threads_can_fit(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _run_script(tmp_path, _FORK_DURING_PREDICTIONS)


@needs_fork
def test_a_child_forked_during_a_fit_gets_a_free_lock_and_a_whole_state(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
        _run_script(tmp_path, _FORK_DURING_A_FIT, str(tmp_path / "seen.npy"))


_FORK_WHILE_A_CALLBACK_READS_A_FITTING_MODEL = """
    import os, threading, time, warnings
    import numpy as np
    import dnnfast
    from dnnfast._locking import model_lock

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2000, 64)), np.arange(2000) % 4
    A = dnnfast.Network([64, 64, 4], ["tanh", "softmax"], dtype="float64", seed=0)
    B = dnnfast.Network([64, 256, 4], ["tanh", "softmax"], dtype="float64", seed=1)
    in_callback = threading.Event()

    class PredictB:  # a read during B's fit: it waits for that fit
        def on_epoch_end(self, net, epoch, logs):
            in_callback.set()
            B.predict(X[:10])

    t2 = threading.Thread(target=lambda: B.fit(X, y, epochs=60, batch_size=8), daemon=True)
    t2.start()
    while not model_lock(B).fitting:
        time.sleep(0.001)
    t1 = threading.Thread(target=lambda: A.fit(X, y, epochs=2, batch_size=500, callbacks=[PredictB()]), daemon=True)
    t1.start()
    in_callback.wait()
    time.sleep(0.1)
    assert model_lock(A).fitting and model_lock(B).fitting
    pid = os.fork()
    if pid == 0:
        os._exit(0 if B.predict(X[:3]).shape == (3, 4) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    t1.join()
    t2.join()
    print("ok")
"""


@needs_fork
def test_fork_while_a_fits_callback_waits_to_read_another_fitting_model(tmp_path):
    """The fork waited for A's fit (its thread in a callback), that thread
    for B's fit to end (a read waits for a fit), and B's fit, parked for the
    fork, for the fork: a hang. A thread holding another model's lock now
    reads a model whose fit is parked for a fork."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _run_script(tmp_path, _FORK_WHILE_A_CALLBACK_READS_A_FITTING_MODEL)


_FORK_WHILE_A_FIT_LOGS = """
    import os, threading, time, warnings
    import dnnfast  # its fork hook registered before this script imports logging
    import logging
    import numpy as np
    from dnnfast.estimators import MLPClassifier

    warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
    X, y = np.random.default_rng(0).normal(size=(200, 10)), np.arange(200) % 2
    net = dnnfast.Network([10, 8, 2], ["tanh", "softmax"], dtype="float64", seed=0)
    in_callback, forking = threading.Event(), threading.Event()

    class Logs:  # a fit's Python code taking logging's module lock while a fork is under way
        def on_epoch_end(self, net, epoch, logs):
            in_callback.set()
            forking.wait()
            time.sleep(0.2)  # the main thread is in os.fork() now, running the before-fork hooks
            logging.getLogger("dnnfast.fork_test").debug("epoch %d", epoch)

    t = threading.Thread(target=lambda: net.fit(X, y, epochs=2, callbacks=[Logs()]), daemon=True)
    t.start()
    in_callback.wait()
    forking.set()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if net.predict(X[:3]).shape == (3, 2) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    t.join()

    # The report's case: an estimator's ConvergenceWarning routed through
    # logging while the main thread forks (as multiprocessing's 'fork' does).
    logging.captureWarnings(True)
    warnings.simplefilter("always")
    Xe, ye = np.random.RandomState(0).rand(500, 10), np.arange(500) % 2

    def fits():
        for i in range(10):
            MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=i).fit(Xe, ye)

    t = threading.Thread(target=fits, daemon=True)
    t.start()
    while t.is_alive():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    t.join()
    print("ok")
"""


@needs_fork
def test_fork_while_a_fit_takes_loggings_lock_does_not_hang(tmp_path):
    """CPython runs before-fork hooks last registered first: logging's, when
    logging was imported after dnnfast, took its module lock before
    dnnfast's hook waited for the fit, and the fit (a callback's log record;
    an estimator's warning under logging.captureWarnings) waited for that
    lock: a hang. dnnfast registers logging's hook before its own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _run_script(tmp_path, _FORK_WHILE_A_FIT_LOGS)


_CTRL_C_IN_A_CHILD_FORKED_BY_A_CALLBACK = """
    import os, signal, time
    import numpy as np
    import dnnfast

    X, y = np.random.default_rng(0).normal(size=(200, 10)), np.arange(200) % 2
    net = dnnfast.Network([10, 8, 2], ["tanh", "softmax"], dtype="float64", seed=0)
    codes = []

    class ForkWorker:
        def on_epoch_end(self, net, epoch, logs):
            pid = os.fork()
            if pid == 0:
                try:
                    time.sleep(20)
                    os._exit(0)  # ran to its end: Ctrl-C was swallowed
                except KeyboardInterrupt:
                    os._exit(7)
            time.sleep(0.3)
            os.kill(pid, signal.SIGINT)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

    net.fit(X, y, epochs=1, callbacks=[ForkWorker()])
    assert codes == [7], codes
    print("ok")
"""


@needs_fork
def test_ctrl_c_interrupts_a_child_that_a_fits_callback_forked(tmp_path):
    """The child inherited the fit's flag-only SIGINT handler, and no fit
    of its own read the flag: it slept on through Ctrl-C."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _run_script(tmp_path, _CTRL_C_IN_A_CHILD_FORKED_BY_A_CALLBACK)


# -- asynchronous exceptions -------------------------------------------------

def _data(n=200, m=10, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)), np.arange(n) % k


def _in_thread(fn):
    """fn() in another thread; fails the test if it does not end in time."""
    result, errors = [], []

    def run():
        try:
            result.append(fn())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), "blocked: the model lock was left held"
    if errors:
        raise errors[0]
    return result[0]


_SIGINT_SENDER = """
import os, random, sys, time
pid, rnd = int(sys.argv[1]), random.Random(0)
while True:
    time.sleep(rnd.uniform(0, 3e-4))
    os.kill(pid, 2)
"""


def _interrupt_in_a_loop(calls, interrupts=400):
    """Run calls() in a loop in the main thread while another process sends
    this one real SIGINTs at random moments (a process, not a thread: a
    thread could send only when this one lets go of the GIL), until
    `interrupts` of them have raised KeyboardInterrupt inside a call."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")
    armed = [False]
    caught = [0]

    def handler(signum, frame):
        if armed[0]:  # only inside a call: never in this loop's own bookkeeping
            armed[0] = False
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    sender = subprocess.Popen([sys.executable, "-c", _SIGINT_SENDER, str(os.getpid())])
    try:
        rounds = 0
        while caught[0] < interrupts and rounds < 1000 * interrupts:
            rounds += 1
            try:
                armed[0] = True
                calls()
                armed[0] = False
            except KeyboardInterrupt:
                caught[0] += 1
            except RuntimeError as e:  # a lock left held by an earlier interrupt
                armed[0] = False
                raise AssertionError(f"after {caught[0]} interrupts: {e}") from None
    finally:
        armed[0] = False
        sender.kill()
        sender.wait()
        time.sleep(0.05)  # a signal still on its way meets the harmless handler
        signal.signal(signal.SIGINT, old)
    assert caught[0] >= interrupts


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("what", ["network", "estimator"])
def test_interpreter_exit_while_a_daemon_thread_fits_is_clean(tmp_path, what):
    """A daemon thread that comes back from the core after Python began to
    finalize was ended by pthread_exit, whose forced unwind through the GIL
    release aborted the process (SIGABRT, "terminate called without an active
    exception": three exits in five). The fits here run for longer than the
    script, so the exit finds the thread in the core or about to enter it."""
    source = """
        import sys, threading, time, warnings
        import numpy as np
        import dnnfast
        warnings.simplefilter("ignore")
        X = np.random.default_rng(0).normal(size=(2000, 64))
        y = (X[:, 0] > 0).astype(int)
        started = threading.Event()

        def fit():
            while True:
                started.set()
                if sys.argv[1] == "network":
                    net = dnnfast.Network([64, 256, 256, 2], ["relu", "relu", "softmax"], dtype="float64", seed=0)
                    net.fit(X, y, epochs=50, batch_size=32)
                else:
                    dnnfast.MLPClassifier((256, 256), max_iter=50, random_state=0).fit(X, y)

        threading.Thread(target=fit, daemon=True).start()
        started.wait()
        time.sleep(0.3)
        print("ok")
    """
    for _ in range(3):
        _run_script(tmp_path, source, what)


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_interpreter_exit_while_daemon_threads_wait_for_a_fit_is_clean(tmp_path):
    """Daemon threads waiting in predict for another daemon thread's fit
    retake the GIL every 50 ms; one waiting for it when finalization began
    was ended by pthread_exit inside the core's GIL release, which aborted
    the process (2 exits in 8 with 16 such threads). The exit is now announced
    by an atexit hook first, and threads past the check are let through."""
    source = """
        import threading, time
        import numpy as np
        import dnnfast
        X = np.random.default_rng(0).normal(size=(100_000, 100)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        net = dnnfast.Network([100, 512, 2], ["relu", "softmax"], seed=0)
        fitting = threading.Event()

        class Started:
            def on_batch_end(self, net, step, logs):
                fitting.set()

        def fit():
            while True:
                net.fit(X, y, epochs=1, batch_size=100_000, callbacks=[Started()])

        threading.Thread(target=fit, daemon=True).start()
        fitting.wait()
        for _ in range(16):  # each waits in predict for the fit to end
            threading.Thread(target=lambda: net.predict(X[:1]), daemon=True).start()
        time.sleep(0.1)
        junk = [[i] for i in range(2_000_000)]  # busy in Python up to the exit
        print("ok")
    """
    for _ in range(6):
        _run_script(tmp_path, source)


@pytest.mark.parametrize("mode", ["join", "predict"])
def test_an_exit_hook_registered_before_import_may_wait_for_a_thread_in_the_core(tmp_path, mode):
    """atexit runs the last registered hook first: dnnfast's exit hook ran
    before one registered before `import dnnfast` (a CLI importing it
    lazily), and put the threads coming back from the core to sleep for
    good, so that hook's join (or a predict waiting for the fit) hung the
    exit. dnnfast's hook now does nothing while such hooks are still to run."""
    source = """
        import atexit, sys, threading
        state = {}

        def hook():
            if sys.argv[1] == "join":
                state["t"].join()
            else:
                state["net"].predict(state["X"][:2])

        atexit.register(hook)

        def main():
            import numpy as np
            import dnnfast
            X = np.random.default_rng(0).normal(size=(20000, 50)).astype(np.float32)
            y = (X[:, 0] > 0).astype(int)
            net = dnnfast.Network([50, 128, 2], ["relu", "softmax"], seed=0)
            started = threading.Event()

            class Started:
                def on_batch_end(self, net, step, logs):
                    started.set()

            t = threading.Thread(target=lambda: net.fit(X, y, epochs=2, batch_size=64, callbacks=[Started()]),
                                 daemon=True)
            t.start()
            started.wait()
            state.update(net=net, X=X, t=t)

        main()
        print("ok")
    """
    _run_script(tmp_path, source, mode)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_ctrl_c_while_a_fork_waits_for_a_fit_keeps_the_child_whole(tmp_path):
    """os.fork() waits for another thread's fit to reach a step boundary. A
    Ctrl-C in that wait was raised in the before-fork hook, which CPython
    ignores and forks anyway: mid-step, so the child's next fit waited for
    ever on a workspace mutex held by a thread it does not have. The
    Ctrl-C now waits for the fork, and the parent takes it as os.fork()
    returns; the child fits."""
    source = """
        import os, signal, sys, threading, time
        import numpy as np
        import dnnfast
        X = np.random.default_rng(0).normal(size=(200_000, 100)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        net = dnnfast.Network([100, 512, 2], ["relu", "softmax"], seed=0)
        started = threading.Event()
        done = sys.argv[1]

        class Started:
            def on_batch_end(self, net, step, logs):
                started.set()

        threading.Thread(target=lambda: net.fit(X, y, epochs=2, batch_size=50, callbacks=[Started()]),
                         daemon=True).start()
        started.wait()
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            pid = os.fork()
        except KeyboardInterrupt:
            pid = None  # the Ctrl-C, taken as the fork returned: the child exists
        if pid == 0:
            signal.alarm(30)  # a hung child ends (and the parent sees no "fit ok")
            net.fit(X[:1000], y[:1000], epochs=1, batch_size=50)
            with open(done, "w") as f:
                f.write("fit ok")
            os._exit(0)
        if pid is not None:
            try:
                time.sleep(5)  # the Ctrl-C comes here, if not during the fork
            except KeyboardInterrupt:
                pass
        deadline = time.time() + 40
        while time.time() < deadline and not (os.path.exists(done) and open(done).read() == "fit ok"):
            time.sleep(0.05)
        print(open(done).read() if os.path.exists(done) else "child: no fit")
        print("ok" if os.path.exists(done) else "")
    """
    out = _run_script(tmp_path, source, str(tmp_path / "child_done"))
    assert "fit ok" in out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_ctrl_c_while_a_fork_waits_for_a_fit_reaches_the_parent_past_loggings_hook(tmp_path):
    """logging's before-fork hook runs after dnnfast's wait (dnnfast registers
    it first): CPython ran a Ctrl-C that came during the wait in that hook,
    dropped its KeyboardInterrupt, and logging's lock was never taken (its
    after-fork hook: 'cannot release un-acquired lock'). dnnfast holds the
    Ctrl-C over the other hooks; the parent takes it as os.fork() returns."""
    source = """
        import os, signal, sys, threading, time, warnings
        import numpy as np
        import dnnfast
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
        unraisable = []
        sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
        X = np.random.default_rng(0).normal(size=(100_000, 100)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        net = dnnfast.Network([100, 512, 2], ["relu", "softmax"], seed=0)
        started = threading.Event()

        class Started:
            def on_batch_end(self, net, step, logs):
                started.set()

        t = threading.Thread(target=lambda: net.fit(X, y, epochs=1, batch_size=50, callbacks=[Started()]),
                             daemon=True)
        t.start()
        started.wait()
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            pid = os.fork()
        except KeyboardInterrupt:
            pid = None  # the child exists, and exits at once
        waited = time.monotonic() - t0
        if pid == 0:
            os._exit(0)
        if pid is not None:  # the Ctrl-C came after the fork (the epoch ended first), or was lost
            try:
                time.sleep(2)
            except KeyboardInterrupt:
                pass
            assert waited < 0.3, f"the fork waited {waited:.2f} s, past the Ctrl-C, which it lost"
        t.join()
        assert not unraisable, unraisable
        print("ok")
    """
    _run_script(tmp_path, source)


def test_fits_whose_callbacks_read_each_others_model_do_not_wait_for_ever(tmp_path):
    """Two threads fit two models; each fit's callback predicts (or copies)
    the other model. Each waited for the other's fit to end: for ever, and
    Ctrl-C reaches neither thread. The thread that closes the cycle now gets
    a RuntimeError saying so; the other fit ends."""
    source = """
        import copy, sys, threading
        import numpy as np
        import dnnfast
        X = np.random.default_rng(0).normal(size=(200, 10))
        y = np.arange(200) % 2
        a = dnnfast.Network([10, 8, 2], ["tanh", "softmax"], dtype="float64", seed=0)
        b = dnnfast.Network([10, 8, 2], ["tanh", "softmax"], dtype="float64", seed=1)
        both = threading.Barrier(2)
        errors, ended = [], []

        class Peek:
            def __init__(self, other):
                self.other, self.first = other, True

            def on_epoch_end(self, net, epoch, logs):
                if self.first:
                    self.first = False
                    both.wait()  # both fits are in a callback now
                if sys.argv[1] == "predict":
                    self.other.predict(X[:2])
                else:
                    copy.deepcopy(self.other)

        def fit(net, other):
            try:
                net.fit(X, y, epochs=3, callbacks=[Peek(other)])
                ended.append(net)
            except RuntimeError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=fit, args=(a, b)), threading.Thread(target=fit, args=(b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads), "the fits wait for each other"
        assert len(errors) == 1 and len(ended) == 1, (errors, ended)
        assert "would wait for each other for ever" in errors[0], errors
        print("ok")
    """
    for how in ("predict", "copy"):
        _run_script(tmp_path, source, how)


def test_sigint_during_predictions_and_fits_never_leaves_the_lock_held():
    X, y = _data()
    net = dnnfast.Network([10, 16, 3], ["tanh", "softmax"], "cce", "float64", seed=0)
    row = X[:1].copy()

    def calls():
        net.predict(row)
        net.predict(row)
        net.fit(X[:20], y[:20], epochs=1, batch_size=10)
        net.cost(row, y[:1])

    _interrupt_in_a_loop(calls)
    # Other threads can fit and predict: nothing is left held.
    _in_thread(lambda: net.fit(X, y, epochs=1))
    assert _in_thread(lambda: net.predict(X)).shape == (200, 3)
    net.fit(X, y, epochs=1)  # and this thread too
    lock = model_lock(net)
    assert not lock.fitting and not lock.reading


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_sigint_during_estimator_calls_never_leaves_the_lock_held():
    X, y = _data()
    clf = dnnfast.MLPClassifier((8,), max_iter=1, batch_size=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)

        def calls():
            clf.predict(X[:1])
            clf.partial_fit(X[:20], y[:20])
            pickle.dumps(clf)

        threads = dnnfast.get_num_threads()
        _interrupt_in_a_loop(calls, interrupts=150)
        _in_thread(lambda: clf.partial_fit(X, y))
    assert _in_thread(lambda: clf.predict_proba(X)).shape == (200, 3)
    assert not model_lock(clf).fitting and not model_lock(clf).reading
    # The one-thread count of these small calls did not outlive them: an
    # interrupt in the middle of setting or restoring it had left this thread
    # on one thread for good.
    left = dnnfast._core.set_local_num_threads(0)
    assert left == 0, f"a thread count of {left} was left on this thread"
    assert dnnfast.get_num_threads() == threads


# -- copies during a fit -----------------------------------------------------

def _epoch_states(make, X, y, epochs, **kw):
    twin = make()
    states = [twin.parameters.copy()]
    for _ in range(epochs):
        twin.fit(X, y, epochs=1, **kw)
        states.append(twin.parameters.copy())
    return states


def test_copies_and_pickles_of_a_network_during_a_fit_are_whole_training_states():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((400, 32)), np.arange(400) % 4
    kw = dict(batch_size=4, learning_rate=0.01)
    epochs = 15

    def make():
        return dnnfast.Network([32, 128, 4], ["tanh", "softmax"], "cce", "float64", seed=0)

    states = _epoch_states(make, X, y, epochs, **kw)
    net = make()
    fitter = threading.Thread(target=lambda: net.fit(X, y, epochs=epochs, **kw))
    copies = []
    fitter.start()
    while fitter.is_alive() and len(copies) < 200:
        copies.append(copy.deepcopy(net))
        copies.append(pickle.loads(pickle.dumps(net)))
    fitter.join(TIMEOUT)
    assert not fitter.is_alive()
    seen = set()
    for c in copies:
        k = [i for i, s in enumerate(states) if np.array_equal(s, c.parameters)]
        assert k, "a copy taken during a fit holds parameters from the middle of an epoch"
        seen.add(k[0])
        assert not model_lock(c).fitting
    np.testing.assert_array_equal(net.parameters, states[-1])


def test_pickles_of_an_estimator_during_a_warm_start_fit_are_whole_states():
    X, y = _data(n=600, m=20, k=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((64,), max_iter=3, batch_size=2, random_state=0, warm_start=True,
                                    tol=0.0, n_iter_no_change=10**6).fit(X, y)

        def whole(c):
            return ([a.copy() for a in c.coefs_], c.n_iter_, list(c.loss_curve_))

        states = [whole(clf)]
        fits = 4
        copies = []

        def fit_again():
            for _ in range(fits):
                clf.fit(X, y)
                states.append(whole(clf))  # only this thread fits: no race here

        fitter = threading.Thread(target=fit_again)
        fitter.start()
        while fitter.is_alive() and len(copies) < 300:
            copies.append(pickle.loads(pickle.dumps(clf)))
            copies.append(copy.deepcopy(clf))
        fitter.join(TIMEOUT)
        assert not fitter.is_alive()
    for c in copies:
        coefs, n_iter, curve = whole(c)
        match = [s for s in states if s[1] == n_iter and s[2] == curve
                 and all(np.array_equal(a, b) for a, b in zip(s[0], coefs))]
        assert match, f"a pickle mixes states: n_iter_={n_iter}, {len(curve)} losses, coefs of another fit"


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_sigint_interrupts_a_prediction_waiting_for_a_fit_and_leaves_the_lock_as_it_was(monkeypatch):
    """The wait for a fit runs in C++ with the GIL released; it must still
    let the main thread's signal handlers run (Ctrl-C), and an interrupted
    wait must leave nothing behind."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")
    X, y = _data()
    net = dnnfast.Network([10, 16, 3], ["tanh", "softmax"], "cce", "float64", seed=0)
    stream = BlockedStream(TIMEOUT)
    monkeypatch.setattr(sys, "stdout", stream)
    fitter = threading.Thread(target=lambda: net.fit(X, y, epochs=2, verbose=True))
    fitter.start()
    assert stream.entered.wait(TIMEOUT)  # the fit holds the model, parked in print
    main = threading.main_thread().ident
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, lambda: signal.pthread_kill(main, signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            net.predict(X)  # waits for the fit until the SIGINT
    finally:
        timer.join()
        signal.signal(signal.SIGINT, old)
        stream.release.set()
    fitter.join(TIMEOUT)
    assert not fitter.is_alive()
    lock = model_lock(net)
    assert not lock.fitting and not lock.reading
    assert _in_thread(lambda: net.predict(X)).shape == (200, 3)

@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_thread_waiting_to_read_at_a_fork_leaves_no_cycle_in_the_child(tmp_path):
    """The child kept the entry of a parent thread that waited to read a
    model at the fork; a child thread given the same ident (glibc reuses
    stacks) then "waited" in the cycle check's eyes, and a plain wait for a
    fit raised "the two fits would wait for each other for ever"."""
    source = """
        import os, sys, threading, time, numpy as np, dnnfast
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200_000, 20)); y = (X[:, 0] > 0).astype(int)
        B = dnnfast.Network([20, 512, 2], ["relu", "softmax"], seed=0)
        C = dnnfast.Network([20, 256, 2], ["relu", "softmax"], seed=1)
        class Started:
            def __init__(self, ev): self.ev = ev
            def on_batch_end(self, n, step, logs): self.ev.set()
        fitting = threading.Event()
        threading.Thread(target=lambda: B.fit(X, y, epochs=3, batch_size=16, callbacks=[Started(fitting)]), daemon=True).start()
        fitting.wait()
        reader = threading.Thread(target=lambda: B.predict(X[:1]), daemon=True)   # waits for B's fit: waiting_to_read[reader] = B
        reader.start(); time.sleep(0.2)
        stale = reader.ident
        print("parent: reader waiting for B's fit at the fork:", reader.is_alive(), flush=True)
        pid = os.fork()              # waits for B's fit to park at its epoch's end; the reader goes on waiting meanwhile
        if pid == 0:
            import signal; signal.alarm(30)
            c_fitting = threading.Event()
            def fit_c_if_stale_ident():
                if threading.get_ident() == stale:
                    C.fit(X[:20000], y[:20000], epochs=50, batch_size=16, callbacks=[Started(c_fitting)])
            for _ in range(20):       # a child thread that has the parent reader's ident (its stack, reused)
                t = threading.Thread(target=fit_c_if_stale_ident, daemon=True); t.start()
                if t.ident == stale: break
                t.join()
            else:
                print("child: inconclusive", flush=True); os._exit(3)
            c_fitting.wait()
            class PeekC:   # the child's main thread fits B; its callback predicts C: it waits for C's fit (no cycle)
                def on_epoch_end(self, n, epoch, logs): C.predict(X[:1])
            try:
                B.fit(X[:1000], y[:1000], epochs=1, callbacks=[PeekC()])
                print("child: B's fit, whose callback waited for C's fit, ended: ok", flush=True)
            except RuntimeError as e:
                print("child: RuntimeError where no cycle exists:", e, flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("ok" if os.waitstatus_to_exitcode(status) in (0, 3) else "child failed")
    """
    out = _run_script(tmp_path, source)
    if "inconclusive" in out:
        pytest.skip("no child thread got the waiting parent thread's ident")
    assert "RuntimeError" not in out and "ended: ok" in out, out
