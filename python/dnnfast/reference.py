"""The yardstick: dnnfast's computation in plain NumPy, written literally from
SPEC sections 2-5.

Every function mirrors a C++ op of the same name and argument order
(``activation_forward``, ``activation_backward``, ``prelu_alpha_backward``,
``loss_forward``, ``loss_backward``, ``output_backward_fused``,
``linear_forward``, ``linear_backward``, ``sgd_update``), and
:class:`Network` mirrors :class:`dnnfast.Network` with the same constructor,
the same initial weights for the same seed, and the same training schedule.
Nothing here is tuned for speed: it is what the tests and the benchmarks
measure dnnfast against.

The softmax derivative is also given as the literal 4-index Jacobian
(:func:`softmax_jacobian`) with the double contraction of the notes
(:func:`softmax_backward_literal`), for small sizes.
"""
from __future__ import annotations

import collections.abc
import math
import numbers
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.floating[Any]]
    #: An activation's parameter: a number, one per unit (prelu), or None for its default.
    Alpha = ArrayLike | None

from ._registry import (LOSS_EPSILON_NOTE, activation_key, check_params_fit_dtype, check_targets,  # noqa: F401
                        parse_activation, resolve_loss)
from ._validation import (as_array, check_bool, check_memory, check_normal, check_positive_float, check_positive_int,
                          make_rng, network_bytes)
from .batching import check_batch_size

__all__ = ["activation_forward", "activation_backward", "prelu_alpha_backward", "loss_forward", "loss_backward",
           "output_backward_fused", "linear_forward", "linear_backward", "sgd_update", "softmax_jacobian",
           "softmax_backward_literal", "forward", "gradients", "Network", "ACTIVATIONS", "DERIVATIVES", "LOSSES",
           "LOSS_GRADIENTS", "LOSS_EPSILON_NOTE"]


# ---------------------------------------------------------------------------
# Argument checks. Written here rather than taken from _validation: the
# functions below run in the tests' inner loops, so they check only types,
# dtypes and shapes (no pass over the data); Network checks its users' data
# for NaN and infinity once, on the way in. Arrays of float32 and float64, the
# dtypes dnnfast computes in, are promoted as NumPy does (unlike the C++ ops,
# which take one dtype): the tests pass float64 copies of float32 data to get
# a more exact yardstick.
# ---------------------------------------------------------------------------

def _float_array(a, name):
    """``a`` as a plain ndarray (a view, no copy), or a TypeError naming
    ``name``. Callers compute with what this returns, never ``a`` itself."""
    # An integer array would be computed in integer (sigmoid of [[1, -1]]
    # came back [[0, 0]]), a list has no dtype to compute in; float16 has a
    # range of its own (exp's clip at 709 let exp(12) overflow), which
    # dnnfast, computing in float32 or float64 only, never meets.
    if not isinstance(a, np.ndarray) or a.dtype.type not in (np.float32, np.float64):  # (either byte order)
        what = f"an array of dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name} must be a NumPy array of dtype float32 or float64, got {what}")
    # A subclass as as_array takes it: np.matrix's * and ** are matrix
    # products, and a masked array's sums leave out its masked entries
    # (refused) while other ops use the values under the mask.
    return as_array(a, name, numeric_kinds="f")


