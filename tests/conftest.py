"""Shared fixtures and tolerances for the dnnfast test suite.

Tolerances are explicit and per dtype. ``assert_close`` compares against the
NumPy reference with a relative tolerance and an absolute one taken relative
to a scale (by default the largest magnitude of the expected array), so an
entry that is near zero only because of cancellation is judged against the
size of the numbers that produced it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import dnnfast
from dnnfast import _core

DTYPES = [np.float32, np.float64]

# One op (element-wise, or a dot product of up to a few hundred terms).
TOL = {
    np.float32: dict(rtol=1e-5, atol=1e-6),
    np.float64: dict(rtol=1e-12, atol=1e-13),
}

# A whole network (several layers of GEMMs, a loss) compared with the reference.
NET_TOL = {
    np.float32: dict(rtol=2e-5, atol=2e-6),
    np.float64: dict(rtol=1e-11, atol=1e-12),
}

# A training trajectory (many updates, each amplifying earlier round-off).
TRAIN_TOL = {
    np.float32: dict(rtol=1e-3, atol=1e-4),
    np.float64: dict(rtol=1e-9, atol=1e-10),
}

# Odd shapes: none is a multiple of any block size; n=1 and 1x1 included.
SHAPES = [(1, 1), (1, 7), (7, 13), (67, 129), (300, 37)]

ACTIVATION_NAMES = [row[0] for row in _core.ACTIVATIONS]
ACT_ID = {row[0]: row[1] for row in _core.ACTIVATIONS}
ACT_DEFAULT = {row[0]: row[3] for row in _core.ACTIVATIONS}
LOSS_NAMES = [row[0] for row in _core.LOSSES]
LOSS_ID = {row[0]: row[1] for row in _core.LOSSES}

# The output activation each loss is meant for (SPEC section 4).
NATURAL_OUTPUT = {"sse": "identity", "mse": "identity", "bce": "sigmoid", "cce": "softmax", "poisson": "exp"}


def assert_close(actual, expected, dtype, tol=None, scale=None, factor=1.0, err_msg=""):
    """|actual - expected| <= factor * (rtol |expected| + atol_eff), where
    atol_eff = max(atol, rtol * scale) and scale defaults to max |expected|."""
    tol = (tol or TOL)[np.dtype(dtype).type]
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    atol = max(tol["atol"], tol["rtol"] * scale)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected,
                               rtol=factor * tol["rtol"], atol=factor * atol, err_msg=err_msg)


def alpha_for(name, m, dtype, rng=None, value=None):
    """The ``alpha`` array the single ops take: empty (no parameter), one
    value (the scalar of leaky_relu / elu), or m values (prelu, per unit)."""
    if name == "prelu":
        if rng is None:
            return np.full(m, ACT_DEFAULT["prelu"], dtype=dtype)
        return rng.uniform(0.05, 0.5, size=m).astype(dtype)
    if name in ("leaky_relu", "elu"):
        return np.array([ACT_DEFAULT[name] if value is None else value], dtype=dtype)
    return np.zeros(0, dtype=dtype)


def ref_alpha(name, alpha):
    """The reference's form of the same parameter (None, a scalar or a vector)."""
    if alpha.size == 0:
        return None
    if name == "prelu":
        return alpha
    return alpha[0]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def no_thread_count_left_behind():
    """A test must not leave a per-thread core thread count on the thread
    that runs the tests (the estimators set one for each call): a leaked one
    silently runs every later call on that count, and surfaced only as
    failures of later thread tests."""
    yield
    left = _core.set_local_num_threads(0)
    assert left == 0, f"this test left a thread count of {left} on the test thread"


#: The kernel tables this CPU runs (each also picks its vector-maths table).
KERNEL_TABLES = [k for k in ("generic", "generic512", "avx2", "avx512") if _core.gemm_kernel_supported(k)]


@pytest.fixture(params=KERNEL_TABLES)
def kernel_table(request):
    """Each kernel table in turn (gemm_set_kernel), the previous one put back after."""
    previous = _core.gemm_kernel_name()
    assert _core.gemm_set_kernel(request.param) == request.param
    yield request.param
    _core.gemm_set_kernel(previous)


@pytest.fixture
def restore_threads():
    """Put the thread count back to 'follow OpenMP' after a test that sets it."""
    yield
    dnnfast.set_num_threads(0)


def onehot(labels, k, dtype):
    out = np.zeros((len(labels), k), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


class BlockedStream:
    """A stdout whose first write blocks until released (or ``timeout`` s): a
    verbose fit stops after its first epoch, holding the model."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text):
        self.entered.set()
        assert self.release.wait(self.timeout)
        return len(text)

    def flush(self):
        pass


# A fresh interpreter where some packages cannot be imported (scikit-learn,
# SciPy): the estimators' NumPy-only path, as an install without them runs it.
_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked for this test)", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def run_without(blocked, body, timeout=120):
    """Run ``body`` in a fresh interpreter where the packages in ``blocked`` cannot be imported;
    returns the JSON it prints last."""
    code = _BLOCKER.format(blocked=tuple(blocked)) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
