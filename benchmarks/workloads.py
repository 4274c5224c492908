"""What the suite measures: the workloads, the suites that group them, and the
work each one counts. Imported by ``run.py``, ``worker.py``, ``compare.py``
and the separate scripts; nothing here runs a measurement.
"""
import argparse
import contextlib
import ctypes
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

MLP_W1 = dict(sizes=[784, 256, 128, 10], activations=["relu", "relu", "softmax"], loss="cce",
              dtype="float32", learning_rate=0.05)
MLP_W3 = dict(MLP_W1, sizes=[784, 1024, 1024, 10])

# Training workloads. rows / epochs: (full run, --quick), chosen so a full run
# of everything stays near 15 minutes on a 2-core machine. `peers`: who trains
# it; JAX's compiled scan is the peer of the small-batch and float64 shapes.
WORKLOADS = {
    "W1": dict(MLP_W1, batch_size=64, title="784-256-128-10 relu/relu/softmax+cce, float32, batch 64",
               rows=(8192, 2048), epochs=(1, 1), peers=["reference", "torch", "sklearn", "jax", "dnnfast"]),
    "W2": dict(MLP_W1, batch_size=1, title="784-256-128-10, float32, batch 1 (stochastic)",
               rows=(1000, 300), epochs=(1, 1), peers=["reference", "torch", "sklearn", "jax", "dnnfast"]),
    "W3": dict(MLP_W3, batch_size=256, title="784-1024-1024-10 relu/relu/softmax+cce, float32, batch 256",
               rows=(4096, 1024), epochs=(1, 1), peers=["reference", "torch", "sklearn", "dnnfast"]),
    "W4": dict(MLP_W1, dtype="float64", batch_size=64, title="784-256-128-10, float64, batch 64",
               rows=(8192, 2048), epochs=(1, 1), peers=["reference", "torch", "sklearn", "jax", "dnnfast"]),
}

# One line per workload key, for --list and the README.
DESCRIPTIONS = {k: f"train {w['title']}; {w['rows'][0]} rows, {w['epochs'][0]} epoch" for k, w in WORKLOADS.items()}
DESCRIPTIONS.update({
    "G": ("float32 GEMM, dnnfast._core.gemm vs numpy.matmul: squares 256-2048, every product of a W1/W3 step, "
          "and the first layer's on 13-64 features"),
    "P": "predict() latency of one row, W1 network (dnnfast, PyTorch, reference, scikit-learn)",
    "M": "peak RSS of dnnfast.Network.fit on a 60000x784 float32 X, against size(X)+size(Y)+50 MB",
    "S": "thread scaling: dnnfast on W3, 2 threads vs 1",
})
ALL_KEYS = ["W1", "W2", "W3", "W4", "G", "P", "M", "S"]

# Suites: a name for a group of workloads, or for a separate script that the
# entry point runs as it is (its own peers, processes and report).
SUITES = {
    "train": dict(keys=["W1", "W2", "W3", "W4"], about="training epochs against NumPy, PyTorch, "
                  "scikit-learn and JAX"),
    "gemm": dict(keys=["G"], about="the GEMM alone against numpy.matmul"),
    "predict": dict(keys=["P"], about="one-row predict latency"),
    "resources": dict(keys=["M", "S"], about="fit's peak memory and thread scaling"),
    "estimators": dict(script="bench_sklearn.py", about="the estimators' fit against scikit-learn's "
                       "(bench_sklearn.py)"),
    "activations": dict(script="bench_activations.py", about="epochs per activation function "
                        "(bench_activations.py)"),
}
SUITES["all"] = dict(keys=ALL_KEYS, scripts=["estimators", "activations"],
                     about="every workload above, then the estimators and activations scripts")

TRAIN_PEERS = ["reference", "torch", "sklearn", "jax", "dnnfast"]
PREDICT_PEERS = ["reference", "torch", "sklearn", "dnnfast"]
PEER_MODULE = {"reference": "dnnfast", "torch": "torch", "sklearn": "sklearn", "jax": "jax",
               "dnnfast": "dnnfast", "numpy": "numpy"}
