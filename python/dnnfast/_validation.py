"""Input checks shared by the public API: every problem raises ValueError or
TypeError naming the argument, before any array reaches the C++ core.

``Network`` converts its data with ``as_float_array``; the estimators run
``check_estimator_input`` before scikit-learn's check_array (or the NumPy
stand-in) and ``naming`` around it; both refuse sizes that cannot fit in
memory with ``check_memory`` before anything is allocated."""
from __future__ import annotations

import itertools
import math
import numbers
import os
import re
import sys

import numpy as np

from . import _core


def as_array(a, name, numeric_kinds="biuf"):
    """``a`` as a NumPy array whose dtype kind is in ``numeric_kinds``, or a
    TypeError naming ``name``. No copy for an ndarray already of such a kind.

    Refused rather than coerced: object, string, bytes, complex, datetime64,
    timedelta64 and structured dtypes; ragged nested lists; sparse matrices
    (``.toarray()`` first); masked arrays with masked entries (their hidden
    values would be used); pandas data with missing values (pd.NA), whose
    nullable numeric columns are otherwise their numbers. A masked array with nothing masked is its data;
    any other ndarray subclass (np.matrix, whose * is a matrix product and
    whose rows stay 2-D) a plain view of its data.
    """
    if isinstance(a, np.ma.MaskedArray):
        if np.ma.getmask(a) is not np.ma.nomask and np.ma.getmaskarray(a).any():
            raise TypeError(f"{name} is a masked array with masked entries; fill them (.filled(value)) "
                            "or drop those rows first")
        a = np.ma.getdata(a)
    if isinstance(a, np.ndarray):
        arr = a if type(a) is np.ndarray else a.view(np.ndarray)
    elif hasattr(a, "toarray") and hasattr(a, "nnz"):
        raise TypeError(f"{name} is a sparse matrix; pass {name}.toarray()")
    elif (arr := _pandas_numbers(a, name)) is not None:
        pass
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in numeric_kinds:
        raise TypeError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    return arr


def _pandas_numbers(a, name):
    """A pandas DataFrame or Series with nullable numeric columns (Int64,
    Float64, boolean, numeric Arrow types), which np.asarray makes an object
    array, as the NumPy array of its values (of the columns' common NumPy
    dtype: Int64 labels stay integers); None for anything else. A missing
    value (pd.NA) is a ValueError naming ``name``: it has no number to be.
    The one rule for such data, Network's and the estimators' pre-check's."""
    pd = sys.modules.get("pandas")  # no pandas object without pandas imported
    if pd is None or not isinstance(a, (pd.DataFrame, pd.Series)):
        return None
    dtypes = list(a.dtypes) if isinstance(a, pd.DataFrame) else [a.dtype]
    if not dtypes or all(isinstance(dt, np.dtype) for dt in dtypes):
        return None  # NumPy columns: np.asarray's own conversion
    types = pd.api.types
    if not all((types.is_numeric_dtype(dt) or types.is_bool_dtype(dt)) and not types.is_object_dtype(dt)
               and isinstance(getattr(dt, "numpy_dtype", dt), np.dtype) for dt in dtypes):
        return None  # categorical, datetime, strings: refused by the dtype check as before
    if a.isna().to_numpy().any():
        raise ValueError(f"{name} has missing values (pd.NA); fill them (.fillna(value)) or drop those rows first")
    return a.to_numpy(dtype=np.result_type(*(getattr(dt, "numpy_dtype", dt) for dt in dtypes)))


