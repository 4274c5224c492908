"""Small real data sets shipped inside the package (no download)."""
from __future__ import annotations

import gzip
import math
import numbers
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ._types import SparseMatrix

__all__ = ["load_digits", "train_test_split"]

_X = TypeVar("_X", bound=np.generic)
_Y = TypeVar("_Y", bound=np.generic)


def load_digits() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The 8x8 handwritten digits (UCI Optical Recognition of Handwritten
    Digits, test set; CC BY 4.0 -- see ``dnnfast/data/README.md``).

    Returns
    -------
    X : ndarray of shape (1797, 64), float64
        Pixel intensities 0..16, one image per row.
    y : ndarray of shape (1797,), int64
        The digit, 0..9.
    """
    with resources.files("dnnfast").joinpath("data/digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as f:
            data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return np.ascontiguousarray(data[:, :-1]), data[:, -1].astype(np.int64)


def _with_rows(a, name, sparse=False):
    """``a`` as something whose rows can be taken by position: an array, a
    pandas object, with ``sparse`` a sparse matrix in CSR form (COO takes no
    index); a list (anything else) as an array. Anything without rows (a
    scalar, a 0-d array, a dict, a sparse y) is a TypeError naming ``name``."""
    if sparse and hasattr(a, "toarray") and hasattr(a, "nnz"):
        return a.tocsr()
    if hasattr(a, "iloc") or isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise TypeError(f"{name} must be an array with one row per sample: {exc}") from None
    if np.ndim(arr) == 0:
        what = "a 0-d array" if isinstance(a, np.ndarray) else f"a value of type {type(a).__name__}"
        raise TypeError(f"{name} must be an array (or list, pandas object{', sparse matrix' if sparse else ''}) "
                        f"with one row per sample, got {what}")
    return arr


def _rows(a, index):
    """Rows ``index`` of an array, list or pandas object (by position: a
    DataFrame's ``[]`` takes columns)."""
    return a.iloc[index] if hasattr(a, "iloc") else a[index]


# Arrays come back as arrays of their dtype; anything else as its own kind (a
# pandas object, a CSR matrix) or, a list, as an array: Any, which the caller knows.
@overload
def train_test_split(X: NDArray[_X], y: NDArray[_Y], test_fraction: float = ...,
                     seed: int = ...) -> tuple[NDArray[_X], NDArray[_X], NDArray[_Y], NDArray[_Y]]: ...


@overload
def train_test_split(X: ArrayLike | SparseMatrix, y: ArrayLike, test_fraction: float = ...,
                     seed: int = ...) -> tuple[Any, Any, Any, Any]: ...


def train_test_split(X: ArrayLike | SparseMatrix, y: ArrayLike, test_fraction: float = 0.25,
                     seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """A seeded, class-stratified split: each class keeps its share in both parts.

    The test part has ``ceil(test_fraction * n)`` rows (as scikit-learn's),
    shared among the classes by their sizes.

    Parameters
    ----------
    X : array-like or sparse matrix, shape (n, m)
        The samples: an array, a list, a pandas object or a SciPy sparse matrix.
    y : array-like, shape (n,) or (n, k)
        Labels (1-D) or one row of targets per sample (2-D: one-hot or
        multi-label rows, each distinct row a class).
    test_fraction : float in (0, 1)
        The test part's share of the rows.
    seed : int >= 0
        Seeds the draw of each class's test rows.

    Returns
    -------
    X_train, X_test, y_train, y_test
        The rows of each part in their order in X: arrays as arrays of their
        dtype, lists as arrays, pandas objects as pandas objects, a sparse X
        as CSR matrices.
    """
    # Refused rather than coerced: NumPy would take a bool as 0/1, a fraction
    # outside (0, 1) as a silently full or empty part, and index X by y's rows.
    if isinstance(test_fraction, (bool, np.bool_)) or not isinstance(test_fraction, numbers.Real):
        raise TypeError(f"test_fraction must be a number, got {test_fraction!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    X = _with_rows(X, "X", sparse=True)
    y = _with_rows(y, "y")
    if X.shape[0] != len(y):
        raise ValueError(f"X and y must have the same number of rows, got len(X)={X.shape[0]} and len(y)={len(y)}")
    n = len(y)
    if n < 2:
        raise ValueError(f"X and y must have at least 2 rows to split, got {n}")
    labels = np.asarray(y)
    if labels.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D labels or 2-D rows of targets, got an array of shape {labels.shape}")
    # A NaN is unequal to itself, so np.unique makes each NaN of an object y
    # (a pandas object column) a class of its own.
    if (np.isnan(labels).any() if labels.dtype.kind in "fc" else
            labels.dtype.kind == "O" and any(isinstance(v, numbers.Number) and v != v for v in labels.flat)):
        raise ValueError("y contains NaN: no class to stratify it by")
    try:  # a 2-D y: each distinct row (a one-hot row, a set of labels) is a class
        _, cls = np.unique(labels, axis=0 if labels.ndim == 2 else None, return_inverse=True)
    except TypeError as exc:  # labels that cannot be ordered: None, mixed kinds
        raise TypeError(f"y: labels must be comparable with each other (numbers or strings), got {exc}") from None
    cls = cls.reshape(-1)
    counts = np.bincount(cls)
    n_test = math.ceil(test_fraction * n)
    if n_test >= n:
        raise ValueError(f"test_fraction={test_fraction!r} leaves the train part empty for these {n} rows")
    # Each class's share rounded, then moved towards the total one row at a
    # time where the rounding erred most (ties: the first class): rounded
    # alone, ten classes of 3 rows at 0.5 gave 20 test rows of 30.
    exact = test_fraction * counts
    quota = np.array([round(v) for v in exact], dtype=np.int64)
    while quota.sum() > n_test:
        quota[np.argmax(np.where(quota > 0, quota - exact, -np.inf))] -= 1
    while quota.sum() < n_test:
        quota[np.argmax(np.where(quota < counts, exact - quota, -np.inf))] += 1
    rng = np.random.default_rng(seed)
    test = []
    for c in range(counts.size):
        idx = np.flatnonzero(cls == c)
        rng.shuffle(idx)
        test.append(idx[:quota[c]])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(n), test)
    return _rows(X, train), _rows(X, test), _rows(y, train), _rows(y, test)