PEER_NAME = {"reference": "NumPy (dnnfast.reference)", "torch": "PyTorch", "sklearn": "scikit-learn",
             "jax": "JAX (jit lax.scan epoch)", "dnnfast": "dnnfast", "numpy": "numpy.matmul"}

# A comparison is UNRELIABLE, not PASS/FAIL, when the machine was busier than
# its cores (1-minute load average at the start or the end of the run) or
# when a compared peer's repeats spread by more than this fraction of their
# median, (max - min) / median. In the 127aa0c full run (BENCHMARKS.md) the
# training spreads ran from 4% to 46%, and targets were decided by ratios
# within 10-20% of their thresholds: beyond 25% the noise alone can decide.
MAX_SPREAD = 0.25
MIN_RUNS = 2  # one run shows no spread, so it cannot be judged
# ... or when a compared peer at n threads kept more than this many times n
# cores busy (its process's CPU seconds per second of the timed part): the
# ratio then compares unequal machines. Found so: JAX's runtime at "one
# thread" ran W1 on 1.7 cores (worker.set_threads now confines it).
MAX_CORES_OVER = 1.1


def flops_per_sample(sizes, inputs=None):
    """Floating-point operations of one training sample, counting the work
    done: forward Z = A W (2 m_in m_out per layer), dW = A^T dZ (2 m_in m_out
    per layer) and dA = dZ W^T for layers 2..L only -- no implementation forms
    dA[0], the input needs no gradient. Element-wise work is not counted.
    ``inputs``: a sparse X's stored values per row, which the first layer's
    products take in place of its m_in (dnnfast's work on such an X)."""
    prods = [a * b for a, b in zip([sizes[0] if inputs is None else inputs] + list(sizes[1:-1]), sizes[1:])]
    return 2 * sum(prods) + 2 * sum(prods) + 2 * sum(prods[1:])


def spread(xs):
    """(max - min) / median of the repeats; None with fewer than MIN_RUNS."""
    xs = sorted(xs)
    if len(xs) < MIN_RUNS:
        return None
    m = median(xs)
    return (xs[-1] - xs[0]) / m if m else None


def excess_cores(cores, threads):
    """Why a comparison at `threads` threads is unfair (empty: it is not):
    each compared peer that kept more than MAX_CORES_OVER x threads cores
    busy. cores: {name: median cores, or None where not reported}."""
    return [f"{name} kept {c:.2f} cores busy at {threads} thread{'s' if threads != 1 else ''}"
            for name, c in cores.items() if c is not None and c > MAX_CORES_OVER * threads]


# ... or, at two threads or more, when in some of a compared peer's runs its
# cores were far apart: a core read data another core had just written this
# many times slower than its own (worker.cross_core_slowdown, before and after
# each process). On the Zen 4 KVM guest the probe gave 0.9-1.3 (a few runs up
# to 1.6) where the two virtual CPUs shared a cache and 1.6-2.5 in the host's
# spells that placed them apart, when dnnfast's W1 at two threads ran at two
# thirds of its speed.
FAR_CORES = 1.6


def far_cores(probes):
    """Why a comparison at two threads or more is unfair (empty: it is not):
    each compared peer with runs whose cores were far apart. probes: {name:
    [the larger of the probe's two figures, per run that reported one]}."""
    out = []
    for name, xs in probes.items():
        far = [x for x in xs or [] if x > FAR_CORES]
        if far:
            out.append(f"{name}: cores far apart in {len(far)} of {len(xs)} runs (a core read another's data "
                       f"up to {max(far):.1f}x slower than its own)")
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


# The estimators' data sets (bench_sklearn.py) by their feature counts:
# wine 13, breast_cancer 30, digits 64; batch 200, 100 hidden units.
TABULAR_FEATURES, TABULAR_BATCH, TABULAR_HIDDEN = (13, 30, 64), 200, 100


