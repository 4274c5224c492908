"""Numeric guards of training: what happens when a step produces NaN or infinity.

Training is checked once per epoch (L-BFGS: once per evaluation), not per
batch, so the hot loop stays as it is: the epoch's cost and one C++ pass of
``all_finite`` over the parameters. When either is non-finite,
``locate_nonfinite`` names the first layer whose W, b, prelu alpha, or (the
parameters being finite) Z or A on the training rows is non-finite.

``on_nonfinite`` chooses what follows:

- ``"raise"`` (default): the parameters are put back to their values at the
  start of the failing epoch (one copy per epoch is kept for that) and
  :class:`NonFiniteError` is raised, naming the epoch and the layer;
- ``"warn"``: a :class:`NonFiniteWarning` (once per fit) and training goes on
  with the non-finite values;
- ``"ignore"``: nothing is checked; training goes on.
"""
from __future__ import annotations

import math

import numpy as np

from . import _core
from ._validation import check_choice

ON_NONFINITE = ("raise", "warn", "ignore")


class NonFiniteError(ValueError):
    """Training produced NaN or infinity.

    A ValueError, as scikit-learn's "Solver produced non-finite parameter
    weights". Attributes: ``epoch`` (1-based, within the failing call; 0 when
    the parameters were non-finite before training), ``layer`` (1-based, or
    None when no layer could be named) and ``where`` ("W", "b", "alpha", "Z",
    "A" or "cost").

    Parameters
    ----------
    message : str
        What failed and where.
    epoch : int, optional
        Kept as the ``epoch`` attribute.
    layer : int, optional
        Kept as the ``layer`` attribute.
    where : str, optional
        Kept as the ``where`` attribute.
    """

    def __init__(self, message, epoch=None, layer=None, where=None):
        super().__init__(message)
        self.epoch, self.layer, self.where = epoch, layer, where


# Tracebacks and reprs show the public name users import and catch
# (dnnfast.NonFiniteError), not the private module that defines it.
NonFiniteError.__module__ = "dnnfast"


class NonFiniteWarning(RuntimeWarning):
    """Training produced NaN or infinity and ``on_nonfinite="warn"`` let it go on."""


NonFiniteWarning.__module__ = "dnnfast"


def check_on_nonfinite(value, name="on_nonfinite"):
    return check_choice(value, name, ON_NONFINITE)


def _finite(a):
    return _core.all_finite(np.ascontiguousarray(a))


def locate_nonfinite(layout, P, forward=None, X=None, chunk=1024):
    """(layer, where) of the first non-finite value: layer 1-based.

    The parameters of each layer first (W, b, alpha); when all are finite and
    ``forward(P, X_rows) -> (Zs, As)`` is given, the forward pass over X in
    chunks of rows. (None, "cost") when nothing is found (the cost itself
    overflowed)."""
    for l, lay in enumerate(layout, start=1):
        w0, b0, a0 = lay["w_offset"], lay["b_offset"], lay["alpha_offset"]
        if not _finite(P[w0:w0 + lay["m_in"] * lay["m_out"]]):
            return l, "W"
        if not _finite(P[b0:b0 + lay["m_out"]]):
            return l, "b"
        if a0 is not None and not _finite(P[a0:a0 + lay["m_out"]]):
            return l, "alpha"
    if forward is not None and X is not None:
        for i0 in range(0, X.shape[0], chunk):
            Zs, As = forward(P, X[i0:i0 + chunk])
            for l, (Z, A) in enumerate(zip(Zs, As), start=1):
                if not _finite(Z):
                    return l, "Z"
                if not _finite(A):
                    return l, "A"
    return None, "cost"


#: How the core's predict begins its ValueError for a non-finite output from a
#: finite X (bind_network.cpp), which says X or the parameters are too large.
CORE_OUTPUT_OVERFLOW = "predict: the output overflowed"


def parameter_cause(what, layout, P, detail=""):
    """The ValueError naming P's first non-finite value as the cause of ``what``'s
    non-finite result (a weight edited in place, past the setters' checks), or
    None when every parameter is finite."""
    layer, where = locate_nonfinite(layout, P)
    if layer is None:
        return None
    return ValueError(f"{what}: the parameters contain NaN or infinity (first in layer {layer}, {where}{detail})")


def describe(epoch, layer, where, unit="epoch"):
    """The message's location part: 'in epoch 3, first in layer 2 (W)'."""
    at = f"in {unit} {epoch}" if epoch else "before training"
    if layer is None:
        return f"{at}: the cost overflowed (every W, b and activation is finite)"
    return f"{at}, first in layer {layer} ({where})"


def epoch_is_finite(cost, P):
    """The once-per-epoch check: the epoch's cost and every parameter."""
    return math.isfinite(cost) and _core.all_finite(P)