def _matrix(a, name):
    a = _float_array(a, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    return a


def _units(a, name):
    """A matrix of one column per unit of a layer, for the ops that reduce
    over a row's units (softmax, the losses): a row of none has no softmax
    (NumPy's max of nothing raised a message naming no argument) and no mean
    (mse was NaN). dnnfast.Network has no layer of 0 units."""
    a = _matrix(a, name)
    if a.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns: at least one unit per row is needed, got shape {a.shape}")
    return a


def _same_shape(a, name, b, b_name):
    # NumPy would broadcast a (3, 1) Y against a (3, 4) Yhat without a word.
    if a.shape != b.shape:
        raise ValueError(f"{name} has shape {a.shape} but {b_name} has shape {b.shape}")


def _known(name, table, kind, where="name"):
    if not isinstance(name, str):
        raise TypeError(f"{where} must be a string {kind} name, got {type(name).__name__}")
    if name not in table:
        raise ValueError(f"{where}: unknown {kind} {name!r}; known: {', '.join(table)}")


def _real(value, name, dtype):
    """A finite real number that stays finite in ``dtype``, the dtype it is computed in."""
    # np.float32("0.5") parses a string, np.float32(None) is NaN, True is 1.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    # Compared, not converted (np.asarray and isfinite took 4 us, a third of a
    # 64-row output_backward_fused, in the yardstick's every step): every finite
    # float64 stays finite; in float32, what rounds to at least 2^128 is inf.
    if dtype == np.float32 and abs(value) >= _F32_INF_FROM:
        _finite_in(value, name, dtype, value)  # (its message)


#: The least magnitude that rounds to infinity in float32: 2^128 (1 - 2^-25).
_F32_INF_FROM = 3.4028235677973366e38


def _finite_in(a, name, dtype, given):
    """``a`` (numbers) in ``dtype``, or a ValueError naming ``name`` and showing
    ``given`` if a value is not finite there: 1e300 is inf in float32, and a NaN
    or infinite alpha made NaN outputs."""
    with np.errstate(over="ignore"):  # the overflow is what is being asked about
        out = np.asarray(a, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite in {dtype.name} (largest finite value "
                         f"{float(np.finfo(dtype).max):.4g}), got {given!r:.80}")
    return out


def _row_weights(w, n):
    if w is None:
        return None
    w = _float_array(w, "w")
    if w.shape != (n,):
        raise ValueError(f"w must hold one weight per row, shape ({n},), got shape {w.shape}")
    return w


# ---------------------------------------------------------------------------
# Activations (SPEC section 3): sigma and sigma', one table each.
# ---------------------------------------------------------------------------

def _sigmoid(z):
    # exp only ever of a non-positive number: no overflow for any z.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def _softmax(z):
    # z - max is <= 0, so exp never overflows; it may be below -finfo.max
    # (a row holding both +max and -max), which is -inf, whose exp is the
    # right answer, 0.
    with np.errstate(over="ignore"):
        e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _arctan_derivative(z):
    # 1 / (1 + z^2), written as r^2 / (1 + r^2) with r = 1/z where |z| > 1,
    # so z^2 never overflows (it tends to 0 for huge |z|, as it should).
    big = np.abs(z) > 1
    r = 1 / np.where(big, z, 1)
    small = np.where(big, 0, z)
    return np.where(big, r * r / (1 + r * r), 1 / (1 + small * small)).astype(z.dtype, copy=False)


ACTIVATIONS: dict[str, Callable[[Any, Any], FloatArray]] = {
    "identity": lambda z, a: z.copy(),
    "relu": lambda z, a: np.maximum(z, 0),
    "leaky_relu": lambda z, a: np.where(z > 0, z, a * z),
    "prelu": lambda z, a: np.where(z > 0, z, a * z),
    "elu": lambda z, a: np.where(z >= 0, z, a * np.expm1(np.minimum(z, 0))),
    "sigmoid": lambda z, a: _sigmoid(z),
    "tanh": lambda z, a: np.tanh(z),
    "arctan": lambda z, a: np.arctan(z),
    "softplus": lambda z, a: np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))),
    "binary_step": lambda z, a: (z >= 0).astype(z.dtype),
    "softmax": lambda z, a: _softmax(z),
    # clipped where e^z would overflow, as the C++ ExpAct: 88 (float32), 709 (float64), the only dtypes taken
    "exp": lambda z, a: np.exp(np.minimum(z, 88 if z.dtype == np.float32 else 709)),
}

# sigma'(Z) for the element-wise activations, from Z and the saved output A.
DERIVATIVES: dict[str, Callable[[Any, Any, Any], FloatArray]] = {
    "identity": lambda z, A, a: np.ones_like(z),
    "relu": lambda z, A, a: (z > 0).astype(z.dtype),
    "leaky_relu": lambda z, A, a: np.where(z > 0, 1, a).astype(z.dtype),
    "prelu": lambda z, A, a: np.where(z > 0, 1, a).astype(z.dtype),
    "elu": lambda z, A, a: np.where(z >= 0, 1, A + a).astype(z.dtype),
    "sigmoid": lambda z, A, a: A * (1 - A),
    "tanh": lambda z, A, a: 1 - A * A,
    "arctan": lambda z, A, a: _arctan_derivative(z),
    "softplus": lambda z, A, a: _sigmoid(z),
    "binary_step": lambda z, A, a: np.zeros_like(z),
    "exp": lambda z, A, a: A.copy(),
}


def _activation_name(name):
    """A name as Network takes it (any case, or an alias such as "logistic") -> its key in ACTIVATIONS."""
    key = activation_key(name) if isinstance(name, str) else name
    if isinstance(key, str) and key in ACTIVATIONS:
        return key
    _known(name, ACTIVATIONS, "activation")  # raises, naming the name as given
    return key


def _alpha(name, alpha, Z):
    dtype = Z.dtype
    if alpha is None:  # the activation's default (SPEC section 3: leaky_relu 0.1, elu 1.0, prelu 0.25), as Network's
        return dtype.type(parse_activation(name).param)
    if isinstance(alpha, (bool, np.bool_, str, bytes)):
        raise TypeError(f"alpha must be a number or one per unit, got {alpha!r}")
    a = as_array(alpha, "alpha", numeric_kinds="iuf")  # a masked alpha's hidden values refused
    # One per unit, or one for all: a vector of another length would broadcast or fail in the op.
    if a.ndim != 0 and (Z.ndim == 0 or a.shape != (Z.shape[-1],)):
        raise ValueError(f"alpha must be a scalar or one per unit ({Z.shape[-1:]}), got shape {a.shape}")
    if a.ndim == 0:  # one alpha: compared as a scale is (_real), not converted, unless it is refused
        v = float(a)
        if math.isfinite(v) and not (dtype == np.float32 and abs(v) >= _F32_INF_FROM):
            return np.asarray(a, dtype=dtype)
    return _finite_in(a, "alpha", dtype, alpha)


