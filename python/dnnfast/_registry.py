"""The names users type, mirrored from the C++ registries (one table each).

``dnnfast._core.ACTIVATIONS`` and ``dnnfast._core.LOSSES`` are the source of
truth; this module only parses user input against them.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

from . import _core

#: name -> (id, has_param, default_param, per_unit)
ACTIVATION_TABLE = {name: (i, hp, dp, pu) for name, i, hp, dp, pu in _core.ACTIVATIONS}
#: accepted aliases
ACTIVATION_ALIASES = {"logistic": "sigmoid", "linear": "identity"}
#: name -> (id, fused output activation or "")
LOSS_TABLE = {name: (i, fused) for name, i, fused in _core.LOSSES}

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


def activation_names():
    """The activation names (without aliases)."""
    return list(ACTIVATION_TABLE)


def loss_names():
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
    key = ACTIVATION_ALIASES.get(spec.lower(), spec.lower())
    if key not in ACTIVATION_TABLE:
        raise ValueError(f"{where}: unknown activation {spec!r}; known: {', '.join(ACTIVATION_TABLE)}")
    i, has_param, default, per_unit = ACTIVATION_TABLE[key]
    unknown = set(params) - ({"alpha"} if has_param else set())
    if unknown:
        raise ValueError(f"{where}: activation {key!r} takes no parameter(s) {sorted(unknown)}")
    alpha = params.get("alpha", default)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"{where}: alpha of {key!r} must be a finite number, got {alpha!r}")
    return ActivationSpec(key, i, float(alpha), has_param, per_unit)


def resolve_loss(name, where="loss"):
    if not isinstance(name, str):
        raise TypeError(f"{where}: must be a string name, got {type(name).__name__}")
    key = name.lower()
    if key not in LOSS_TABLE:
        raise ValueError(f"{where}: unknown loss {name!r}; known: {', '.join(LOSS_TABLE)}")
    return key
