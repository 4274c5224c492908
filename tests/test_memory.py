"""Repeated fit / predict cycles do not grow the process.

Every cycle builds a new model (the C++ network's constructor and destructor,
its workspaces, the parameter buffer), trains and predicts; after a warm-up
(allocator pools, lazily imported modules) resident memory must stay flat.
The hidden layer is wide enough that one leaked network per cycle (its
workspace alone is about 160 kB) would pass the limit many times over.
"""
import gc
import os
import tracemalloc
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


class _PeakAllocation:
    """The peak of the block's allocations that tracemalloc sees (NumPy's
    buffers included), above those alive at its start: ``.bytes``."""

    def __enter__(self):
        tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc):
        try:
            self.bytes = tracemalloc.get_traced_memory()[1] - self._base
        finally:
            tracemalloc.stop()
        return False


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


def test_a_fitted_model_gives_back_a_workspace_sized_by_its_data():
    """A full-batch fit, an lbfgs fit and a gradient over many rows sized the
    core's workspace by the rows and the model kept it for its lifetime:
    three 2,410-parameter models trained on 400000 x 64 rows held 1.2 GB.
    What remains afterwards is what a predict chunk or a mini-batch needs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 64)).astype(np.float32)
    y = np.arange(20000) % 10
    net = dnnfast.Network([64, 32, 10], ["relu", "softmax"], seed=0)
    net.fit(X, y, epochs=2)  # batch_size=None: one step of all rows
    assert net._net.release_workspace() == 0  # nothing above a chunk left to give back
    net.fit(X, y, epochs=1, batch_size=64)
    assert net._net.release_workspace() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = dnnfast.MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    assert est.__dict__["_core"][1].release_workspace() == 0
    # A gradient over many rows goes in blocks of a few MB of workspace
    # (gradient_block_rows), which the model keeps (a loop of such calls
    # reuses it); one call of a wide network's rows that needs more than
    # _KEEP_WORKSPACE_BYTES gives it back.
    net.loss_and_gradient(X, y)
    assert 0 < net._net.release_workspace() < dnnfast.network._KEEP_WORKSPACE_BYTES
    big = np.repeat(X, 20, axis=0)  # 400000 rows: one call's workspace was several hundred MB
    net.loss_and_gradient(big, np.tile(y, 20))
    assert 0 < net._net.release_workspace() < 8 << 20
    wide = dnnfast.Network([64, 4096, 10], ["relu", "softmax"], seed=0)
    wide.loss_and_gradient(X[:2048], y[:2048])  # one call (2 x 1024 rows): 135 MB of workspace
    assert wide._net.release_workspace() == 0


@pytest.mark.parametrize("case", ["broadcast X", "int8 X", "labels as one-hot", "estimator targets",
                                  "estimator predict", "estimator predict broadcast X", "estimator fit broadcast X",
                                  "estimator fit int8 X"])
def test_allocations_sized_by_the_data_are_checked_before_they_are_made(monkeypatch, case):
    """Each of these allocated a few hundred MB with no memory check on a
    machine that had 100 MiB (simulated): a conversion of X (a broadcast
    view, int8), integer labels made one-hot, a classifier's targets as
    floats, an estimator's predict output. Now each is a ValueError naming
    the argument, before the allocation. The estimators check the copy of X
    from its shape before scikit-learn's check_array, which made it (and
    first read every element of a broadcast view) with no check: numpy's
    MemoryError."""
    from dnnfast import _validation

    monkeypatch.setattr(_validation, "available_memory", lambda: 100 << 20)
    rng = np.random.default_rng(0)
    net = dnnfast.Network([8, 4, 1000], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = dnnfast.MLPRegressor(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(
            rng.standard_normal((50, 20)), rng.standard_normal((50, 200)))
    calls = {
        "broadcast X": (lambda: net.predict(np.broadcast_to(np.zeros(8), (4_000_000, 8))), "X"),
        "int8 X": (lambda: net.predict(np.zeros((4_000_000, 8), dtype=np.int8)), "X"),
        "labels as one-hot": (lambda: net.cost(np.zeros((40_000, 8)), np.arange(40_000) % 1000), "Y"),
        "estimator targets": (lambda: dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1).fit(
            np.zeros((40_000, 2)), np.arange(40_000) % 1000), "y"),
        "estimator predict": (lambda: reg.predict(np.zeros((300_000, 20))), "X"),
        "estimator predict broadcast X": (lambda: reg.predict(np.broadcast_to(np.zeros(20), (1_000_000, 20))), "X"),
        "estimator fit broadcast X": (lambda: dnnfast.MLPRegressor(max_iter=1).fit(
            np.broadcast_to(np.zeros(20), (1_000_000, 20)), np.zeros(1_000_000)), "X"),
        "estimator fit int8 X": (lambda: dnnfast.MLPRegressor(max_iter=1).fit(
            np.zeros((1_000_000, 20), dtype=np.int8), np.zeros(1_000_000)), "X"),
    }
    call, name = calls[case]
    with _PeakAllocation() as alloc:
        with pytest.raises(ValueError, match=rf"^{name}: .*would need .* but only 100 MiB is available"):
            call()
    peak = alloc.bytes
    assert peak < 80 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"


_SPARSE_PREDICT = """
import json, warnings
import numpy as np
import scipy.sparse as sp
import dnnfast
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
n, m = 2500, 60  # three of predict's chunks of 1024 rows, the last one short
D = np.where(rng.random((n, m)) < 0.05, rng.standard_normal((n, m)), 0.0)
same = {}
for kind, y in (("MLPClassifier", rng.integers(0, 3, n)), ("MLPRegressor", rng.standard_normal((n, 2)))):
    for dtype in (np.float32, np.float64):
        est = getattr(dnnfast, kind)(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(D.astype(dtype), y)
        predict = est.predict_proba if kind == "MLPClassifier" else est.predict
        for make in (sp.csr_matrix, sp.csc_matrix, lambda a: sp.csr_matrix((10 * a).astype(np.int64))):
            S = make(D)
            same[f"{kind}-{np.dtype(dtype).name}-{S.format}-{S.dtype}"] = bool(np.array_equal(predict(S), predict(S.toarray())))
print(json.dumps(same))
"""


def test_sparse_predict_is_the_dense_predict_bit_for_bit():
    """predict makes a sparse X dense a chunk of rows at a time, the core's
    own chunks: the outputs are those of X made dense, bit for bit."""
    pytest.importorskip("scipy.sparse")
    ns = {}
    exec(_SPARSE_PREDICT, ns)
    assert len(ns["same"]) == 12 and all(ns["same"].values()), ns["same"]


def test_sparse_predict_is_the_dense_predict_bit_for_bit_without_sklearn():
    pytest.importorskip("scipy.sparse")
    from conftest import run_without

    same = run_without(["sklearn"], _SPARSE_PREDICT)
    assert len(same) == 12 and all(same.values()), same


def test_sparse_predict_makes_no_dense_copy_of_X(monkeypatch):
    """A sparse X whose dense copy cannot fit (scikit-learn's MLP predicts
    from it sparse) was made dense whole: numpy's MemoryError, or now the
    memory check's ValueError. One chunk of rows at a time, predict answers."""
    sparse = pytest.importorskip("scipy.sparse")
    from dnnfast import _validation

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(
            rng.standard_normal((50, 20)), rng.integers(0, 2, 50))
    X = sparse.random(1_000_000, 20, density=1e-4, format="csr", random_state=0)  # dense: 160 MB
    monkeypatch.setattr(_validation, "available_memory", lambda: 100 << 20)
    with _PeakAllocation() as alloc:
        labels = clf.predict(X)
    peak = alloc.bytes
    assert labels.shape == (1_000_000,)
    assert peak < 80 << 20, f"{peak / 2**20:.0f} MiB allocated"
    np.testing.assert_array_equal(labels[:5000], clf.predict(X[:5000].toarray()))


_SPARSE_FIT = """
import json, warnings
import numpy as np
import scipy.sparse as sp
import dnnfast
from dnnfast._estimators import _solvers
from dnnfast._train import driver
warnings.simplefilter("ignore")
try:
    from dnnfast._train import rows
except ImportError:  # (a fit that makes X dense whole: the largest block says so)
    rows = driver
# Blocks of a few rows: a chunk of the steps one batch (a window of the
# core's where small batches go in windows: 32 rows for one-row batches, 30
# for three-row ones), long steps (auto: 200 rows) and validation in blocks of 64 rows,
# lbfgs in blocks of 64 rows (one block for 60 rows).
patched = {(rows, "DENSE_CHUNK_BYTES"): 1, (driver, "BLOCK_FLOPS"): 1.0, (_solvers, "LBFGS_BLOCK_FLOPS"): 1.0}
kept = {k: getattr(*k, patched) for k in patched}
largest = [0]
classes = (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array)
own = {cls: cls.__dict__.get("toarray") for cls in classes}

def recording(cls):
    made = cls.toarray
    def toarray(self, *args, **kwargs):
        largest[0] = max(largest[0], self.shape[0])
        return made(self, *args, **kwargs)
    return toarray

rng = np.random.default_rng(0)
n, m = 600, 90  # 90 x 100 float32 weights: more than the core's stochastic-window threshold (32 KB)
# 30% of the entries stored: more than the core reads as CSR (rows.CORE_CSR_MAX_DENSITY), made dense in blocks
D = np.where(rng.random((n, m)) < 0.3, rng.standard_normal((n, m)), 0.0)
targets = {"MLPClassifier": rng.integers(0, 3, n), "MLPRegressor": rng.standard_normal((n, 2))}
weights = rng.random(n)
attrs = ("coefs_", "intercepts_", "loss_curve_", "n_iter_", "validation_scores_", "best_loss_", "loss_")
cases = {
    "adam-7-shuffled-weighted": dict(solver="adam", batch_size=7, sample_weight=True),
    "adam-auto-long-steps-early-stopping": dict(solver="adam", validation_fraction=0.25, early_stopping=True),
    "sgd-1-momentum": dict(solver="sgd", batch_size=1, max_iter=2),
    "sgd-1-plain-shuffled": dict(solver="sgd", batch_size=1, momentum=0.0, alpha=0.0, max_iter=2),
    "sgd-1-plain-windows-in-order": dict(solver="sgd", batch_size=1, momentum=0.0, alpha=0.0, shuffle=False,
                                         hidden_layer_sizes=(100,), max_iter=2),
    "sgd-3-plain-windows-weighted": dict(solver="sgd", batch_size=3, momentum=0.0, alpha=0.0, sample_weight=True,
                                         hidden_layer_sizes=(100,), max_iter=2),
    "sgd-auto-in-order-early-stopping-weighted": dict(solver="sgd", shuffle=False, early_stopping=True,
                                                      validation_fraction=0.25, sample_weight=True),
    "lbfgs-blocks-weighted": dict(solver="lbfgs", sample_weight=True),
    "lbfgs-one-block": dict(solver="lbfgs", rows=60),
    "adam-13-partial_fit": dict(solver="adam", batch_size=13, partial_fit=3),
}
same = {}
try:
    for (mod, name), v in patched.items():
        setattr(mod, name, v)
    for cls in classes:
        cls.toarray = recording(cls)
    for kind, y in targets.items():
        for dtype in (np.float32, np.float64):
            for case, kw in cases.items():
                kw = dict(kw)
                k = kw.pop("rows", n)
                w = weights[:k] if kw.pop("sample_weight", False) else None
                calls = kw.pop("partial_fit", 0)
                kw = dict(dict(hidden_layer_sizes=(9,), max_iter=3, random_state=0), **kw)
                X = D[:k].astype(dtype)
                make = {"sgd-1-momentum": sp.csc_matrix, "lbfgs-one-block": sp.csr_array}.get(case, sp.csr_matrix)
                models = []
                for data in (X, make(X)):
                    est = getattr(dnnfast, kind)(**kw)
                    largest[0] = 0
                    if calls:
                        extra = {"classes": [0, 1, 2]} if kind == "MLPClassifier" else {}
                        for _ in range(calls):
                            est.partial_fit(data, y[:k], sample_weight=w, **extra)
                    else:
                        est.fit(data, y[:k], sample_weight=w)
                    models.append(est)
                a, b = models
                equal = all((np.array_equal(va, vb) if isinstance(va, np.ndarray) else
                             all(np.array_equal(x, z) for x, z in zip(va, vb)) if isinstance(va, list) and va
                             and isinstance(va[0], np.ndarray) else va == vb)
                            for va, vb in ((getattr(a, t, None), getattr(b, t, None)) for t in attrs))
                same[f"{kind}-{np.dtype(dtype).name}-{case}"] = [bool(equal), largest[0], k]
finally:
    for (mod, name), v in kept.items():
        if v is patched:
            delattr(mod, name)
        else:
            setattr(mod, name, v)
    for cls, f in own.items():
        if f is None:
            del cls.toarray
        else:
            cls.toarray = f
print(json.dumps(same))
"""


def _check_sparse_fits(same):
    assert len(same) == 40, same
    for case, (equal, largest, rows) in same.items():
        assert equal, f"{case}: the fit on the sparse X differs from the fit on X made dense"
        # a chunk of the steps (one batch, or a window of 32 or 30 rows), a
        # block of a long step, of lbfgs or of the validation (at most 64 + 63)
        assert largest <= 127 and (largest < rows or case.endswith("lbfgs-one-block")), \
            f"{case}: {largest} rows of {rows} made dense at once"


def test_sparse_fit_is_the_dense_fit_bit_for_bit():
    """fit and partial_fit make a sparse X dense a block of rows at a time
    (they made it dense whole): the chunks of the steps (whole batches, of
    windows for small ones), the blocks of a long step, lbfgs's blocks
    and the validation's. The fitted model (coefs_, intercepts_,
    loss_curve_, n_iter_, validation_scores_, best_loss_) is that of the fit
    on X made dense, bit for bit, for adam and sgd (batches of 1, 3, 7, 13
    and 'auto', shuffled or in order, the core's windows of 1 and 3, early
    stopping), lbfgs (in blocks, and in one block: X dense whole is its one
    block), sample_weight, float32 and float64, classifier and regressor,
    CSR, CSC and csr_array input."""
    pytest.importorskip("scipy.sparse")
    ns = {}
    exec(_SPARSE_FIT, ns)
    _check_sparse_fits(ns["same"])


def test_sparse_fit_is_the_dense_fit_bit_for_bit_without_sklearn():
    pytest.importorskip("scipy.sparse")
    from conftest import run_without

    _check_sparse_fits(run_without(["sklearn"], _SPARSE_FIT))


_SPARSE_DUPLICATES = """
import json, warnings
import numpy as np
import scipy.sparse as sp
import dnnfast
# Each stored value finite, but two stored at row 3's column 2 sum to an
# infinity in the dense X (toarray adds them), as 3e38 + 3e38 in float32.
refused = {}
for dtype, big in (("float64", 1e308), ("float32", 3e38)):
    B = sp.random(40, 4, density=0.5, format="coo", random_state=0, dtype=dtype)
    rows, cols, vals = np.r_[B.row, 3, 3], np.r_[B.col, 2, 2], np.r_[B.data, big, big].astype(dtype)
    order = np.argsort(rows, kind="stable")
    X = sp.csr_matrix((vals[order], cols[order], np.searchsorted(rows[order], np.arange(41))), shape=(40, 4))
    assert not X.has_canonical_format and np.isinf(X.toarray()).sum() == 1
    for early in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, early_stopping=early,
                                      random_state=0).fit(X, np.arange(40) % 2)
                refused[f"{dtype} {early}"] = "fitted"
            except ValueError as e:
                refused[f"{dtype} {early}"] = str(e)
print(json.dumps(refused))
"""


def _check_duplicates_refused(refused):
    assert len(refused) == 4, refused
    for case, msg in refused.items():
        assert "X" in msg and ("infinity" in msg or "NaN" in msg), (case, msg)


def test_a_sparse_X_whose_duplicate_entries_sum_to_infinity_is_refused_as_its_dense_form():
    """check_array checks a sparse X's stored values one by one; two finite
    values stored at one position, which its dense rows add up, made an
    infinity that the fit met: NaN validation scores in a fit that returned,
    or a NonFiniteError blaming the solver. Refused before training, as the
    dense X is."""
    pytest.importorskip("scipy.sparse")
    ns = {}
    exec(_SPARSE_DUPLICATES, ns)
    _check_duplicates_refused(ns["refused"])


def test_a_sparse_X_whose_duplicate_entries_sum_to_infinity_is_refused_without_sklearn():
    pytest.importorskip("scipy.sparse")
    from conftest import run_without

    _check_duplicates_refused(run_without(["sklearn"], _SPARSE_DUPLICATES))


def test_a_dataframe_of_sparse_columns_is_fitted_sparse(monkeypatch):
    """scikit-learn takes a DataFrame whose columns are all sparse as a
    sparse matrix; dnnfast's input check made it a dense array first (all of
    it: numpy's MemoryError where it could not fit). It now fits a block of
    rows at a time, as its CSR does, to the same weights."""
    sparse = pytest.importorskip("scipy.sparse")
    pd = pytest.importorskip("pandas")
    from dnnfast import _validation

    X = sparse.random(200_000, 40, density=1e-3, format="csr", random_state=0)  # dense: 64 MB
    df = pd.DataFrame.sparse.from_spmatrix(X)
    y = np.arange(200_000) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0).fit(X, y)
        monkeypatch.setattr(_validation, "available_memory", lambda: 50 << 20)
        with _PeakAllocation() as alloc:
            clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0).fit(df, y)
    assert alloc.bytes < 40 << 20, f"{alloc.bytes / 2**20:.0f} MiB allocated"
    for p, q in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_array_equal(p, q)


