"""Extras beyond scikit-learn: learning curves and a finite-difference
gradient check of a fitted estimator."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._locking import reads_model
from ._progress import plot_history

if TYPE_CHECKING:
    from .._types import ArrayLike, Seed


class _Diagnostics:
    """plot_history and check_gradients (mixed into _BaseMLP)."""

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
