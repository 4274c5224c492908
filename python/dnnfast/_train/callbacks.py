"""The built-in behaviours of a fit, as callbacks over the driver's hooks.

Every callback may define ``on_batch_end(net, step, logs)`` (after each chunk
of batches; ``step`` counts the updates so far) and ``on_epoch_end(net, epoch,
logs)`` (``epoch`` 0-based; a true return value stops the fit). The built-ins
also see the run (``bind(run)``): the model, its settings, its state and the
step provider, so that they work the same in one process and over MPI.
"""
from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np

from .. import _core
from .._guards import CORE_OUTPUT_OVERFLOW, NonFiniteError, NonFiniteWarning, describe, epoch_is_finite, locate_nonfinite
from .._validation import PREDICT_CHUNK_ROWS
from .rows import SparseRows, row_block


class Callback:
    """Base of the built-ins (user callbacks need not derive from it)."""
    run = None

    def bind(self, run):
        self.run = run
        return self

    def on_epoch_begin(self, net, epoch):
        pass

    def on_batch_end(self, net, step, logs):
        pass

    def on_epoch_end(self, net, epoch, logs):
        return False

    def on_fit_end(self, net):
        pass


class NonFiniteGuard(Callback):
    """Network.fit's ``on_nonfinite``: "raise" restores the epoch's starting
    parameters (and optimizer state) and raises NonFiniteError naming the
    epoch and the first non-finite layer; "warn" warns once and goes on."""

    def __init__(self, mode):
        self.mode = mode
        self.warned = False
        self.good = None

    def check_start(self, net):
        """The user wrote NaN into the parameters before the fit."""
        if not _core.all_finite(net.parameters):
            self.fail(net, 0, restore=False, stacklevel=8)

    def on_epoch_begin(self, net, epoch):
        if self.mode == "raise":  # one snapshot per epoch
            self.good = (net.parameters.copy(), self.run.state.snapshot())

    def check_epoch(self, net, epoch, cost_sum):
        if self.warned or epoch_is_finite(cost_sum, net.parameters):
            return
        self.fail(net, epoch + 1, restore=True, stacklevel=8)
        self.warned = True

    def check_end(self, net, epochs):
        """A callback wrote NaN into the parameters after the last epoch's
        check (in its on_epoch_end, or as it stopped the fit): no later epoch
        would see it, and the fit would return a model that predicts NaN."""
        if self.warned or _core.all_finite(net.parameters):
            return
        self.fail(net, epochs, restore=False, stacklevel=8, after_callbacks=True)
        self.warned = True

    def fail(self, net, epoch, restore, stacklevel, after_callbacks=False):
        """stacklevel: the frames up to the user's call of fit (fail, check_*, the driver,
        Network.fit and its lock's wrapper)."""
        X = self.run.X  # a sparse X: its rows made dense in chunks of at most those checked (SparseRows.rows)
        layer, where = locate_nonfinite(net._layout, net.parameters, net._net.forward, X,
                                        X.rows if isinstance(X, SparseRows) else PREDICT_CHUNK_ROWS)
        # Training's advice only where training made them: NaN written into
        # the parameters before the fit, or between epochs (by a callback),
        # needs finite values instead.
        hint = " (lower learning_rate, scale the data, or pass on_nonfinite='warn' to go on)"
        if epoch == 0:
            msg = f"the parameters hold NaN or infinity {describe(epoch, layer, where)} (written into them " \
                  "before the fit): give them finite values"
            hint = ""
        elif after_callbacks:
            msg = f"the parameters hold NaN or infinity after the callbacks of epoch {epoch}, first in layer " \
                  f"{layer} ({where}) (written into them by a callback, after training checked them); they " \
                  "are left so: give them finite values"
            hint = ""
        else:
            msg = f"training produced NaN or infinity {describe(epoch, layer, where)}"
        if self.mode == "raise":
            if restore and self.good is not None:
                net.parameters[...] = self.good[0]
                self.run.state.restore(self.good[1])
                if _core.all_finite(self.good[0]):
                    msg += f"; the parameters are those from before epoch {epoch}"
                else:
                    msg += (f"; the parameters held NaN or infinity before epoch {epoch} already (written into "
                            "them between epochs, by a callback?) and are left so")
                    hint = ""
            msg += hint
            exc = NonFiniteError(msg, epoch=epoch, layer=layer, where=where)
            exc.history = self.run.state.history
            raise exc
        warnings.warn(msg, NonFiniteWarning, stacklevel=stacklevel)