_SPARSE_FRAMES = """
import json, warnings
import numpy as np
import pandas as pd
import dnnfast
rng = np.random.default_rng(0)
D = np.where(rng.random((60, 5)) < 0.3, rng.standard_normal((60, 5)), 0.0)
y = np.arange(60) % 2
out = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(D, y)
    # pandas' default fill value is NaN: no sparse matrix (to_coo refuses it), the array it stands for
    nan_fill = pd.DataFrame(D).astype(pd.SparseDtype(float))
    try:
        fit = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(nan_fill, y)
        out["nan fill"] = all(np.array_equal(a, b) for a, b in zip(fit.coefs_, ref.coefs_))
    except ValueError as e:
        out["nan fill"] = str(e)
    try:
        dnnfast.MLPClassifier(max_iter=1).fit(pd.DataFrame({"a": ["x", "y"]}).astype(pd.SparseDtype(object, 0)), [0, 1])
        out["strings"] = "fitted"
    except (TypeError, ValueError) as e:
        out["strings"] = str(e)
print(json.dumps(out))
"""


@pytest.mark.parametrize("sklearn", [True, False])
def test_other_sparse_frames_are_taken_as_the_arrays_they_stand_for(sklearn):
    """Only a DataFrame of sparse numeric columns filled with 0 is a sparse
    matrix; without scikit-learn one with pandas' default NaN fill (which no
    sparse matrix holds) was refused, "fill value must be 0 when converting
    to COO matrix", where it fitted as its values; one of strings said that
    too, not that X must be numeric."""
    pytest.importorskip("pandas")
    pytest.importorskip("scipy.sparse")
    if sklearn:
        pytest.importorskip("sklearn")
        ns = {}
        exec(_SPARSE_FRAMES, ns)
        out = ns["out"]
    else:
        from conftest import run_without

        out = run_without(["sklearn"], _SPARSE_FRAMES)
    if not sklearn:  # (scikit-learn's check_array refuses the NaN fill: its own rule)
        assert out["nan fill"] is True, out
    assert "fill value" not in out["strings"] and "numeric" in out["strings"], out


