"""Data batching: the row indices of each update, for the three kinds of
gradient descent (SPEC section 6).

- batch (``batch_size=None``): one batch of all n rows per epoch;
- stochastic (``batch_size=1``): one row per update;
- mini-batch (``batch_size=k``): blocks of k rows, the last block shorter
  when k does not divide n (it is used, and averaged over its own size).

Rows are visited in order, or in a fresh permutation per epoch drawn from a
seeded :class:`numpy.random.Generator` when ``shuffle=True``.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ._validation import check_bool, check_memory

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["batch_indices", "epoch_order"]


def check_batch_size(batch_size, n=None):
    """Validate ``batch_size`` (None or a positive int); returns the effective size."""
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be None or a positive integer, got {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return int(batch_size) if n is None else min(int(batch_size), n)


def _check_n(n):
    # NumPy took 2.5 as 3 rows and -3 as none; np.arange(2**63 - 1) is empty
    # (batch_indices then yielded empty batches about for ever), and larger
    # counts failed with errors naming nothing.
    if type(n) is int and 0 <= n < 2**20:  # an epoch's count, checked every epoch: the common case first
        return
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    check_memory(8 * int(n), "n", lambda: f"the order of {int(n):,} rows (int64 indices)")


def epoch_order(n, shuffle=False, rng=None):
    """The order rows are visited in one epoch (int64 indices).

    Parameters
    ----------
    n : int
        The number of rows (>= 0).
    shuffle : bool
        A fresh permutation drawn from ``rng``, else ``0..n-1`` in order.
    rng : numpy.random.Generator or None
        The generator of the permutation; needed when ``shuffle``.
    """
    _check_n(n)
    # A truthy string or a RandomState would otherwise reach the first batch
    # as an AttributeError, or pick an order silently.
    check_bool(shuffle, "shuffle")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    if rng is None:
        raise ValueError("shuffle=True needs a numpy.random.Generator (rng)")
    return rng.permutation(n).astype(np.int64, copy=False)


def batch_indices(n: int, batch_size: int | None = None, shuffle: bool = False,
                  rng: np.random.Generator | None = None) -> Iterator[NDArray[np.int64]]:
    """Yield the index array of each batch of one epoch over n rows.

    Parameters
    ----------
    n : int
        The number of rows (>= 0; 0 yields no batch).
    batch_size : int or None
        Rows per batch (the last one shorter when it does not divide ``n``);
        None: one batch of all rows.
    shuffle : bool
        Visit the rows in a fresh permutation drawn from ``rng``, else in order.
    rng : numpy.random.Generator or None
        The generator of the permutation; needed when ``shuffle``.

    Returns
    -------
    iterator of ndarray of int64
        Each batch's row indices.

    Examples
    --------
    >>> [b.tolist() for b in batch_indices(5, 2)]
    [[0, 1], [2, 3], [4]]
    """
    _check_n(n)
    size = check_batch_size(batch_size, n)
    # Checked here, at the call, not at the first batch, as a generator
    # function would.
    order = epoch_order(n, shuffle, rng)
    return (order[start:start + size] for start in range(0, n, size or 1))  # n == 0: no batches
