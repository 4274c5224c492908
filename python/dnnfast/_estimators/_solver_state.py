"""The stochastic solvers' state and the settings it was made with, apart
from the solvers themselves: the model-file codec reads and writes them
without importing what fitting needs (scikit-learn, when installed)."""
from __future__ import annotations


#: The parameters a stochastic solver is made with. scikit-learn's optimizer
#: objects take them when fit makes one and keep them: a partial_fit after
#: set_params(solver=..., momentum=..., beta_1=...) goes on with the solver,
#: momentum, betas, epsilon and schedule the state began with (an Adam state
#: read as a velocity had stepped uphill by momentum^2 times Adam's first
#: moment). They live in the solver state, and its file, for that reason.
SOLVER_SETTINGS = ("solver", "learning_rate", "learning_rate_init", "power_t", "momentum", "nesterovs_momentum",
                   "beta_1", "beta_2", "epsilon")


def solver_settings(est):
    """``SOLVER_SETTINGS`` of the estimator's parameters, as plain Python values."""
    out = {"solver": str(est.solver), "learning_rate": str(est.learning_rate),
           "nesterovs_momentum": bool(est.nesterovs_momentum)}
    out.update((k, float(getattr(est, k))) for k in SOLVER_SETTINGS if k not in out)
    return out


def optimizer_name(settings):
    """The core optimizer (the registry's name) of a solver's settings."""
    if settings["solver"] == "adam":
        return "adam"
    if settings["momentum"] == 0:
        return "sgd"
    return "nesterov" if settings["nesterovs_momentum"] else "momentum"


class SolverState(dict):
    """The stochastic solver's state: ``learning_rate`` (sgd: the schedule's
    current rate; adam: learning_rate_init, from which each step's
    bias-corrected size comes, where scikit-learn's AdamOptimizer keeps its
    last step's), ``state1`` (velocity, or Adam's first moment), ``state2``
    (Adam's second moment, else None), ``t`` (Adam's step count), in the
    core's parameter layout, and ``settings`` (``solver_settings`` when it was
    made). Keys are attributes too, so ``est._optimizer.learning_rate`` reads
    as on scikit-learn's optimizer objects (sgd's the same value)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None