def test_a_dataframe_of_sparse_bools_fits_as_its_dense_form():
    """scikit-learn's check_array passes a DataFrame of sparse bool columns
    through as a bool matrix: the fit built bool weights and refused them
    ("coefs_ ... must all be float32 or all float64"), naming no argument. It
    fits as the dense bools do (as float64)."""
    pytest.importorskip("scipy.sparse")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    B = rng.random((40, 5)) < 0.3
    frame = pd.DataFrame(B).astype(pd.SparseDtype(bool, False))
    y = rng.standard_normal(40)
    a = dnnfast.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    b = dnnfast.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(frame, y)
        b.fit(B, y)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


def test_a_small_sparse_X_is_made_dense_once(monkeypatch):
    """A sparse X no larger dense than one chunk is made dense at once: a
    block's indexing into the CSR cost more than a small partial_fit's steps
    (35% of an 8-row call). The same weights as the dense X."""
    sparse = pytest.importorskip("scipy.sparse")
    from dnnfast._train import rows

    def blocks(*args):
        raise AssertionError("made dense a block at a time")

    monkeypatch.setattr(rows.SparseRows, "take", blocks)
    rng = np.random.default_rng(0)
    D = np.where(rng.random((8, 50)) < 0.2, rng.standard_normal((8, 50)), 0.0)
    a, b = dnnfast.MLPClassifier(random_state=0), dnnfast.MLPClassifier(random_state=0)
    for _ in range(3):
        a.partial_fit(sparse.csr_matrix(D), np.arange(8) % 2, classes=[0, 1])
        b.partial_fit(D, np.arange(8) % 2, classes=[0, 1])
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