def activation_forward(name: str, Z: FloatArray, alpha: Alpha = None) -> FloatArray:
    """A = sigma(Z).

    Parameters
    ----------
    name : str
        The activation (any case, or an alias such as "logistic"), as Network takes it.
    Z : ndarray
        Pre-activations, float32 or float64 (2-D with at least one column for softmax).
    alpha : float, array of shape (m,), or None
        The activation's parameter: a scalar, or one per unit (prelu); None:
        its default (SPEC section 3). Finite in Z's dtype.
    """
    name = _activation_name(name)
    Z = _units(Z, "Z") if name == "softmax" else _float_array(Z, "Z")  # softmax normalises rows
    return ACTIVATIONS[name](Z, _alpha(name, alpha, Z)).astype(Z.dtype, copy=False)


def softmax_jacobian(A: FloatArray) -> FloatArray:
    """The 4-index tensor J[i,j,u,v] = dA[i,j]/dZ[u,v] of SPEC section 3.

    Parameters
    ----------
    A : ndarray, shape (n, m)
        Softmax outputs. J has n * m * n * m entries: for small sizes.
    """
    A = _matrix(A, "A")
    n, m = A.shape
    J = np.zeros((n, m, n, m), dtype=A.dtype)
    for i in range(n):
        for j in range(m):
            for v in range(m):
                J[i, j, i, v] = A[i, j] * (1 - A[i, j]) if j == v else -A[i, j] * A[i, v]
    return J


def softmax_backward_literal(A: FloatArray, dA: FloatArray) -> FloatArray:
    """dZ = dA : sigma'(Z), the double contraction over (i, j) of the notes.

    Parameters
    ----------
    A : ndarray, shape (n, m)
        Softmax outputs.
    dA : ndarray, shape (n, m)
        The gradient with respect to A.
    """
    dA, A = _float_array(dA, "dA"), _matrix(A, "A")
    _same_shape(dA, "dA", A, "A")
    return np.tensordot(dA, softmax_jacobian(A), axes=([0, 1], [0, 1]))


def activation_backward(name: str, Z: FloatArray, A: FloatArray, dA: FloatArray,
                        alpha: Alpha = None) -> FloatArray:
    """dZ = dA : sigma'(Z): element-wise product, or the softmax Jacobian-vector product.

    Parameters
    ----------
    name : str
        The activation (any case, or an alias such as "logistic"), as Network takes it.
    Z, A : ndarray
        Pre-activations and the activation's output A = sigma(Z), of one shape.
    dA : ndarray
        The gradient with respect to A, of the same shape.
    alpha : float, array of shape (m,), or None
        The activation's parameter: a scalar, or one per unit (prelu); None:
        its default (SPEC section 3). Finite in Z's dtype.
    """
    name = _activation_name(name)
    check = _units if name == "softmax" else _float_array
    Z, A, dA = check(Z, "Z"), check(A, "A"), check(dA, "dA")
    _same_shape(A, "A", Z, "Z")
    _same_shape(dA, "dA", Z, "Z")
    if name == "softmax":
        return A * (dA - np.sum(dA * A, axis=1, keepdims=True))
    return dA * DERIVATIVES[name](Z, A, _alpha(name, alpha, Z))


def prelu_alpha_backward(Z: FloatArray, dA: FloatArray) -> FloatArray:
    """dC/dalpha[j] = sum_i dA[i,j] * (Z[i,j] if Z[i,j] <= 0 else 0).

    Parameters
    ----------
    Z : ndarray, shape (n, m)
        prelu's pre-activations.
    dA : ndarray, shape (n, m)
        The gradient with respect to its output.
    """
    dA, Z = _matrix(dA, "dA"), _matrix(Z, "Z")
    _same_shape(dA, "dA", Z, "Z")
    return np.sum(dA * np.where(Z <= 0, Z, 0), axis=0)


# ---------------------------------------------------------------------------
# Losses (SPEC section 4): J and dJ/dYhat. Logarithms and the bce / cce
# divisions take Yhat clipped to [eps, 1 - eps], eps = the dtype's epsilon;
# poisson's (half the Poisson deviance) take Yhat clipped below at the same eps.
# ---------------------------------------------------------------------------

def _clip(P):
    eps = np.finfo(P.dtype).eps
    return np.clip(P, eps, 1 - eps)


def _clip_positive(P):
    return np.maximum(P, np.finfo(P.dtype).eps)


def _poisson(Y, P):
    # y ln(y / Yhat) with 0 ln 0 = 0
    safe = np.where(Y != 0, Y, 1)
    return np.sum(np.where(Y != 0, Y * np.log(safe / _clip_positive(P)), 0) - Y + P, axis=1)