def gemm_cases(quick):
    """Squares, every product that a training step of W1 and W3 computes,
    then the first layer's products on small tabular data (no target: the
    few rows of dW = X^T dZ)."""
    cases = [dict(label=f"square {s}", group="square", M=s, N=s, K=s, trans_a=False, trans_b=False)
             for s in ((256, 512, 1024) if quick else (256, 512, 1024, 2048))]
    for name, wl in (("W1", WORKLOADS["W1"]), ("W3", WORKLOADS["W3"])):
        n = wl["batch_size"]
        for l, (m_in, m_out) in enumerate(zip(wl["sizes"][:-1], wl["sizes"][1:]), start=1):
            cases.append(dict(label=f"{name} L{l} A W", group=name, M=n, N=m_out, K=m_in,
                              trans_a=False, trans_b=False))
            cases.append(dict(label=f"{name} L{l} A^T dZ", group=name, M=m_in, N=m_out, K=n,
                              trans_a=True, trans_b=False))
            if l >= 2:  # dA[0] is never formed: the input needs no gradient
                cases.append(dict(label=f"{name} L{l} dZ W^T", group=name, M=n, N=m_in, K=m_out,
                                  trans_a=False, trans_b=True))
    n, h = TABULAR_BATCH, TABULAR_HIDDEN
    for f in TABULAR_FEATURES:
        cases.append(dict(label=f"tabular {f} X W", group="tabular", M=n, N=h, K=f, trans_a=False, trans_b=False))
        cases.append(dict(label=f"tabular {f} X^T dZ", group="tabular", M=f, N=h, K=n, trans_a=True, trans_b=False))
    return cases


def network_spec(key):
    """The network and training parameters of a training workload, as the
    workers take them (no rows, epochs, title or peer list)."""
    return {k: v for k, v in WORKLOADS[key].items() if k not in ("rows", "epochs", "title", "peers")}


# --------------------------------------------------------------------------- the scripts' shared checks

def have_sklearn():
    """Whether scikit-learn can be found (False where looking for it fails too)."""
    try:
        return importlib.util.find_spec("sklearn") is not None
    except (ImportError, ValueError):
        return False


def positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


#: The longest --timeout: a week. subprocess's wait cannot take much more
#: (poll's milliseconds overflow at 24.8 days: an OverflowError traceback).
MAX_TIMEOUT = 7 * 24 * 3600