def test_sparse_fit_makes_no_dense_copy_of_X(monkeypatch):
    """A sparse X whose dense copy cannot fit (scikit-learn's MLP trains on it
    sparse) was made dense whole for the fit: the memory check refused it (or
    numpy's MemoryError). A block of rows at a time, the fit runs in a fraction
    of X's dense size."""
    sparse = pytest.importorskip("scipy.sparse")
    from dnnfast import _validation

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():  # the modules a first fit imports, before the count
        warnings.simplefilter("ignore")
        dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(
            sparse.csr_matrix(rng.standard_normal((50, 20))), rng.integers(0, 2, 50))
    X = sparse.random(1_000_000, 20, density=1e-4, format="csr", random_state=0)  # dense: 160 MB
    y = np.arange(1_000_000) % 2
    monkeypatch.setattr(_validation, "available_memory", lambda: 100 << 20)
    with _PeakAllocation() as alloc:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (max_iter reached)
            clf = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, y)
    peak = alloc.bytes
    assert clf.n_iter_ == 1
    assert peak < 80 << 20, f"{peak / 2**20:.0f} MiB allocated"


def test_lbfgs_on_a_sparse_X_needs_a_workspace_of_one_block_of_rows(monkeypatch):
    """lbfgs evaluates its loss and gradient a block of rows at a time, and
    the core's workspace holds one block; the memory check before the fit
    counted a workspace of all rows (1000000 x 576 bytes here) and refused a
    fit that needs a tenth of it, as its blocks of a sparse X made dense."""
    sparse = pytest.importorskip("scipy.sparse")
    pytest.importorskip("scipy.optimize")
    from dnnfast import _validation
    from dnnfast._estimators import _solvers

    X = sparse.random(1_000_000, 20, density=1e-4, format="csr", random_state=0)  # dense: 160 MB
    y = np.arange(1_000_000) % 2
    with warnings.catch_warnings():  # the modules a first fit imports, before the count
        warnings.simplefilter("ignore")
        dnnfast.MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=1).fit(X[:50], y[:50])
    n_params = 20 * 4 + 4 + 4 + 1
    monkeypatch.setattr(_solvers, "LBFGS_BLOCK_FLOPS", 6 * n_params * 100_000)  # blocks of 100000 rows
    monkeypatch.setattr(_validation, "available_memory", lambda: 100 << 20)
    with _PeakAllocation() as alloc:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (max_iter reached)
            clf = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=1, random_state=0).fit(X, y)
    peak = alloc.bytes
    assert clf.n_iter_ == 1
    assert peak < 80 << 20, f"{peak / 2**20:.0f} MiB allocated"


