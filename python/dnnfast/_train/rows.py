"""A sparse X (CSR) as the core reads it: the one place that decides how
the estimators' and Network's calls take a sparse X.

A sparse X of few stored values (at most ``CORE_CSR_MAX_DENSITY`` of its
entries) goes to the core as it is (``core_csr``: its CSR arrays), whose
first layer then multiplies over the stored values only: a text-like X of
20 values a row among 20000 columns costs 20 rows of the first W a row, not
20000 (``Network::sparse_first_layer``). Its results are those of X made
dense to round-off, not bit for bit (the GEMM adds in its own order).

A denser one is made dense a bounded block of rows at a time, where the
GEMM beats the sparse products (BENCHMARKS.md, "Measurements behind the
code": CORE_CSR_MAX_DENSITY): each block is the rows of X made dense in the
order the core takes them, so the core computes on them what it computes on
the rows of X made dense whole, bit for bit: the steps of a chunk of the
epoch's order run on the chunk's rows as a contiguous block (local order
0..k-1), which gives the bits of the same batches gathered from the whole
dense X (the core's gather and its slice of X give the same products;
``bias_by_product`` keeps every bit).
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import cast_finite, check_memory, is_sparse, sparse_values

#: The largest share of stored values (nnz / (rows x columns)) of a sparse X
#: that the core reads as CSR; a denser X is made dense in blocks.
CORE_CSR_MAX_DENSITY = 0.125

_CORE_CSR = {np.dtype(np.float32): _core.Csr32, np.dtype(np.float64): _core.Csr64}


def takes_core_csr(X):
    """Whether the sparse ``X`` goes to the core as CSR (``CORE_CSR_MAX_DENSITY``)."""
    n, m = X.shape
    return n * m > 0 and X.nnz <= CORE_CSR_MAX_DENSITY * (n * m)


def core_csr(X, dtype, name="X"):
    """The sparse ``X`` (checked finite) as the core's CSR (``_core.Csr32`` /
    ``Csr64``) of the model's ``dtype``: its duplicates summed (as X made
    dense sums them; X itself is left as it is), int64 column indices (the
    core keeps its own copy of them, checked), its values cast (a value too
    large for ``dtype`` refused, naming ``name``). The copies' memory is
    checked first."""
    X = X.tocsr()
    dt = np.dtype(dtype)
    int64 = X.indptr.dtype == np.int64 and X.indices.dtype == np.int64
    copies = (X.indptr.size + X.nnz) * (8 if int64 else 16) + (X.nnz * dt.itemsize if X.dtype != dt else 0)
    check_memory(copies, name, lambda: f"its {X.nnz:,} stored values in the core's sparse form")
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return _CORE_CSR[dt](np.ascontiguousarray(X.indptr, dtype=np.int64),
                         np.ascontiguousarray(X.indices, dtype=np.int64),
                         cast_finite(X.data, dt, name), X.shape[1])

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
        #: X as the core's CSR (``core_csr``) where it takes one, else None
        self.core_x = core_csr(self.X, self.dtype, name) if takes_core_csr(self.X) else None

    def core_rows(self, r0, r1):
        """Rows ``r0:r1`` as the core takes them: its CSR of those rows, or
        them made dense (``X[r0:r1]``)."""
        if self.core_x is None:
            return self[r0:r1]
        if (r0, r1) == (0, self.shape[0]):
            return self.core_x
        return core_csr(self.X[r0:r1], self.dtype, self.name)

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
        first), naming X; ``what``: the block's use. Where the core reads X's
        CSR, no use makes rows dense but the search for where a fit went
        non-finite (``locate_nonfinite``, in chunks of ``rows``): at most
        one chunk of ``DENSE_CHUNK_BYTES`` is checked and recorded."""
        rows = min(int(rows), self.shape[0])
        if self.core_x is not None:
            rows = min(rows, self.rows_per_chunk(1))
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
    for a dense X, and with the core's CSR for a SparseRows it reads as
    one; for another SparseRows those rows made dense in order, with their
    targets and weights, and the local indices 0..k-1."""
    if not isinstance(X, SparseRows):
        return X, Y, w, idx
    if X.core_x is not None:
        return X.core_x, Y, w, idx
    return X.take(idx), Y[idx], None if w is None else w[idx], np.arange(idx.shape[0], dtype=np.int64)


def rows_in_dtype(X, dtype, name="X"):
    """X as the fit's rows of ``dtype``: a dense X cast (``cast_finite``), a
    sparse one a SparseRows (read by the core as CSR, or made dense a block
    at a time), or, when it is not read as CSR and all of it made dense is
    no larger than one chunk, dense at once: a block's indexing into the
    CSR cost more than a small partial_fit's steps (the dense rows, and so
    the fit's bits, are the same)."""
    if is_sparse(X):
        itemsize = max(X.dtype.itemsize, np.dtype(dtype).itemsize)
        if takes_core_csr(X) or X.shape[0] * X.shape[1] * itemsize > DENSE_CHUNK_BYTES:
            return SparseRows(X, dtype, name)
        X = X.toarray()
    return cast_finite(X, dtype, name)


def row_block(X, r0, r1):
    """Rows ``r0:r1`` of ``X`` as the core's calls take them: of a dense X,
    its slice (X itself when they are all of it); of a SparseRows, its
    ``core_rows``."""
    if isinstance(X, SparseRows):
        return X.core_rows(r0, r1)
    return X if (r0, r1) == (0, X.shape[0]) else X[r0:r1]


def chunks(n):
    """``(i0, i1)`` of the core's chunks of predict and cost over ``n`` rows
    (``_core.chunk_rows``: at most ``PREDICT_CHUNK_ROWS``, never a last
    chunk of the GEMM's few-row path, which rounds otherwise)."""
    i0 = 0
    while i0 < n:
        i1 = i0 + _core.chunk_rows(i0, n)
        yield i0, i1
        i0 = i1


def predict_rows(core, P, X, check_output=True):
    """``core.predict`` of every row of ``X``: a dense X or the core's CSR
    in one call, a SparseRows that the core reads as CSR as its CSR, any
    other SparseRows made dense a chunk at a time, the core's own chunks
    (``chunks``), so each row's output is that of X made dense, bit for
    bit."""
    if not isinstance(X, SparseRows):
        return core.predict(P, X, check_output)
    if X.core_x is not None:
        return core.predict(P, X.core_x, check_output)
    n = X.shape[0]
    out = None
    for i0, i1 in chunks(n):
        part = core.predict(P, X[i0:i1], check_output)
        if out is None:
            out = np.empty((n, part.shape[1]), dtype=part.dtype)
        out[i0:i1] = part
    return out


def cost_rows(core, P, X, Y):
    """``core.cost`` of every row of ``X`` (as ``predict_rows`` takes X) with
    targets ``Y``: a SparseRows made dense a chunk at a time gives the
    chunks' mean costs weighted by their rows (the cost of X made dense to
    round-off; the core sums its chunks' costs before it divides)."""
    if not isinstance(X, SparseRows):
        return core.cost(P, X, Y)
    if X.core_x is not None:
        return core.cost(P, X.core_x, Y)
    return sum(core.cost(P, X[i0:i1], Y[i0:i1]) * (i1 - i0) for i0, i1 in chunks(X.shape[0])) / X.shape[0]
