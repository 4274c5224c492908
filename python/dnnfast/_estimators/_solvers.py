"""The solvers: sgd and adam (one core ``train_epoch`` call per epoch, the
epoch's bookkeeping, stopping and learning-rate schedule here) and lbfgs
(SciPy's L-BFGS-B on the core's ``loss_and_gradient``), as scikit-learn's
``_fit_stochastic`` / ``_fit_lbfgs`` and ``_stochastic_optimizers``."""
from __future__ import annotations

import contextlib
import math
import time
import warnings

import numpy as np

from .. import _core
from .._guards import NonFiniteWarning, epoch_is_finite
from ._compat import ConvergenceWarning
from ._progress import Progress
from ._sampling import shuffled, train_validation_split

STOCHASTIC_SOLVERS = ("sgd", "adam")
_OPTIMIZER_ID = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3}


class SolverState(dict):
    """The stochastic solver's state: ``learning_rate`` (the current rate),
    ``state1`` (velocity, or Adam's first moment), ``state2`` (Adam's second
    moment, else None) and ``t`` (Adam's step count), in the core's parameter
    layout. Keys are attributes too, so ``est._optimizer.learning_rate``
    reads as on scikit-learn's optimizer objects."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class LearningRateSchedule:
    """scikit-learn's learning-rate schedules of the stochastic solvers.

    The rate itself lives in the solver state (``opt["learning_rate"]``, saved
    with the model), so a continued ``partial_fit`` or a loaded model goes on
    from where it was. Adam's rate is constant; for sgd:

    - ``constant``: ``learning_rate_init`` throughout;
    - ``invscaling``: ``learning_rate_init / (t_ + 1) ** power_t`` after every epoch;
    - ``adaptive``: divided by 5 whenever the loss (or validation score) stops
      improving, training stops once it falls to 1e-6 or below.
    """

    def __init__(self, solver, kind, learning_rate_init, power_t):
        self.kind = kind if solver == "sgd" else "constant"
        self.learning_rate_init = float(learning_rate_init)
        self.power_t = power_t

    def epoch_ends(self, opt, t):
        """The next epoch's rate (scikit-learn's ``iteration_ends``)."""
        if self.kind == "invscaling":
            opt["learning_rate"] = self.learning_rate_init / (t + 1) ** self.power_t

    def no_improvement(self, opt, msg, progress):
        """Training stopped improving: True to stop, False to go on at a lower rate
        (scikit-learn's ``trigger_stopping``)."""
        if self.kind != "adaptive":
            progress.message(msg + " Stopping.")
            return True
        if opt["learning_rate"] <= 1e-6:
            progress.message(msg + " Learning rate too small. Stopping.")
            return True
        opt["learning_rate"] /= 5.0
        progress.message(msg + " Setting learning rate to %f" % opt["learning_rate"])
        return False


class _EpochState:
    """What one epoch of a stochastic solver changes, copied at its start so
    that an interrupted epoch can be undone as a whole: the parameters, the
    solver state and the fitted attributes it updates."""

    _SCALARS = ("n_iter_", "t_", "loss_", "best_loss_", "best_validation_score_", "_no_improvement_count")

    def __init__(self, est, P, opt, best_P):
        self.P = P.copy()
        self.opt = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.items()}
        self.scalars = {k: est.__dict__[k] for k in self._SCALARS if k in est.__dict__}
        self.lengths = (len(est.loss_curve_), len(est.validation_scores_ or ()),
                        {k: len(v) for k, v in est.history_.items()})
        self.best_P = best_P

    def restore(self, est, P, opt):
        """Put everything back in place (the same arrays); returns the best parameters of before."""
        P[...] = self.P
        for k, v in self.opt.items():
            if isinstance(v, np.ndarray):
                opt[k][...] = v
            else:
                opt[k] = v
        est.__dict__.update(self.scalars)
        n_loss, n_val, n_hist = self.lengths
        del est.loss_curve_[n_loss:]
        if est.validation_scores_ is not None:
            del est.validation_scores_[n_val:]
        for k, n in n_hist.items():
            del est.history_[k][n:]
        return self.best_P


