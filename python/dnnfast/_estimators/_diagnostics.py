"""Extras beyond scikit-learn: learning curves and a finite-difference
gradient check of a fitted estimator."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._locking import reads_model
from .._validation import as_array, as_float_array, check_positive_float, check_positive_int
from ._compat import check_random_state
from ._progress import plot_history

if TYPE_CHECKING:
    from .._types import ArrayLike, Seed


class _Diagnostics:
    """plot_history and check_gradients (mixed into _BaseMLP)."""

    def _gradient_check_targets(self, y, n):
        """check_gradients' y as the network's float64 outputs (n, n_outputs_):
        a classifier's labels must be ones it was fitted on (an unseen label
        binarized to a row of zeros, another objective, in silence), a
        regressor's targets real and finite (complex lost its imaginary part)."""
        if hasattr(self, "classes_"):
            y_arr = np.asarray(y)
            if y_arr.ndim == 1 or self.n_outputs_ == 1:
                labels = y_arr.ravel()
                unseen = ~np.isin(labels, self.classes_)
                if unseen.any():
                    shown = list(dict.fromkeys(labels[unseen].tolist()))[:5]
                    raise ValueError(f"y holds labels the model was not fitted on: {shown} (classes_ are "
                                     f"{self.classes_.tolist()[:10]})")
            elif y_arr.size and not np.isin(y_arr, (0, 1)).all():
                # A multi-label model's indicator rows: other values were
                # another (out-of-range) bce objective's gradient, in silence.
                shown = list(dict.fromkeys(y_arr[~np.isin(y_arr, (0, 1))].tolist()))[:5]
                raise ValueError(f"y: a multi-label model's targets are 0/1 indicator rows, got values {shown}")
            Y = self._outputs_from_targets(y_arr)
        else:
            y_arr = as_array(y, "y")
            Y = as_float_array(y_arr.reshape(-1, 1) if y_arr.ndim == 1 else y_arr, "y", np.float64)
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if Y.ndim != 2 or Y.shape != (n, self.n_outputs_):
            raise ValueError(f"y must have shape ({n},) or ({n}, {self.n_outputs_}), got {np.shape(y)}")
        return Y

    def plot_history(self, ax: Any = None, title: str | None = None) -> Any:
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
    def check_gradients(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None, eps: float = 1e-6,
                        max_params: int = 200, random_state: Seed = 0) -> Any:
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
        # Each argument checked (a NaN or unseen y gave a report of NaN or of a
        # different objective, eps = 0 a ZeroDivisionError, max_params = 0
        # NumPy's "zero-size array to reduction").
        eps = check_positive_float(eps, "eps")
        max_params = check_positive_int(max_params, "max_params")
        rng = check_random_state(random_state)
        X = self._validate_X(X, reset=False).astype(np.float64)
        Y = self._gradient_check_targets(y, X.shape[0])
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
        if not np.isfinite(numeric).all():
            raise ValueError(f"eps={eps:g}: the objective at p +- eps is not finite (a step too large for this "
                             "model)")
        a = analytic[idx]
        err = np.abs(a - numeric)
        rel = err / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), 1e-8)
        return {"max_abs_error": float(err.max()), "max_rel_error": float(rel.max()), "n_checked": int(idx.size),
                "analytic": a, "numeric": numeric}
