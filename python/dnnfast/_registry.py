"""The names users type, mirrored from the C++ registries (one table each).

``dnnfast._core.ACTIVATIONS``, ``LOSSES`` and ``OPTIMIZERS`` are the source of
truth; this module only parses user input against them.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import numbers

import numpy as np

from . import _core

#: name -> (id, has_param, default_param, per_unit)
ACTIVATION_TABLE = {name: (i, hp, dp, pu) for name, i, hp, dp, pu in _core.ACTIVATIONS}
#: accepted aliases
ACTIVATION_ALIASES = {"logistic": "sigmoid", "linear": "identity"}


def activation_key(name):
    """A typed activation name (any case, or an alias) -> its key in ACTIVATION_TABLE, if it has one."""
    key = name.lower()
    return ACTIVATION_ALIASES.get(key, key)
#: name -> (id, fused output activation or "")
LOSS_TABLE = {name: (i, fused) for name, i, fused in _core.LOSSES}
#: The targets each loss is defined for, (low, high) with None for no bound:
#: cce's and bce's are probabilities (one-hot rows, soft labels), Poisson's
#: counts or rates. Outside them the cost is negative or NaN and a fit runs
#: on regardless (bce with y = 5 trained on; poisson with y < 0 ended in a
#: NonFiniteError blaming an overflow).
LOSS_TARGETS = {"cce": (0.0, None), "bce": (0.0, 1.0), "poisson": (0.0, None)}
#: name -> (id, state buffers: 0 none, 1 a velocity, 2 Adam's m, v and step count)
OPTIMIZER_TABLE = {name: (i, nb) for name, i, nb in _core.OPTIMIZERS}
#: The settings of Network.fit each optimizer reads (weight_decay: all of them).
OPTIMIZER_SETTINGS = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
                      "adam": ("beta1", "beta2", "epsilon")}
assert OPTIMIZER_SETTINGS.keys() == OPTIMIZER_TABLE.keys(), "an optimizer without its settings' entry"

LOSS_EPSILON_NOTE = (
    "bce and cce take log of Yhat clipped to [eps, 1 - eps], eps = the dtype's machine epsilon "
    "(float32 1.19e-7, float64 2.22e-16); poisson takes log of, and divides by, Yhat clipped below at the "
    "same eps."
)


@dataclass(frozen=True)
class ActivationSpec:
    name: str
    id: int
    param: float       # the parameter (initial value for prelu); 0.0 when unused
    has_param: bool
    per_unit: bool     # prelu: one trainable alpha per unit


def activation_names() -> list[str]:
    """The activation names (without aliases)."""
    return list(ACTIVATION_TABLE)


def loss_names() -> list[str]:
    """The loss names."""
    return list(LOSS_TABLE)


def parse_activation(spec, where="activations"):
    """``"relu"`` or ``("leaky_relu", {"alpha": 0.2})`` -> ActivationSpec."""
    params = {}
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2 or not isinstance(spec[1], dict):
            raise TypeError(f"{where}: expected a name or (name, {{'alpha': value}}), got {spec!r}")
        spec, params = spec
    if not isinstance(spec, str):
        raise TypeError(f"{where}: activation must be a string name, got {type(spec).__name__}")
    key = activation_key(spec)
    if key not in ACTIVATION_TABLE:
        raise ValueError(f"{where}: unknown activation {spec!r}; known: {', '.join(ACTIVATION_TABLE)}")
    i, has_param, default, per_unit = ACTIVATION_TABLE[key]
    unknown = set(params) - ({"alpha"} if has_param else set())
    if unknown:
        raise ValueError(f"{where}: activation {key!r} takes no parameter(s) {sorted(unknown)}")
    alpha = params.get("alpha", default)
    # numbers.Real: a NumPy scalar (np.float32(0.2), np.int64(1)) is a number too
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
        raise ValueError(f"{where}: alpha of {key!r} must be a finite number, got {alpha!r}")
    return ActivationSpec(key, i, float(alpha), has_param, per_unit)


def check_params_fit_dtype(specs, dtype, where="activations"):
    """Refuse an activation parameter that is not finite in the network's
    dtype (alpha = 1e300 is inf in float32 and would turn outputs into inf
    or NaN without a word)."""
    for i, spec in enumerate(specs):
        with np.errstate(over="ignore"):  # the overflow is what is being asked about
            in_dtype = float(dtype.type(spec.param))
        if spec.has_param and not math.isfinite(in_dtype):
            raise ValueError(f"{where}[{i}]: alpha of {spec.name!r} is {spec.param!r}, which is not finite in "
                             f"{dtype.name} (largest finite value {float(np.finfo(dtype).max):.4g})")


def check_targets(Y, loss, name="Y"):
    """Refuse targets ``Y`` (a float array, checked finite) outside the range
    ``LOSS_TARGETS`` gives the registry loss ``loss``."""
    low, high = LOSS_TARGETS.get(loss, (None, None))
    if Y.size and ((low is not None and Y.min() < low) or (high is not None and Y.max() > high)):
        where = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}]"

        def shown(v):  # :g's six digits showed a target of 1.0000001 as "got 0..1"
            # Compared, and else written (str: its shortest digits), in Y's dtype: a
            # float32 1.1 as a double showed as 1.100000023841858.
            g = f"{float(v):g}"
            return g if Y.dtype.type(g) == v else str(v)
        raise ValueError(f"{name}: the {loss} loss needs targets {where}, got {shown(Y.min())}..{shown(Y.max())}")


def _resolve(name, table, kind, where):
    """A registry name typed by the user (case-insensitive) -> its key in ``table``."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: must be a string name, got {type(name).__name__}")
    key = name.lower()
    if key not in table:
        raise ValueError(f"{where}: unknown {kind} {name!r}; known: {', '.join(table)}")
    return key


def resolve_loss(name, where="loss"):
    return _resolve(name, LOSS_TABLE, "loss", where)


def resolve_optimizer(name, where="optimizer"):
    """An optimizer's name (case-insensitive) -> its registry name."""
    return _resolve(name, OPTIMIZER_TABLE, "optimizer", where)