LOSSES: dict[str, Callable[[Any, Any], FloatArray]] = {
    "sse": lambda Y, P: 0.5 * np.sum((P - Y) ** 2, axis=1),
    "mse": lambda Y, P: np.sum((P - Y) ** 2, axis=1) / Y.shape[1],
    "bce": lambda Y, P: -np.sum(Y * np.log(_clip(P)) + (1 - Y) * np.log1p(-_clip(P)), axis=1),
    "cce": lambda Y, P: -np.sum(np.where(Y != 0, Y * np.log(_clip(P)), 0), axis=1),
    "poisson": _poisson,
}

# scale * dJ/dYhat, the scale applied first (as the C++ loss does) so that a
# representable result never overflows on the way (2 (Yhat - Y) near finfo.max).
LOSS_GRADIENTS: dict[str, Callable[[Any, Any, Any], FloatArray]] = {
    "sse": lambda Y, P, s: s * (P - Y),
    "mse": lambda Y, P, s: (2 * s / Y.shape[1]) * (P - Y),
    "bce": lambda Y, P, s: s * (_clip(P) - Y) / (_clip(P) * (1 - _clip(P))),
    "cce": lambda Y, P, s: -s * Y / _clip(P),
    "poisson": lambda Y, P, s: s * (1 - Y / _clip_positive(P)),
}


def _loss_args(Y, Yhat, w):
    """(Y, Yhat, w) as plain arrays of matching shapes."""
    Y, Yhat = _float_array(Y, "Y"), _units(Yhat, "Yhat")
    _same_shape(Y, "Y", Yhat, "Yhat")
    return Y, Yhat, _row_weights(w, Yhat.shape[0])


def loss_forward(name: str, Y: FloatArray, Yhat: FloatArray, w: FloatArray | None = None) -> float:
    """J(Y, Yhat) = sum over rows of w_i J_i (a float, accumulated in float64).

    Parameters
    ----------
    name : str
        The loss (any case), as Network takes it.
    Y, Yhat : ndarray, shape (n, m)
        Targets and predictions, float32 or float64.
    w : ndarray of shape (n,) or None
        Row weights; None: all 1.
    """
    name = resolve_loss(name, "name")  # any case, as Network takes it
    Y, Yhat, w = _loss_args(Y, Yhat, w)
    # Clip in Yhat's own dtype first (eps = that dtype's epsilon, as the C++
    # loss does); the float64 clip inside LOSSES is then a no-op.
    P = _clip(Yhat) if name in ("bce", "cce") else _clip_positive(Yhat) if name == "poisson" else Yhat
    per_row = LOSSES[name](Y.astype(np.float64), P.astype(np.float64))
    return float(np.sum(per_row if w is None else w * per_row))


def loss_backward(name: str, Y: FloatArray, Yhat: FloatArray, scale: float,
                  w: FloatArray | None = None) -> FloatArray:
    """scale * w_i * dJ/dYhat (scale = 1/n gives dC/dYhat).

    Parameters
    ----------
    name : str
        The loss (any case), as Network takes it.
    Y, Yhat : ndarray, shape (n, m)
        Targets and predictions, float32 or float64.
    scale : float
        Multiplies the gradient (1/n gives dC/dYhat); finite in Yhat's dtype.
    w : ndarray of shape (n,) or None
        Row weights; None: all 1.
    """
    name = resolve_loss(name, "name")
    Y, Yhat, w = _loss_args(Y, Yhat, w)
    _real(scale, "scale", Yhat.dtype)
    g = LOSS_GRADIENTS[name](Y, Yhat, Yhat.dtype.type(scale))
    return (g if w is None else g * w[:, None]).astype(Yhat.dtype, copy=False)


def output_backward_fused(Y: FloatArray, Yhat: FloatArray, scale: float, w: FloatArray | None = None,
                          row_sum: bool = False) -> FloatArray:
    """softmax + cce, sigmoid + bce and exp + poisson: dC/dZ[L] = scale * w_i * (Yhat - Y);
    softmax + cce (``row_sum``): scale * w_i * (Yhat * sum_j Y[i, j] - Y), the
    softmax's Jacobian applied to cce's gradient for any targets (Yhat - Y
    where each row of Y sums to 1).

    Parameters
    ----------
    Y, Yhat : ndarray, shape (n, m)
        Targets and the output activation's values.
    scale : float
        Multiplies the gradient (1/n gives dC/dYhat); finite in Yhat's dtype.
    w : ndarray of shape (n,) or None
        Row weights; None: all 1.
    row_sum : bool
        The softmax + cce form, for rows of Y that need not sum to 1.
    """
    Y, Yhat, w = _loss_args(Y, Yhat, w)
    _real(scale, "scale", Yhat.dtype)
    check_bool(row_sum, "row_sum")
    g = scale * (Yhat * Y.sum(axis=1, keepdims=True) - Y) if row_sum else scale * (Yhat - Y)
    return (g if w is None else g * w[:, None]).astype(Yhat.dtype, copy=False)


