"""Small real data sets shipped inside the package (no download)."""
from __future__ import annotations

import gzip
import numbers
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


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


def train_test_split(X: NDArray[Any], y: NDArray[Any], test_fraction: float = 0.25,
                     seed: int = 0) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """A seeded, class-stratified split: each class keeps its share in both parts.

    Returns ``(X_train, X_test, y_train, y_test)``; the rows of each part in
    their order in X."""
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
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same number of rows, got len(X)={len(X)} and len(y)={len(y)}")
    if len(y) < 2:
        raise ValueError(f"X and y must have at least 2 rows to split, got {len(y)}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[: int(round(test_fraction * idx.size))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    # Rounded per class, a fraction inside (0, 1) can still take no row, or every row, of a small y.
    for part, rows in (("test", test), ("train", train)):
        if rows.size == 0:
            raise ValueError(f"test_fraction={test_fraction!r} leaves the {part} part empty "
                             f"for these {len(y)} rows")
    return X[train], X[test], y[train], y[test]
