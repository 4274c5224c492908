"""A sparse X (CSR) as the dense rows the core trains on, a bounded block of
rows at a time: the one place where an estimator's fit makes a sparse X
dense (the training steps, lbfgs's blocks, the validation set's blocks).

Each block is the rows of X made dense in the order the core takes them, so
the core computes on them what it computes on the rows of X made dense
whole: the steps of a chunk of the epoch's order run on the chunk's rows as
a contiguous block (local order 0..k-1), which gives the bits of the same
batches gathered from the whole dense X (the core's gather and its slice of
X give the same products; ``bias_by_product`` keeps every bit).
"""
from __future__ import annotations

import numpy as np

from .._validation import cast_finite, check_memory, is_sparse, sparse_values

#: The most bytes of dense rows that the training steps make of a sparse X at
#: a time: whole batches (for small batches, whole windows of the core's,
#: where the driver's chunks fall), at least one.
DENSE_CHUNK_BYTES = 32 << 20


class SparseRows:
    """The CSR matrix ``X`` read as dense rows of ``dtype`` (the model's), a
    block at a time (``take``, and ``X[r0:r1]``): each block a view of one
    reused buffer, valid until the next block is asked for. ``shape``,
    ``dtype`` and ``ndim`` are those of X made dense in ``dtype``."""

    ndim = 2

    def __init__(self, X, dtype, name="X"):
        self.X = X.tocsr()
        self.shape = X.shape
        self.dtype = np.dtype(dtype)
        self.name = name
        self._cast = X.dtype != self.dtype
        if self._cast:
            # As the dense X's cast (cast_finite): a value too large for the
            # model's dtype refused before the fit, not at its block.
            cast_finite(sparse_values(self.X), self.dtype, name)
        self._buf = np.empty((0, X.shape[1]), dtype=self.dtype)
        #: rows made dense at a time that check_memory has let through (locate_nonfinite's chunks)
        self.rows = 1

    def select(self, rows):
        """The rows ``rows`` (an index array) as a SparseRows of their own (the validation set)."""
        return SparseRows(self.X[rows], self.dtype, self.name)

    def rows_per_chunk(self, unit):
        """Rows of the epoch's order that the steps make dense at a time:
        whole units of ``unit`` rows (a batch's, or where batches go in the
        core's windows, a window's: ``LocalSteps.window_rows``) of at most
        ``DENSE_CHUNK_BYTES``, at least one."""
        return unit * max(1, DENSE_CHUNK_BYTES // (unit * self.shape[1] * self.dtype.itemsize))

    def check_memory(self, rows, what):
        """The memory check of ``rows`` rows made dense at a time (and, when X
        is of another dtype than the model's, their values in X's dtype
        first), naming X; ``what``: the block's use."""
        rows = min(int(rows), self.shape[0])
        m = self.shape[1]
        itemsize = self.dtype.itemsize + (self.X.dtype.itemsize if self._cast else 0)
        check_memory(rows * m * itemsize, self.name,
                     lambda: f"{rows:,} of its rows made dense at a time for {what} ({rows * m:,} values of "
                             f"{self.dtype.name})")
        self.rows = max(self.rows, rows)

    def take(self, idx):
        """Rows ``idx`` (int64 indices) of X, dense, in that order."""
        return self._dense(self.X[idx], idx.shape[0])

    def __getitem__(self, key):
        """``X[r0:r1]``: a block of consecutive rows, dense."""
        if not isinstance(key, slice):
            raise TypeError("SparseRows takes a slice of rows (take: an index array)")
        r0, r1, step = key.indices(self.shape[0])
        if step != 1:
            raise ValueError("SparseRows takes consecutive rows")
        r1 = max(r0, r1)
        return self._dense(self.X[r0:r1], r1 - r0)

    def _dense(self, part, k):
        if self._cast:  # as the dense X: made dense in its own dtype, then cast
            return cast_finite(part.toarray(), self.dtype, self.name)
        if self._buf.shape[0] < k:
            self._buf = None  # (given back before the larger one is made)
            self._buf = np.empty((k, self.shape[1]), dtype=self.dtype)
        out = self._buf[:k]
        part.toarray(out=out)  # (zeroes out first)
        return out


def take_rows(X, Y, w, idx):
    """``(X, Y, w, idx)`` for the core's steps on rows ``idx``: as they are
    for a dense X; for a SparseRows those rows made dense in order, with
    their targets and weights, and the local indices 0..k-1."""
    if not isinstance(X, SparseRows):
        return X, Y, w, idx
    return X.take(idx), Y[idx], None if w is None else w[idx], np.arange(idx.shape[0], dtype=np.int64)


def rows_in_dtype(X, dtype, name="X"):
    """X as the fit's rows of ``dtype``: a dense X cast (``cast_finite``), a
    sparse one a SparseRows (made dense a block at a time), or, when all of
    it made dense is no larger than one chunk, dense at once: a block's
    indexing into the CSR cost more than a small partial_fit's steps (the
    dense rows, and so the fit's bits, are the same)."""
    if is_sparse(X):
        itemsize = max(X.dtype.itemsize, np.dtype(dtype).itemsize)
        if X.shape[0] * X.shape[1] * itemsize > DENSE_CHUNK_BYTES:
            return SparseRows(X, dtype, name)
        X = X.toarray()
    return cast_finite(X, dtype, name)
