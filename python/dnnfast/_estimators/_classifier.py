"""MLPClassifier: scikit-learn's estimator on the C++ core."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Sequence, TypeVar

import numpy as np

from ..distributed import collective
from ..distributed import current as _distributed_context
from .._locking import fits_model, reads_model
from .._registry import parse_activation
from .._train.driver import distributed_fit
from .._validation import check_estimator_input
from ._base import _available_if, _BaseMLP, _check_solver
from ._compat import ClassifierMixin, accuracy_score, numpy_accuracy_score
from ._input import check_row_weights
from ._targets import LabelBinarizer, binarize_simple, type_of_target, unique_labels

if TYPE_CHECKING:
    from scipy.sparse import spmatrix

    from .._types import ArrayLike, FloatArray, NDArray, Seed

_Self = TypeVar("_Self", bound="MLPClassifier")


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
        uses ``n_samples / (n_classes * count(class))``, the samples and the
        counts weighed by ``sample_weight`` (as scikit-learn's
        ``compute_class_weight``). 'balanced' needs the whole data's counts:
        ``partial_fit`` refuses it (pass a dict, from ``compute_class_weight``
        on a large enough sample). Not for multi-label.
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

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: Any = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: Seed = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000, class_weight: dict[Any, float] | str | None = None,
                 n_threads: int | None = None, on_nonfinite: str = "raise") -> None:
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

    @property
    def loss(self) -> str:
        """``"log_loss"``: a classifier always optimises it, as scikit-learn's does."""
        return "log_loss"

    def _param_rules(self):
        super()._param_rules()
        cw = self.class_weight
        if not (cw is None or isinstance(cw, dict) or (isinstance(cw, str) and cw == "balanced")):
            raise ValueError(f"The 'class_weight' parameter of MLPClassifier must be a dict, 'balanced' or None, "
                             f"got {cw!r}.")

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
        labels = y
        if ctx is not None:
            # Distributed: the classes are those of all ranks' shards together
            # (gathered for class labels only: a rank with an indicator matrix
            # skipped the gathering its peers waited in).
            ctx.check_same_settings([("y's dimensions (class labels: 1, a 0/1 indicator matrix: 2)", np.ndim(y))],
                                    "the data's")
            if np.ndim(y) == 1:
                labels = ctx.union_labels(np.unique(y))
        return collective(ctx, lambda: self._binarize_targets(X, y, labels, incremental))

    def _binarize_targets(self, X, y, labels, incremental):
        fresh = not hasattr(self, "classes_") or (not self.warm_start and not incremental)
        fast = None  # (binarizer, Y) from the plain-array path, where y allows it
        if not fresh:
            fast = binarize_simple(y, self._label_binarizer)
        elif labels is y:  # not distributed: the classes are y's own
            fast = binarize_simple(y)
        if fresh and fast is not None:
            self._label_binarizer, Y = fast
            self.classes_ = self._label_binarizer.classes_
            return X, Y, y
        if fresh:
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(labels)
            self.classes_ = self._label_binarizer.classes_
        else:
            if labels is not y:  # distributed: all ranks' classes together, as a first fit takes them
                classes = np.unique(labels)
            else:
                classes = np.unique(y) if fast is not None else unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        Y = fast[1] if fast is not None else self._label_binarizer.transform(y).astype(bool)
        return X, Y, y

    def _combine_class_weight(self, sw, y, Y, dtype, whole=True):
        """sample_weight times each row's class weight. ``whole``: y is all
        the data (False for one rank's shard: the caller checks the total)."""
        cw = self.class_weight
        if cw is None:
            return sw
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            raise ValueError("class_weight is not supported for multi-label targets; use sample_weight")
        classes = self.classes_
        y = np.asarray(y).ravel()
        idx = np.searchsorted(classes, y)
        if isinstance(cw, str) and cw == "balanced":
            # scikit-learn's compute_class_weight('balanced', sample_weight=):
            # the counts weighed by sample_weight (weight 2 is a row twice).
            # fit's classes are those of y (partial_fit refuses 'balanced').
            counts = np.bincount(idx, weights=None if sw is None else sw.astype(np.float64), minlength=len(classes))
            per_class = np.ones(len(classes))
            seen = counts > 0  # a class whose rows all weigh 0: its factor multiplies only zeros
            per_class[seen] = counts.sum() / (len(classes) * counts[seen])
        else:  # a dict (_param_rules)
            per_class = np.ones(len(classes))
            # Each key is one label, looked up by value as a dict key (0, 0.0
            # and np.int64(0) alike, as scikit-learn's lookup): compared as
            # arrays, (0,) or (2, 1, 0) was taken for a class by broadcasting.
            position = {label: i for i, label in enumerate(classes.tolist())}
            unknown = [label for label in cw if position.get(label) is None]
            if unknown:
                weighted = {position[label] for label in cw if label not in unknown}
                missing = [c for i, c in enumerate(classes.tolist()) if i not in weighted]
                if missing:  # scikit-learn's message first (code may match on it)
                    raise ValueError(f"The classes, {missing}, are not in class_weight: its keys {unknown!r} are "
                                     f"not labels of the classes {classes.tolist()}")
                raise ValueError(f"class_weight: class label {unknown[0]!r} not present in the data "
                                 f"(classes: {classes.tolist()})")
            for label, weight in cw.items():
                if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real) or \
                        not np.isfinite(weight) or weight < 0:
                    raise ValueError(f"class_weight: the weight of class {label!r} must be a finite number >= 0, "
                                     f"got {weight!r}")
                per_class[position[label]] = float(weight)
            # As for sample_weight: all-zero weights would train on nothing.
            if not per_class.any():
                raise ValueError(f"class_weight: the weights of the classes {classes.tolist()} sum to zero; "
                                 "at least one class needs a positive weight")
        with np.errstate(over="ignore"):  # refused by name below
            w = per_class[idx].astype(dtype)
            w = w if sw is None else np.ascontiguousarray(sw * w, dtype=dtype)
        # Each may hold a non-zero weight, and their product none; each may fit the dtype, and their product not.
        check_row_weights(w, "class_weight" if sw is None else "sample_weight times class_weight", whole)
        return w

    def _targets_from_outputs(self, Y):
        """Labels of outputs ``Y`` (n x outputs): what scikit-learn's
        LabelBinarizer.inverse_transform computes for a dense output (argmax;
        threshold 0.5), without its input checks, which cost a one-row
        predict many times the network, and an epoch's validation score on
        a small set more than the epoch."""
        lb = self._label_binarizer
        if lb.y_type_ == "multiclass":
            return lb.classes_.take(Y.argmax(axis=1))
        if lb.y_type_ == "binary" and len(lb.classes_) == 2:
            return lb.classes_[(Y.ravel() > 0.5).astype(np.intp)]
        return lb.inverse_transform(Y.ravel() if Y.shape[1] == 1 else Y)

    def _outputs_from_targets(self, y):
        return self._label_binarizer.transform(np.asarray(y)).astype(np.float64)

    def _score_outputs(self, out, y_true, sw):
        return numpy_accuracy_score(y_true, self._targets_from_outputs(out), sample_weight=sw)

    @fits_model
    def fit(self: _Self, X: ArrayLike | spmatrix, y: ArrayLike, sample_weight: ArrayLike | None = None) -> _Self:
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
    def partial_fit(self: _Self, X: ArrayLike | spmatrix, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> _Self:
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
        def first_checks():
            if isinstance(self.class_weight, str) and self.class_weight == "balanced":
                # One batch's counts are not the data's: each call would be
                # weighed by its own batch (as across MPI ranks, _check_distributed).
                raise ValueError("class_weight 'balanced' is not supported for partial_fit. In order to use "
                                 "'balanced' weights, use compute_class_weight('balanced', classes=classes, y=y). "
                                 "In place of y you can use a large enough sample of the full training set target "
                                 "to properly estimate the class frequency distributions. Pass the resulting "
                                 "weights as the class_weight parameter.")
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

        ctx = _distributed_context()
        with distributed_fit(ctx):  # (as _fit's, from this first collective on)
            # one rank's error raised on all, never a hang
            return self._fit(X, y, sample_weight=sample_weight, incremental=True,
                             prepare=lambda: collective(ctx, first_checks))

    def _predict(self, X, check_input=True):
        return self._targets_from_outputs(self._forward(X, check_input=check_input))

    @reads_model
    def predict(self, X: ArrayLike | spmatrix) -> NDArray[Any]:
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        return self._predict(X)  # checks that the model is fitted

    @reads_model
    def predict_proba(self, X: ArrayLike | spmatrix) -> FloatArray:
        """Class probabilities.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            In the order of ``classes_`` (per label for multi-label).
        """
        out = self._forward(X)  # checks that the model is fitted
        if self.n_outputs_ == 1:
            out = out.ravel()
        if out.ndim == 1:
            return np.vstack([1 - out, out]).T
        return out

    def score(self, X: ArrayLike | spmatrix, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
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
        return self._score(X, y, sample_weight, accuracy_score)

    def predict_log_proba(self, X: ArrayLike | spmatrix) -> FloatArray:
        """Logarithm of ``predict_proba(X)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            In the order of ``classes_``; ``-inf`` where a probability
            underflowed to 0.
        """
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # class_weight refuses multi-label targets (_combine_class_weight): the tag says so to the tools that read it.
        tags.classifier_tags.multi_label = self.class_weight is None
        return tags