def test_a_sparse_fits_dense_block_is_checked_before_it_is_made(monkeypatch):
    """The memory check of a sparse X is that of the rows the fit makes dense
    at a time, naming X: here the validation set's block (early stopping
    scores 900000 rows in one block, as for the dense X), refused before
    anything of its size is allocated."""
    sparse = pytest.importorskip("scipy.sparse")
    from dnnfast import _validation

    from dnnfast._train import rows

    X = sparse.random(1_000_000, 20, density=1e-4, format="csr", random_state=0)  # dense: 160 MB
    monkeypatch.setattr(rows, "CORE_CSR_MAX_DENSITY", 0.0)  # (an X of few values is read as CSR, never made dense)
    monkeypatch.setattr(_validation, "available_memory", lambda: 100 << 20)
    est = dnnfast.MLPRegressor(hidden_layer_sizes=(4,), max_iter=1, early_stopping=True, validation_fraction=0.9)
    with _PeakAllocation() as alloc:
        with pytest.raises(ValueError, match=r"^X: 900,000 of its rows made dense at a time for the validation "
                                             r"score \(18,000,000 values of float64\) would need .* but only 100 MiB"):
            est.fit(X, np.zeros(1_000_000))
    peak = alloc.bytes
    assert peak < 80 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"
    assert not hasattr(est, "coefs_")  # refused before its first step: left unfitted


def test_network_predict_and_cost_count_no_rows_of_x(monkeypatch):
    """Network.predict and cost read X where it is and form no deltas: their
    memory checks counted a training workspace's row (a row of X and two
    deltas) per chunk row and refused 1024 rows of 20000 columns with 70 MiB
    free, for a workspace of a few KB."""
    from dnnfast import _validation

    net = dnnfast.Network([20000, 4, 3], ["relu", "softmax"], dtype="float32", seed=0)
    X = np.ones((1024, 20000), dtype=np.float32)
    monkeypatch.setattr(_validation, "available_memory", lambda: 70 << 20)
    assert net.predict(X).shape == (1024, 3)
    assert np.isfinite(net.cost(X, np.zeros(1024, dtype=np.int64)))