def _one_blas_thread():
    """L-BFGS-B's dot products and updates run in SciPy's BLAS, whose
    multi-threaded reductions sum in an order that depends on its thread count
    (OPENBLAS_NUM_THREADS=1 and 2 gave different weights); on one BLAS thread
    lbfgs is bit-identical on any thread count, as dnnfast promises. The
    vectors are the parameters (small work next to the core's gradient, which
    keeps its own threads: threadpoolctl's "blas" API leaves OpenMP alone)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        # threadpoolctl comes with scikit-learn; without it, BLAS runs on its own
        # thread count and lbfgs weights may differ between BLAS thread counts
        # (README's promise table says so).
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class _Solvers:
    """fit's solvers (mixed into _BaseMLP)."""

    def _optimizer_kind(self):
        if self.solver == "adam":
            return _OPTIMIZER_ID["adam"]
        if self.momentum == 0:
            return _OPTIMIZER_ID["sgd"]
        return _OPTIMIZER_ID["nesterov" if self.nesterovs_momentum else "momentum"]

    def _fit_stochastic(self, net, P, X, Y, sw, incremental, ctx=None):
        n_params = P.size
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = SolverState(
                learning_rate=float(self.learning_rate_init),
                state1=np.zeros(n_params, dtype=P.dtype),
                state2=np.zeros(n_params, dtype=P.dtype) if self.solver == "adam" else None,
                t=np.zeros(1, dtype=np.int64),
            )
        elif not isinstance(self._optimizer, SolverState):  # as a model file restores it
            self._optimizer = SolverState(self._optimizer)
        opt = self._optimizer
        kind = self._optimizer_kind()
        s1 = opt["state1"] if kind != 0 else None
        s2 = opt["state2"] if kind == 3 else None
        t = opt["t"] if kind == 3 else None
        if s1 is not None and s1.size != n_params:
            raise ValueError("optimizer state does not match the network; refit without warm start")
        schedule = LearningRateSchedule(self.solver, self.learning_rate, self.learning_rate_init, self.power_t)

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # scikit-learn stratifies on the binarized targets, a column: its
            # message names the classes as the strings of that column's values.
            stratify = (Y[:, 0] != 0) if (self._is_classifier() and self.n_outputs_ == 1) else None
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
            batch_size = max(1, min(int(self.batch_size), n_train))  # Python ints: any size

        data_scale = self._data_loss_scale()
        sample_idx = np.arange(n_train, dtype=np.int64)
        verbose = self.verbose if ctx is None or ctx.rank == 0 else False
        progress = Progress(1 if incremental else self.max_iter, verbose, type(self).__name__)
        best_P = self.__dict__.get("_best_params")
        if best_P is None or best_P.size != n_params:
            best_P = P.copy()  # scikit-learn's _best_coefs start as the initial weights
        guard = self.on_nonfinite != "ignore"
        epoch = None  # what an epoch may change, taken at its start (see _EpochState)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                epoch = _EpochState(self, P, opt, best_P)
                t0 = time.perf_counter()
                if self.shuffle and ctx is None:
                    sample_idx = shuffled(sample_idx, self._random_state)
                elif self.shuffle:  # rank 0 draws, every rank follows
                    sample_idx = ctx.global_order(n_train, lambda: shuffled(sample_idx, self._random_state))
                order = sample_idx if train_rows is None else train_rows[sample_idx]
                order = np.ascontiguousarray(order, dtype=np.int64)
                options = _core.TrainOptions(optimizer=kind, learning_rate=opt["learning_rate"],
                                             momentum=float(self.momentum), beta1=float(self.beta_1),
                                             beta2=float(self.beta_2), epsilon=float(self.epsilon),
                                             l2=float(self.alpha), batch_size=batch_size)
                cost_sum, penalty_sum, _ = (net.train_epoch(P, X, Y, sw, order, options, s1, s2, t)
                                            if ctx is None else
                                            ctx.train_epoch(net, P, X, Y, sw, order, options, s1, s2, t, offset))
                if guard and not epoch_is_finite(cost_sum + penalty_sum, P):
                    if early_stopping and self.on_nonfinite == "raise":
                        # As scikit-learn: a diverging fit with early stopping
                        # goes on (its validation scores are NaN) and ends with
                        # the best epoch's weights, which are finite.
                        warnings.warn("Solver produced non-finite parameter weights in epoch %d; training goes "
                                      "on and keeps the weights of the best validation score (early_stopping)"
                                      % (self.n_iter_ + 1), NonFiniteWarning, stacklevel=4)
                    else:
                        self._nonfinite(net, P, X, epoch.P, self.n_iter_ + 1)  # raises, or warns once
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

                schedule.epoch_ends(opt, self.t_)
                stop = False
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                           % (what, self.tol, self.n_iter_no_change))
                    stop = schedule.no_improvement(opt, msg, progress)
                    if not stop:
                        self._no_improvement_count = 0
                epoch = None  # the epoch is complete: an interrupt from here on keeps it
                if stop or incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                                  "hasn't converged yet." % self.max_iter, ConvergenceWarning)
        except KeyboardInterrupt:
            # As scikit-learn: warn and return. An epoch cut short (the core
            # finishes the epoch it is in, so its weights may have moved) is
            # undone, so n_iter_, t_, loss_curve_ and the solver state describe
            # the weights kept.
            if epoch is not None:
                best_P = epoch.restore(self, P, opt)
            warnings.warn("Training interrupted by user.")
        finally:
            progress.close()
        self._best_params = best_P
        if early_stopping:
            P[:] = best_P

    def _validation_score(self, net, P, X_val, Y_val, y_val, sw_val, data_scale):
        """(score, data loss) of the current parameters on the validation set."""
        out = net.predict(P, X_val, False)  # a diverged model scores NaN, as in scikit-learn
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
            with _one_blas_thread():
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