def as_float_array(a, name, dtype, ndim=2, check_finite=True):
    """``a`` as a C-contiguous, native-byte-order, finite array of ``dtype``
    (no copy when it already is one).

    Accepts bool, integer and floating input (float16 and bool convert
    exactly); lists of numbers; strided, Fortran-ordered, read-only and
    big-endian arrays (converted, same values). Everything ``as_array``
    refuses is refused here too.

    ``check_finite=False``: an array already in shape is returned unchecked,
    for a caller whose C++ call checks it in the same pass (predict); a
    converted one is still checked here, since conversion can overflow.
    """
    # Fast path (one-row predict, training data already in shape): no
    # conversion, one C++ pass for the finiteness check.
    if (type(a) is np.ndarray and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous
            and a.shape[0] > 0):
        if check_finite and not _core.all_finite(a):
            raise ValueError(f"{name} contains NaN or infinity")
        return a
    arr = as_array(a, name)
    if arr.ndim != ndim:
        hint = " (use reshape(1, -1) for a single row)" if ndim == 2 and arr.ndim == 1 else ""
        raise ValueError(f"{name} must be {ndim}-D, got an array of shape {arr.shape}{hint}")
    if ndim >= 1 and arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if arr.dtype != dtype or not arr.flags.c_contiguous:
        # The copy: an int8 X, or a broadcast view of a few bytes, becomes n x m values of dtype.
        check_memory(arr.size * np.dtype(dtype).itemsize, name,
                     lambda: f"its {arr.size:,} values as a contiguous {np.dtype(dtype).name} array")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out = np.ascontiguousarray(arr, dtype=dtype)
    # Checked after the conversion, so values too large for the dtype (which
    # become infinite there) are caught too.
    if not all_finite(out):
        raise ValueError(f"{name} contains NaN or infinity (or values too large for {out.dtype})")
    return out


def cast_finite(a, dtype, name):
    """``a`` (already checked finite) as a C-contiguous array of ``dtype``;
    a ValueError naming ``name`` when a value is too large for it (float64
    data for a float32 model)."""
    if a.dtype == dtype and a.flags.c_contiguous:
        return a
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if out.dtype.kind == "f" and not all_finite(out):
        raise ValueError(f"{name} has values too large for {np.dtype(dtype).name}")
    return out


def all_finite(a):
    """True when no element of the float array ``a`` is NaN or infinite (no temporary)."""
    return _core.all_finite(np.ascontiguousarray(a))


