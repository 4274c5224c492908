"""MLPRegressor: scikit-learn's estimator on the C++ core."""
from __future__ import annotations

import dataclasses

from typing import TYPE_CHECKING, Any, Sequence, TypeVar

import numpy as np

from ..distributed import collective
from ..distributed import current as _distributed_context
from .._locking import fits_model, reads_model
from .._registry import parse_activation
from ._base import _available_if, _BaseMLP, _check_solver
from ._compat import RegressorMixin, numpy_r2_score, r2_score

if TYPE_CHECKING:
    from scipy.sparse import spmatrix

    from .._types import ArrayLike, FloatArray, NDArray, Seed

_Self = TypeVar("_Self", bound="MLPRegressor")


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

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: Any = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: int | str = "auto", learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True, random_state: Seed = None,
                 tol: float = 1e-4, verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000, output_activation: Any = None, n_threads: int | None = None,
                 on_nonfinite: str = "raise") -> None:
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

    def _param_rules(self):
        super()._param_rules()
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
        """The fitted output layer's activation: out_activation_, with the
        parameter it was fitted with (``_output_param``, kept by fit): a
        set_params(output_activation=...) after fit had predict use another
        activation's default parameter (leaky_relu fitted with alpha 0.3
        predicted with 0.1)."""
        if self.out_activation_ == "logistic":
            return parse_activation("sigmoid")
        spec = None
        if self.output_activation is not None:
            spec = parse_activation(self.output_activation)
        if spec is None or spec.name != self.out_activation_:
            spec = parse_activation(self.out_activation_)
        param = self.__dict__.get("_output_param")
        return spec if param is None or not spec.has_param else dataclasses.replace(spec, param=param)

    def _check_continued_output(self):
        # out_activation_ (and with it the loss trained) is the fitted
        # network's: a loss or output_activation changed since was ignored
        # in silence, while a changed hidden_layer_sizes is refused.
        fitted = self.__dict__.get("out_activation_")
        if fitted is None or fitted == self._output_activation_name():
            return
        name = "loss" if (fitted == "exp") != (self.loss == "poisson") else "output_activation"
        raise ValueError(f"warm_start / partial_fit: {name}={getattr(self, name)!r} does not match the fitted "
                         f"network's output (out_activation_={fitted!r}); set it back, or fit again without "
                         "warm_start")

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

    def _combine_class_weight(self, sw, y, Y, dtype, whole=True):
        return sw

    def _targets_from_outputs(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _outputs_from_targets(self, y):
        return np.asarray(y, dtype=np.float64)

    def _score_outputs(self, out, y_true, sw):
        y_pred = out.ravel() if out.shape[1] == 1 else out
        return numpy_r2_score(y_true, y_pred, sample_weight=sw)

    @fits_model
    def fit(self: _Self, X: ArrayLike | spmatrix, y: ArrayLike, sample_weight: ArrayLike | None = None) -> _Self:
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
    def partial_fit(self: _Self, X: ArrayLike | spmatrix, y: ArrayLike, sample_weight: ArrayLike | None = None) -> _Self:
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

    def score(self, X: ArrayLike | spmatrix, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
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
        return self._score(X, y, sample_weight, r2_score)

    @reads_model
    def predict(self, X: ArrayLike | spmatrix) -> FloatArray:
        """Predicted targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        return self._predict(X)  # checks that the model is fitted

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # loss='poisson' refuses negative targets (as scikit-learn's PoissonRegressor, which says so too):
        # tools that read the tags, check_estimator's checks among them, give it non-negative ones.
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags
