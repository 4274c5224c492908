"""The solvers: sgd and adam (the training driver's epoch loop, with
scikit-learn's bookkeeping, stopping and learning-rate schedule as its
callbacks here) and lbfgs
(SciPy's L-BFGS-B on the core's loss and gradient, in blocks of rows with
Ctrl-C read between them), as scikit-learn's
``_fit_stochastic`` / ``_fit_lbfgs`` and ``_stochastic_optimizers``."""
from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import warnings

import numpy as np

from .. import _core
from .._buffers import aligned_zeros
from .._guards import NonFiniteWarning, epoch_is_finite
from .._registry import OPTIMIZER_TABLE
from .._train.callbacks import Callback, block_cost, blocks_mean
from .._train.driver import (BLOCK_FLOPS, Interrupts, LocalSteps, Run, check_dense_blocks, check_optimizer_in_dtype,
                              core_row_bytes, drive, gradient_block_rows, gradient_in_blocks)
from .._train.rows import SparseRows, row_block, take_rows
from .._train.state import History
from ._compat import ConvergenceWarning
from ._progress import Progress
from ._sampling import shuffled, train_validation_split
from ._solver_state import SolverState, optimizer_name, solver_settings

STOCHASTIC_SOLVERS = ("sgd", "adam")
#: lbfgs evaluates its loss and gradient in blocks of rows of this much work
#: (the driver's blocks, as a long step's), with Ctrl-C read between blocks.
LBFGS_BLOCK_FLOPS = BLOCK_FLOPS


def lbfgs_block_rows(n, n_params, row_bytes):
    """Rows per block of an lbfgs evaluation of ``n`` rows on a network of
    ``n_params`` parameters and ``row_bytes`` of the core's workspace a row
    (``gradient_block_rows``; ``n``: one call)."""
    return gradient_block_rows(n, n_params, row_bytes, LBFGS_BLOCK_FLOPS)


