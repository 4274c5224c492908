"""Small real data sets shipped inside the package (no download)."""
from __future__ import annotations

import gzip
from importlib import resources

import numpy as np


def load_digits():
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


def train_test_split(X, y, test_fraction=0.25, seed=0):
    """A seeded, class-stratified split: each class keeps its share in both parts."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[: int(round(test_fraction * idx.size))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return X[train], X[test], y[train], y[test]
