"""The shared base of MLPClassifier and MLPRegressor: parameters, the core
network, fit's common path, prediction.

Policy lives in Python, arithmetic in C++: the weights are drawn, the epochs
shuffled and the validation split made exactly as scikit-learn does it (see
``_sampling``); the solvers are in ``_solvers``, the input checks in
``_input``, the extras (plot_history, check_gradients) in ``_diagnostics``.

Parameter layout: the core keeps, per layer, W (fan_in x fan_out, row-major),
b and (prelu only) the alphas in one flat buffer; ``coefs_`` and
``intercepts_`` (and ``prelu_alphas_``) are views of that buffer, so fit trains
them in place and predict uses them as they are. Arrays the user assigns are
packed into a new buffer, once, at the next fit or predict.
"""
from __future__ import annotations

import math
import numbers
import operator
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from .. import _core
from ..distributed import collective
from ..distributed import current as _distributed_context
from .._buffers import aligned, aligned_empty
from .._guards import (CORE_OUTPUT_OVERFLOW, ON_NONFINITE, NonFiniteError, NonFiniteWarning, describe,
                       locate_nonfinite, parameter_cause)
from .._locking import copies_model, reads_model
from .._registry import LOSS_TABLE, activation_names, parse_activation
from .._train.driver import distributed_fit
from .._train.rows import SparseRows, predict_rows, rows_in_dtype, takes_core_csr
from .._validation import (_MEMORY_CHECK_FLOOR, PREDICT_CHUNK_ROWS as _PREDICT_CHUNK_ROWS, as_array, cast_finite, check_memory, check_thread_count, forward_row_bytes, is_sparse, network_bytes, packed_first_w_bytes,
                           workspace_rows)
from ._compat import SEED_RULE, BaseEstimator, InvalidParameterError, check_random_state, is_seed
from ._diagnostics import _Diagnostics
from ._input import _InputChecks, check_weight_total
from ._progress import TrainingHistory
from ._solvers import STOCHASTIC_SOLVERS, _Solvers, lbfgs_block_rows

if TYPE_CHECKING:
    import onnx

    from .._types import PathLike

_F = TypeVar("_F", bound=Callable[..., Any])

_CORE_CLASS = {np.dtype(np.float32): _core.Network32, np.dtype(np.float64): _core.Network64}

# estimator -> (flat buffer, core network, architecture key, multiply-adds, n_features) of
# its last checked prediction, for _forward_as_is. Kept outside the estimators'
# __dict__: predict must leave their attributes as they are (scikit-learn's
# check_dict_unchanged), and a copy or pickle must not carry it.
_AS_IS = weakref.WeakKeyDictionary()
#: The dtypes of an X that _forward_as_is converts itself (those whose
#: conversion is the full path's exactly).
_FAST_CONVERTED = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

# Where a non-finite parameter the core met came from (said by predict, save, to_onnx).
_EDITED = ": coefs_, intercepts_ or prelu_alphas_ edited in place"


def _native(dtype):
    """``dtype`` in this machine's byte order: an assigned big-endian float64
    coefs_ is a float64 model's."""
    return dtype if dtype.isnative else dtype.newbyteorder("=")
#: What a continued fit (warm_start, partial_fit) goes on from besides the
#: parameters: counters, solver state, stopping record and history.
_CONTINUED_STATE = ("n_iter_", "t_", "loss_", "best_loss_", "_no_improvement_count", "loss_curve_",
                    "validation_scores_", "best_validation_score_", "history_", "_optimizer", "_best_params")


def _available_if(check: Callable[[Any], Any]) -> Callable[[_F], _F]:
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

    return _Descriptor  # type: ignore[return-value]  # a descriptor that gives the method


def _check_solver(est):
    if est.solver not in STOCHASTIC_SOLVERS:
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


def _with_thread_count(n_threads, step_flops, fn, *args):
    """fn(*args) with the core on ``n_threads`` threads, the previous count
    restored however fn ends; ``n_threads=None`` keeps the current count,
    except that a step of fewer than ``_SMALL_STEP_FLOPS`` flops
    (``step_flops``) runs on one thread.

    The calling thread's own count: other threads, and the process-wide
    count, are left alone (two estimators used from two threads at once
    cannot undo each other's setting). It is set and restored in C++ around
    the call: as a Python context manager, a Ctrl-C landing in its
    ``__enter__`` or ``__exit__`` could leave the thread on that count for
    good. ``n_threads``: checked (``_BaseMLP._thread_count``)."""
    if n_threads is None and step_flops < _SMALL_STEP_FLOPS:
        n_threads = 1
    if n_threads is None:
        return fn(*args)
    return _core.call_with_local_num_threads(n_threads, fn, *args)


