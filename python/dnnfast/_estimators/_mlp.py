"""MLPClassifier and MLPRegressor: scikit-learn's estimators on the C++ core.

Policy lives here, arithmetic in C++: the weights are drawn, the epochs
shuffled and the validation split made exactly as scikit-learn does it (see
``_sampling``), and each epoch is one call of the core's ``train_epoch``, with
the learning rate of that epoch. L-BFGS runs SciPy's minimiser on the core's
``loss_and_gradient``.

Parameter layout: the core keeps, per layer, W (fan_in x fan_out, row-major),
b and (prelu only) the alphas in one flat buffer; ``coefs_`` and
``intercepts_`` are the per-layer arrays scikit-learn users expect, packed into
that buffer for each fit or prediction.
"""
from __future__ import annotations

import math
import numbers
import time
import warnings

import numpy as np

from .. import _core
from ..distributed import collective
from ..distributed import current as _distributed_context
from .._guards import (ON_NONFINITE, NonFiniteError, NonFiniteWarning, describe, epoch_is_finite,
                       locate_nonfinite)
from .._locking import copies_model, fits_model, reads_model
from .._registry import LOSS_TABLE, parse_activation
from .._validation import (as_array, cast_finite, check_estimator_input, check_memory, naming, network_bytes,
                           packed_first_w_bytes)
from ._compat import (
    HAVE_SKLEARN,
    BaseEstimator,
    ClassifierMixin,
    ConvergenceWarning,
    DataConversionWarning,
    NotFittedError,
    RegressorMixin,
    accuracy_score,
    check_random_state,
    r2_score,
)
from ._poisson import PoissonNetwork
from ._progress import Progress, TrainingHistory, plot_history
from ._sampling import shuffled, train_validation_split
from ._targets import LabelBinarizer, type_of_target, unique_labels

_STOCHASTIC_SOLVERS = ("sgd", "adam")
_CORE_CLASS = {np.dtype(np.float32): _core.Network32, np.dtype(np.float64): _core.Network64}
_OPTIMIZER_ID = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3}

if HAVE_SKLEARN:
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d

    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data
    except ImportError:  # scikit-learn < 1.6
        def _sk_validate_data(est, *args, **kwargs):
            return est._validate_data(*args, **kwargs)


# ---------------------------------------------------------------------------
# Input checks (scikit-learn's when installed, NumPy's otherwise)
# ---------------------------------------------------------------------------

def _densify(X):
    return X.toarray() if hasattr(X, "toarray") else X


def _np_check_array(X, name="X"):
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X)
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from None
    if X.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must have a real numeric dtype, got {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array for {name}, got an array of shape {X.shape}; reshape your "
                         "data with array.reshape(-1, 1) for a single feature or array.reshape(1, -1) "
                         "for a single sample.")
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"Input {name} contains NaN or infinity.")
    return X


def _feature_names(X):
    cols = getattr(X, "columns", None)
    if cols is None:
        return None
    names = np.asarray(cols, dtype=object)
    if len(names) and all(isinstance(c, str) for c in names):
        return names
    return None


def _available_if(check):
    """A method that exists only when ``check(self)`` passes (else AttributeError),
    so ``hasattr(est, "partial_fit")`` is False for L-BFGS, as in scikit-learn."""

    class _Descriptor:
        def __init__(self, fn):
            self.fn = fn
            self.__doc__ = fn.__doc__
            self.__name__ = fn.__name__

        def __get__(self, obj, owner=None):
            if obj is None:
                return self.fn
            check(obj)
            return self.fn.__get__(obj, owner)

    return _Descriptor


def _check_solver(est):
    if est.solver not in _STOCHASTIC_SOLVERS:
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. {est.solver} is not "
                             "stochastic.")
    return True


# Below this many flops per batch step (forward + backward, 6 * rows * sum of
# fan_in * fan_out), fit runs the core on one thread when n_threads is None: a
# step then takes well under a millisecond, and the fork/join of every
# parallel region costs more than it saves -- many times more when the
# machine is busier than its cores. The numbers do not depend on the thread
# count (the core's reductions have a fixed order).
_SMALL_STEP_FLOPS = 2e7


class _ThreadCount:
    """Runs the core with ``n_threads`` threads, restoring the previous count.

    ``n_threads=None`` keeps the current count, except that a step of fewer
    than ``_SMALL_STEP_FLOPS`` flops (``step_flops``) runs on one thread."""

    def __init__(self, n_threads, step_flops=None):
        if n_threads is None and step_flops is not None and step_flops < _SMALL_STEP_FLOPS:
            n_threads = 1
        self.n = n_threads
        self.prev = None

    def __enter__(self):
        # The calling thread's own count: other threads, and the process-wide
        # count, are left alone (two estimators used from two threads at once
        # cannot undo each other's setting).
        if self.n is not None:
            self.prev = _core.set_local_num_threads(int(self.n))
        return self

    def __exit__(self, *exc):
        if self.n is not None:
            _core.set_local_num_threads(self.prev)
        return False


# ---------------------------------------------------------------------------
# The shared base
# ---------------------------------------------------------------------------