def block_cost(core, P, X, Y, w, r0, r1):
    """(the core's mean loss of rows ``r0:r1``, weighted by ``w``, and their
    total weight): a block of a cost evaluated in blocks (``blocks_mean``)."""
    d = float(r1 - r0) if w is None else float(np.sum(w[r0:r1], dtype=np.float64))
    return core.cost(P, row_block(X, r0, r1), Y[r0:r1], None if w is None else w[r0:r1]), d


def blocks_mean(parts):
    """The mean over blocks from their ``block_cost``, weighed in row order:
    one block's own mean as it is (one call's bits); a block of weight 0 adds nothing."""
    if len(parts) == 1:
        return parts[0][0]
    D = sum(d for _, d in parts)
    return sum(m * d for m, d in parts if d) / D if D > 0 else math.nan


def _accuracy_counts(net, X, Y, run):
    """(correct, total) of the model on (X, Y): argmax for softmax outputs,
    each output thresholded at 0.5 for sigmoid outputs; summed over processes.
    In blocks of rows (``run.evaluation_blocks``), the counts summed exactly."""
    correct = 0.0
    total = 0.0
    softmax = net.activations[-1] == "softmax"
    for r0, r1 in run.evaluation_blocks(X.shape[0]):
        try:
            P = net._net.predict(net.parameters, row_block(X, r0, r1))
        except ValueError as exc:
            # Non-finite parameters or outputs are the guard's, which ran
            # first: under on_nonfinite="warn" / "ignore" training goes on,
            # and the accuracy of such a model is NaN, as its cost.
            if not str(exc).startswith(CORE_OUTPUT_OVERFLOW):
                raise
            correct = total = math.nan
            break
        Yb = Y[r0:r1]
        if softmax:
            correct += float(np.count_nonzero(P.argmax(axis=1) == Yb.argmax(axis=1)))
            total += float(r1 - r0)
        else:
            correct += float(np.count_nonzero((P > 0.5) == (Yb > 0.5)))
            total += float(Yb.size)
    c, t = run.provider.sum_floats([correct, total])
    return c / t if t > 0 else math.nan


