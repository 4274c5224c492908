"""Fork after multi-threaded work (cpp/threads.cpp).

- A child forked after multi-threaded OpenMP work runs on one thread, whatever
  it asks for (GNU libgomp's pool does not survive fork), and says so.

Each case that could hang runs in a subprocess with a timeout.
"""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dnnfast

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