class _BaseMLP(BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor (not for direct use)."""

    # -- parameters ----------------------------------------------------------

    def _check_params(self):
        def num(name, lo=None, hi=None, lo_open=False, hi_open=False, integral=False, allow_inf=False):
            v = getattr(self, name)
            kind = numbers.Integral if integral else numbers.Real
            if allow_inf and isinstance(v, float) and v == np.inf:
                return
            if isinstance(v, bool) or not isinstance(v, kind):
                raise TypeError(f"The '{name}' parameter of {type(self).__name__} must be "
                                f"{'an int' if integral else 'a float'}, got {v!r}.")
            if not np.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo))) or \
                    (hi is not None and (v > hi or (hi_open and v == hi))):
                rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be in {rng}, got {v!r}.")

        def opt(name, options):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in options:
                raise ValueError(f"The '{name}' parameter of {type(self).__name__} must be one of "
                                 f"{sorted(options)}, got {v!r}.")

        opt("solver", {"lbfgs", "sgd", "adam"})
        opt("learning_rate", {"constant", "invscaling", "adaptive"})
        num("alpha", 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            num("batch_size", 1, integral=True)
        num("learning_rate_init", 0, lo_open=True)
        num("power_t", 0)
        num("max_iter", 1, integral=True)
        num("tol", 0)
        num("momentum", 0, 1)
        num("validation_fraction", 0, 1, hi_open=True)
        num("beta_1", 0, 1, hi_open=True)
        num("beta_2", 0, 1, hi_open=True)
        num("epsilon", 0, lo_open=True)
        num("n_iter_no_change", 1, allow_inf=True, integral=True)
        num("max_fun", 1, integral=True)
        opt("on_nonfinite", set(ON_NONFINITE))
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"The '{name}' parameter of {type(self).__name__} must be a bool, "
                                f"got {getattr(self, name)!r}.")
        if self.n_threads is not None:
            num("n_threads", 1, integral=True)

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral):
                raise TypeError(f"hidden_layer_sizes must hold integers, got {sizes!r}")
        if np.any(np.array(sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % sizes)
        return [int(s) for s in sizes]

    def _hidden_specs(self, n_hidden):
        """One parsed activation per hidden layer; ``activation`` is a name or a list."""
        act = self.activation
        if isinstance(act, (str, tuple)):
            acts = [act] * n_hidden
        elif isinstance(act, list):
            acts = list(act)
            if len(acts) != n_hidden:
                raise ValueError(f"activation: a list needs one entry per hidden layer ({n_hidden}), "
                                 f"got {len(acts)}")
        else:
            raise TypeError(f"activation must be a name or a list of names, got {act!r}")
        specs = []
        for i, a in enumerate(acts):
            try:
                spec = parse_activation(a, f"activation[{i}]" if isinstance(act, list) else "activation")
            except (TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from None
            if spec.name == "softmax":
                raise ValueError("activation: softmax is only available as an output activation")
            specs.append(spec)
        return specs

    def _init_factor(self, specs, layer):
        """scikit-learn's Glorot bound factor: 2 for logistic (sigmoid) layers, else 6.

        A layer takes the factor of the hidden activation that follows it; the
        output layer that of the last hidden layer (for a single name, every
        layer gets the same factor, as in scikit-learn)."""
        if isinstance(self.activation, (str, tuple)):
            return 2.0 if self.activation == "logistic" else 6.0
        if not specs:
            return 6.0
        spec = specs[min(layer, len(specs) - 1)]
        return 2.0 if spec.name == "sigmoid" else 6.0

    # -- the core network ----------------------------------------------------

    def _architecture(self):
        """(sizes, [ActivationSpec] per layer, loss name) of the fitted model."""
        hidden = [c.shape[1] for c in self.coefs_[:-1]]
        specs = self._hidden_specs(len(hidden)) + [self._output_spec()]
        sizes = [self.coefs_[0].shape[0]] + hidden + [self.coefs_[-1].shape[1]]
        return sizes, specs, self._core_loss()

    def _core_net(self, dtype):
        sizes, specs, loss = self._architecture()
        key = (np.dtype(dtype).str, tuple(sizes), tuple((s.id, s.param) for s in specs), loss)
        cached = self.__dict__.get("_core")
        if cached is not None and cached[0] == key:
            return cached[1]
        if loss == "poisson":
            net = PoissonNetwork(sizes, specs, dtype)
        else:
            net = _CORE_CLASS[np.dtype(dtype)](sizes, [s.id for s in specs], [s.param for s in specs],
                                               LOSS_TABLE[loss][0], True)
        self.__dict__["_core"] = (key, net)
        return net

    def _pack(self, net, dtype):
        """The flat core buffer from coefs_, intercepts_ (and prelu alphas)."""
        P = np.empty(net.num_params, dtype=dtype)
        for lay, W, b, a in zip(net.layout(), self.coefs_, self.intercepts_, self._alphas()):
            P[lay["w_offset"]:lay["w_offset"] + W.size] = W.ravel()
            P[lay["b_offset"]:lay["b_offset"] + b.size] = b
            if lay["alpha_offset"] is not None:
                P[lay["alpha_offset"]:lay["alpha_offset"] + a.size] = a
        return P

    def _unpack(self, net, P):
        coefs, intercepts, alphas = [], [], []
        for lay in net.layout():
            m_in, m_out = lay["m_in"], lay["m_out"]
            coefs.append(P[lay["w_offset"]:lay["w_offset"] + m_in * m_out].reshape(m_in, m_out).copy())
            intercepts.append(P[lay["b_offset"]:lay["b_offset"] + m_out].copy())
            off = lay["alpha_offset"]
            alphas.append(None if off is None else P[off:off + m_out].copy())
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        if any(a is not None for a in alphas):
            self.prelu_alphas_ = alphas
        elif "prelu_alphas_" in self.__dict__:
            del self.prelu_alphas_

    def _alphas(self):
        return getattr(self, "prelu_alphas_", None) or [None] * len(self.coefs_)

    def _sklearn_order(self, net):
        """Indices into the core buffer of scikit-learn's packing (every coef,
        then every intercept; prelu alphas last), for L-BFGS."""
        lay = net.layout()
        parts = [np.arange(l["w_offset"], l["w_offset"] + l["m_in"] * l["m_out"]) for l in lay]
        parts += [np.arange(l["b_offset"], l["b_offset"] + l["m_out"]) for l in lay]
        parts += [np.arange(l["alpha_offset"], l["alpha_offset"] + l["m_out"]) for l in lay
                  if l["alpha_offset"] is not None]
        return np.concatenate(parts).astype(np.intp)

    @copies_model  # during a fit: waits for its end (the fitted state is assembled there)
    def __getstate__(self):
        try:  # scikit-learn's BaseEstimator adds its version; object has one from Python 3.11
            state = super().__getstate__()
        except AttributeError:
            state = None
        state = dict(self.__dict__ if state is None else state)
        state.pop("_core", None)  # the C++ object is rebuilt on demand
        return state

    @reads_model  # a save during a fit waits for it: never a half-trained file
    def save(self, path):
        """Write the fitted estimator to ``path`` (str or os.PathLike) as a model file.

        A versioned ``.npz`` readable with NumPy alone (see ``docs/model_files.md``),
        written atomically. ``dnnfast.load(path)`` gives back an estimator with
        the same parameters, fitted attributes and solver state: the same
        predictions, bit for bit, and ``partial_fit`` / ``warm_start`` continue
        as they would have.
        """
        from .._model_files import save

        save(self, path)

    # -- validation ----------------------------------------------------------

    def _validate_X(self, X, reset):
        check_estimator_input(X, "X")
        if HAVE_SKLEARN:
            with naming("X"):
                X = _sk_validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32),
                                      reset=reset)
            return np.ascontiguousarray(_densify(X))
        names = _feature_names(X)
        with naming("X"):
            X = np.ascontiguousarray(_np_check_array(X))
        if reset:
            self.n_features_in_ = X.shape[1]
            if names is not None:
                self.feature_names_in_ = names
            elif "feature_names_in_" in self.__dict__:
                del self.feature_names_in_
        else:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input.")
        return X

    def _validate_Xy(self, X, y, reset, y_numeric):
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y "
                             "is None.")
        self._check_y_kind(y, check_estimator_input(X, "X"))
        if HAVE_SKLEARN:
            with naming("y"), naming("X"):
                X, y = _sk_validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                                         y_numeric=y_numeric, dtype=(np.float64, np.float32), reset=reset)
            X = np.ascontiguousarray(_densify(X))
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            return X, y
        X = self._validate_X(X, reset)
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        if y_numeric:
            if y.dtype.kind == "O":
                y = y.astype(np.float64)
            if y.dtype.kind not in "biuf":
                raise ValueError(f"y must be numeric for regression, got dtype {y.dtype}")
            if y.dtype.kind != "f":
                y = y.astype(np.float64)
            if not np.isfinite(y).all():
                raise ValueError("Input y contains NaN or infinity.")
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the "
                          "shape of y to (n_samples, ), for example using ravel().", DataConversionWarning,
                          stacklevel=3)
            y = y.ravel()
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        return X, y

    def _check_y_kind(self, y, n_rows=None):
        """The targets' pre-check (see ``check_estimator_input``): a
        classifier's labels may be strings, a regressor's targets must be
        numbers. With ``n_rows``, y must have that many rows."""
        if self._is_classifier():
            arr = as_array(y, "y", numeric_kinds="biufcOUS")
        else:
            check_estimator_input(y, "y")
            arr = as_array(y, "y", numeric_kinds="biufcO")
        n_y = arr.shape[0] if arr.ndim else None
        if arr.dtype.kind == "c":
            raise ValueError("y: Complex data not supported")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():  # scikit-learn's messages
            if np.isnan(arr).any():
                raise ValueError("Input y contains NaN.")
            raise ValueError(f"Input y contains infinity or a value too large for {arr.dtype!r}.")
        if n_rows is not None and n_y is not None and n_y != n_rows:
            raise ValueError(f"y has {n_y} rows but X has {n_rows} (inconsistent numbers of samples: "
                             f"[{n_rows}, {n_y}])")

    def _check_score_input(self, X, y):
        """score's checks before predict: fitted, y present and of the right kind and length."""
        self._check_fitted()
        if y is None:
            raise ValueError("y: score needs the true targets, got None")
        self._check_y_kind(y, check_estimator_input(X, "X"))

    def _check_sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        check_estimator_input(sample_weight, "sample_weight")
        if HAVE_SKLEARN:
            sw = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        else:
            sw = np.asarray(sample_weight, dtype=X.dtype)
            if sw.ndim == 0:
                sw = np.full(X.shape[0], sw, dtype=X.dtype)
            if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
                raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({X.shape[0]},)!")
            if not np.isfinite(sw).all():
                raise ValueError("sample_weight contains NaN or infinity.")
        if np.any(sw < 0):
            raise ValueError("Negative values in data passed to sample_weight.")
        return np.ascontiguousarray(sw, dtype=X.dtype)

    def _check_fitted(self):
        if HAVE_SKLEARN:
            check_is_fitted(self)
        elif not hasattr(self, "coefs_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")

    # -- fitting ---------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False):
        # Inside a dnnfast.distributed.Context every check is agreed by all
        # ranks (an error on one is raised on all) and training is data-parallel.
        ctx = _distributed_context()
        collective(ctx, self._check_params)
        if ctx is not None:
            collective(ctx, self._check_distributed)
        hidden = self._hidden_sizes()
        hidden_specs = self._hidden_specs(len(hidden))
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y, y_raw = self._validate_input(X, y, incremental, reset=first_pass)

        def weights():
            sw = self._check_sample_weight(sample_weight, X)
            return self._combine_class_weight(sw, y_raw, Y, X.dtype)

        sw = collective(ctx, weights)
        n_samples, n_features = X.shape
        Y = cast_finite(np.asarray(Y), X.dtype, "y")
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if ctx is not None:
            ctx.check_same("(n_features, n_outputs, dtype) of the data", (n_features, Y.shape[1], X.dtype.str))
        self.n_outputs_ = Y.shape[1]
        layer_units = [n_features] + hidden + [self.n_outputs_]
        if first_pass:
            self._check_size(layer_units, hidden_specs, X)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, layer_units, X.dtype, hidden_specs)
        elif [c.shape for c in self.coefs_] != list(zip(layer_units[:-1], layer_units[1:])):
            raise ValueError("warm_start / partial_fit: the data or hidden_layer_sizes do not match the fitted "
                             "network's layers")
        dtype = self.coefs_[0].dtype
        if X.dtype != dtype:
            X = cast_finite(X, dtype, "X")
            Y = cast_finite(Y, dtype, "y")
            sw = None if sw is None else cast_finite(sw, dtype, "sample_weight")
        macs = sum(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))
        step_rows = X.shape[0] if self.solver == "lbfgs" else (
            min(200, X.shape[0]) if self.batch_size == "auto" else min(int(self.batch_size), X.shape[0]))
        with _ThreadCount(self.n_threads, 6.0 * step_rows * macs):
            net = self._core_net(dtype)
            P = self._pack(net, dtype)
            if ctx is not None:  # every rank starts from rank 0's weights
                ctx.broadcast_(P)
            if self.solver in _STOCHASTIC_SOLVERS:
                self._fit_stochastic(net, P, X, Y, sw, incremental, ctx)
            else:
                self._fit_lbfgs(net, P, X, Y, sw)
        if self.on_nonfinite == "raise" and not _core.all_finite(P):
            self._nonfinite(net, P, X, None, self.n_iter_)  # raises
        self._unpack(net, P)
        return self

    def _check_distributed(self):
        """What data-parallel training (dnnfast.distributed) cannot do: each
        of these needs the whole data set in one process."""
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not supported under distributed training; "
                             "use solver='sgd' or 'adam'")
        if self.early_stopping:
            raise ValueError("early_stopping=True is not supported under distributed training: hold out a "
                             "validation set yourself and score it after fit")
        if isinstance(getattr(self, "class_weight", None), str):
            raise ValueError(f"class_weight={self.class_weight!r} is not supported under distributed "
                             "training (it needs the class counts of all ranks); pass a dict")
        if not self._is_classifier() and self.loss == "poisson":
            raise ValueError("loss='poisson' is not supported under distributed training")

    def _nonfinite(self, net, P, X, good, epoch, unit="epoch"):
        """Name where training went non-finite; with on_nonfinite='raise',
        restore ``good`` (the parameters before that epoch), drop the
        optimizer state (it holds the same non-finite values) and raise."""
        if hasattr(net, "forward"):
            forward = net.forward
        else:  # the NumPy Poisson network: As[0] is X
            def forward(P_, X_):
                Zs, As = net._forward(P_, X_)
                return Zs, As[1:]
        layer, where = locate_nonfinite(net.layout(), P, forward, X)
        msg = ("Solver produced non-finite parameter weights " + describe(epoch, layer, where, unit)
               if where != "cost" else "Solver produced a non-finite loss " + describe(epoch, layer, where, unit))
        if self.on_nonfinite != "raise":
            warnings.warn(msg + ". Training goes on (on_nonfinite=%r)." % self.on_nonfinite, NonFiniteWarning,
                          stacklevel=4)
            return
        if good is not None:
            P[:] = good
            msg += "; coefs_ and intercepts_ are those from before that " + unit
        self.__dict__.pop("_optimizer", None)
        if _core.all_finite(P):
            self._unpack(net, P)
        raise NonFiniteError(msg + ". The input data may contain large values and need to be preprocessed "
                             "(or lower learning_rate_init).", epoch=epoch, layer=layer, where=where)

    def _check_size(self, layer_units, hidden_specs, X):
        """Refuse, before anything is allocated, a network that cannot fit in
        memory: parameters, gradient and optimizer state (Adam: two more, L-BFGS:
        SciPy's float64 copies and ten correction pairs), the core's workspace
        for one batch with its packed first-layer W, and the float64 draws of
        the largest layer."""
        itemsize = X.dtype.itemsize
        prelu = [l for l, s in enumerate(hidden_specs) if s.per_unit]
        p_bytes, per_row = network_bytes(layer_units, itemsize, per_unit_params=prelu)
        copies = {"adam": 5, "sgd": 4, "lbfgs": 2 + 24 * 8 // itemsize}[self.solver]
        rows = X.shape[0] if self.solver == "lbfgs" else (
            min(200, X.shape[0]) if self.batch_size == "auto" else min(int(self.batch_size), X.shape[0]))
        largest_w = max(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))
        need = copies * p_bytes + packed_first_w_bytes(layer_units, itemsize) + rows * per_row + 16 * largest_w
        check_memory(need, "hidden_layer_sizes", f"a network of {p_bytes // itemsize:,} parameters "
                     f"(layers {layer_units})")

    def _initialize(self, Y, layer_units, dtype, hidden_specs):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation_name()
        self.coefs_, self.intercepts_ = [], []
        for i in range(self.n_layers_ - 1):
            fan_in, fan_out = layer_units[i], layer_units[i + 1]
            bound = np.sqrt(self._init_factor(hidden_specs, i) / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            self.intercepts_.append(intercept.astype(dtype, copy=False))
        specs = hidden_specs + [self._output_spec()]
        if any(s.per_unit for s in specs):
            self.prelu_alphas_ = [np.full(u, s.param, dtype=dtype) if s.per_unit else None
                                  for s, u in zip(specs, layer_units[1:])]
        elif "prelu_alphas_" in self.__dict__:
            del self.prelu_alphas_
        self.__dict__.pop("_optimizer", None)
        self.__dict__.pop("_best_params", None)
        self.history_ = TrainingHistory()
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        else:
            for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
                self.__dict__.pop(name, None)

    def _optimizer_kind(self):
        if self.solver == "adam":
            return _OPTIMIZER_ID["adam"]
        if self.momentum == 0:
            return _OPTIMIZER_ID["sgd"]
        return _OPTIMIZER_ID["nesterov" if self.nesterovs_momentum else "momentum"]

    def _fit_stochastic(self, net, P, X, Y, sw, incremental, ctx=None):
        n_params = P.size
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = {
                "learning_rate": float(self.learning_rate_init),
                "state1": np.zeros(n_params, dtype=P.dtype),
                "state2": np.zeros(n_params, dtype=P.dtype) if self.solver == "adam" else None,
                "t": np.zeros(1, dtype=np.int64),
            }
        opt = self._optimizer
        kind = self._optimizer_kind()
        s1 = opt["state1"] if kind != 0 else None
        s2 = opt["state2"] if kind == 3 else None
        t = opt["t"] if kind == 3 else None
        if s1 is not None and s1.size != n_params:
            raise ValueError("optimizer state does not match the network; refit without warm start")

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = Y[:, 0] if (self._is_classifier() and self.n_outputs_ == 1) else None
            train_rows, val_rows = train_validation_split(X.shape[0], self.validation_fraction,
                                                          self._random_state, stratify)
            if val_rows.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            X_val, Y_val = X[val_rows], Y[val_rows]
            sw_val = None if sw is None else sw[val_rows]
            y_val = self._targets_from_outputs(Y_val)
            n_train = train_rows.shape[0]
        else:
            train_rows = None
            X_val = Y_val = sw_val = y_val = None
            n_train = X.shape[0]
        # Distributed: n_train and the epoch order are global; this rank's rows
        # start at global row `offset`.
        offset = 0
        if ctx is not None:
            offset, n_train = ctx.shard(X.shape[0])

        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_train))

        data_scale = self._data_loss_scale()
        sample_idx = np.arange(n_train, dtype=np.int64)
        verbose = self.verbose if ctx is None or ctx.rank == 0 else False
        progress = Progress(1 if incremental else self.max_iter, verbose, type(self).__name__)
        best_P = self.__dict__.get("_best_params")
        if best_P is None or best_P.size != n_params:
            best_P = P.copy()  # scikit-learn's _best_coefs start as the initial weights
        guard = self.on_nonfinite != "ignore"
        keep_good = self.on_nonfinite == "raise"
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                t0 = time.perf_counter()
                if self.shuffle and ctx is None:
                    sample_idx = shuffled(sample_idx, self._random_state)
                elif self.shuffle:  # rank 0 draws, every rank follows
                    sample_idx = ctx.global_order(n_train, lambda: shuffled(sample_idx, self._random_state))
                order = sample_idx if train_rows is None else train_rows[sample_idx]
                order = np.ascontiguousarray(order, dtype=np.int64)
                good = P.copy() if keep_good else None  # one snapshot per epoch
                args = (P, X, Y, sw, order, batch_size, kind, opt["learning_rate"], float(self.momentum),
                        float(self.beta_1), float(self.beta_2), float(self.epsilon), float(self.alpha), s1, s2, t)
                cost_sum, penalty_sum, _ = (net.train_epoch(*args) if ctx is None
                                            else ctx.train_epoch(net, *args, offset))
                if guard and not epoch_is_finite(cost_sum + penalty_sum, P):
                    self._nonfinite(net, P, X, good, self.n_iter_ + 1)  # raises, or warns once
                    guard = False
                self.n_iter_ += 1
                self.loss_ = float((cost_sum * data_scale + penalty_sum) / n_train)
                self.t_ += n_train
                self.loss_curve_.append(self.loss_)

                val_loss = val_score = float("nan")
                if early_stopping:
                    val_score, val_loss = self._validation_score(net, P, X_val, Y_val, y_val, sw_val, data_scale)
                    self.validation_scores_.append(val_score)
                    if val_score < self.best_validation_score_ + self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if val_score > self.best_validation_score_:
                        self.best_validation_score_ = val_score
                        best_P = P.copy()
                else:
                    if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if self.loss_curve_[-1] < self.best_loss_:
                        self.best_loss_ = self.loss_curve_[-1]
                self.history_.append(loss=self.loss_, val_loss=val_loss, val_score=val_score,
                                     time=time.perf_counter() - t0)
                progress.update(self.n_iter_, self.loss_, val_score if early_stopping else None)

                # The learning rate of the next epoch (scikit-learn's iteration_ends).
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    opt["learning_rate"] = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d consecutive epochs."
                               % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                               % (self.tol, self.n_iter_no_change))
                    if self.solver == "sgd" and self.learning_rate == "adaptive":
                        if opt["learning_rate"] <= 1e-6:
                            progress.message(msg + " Learning rate too small. Stopping.")
                            break
                        opt["learning_rate"] /= 5.0
                        progress.message(msg + " Setting learning rate to %f" % opt["learning_rate"])
                        self._no_improvement_count = 0
                    else:
                        progress.message(msg + " Stopping.")
                        break

                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                                  "hasn't converged yet." % self.max_iter, ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            progress.close()
        self._best_params = best_P
        if early_stopping:
            P[:] = best_P

    def _validation_score(self, net, P, X_val, Y_val, y_val, sw_val, data_scale):
        """(score, data loss) of the current parameters on the validation set."""
        out = net.predict(P, X_val)
        if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
            return float("nan"), float("nan")
        val_loss = float(net.cost(P, X_val, Y_val, sw_val)) * data_scale
        score = self._score_outputs(out, y_val, sw_val)
        return float(score), val_loss

    def _fit_lbfgs(self, net, P, X, Y, sw):
        try:
            import scipy.optimize
        except ImportError:
            raise ImportError("solver='lbfgs' needs SciPy (scipy.optimize.minimize): pip install scipy, or use "
                              "solver='adam' or 'sgd', which need NumPy only.") from None
        order = self._sklearn_order(net)
        G = np.empty_like(P)
        alpha = float(self.alpha)
        data_scale = self._data_loss_scale()
        history = self.history_
        progress = Progress(self.max_iter, self.verbose, type(self).__name__)
        clock = [time.perf_counter()]
        # The last point with a finite loss and gradient, put back if the
        # solver ends on a non-finite one (on_nonfinite='raise').
        good = P.copy() if self.on_nonfinite == "raise" else None

        def loss_grad(x):
            P[order] = x
            data, penalty = net.loss_and_gradient(P, X, Y, sw, None, alpha, G)
            f = data * data_scale + penalty
            if good is not None and math.isfinite(f) and _core.all_finite(G):
                good[:] = P
            return f, G[order].astype(np.float64)

        def callback(intermediate_result):
            now = time.perf_counter()
            loss = float(getattr(intermediate_result, "fun", np.nan))
            history.append(loss=loss, time=now - clock[0])
            progress.update(len(history["loss"]), loss)
            clock[0] = now

        x0 = P[order].astype(np.float64)
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        try:
            res = scipy.optimize.minimize(loss_grad, x0, method="L-BFGS-B", jac=True, options=options,
                                          callback=callback)
        finally:
            progress.close()
        if res.status != 0:
            msg = res.message.decode("latin1") if isinstance(res.message, bytes) else res.message
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}):\n{msg}.\n\n"
                          "Increase the number of iterations to improve the convergence "
                          f"(max_iter={self.max_iter}).\nYou might also want to scale the data as shown in:\n"
                          "    https://scikit-learn.org/stable/modules/preprocessing.html",
                          ConvergenceWarning, stacklevel=3)
        self.n_iter_ = min(res.nit, self.max_iter)
        self.loss_ = float(res.fun)
        P[order] = res.x
        if self.on_nonfinite != "ignore" and not epoch_is_finite(self.loss_, P):
            self._nonfinite(net, P, X, good, max(res.nit, 1), unit="iteration")

    # -- prediction --------------------------------------------------------------

    def _forward(self, X, check_input=True):
        """Network outputs Ŷ, shape (n_samples, n_outputs_), in the model's dtype."""
        if check_input:
            X = self._validate_X(X, reset=False)
        dtype = self.coefs_[0].dtype
        X = cast_finite(X, dtype, "X")
        macs = sum(c.size for c in self.coefs_)
        with _ThreadCount(self.n_threads, 2.0 * X.shape[0] * macs):
            net = self._core_net(dtype)
            return net.predict(self._pack(net, dtype), X)

    # -- extras beyond scikit-learn ----------------------------------------------

    def plot_history(self, ax=None, title=None):
        """Draw the learning curves of the last fit with matplotlib.

        Training loss per epoch, the validation loss and score when
        ``early_stopping=True`` (score on a second y axis).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw in; a new figure when None.
        title : str, optional

        Returns
        -------
        fig : matplotlib.figure.Figure
        """
        self._check_fitted()
        return plot_history(self.history_, ax=ax, title=title or type(self).__name__)

    @reads_model
    def check_gradients(self, X, y, sample_weight=None, eps=1e-6, max_params=200, random_state=0):
        """Finite-difference check of the fitted model's gradient.

        Compares the analytic gradient of the training objective (data loss
        plus the L2 term, with the model's ``alpha``; for squared error the
        core's ``0.5 * sum of squares / n`` over all outputs, whose gradient
        scikit-learn uses) at the fitted parameters
        against central differences ``(f(p + eps) - f(p - eps)) / (2 eps)``,
        computed in float64 whatever the model's dtype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
        eps : float
            Finite-difference step.
        max_params : int
            At most this many parameters (drawn at random) are checked.
        random_state : int
            Seeds the choice of parameters.

        Returns
        -------
        report : dict
            ``max_abs_error``, ``max_rel_error`` (relative to
            ``max(|analytic|, |numeric|, 1e-8)``), ``n_checked``, and the
            ``analytic`` and ``numeric`` values of the checked entries.
        """
        self._check_fitted()
        X = self._validate_X(X, reset=False).astype(np.float64)
        Y = np.ascontiguousarray(self._outputs_from_targets(y), dtype=np.float64)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        sw = self._check_sample_weight(sample_weight, X)
        net = self._core_net(np.float64)
        P = self._pack(net, np.float64)
        G = np.empty_like(P)
        alpha = float(self.alpha)

        def objective(p):
            data, penalty = net.loss_and_gradient(p, X, Y, sw, None, alpha, G)
            return data + penalty

        objective(P)
        analytic = G.copy()
        rng = np.random.RandomState(random_state)
        idx = np.arange(P.size) if P.size <= max_params else np.sort(rng.choice(P.size, max_params, replace=False))
        numeric = np.empty(idx.size)
        for j, k in enumerate(idx):
            old = P[k]
            P[k] = old + eps
            fp = objective(P)
            P[k] = old - eps
            fm = objective(P)
            P[k] = old
            numeric[j] = (fp - fm) / (2 * eps)
        a = analytic[idx]
        err = np.abs(a - numeric)
        rel = err / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), 1e-8)
        return {"max_abs_error": float(err.max()), "max_rel_error": float(rel.max()), "n_checked": int(idx.size),
                "analytic": a, "numeric": numeric}

    def __sklearn_is_fitted__(self):
        return hasattr(self, "coefs_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


# ---------------------------------------------------------------------------
# MLPClassifier
# ---------------------------------------------------------------------------

class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, fast.

    Same parameters, defaults, attributes and (for the same ``random_state``
    and float64 input) the same numbers as ``sklearn.neural_network.MLPClassifier``,
    with training in dnnfast's C++ core. Binary and multi-class targets use a
    logistic / softmax output with log-loss; a 0/1 indicator matrix is a
    multi-label problem (one logistic output per label).

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Width of each hidden layer.
    activation : str or list, default='relu'
        Hidden activation: 'identity', 'logistic', 'tanh', 'relu' (as in
        scikit-learn) or any dnnfast activation ('leaky_relu', 'prelu', 'elu',
        'sigmoid', 'arctan', 'softplus', 'binary_step', or
        ``("leaky_relu", {"alpha": 0.2})``); a list gives one per hidden layer.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'lbfgs' needs SciPy.
    alpha : float, default=0.0001
        L2 penalty ``0.5 * alpha * sum(W**2) / sum(sample_weight)`` on the weights.
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule for solver='sgd'.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
    tol : float, default=1e-4
    verbose : bool, default=False
        Show a progress bar (tqdm when installed, text lines otherwise).
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Maximum loss evaluations (lbfgs).
    class_weight : dict, 'balanced' or None, default=None
        Weight of each class, multiplied into ``sample_weight``; 'balanced'
        uses ``n_samples / (n_classes * count(class))``. Not for multi-label.
    n_threads : int or None, default=None
        Threads of the C++ core during fit and predict. None: the current
        ``dnnfast.get_num_threads()``, or one thread when a training step (a
        batch, forward and backward) is under 2e7 flops, where threading costs
        more than it gains. The numbers do not depend on it. It applies to the
        calling thread only.
    on_nonfinite : {'raise', 'warn', 'ignore'}, default='raise'
        When an epoch (lbfgs: the solver's result) has a NaN or infinite loss
        or parameters. 'raise': stop, put ``coefs_`` and ``intercepts_`` back
        to their values before that epoch, and raise
        :class:`dnnfast.NonFiniteError` (a ValueError, with scikit-learn's
        message) naming the epoch and the first non-finite layer; 'warn': a
        :class:`dnnfast.NonFiniteWarning` and training goes on, keeping the
        non-finite values; 'ignore': no check. Checked once per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    loss_ : float
    best_loss_ : float or None
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray, shape (n_units[i], n_units[i+1])
    intercepts_ : list of ndarray, shape (n_units[i+1],)
    prelu_alphas_ : list of (ndarray or None)
        Trainable alphas of prelu layers (only when a layer is prelu).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    history_ : dict
        Per epoch: ``loss``, ``val_loss``, ``val_score``, ``time``.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 class_weight=None, n_threads=None, on_nonfinite="raise"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.class_weight = class_weight
        self.n_threads = n_threads
        self.on_nonfinite = on_nonfinite

    # scikit-learn's classifier always optimises the log-loss.
    @property
    def loss(self):
        return "log_loss"

    def _is_classifier(self):
        return True

    def _output_activation_name(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _output_spec(self):
        return parse_activation("softmax" if self.out_activation_ == "softmax" else "sigmoid")

    def _core_loss(self):
        return "cce" if self.out_activation_ == "softmax" else "bce"

    def _data_loss_scale(self):
        return 1.0

    def _validate_input(self, X, y, incremental, reset):
        ctx = _distributed_context()
        X, y = collective(ctx, lambda: self._validate_Xy(X, y, reset=reset, y_numeric=False))
        # Distributed: the classes are those of all ranks' shards together.
        labels = ctx.union_labels(np.unique(y)) if ctx is not None and np.ndim(y) == 1 else y
        return collective(ctx, lambda: self._binarize_targets(X, y, labels, incremental))

    def _binarize_targets(self, X, y, labels, incremental):
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(labels)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        Y = self._label_binarizer.transform(y).astype(bool)
        return X, Y, y

    def _combine_class_weight(self, sw, y, Y, dtype):
        cw = self.class_weight
        if cw is None:
            return sw
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            raise ValueError("class_weight is not supported for multi-label targets; use sample_weight")
        classes = self.classes_
        y = np.asarray(y).ravel()
        idx = np.searchsorted(classes, y)
        if isinstance(cw, str) and cw == "balanced":
            present, counts = np.unique(idx, return_counts=True)
            per_class = np.ones(len(classes))
            per_class[present] = len(y) / (len(present) * counts)
        elif isinstance(cw, dict):
            per_class = np.ones(len(classes))
            for label, weight in cw.items():
                pos = np.flatnonzero(classes == label)
                if pos.size == 0:
                    raise ValueError(f"class_weight: class label {label!r} not present in the data "
                                     f"(classes: {classes.tolist()})")
                per_class[pos[0]] = float(weight)
        else:
            raise ValueError(f"class_weight must be a dict, 'balanced' or None, got {cw!r}")
        w = per_class[idx].astype(dtype)
        return w if sw is None else np.ascontiguousarray(sw * w, dtype=dtype)

    def _targets_from_outputs(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _outputs_from_targets(self, y):
        return self._label_binarizer.transform(np.asarray(y)).astype(np.float64)

    def _score_outputs(self, out, y_true, sw):
        y_pred = self._label_binarizer.inverse_transform(out.ravel() if self.n_outputs_ == 1 else out)
        return accuracy_score(y_true, y_pred, sample_weight=sw)

    @fits_model
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 input trains a float32 network.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights (multiplied with ``class_weight``).

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @_available_if(_check_solver)
    @fits_model
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of the stochastic solver on (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Every class that will ever appear; required on the first call.

        Returns
        -------
        self : MLPClassifier
        """
        if y is not None:
            self._check_y_kind(y, check_estimator_input(X, "X"))
        first = getattr(self, "classes_", None) is None
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = unique_labels(classes)
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        elif classes is not None:
            if not np.array_equal(self.classes_, unique_labels(classes)):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                                 f"{self.classes_!r}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _predict(self, X, check_input=True):
        out = self._forward(X, check_input=check_input)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    @reads_model
    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        self._check_fitted()
        return self._predict(X)

    @reads_model
    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            In the order of ``classes_`` (per label for multi-label).
        """
        self._check_fitted()
        out = self._forward(X)
        if self.n_outputs_ == 1:
            out = out.ravel()
        if out.ndim == 1:
            return np.vstack([1 - out, out]).T
        return out

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        self._check_score_input(X, y)
        with naming("y"):
            return super().score(X, y, sample_weight=sample_weight)

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba(X)``, shape (n_samples, n_classes)."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


# ---------------------------------------------------------------------------
# MLPRegressor
# ---------------------------------------------------------------------------

class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, fast.

    Same parameters, defaults, attributes and (for the same ``random_state``
    and float64 input) the same numbers as ``sklearn.neural_network.MLPRegressor``,
    with training in dnnfast's C++ core. Single- and multi-output targets.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        'squared_error' is ``0.5 * mean((y - ŷ)**2)`` (identity output unless
        ``output_activation`` says otherwise); 'poisson' uses an exp output.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
    warm_start, momentum, nesterovs_momentum, early_stopping,
    validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in :class:`MLPClassifier` (and scikit-learn).
    output_activation : str or None, default=None
        Output activation for ``loss='squared_error'`` (None: 'identity'), e.g.
        'relu' for non-negative targets; any dnnfast element-wise activation.
    n_threads : int or None, default=None
        Threads of the C++ core during fit and predict (None: as in
        :class:`MLPClassifier`).
    on_nonfinite : {'raise', 'warn', 'ignore'}, default='raise'
        As in :class:`MLPClassifier`.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_,
    t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_,
    n_layers_, n_outputs_, out_activation_, history_
        As in :class:`MLPClassifier`; ``coefs_[i]`` has shape
        (n_units[i], n_units[i+1]) and ``intercepts_[i]`` (n_units[i+1],).
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, output_activation=None, n_threads=None, on_nonfinite="raise"):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.output_activation = output_activation
        self.n_threads = n_threads
        self.on_nonfinite = on_nonfinite

    def _check_params(self):
        super()._check_params()
        if self.loss not in ("squared_error", "poisson"):
            raise ValueError(f"The 'loss' parameter of MLPRegressor must be one of ['poisson', 'squared_error'], "
                             f"got {self.loss!r}.")
        if self.output_activation is not None:
            if self.loss == "poisson":
                raise ValueError("output_activation cannot be set with loss='poisson' (its output is exp)")
            spec = parse_activation(self.output_activation, "output_activation")
            if spec.name == "softmax":
                raise ValueError("output_activation='softmax' is for classification; use MLPClassifier")

    def _is_classifier(self):
        return False

    def _output_activation_name(self):
        if self.loss == "poisson":
            return "exp"
        if self.output_activation is None:
            return "identity"
        spec = parse_activation(self.output_activation)
        return "logistic" if spec.name == "sigmoid" else spec.name

    def _output_spec(self):
        if self.out_activation_ == "exp":
            return parse_activation("identity")  # the Poisson network applies exp itself
        if self.out_activation_ == "logistic":
            return parse_activation("sigmoid")
        if self.output_activation is not None:
            spec = parse_activation(self.output_activation)
            if spec.name == self.out_activation_:
                return spec
        return parse_activation(self.out_activation_)

    def _core_loss(self):
        return "poisson" if self.out_activation_ == "exp" else "sse"

    def _data_loss_scale(self):
        # scikit-learn's squared loss is 0.5 * mean over outputs (sse / n_outputs);
        # its gradient stays (ŷ - y) / n, which is the core's sse gradient.
        return 1.0 / self.n_outputs_ if self._core_loss() == "sse" else 1.0

    def _validate_input(self, X, y, incremental, reset):
        def validate():
            Xc, yc = self._validate_Xy(X, y, reset=reset, y_numeric=True)
            if self.loss == "poisson" and np.any(np.asarray(yc) < 0):
                raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
            return Xc, np.asarray(yc), yc

        return collective(_distributed_context(), validate)

    def _combine_class_weight(self, sw, y, Y, dtype):
        return sw

    def _targets_from_outputs(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _outputs_from_targets(self, y):
        return np.asarray(y, dtype=np.float64)

    def _score_outputs(self, out, y_true, sw):
        y_pred = out.ravel() if out.shape[1] == 1 else out
        return r2_score(y_true, y_pred, sample_weight=sw)

    @fits_model
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 input trains a float32 network.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @_available_if(_check_solver)
    @fits_model
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of the stochastic solver on (X, y).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _predict(self, X, check_input=True):
        out = self._forward(X, check_input=check_input)
        return out.ravel() if out.shape[1] == 1 else out

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R² of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        self._check_score_input(X, y)
        with naming("y"):
            return super().score(X, y, sample_weight=sample_weight)

    @reads_model
    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        self._check_fitted()
        return self._predict(X)