class Validation(Callback):
    """``validation_data`` -> logs["val_cost"]; ``metrics=["accuracy"]`` ->
    logs["accuracy"] (training rows, after the epoch) and logs["val_accuracy"].
    Each pass runs in blocks of rows with Ctrl-C read between them
    (``Run.evaluation_blocks``)."""

    def __init__(self, data, metrics):
        self.data = data
        self.metrics = metrics

    def on_epoch_end(self, net, epoch, logs):
        run = self.run
        if self.data is not None:
            Xv, Yv = self.data
            parts = [block_cost(net._net, net.parameters, Xv, Yv, None, r0, r1)
                     for r0, r1 in run.evaluation_blocks(Xv.shape[0])]
            local = blocks_mean(parts) * Xv.shape[0] if parts else 0.0
            j, n = run.provider.sum_floats([local, float(Xv.shape[0])])
            logs["val_cost"] = j / n
            # From finite parameters, the validation rows overflowed the dtype
            # (net.cost on them raises the same); non-finite parameters are
            # the guard's, already raised, warned of or ignored as asked.
            if not math.isfinite(j / n) and _core.all_finite(net.parameters):
                wider = ", or use float64" if net.dtype != np.float64 else ""
                raise ValueError(f"validation_data: the cost overflowed to NaN or infinity in {net.dtype.name} in "
                                 f"epoch {epoch + 1} (the parameters are finite: validation_data[0] or the "
                                 f"parameters are too large for this dtype; scale X{wider})")
        if "accuracy" in self.metrics:
            logs["accuracy"] = _accuracy_counts(net, run.X, run.Y, run)
            if self.data is not None:
                logs["val_accuracy"] = _accuracy_counts(net, *self.data, run)
        return False


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best`` the fit ends with the best
    epoch's parameters (whether it stopped early or ran out of epochs)."""

    def __init__(self, monitor, patience, min_delta, restore_best):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.sign = 1.0 if monitor.endswith("accuracy") else -1.0  # larger is better for accuracy
        # An epoch's "cost" is measured as its batches are visited, each before
        # its own update (with a full batch: the cost of the parameters the
        # epoch starts from), the other monitors after the epoch: the
        # parameters an epoch's value belongs to are those of its start for
        # "cost", of its end otherwise. Kept only when they may be restored.
        self.at_start = monitor == "cost" and restore_best
        self._start = None  # the current epoch's starting parameters (at_start)

    def on_epoch_begin(self, net, epoch):
        if self.at_start:
            if self._start is None:
                self._start = net.parameters.copy()
            else:
                self._start[...] = net.parameters

    def on_epoch_end(self, net, epoch, logs):
        st = self.run.state
        value = logs[self.monitor]
        # A NaN is never the best (the first epoch's NaN was, and its
        # parameters were restored at the end).
        improved = math.isfinite(value) and (st.best is None or self.sign * (value - st.best) > self.min_delta)
        if improved:
            st.best, st.best_epoch, st.wait = float(value), epoch + 1, 0
            if self.at_start:  # the start's copy becomes the best; the old best's buffer takes the next start
                st.best_params, self._start = self._start, st.best_params
            elif self.restore_best:
                if st.best_params is None:
                    st.best_params = net.parameters.copy()
                else:
                    st.best_params[...] = net.parameters
            return False
        st.wait += 1
        return st.wait >= self.patience

    def on_fit_end(self, net):
        st = self.run.state
        if self.restore_best and st.best_params is not None:
            net.parameters[...] = st.best_params


class UserCallbacks(Callback):
    """The user's objects (``callbacks``), in order: only the hooks each
    defines are called, every ``on_epoch_end`` each epoch even when an
    earlier one asked to stop.

    Over MPI each kind of hook is one collective per call, made on every
    rank when any rank's objects define it (``epoch``, ``batch``: agreed at
    fit start), so a logger on rank 0 alone is fine: an exception on one rank
    is raised on every rank (the others would wait in the next collective
    for good), and a stop asked for on any rank (a wall-clock budget, a
    local condition) stops all of them at the same epoch's end. The stop
    must be True, False or None: bool("no") is True."""

    def __init__(self, objs, epoch=True, batch=True):
        self.hooks = [(f"callbacks[{i}]", getattr(obj, "on_epoch_end", None), getattr(obj, "on_batch_end", None))
                      for i, obj in enumerate(objs)]
        self.epoch, self.batch = epoch, batch

    @staticmethod
    def defines(objs):
        """(whether any object defines on_epoch_end, whether any defines on_batch_end)."""
        return (any(getattr(o, "on_epoch_end", None) is not None for o in objs),
                any(getattr(o, "on_batch_end", None) is not None for o in objs))

    def on_batch_end(self, net, step, logs):
        if not self.batch:
            return

        def call():
            for _, _, hook in self.hooks:
                if hook is not None:
                    hook(net, step, dict(logs))  # each its own, as on_epoch_end's: Progress reads them after
        self.run.provider.collective(call)

    def on_epoch_end(self, net, epoch, logs):
        if not self.epoch:
            return False

        def call():
            stop = False
            for name, hook, _ in self.hooks:
                if hook is not None:
                    stop = self._stop(name, hook(net, epoch, dict(logs))) or stop
            return stop
        provider = self.run.provider
        stop = provider.collective(call)
        return provider.sum_floats([float(stop)])[0] > 0

    @staticmethod
    def _stop(name, value):
        if value is None:
            return False
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise TypeError(f"{name}.on_epoch_end must return True (stop), False or None, got {value!r:.80}")


