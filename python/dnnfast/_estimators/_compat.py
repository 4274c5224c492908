"""scikit-learn when it is installed, small stand-ins when it is not.

The estimators inherit from ``sklearn.base`` classes when scikit-learn can be
imported, so they integrate fully (clone, Pipeline, GridSearchCV, tags, HTML
repr). Without it, the stand-ins below give the same public surface
(``get_params``, ``set_params``, ``score``) with NumPy alone.
"""
from __future__ import annotations

import inspect
import numbers

import numpy as np

try:  # pragma: no cover - exercised by both test environments
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
    from sklearn.metrics import accuracy_score as _sk_accuracy_score
    from sklearn.metrics import r2_score as _sk_r2_score

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False
    _sk_accuracy_score = _sk_r2_score = None

    class ConvergenceWarning(UserWarning):
        """The optimizer stopped before it converged."""

    class DataConversionWarning(UserWarning):
        """The input had to be converted (e.g. a column vector y)."""

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before ``fit``."""

    class BaseEstimator:
        """get_params / set_params read from ``__init__``'s signature, as in scikit-learn."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))

        def get_params(self, deep=True):
            """The constructor parameters, ``{name: value}``."""
            out = {}
            for key in self._get_param_names():
                value = getattr(self, key)
                if deep and hasattr(value, "get_params") and not isinstance(value, type):
                    out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
                out[key] = value
            return out

        def set_params(self, **params):
            """Set constructor parameters; returns self."""
            valid = self.get_params(deep=True)
            nested = {}
            for key, value in params.items():
                key, sep, sub = key.partition("__")
                if key not in valid:
                    raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                     f"Valid parameters are: {sorted(self._get_param_names())!r}.")
                if sep:
                    nested.setdefault(key, {})[sub] = value
                else:
                    setattr(self, key, value)
                    valid[key] = value
            for key, sub in nested.items():
                valid[key].set_params(**sub)
            return self

        def __repr__(self):
            defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
            changed = []
            for k, v in self.get_params(deep=False).items():
                d = defaults.get(k, inspect.Parameter.empty)
                same = False
                try:
                    same = bool(v is d or v == d)
                except Exception:  # arrays and the like
                    same = False
                if not same:
                    changed.append(f"{k}={v!r}")
            return f"{type(self).__name__}({', '.join(changed)})"

    class ClassifierMixin:
        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Mean accuracy of ``predict(X)`` against ``y``."""
            return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    class RegressorMixin:
        _estimator_type = "regressor"

        def score(self, X, y, sample_weight=None):
            """Coefficient of determination R² of ``predict(X)`` against ``y``."""
            return r2_score(y, self.predict(X), sample_weight=sample_weight)


if HAVE_SKLEARN:
    try:
        from sklearn.utils._param_validation import InvalidParameterError as _SkInvalidParameterError
    except ImportError:  # private: a release may move it
        _SkInvalidParameterError = None
else:
    _SkInvalidParameterError = None


class InvalidParameterError(*((_SkInvalidParameterError,) if _SkInvalidParameterError else (ValueError, TypeError))):
    """An invalid estimator parameter (one of get_params()). A ValueError and a
    TypeError, as scikit-learn's InvalidParameterError (a subclass of it when
    scikit-learn is installed): drop-in code catching either catches it."""


def accuracy_score(y_true, y_pred, sample_weight=None):
    """Fraction of rows predicted exactly (all labels of a row, for multi-label)."""
    if _sk_accuracy_score is not None:
        return _sk_accuracy_score(y_true, y_pred, sample_weight=sample_weight)
    return numpy_accuracy_score(y_true, y_pred, sample_weight)


def r2_score(y_true, y_pred, sample_weight=None):
    """R², averaged uniformly over outputs (scikit-learn's ``force_finite`` rules)."""
    if _sk_r2_score is not None:
        return _sk_r2_score(y_true, y_pred, sample_weight=sample_weight)
    return numpy_r2_score(y_true, y_pred, sample_weight)


# The NumPy forms, which give scikit-learn's values bit for bit on the
# estimators' own labels and outputs (checked against it in the tests). The
# validation score of every epoch (early stopping) takes these: scikit-learn's
# metrics check their inputs on each call, about 0.5 ms, which on a small
# data set was several times the epoch itself.

def numpy_accuracy_score(y_true, y_pred, sample_weight=None):
    """accuracy_score in NumPy alone (y_true and y_pred of one kind of label)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true.ravel()
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred.ravel()
    hit = (y_true == y_pred) if y_true.ndim == 1 else np.all(y_true == y_pred, axis=1)
    return float(np.average(hit, weights=sample_weight))


def numpy_r2_score(y_true, y_pred, sample_weight=None):
    """r2_score in NumPy alone; fewer than two rows go to r2_score (scikit-learn's
    warning and NaN where it is installed)."""
    if len(y_true) < 2:
        return r2_score(y_true, y_pred, sample_weight) if HAVE_SKLEARN else float("nan")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    sw = None if sample_weight is None else np.asarray(sample_weight)
    # scikit-learn's dtype: the widest floating one among the inputs, else float64
    floats = [a.dtype for a in (y_true, y_pred, sw) if a is not None and a.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.float64
    y_true = y_true.astype(dtype, copy=False).reshape(len(y_true), -1)
    y_pred = y_pred.astype(dtype, copy=False).reshape(len(y_pred), -1)
    if sw is None:
        num = np.sum((y_true - y_pred) ** 2, axis=0)
        den = np.sum((y_true - np.mean(y_true, axis=0)) ** 2, axis=0)
    else:
        w = sw.astype(dtype, copy=False).ravel()
        num = np.sum(w[:, None] * (y_true - y_pred) ** 2, axis=0)
        den = np.sum(w[:, None] * (y_true - np.average(y_true, axis=0, weights=w)) ** 2, axis=0)
    scores = np.ones(y_true.shape[1], dtype=num.dtype)
    ok = (den != 0) & (num != 0)
    scores[ok] = 1 - num[ok] / den[ok]
    scores[(den == 0) & (num != 0)] = 0.0
    return float(np.mean(scores))


# What random_state may be (scikit-learn's rule, its wording): RandomState takes
# seeds of 32 bits. A bool is refused, not read as 0 or 1.
SEED_RULE = "an int in the range [0, 4294967295], an instance of 'numpy.random.mtrand.RandomState' or None"


def is_seed(seed):
    """True when ``seed`` follows SEED_RULE (None, an int of 32 bits, a RandomState): the estimators'
    random_state, checked as scikit-learn's parameter validation checks it, which refuses
    ``np.random`` itself (only its check_random_state takes the module)."""
    if seed is None or isinstance(seed, np.random.RandomState):
        return True
    return isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)) and 0 <= seed <= 2**32 - 1


def check_random_state(seed, name="random_state"):
    """None -> NumPy's global RandomState, int -> a new RandomState(int), a
    RandomState -> itself, ``np.random`` -> NumPy's global RandomState (as
    sklearn.utils.check_random_state); anything else a ValueError naming ``name``."""
    if seed is np.random:
        return np.random.mtrand._rand
    if not is_seed(seed):
        raise ValueError(f"{name} must be {SEED_RULE}, got {seed!r}")
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    return np.random.RandomState(int(seed))