def _is_number(value):
    """A real number (an int, float or NumPy scalar), not None or a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _comparable(value):
    """A setting in a form that compares by value after pickling to another
    process: sequences as lists, NumPy scalars as Python numbers, dicts as
    sorted pairs, a generator instance by its type (under MPI only rank 0
    draws: the initial weights and the epoch order are broadcast from it)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return sorted(([_comparable(k), _comparable(v)] for k, v in value.items()), key=repr)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_comparable(v) for v in value]
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return f"<{type(value).__name__} instance>"
    return repr(value)



def _finite_float(v):
    """``v`` (a real number) is finite as a float: an int beyond the float range is not."""
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False

class _BaseMLP(_InputChecks, _Solvers, _Diagnostics, BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor (not for direct use)."""

    # -- parameters ----------------------------------------------------------

    def _check_params(self):
        """Every parameter's check, before a fit touches anything: an invalid
        one raises InvalidParameterError (a ValueError and a TypeError, as
        scikit-learn's), whichever of the two its rule raised."""
        try:
            self._param_rules()
            self._hidden_specs(len(self._hidden_sizes()))
        except InvalidParameterError:
            raise
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(str(exc)) from None

    def _param_rules(self):
        def num(name, lo=None, hi=None, lo_open=False, hi_open=False, integral=False, allow_inf=False):
            v = getattr(self, name)
            kind = numbers.Integral if integral else numbers.Real
            if allow_inf and isinstance(v, float) and v == np.inf:
                return
            if isinstance(v, bool) or not isinstance(v, kind):
                raise TypeError(f"The '{name}' parameter of {type(self).__name__} must be "
                                f"{'an int' if integral else 'a float'}, got {v!r}.")
            # An int is finite however large (np.isfinite cannot take one beyond int64);
            # a float parameter's int must become a float (scikit-learn takes alpha=2**64).
            if (not integral and not _finite_float(v)) or (lo is not None and (v < lo or (lo_open and v == lo))) or \
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
        if not is_seed(self.random_state):  # NumPy's message named no parameter
            raise ValueError(f"The 'random_state' parameter of {type(self).__name__} must be {SEED_RULE}, "
                             f"got {self.random_state!r}.")
        v = self.verbose  # scikit-learn's rule: a bool or an int >= 0 (-1 or 'yes' are no levels of output)
        if not (isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Integral) and v >= 0)):
            raise ValueError(f"The 'verbose' parameter of {type(self).__name__} must be an int in the range "
                             f"[0, inf) or a bool, got {v!r}.")
        self._thread_count()

    def _thread_count(self):
        """n_threads as an int (or None), by the thread-count policy of
        dnnfast.set_num_threads (0 aside): checked wherever it is read, by
        fit and by predict, since it may be set after the fit (int() took
        2.5, '2' or True, and -1 met the core's check, unnamed)."""
        n = self.n_threads
        if n is None:
            return None
        try:
            return check_thread_count(n, "n_threads", allow_zero=False)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(str(exc)) from None

    # Parameters that do not change what a fit computes: the progress output,
    # and the thread count (results are bit-identical on any thread count).
    _LOCAL_PARAMS = frozenset({"verbose", "n_threads"})

    def _settings_fingerprint(self):
        """(name, value) of every parameter that shapes the computation, for
        the ranks' agreement at fit start (Context.check_same_settings)."""
        return [(name, _comparable(v)) for name, v in sorted(self.get_params(deep=False).items())
                if name not in self._LOCAL_PARAMS]

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
            where = f"activation[{i}]" if isinstance(act, list) else "activation"
            try:
                spec = parse_activation(a, where)
            except (TypeError, ValueError) as exc:
                if isinstance(a, str) and "unknown activation" in str(exc):
                    # The hidden layers' names: scikit-learn's four, then dnnfast's
                    # others (softmax is an output's only).
                    extra = [n for n in activation_names() if n not in ("identity", "sigmoid", "tanh", "relu",
                                                                          "softmax")]
                    raise ValueError(f"{where}: unknown activation {a!r}; known: 'identity', 'logistic', "
                                     f"'tanh', 'relu' (scikit-learn's), and {', '.join(map(repr, extra))}") from None
                raise ValueError(str(exc)) from None
            if spec.name == "softmax":
                raise ValueError(f"{where}: softmax is only available as an output activation")
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
        self._check_shapes()
        # np.shape: an assigned coefs_ may hold lists (_model_dtype takes them)
        hidden = [np.shape(c)[1] for c in self.coefs_[:-1]]
        specs = self._hidden_specs(len(hidden)) + [self._output_spec()]
        sizes = [np.shape(self.coefs_[0])[0]] + hidden + [np.shape(self.coefs_[-1])[1]]
        return sizes, specs, self._core_loss()

    def _check_shapes(self):
        """coefs_, intercepts_ and prelu_alphas_ against each other, the fitted
        features and outputs. Assigned by hand with a wrong shape, one would be
        packed into the flat buffer with part of its layer left unwritten or
        spilling into the next (scikit-learn's matmul or broadcast would
        refuse it), or would redefine the network's input width."""
        coefs, intercepts, alphas = list(self.coefs_), list(self.intercepts_), list(self._alphas())
        if not coefs or len(intercepts) != len(coefs) or len(alphas) != len(coefs):
            raise ValueError("coefs_, intercepts_ (and prelu_alphas_) must hold one array per layer, got "
                             f"{len(coefs)}, {len(intercepts)}"
                             + (f" and {len(alphas)}" if "prelu_alphas_" in self.__dict__ else ""))
        d = self.__dict__
        rows, source = d.get("n_features_in_"), "n_features_in_"
        for l, (W, b, a) in enumerate(zip(coefs, intercepts, alphas)):
            shape = np.shape(W)
            if len(shape) != 2 or (rows is not None and shape[0] != rows):
                raise ValueError(f"coefs_[{l}] has shape {shape}, expected "
                                 + ("a 2-D array" if rows is None else f"{rows} rows ({source})"))
            for name, v in ((f"intercepts_[{l}]", b), (f"prelu_alphas_[{l}]", a)):
                if v is not None and np.shape(v) != (shape[1],):
                    raise ValueError(f"{name} has shape {np.shape(v)}, expected ({shape[1]},) for coefs_[{l}] "
                                     f"of shape {shape}")
            rows, source = shape[1], f"the columns of coefs_[{l}]"
        if "n_outputs_" in d and rows != d["n_outputs_"]:
            raise ValueError(f"coefs_[{len(coefs) - 1}] has {rows} columns, expected n_outputs_ = {d['n_outputs_']}")

    def _params(self, net, dtype):
        """The parameters as a flat buffer for one call: the bound one, or
        coefs_ & co packed anew (the attributes left as they are)."""
        self._check_alphas(net)
        P = self._bound_params()
        if P is None or P.dtype != dtype:
            P = self._pack(net, dtype)
        return P

    def _check_finite(self, what, dtype):
        """Refuse what predict would refuse, before ``what`` (save, to_onnx)
        writes it: a file dnnfast.load refuses, or an ONNX model answering NaN."""
        net = self._core_net(dtype)
        cause = parameter_cause(what, net.layout(), self._params(net, dtype), _EDITED)
        if cause is not None:
            raise cause

    def _core_net(self, dtype):
        sizes, specs, loss = self._architecture()
        key = (np.dtype(dtype).str, tuple(sizes), tuple((s.id, s.param) for s in specs), loss)
        cached = self.__dict__.get("_core")
        if cached is not None and cached[0] == key:
            return cached[1]
        net = _CORE_CLASS[np.dtype(dtype)](sizes, [s.id for s in specs], [s.param for s in specs],
                                           LOSS_TABLE[loss][0], True)
        self.__dict__["_core"] = (key, net)
        return net

    def _pack(self, net, dtype):
        """A new flat core buffer holding coefs_, intercepts_ (and prelu alphas)."""
        P = aligned_empty(net.num_params, dtype)
        for lay, W, b, a in zip(net.layout(), self.coefs_, self.intercepts_, self._alphas()):
            P[lay["w_offset"]:lay["w_offset"] + np.size(W)] = np.asarray(W).ravel()
            P[lay["b_offset"]:lay["b_offset"] + np.size(b)] = b
            if lay["alpha_offset"] is not None:
                P[lay["alpha_offset"]:lay["alpha_offset"] + np.size(a)] = a
        return P

    def _bind(self, net, P):
        """Make ``P`` the parameters: coefs_, intercepts_ (and prelu_alphas_) become views of it."""
        coefs, intercepts, alphas = [], [], []
        for lay in net.layout():
            m_in, m_out = lay["m_in"], lay["m_out"]
            coefs.append(P[lay["w_offset"]:lay["w_offset"] + m_in * m_out].reshape(m_in, m_out))
            intercepts.append(P[lay["b_offset"]:lay["b_offset"] + m_out])
            off = lay["alpha_offset"]
            alphas.append(None if off is None else P[off:off + m_out])
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        if any(a is not None for a in alphas):
            self.prelu_alphas_ = alphas
        else:
            self.__dict__.pop("prelu_alphas_", None)
            alphas = None
        self.__dict__["_flat"] = (P, tuple(coefs), tuple(intercepts), None if alphas is None else tuple(alphas))

    def _bound_params(self):
        """The flat buffer of which coefs_, intercepts_ and prelu_alphas_ are still
        the views, or None: after the user assigned new arrays (scikit-learn's own
        tests set ``coefs_`` by hand), or after unpickling."""
        flat = self.__dict__.get("_flat")
        if flat is None:
            return None
        P, coefs, intercepts, alphas = flat
        d = self.__dict__
        for now, bound in ((d.get("coefs_"), coefs), (d.get("intercepts_"), intercepts),
                           (d.get("prelu_alphas_"), alphas)):
            if now is None or bound is None:
                if now is not bound:
                    return None
            elif len(now) != len(bound) or not all(map(operator.is_, now, bound)):
                return None
        return P

    def _flat_params(self, net, dtype):
        """The parameters as one flat buffer of ``dtype``: the bound one, else
        coefs_ & co packed into a new one (bound to them when of their dtype)."""
        P = self._params(net, dtype)
        if P is not self._bound_params() and np.dtype(dtype) == _native(np.asarray(self.coefs_[0]).dtype):
            self._bind(net, P)
        return P

    def _alphas(self):
        return getattr(self, "prelu_alphas_", None) or [None] * len(self.coefs_)

    def _model_dtype(self):
        """The fitted parameters' dtype. coefs_, intercepts_ and prelu_alphas_ may
        have been assigned by hand (scikit-learn's own tests do): they must all be
        float32 or all float64 (int64 gave a KeyError, float16 a pybind11
        TypeError; mixed ones would be cast to coefs_[0]'s in silence), in either
        byte order (packed, they convert), and each is checked as Network checks
        assigned weights (as_array): a masked array with masked entries is
        refused by name (predict, save and partial_fit used the values under the
        mask), a list or another subclass is its values. Every use of the
        parameters (fit, predict, save, to_onnx) asks this first."""
        dtypes = set()
        for name, seq in (("coefs_", self.coefs_), ("intercepts_", self.intercepts_),
                          ("prelu_alphas_", self._alphas())):
            for l, a in enumerate(seq):
                if a is not None:
                    dtypes.add(_native(as_array(a, f"{name}[{l}]", numeric_kinds="biufcOUSVmM").dtype))
        if len(dtypes) != 1 or not dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}:
            raise TypeError("coefs_, intercepts_ and prelu_alphas_ must all be float32 or all float64 arrays, got "
                            f"{sorted(str(d) for d in dtypes)}")
        return dtypes.pop()

    def _check_alphas(self, net):
        """The fitted parameters against the network ``activation`` gives now: set
        to or from prelu after the fit, there are no alphas to read (a packed
        buffer's would be left unwritten) or alphas with no place."""
        alphas = self._alphas()
        if (len(alphas) != len(net.layout())
                or any((lay["alpha_offset"] is None) != (a is None) for lay, a in zip(net.layout(), alphas))):
            raise ValueError(f"activation={self.activation!r:.60} does not match the fitted parameters (prelu "
                             "layers have alphas, others none): set it back, or fit again without warm_start")

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
        # The C++ object is rebuilt on demand, and the flat buffer with it:
        # coefs_ & co pickle as separate arrays, no longer its views.
        for key in ("_core", "_flat"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        restore = getattr(super(), "__setstate__", None)  # scikit-learn's, when installed
        if restore is not None:
            restore(state)
        else:
            self.__dict__.update(state)
        self._bind_loaded()

    def _bind_loaded(self):
        """After unpickling or loading: make coefs_ & co views of one flat buffer
        again (a copy of them), so that predict needs no packing."""
        try:
            dtype = self.coefs_[0].dtype
            self._flat_params(self._core_net(dtype), dtype)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            pass  # not fitted, or not consistent: predict's checks will say so

    @reads_model  # a save during a fit waits for it: never a half-trained file
    def save(self, path: PathLike) -> None:
        """Write the fitted estimator to ``path`` as a model file.

        A versioned ``.npz`` readable with NumPy alone (see ``docs/model_files.md``),
        written atomically. ``dnnfast.load(path)`` gives back an estimator with
        the same parameters, fitted attributes and solver state: the same
        predictions, bit for bit, and ``partial_fit`` / ``warm_start`` continue
        as they would have. (scikit-learn's MLPs have no ``save``: they are
        pickled, which works here too.)

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write; one already there is replaced only once the
            new one is complete (a failure leaves it as it was).
        """
        from ._file import save_estimator  # the archive (zipfile, json) loads on first use

        save_estimator(self, path)

    # -- ONNX ------------------------------------------------------------------

    @reads_model  # during a fit: waits for it, never a torn model
    def _onnx_spec(self):
        from .._onnx import OnnxSpec

        self._check_fitted()
        dtype = self._model_dtype()
        _, specs, _ = self._architecture()
        self._check_finite("to_onnx", dtype)
        layers = [(np.array(W, dtype=dtype), np.array(b, dtype=dtype).ravel(), act.name,
                   np.array(alpha, dtype=dtype) if alpha is not None else (act.param if act.has_param else None))
                  for W, b, alpha, act in zip(self.coefs_, self.intercepts_, self._alphas(), specs)]
        if not self._is_classifier():
            return OnnxSpec(dtype, layers, "regressor")
        return OnnxSpec(dtype, layers, "classifier", np.asarray(self.classes_), self._label_binarizer.y_type_)

    def to_onnx(self, path: PathLike | None = None, *, opset: int | None = None) -> onnx.ModelProto:
        """The fitted estimator as an ONNX model (``onnx.ModelProto``), also written to ``path`` if given.

        The inputs and outputs are skl2onnx's for scikit-learn's MLPs (see
        ``dnnfast.to_onnx``); needs ``dnnfast[onnx]``.

        Parameters
        ----------
        path : str, bytes or os.PathLike, optional
            Also write the model there (atomically: a failure leaves any file
            there as it was).
        opset : int, optional
            The ai.onnx opset, 13 or later; by default 21 (or onnx's latest if
            that is older).
        """
        from .. import _onnx

        _onnx.import_onnx()  # the missing extra is said before any work
        return _onnx.export(self._onnx_spec(), path, opset, type(self).__name__)

    # -- fitting ---------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False, prepare=None):
        # A fit refused before its solver takes a step leaves the estimator
        # as it was: a fitted model keeps its weights (an early-stopping
        # split that cannot be made is found only after _initialize drew new
        # ones), an unfitted one stays unfitted (not a model of random
        # weights that predicts, nor n_features_in_ or a first partial_fit's
        # classes_ that refuse the corrected call). Until then attributes
        # are replaced, never written in place, so putting the old ones back
        # restores it. From the first step on the solvers' own rules keep it
        # whole (an interrupted epoch undone, divergence's weights restored).
        # ``prepare``: partial_fit's first checks, which may set classes_.
        before = dict(self.__dict__)
        self._stepped = False
        try:
            with distributed_fit(_distributed_context()):  # over MPI, Ctrl-C a flag from the first collective on
                if prepare is not None:
                    prepare()
                return self._fit_steps(X, y, sample_weight, incremental)
        except BaseException:
            if not self.__dict__.get("_stepped"):
                self.__dict__.clear()
                self.__dict__.update(before)
            raise
        finally:
            self.__dict__.pop("_stepped", None)

    def _fit_steps(self, X, y, sample_weight, incremental):
        # Inside a dnnfast.distributed.Context every check is agreed by all
        # ranks (an error on one is raised on all) and training is data-parallel.
        ctx = _distributed_context()
        collective(ctx, self._check_params)
        if ctx is not None:
            collective(ctx, self._check_distributed)
            # Before any collective whose count or size depends on a setting
            # (max_iter, batch_size, hidden_layer_sizes ...): a mismatch would
            # hang there, or train different models on different ranks.
            ctx.check_same_settings(self._settings_fingerprint(), f"{type(self).__name__}'s parameter")
        hidden = self._hidden_sizes()
        hidden_specs = self._hidden_specs(len(hidden))
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y, y_raw = self._validate_input(X, y, incremental, reset=first_pass)

        def weights():
            sw = self._check_sample_weight(sample_weight, X, whole=ctx is None)
            return self._combine_class_weight(sw, y_raw, Y, X.dtype, whole=ctx is None)

        def targets():
            Ya = np.asarray(Y)
            # As float: a classifier's 1000 classes over 40000 rows are 320 MB of one-hot rows.
            check_memory(Ya.size * X.dtype.itemsize, "y",
                         lambda: f"its targets as {Ya.size:,} values of {X.dtype.name} (one column per output)")
            T = cast_finite(Ya, X.dtype, "y")
            return T.reshape(-1, 1) if T.ndim == 1 else T

        # Each rank's local checks inside collective(): an error on one rank
        # is raised on all (raised on one alone, the others had waited in
        # the next collective for good).
        sw = collective(ctx, weights)
        Y = collective(ctx, targets)
        n_samples, n_features = X.shape
        if ctx is not None:
            # classes first: different classes (partial_fit's argument) also differ in n_outputs.
            ctx.check_same_settings([("classes", _comparable(getattr(self, "classes_", None))),
                                     ("n_features", n_features), ("n_outputs", Y.shape[1]), ("dtype", X.dtype.name),
                                     ("continues a fitted model", not first_pass),
                                     # a weighted batch's D is its total weight, an unweighted one's its rows
                                     ("row weights (sample_weight or class_weight)", sw is not None)],
                                    "the data's")
            if sw is not None:
                # the whole data's weights, as one process checks them (a shard's may all be 0)
                check_weight_total(ctx.sum_(np.array([np.sum(sw, dtype=np.float64)]))[0])
        self.n_outputs_ = Y.shape[1]
        layer_units = [n_features] + hidden + [self.n_outputs_]
        if first_pass:
            collective(ctx, lambda: self._check_size(layer_units, hidden_specs, X))
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, layer_units, X.dtype, hidden_specs)
        else:
            def continued():
                if [np.shape(c) for c in self.coefs_] != list(zip(layer_units[:-1], layer_units[1:])):
                    raise ValueError("warm_start / partial_fit: the data or hidden_layer_sizes do not match the "
                                     "fitted network's layers")
                self._check_continued_output()
                self._complete_fit_state(layer_units)
            collective(ctx, continued)
            if ctx is not None:
                self._share_continued_state(ctx)
        dtype = self._model_dtype()
        if X.dtype != dtype:
            X, Y, sw = collective(ctx, lambda: (rows_in_dtype(X, dtype), cast_finite(Y, dtype, "y"),
                                                None if sw is None else cast_finite(sw, dtype, "sample_weight")))
        elif is_sparse(X):  # (its CSR copies' memory checked on every rank: one refusing stops all)
            X = collective(ctx, lambda: rows_in_dtype(X, dtype))
        collective(ctx, lambda: self._check_settings_in_dtype(dtype))
        macs = sum(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))
        step_rows = X.shape[0] if self.solver == "lbfgs" else (
            min(200, X.shape[0]) if self.batch_size == "auto" else min(int(self.batch_size), X.shape[0]))
        def train():
            net = self._core_net(dtype)
            P = self._flat_params(net, dtype)  # coefs_ & co are its views: trained in place
            if ctx is not None:  # every rank starts from rank 0's weights
                ctx.broadcast_(P)
            try:
                if self.solver in STOCHASTIC_SOLVERS:
                    self._fit_stochastic(net, P, X, Y, sw, incremental, ctx)
                else:
                    self._fit_lbfgs(net, P, X, Y, sw)
            finally:
                # lbfgs's blocks and large batches size it by rows: kept, it
                # was several times the training data for the estimator's
                # lifetime (BENCHMARKS.md, "Measurements behind the code": _fit_steps).
                net.release_workspace()
            return net, P

        net, P = _with_thread_count(self._thread_count(), 6.0 * step_rows * macs, train)
        if self.on_nonfinite == "raise" and not _core.all_finite(P):
            self._nonfinite(net, P, X, None, self.n_iter_)  # raises
        return self

    def _share_continued_state(self, ctx):
        """Continuing a fitted model over MPI: every rank takes rank 0's
        training state (``_CONTINUED_STATE``) and parameters' dtype, as the
        parameters themselves (broadcast in ``train``). Each rank may have
        fitted or loaded its own model before the Context: with the weights
        alone shared, each went on with its own step counts, solver state and
        stopping record, and ended with other weights, or stopped alone."""
        d = self.__dict__
        mine = collective(ctx, lambda: dict({k: d[k] for k in _CONTINUED_STATE if k in d},
                                            _dtype=self._model_dtype()) if ctx.rank == 0 else None)
        state = ctx.comm.bcast(mine, root=0)

        def take():
            if ctx.rank == 0:
                return
            dtype = state.pop("_dtype")
            for k in _CONTINUED_STATE:
                d.pop(k, None)
            d.update(state)
            opt = d.get("_optimizer")
            if isinstance(opt, dict):  # the core's buffers, aligned as it wants them
                opt.update((k, aligned(v)) for k, v in list(opt.items()) if isinstance(v, np.ndarray))
            if self._model_dtype() != dtype:  # the parameters come from rank 0 in its dtype
                self.coefs_ = [np.asarray(c, dtype=dtype) for c in self.coefs_]
                self.intercepts_ = [np.asarray(b, dtype=dtype) for b in self.intercepts_]
                if "prelu_alphas_" in d:
                    self.prelu_alphas_ = [None if a is None else np.asarray(a, dtype=dtype)
                                          for a in self.prelu_alphas_]
        collective(ctx, take)

    def _check_distributed(self):
        """What data-parallel training (dnnfast.distributed) cannot do: each
        of these needs the whole data set in one process."""
        if self.solver not in STOCHASTIC_SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not supported under distributed training; "
                             "use solver='sgd' or 'adam'")
        if self.early_stopping:
            raise ValueError("early_stopping=True is not supported under distributed training: hold out a "
                             "validation set yourself and score it after fit")
        if isinstance(getattr(self, "class_weight", None), str):
            raise ValueError(f"class_weight={self.class_weight!r} is not supported under distributed "
                             "training (it needs the class counts of all ranks); pass a dict")

    def _nonfinite(self, net, P, X, good, epoch, unit="epoch", stacklevel=4):
        """Name where training went non-finite; with on_nonfinite='raise',
        restore ``good`` (the parameters before that epoch), drop the
        optimizer state (it holds the same non-finite values) and raise."""
        # A sparse X: its rows made dense in blocks of at most the fit's own (SparseRows.rows)
        layer, where = locate_nonfinite(net.layout(), P, net.forward, X,
                                        X.rows if isinstance(X, SparseRows) else _PREDICT_CHUNK_ROWS)
        detail = ("non-finite parameter weights " if where != "cost" else "a non-finite loss ") + \
            describe(epoch, layer, where, unit)
        if self.on_nonfinite != "raise":
            warnings.warn("Solver produced " + detail + ". Training goes on (on_nonfinite=%r)." % self.on_nonfinite,
                          NonFiniteWarning, stacklevel=stacklevel)
            return
        # scikit-learn's message first (code may match on it), then where.
        msg = ("Solver produced non-finite parameter weights. The input data may contain large values and need "
               "to be preprocessed (" + detail)
        if good is not None:
            P[:] = good
            msg += "; coefs_ and intercepts_ are those from before that " + unit
        self.__dict__.pop("_optimizer", None)
        raise NonFiniteError(msg + "; or lower learning_rate_init).", epoch=epoch, layer=layer, where=where)

    def _check_size(self, layer_units, hidden_specs, X):
        """Refuse, before anything is allocated, a network that cannot fit in
        memory: parameters, gradient and optimizer state (Adam: two more, L-BFGS:
        SciPy's float64 copies and ten correction pairs), the core's workspace
        for one batch (L-BFGS: one block of rows) with its packed first-layer
        W, and the float64 draws of the largest layer."""
        itemsize = X.dtype.itemsize
        prelu = [l for l, s in enumerate(hidden_specs) if s.per_unit]
        p_bytes, per_row = network_bytes(layer_units, itemsize, per_unit_params=prelu)
        packed_w = packed_first_w_bytes(layer_units, itemsize)
        if is_sparse(X) and takes_core_csr(X):  # read as CSR: no gathered rows of X, no packed first W
            per_row -= layer_units[0] * itemsize
            packed_w = 0
        copies = {"adam": 5, "sgd": 4, "lbfgs": 2 + 24 * 8 // itemsize}[self.solver]
        n = X.shape[0]
        batch = min(200 if self.batch_size == "auto" else int(self.batch_size), n)
        # lbfgs evaluates all rows in blocks (one block when they are few)
        rows = min(lbfgs_block_rows(n, p_bytes // itemsize, per_row) if self.solver == "lbfgs"
                   else workspace_rows(batch, layer_units, itemsize), n)
        largest_w = max(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))
        need = copies * p_bytes + packed_w + rows * per_row + 16 * largest_w
        check_memory(need, "hidden_layer_sizes", f"a network of {p_bytes // itemsize:,} parameters "
                     f"(layers {layer_units})")

    def _check_continued_output(self):
        """A continued fit trains the fitted network as it is; the regressor
        refuses parameters changed since that chose its output."""

    def _complete_fit_state(self, layer_units):
        """Continuing a model whose weights were set by hand (scikit-learn's
        test_fit sets coefs_, intercepts_ and a few counters, then calls
        partial_fit): the fitted attributes it left out start as _initialize
        starts them."""
        d = self.__dict__
        d.setdefault("n_iter_", 0)
        d.setdefault("t_", 0)
        d.setdefault("n_layers_", len(layer_units))
        d.setdefault("out_activation_", self._output_activation_name())
        if "history_" not in d:
            self.history_ = TrainingHistory()
        if self.solver in STOCHASTIC_SOLVERS:
            d.setdefault("loss_curve_", [])
            d.setdefault("_no_improvement_count", 0)
            # The stopping record goes on only in the mode it was kept in:
            # early_stopping switched since (or an lbfgs fit, or a model set by
            # hand without it), the other mode's None met the epoch's
            # comparisons (scikit-learn raises there). Its best and its count
            # of epochs without improvement measure another quantity (the
            # training loss or a validation score), so this mode's record
            # starts as a first fit's; the weights and solver state go on.
            if self.early_stopping:
                kept = isinstance(d.get("validation_scores_"), list) and _is_number(d.get("best_validation_score_"))
            else:
                kept = _is_number(d.get("best_loss_"))
            if kept:
                d.setdefault("best_loss_", None)
                d.setdefault("validation_scores_", None)
                d.setdefault("best_validation_score_", None)
            else:
                self._start_stopping_record()

    def _start_stopping_record(self):
        """scikit-learn's record for early stopping (n_iter_no_change, tol)
        at the start of training: the best validation score with
        early_stopping, else the best training loss; the other's None."""
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self.__dict__.pop("_best_params", None)  # the weights of the best validation score: from this record on

    def _initialize(self, Y, layer_units, dtype, hidden_specs):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(layer_units)
        self.__dict__.pop("_output_param", None)  # a new fit takes the parameters' output as it is now
        self.out_activation_ = self._output_activation_name()
        self._output_param = self._output_spec().param  # what predict then uses (_output_spec)
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
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._start_stopping_record()
        else:
            for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
                self.__dict__.pop(name, None)





    # -- prediction --------------------------------------------------------------

    def _forward(self, X, check_input=True):
        """Network outputs Ŷ, shape (n_samples, n_outputs_), in the model's dtype."""
        if check_input:
            out = self._forward_as_is(X)
            if out is not None:
                return out
            self._check_fitted()
            X = self._validate_X(X, reset=False, keep_sparse=True)
        dtype = self._model_dtype()
        n, itemsize = X.shape[0], np.dtype(dtype).itemsize
        # CSR: the core's (core_csr, its copies checked there), or made dense a chunk of rows at a time
        sparse = not isinstance(X, np.ndarray) and not takes_core_csr(X)
        # The output and one chunk's workspace, as Network.predict checks them,
        # and X's conversion: whole, or one chunk of a sparse X (as it is, then in dtype).
        units = self._architecture()[0]  # from the parameters: assigned coefs_ are checked later, by _params
        converted = (min(n, _PREDICT_CHUNK_ROWS) * X.shape[1] * (X.dtype.itemsize + itemsize) if sparse
                     else X.size * itemsize if isinstance(X, np.ndarray) and X.dtype != dtype else 0)
        check_memory(converted + n * units[-1] * itemsize
                     + min(n, _PREDICT_CHUNK_ROWS) * forward_row_bytes(units, itemsize), "X",
                     lambda: f"predicting {n:,} rows (an output of {n * units[-1]:,} values)")
        X = cast_finite(X, dtype, "X") if isinstance(X, np.ndarray) else SparseRows(X, dtype)
        macs = sum(np.size(c) for c in self.coefs_)

        def predict(net, P):
            # check_input False: unchecked, a fit's validation score (NaN when diverged)
            return predict_rows(net, P, X, check_input)

        def forward():
            net = self._core_net(dtype)
            # Arrays the user assigned are packed for this call only: predict
            # leaves the estimator's attributes as they are.
            P = self._params(net, dtype)
            try:
                return net, P, predict(net, P)
            except ValueError as exc:  # the core's "output overflowed": named exactly when a parameter is the cause
                cause = str(exc).startswith(CORE_OUTPUT_OVERFLOW) and parameter_cause(
                    "predict", net.layout(), P, _EDITED)
                if not cause:
                    raise
                raise cause from None

        net, P, out = _with_thread_count(self._thread_count(), 2.0 * X.shape[0] * macs, forward)
        if P is self._bound_params() and "feature_names_in_" not in self.__dict__:  # else an array X warns
            _AS_IS[self] = (P, net, self._architecture_key(), macs, units[0])
        return out

    def _architecture_key(self):
        """What the core network of a fitted model follows from besides coefs_'
        shapes: the activations (settable after fit) and the output."""
        act = self.activation
        return (tuple(act) if isinstance(act, list) else act, self.out_activation_,
                getattr(self, "output_activation", None))

    def _forward_as_is(self, X):
        """The outputs for an X that needs no checks but finiteness (a 2-D
        array of the model's width), straight from the core network and flat
        buffer of the last prediction; None otherwise, and the full path
        runs. A one-row call is then mostly the core's predict: no
        scikit-learn check_array, no packing, no parsing. An X of float16,
        float32 or float64 that is of another of them than the model's, or
        not C-contiguous (a row of pandas' to_numpy(), which is
        Fortran-ordered), is converted here as the full path converts it
        (check_array keeps float32 and float64, makes float16 float64, and
        cast_finite casts), whose checks had taken 20 times the call's time
        (BENCHMARKS.md, "Measurements behind the code": _forward_as_is)."""
        fast = _AS_IS.get(self)
        if fast is None or type(X) is not np.ndarray:
            return None
        P, net, key, macs, m_x = fast
        # More rows than a predict chunk: the full path checks the output's memory.
        if not (X.ndim == 2 and 0 < X.shape[0] <= _PREDICT_CHUNK_ROWS and X.shape[1] == m_x) \
                or self._bound_params() is not P or key != self._architecture_key():
            return None
        if X.dtype != P.dtype or not X.flags.c_contiguous:
            # (a copy too large to skip the memory check goes the full path, which makes it)
            if X.dtype not in _FAST_CONVERTED or X.size * P.itemsize >= _MEMORY_CHECK_FLOOR:
                return None
            with np.errstate(over="ignore"):  # a value too large for the model's dtype: the core refuses it below
                X = np.ascontiguousarray(X, dtype=P.dtype)
        n_threads = self._thread_count()  # (raised here, not taken for the core's ValueError below)
        try:
            return _with_thread_count(n_threads, 2.0 * X.shape[0] * macs, net.predict, P, X)
        except ValueError:  # NaN or infinity in X: the full path raises scikit-learn's message
            return None

    def __sklearn_is_fitted__(self):
        return hasattr(self, "coefs_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