class Checkpoint(Callback):
    """After every epoch, an atomic save of the model with its training state."""

    def __init__(self, path, save):
        self.path = path
        self.save = save  # save(net, path, training) -> the model file writer

    def after_epoch(self, net):
        run = self.run
        # Non-finite parameters (on_nonfinite="warn" or "ignore" going on)
        # are not written: dnnfast.load refuses them, so the file keeps the
        # last epoch a resume can start from.
        if run.provider.is_root and _core.all_finite(net.parameters):
            self.save(net, self.path, run.state.to_record(run.settings.fingerprint()))


def _fmt_logs(logs):
    parts = []
    for k in ("cost", "val_cost", "accuracy", "val_accuracy"):
        if k in logs:
            parts.append(f"{k} {logs[k]:.6f}" if "cost" in k else f"{k} {logs[k]:.4f}")
    return "  ".join(parts)


class Verbose(Callback):
    """One line per epoch (``verbose=True``)."""

    def __init__(self, epochs, suffix=""):
        self.epochs = epochs
        self.suffix = suffix

    def after_epoch(self, net, epoch, logs):
        provider = self.run.provider
        if provider.is_root:
            rate = self.run.n / logs["time"] if logs["time"] > 0 else float("inf")
            line = f"epoch {epoch + 1}/{self.epochs}  {_fmt_logs(logs)}  {rate:,.0f} samples/s{self.suffix}"
            provider.alone(lambda: print(line, flush=True))  # (over MPI: a failed write raised on every rank)


class Progress(Callback):
    """``progress=True``: a bar over the epoch's rows that moves with every
    chunk (about every 0.1 s): tqdm when installed, else one carriage-return
    line on stderr; samples/s and the latest epoch's metrics. Rank 0's
    alone over MPI, through the provider's ``alone`` (a failed write is
    raised on every rank at their next agreement)."""

    def __init__(self, epochs, n):
        self.epochs = epochs
        self.n = n
        self.bar = None
        self.last = {}
        self.shown = 0  # the length of the plain line on stderr now, 0: none
        try:
            import tqdm  # noqa: F401
            self.tqdm = tqdm.tqdm
        except ImportError:
            self.tqdm = None

    def on_epoch_begin(self, net, epoch):
        if self.run.provider.is_root:
            self.run.provider.alone(lambda: self._begin(epoch))

    def _begin(self, epoch):
        self.epoch = epoch
        self.t0 = time.perf_counter()
        self.done = 0
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.n, desc=f"epoch {epoch + 1}/{self.epochs}", unit="row",
                                 leave=False, dynamic_ncols=True)
            if self.last:
                self.bar.set_postfix_str(_fmt_logs(self.last))

    def on_batch_end(self, net, step, logs):
        if self.run.provider.is_root:
            self.run.provider.alone(lambda: self._show(logs["rows"]))

    def _show(self, rows):
        if self.bar is not None:
            self.bar.update(rows - self.done)
        else:
            dt = time.perf_counter() - self.t0
            rate = rows / dt if dt > 0 else 0.0
            width = 30
            fill = int(width * rows / self.n) if self.n else width
            line = (f"epoch {self.epoch + 1}/{self.epochs} [{'#' * fill}{'.' * (width - fill)}] "
                    f"{rows}/{self.n}  {rate:,.0f} samples/s  {_fmt_logs(self.last)}")
            sys.stderr.write("\r" + line.ljust(self.shown))  # spaces over a longer line before
            sys.stderr.flush()
            self.shown = len(line)
        self.done = rows

    def on_epoch_end(self, net, epoch, logs):
        self.last = dict(logs)
        self.run.provider.alone(self._end_epoch)
        return False

    def _end_epoch(self):
        if self.bar is not None:  # one bar per epoch
            self.bar.close()
            self.bar = None
        elif self.shown:
            # The line goes at the epoch's end, as tqdm's bar (leave=False):
            # verbose's line (stdout) was printed after it on the same line.
            sys.stderr.write("\r" + " " * self.shown + "\r")
            sys.stderr.flush()
            self.shown = 0

    def close(self):
        self.run.provider.alone(self._close)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.shown:  # an epoch cut short (Ctrl-C): its line stays, ended
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = 0

    def on_fit_end(self, net):
        self.close()
