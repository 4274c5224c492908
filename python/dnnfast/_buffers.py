"""Flat buffers that the core reads in place: parameters and optimizer state.

They start on a 64-byte boundary (a cache line, and one 512-bit vector).
NumPy aligns its data to 16 bytes, so a weight row's vector loads could
straddle two cache lines, and the core reads W in place on its one-row
paths (BENCHMARKS.md, "Measurements behind the code": ALIGN).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

ALIGN = 64  # bytes


def aligned_empty(n: int, dtype: DTypeLike) -> np.ndarray:
    """An uninitialised 1-D array of ``n`` elements whose data starts on an ALIGN-byte
    boundary (for n > 0: NumPy may give an empty view a pointer of its own)."""
    dtype = np.dtype(dtype)
    nbytes = int(n) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype)


def aligned_zeros(n: int, dtype: DTypeLike) -> np.ndarray:
    """``aligned_empty`` filled with zeros."""
    out = aligned_empty(n, dtype)
    out[...] = 0
    return out


def aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is 1-D, contiguous and aligned, else an aligned copy of it."""
    if a.ndim == 1 and a.flags.c_contiguous and a.ctypes.data % ALIGN == 0:
        return a
    out = aligned_empty(a.size, a.dtype)
    out[...] = a.ravel()
    return out