# ---------------------------------------------------------------------------
# The linear layer (SPEC sections 2 and 5) and the update.
# ---------------------------------------------------------------------------

def linear_forward(A: FloatArray, W: FloatArray, b: FloatArray) -> FloatArray:
    """Z = A W + b (b broadcast to every row).

    Parameters
    ----------
    A : ndarray, shape (n, k)
        The layer's input.
    W : ndarray, shape (k, m)
        Weights.
    b : ndarray, shape (1, m)
        Biases.
    """
    A, W, b = _matrix(A, "A"), _matrix(W, "W"), _float_array(b, "b")
    if A.shape[1] != W.shape[0]:
        raise ValueError(f"A has {A.shape[1]} columns but W has {W.shape[0]} rows")
    # b is one row: a (n, m) b, or a (1, 1) one, would broadcast.
    if b.shape != (1, W.shape[1]):
        raise ValueError(f"b must have shape (1, {W.shape[1]}) (one row, W's columns), got shape {b.shape}")
    return A @ W + b


def linear_backward(A: FloatArray, W: FloatArray, dZ: FloatArray,
                    need_dA: bool = True) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """dW = A^T dZ, db = 1^T dZ, dA = dZ W^T (None when not ``need_dA``: the
    first layer's, the input's gradient, which training does not use).

    Parameters
    ----------
    A : ndarray, shape (n, k)
        The layer's input.
    W : ndarray, shape (k, m)
        Weights.
    dZ : ndarray, shape (n, m)
        The gradient with respect to Z = A W + b.
    need_dA : bool
        Form dA.
    """
    A, W, dZ = _matrix(A, "A"), _matrix(W, "W"), _matrix(dZ, "dZ")
    check_bool(need_dA, "need_dA")
    if dZ.shape != (A.shape[0], W.shape[1]) or A.shape[1] != W.shape[0]:
        raise ValueError(f"A {A.shape}, W {W.shape} and dZ {dZ.shape} do not fit A W = Z")
    return A.T @ dZ, dZ.sum(axis=0, keepdims=True), dZ @ W.T if need_dA else None


def sgd_update(params: FloatArray, grads: FloatArray, learning_rate: float) -> None:
    """In place: params -= learning_rate * grads.

    Parameters
    ----------
    params : ndarray
        Updated in place: writeable, float32 or float64.
    grads : ndarray
        Of params' shape and dtype.
    learning_rate : float in (0, 1]
        At least the smallest normal number of params' dtype (float32's
        1.17549e-38), which would make it 0 there.
    """
    # params as a plain view of its own memory: the update is in place.
    grads, params = _float_array(grads, "grads"), _float_array(params, "params")
    _same_shape(grads, "grads", params, "params")
    if not params.flags.writeable:  # NumPy's "output array is read-only" named no argument
        raise ValueError("params is read-only: sgd_update updates it in place")
    # In place, so in params' dtype: float64 grads were cast into float32 params
    # without a word (1e300 became -inf there); float32 ones into float64 lose nothing.
    if not np.can_cast(grads.dtype, params.dtype, "safe"):
        raise TypeError(f"grads has dtype {grads.dtype} but params has {params.dtype}; the update is in place, "
                        f"in params' dtype: pass grads.astype(params.dtype) if its values fit")
    lr = check_positive_float(learning_rate, "learning_rate", upper=1.0)  # SPEC section 5: 0 < alpha <= 1
    check_normal(lr, "learning_rate", params.dtype, "{} params")  # as dnnfast.Network.fit: 0 in params' dtype
    params -= params.dtype.type(learning_rate) * grads


# ---------------------------------------------------------------------------
# The whole network.
# ---------------------------------------------------------------------------

def _check_layers(weights, biases, activations):
    # zip would drop the layers past the shortest list without a word.
    for seq, seq_name in ((weights, "weights"), (biases, "biases"), (activations, "activations")):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{seq_name} must be a list, one entry per layer, got {type(seq).__name__}")
    if not len(weights) == len(biases) == len(activations) or not weights:
        raise ValueError(f"weights, biases and activations need one entry per layer each, got "
                         f"{len(weights)}, {len(biases)} and {len(activations)}")
    for l, act in enumerate(activations):
        if not isinstance(act, (list, tuple)) or len(act) != 2:
            raise TypeError(f"activations[{l}] must be a (name, alpha) pair, got {act!r:.80}")