def positive_seconds(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds > 0, got {text!r}") from None
    if not (0 < v <= MAX_TIMEOUT):  # NaN fails both
        raise argparse.ArgumentTypeError(f"must be > 0 and at most {MAX_TIMEOUT} seconds (a week), got {text}")
    return v


# --------------------------------------------------------------------------- child processes

class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, as Ctrl-C raises KeyboardInterrupt:
    the same clean-up (killing the running worker) runs for both."""


@contextlib.contextmanager
def sigterm_raises():
    """Within: SIGTERM raises Terminated (its default ends the process at
    once, leaving its running worker to run on with no timeout)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    old = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _child_setup(parent):
    """Run in the child between fork and exec: it dies with the process that
    started it (Linux), even one killed by SIGKILL, which runs no clean-up."""
    def setup():
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the parent died before the line above
                os._exit(1)
    return setup


def _kill_group(proc):
    """SIGKILL to the process group of `proc` (itself and whatever it started
    there), then reap it. Only while `proc` is not yet reaped: its pid, the
    group's id, cannot have been reused."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def run_child(cmd, timeout=None, **kwargs):
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)``
    for the suite's workers and scripts, in a process group of its own, which
    is killed whole when the timeout passes, when the caller is interrupted
    (Ctrl-C; SIGTERM under sigterm_raises) or fails; on Linux the child also
    dies with the caller, should the caller be killed outright. Its own group:
    a Ctrl-C at the terminal reaches the caller alone, which ends the child
    (a worker's traceback is not the report). Raises TimeoutExpired as
    subprocess.run does."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_child_setup(os.getpid()), **kwargs)
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise subprocess.TimeoutExpired(cmd, timeout) from None
        finally:
            if proc.returncode is None:  # interrupted, or communicate failed
                _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class StdoutError(Exception):
    """Writing to stdout failed (a full disk; not a closed pipe, whose
    BrokenPipeError passes): the command's own output, told from the
    OSErrors of its work."""


class _GuardedStdout:
    """sys.stdout whose write errors raise StdoutError (see cli)."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, f, *args):
        try:
            return f(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StdoutError(e) from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def cli(main, prog):
    """Run main() as a command and exit with its status, or: 130 on Ctrl-C
    and 143 on SIGTERM (the running worker killed, see run_child; one line,
    no traceback), 74 when stdout could not be written (a full disk;
    EX_IOERR), 141 when stdout's reader went away (| head; 128 + SIGPIPE).
    The same statuses as ``python -m dnnfast``'s, whose helper this repeats
    rather than imports: the yardstick never imports what it measures."""
    status = 0
    stdout = sys.stdout
    sys.stdout = _GuardedStdout(stdout)
    try:
        with sigterm_raises():
            try:
                status = main()
            except SystemExit as e:  # --help, a usage error, sys.exit(why): its output may wait in the buffer
                status = e.code
            sys.stdout.flush()  # here, where its failure can be caught, not at interpreter exit
    except (BrokenPipeError, StdoutError) as e:
        # Point stdout at devnull so the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        if isinstance(e, BrokenPipeError):
            status = 141
        else:
            print(f"{prog}: cannot write to stdout: {e}", file=sys.stderr)
            status = EX_IOERR
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print(f"{prog}: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
        status = 143 if terminated else 130
    sys.exit(status)


def run_worker(script, task, env, timeout):
    """``script --worker <task as JSON>`` in a fresh process: its last JSON
    line as a dict, or ``{"error": why}`` when it failed, timed out or printed
    no result (the scripts then go on without that measurement)."""
    try:
        proc = run_child([sys.executable, os.path.abspath(script), "--worker", json.dumps(task)], env=env,
                         timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s (--timeout)"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {err[:300]}"}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": f"unreadable result {lines[-1][:200]!r}"}


EX_IOERR = 74  # sysexits.h: an output (stdout, a --json file) could not be written


def json_target_problem(path):
    """Why `path` cannot take a --json output (None: it can, as far as can be
    told before the run): checked up front, so that a run of many minutes
    does not end in a file it cannot write."""
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        return f"no directory {folder!r} to write {os.path.basename(full)!r} into"
    if os.path.isdir(full):
        return f"{path!r} is a directory"
    if os.path.exists(full) and not os.path.isfile(full):  # /dev/stdout, a FIFO: written in place
        return None if os.access(full, os.W_OK) else f"{path!r} is not writable"
    # A regular file is replaced by a temporary written beside it: the folder must take new files.
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create files in {folder!r}"
    if os.path.exists(full) and not os.access(full, os.W_OK):
        return f"{path!r} is not writable"
    return None


def write_json(path, doc):
    """Write `doc` as JSON into `path`, whole or not at all: into a temporary
    beside it, then renamed over it, so that a failed write (a full disk, a
    size limit) leaves the previous file as it was, never half a JSON. A path
    that exists but is not a regular file (/dev/stdout, a FIFO) is written in
    place: there is nothing to rename over. Raises OSError."""
    text = json.dumps(doc, indent=1, default=str) + "\n"
    full = os.path.realpath(path)  # through a symlink: replace its target, not the link
    if os.path.exists(full) and not os.path.isfile(full):
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
        return
    if os.path.exists(full):
        mode = os.stat(full).st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # what open(path, "w") would have given it (mkstemp's is 0600)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(full) + ".", suffix=".tmp",
                               dir=os.path.dirname(full))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, full)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