class _Interrupted(Exception):
    """Ctrl-C seen between the blocks of an lbfgs evaluation."""


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
            try:
                opt["learning_rate"] = self.learning_rate_init / (t + 1) ** self.power_t
            except OverflowError:  # (t + 1) ** power_t beyond float64 (power_t=400): the quotient by logs
                opt["learning_rate"] = math.exp(math.log(self.learning_rate_init) - self.power_t * math.log(t + 1))

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
    solver state and the fitted attributes it updates. Made once per fit:
    each epoch refills the same buffers (``take``): a fresh copy of every
    array and dictionary, every epoch, was a large part of the Python time of
    a small set's epoch (BENCHMARKS.md, "Measurements behind the code":
    _EpochState)."""

    _SCALARS = ("n_iter_", "t_", "loss_", "best_loss_", "best_validation_score_", "_no_improvement_count")

    def __init__(self, est, P, opt):
        self.est, self.opt = est, opt
        # The arrays keep their identity through a fit (the core trains them in place).
        self.arrays = [(P, np.empty_like(P))] + [(v, np.empty_like(v)) for v in opt.values()
                                                 if isinstance(v, np.ndarray)]
        self.value_keys = [k for k, v in opt.items() if not isinstance(v, np.ndarray)]
        self.P = self.arrays[0][1]
        self.taken = False

    def take(self, best_P):
        """Copy the state at the start of an epoch. Whole even for an epoch
        run as one chunk, which Ctrl-C cannot cut between steps: its
        end-of-epoch policies may still raise (validation, progress output,
        a MemoryError) after the steps and part of the bookkeeping, and the
        call must then leave the model as after its last whole epoch."""
        for src, dst in self.arrays:
            dst[...] = src  # not np.copyto, slower a call (BENCHMARKS.md: _EpochState.take)
        est = self.est
        d = est.__dict__
        opt = self.opt
        self.values = [(k, opt[k]) for k in self.value_keys]
        self.scalars = {k: d[k] for k in self._SCALARS if k in d}
        self.lengths = (len(est.loss_curve_), len(est.validation_scores_ or ()),
                        {k: len(v) for k, v in est.history_.items()})
        self.best_P = best_P
        self.taken = True

    def restore(self):
        """Put everything back in place (the same arrays); returns the best parameters of before."""
        self.taken = False
        for src, dst in self.arrays:
            src[...] = dst
        est = self.est
        for k, v in self.values:
            self.opt[k] = v
        est.__dict__.update(self.scalars)
        n_loss, n_val, n_hist = self.lengths
        del est.loss_curve_[n_loss:]
        if est.validation_scores_ is not None:
            del est.validation_scores_[n_val:]
        for k, n in n_hist.items():
            del est.history_[k][n:]
        return self.best_P


# The one-BLAS-thread limit is the process's (threadpoolctl sets the library's
# thread count): shared by the lbfgs fits running at once, entered by the first
# and left by the last. Each fit's own limit restored, when it ended, the count
# it had found at its start, under a fit still running in another thread (whose
# weights then depended on the BLAS thread count) or for good (one thread).
#
# threadpoolctl 3.8 lets only one "controlling" thread set a process-wide
# OpenBLAS pool (the first that sets it, until its `with` block ends); any
# other thread's limit does nothing, silently. A limit held as an object, as
# here, never ends a `with` block, so the first thread to fit stayed in
# control: an lbfgs fit in any other thread ran on OpenBLAS's full count (other
# weights than the same fit in the main thread), and the last fit to end could
# not restore the count if another thread had entered it. So control is
# released around each change of the shared limit (_release_blas_control).
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def _one_blas_thread():
    """L-BFGS-B's dot products and updates run in SciPy's BLAS, whose
    multi-threaded reductions sum in an order that depends on its thread count
    (OPENBLAS_NUM_THREADS=1 and 2 gave different weights); on one BLAS thread
    lbfgs is bit-identical on any thread count, as dnnfast promises. The
    vectors are the parameters (small work next to the core's gradient, which
    keeps its own threads: threadpoolctl's "blas" API leaves OpenMP alone)."""
    global _blas_users, _blas_limit
    try:
        import threadpoolctl
        from threadpoolctl import threadpool_limits
    except ImportError:
        # threadpoolctl comes with scikit-learn; without it, BLAS runs on its own
        # thread count and lbfgs weights may differ between BLAS thread counts
        # (README's promise table says so).
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            with _released_blas_control(threadpoolctl):
                controller = _blas_controller(threadpoolctl)
                _blas_limit = (_OneThread(controller) if controller is not None
                               else threadpool_limits(limits=1, user_api="blas"))
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                limit, _blas_limit = _blas_limit, None
                with _released_blas_control(threadpoolctl):
                    limit.restore_original_limits()


class _OneThread:
    """The BLAS libraries of ``controller`` (a ThreadpoolController) set to
    one thread; ``restore_original_limits`` gives each back the count it
    had, unless another limit changed it meanwhile: a user's threadpool_limits
    block open in another thread when the first fit began and closed before
    the last ended had set its own count back, and restoring the count seen
    at the start (that block's) left it for good."""

    def __init__(self, controller):
        self.libs = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
        self.original = [lib.num_threads for lib in self.libs]
        for lib in self.libs:
            lib.set_num_threads(1)

    def restore_original_limits(self):
        for lib, n in zip(self.libs, self.original):
            if lib.num_threads == 1:
                lib.set_num_threads(n)


_blas_scan = None  # (len(sys.modules) when made, threadpoolctl.ThreadpoolController)


def _blas_controller(threadpoolctl):
    """A ThreadpoolController of the loaded libraries, made again only when
    modules were imported since (a BLAS comes with one): each one is a scan
    of every loaded library, 2 ms, which made a small lbfgs fit 2-3x
    scikit-learn's. None where threadpoolctl has no controller (before 3.0)."""
    global _blas_scan
    make = getattr(threadpoolctl, "ThreadpoolController", None)
    if make is None:
        return None
    if _blas_scan is None or _blas_scan[0] != len(sys.modules):
        _blas_scan = (len(sys.modules), make())
    return _blas_scan[1]


@contextlib.contextmanager
def _released_blas_control(threadpoolctl):
    """Control of OpenBLAS's limit lent to the block's change, from whichever
    thread makes it (threadpoolctl >= 3.8; a no-op before, where any thread
    could), then given back to the thread that held it, if any: a user's
    own `with threadpool_limits(...)` keeps other threads from changing the
    count after a fit as before it. Under _blas_lock, so no two fits change
    it at once."""
    controller = getattr(threadpoolctl, "OpenBLASController", None)
    release = getattr(controller, "clear_controlling_thread", None)
    if release is None:
        yield
        return
    # The holder is threadpoolctl's own record (no public getter): read and
    # given back only where it is there as in 3.8.
    shared = getattr(controller, "_SHARED_STATE", None)
    holder = getattr(shared, "controlling_thread", None)
    release(force=True)
    try:
        yield
    finally:
        release(force=True)
        if holder is not None and holder.is_alive():
            with shared.lock:
                if shared.controlling_thread is None:
                    shared.controlling_thread = holder


class _EpochOrder:
    """The epoch order as scikit-learn draws it: ``sample_idx`` shuffled in
    place every epoch with the estimator's RandomState (each shuffle permutes
    the previous order), mapped to the training rows when some are held out."""

    def __init__(self, n_train, train_rows, random_state):
        self.idx = np.arange(n_train, dtype=np.int64)
        self.train_rows = train_rows
        self.random_state = random_state

    def draw(self, shuffle):
        if shuffle:
            self.idx = shuffled(self.idx, self.random_state)
        order = self.idx if self.train_rows is None else self.train_rows[self.idx]
        return np.ascontiguousarray(order, dtype=np.int64)


class _LoopSettings:
    """What the driver's loop reads of the settings; the rate is the solver
    state's, which the schedule changes between epochs."""
    learning_rate = None  # not a callable schedule (driver: no per-epoch agreement needed)

    def __init__(self, epochs, batch_size, shuffle, opt):
        self.epochs, self.batch_size, self.shuffle, self.opt = epochs, batch_size, bool(shuffle), opt

    def rate(self, epoch):
        return float(self.opt["learning_rate"])


class _LoopState:
    """The driver's view of the solver state (the same arrays, trained in place)."""

    def __init__(self, state1, state2, t):
        self.state1, self.state2, self.t = state1, state2, t
        self.epoch = self.step = 0
        self.stopped = False
        self.history = History()


class _StochasticPolicies(Callback):
    """scikit-learn's ``_fit_stochastic`` bookkeeping as callbacks over the
    driver's hooks: at each epoch's start a copy of what the epoch changes
    (``_EpochState``, undone if Ctrl-C cuts the epoch short, and the
    non-finite guard's restore point); at its end ``n_iter_``, ``t_``,
    ``loss_curve_``, validation and ``best_*``, ``_no_improvement_count``,
    the history, the verbose line, the learning-rate schedule, stopping on
    ``tol`` / ``n_iter_no_change`` and the max_iter warning."""

    def __init__(self, est, net, P, X, opt, validation, incremental, progress):
        self.est, self.net, self.P, self.X, self.opt = est, net, P, X, opt
        self.validation = validation
        self.incremental = incremental
        self.progress = progress
        made = opt["settings"]
        self.schedule = LearningRateSchedule(made["solver"], made["learning_rate"], made["learning_rate_init"],
                                             made["power_t"])
        self.data_scale = est._data_loss_scale()
        self.y_val = None if validation is None else est._targets_from_outputs(validation[1])
        best_P = est.__dict__.get("_best_params")
        if best_P is None or best_P.size != P.size:
            best_P = P.copy()  # scikit-learn's _best_coefs start as the initial weights
        self.best_P = best_P
        self.epoch = _EpochState(est, P, opt)  # what the running epoch may change, taken at its start
        self.checking = est.on_nonfinite != "ignore"

    def guard(self):
        return self if self.checking else None

    def on_epoch_begin(self, est, epoch):
        self.est._stepped = True  # (_fit: from the first step on, these rules keep the model whole)
        self.epoch.take(self.best_P)
        self.t0 = time.perf_counter()

    def undo_epoch(self):
        if self.epoch.taken:
            self.best_P = self.epoch.restore()

    def check_epoch(self, est, epoch, cost):
        """The driver's non-finite hook, after each epoch (once: raise, or warn and go on)."""
        if not self.checking or epoch_is_finite(cost, self.P):
            return
        self.checking = False
        if self.validation is not None and est.on_nonfinite == "raise":
            # As scikit-learn: a diverging fit with early stopping goes on
            # (its validation scores are NaN) and ends with the best epoch's
            # weights, which are finite.
            warnings.warn("Solver produced non-finite parameter weights in epoch %d; training goes on and keeps "
                          "the weights of the best validation score (early_stopping)" % (epoch + 1),
                          NonFiniteWarning, stacklevel=7)
        else:
            est._nonfinite(self.net, self.P, self.X, self.epoch.P, epoch + 1, stacklevel=7)  # raises, or warns

    def on_epoch_end(self, est, epoch, logs):
        cost_sum, penalty_sum = self.run.totals
        n_train = self.run.n
        est.n_iter_ += 1
        est.loss_ = float((cost_sum * self.data_scale + penalty_sum) / n_train)
        est.t_ += n_train
        est.loss_curve_.append(est.loss_)
        val_loss = val_score = float("nan")
        early_stopping = self.validation is not None
        if early_stopping:
            X_val, Y_val, sw_val = self.validation
            val_score, val_loss = est._validation_score(self.net, self.P, X_val, Y_val, self.y_val, sw_val,
                                                        self.data_scale, self.run.evaluation_blocks)
            est.validation_scores_.append(val_score)
            if val_score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if val_score > est.best_validation_score_:
                est.best_validation_score_ = val_score
                self.best_P = self.P.copy()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]
        est.history_.add_epoch(est.loss_, val_loss, val_score, time.perf_counter() - self.t0)
        self.progress.update(est.n_iter_, est.loss_, val_score if early_stopping else None)

        self.schedule.epoch_ends(self.opt, est.t_)
        stop = False
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if early_stopping else "Training loss"
            msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                   % (what, est.tol, est.n_iter_no_change))
            stop = self.schedule.no_improvement(self.opt, msg, self.progress)
            if not stop:
                est._no_improvement_count = 0
        if not isinstance(self.run.provider, LocalSteps):
            # Over MPI the same on every rank (summed losses, rank 0's shared state), and agreed all the
            # same, as the user callbacks' stops: a rank leaving the loop alone left the others waiting.
            stop = self.run.provider.sum_floats([float(stop)])[0] > 0
        self.epoch.taken = False  # the epoch is complete: an interrupt from here on keeps it
        if not stop and not self.incremental and est.n_iter_ == est.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                          "hasn't converged yet." % est.max_iter, ConvergenceWarning)
        return stop