def forward(weights: Sequence[FloatArray], biases: Sequence[FloatArray], activations: Sequence[tuple[str, Alpha]],
            X: FloatArray) -> tuple[list[FloatArray], list[FloatArray]]:
    """Zs[l], As[l] for l = 1..L (As[0] = X is prepended).

    Parameters
    ----------
    weights, biases : list of ndarray
        W[l] of shape (m[l-1], m[l]) and b[l] of shape (1, m[l]), one per layer.
    activations : list of (str, alpha)
        One ``(name, alpha)`` per layer, as :func:`activation_forward` takes them.
    X : ndarray, shape (n, m[0])
        The input rows.
    """
    _check_layers(weights, biases, activations)
    X = _matrix(X, "X")
    Zs, As = [], [X]
    for W, b, (name, alpha) in zip(weights, biases, activations):
        Z = linear_forward(As[-1], W, b)
        Zs.append(Z)
        As.append(activation_forward(name, Z, alpha))
    return Zs, As


def gradients(weights: Sequence[FloatArray], biases: Sequence[FloatArray], activations: Sequence[tuple[str, Alpha]],
              loss: str, X: FloatArray, Y: FloatArray,
              fused: bool = True) -> tuple[float, list[FloatArray], list[FloatArray], list[FloatArray | None]]:
    """(cost, dWs, dbs, dalphas): dalphas[l] is the prelu alpha gradient or None.

    Parameters
    ----------
    weights, biases : list of ndarray
        W[l] of shape (m[l-1], m[l]) and b[l] of shape (1, m[l]), one per layer.
    activations : list of (str, alpha)
        One ``(name, alpha)`` per layer, as :func:`activation_forward` takes them.
    loss : str
        The loss (any case).
    X : ndarray, shape (n, m[0])
        The input rows (at least one).
    Y : ndarray, shape (n, m[L])
        The targets.
    fused : bool
        Use the fused output gradient for softmax + cce, sigmoid + bce and exp + poisson.
    """
    loss = resolve_loss(loss)
    check_bool(fused, "fused")
    X = _matrix(X, "X")
    if X.shape[0] == 0:
        raise ValueError("X is empty (0 rows)")
    Zs, As = forward(weights, biases, activations, X)
    n = X.shape[0]
    Yhat = As[-1]
    cost = loss_forward(loss, Y, Yhat) / n
    out_name, out_alpha = activations[-1]
    out_name = _activation_name(out_name)  # "Softmax" is softmax: fused, as Network's
    L = len(weights)
    # Filled from the last layer down.
    dWs: list[Any] = [None] * L
    dbs: list[Any] = [None] * L
    dalphas: list[FloatArray | None] = [None] * L
    if fused and (loss, out_name) in (("cce", "softmax"), ("bce", "sigmoid"), ("poisson", "exp")):
        dZ = output_backward_fused(Y, Yhat, 1.0 / n, row_sum=loss == "cce")
    else:
        dA = loss_backward(loss, Y, Yhat, 1.0 / n)
        if out_name == "prelu":
            dalphas[-1] = prelu_alpha_backward(Zs[-1], dA)
        dZ = activation_backward(out_name, Zs[-1], Yhat, dA, out_alpha)
    for l in range(L - 1, -1, -1):
        # Not dA[0], the input's gradient: nothing uses it, and dnnfast does not
        # form it either (the benchmarks count the same work for both).
        dWs[l], dbs[l], dA_prev = linear_backward(As[l], weights[l], dZ, need_dA=l > 0)
        if dA_prev is None:  # l == 0
            break
        name, alpha = activations[l - 1]
        name = _activation_name(name)
        if name == "prelu":
            dalphas[l - 1] = prelu_alpha_backward(Zs[l - 1], dA_prev)
        dZ = activation_backward(name, Zs[l - 1], As[l], dA_prev, alpha)
    return cost, dWs, dbs, dalphas


def _initial_parameters(sizes, specs, dtype, rng, init):
    """Glorot & Bengio (2010) uniform weights, U(-r, r) with
    r = sqrt(6 / (fan_in + fan_out)) (``init="he"``: r = sqrt(6 / fan_in)),
    drawn layer by layer from ``rng``; zero biases; prelu alphas at their
    initial value."""
    if init not in ("glorot", "he"):
        raise ValueError(f"init must be 'glorot' or 'he', got {init!r}")
    weights, biases, alphas = [], [], []
    for l in range(1, len(sizes)):
        fan_in, fan_out = sizes[l - 1], sizes[l]
        r = math.sqrt(6.0 / (fan_in + fan_out if init == "glorot" else fan_in))
        weights.append(np.asarray(rng.uniform(-r, r, size=(fan_in, fan_out)), dtype=dtype))
        biases.append(np.zeros((1, fan_out), dtype=dtype))
        spec = specs[l - 1]
        alphas.append(np.full(fan_out, spec.param, dtype=dtype) if spec.per_unit else None)
    return weights, biases, alphas