def check_positive_int(value, name, allow_zero=False, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be at most {upper}, got {value}")
    return int(value)


# The largest thread count accepted anywhere: OpenMP takes a C int, and no
# machine has more hardware threads than this.
MAX_THREADS = 1 << 16


def check_thread_count(value, name, allow_zero=True):
    """A thread count: an integer (not a bool) in [0 or 1, MAX_THREADS]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    lo = 0 if allow_zero else 1
    if not lo <= value <= MAX_THREADS:
        raise ValueError(f"{name} must be in [{lo}, {MAX_THREADS}], got {value}")
    return int(value)


def check_positive_float(value, name, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value}")
    return value


# float32's smallest normal number, the larger of the two dtypes': a value at
# least this is normal in either, so check_normal needs no NumPy call for it.
_TINY32 = float(np.finfo(np.float32).tiny)


def check_normal(value, name, dtype, of="a {} network"):
    """A positive setting below the smallest normal number of ``dtype`` is 0
    (or loses its digits) in the updates: refused. ``value`` a checked
    positive number; ``of`` what has that dtype, for the message."""
    if value >= _TINY32:  # a float comparison only: it runs on every sgd_update of the NumPy yardstick
        return
    tiny = float(np.finfo(dtype).tiny)  # (a float32 would take the value into float32: 1e39 overflowed)
    if value < tiny:
        raise ValueError(f"{name} must be at least {tiny:g} for {of.format(np.dtype(dtype).name)}, got {value!r}")


def check_bool(value, name):
    """``value`` as a bool; only True/False (and NumPy's bools) are accepted,
    so that a string like "no" is not silently taken as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Memory: absurd sizes are refused before anything is allocated
# ---------------------------------------------------------------------------

#: Below this many bytes an allocation is not worth a look at the free memory
#: (reading /proc/meminfo costs more than a small predict).
_MEMORY_CHECK_FLOOR = 64 << 20


def available_memory():
    """Bytes of memory this process can still allocate, or None when unknown.

    Linux's MemAvailable (free plus reclaimable cache), lowered to the
    cgroup's remaining allowance where one is set; elsewhere the free
    physical pages (os.sysconf)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:  # cgroup v2: the container's limit
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                left = int(limit) - int(f.read().strip())
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    return avail


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.4g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.4g} EiB"


#: Rows per pass of predict and cost on large inputs (kChunkRows, cpp/nn/network.cpp):
#: their workspace is this many rows at most.
PREDICT_CHUNK_ROWS = 1024


def check_memory(nbytes, name, what):
    """Raise ValueError naming ``name`` when ``nbytes`` (an exact Python int)
    cannot be allocated: more than an int64 can address, or more than the
    memory available now. ``what`` (text, or a function that returns it, so
    that a one-row predict formats no message) says what needs the memory."""
    if nbytes < _MEMORY_CHECK_FLOOR:
        return
    if callable(what):
        what = what()
    if nbytes >= 2 ** 63:
        raise ValueError(f"{name}: {what} would need {_fmt_bytes(nbytes)} of memory, more than any "
                         "machine can address (the size overflows int64)")
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise ValueError(f"{name}: {what} would need {_fmt_bytes(nbytes)} of memory, but only "
                         f"{_fmt_bytes(avail)} is available")


def rows_below_memory_floor(bytes_per_row, cap):
    """The most rows, at most ``cap``, whose ``bytes_per_row`` each stay below
    the size under which ``check_memory`` looks at nothing."""
    return min(cap, (_MEMORY_CHECK_FLOOR - 1) // bytes_per_row)


def network_bytes(sizes, itemsize, per_unit_params=()):
    """Exact bytes (Python ints: no overflow) of a network of layer widths
    ``sizes``: ``(parameters, workspace per row)``.

    parameters: the flat buffer P (weights, biases, and prelu alphas for the
    layers listed in ``per_unit_params``); the core's gradient is as big
    again. Workspace per row: what the C++ core allocates for each row of a
    batch (Z and A per layer, two delta buffers of the widest layer output,
    the gathered X, Y and row weight); see Network<T>::ensure_workspace. (A
    sparse X that the core reads as CSR gathers no X: ``sizes[0]`` fewer.)
    """
    sizes = [int(s) for s in sizes]
    widths = sizes[1:]
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], widths))
    n_params += sum(widths[l] for l in per_unit_params)
    per_row = 2 * sum(widths) + 2 * max(widths) + sizes[0] + sizes[-1] + 1
    return n_params * itemsize, per_row * itemsize


def forward_row_bytes(sizes, itemsize):
    """Bytes per row of the core's workspace for predict and cost (Z and A of
    each layer; the core reads X where it is and forms no delta): what their
    memory checks count, not ``network_bytes``' training workspace, whose
    rows hold a gathered row of X and two deltas besides."""
    return 2 * sum(int(s) for s in sizes[1:]) * itemsize


def window_batches(batch_size, sizes, itemsize):
    """Batches of ``batch_size`` rows per window of the core's plain-SGD steps
    on a network of layer ``sizes`` and dtype size ``itemsize`` (1: such
    batches do not go in windows; the core decides, from the batch size and
    the first layer's W, ``_core.stochastic_window_batches``). Each call of
    the core's ``train_epoch`` starts a window: an epoch's chunks are whole
    windows, so that where they fall never changes a bit."""
    # The core compares the size with cache sizes only; one past int64 (a
    # network the memory checks refuse next) is as large as int64's largest.
    first_w_bytes = min(int(sizes[0]) * int(sizes[1]) * itemsize, 2 ** 63 - 1)
    return _core.stochastic_window_batches(batch_size, first_w_bytes)


def workspace_rows(batch_size, sizes, itemsize):
    """Rows the core trains at a time for batches of ``batch_size`` rows: a
    window's (``window_batches``; at most ``_core.STOCHASTIC_WINDOW``), whose
    rows of X and first-layer values it allocates too, or a batch's. What the
    memory checks before a fit count."""
    return window_batches(batch_size, sizes, itemsize) * batch_size


def packed_first_w_bytes(sizes, itemsize):
    """Bytes of the packed copy of the first layer's W that plain-SGD training
    keeps (Network<T>::Workspace::W0): its columns padded to whole panels of
    the GEMM, at most 31 more."""
    return int(sizes[0]) * (int(sizes[1]) + 31) * itemsize


def make_rng(seed, name="seed"):
    """``numpy.random.default_rng(seed)``, with an error that names ``name``."""
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name} must be None, a non-negative integer or a numpy Generator, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name} must be None, a non-negative integer or a numpy Generator: {exc}") from None


# ---------------------------------------------------------------------------
# The estimators: scikit-learn's check_array does the conversion (sparse
# input, feature names, its own messages, which its estimator checks expect);
# these checks run first and refuse what it would coerce silently.
# ---------------------------------------------------------------------------

def is_sparse(a):
    """A SciPy sparse matrix or array (told apart without importing SciPy)."""
    return hasattr(a, "toarray") and hasattr(a, "nnz")


def is_sparse_frame(a):
    """A pandas DataFrame whose columns are all sparse numbers with 0 as the
    fill value, which scikit-learn's check_array takes as a sparse matrix
    (told apart without importing pandas). Any other (a NaN fill, pandas'
    default; strings) is an array-like as before, with its messages."""
    dtypes = getattr(a, "dtypes", None)
    if not (hasattr(a, "sparse") and getattr(a, "ndim", 0) == 2 and dtypes is not None and len(dtypes) > 0):
        return False
    for dt in dtypes:
        if type(dt).__name__ != "SparseDtype" or np.dtype(dt.subtype).kind not in "biuf":
            return False
        fill = dt.fill_value
        if isinstance(fill, (str, bytes)) or not fill == 0:  # (NaN != 0)
            return False
    return True


def sparse_values(X):
    """The values a CSR ``X`` holds as the dense X does: its stored values,
    each position's duplicates summed (two stored 1e308 are an infinity in
    ``X.toarray()``, though each is finite). ``X`` itself is left as it is:
    its dense rows keep toarray's own sums."""
    if X.has_canonical_format:
        return X.data
    summed = X.copy()
    summed.sum_duplicates()
    return summed.data


def check_sparse_structure(X, name):
    """Refuse, naming ``name``, a SciPy sparse X whose index arrays do not
    describe a matrix of its shape: CSR, CSC and BSR with indptr not from
    0, decreasing, or past the stored values, or an index out of range;
    COO with a row or column out of range or arrays of unequal lengths; LIL
    with a column out of range. SciPy's constructors check none of it, and
    its conversions (toarray, tocsr) trust them: they read and write out of
    bounds (a segmentation fault, or silently wrong rows). X is only read.
    DOK and DIA hold no such arrays (SciPy checks a DOK's keys as they are
    set; a DIA's conversions keep only the entries inside its shape)."""
    fmt = getattr(X, "format", None)
    bad = f"{name} is not a valid sparse matrix: "
    if fmt in ("csr", "csc", "bsr"):
        rows, cols = X.shape
        if fmt == "bsr":  # over the blocks: block rows, block columns
            R, C = X.blocksize
            rows, cols = rows // R, cols // C
        major, minor = (rows, cols) if fmt != "csc" else (cols, rows)
        p, j = np.asarray(X.indptr), np.asarray(X.indices)
        what = ("column", "row") if fmt == "csc" else ("row", "column")
        if p.ndim != 1 or p.shape[0] != major + 1:
            raise ValueError(bad + f"indptr has {p.size} entries for {major} {what[0]}s{' of blocks' * (fmt == 'bsr')} "
                             f"(it needs {major + 1})")
        if j.ndim != 1:
            raise ValueError(bad + f"indices must be 1-D, got an array of shape {j.shape}")
        nnz = int(p[-1])
        stored = min(j.shape[0], np.shape(X.data)[0])
        if int(p[0]) != 0 or nnz > stored or bool(np.any(p[1:] < p[:-1])):
            raise ValueError(bad + f"indptr must rise from 0 to at most the {stored} stored values, without "
                             "decreasing")
        if nnz and (int(j[:nnz].min()) < 0 or int(j[:nnz].max()) >= minor):
            raise ValueError(bad + f"a {what[1]} index out of range [0, {minor})" + " (of blocks)" * (fmt == "bsr"))
    elif fmt == "coo":
        r, c = np.asarray(X.row), np.asarray(X.col)
        if r.shape != c.shape or r.shape != np.shape(X.data):
            raise ValueError(bad + "its row, column and value arrays differ in length")
        for idx, size, axis in ((r, X.shape[0], "row"), (c, X.shape[1], "column")):
            if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
                raise ValueError(bad + f"a {axis} index out of range [0, {size})")
    elif fmt == "lil":
        if len(X.rows) != X.shape[0] or len(X.data) != X.shape[0] or any(
                len(r) != len(d) for r, d in zip(X.rows, X.data)):
            raise ValueError(bad + "its rows and data lists differ in length")
        cols = np.fromiter(itertools.chain.from_iterable(X.rows), dtype=np.int64)
        if cols.size and (int(cols.min()) < 0 or int(cols.max()) >= X.shape[1]):
            raise ValueError(bad + f"a column index out of range [0, {X.shape[1]})")


def check_sparse_matrix(X, name):
    """A SciPy sparse ``X`` for Network's calls, checked as ``as_float_array``
    checks a dense one: 2-D, a bool, integer or float dtype (complex and
    object refused), at least one row, every value X made dense would hold
    finite (duplicates summed: two stored 1e308 are an infinity). Returns
    X in CSR form (the memory of another format's conversion checked
    first); X itself is left as it is."""
    if getattr(X, "ndim", 2) != 2:
        raise ValueError(f"{name} must be 2-D, got a sparse array of shape {X.shape}")
    check_sparse_structure(X, name)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype, got {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if X.format != "csr":
        check_memory(X.nnz * (X.dtype.itemsize + 8) + (X.shape[0] + 1) * 8, name,
                     lambda: f"its {X.nnz:,} stored values in CSR form")
        X = X.tocsr()
    values = sparse_values(X)
    finite = all_finite if values.dtype in (np.float32, np.float64) else lambda v: np.isfinite(v).all()
    if values.dtype.kind == "f" and not finite(values):
        raise ValueError(f"{name} contains NaN or infinity (or duplicate entries whose sum is too large for "
                         f"{values.dtype})")
    return X


def check_estimator_input(a, name, kinds="biufcO", densify=False):
    """Refuse, with a TypeError naming ``name``, input that scikit-learn's
    check_array would silently turn into numbers: str, bytes, datetime64,
    timedelta64 and structured dtypes, object arrays holding strings or
    datetime64 / timedelta64 values, masked arrays with masked entries,
    ragged nested lists. ``kinds``: the dtype
    kinds let through (complex goes on to scikit-learn's own "Complex data
    not supported" ValueError). Returns the number of rows, or None when
    ``a`` has no shape (a scalar; check_array then says what it wants).

    First of all, from ``a``'s shape alone, the memory check of the copy
    that check_array and the estimators make of it (as_float_array's, for
    Network): a C-contiguous float64 (float32 stays) array of its values,
    and with ``densify`` a sparse ``a`` made dense. A broadcast view of a few
    bytes or a sparse matrix whose copy cannot fit was a raw MemoryError,
    after check_array's finiteness pass over every element (minutes for
    10**12 rows)."""
    if is_sparse(a) or is_sparse_frame(a):  # scikit-learn checks it (and SciPy's conversions trust its indices)
        if is_sparse(a) and getattr(a, "ndim", 2) == 2:
            check_sparse_structure(a, name)
        if densify:
            dtype = a.dtype if is_sparse(a) else np.result_type(*(dt.subtype for dt in a.dtypes))
            _check_float_copy(a.shape, dtype, name, "as a dense")
        return a.shape[0]
    arr = as_array(a, name, numeric_kinds=kinds)
    if arr.dtype not in (np.float32, np.float64) or not arr.flags.c_contiguous:
        _check_float_copy(arr.shape, arr.dtype, name, "as a contiguous")
    if arr.dtype.kind == "O":
        # Entries refused as they are as a dtype: float() of a datetime64 is
        # its count of days (or whatever its unit), NaT the most negative int64.
        for v in arr.flat:
            if isinstance(v, (str, bytes)):
                raise TypeError(f"{name} must be numeric, but holds the string {v!r}")
            if isinstance(v, (np.datetime64, np.timedelta64)):
                raise TypeError(f"{name} must be numeric, but holds the {type(v).__name__} value {v!r}; "
                                "convert it to a number in the unit you mean first")
    return arr.shape[0] if arr.ndim else None


def _check_float_copy(shape, dtype, name, what):
    """check_memory of a float64 (float32 stays) array of ``shape``."""
    itemsize = 4 if dtype == np.float32 else 8
    size = math.prod(int(d) for d in shape)
    check_memory(size * itemsize, name,
                 lambda: f"its {size:,} values {what} {'float32' if itemsize == 4 else 'float64'} array")


class naming:
    """Context manager: a plain ValueError, TypeError or OverflowError (an
    object array holding 10**400) raised inside whose message does not name
    ``name`` gets it as a prefix ("X: Expected 2D array, ..."), so every
    message says which argument is wrong."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind in (ValueError, TypeError, OverflowError) and not re.search(rf"\b{re.escape(self.name)}\b", str(exc)):
            raise kind(f"{self.name}: {exc}").with_traceback(tb) from None
        return False