class _Solvers:
    """fit's solvers (mixed into _BaseMLP)."""

    def _check_settings_in_dtype(self, dtype):
        """The settings the solver reads, in the model's dtype, as Network.fit
        checks its own (driver.check_optimizer_in_dtype): Adam's epsilon that
        rounds to 0 (0 / 0), a beta that rounds to 1, an alpha or epsilon
        that rounds to infinity; each gave NaN weights blamed on the data."""
        adam = self.solver == "adam"
        check_optimizer_in_dtype(dtype, [("beta_1", self.beta_1), ("beta_2", self.beta_2)] * adam,
                                 [("epsilon", self.epsilon)] * adam + [("alpha", self.alpha)],
                                 [("epsilon", self.epsilon)] * adam)

    def _fit_stochastic(self, net, P, X, Y, sw, incremental, ctx=None):
        """sgd / adam: the training driver's epoch loop (dnnfast._train.driver)
        runs the epochs in chunks of ~0.1 s with Ctrl-C between them;
        scikit-learn's policies are the callback ``_StochasticPolicies``."""
        n_params = P.size
        # What this call replaces before its first epoch, put back if none ends whole.
        kept_optimizer, kept_n_iter = self.__dict__.get("_optimizer"), self.__dict__.get("n_iter_")
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = SolverState(
                learning_rate=float(self.learning_rate_init),
                state1=aligned_zeros(n_params, P.dtype),
                state2=aligned_zeros(n_params, P.dtype) if self.solver == "adam" else None,
                t=np.zeros(1, dtype=np.int64),
                settings=solver_settings(self),
            )
        elif not isinstance(self._optimizer, SolverState):  # as a model file restores it
            self._optimizer = SolverState(self._optimizer)
        opt = self._optimizer
        # A state pickled before the settings were kept goes on with the parameters, as it did then.
        made = opt.setdefault("settings", solver_settings(self))
        kind, n_buffers = OPTIMIZER_TABLE[optimizer_name(made)]  # the core's id; state buffers it uses
        if n_buffers >= 1 and opt["state1"].size != n_params:
            raise ValueError("optimizer state does not match the network; refit without warm start")

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        validation = None
        sparse = isinstance(X, SparseRows)
        if self.early_stopping:
            # scikit-learn stratifies on the binarized targets, a column: its
            # message names the classes as the strings of that column's values.
            stratify = (Y[:, 0] != 0) if (self._is_classifier() and self.n_outputs_ == 1) else None
            train_rows, val_rows = train_validation_split(X.shape[0], self.validation_fraction,
                                                          self._random_state, stratify)
            if val_rows.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            validation = (X.select(val_rows) if sparse else X[val_rows], Y[val_rows],
                          None if sw is None else sw[val_rows])
            n_train = train_rows.shape[0]
        else:
            train_rows = None
            n_train = X.shape[0]
        # Distributed: n_train and the epoch order are global (the provider
        # knows where this rank's rows start).
        if ctx is not None:
            _, n_train = ctx.shard(X.shape[0])

        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = max(1, min(int(self.batch_size), n_train))  # Python ints: any size

        order = _EpochOrder(n_train, train_rows, self._random_state)
        if ctx is None:
            provider = LocalSteps(net, P, X, Y, None, w=sw, draw=order.draw)
        else:
            provider = ctx.estimator_steps(net, P, X, Y, sw, order.draw)
        state = _LoopState(opt["state1"] if n_buffers >= 1 else None, opt["state2"] if n_buffers >= 2 else None,
                           opt["t"] if n_buffers >= 2 else None)
        settings = _LoopSettings(1 if incremental else self.max_iter, batch_size, self.shuffle, opt)
        options = _core.TrainOptions(optimizer=kind, learning_rate=opt["learning_rate"],
                                     momentum=made["momentum"], beta1=made["beta_1"],
                                     beta2=made["beta_2"], epsilon=made["epsilon"],
                                     l2=float(self.alpha), batch_size=batch_size)

        def make_options(lr):
            options.learning_rate = lr
            return options

        run = Run(self, X, Y, n_train, settings, state, provider, options=make_options, boundary=False)
        check_dense_blocks(run, batch_size, [] if validation is None else [(validation[0], "the validation score")])
        verbose = self.verbose if ctx is None or ctx.rank == 0 else False
        # Over MPI rank 0's output alone: its failure (tqdm's first write here, a line later) raised on every rank.
        progress = provider.collective(lambda: Progress(1 if incremental else self.max_iter, verbose,
                                                        type(self).__name__, alone=provider.alone))
        policies = _StochasticPolicies(self, net, P, X, opt, validation, incremental, progress).bind(run)
        self.n_iter_ = 0
        try:
            drive(run, policies.guard(), [policies], close=[progress.close])
        except KeyboardInterrupt:
            # As scikit-learn: warn and return. The driver stops between
            # chunks of an epoch; that epoch, cut short, is undone (weights,
            # solver state, fitted attributes), so n_iter_, t_, loss_curve_
            # and the solver state describe the weights kept: those of the
            # last whole epoch.
            policies.undo_epoch()
            warnings.warn("Training interrupted by user.")
        except BaseException:
            # Anything else that cuts an epoch short (a SystemExit from a
            # SIGTERM handler, a MemoryError) undoes it the same way before it
            # propagates: the estimator is left as after its last whole epoch,
            # never with the weights and solver state of a part of one under
            # the n_iter_ and t_ of the epoch before (warm_start and
            # partial_fit go on from there).
            policies.undo_epoch()
            if self.n_iter_ == 0:
                # No epoch of this call is whole: the model is the one before
                # it, with its count and the solver state a warm fit replaced.
                if kept_n_iter is not None:
                    self.n_iter_ = kept_n_iter
                if kept_optimizer is not None and kept_optimizer is not opt:
                    self._optimizer = kept_optimizer
            else:
                # The best epoch's weights so far, as the KeyboardInterrupt
                # path keeps them: a later warm_start fit that beats no score
                # ends with them (its best_validation_score_ is that epoch's).
                self._best_params = policies.best_P
            raise
        self._best_params = policies.best_P
        if validation is not None:
            P[:] = policies.best_P

    def _validation_score(self, net, P, X_val, Y_val, y_val, sw_val, data_scale, blocks):
        """(score, data loss) of the current parameters on the validation set,
        evaluated over ``blocks(n)`` (the fit's ``Run.evaluation_blocks``:
        Ctrl-C read between them)."""
        outs, parts = [], []
        for r0, r1 in blocks(X_val.shape[0]):
            Xb = row_block(X_val, r0, r1)  # (made dense once)
            out = net.predict(P, Xb, False)  # a diverged model scores NaN, as in scikit-learn
            if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
                return float("nan"), float("nan")
            outs.append(out)
            parts.append(block_cost(net, P, Xb, Y_val[r0:r1], None if sw_val is None else sw_val[r0:r1],
                                    0, r1 - r0))
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)
        val_loss = float(blocks_mean(parts)) * data_scale
        score = self._score_outputs(out, y_val, sw_val)
        return float(score), val_loss

    def _fit_lbfgs(self, net, P, X, Y, sw):
        """SciPy's L-BFGS-B. The loss and gradient are evaluated in blocks of
        rows (``lbfgs_block_rows``) with the training driver's Ctrl-C flag
        read between them: an interrupt stops the fit within a block's work,
        keeps the last completed iteration's weights, warns and returns, as
        the stochastic solvers do."""
        try:
            import scipy.optimize
        except ImportError:
            raise ImportError("solver='lbfgs' needs SciPy (scipy.optimize.minimize): pip install "
                              "\"dnnfast[sklearn]\" (or scipy alone), or use solver='adam' or 'sgd', which need "
                              "NumPy only.") from None
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
        n = X.shape[0]
        block = lbfgs_block_rows(n, P.size, core_row_bytes(net, P.itemsize))
        interrupts = Interrupts()
        # A sparse X: the core's CSR of it, or made dense a block at a time,
        # the blocks the dense X's evaluation takes (one call over all rows
        # when they are one block: X dense whole, which is one block's rows).
        # (Xc: X as the core's one call takes it; X stays for _nonfinite's search.)
        if isinstance(X, SparseRows):
            X.check_memory(min(n, block), "lbfgs's loss and gradient")
        Xc = X.core_rows(0, n) if isinstance(X, SparseRows) and n <= block else X
        G64 = np.empty(P.size, dtype=np.float64) if n > block else None

        def take(r0, r1):
            """The block's rows as the core takes them (take_rows)."""
            return take_rows(X, Y, sw, np.arange(r0, r1, dtype=np.int64))

        def before_block():
            if interrupts.pending:
                raise _Interrupted

        def evaluate():
            """(data loss, penalty) at P, gradient in G."""
            if n <= block:  # one block: the core's one call (bits as before)
                before_block()
                return net.loss_and_gradient(P, Xc, Y, sw, None, alpha, G)
            return gradient_in_blocks(net, P, G, n, block, take, alpha, G64, before_block)

        # The last completed iteration (the start before the first): what an
        # interrupted fit keeps.
        last = {"x": None, "fun": float("nan"), "nit": 0}

        def loss_grad(x):
            P[order] = x
            data, penalty = evaluate()
            f = data * data_scale + penalty
            if good is not None and math.isfinite(f) and _core.all_finite(G):
                good[:] = P
            if last["nit"] == 0 and not math.isfinite(last["fun"]) and np.array_equal(x, x0):
                last["fun"] = f  # the start's loss
            return f, G[order].astype(np.float64)

        def callback(intermediate_result):
            now = time.perf_counter()
            loss = float(getattr(intermediate_result, "fun", np.nan))
            history.append(loss=loss, time=now - clock[0])
            progress.update(len(history["loss"]), loss)
            clock[0] = now
            last["x"] = np.array(intermediate_result.x, copy=True)
            last["fun"] = loss
            last["nit"] += 1

        def keep_last():
            # The weights, n_iter_, loss_ (and history) of the last whole iteration.
            P[order] = last["x"]
            self.n_iter_ = last["nit"]
            self.loss_ = float(last["fun"])

        x0 = P[order].astype(np.float64)
        last["x"] = x0.copy()
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        res = None
        self._stepped = True  # (as in _fit_stochastic)
        try:
            with interrupts.installed(), _one_blas_thread():
                try:
                    res = scipy.optimize.minimize(loss_grad, x0, method="L-BFGS-B", jac=True, options=options,
                                                  callback=callback)
                except _Interrupted:
                    pass
                except BaseException:
                    # Anything else that cuts the fit short (a SystemExit from
                    # a SIGTERM handler, a user's SIGINT handler, a
                    # MemoryError) left a line search's trial point under
                    # n_iter_ 0 and no loss_; as _fit_stochastic undoes a cut
                    # epoch, the last whole iteration is kept, then it propagates.
                    keep_last()
                    raise
        finally:
            progress.close()
        if res is None:
            # As scikit-learn's stochastic solvers: warn and return.
            keep_last()
            warnings.warn("Training interrupted by user.")
            # loss_ is NaN when Ctrl-C came before the start's loss was known:
            # only the weights (the start's or an iterate's) are checked here.
            if self.on_nonfinite != "ignore" and not _core.all_finite(P):
                self._nonfinite(net, P, X, good, max(self.n_iter_, 1), unit="iteration")
            return
        if interrupts.pending:  # Ctrl-C after the last block: the fit is whole, but say it was seen
            warnings.warn("Training interrupted by user.")
        if res.status != 0:
            # scikit-learn's text (its _check_optimize_result): the advice to
            # raise max_iter only where the iterations reached it (max_fun
            # stops a fit too).
            msg = res.message.decode("latin1") if isinstance(res.message, bytes) else res.message
            n_iter = min(res.nit, self.max_iter)
            text = f"lbfgs failed to converge after {n_iter} iteration(s) (status={res.status}):\n{msg}\n"
            if n_iter == self.max_iter:
                text += f"\nIncrease the number of iterations to improve the convergence (max_iter={self.max_iter})."
            text += ("\nYou might also want to scale the data as shown in:\n"
                     "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(text, ConvergenceWarning, stacklevel=3)
        self.n_iter_ = min(res.nit, self.max_iter)
        self.loss_ = float(res.fun)
        P[order] = res.x
        if self.on_nonfinite != "ignore" and not epoch_is_finite(self.loss_, P):
            self._nonfinite(net, P, X, good, max(res.nit, 1), unit="iteration")