class Network:
    """dnnfast.Network in plain NumPy: same constructor, same initial
    parameters for the same seed, same batches, same updates.

    Parameters
    ----------
    sizes : list of int
        Layer widths ``[m_x, m_h[1], ..., m_y]``.
    activations : str, (str, dict) or list of them
        One per layer, as :class:`dnnfast.Network` takes them.
    loss : {"sse", "mse", "bce", "cce", "poisson"}
    dtype : {"float32", "float64"}
    seed : int, numpy.random.Generator or None
        Seeds the generator of the initial weights and of the shuffling.
    init : {"glorot", "he"}
    fused : bool
        Use the fused output gradient, as :class:`dnnfast.Network`.
    """

    def __init__(self, sizes: Sequence[int], activations: Any, loss: str = "cce", dtype: Any = "float32",
                 seed: Any = None, init: str = "glorot", fused: bool = True) -> None:
        # Its own checks and initialisation, written from the definitions, so
        # that a test comparing the two classes compares two implementations.
        # int() took 2.7 for 2, True for 1 and "23" for [2, 3]; a set or a
        # dict has no layer order.
        if (isinstance(sizes, (str, bytes, collections.abc.Set, collections.abc.Mapping))
                or not hasattr(sizes, "__len__")):
            raise TypeError(f"sizes must be a list of layer sizes, got {sizes!r:.80}")
        for s in sizes:
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
                raise TypeError(f"sizes must hold integers, got {s!r}")
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes: at least two positive layer sizes, got {sizes}")
        if isinstance(activations, str) or (isinstance(activations, tuple) and len(activations) == 2
                                            and isinstance(activations[1], dict)):
            activations = [activations] * (len(sizes) - 1)
        if not isinstance(activations, (list, tuple)):
            raise TypeError(f"activations must be a name, a (name, params) pair or a list of them, one per "
                            f"layer, got {activations!r:.80}")
        if len(activations) != len(sizes) - 1:
            raise ValueError(f"activations: one per layer ({len(sizes) - 1}), got {len(activations)}")
        self.sizes = sizes
        self._acts = [parse_activation(a, f"activations[{i}]") for i, a in enumerate(activations)]
        self.loss = resolve_loss(loss)
        # np.dtype(None) is float64.
        if dtype is None or not isinstance(dtype, (str, type, np.dtype)):
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
        try:
            np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if str(np.dtype(dtype)) not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        # Network's checks, so that neither class computes from what the other refuses
        # (alpha = 1e300 is inf in float32: outputs of -inf).
        check_params_fit_dtype(self._acts, self.dtype)
        self.fused = check_bool(fused, "fused")
        p_bytes, _ = network_bytes(self.sizes, self.dtype.itemsize)
        check_memory(3 * p_bytes, "sizes", f"a network of {p_bytes // self.dtype.itemsize:,} parameters")
        self._rng = make_rng(seed, "seed")
        self.weights, self.biases, alphas = _initial_parameters(self.sizes, self._acts, self.dtype, self._rng, init)
        # Activation parameters: prelu's trainable vector, else the scalar.
        self.alphas: list[Any] = [alphas[l] if alphas[l] is not None else (None if not spec.has_param else spec.param)
                       for l, spec in enumerate(self._acts)]

    def _activations(self):
        return [(spec.name, self.alphas[l]) for l, spec in enumerate(self._acts)]

    def _finite(self, a, name):
        # After the conversion, so that values too large for the dtype count too.
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinity (or values too large for {a.dtype})")
        return a

    def _check_X(self, X: Any) -> FloatArray:
        """X checked and converted to the network's dtype."""
        X = as_array(X, "X")
        if X.ndim != 2:
            hint = " (use reshape(1, -1) for a single row)" if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D, got an array of shape {X.shape}{hint}")
        if X.shape[0] == 0:
            raise ValueError("X is empty (0 rows)")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X has {X.shape[1]} columns but the network takes {self.sizes[0]} inputs")
        with np.errstate(over="ignore"):
            return self._finite(np.ascontiguousarray(X, dtype=self.dtype), "X")

    def _prepare(self, X: Any, Y: Any) -> tuple[FloatArray, FloatArray]:
        """(X, Y) checked and converted to the network's dtype."""
        X = self._check_X(X)
        n, m = X.shape[0], self.sizes[-1]
        Y = as_array(Y, "Y")
        if Y.ndim not in (1, 2):
            raise ValueError(f"Y must be 1-D or 2-D, got an array of shape {Y.shape}")
        if Y.shape[0] != n:
            raise ValueError(f"Y has {Y.shape[0]} rows but X has {n}")
        if Y.ndim == 1 and self.loss == "cce":
            # Class labels, taken as indices: -1 would be the last class, 2.7 class 2.
            if Y.dtype.kind == "b":
                raise TypeError("Y: class labels must be integers, got dtype bool")
            if Y.dtype.kind == "f" and not (np.isfinite(Y) & (Y == np.floor(Y))).all():
                raise ValueError("Y: class labels must be whole numbers")
            if Y.min() < 0 or Y.max() >= m:
                raise ValueError(f"Y: class labels must lie in [0, {m}), got {Y.min()}..{Y.max()}")
            Y = np.eye(self.sizes[-1], dtype=self.dtype)[Y.astype(np.int64)]
        Y = Y.reshape(len(Y), -1)
        if Y.shape[1] != m:
            raise ValueError(f"Y has {Y.shape[1]} columns but the network has {m} outputs")
        with np.errstate(over="ignore"):
            Y = self._finite(np.ascontiguousarray(Y, dtype=self.dtype), "Y")
        # Outside its loss's targets (cce's Y < 0, bce's Y = 5) a cost is negative or NaN.
        check_targets(Y, self.loss)
        return X, Y

    def forward(self, X: ArrayLike) -> tuple[list[FloatArray], list[FloatArray]]:
        """``(Zs, As)`` of SPEC section 2: ``Zs[l-1] = Z[l]``, ``As[0] = X``, ``As[l] = A[l]``.

        Parameters
        ----------
        X : array-like, shape (n, m_x)
            The input rows.
        """
        X = self._check_X(X)
        Zs, As = forward(self.weights, self.biases, self._activations(), X)
        return Zs, As

    def predict(self, X: ArrayLike) -> FloatArray:
        """Yhat = A[L].

        Parameters
        ----------
        X : array-like, shape (n, m_x)
            The input rows.
        """
        return self.forward(X)[1][-1]

    def cost(self, X: ArrayLike, Y: ArrayLike) -> float:
        """C = J(Y, Yhat) / n.

        Parameters
        ----------
        X : array-like, shape (n, m_x)
            The input rows.
        Y : array-like, shape (n, m_y)
            The targets (for ``cce``, one-hot rows or class labels of shape (n,)).
        """
        X, Y = self._prepare(X, Y)
        return loss_forward(self.loss, Y, self.predict(X)) / X.shape[0]

    def gradients(self, X: ArrayLike, Y: ArrayLike) -> tuple[list[FloatArray], list[FloatArray]]:
        """``(dWs, dbs)``: dC/dW[l] and dC/db[l] for each layer (SPEC section 5).

        Parameters
        ----------
        X : array-like, shape (n, m_x)
            The input rows.
        Y : array-like, shape (n, m_y)
            The targets (for ``cce``, one-hot rows or class labels of shape (n,)).
        """
        X, Y = self._prepare(X, Y)
        _, dWs, dbs, _ = gradients(self.weights, self.biases, self._activations(), self.loss, X, Y, self.fused)
        return dWs, dbs

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int = 1, batch_size: int | None = None,
            learning_rate: float = 0.01, shuffle: bool = False, seed: Any = None) -> dict[str, list[float]]:
        """Plain gradient descent with the driver's schedule (SPEC section 6);
        returns ``{"cost": [the mean cost of each epoch's batches]}``.

        Parameters
        ----------
        X : array-like, shape (n, m_x)
            The input rows.
        Y : array-like, shape (n, m_y)
            The targets (for ``cce``, one-hot rows or class labels of shape (n,)).
        epochs : int >= 0
        batch_size : int or None
            None: one batch of all rows; k: blocks of k rows, the last one shorter.
        learning_rate : float in (0, 1]
            At least the smallest normal number of the network's dtype.
        shuffle : bool
            A fresh permutation of the rows each epoch.
        seed : int, numpy.random.Generator or None
            A generator of its own for the shuffling; None: the network's.
        """
        # Checked before anything runs: a negative count ran no epoch and True one, and
        # batch_size and shuffle would otherwise be seen only in the first epoch.
        check_positive_int(epochs, "epochs", allow_zero=True)
        lr = check_positive_float(learning_rate, "learning_rate", upper=1.0)  # SPEC section 5, as dnnfast.Network.fit
        check_normal(lr, "learning_rate", self.dtype)  # before any epoch (sgd_update would refuse it at the first step)
        check_batch_size(batch_size)
        check_bool(shuffle, "shuffle")
        X, Y = self._prepare(X, Y)
        rng = self._rng if seed is None else make_rng(seed, "seed")
        n = X.shape[0]
        size = n if batch_size is None else min(batch_size, n)
        history = []
        for _ in range(epochs):
            total = 0.0
            # SPEC section 6 written out here, not taken from dnnfast.batching,
            # whose order the driver uses: rows in order, or a fresh
            # permutation each epoch; blocks of `size`, the last one shorter.
            order = rng.permutation(n) if shuffle else np.arange(n)
            for start in range(0, n, max(size, 1)):
                idx = order[start:start + size]
                Xb, Yb = X[idx], Y[idx]
                c, dWs, dbs, dalphas = gradients(self.weights, self.biases, self._activations(), self.loss, Xb,
                                                     Yb, self.fused)
                for l in range(len(self.weights)):
                    sgd_update(self.weights[l], dWs[l], learning_rate)
                    sgd_update(self.biases[l], dbs[l], learning_rate)
                    dalpha = dalphas[l]
                    if dalpha is not None:
                        sgd_update(self.alphas[l], dalpha, learning_rate)
                total += c * len(idx)
            history.append(total / X.shape[0])
        return {"cost": history}
