"""Input checks shared by the public API: every problem raises ValueError or
TypeError naming the argument, before any array reaches the C++ core."""
from __future__ import annotations

import numbers

import numpy as np

from . import _core


def as_float_array(a, name, dtype, ndim=2):
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is one).

    Accepts bool, integer and floating input; refuses object, string, complex
    and other dtypes rather than coercing them.
    """
    # Fast path (one-row predict, training data already in shape): no
    # conversion, one C++ pass for the finiteness check.
    if (type(a) is np.ndarray and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous
            and a.shape[0] > 0):
        if not _core.all_finite(a):
            raise ValueError(f"{name} contains NaN or infinity")
        return a
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    if arr.ndim != ndim:
        hint = " (use reshape(1, -1) for a single row)" if ndim == 2 and arr.ndim == 1 else ""
        raise ValueError(f"{name} must be {ndim}-D, got an array of shape {arr.shape}{hint}")
    if arr.size == 0 and arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out = np.ascontiguousarray(arr, dtype=dtype)
    # Checked after the conversion, so values too large for the dtype (which
    # become infinite there) are caught too.
    if not all_finite(out):
        raise ValueError(f"{name} contains NaN or infinity (or values too large for {out.dtype})")
    return out


def all_finite(a):
    """True when no element of the float array ``a`` is NaN or infinite (no temporary)."""
    return _core.all_finite(np.ascontiguousarray(a))


def check_positive_int(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value}")
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
