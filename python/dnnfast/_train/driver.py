"""The one epoch loop (DESIGN.md, "The training driver").

    for epoch in range(state.epoch, epochs):
        order = provider.epoch_order(...)          # local generator, or rank 0's broadcast
        for chunk in whole batches of ~0.1 s:      # Ctrl-C and progress get control in between
            provider.run_steps(chunk)              # C++, GIL released
            callbacks.on_batch_end(...)
        callbacks.on_epoch_end(...) -> stop?       # guard, validation (in blocks: Ctrl-C between them),
                                                   # early stopping, user, checkpoint

A *step provider* is all that differs between one process (``LocalSteps``:
the core's ``train_epoch`` on a slice of the order) and MPI
(``distributed.Context.step_provider``: the summed-gradient step).

Two kinds of fit run through this loop: ``Network.fit`` (``fit_network``
builds its settings and callbacks) and the estimators' sgd / adam ``fit`` and
``partial_fit`` (``_estimators/_solvers.py`` hands ``drive`` a Run with its
own epoch order, options and scikit-learn's policies as callbacks).

Ctrl-C: while a fit runs in the main thread, SIGINT only raises a flag that
the loop reads between chunks, so an interrupt never lands inside an update,
the restore of a snapshot or a checkpoint write: the KeyboardInterrupt comes
at a step boundary, with the parameters of the last completed step.
"""
from __future__ import annotations

import contextlib
import errno
import inspect
import math
import numbers
import os
import signal
import sys
import threading
import time

import numpy as np

from .. import _core
from .._buffers import aligned_zeros
from .._archive import check_path, check_writable
from .._guards import check_on_nonfinite
from .._locking import step_boundary
from .._registry import OPTIMIZER_SETTINGS, OPTIMIZER_TABLE, resolve_optimizer
from .._validation import (check_bool, check_normal, check_positive_float, check_positive_int, make_rng,
                           network_bytes, window_batches, workspace_rows)
from ..batching import check_batch_size, epoch_order
from .callbacks import (Callback, Checkpoint, EarlyStopping, NonFiniteGuard, Progress, UserCallbacks, Validation,
                        Verbose)
from .rows import SparseRows, take_rows
from .state import MAX_LEARNING_RATE, FitSettings, TrainState, activation_specs, as_arguments, first_difference

# The C module: signal.signal wraps its result in an enum, a cost on every call
# (BENCHMARKS.md, "Measurements behind the code": _signal).
try:
    import _signal
except ImportError:  # not CPython
    _signal = signal
_SIGINT = int(signal.SIGINT)
#: Work per chunk between two returns to Python (seconds).
CHUNK_SECONDS = 0.1
#: Work (flops) of a block of rows where a single step or evaluation is too
#: long for one call: about 0.1 s at one thread or less. Ctrl-C is read
#: between blocks. Fixed by the shape alone (never by measured time), so the
#: blocks' sums, and the weights, have the same bits on every run and thread count.
BLOCK_FLOPS = 5e9
MIN_BLOCK_ROWS = 64


def block_rows(n_params, flops=None):
    """Rows per block of ``flops`` (default ``BLOCK_FLOPS``): ~6 flops per
    parameter and row (forward and backward), at least ``MIN_BLOCK_ROWS`` so the
    products stay efficient."""
    flops = BLOCK_FLOPS if flops is None else flops
    return max(MIN_BLOCK_ROWS, int(flops // (6 * max(int(n_params), 1))))


#: The core's workspace (``network_bytes``' bytes per row) that a step's block
#: of rows may fill, and the fewest rows such a block has. A step of many
#: rows in one call computes each layer for all of its rows before the next,
#: and once those outgrew the caches every layer went through memory: a
#: 100000-row full batch of a 20-64-10 network took 3.4x the time of its
#: 4096-row blocks (BENCHMARKS.md, "Measurements behind the code":
#: step_block_rows). The floor keeps the sum of the blocks' gradients, one
#: pass over the parameters a block, small beside a block's products.
STEP_BLOCK_BYTES = 4 << 20
MIN_STEP_BLOCK_ROWS = 1024


def step_block_rows(n_params, row_bytes, flops=None):
    """Rows per block of a long step (``LocalSteps.long_steps``): ``block_rows``
    of ``flops`` (Ctrl-C), at most ``STEP_BLOCK_BYTES`` of workspace unless
    that is fewer than ``MIN_STEP_BLOCK_ROWS``. Fixed by the shape alone, as
    ``block_rows``."""
    return min(block_rows(n_params, flops), _cache_rows(row_bytes))


def _cache_rows(row_bytes):
    return max(MIN_STEP_BLOCK_ROWS, STEP_BLOCK_BYTES // max(int(row_bytes), 1))


def gradient_block_rows(n, n_params, row_bytes, flops=None):
    """Rows per block of a cost and gradient over all ``n`` rows (lbfgs's
    evaluations, ``Network.loss_and_gradient``; ``gradient_in_blocks``), or
    ``n`` for one core call: more than one ``block_rows`` of ``flops``
    (Ctrl-C between blocks), or more rows than two blocks of a long step
    (``step_block_rows``), go in such blocks. One call over 100000 rows
    computed each layer for all of them from memory: lbfgs on a 20-64-10
    network took 2.3x the time a row that the blocks take, the gradient
    alone 4.8x (BENCHMARKS.md, "Measurements behind the code":
    gradient_block_rows).
    Sets of up to 2 x ``MIN_STEP_BLOCK_ROWS`` rows (the estimators' small
    data sets) stay one call, with its bits."""
    flop_rows = block_rows(n_params, flops)
    if n <= flop_rows and n <= 2 * _cache_rows(row_bytes):
        return n
    return step_block_rows(n_params, row_bytes, flops)


def gradient_in_blocks(core, P, G, n, rows, take, l2=0.0, G64=None, before_block=None):
    """``(data cost, penalty)`` over rows ``0..n``, the gradient in ``G``, a
    block of ``rows`` rows at a time: each block's mean cost and gradient
    (``core.loss_and_gradient`` over ``take(r0, r1)``: the core's X, Y and
    row weights, and the block's row indices into them) times the block's
    weight D_b, summed in float64 in row order (a fixed order given the
    shape, whatever the thread count or timing), then divided by the rows'
    total weight D (by 1 / D, or where that is no normal number, by D, as
    the core does) and the L2 term ``l2`` / D W of the weights added once
    (as ``loss_and_gradient`` adds it). The blocks' means, not their sums:
    a float32 sum over a block's rows overflowed where the mean gradient
    of all rows, which one call gives, is finite. ``G64``: a float64 buffer
    of P's size to reuse; ``before_block()`` runs before each block
    (Ctrl-C)."""
    if G64 is None:
        G64 = np.empty(P.size, dtype=np.float64)
    J = D = 0.0
    G64[:] = 0.0
    for r0 in range(0, n, rows):
        if before_block is not None:
            before_block()
        r1 = min(r0 + rows, n)
        X, Y, w, idx = take(r0, r1)
        Jb, _ = core.loss_and_gradient(P, X, Y, w, idx, 0.0, G)  # (G: the block's mean on its way into G64)
        Db = float(idx.shape[0]) if w is None else float(np.sum(w[idx], dtype=np.float64))
        J += Jb * Db
        D += Db
        G64 += Db * G.astype(np.float64)
    inv = 1.0 / D if D > 0 else 0.0
    divide = D > 0 and not (math.isfinite(inv) and inv >= sys.float_info.min)
    if divide:
        np.divide(G64, D, out=G64)
    else:
        np.multiply(G64, inv, out=G64)
    sq = 0.0
    if l2 != 0 and D > 0:
        for layer in core.layout():
            sl = slice(layer["w_offset"], layer["w_offset"] + layer["m_in"] * layer["m_out"])
            W = P[sl].astype(np.float64)
            sq += float(W @ W)
            G64[sl] += (l2 / D) * W
    G[:] = G64
    return (J / D if divide else J * inv), (0.5 * l2 * sq / D if l2 != 0 and D > 0 else 0.0)


def splits_evaluation(n, rows):
    """Whether an evaluation of ``n`` rows (a validation pass) runs in more
    than one block of ``rows`` (``evaluation_blocks``): then Ctrl-C can cut it."""
    return n >= rows + MIN_BLOCK_ROWS


def evaluation_blocks(n, rows, interrupts=None, history=None):
    """``(start, stop)`` of the blocks of rows, in order, that an evaluation
    of ``n`` rows by a fit's callbacks (validation, accuracy) runs in:
    ``rows`` each (``block_rows`` of the network: forward only, a third of a
    step's block of work), the last taking a rest of fewer than
    ``MIN_BLOCK_ROWS`` (a block of a few rows would take the GEMM's small-row
    path and round otherwise than one call). With ``interrupts``, Ctrl-C is
    read between blocks and raises the fit's KeyboardInterrupt: one call
    over 600000 validation rows kept it waiting for seconds."""
    # One block, the usual case: no generator, whose cost a small fit's short
    # epoch would feel (BENCHMARKS.md, "Measurements behind the code": evaluation_blocks).
    if not splits_evaluation(n, rows):
        return ((0, n),) if n else ()
    return _blocks(n, rows, interrupts, history)


def largest_evaluation_block(n, rows):
    """Rows of the largest of ``evaluation_blocks(n, rows)``: the last may
    take a rest of fewer than ``MIN_BLOCK_ROWS``."""
    return n if not splits_evaluation(n, rows) else rows + MIN_BLOCK_ROWS - 1


def _blocks(n, rows, interrupts, history):
    r0 = 0
    while r0 < n:
        if r0 and interrupts is not None and interrupts.pending:
            interrupts.check(history)
        r1 = r0 + rows if splits_evaluation(n - r0, rows) else n
        yield r0, r1
        r0 = r1


_MONITORS = ("val_cost", "cost", "val_accuracy", "accuracy")
_METRICS = ("accuracy",)
_INT64_MAX = 2**63 - 1


# ---------------------------------------------------------------------------
# Step providers
# ---------------------------------------------------------------------------

def core_row_bytes(core, itemsize):
    """``network_bytes``' workspace bytes a row of the core network ``core``."""
    layout = core.layout()
    return network_bytes([layer["m_in"] for layer in layout] + [layout[-1]["m_out"]], itemsize)[1]


def core_window_batches(core, P, batch_size):
    """``window_batches`` of the core network ``core`` (flat parameters ``P``)."""
    first = core.layout()[0]
    return window_batches(batch_size, (first["m_in"], first["m_out"]), P.itemsize)


class LocalSteps:
    """One process: the epoch order from the fit's generator, the steps by the core."""
    is_root = True

    def __init__(self, core, P, X, Y, rng, w=None, draw=None):
        self.core, self.P, self.X, self.Y, self.rng, self.w = core, P, X, Y, rng, w
        self.n = X.shape[0]
        self.draw = draw  # draw(shuffle) -> the epoch's order, when the fit has its own (the estimators)
        self._block_rows = None  # splits_steps's, once a fit
        self._sums = None  # long_steps's gradient buffers

    def collective(self, fn):
        return fn()

    def check_same(self, fingerprint):
        pass

    def sum_floats(self, values):
        return values

    def share(self, obj):
        return obj

    def alone(self, fn):
        fn()

    def start(self):
        pass

    def epoch_order(self, shuffle):
        if self.draw is not None:
            return self.draw(shuffle)
        return epoch_order(self.n, shuffle, self.rng)

    def splits_steps(self, batch_size):
        """Whether a step of ``batch_size`` rows runs in blocks (``long_steps``)."""
        # Asked twice an epoch: computed once (BENCHMARKS.md, "Measurements behind the code": splits_steps).
        if self._block_rows is None:
            self._block_rows = step_block_rows(self.P.size, core_row_bytes(self.core, self.P.itemsize))
        return batch_size > 2 * self._block_rows

    def dense_rows(self, batch_size):
        """The most rows of a sparse X (``rows.SparseRows``) that steps of
        ``batch_size`` rows make dense at a time: a long step's block, or
        a chunk of whole batches (``SparseRows.rows_per_chunk``)."""
        if self.splits_steps(batch_size):
            return self._block_rows
        return self.X.rows_per_chunk(self.window_rows(batch_size))

    def window_rows(self, batch_size):
        """Rows of the core's windows of steps of ``batch_size`` rows (a
        batch's where they go in none)."""
        return core_window_batches(self.core, self.P, batch_size) * batch_size

    def run_steps(self, order, options, state, cost_sum, penalty_sum, interrupts=None):
        if self.splits_steps(options.batch_size):
            return self.long_steps(order, options, state, cost_sum, penalty_sum, interrupts)
        X = self.X
        if isinstance(X, SparseRows) and X.core_x is not None:
            X = X.core_x  # a sparse X that the core reads as CSR: one call, as a dense X
        if not isinstance(X, SparseRows):
            c, p, _ = self.core.train_epoch(self.P, X, self.Y, self.w, order, options, state.state1,
                                            state.state2, state.t, cost_sum, penalty_sum)
            return c, p
        # A sparse X: the order's rows made dense a chunk of whole batches
        # at a time (their boundaries are where the driver's chunks may fall
        # too), each chunk's steps one call on its rows in order.
        step = self.X.rows_per_chunk(self.window_rows(options.batch_size))
        for p0 in range(0, order.shape[0], step):
            X, Y, w, idx = take_rows(self.X, self.Y, self.w, order[p0:p0 + step])
            cost_sum, penalty_sum, _ = self.core.train_epoch(self.P, X, Y, w, idx, options, state.state1,
                                                             state.state2, state.t, cost_sum, penalty_sum)
        return cost_sum, penalty_sum

    def long_steps(self, order, options, state, cost_sum, penalty_sum, interrupts):
        """Steps of more rows than two blocks' work (a full batch of many
        rows): each the sum of its blocks' gradients (``gradient_sum``), then
        one update (``apply_gradient_sum``, as data-parallel training makes
        it), with Ctrl-C read between blocks. A step cut short is not taken:
        the model stays as after the one before. In one call it took seconds
        and Ctrl-C waited for it (BENCHMARKS.md, "Measurements behind the
        code": long_steps)."""
        core, P, X, Y, w = self.core, self.P, self.X, self.Y, self.w
        rows = self._block_rows  # set by run_steps's splits_steps
        if self._sums is None:
            self._sums = (aligned_zeros(P.size, P.dtype), aligned_zeros(P.size, P.dtype))
        G, Gb = self._sums
        batch = options.batch_size
        for b0 in range(0, order.shape[0], batch):
            idx = order[b0:b0 + batch]
            J = wsum = 0.0
            for k0 in range(0, idx.shape[0], rows):
                if k0 and interrupts is not None and interrupts.pending:
                    interrupts.check(state.history)
                Xk, Yk, wk, ik = take_rows(X, Y, w, idx[k0:k0 + rows])  # a sparse X: its CSR, or the block's rows dense
                j, ws = core.gradient_sum(P, Xk, Yk, wk, ik, Gb if k0 else G)
                if k0:
                    G += Gb
                J, wsum = J + j, wsum + ws
            n = idx.shape[0]
            denom = float(n) if w is None else wsum  # the batch's D: its row count (exact), or its total weight
            pen = core.apply_gradient_sum(P, G, denom, options, state.state1, state.state2, state.t)
            cost_sum += (J / denom if denom > 0 else 0.0) * n
            penalty_sum += pen * n
        return cost_sum, penalty_sum


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def _check_rate_arg(value, name):
    if type(value) is float and 0.0 < value <= MAX_LEARNING_RATE:  # the common case, without the ABC checks
        return value
    if callable(value) and not isinstance(value, numbers.Number):
        return value
    return check_positive_float(value, name, upper=MAX_LEARNING_RATE)


def _check_unit(value, name, closed_high=False):
    """A number in [0, 1) (or [0, 1])."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not (0.0 <= v < 1.0 or (closed_high and v == 1.0)):
        raise ValueError(f"{name} must lie in [0, 1{']' if closed_high else ')'}, got {value!r}")
    return v


def _check_nonneg(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):  # a NaN or an infinity is a number of the wrong value
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_optimizer_in_dtype(dtype, below_one=(), finite=(), normal=()):
    """Settings the core takes in the network's dtype: a factor below 1 that
    rounds to 1 there (float32's 1 - 1e-8) made Adam's step size 0 or its
    correction a division by zero (a fit that trained nothing, or a NaN
    blamed on the data); a number that rounds to infinity stopped every
    update; one that rounds to 0 (``normal``: Adam's epsilon) gave 0 / 0.
    ``below_one``, ``finite`` and ``normal``: (name, value) pairs."""
    dt = np.dtype(dtype)
    for name, value in normal:
        check_normal(value, name, dt)
    for name, value in below_one:
        if dt.type(value) >= 1:
            top = np.nextafter(dt.type(1), dt.type(0))
            raise ValueError(f"{name} must be below 1 in a {dt.name} network's numbers, where {value!r} rounds "
                             f"to 1 (at most {float(top)!r})")
    big = float(np.finfo(dt).max)
    for name, value in finite:
        if value > big:
            raise ValueError(f"{name} must be at most {big:g} for a {dt.name} network, got {value!r}")


#: Network.fit's defaults: a value of the default's type equal to it needs no check
#: (the checks cost more than a small fit's epoch).
_DEFAULTS = {"optimizer": "sgd", "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
             "weight_decay": 0.0, "shuffle": False, "verbose": False, "progress": False, "on_nonfinite": "raise",
             "early_stopping": False, "monitor": "val_cost", "patience": 10, "min_delta": 0.0,
             "restore_best": True, "resume": False}


def _arg(kw, key, check, *args):
    v = kw[key]
    d = _DEFAULTS[key]
    if type(v) is type(d) and v == d:
        return d
    return check(v, key, *args)


#: How the loop calls each hook of a user's callback.
_HOOK_CALLS = {"on_epoch_end": "(net, epoch, logs)", "on_batch_end": "(net, step, logs)"}


def _check_hook_call(f, name, call, of_class=False):
    """Refuse a hook that cannot take the loop's call (a class passed for its
    instance, a wrong arity): else Python's TypeError came after an epoch."""
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):  # no signature to read (a builtin): found when called
        return
    try:
        sig.bind(None, 0, {})
    except TypeError:
        hint = " (a class was passed: pass an instance)" if of_class else ""
        raise TypeError(f"{name} must take the call {name.rsplit('.', 1)[1]}{call}, but its signature is "
                        f"{sig}{hint}") from None


def check_settings(net, n, kw):
    """Validate Network.fit's arguments (every error names its argument) -> FitSettings."""
    # A checkpoint stores the settings as int64: a larger count ("until a
    # callback stops") would write a file that dnnfast.load refuses.
    epochs = check_positive_int(kw["epochs"], "epochs", allow_zero=True, upper=_INT64_MAX)
    size = check_batch_size(kw["batch_size"], n)
    lr = _check_rate_arg(kw["learning_rate"], "learning_rate")
    if not callable(lr):  # 0 in the network's dtype: a fit that trains nothing (a schedule's: FitSettings.rate)
        check_normal(lr, "learning_rate", net.dtype)
    optimizer = _arg(kw, "optimizer", resolve_optimizer)
    momentum = _arg(kw, "momentum", _check_unit)
    beta1 = _arg(kw, "beta1", _check_unit)
    beta2 = _arg(kw, "beta2", _check_unit)
    epsilon = _arg(kw, "epsilon", check_positive_float)
    weight_decay = _arg(kw, "weight_decay", _check_nonneg)
    # In the network's dtype, what the optimizer reads (sgd never reads beta2:
    # a value of it that rounds to 1 in float32 is no error there).
    reads = OPTIMIZER_SETTINGS[optimizer]
    settings = {"momentum": momentum, "beta1": beta1, "beta2": beta2, "epsilon": epsilon}
    check_optimizer_in_dtype(net.dtype, [(k, settings[k]) for k in ("momentum", "beta1", "beta2") if k in reads],
                             [("epsilon", epsilon)] * ("epsilon" in reads) + [("weight_decay", weight_decay)],
                             [("epsilon", epsilon)] * ("epsilon" in reads))
    shuffle = _arg(kw, "shuffle", check_bool)
    _arg(kw, "verbose", check_bool)
    _arg(kw, "progress", check_bool)
    on_nonfinite = _arg(kw, "on_nonfinite", check_on_nonfinite)
    early = _arg(kw, "early_stopping", check_bool)
    monitor = kw["monitor"]
    if monitor not in _MONITORS:
        raise ValueError(f"monitor must be one of {', '.join(map(repr, _MONITORS))}, got {monitor!r}")
    patience = _arg(kw, "patience", check_positive_int, False, _INT64_MAX)
    min_delta = _arg(kw, "min_delta", _check_nonneg)
    restore_best = _arg(kw, "restore_best", check_bool)
    metrics = kw["metrics"]
    if metrics is None:
        metrics = ()
    if isinstance(metrics, str) or not hasattr(metrics, "__iter__"):
        raise TypeError(f"metrics must be a list of names such as ['accuracy'], got {metrics!r}")
    metrics = tuple(metrics)
    for m in metrics:
        if m not in _METRICS:
            raise ValueError(f"metrics: unknown metric {m!r}; known: {', '.join(_METRICS)}")
    if metrics and net.activations[-1] not in ("softmax", "sigmoid"):
        raise ValueError(f"metrics=['accuracy'] needs a softmax or sigmoid output layer; this network's output "
                         f"is {net.activations[-1]!r}")
    validation = kw["validation_data"] is not None
    if early and monitor.startswith("val_") and not validation:
        raise ValueError(f"early_stopping with monitor={monitor!r} needs validation_data=(X_val, Y_val) "
                         "(or monitor='cost')")
    if early and monitor.endswith("accuracy") and "accuracy" not in metrics:
        raise ValueError(f"monitor={monitor!r} needs metrics=['accuracy']")
    callbacks = kw["callbacks"]
    if callbacks is None:
        callbacks = []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of objects with on_epoch_end / on_batch_end, got {callbacks!r}")
    for i, cb in enumerate(callbacks):
        hooks = {h: getattr(cb, h, None) for h in ("on_epoch_end", "on_batch_end")}
        if all(f is None for f in hooks.values()):
            raise TypeError(f"callbacks[{i}] ({type(cb).__name__}) has neither on_epoch_end nor on_batch_end")
        for h, f in hooks.items():  # else found only when first called, after an epoch of training
            if f is not None and not callable(f):
                raise TypeError(f"callbacks[{i}].{h} must be callable, got {f!r:.80}")
            if f is not None:
                _check_hook_call(f, f"callbacks[{i}].{h}", _HOOK_CALLS[h], inspect.isclass(cb))
    checkpoint = kw["checkpoint"]
    resume = _arg(kw, "resume", check_bool)
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, bytes, os.PathLike)):
            raise TypeError(f"checkpoint must be a path (str, bytes or os.PathLike), got {type(checkpoint).__name__}")
        checkpoint = os.fspath(checkpoint)
        if len(checkpoint) == 0:
            raise ValueError("checkpoint is an empty path")
        # Before the first step, not at the first epoch's end with the
        # parameters already moved: a name no file can have, or a directory
        # that is not there.
        checkpoint = check_path(checkpoint)
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(folder):
            raise FileNotFoundError(errno.ENOENT, f"checkpoint {checkpoint!r}: no such directory", folder)
        check_writable(checkpoint)  # a name too long, a folder no file can be made in
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=path (the file to resume from)")
    return FitSettings(epochs=epochs, batch_size=size, learning_rate=lr, optimizer=optimizer, momentum=momentum,
                       beta1=beta1, beta2=beta2, epsilon=epsilon, weight_decay=weight_decay, shuffle=shuffle,
                       seeded=kw["seed"] is not None, on_nonfinite=on_nonfinite, early_stopping=early,
                       monitor=monitor, patience=patience, min_delta=min_delta, restore_best=restore_best,
                       metrics=metrics, validation=validation, dtype=net.dtype.name), callbacks, checkpoint, resume


def train_options(settings, lr):
    """The core's options object for one epoch."""
    return _core.TrainOptions(optimizer=OPTIMIZER_TABLE[settings.optimizer][0], learning_rate=lr,
                              momentum=settings.momentum, beta1=settings.beta1, beta2=settings.beta2,
                              epsilon=settings.epsilon, weight_decay=settings.weight_decay,
                              batch_size=settings.batch_size)


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------

class _Flag:
    __slots__ = ("set", "preparing")

    def __init__(self):
        self.set = False
        # Over MPI, before the epoch loop (distributed_fit to drive): Ctrl-C
        # is held as Python's KeyboardInterrupt for the ranks' next agreement.
        self.preparing = False


#: The KeyboardInterrupt of a Ctrl-C over MPI before a fit's first step.
PREPARING_INTERRUPT = "fit interrupted after 0 completed epochs (Ctrl-C before its first step)"


class Interrupts:
    """SIGINT -> a flag read between chunks (main thread, default handler only).
    The epoch loop's, and lbfgs's between its function evaluations (``_solvers``).

    Over MPI (``installed(hold=True)``, distributed_fit's) it also keeps
    what may not raise where it happens, while the other ranks wait in a
    collective, for the ranks' next agreement (``run_held``, called by
    ``distributed.Context.agree`` and the chunks' agreement), where it is
    raised on every rank: the user's own signal handlers (their calls held),
    a Ctrl-C before the epoch loop (Python's KeyboardInterrupt), and the
    errors of work one rank does alone (rank 0's output, ``hold``)."""

    def __init__(self):
        self._flag = _Flag()
        self._pid = os.getpid()
        self.active = False  # the handler is installed: Ctrl-C only sets the flag
        self.nested = False  # the flag is an outer fit's (a fit run from its callback)
        self._users = {}  # signal number -> the user's handler, held (installed(hold=True))
        self._held = []  # in order: (signal number, frame) of a held signal, or an exception

    @property
    def pending(self):
        return self._flag.set

    @pending.setter
    def pending(self, value):
        self._flag.set = value

    def handler(self, signum, frame):
        if os.getpid() != self._pid:
            # A child forked during the fit (from a callback) inherits this
            # handler but no fit of its own that reads the flag: Ctrl-C there
            # is Python's default, not swallowed.
            raise KeyboardInterrupt
        if self._flag.preparing:
            self._held.append(KeyboardInterrupt(PREPARING_INTERRUPT))
            return
        self._flag.set = True  # a second Ctrl-C only sets it again: never a torn step

    def hold_signal(self, signum, frame):
        """A user's handler during a fit over MPI: called at the ranks' next
        agreement. Called where the signal came, what it raised (a
        KeyboardInterrupt, sys.exit) left this rank's fit in the middle of
        a step while the others waited for it in a collective for good."""
        # A forked child, or the fit is over (a callback chained a handler of its
        # own to this one, which then stays installed): the user's handler, as installed.
        if os.getpid() != self._pid or not self.active:
            return self._users[signum](signum, frame)
        self._held.append((signum, frame))

    def hold(self, error):
        """Keep ``error`` (of work this rank does alone) for the ranks' next agreement."""
        self._held.append(error)

    def run_held(self):
        """Run the held signals' handlers and take the held errors, in order,
        until one raises: that exception (the rest stay held), else None."""
        while self._held:
            item = self._held.pop(0)
            if isinstance(item, BaseException):
                return item
            signum, frame = item
            try:
                self._users[signum](signum, frame)
            except BaseException as exc:  # noqa: BLE001 - the caller agrees on it
                return exc
        return None

    def loop_begins(self):
        """The epoch loop (drive) starts: Ctrl-C is its flag from here on."""
        self._flag.preparing = False

    def _hold_users(self):
        """Hold every signal whose handler is a Python function of the
        user's (not one an outer fit holds already)."""
        for signum in _signal.valid_signals():  # not signal.valid_signals, which makes enums
            try:
                h = _signal.getsignal(signum)
            except (OSError, ValueError):
                continue
            if not callable(h) or isinstance(getattr(h, "__self__", None), Interrupts):
                continue
            if signum == _SIGINT and h is signal.default_int_handler:  # Ctrl-C: the flag (handler)
                continue
            try:
                _signal.signal(signum, self.hold_signal)
            except (OSError, ValueError):
                continue
            self._users[signum] = h

    @contextlib.contextmanager
    def installed(self, hold=False):
        # _signal: no enum made of each result (see its import)
        main = threading.current_thread() is threading.main_thread()
        current = _signal.getsignal(_SIGINT) if main else None
        outer = getattr(current, "__self__", None)
        nested = isinstance(outer, Interrupts) and outer.active
        own = not nested and current is signal.default_int_handler
        if nested:
            # A fit run by another fit's callback: Ctrl-C sets the outer fit's
            # flag, which this one reads (and leaves set: check) at its own
            # boundaries, so it stops there and its KeyboardInterrupt passes up
            # through the callback. Reading no flag, it had run all its epochs.
            self._flag = outer._flag
        elif own:
            _signal.signal(_SIGINT, self.handler)
        if hold and main:
            self._hold_users()
        if not (nested or own or self._users):
            yield self
            return
        self.active = True
        self.nested = nested
        preparing = hold and own
        if preparing:
            self._flag.preparing = True
        try:
            yield self
        except BaseException:
            self._uninstall(own, preparing)
            self._run_leftovers(failing=True)
            raise
        self._uninstall(own, preparing)
        self._run_leftovers(failing=False)

    def _uninstall(self, own, preparing):
        self.active = self.nested = False
        if preparing:
            self._flag.preparing = False
        # Put back only our own change: a handler a callback installed meanwhile stays.
        if own and _signal.getsignal(_SIGINT) == self.handler:
            _signal.signal(_SIGINT, signal.default_int_handler)
        for signum, user in self._users.items():
            if _signal.getsignal(signum) == self.hold_signal:
                _signal.signal(signum, user)

    def _run_leftovers(self, failing):
        """What is still held when the fit ends (came after its last
        agreement, or behind an error agreed first), on this rank alone: the
        fit is over, nothing to agree with. A held signal's handler runs; a
        held error is raised unless the fit is raising its own already."""
        while self._held:
            item = self._held.pop(0)
            if isinstance(item, BaseException):
                if not failing:
                    self._held.clear()
                    raise item
            else:
                self._users[item[0]](*item)

    def check(self, history, provider=None):
        """Raise KeyboardInterrupt when Ctrl-C was pressed (over MPI: on any rank, then on all)."""
        pending = self.pending if provider is None else provider.agree(0, self.pending)[1]
        if pending:
            # Nested, the flag stays set for the outer fit to stop at its next
            # boundary too: an estimator's fit swallows its KeyboardInterrupt
            # (warns and returns, as scikit-learn's), and the outer fit, never
            # seeing the Ctrl-C, ran all its epochs.
            if not self.nested:
                self.pending = False
            exc = KeyboardInterrupt(f"fit interrupted after {len(history.get('cost', []))} completed epochs")
            exc.history = history
            raise exc


@contextlib.contextmanager
def distributed_fit(context):
    """Around a fit inside a distributed Context (None: nothing), from its
    first collective to its end. Refused from a callback of another fit over
    the same communicator. From there on nothing raises where a rank is
    alone (Python's default handler raised Ctrl-C wherever a rank was: a
    rank checking its data left the fit while the others waited in a
    collective, where their own KeyboardInterrupt could not come): Ctrl-C
    before the epoch loop, the calls of the user's signal handlers and the
    errors of rank 0's output are held (``Interrupts``, ``context._fit``)
    and raised at the ranks' next agreement, on every rank; in the loop
    Ctrl-C is the flag its nested ``Interrupts`` shares, agreed at the next
    chunk."""
    if context is None:
        yield
        return
    # From a callback of a fit over the same communicator, this fit's
    # collectives would meet the outer fit's on the other ranks (a hang, or
    # "different collectives"): refused here, on this rank alone, which the
    # callback's agreement raises on every rank.
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _EPOCH_LOOP:
            outer = getattr(frame.f_locals["run"].provider, "ctx", None)
            if outer is not None and outer.comm == context.comm:
                raise RuntimeError("fit was called from a callback of a distributed fit over the same "
                                   "communicator, whose collectives it would disturb: fit the model after the "
                                   "outer fit, or from the callback inside `with Context(MPI.COMM_SELF):` (this "
                                   "rank alone)")
        frame = frame.f_back
    if context._fit is not None:  # partial_fit's, around its _fit's: one fit
        yield
        return
    # Held until the ranks' next agreement (Interrupts, run_held): the user's
    # signal handlers, a Ctrl-C before the epoch loop, rank 0's output errors.
    fit = Interrupts()
    context._fit = fit
    try:
        with fit.installed(hold=True):
            yield
    finally:
        context._fit = None


class _Chunker:
    """Whole batches per chunk, sized from the measured time per batch so
    that a chunk is about CHUNK_SECONDS of work (at least one batch: a longer
    one runs in blocks, ``LocalSteps.long_steps``), in multiples of ``unit``
    batches: where small batches go in the core's windows, a window's
    (``core_window_batches``), which each chunk starts afresh, so that where
    the chunks fall (the machine's speed) never changes a bit."""

    def __init__(self, unit=1):
        self.per_batch = None
        self.unit = unit
        self.last = unit

    def batches(self, remaining):
        if self.per_batch is None:
            nb = self.unit
        else:
            nb = int(CHUNK_SECONDS / max(self.per_batch, 1e-9))
            nb = max(1, min(nb, 8 * self.last))  # grow at most 8x per chunk: a fast estimate is not trusted at once
            nb = max(self.unit, nb // self.unit * self.unit)
        self.last = nb  # not cut to the epoch's rest: the next epoch starts at this size
        return min(nb, remaining)

    def record(self, nb, seconds):
        self.per_batch = seconds / nb


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

def check_dense_blocks(run, batch_size, evaluated=()):
    """The memory of a sparse X's rows made dense a block at a time
    (``rows.SparseRows``; a dense X needs none), on every rank (one refusing
    stops all): the training steps' of ``run.X`` in batches of
    ``batch_size`` (``dense_rows``), and the callbacks' evaluation blocks of
    each ``(X, what)`` in ``evaluated``."""
    def check():
        if isinstance(run.X, SparseRows):
            run.X.check_memory(run.provider.dense_rows(batch_size), "training")
        for X, what in evaluated:
            if isinstance(X, SparseRows):
                X.check_memory(largest_evaluation_block(X.shape[0], run.eval_rows), what)
    run.provider.collective(check)


class Run:
    """One fit: model, data, settings, state and step provider.

    ``settings`` needs ``epochs``, ``batch_size``, ``shuffle``,
    ``learning_rate`` (callable: checked across ranks per epoch) and
    ``rate(epoch)``; ``state`` needs ``state1``, ``state2``, ``t``, ``epoch``,
    ``step``, ``stopped`` and ``history`` (a TrainState has them all).
    ``options(lr)`` makes the core's TrainOptions (default: Network.fit's);
    ``boundary``: the loop offers the model to waiting copies and forks
    after each epoch (``_locking.step_boundary``).
    """

    def __init__(self, net, X, Y, n, settings, state, provider, options=None, boundary=True):
        self.net, self.X, self.Y, self.n = net, X, Y, n
        self.settings, self.state, self.provider = settings, state, provider
        self.options = options if options is not None else (lambda lr: train_options(settings, lr))
        self.boundary = boundary
        self.totals = (0.0, 0.0)  # (cost_sum, penalty_sum) of the last epoch, set before its callbacks
        # drive's Ctrl-C flag, read between the blocks of the callbacks'
        # evaluations; None over MPI, where the ranks' shards of validation
        # rows run in different numbers of blocks and no rank may stop alone
        # (Ctrl-C is agreed at the next chunk or the epoch's end there).
        self.interrupts = None
        self.eval_rows = block_rows(provider.P.size)  # rows per block of the callbacks' evaluations

    def evaluation_blocks(self, n):
        """The blocks of an evaluation of ``n`` rows by a callback
        (``evaluation_blocks``), with Ctrl-C read between them in one process:
        a Ctrl-C there cuts the epoch, which counts as not completed."""
        return evaluation_blocks(n, self.eval_rows, self.interrupts, self.state.history)


def run_epochs(run, guard, callbacks, after_epoch, interrupts):
    """The epoch loop; returns the history."""
    net, st, s, provider = run.net, run.state, run.settings, run.provider
    batch = s.batch_size
    chunker = _Chunker(core_window_batches(provider.core, provider.P, batch))
    history = st.history
    scheduled = callable(s.learning_rate)
    batch_hooks = [cb for cb in callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
    options = last_lr = None
    clock = time.perf_counter
    agree = getattr(provider, "agree", None)
    while st.epoch < s.epochs and not st.stopped:
        epoch = st.epoch
        # A schedule that raises on one rank raises on all (MPI), as the user's callbacks do.
        lr = s.rate(epoch) if agree is None else provider.collective(lambda: s.rate(epoch))
        if scheduled:
            provider.check_same([("learning_rate(%d)" % epoch, lr)])
        if options is None:
            options = run.options(lr)
        elif lr != last_lr:  # (the core object's setter costs a binding call)
            options.learning_rate = lr
        last_lr = lr
        t0 = clock()
        order = provider.epoch_order(s.shuffle)
        n_order = order.shape[0]
        n_batches = -(-n_order // batch) if n_order else 0
        nb = chunker.batches(n_batches) if n_batches else 0  # the first chunk
        for cb in callbacks:
            cb.on_epoch_begin(net, epoch)
        cost_sum = penalty_sum = 0.0
        done = 0
        while done < n_batches:
            if done:
                nb = chunker.batches(n_batches - done)
            if agree is not None:  # MPI: rank 0's chunk size on every rank, and a Ctrl-C on any rank stops all
                nb, pending = agree(nb, interrupts.pending)
                if pending:
                    interrupts.pending = True
                    interrupts.check(history)
            hi = min((done + nb) * batch, n_order)
            tc = clock()
            cost_sum, penalty_sum = provider.run_steps(order[done * batch:hi] if nb < n_batches else order, options,
                                                       st, cost_sum, penalty_sum, interrupts)
            chunker.record(nb, clock() - tc)
            done += nb
            st.step += nb
            if batch_hooks:
                # With the weight-decay penalty, as history["cost"]: at the epoch's last chunk, its cost.
                logs = {"rows": hi, "cost": (cost_sum + penalty_sum) / hi}
                for cb in batch_hooks:
                    cb.on_batch_end(net, st.step, logs)
            if agree is None and interrupts.pending and done < n_batches:
                interrupts.check(history)  # between chunks; after the last one, at the epoch's end
        run.totals = (cost_sum, penalty_sum)  # the epoch's sums, for callbacks that weigh them their own way
        logs = {"cost": (cost_sum + penalty_sum) / run.n if run.n else math.nan}
        if guard is not None:
            if agree is None:
                guard.check_epoch(net, epoch, cost_sum + penalty_sum)
            else:  # agreed: a callback may have written NaN into one rank's parameters alone
                provider.check_model(lambda: guard.check_epoch(net, epoch, cost_sum + penalty_sum), st)
        stop = False
        for cb in callbacks:  # validation first: early stopping and the user see its values
            stop = bool(cb.on_epoch_end(net, epoch, logs)) or stop
        logs["time"] = clock() - t0
        if scheduled:
            logs["lr"] = lr
        for k, v in logs.items():
            h = history.get(k)
            if h is None:
                h = history[k] = []
            h.append(float(v))
        st.epoch += 1
        st.stopped = stop
        for fn in after_epoch:
            fn(net, epoch, logs)
        if run.boundary:
            step_boundary(net)  # a whole training state here: a waiting copy, pickle or fork may take it
        if agree is not None or interrupts.pending:
            interrupts.check(history, provider if agree is not None else None)
    return history


_EPOCH_LOOP = run_epochs.__code__  # what fit_network looks for on the stack


def fit_network(net, X, Y, context=None, checkpoint_io=None, **kw):
    """Network.fit (in one process, or inside a distributed Context): validate,
    build the callbacks, resume when asked, run the loop.

    ``checkpoint_io``: a function returning ``(save(net, path, record), load(path)
    -> (net, record), check(net, record))``, the model file's writer, reader and
    the writer's checks without writing, passed in by the
    model's layer so that the driver imports no file format (and no model class).
    """
    # The model lock refuses a fit from another thread; one from a callback
    # of this fit (the same thread) ran, and left the outer fit's optimizer
    # state, best epoch and checkpoint out of step with the parameters. Found
    # on this thread's stack rather than kept in a flag: nothing to undo when
    # a KeyboardInterrupt or a fork cuts a fit short.
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _EPOCH_LOOP and frame.f_locals["run"].net is net:
            raise RuntimeError("fit was called from inside a fit of the same network (from a callback); fit a "
                               "copy (copy.deepcopy(net)) instead")
        frame = frame.f_back
    # Over MPI, Ctrl-C is a flag from the first collective on (distributed_fit).
    with distributed_fit(context):
        provider = None

        def prepare():
            Xc = net._check_X(X, sparse=True)
            Yc = net._check_Y(Y, Xc.shape[0])
            return Xc, Yc

        if context is None:
            Xc, Yc = prepare()
            n = Xc.shape[0]
        else:
            provider = context.step_provider(net, prepare)  # checks on every rank, then agrees
            Xc, Yc, n = provider.X, provider.Y, provider.n

        def settings_and_data():
            settings, user_cbs, checkpoint, resume = check_settings(net, n, kw)
            val = None
            if kw["validation_data"] is not None:
                vd = kw["validation_data"]
                if not isinstance(vd, (tuple, list)) or len(vd) != 2:
                    raise TypeError("validation_data must be a pair (X_val, Y_val)")
                Xv = net._check_X(vd[0], name="validation_data[0]", sparse=True)
                Yv = net._check_Y(vd[1], Xv.shape[0], name="validation_data[1]", x_name="validation_data[0]")
                val = (Xv, Yv)
            rows = workspace_rows(settings.batch_size, net.sizes, net.dtype.itemsize)
            net._check_rows(rows, 2 * n)  # + the int64 row order of an epoch
            # Checked here, with the rest: over MPI a bad seed on one rank is raised on all.
            rng = net._rng if kw["seed"] is None else make_rng(kw["seed"])
            return settings, user_cbs, checkpoint, resume, val, rng

        if provider is None:
            settings, user_cbs, checkpoint, resume, val, rng = settings_and_data()
            provider = LocalSteps(net._net, net.parameters, Xc, Yc, rng)
        else:
            settings, user_cbs, checkpoint, resume, val, rng = provider.collective(settings_and_data)
            provider.rng = rng
        if not isinstance(provider, LocalSteps):
            # Besides the settings, whether there is a checkpoint (only rank 0
            # writes it, so its path may differ) and a resume: each adds
            # collectives that the other ranks would not make.
            provider.check_same(as_arguments(settings.fingerprint())
                                + [("checkpoint is not None", checkpoint is not None), ("resume", resume)])

        state = TrainState(net.num_params, net.dtype, settings.optimizer, rng)
        if checkpoint is not None:
            checkpoint_io = checkpoint_io()
            # What the first write would refuse (a generator without a file form,
            # a network the reader refuses), refused before the first step changes
            # anything, and before a resume's restore: the checkpoint's generator
            # states go into these generators, which must be of its kind.
            provider.collective(lambda: checkpoint_io[2](net, state.to_record(settings.fingerprint()))
                                if provider.is_root else None)
        if resume:
            # Over MPI, rank 0 reads the file (the one that writes it) and every rank takes its contents.
            saved = provider.collective(lambda: _read_checkpoint(net, settings, checkpoint, checkpoint_io[1],
                                                                 kw["batch_size"])
                                        if provider.is_root else None)
            saved = provider.share(saved)
            if saved is not None:
                _restore(net, settings, state, *saved)
        provider.start()  # MPI: rank 0's parameters on every rank
        run = Run(net, Xc, Yc, n, settings, state, provider)

        check_dense_blocks(run, settings.batch_size, ([(Xc, "the accuracy")] if settings.metrics else [])
                           + ([(val[0], "the validation cost")] if val is not None else []))

        guard = None if settings.on_nonfinite == "ignore" else NonFiniteGuard(settings.on_nonfinite).bind(run)
        callbacks = [] if guard is None else [guard]
        if val is not None or settings.metrics:
            callbacks.append(Validation(val, settings.metrics).bind(run))
        early = None
        if settings.early_stopping:
            early = EarlyStopping(settings.monitor, settings.patience, settings.min_delta,
                                  settings.restore_best).bind(run)
            callbacks.append(early)
        # Over MPI the ranks' hooks are agreed (any rank's): a callback on one rank alone made collectives
        # its peers did not, and the fit failed with a meaningless error on one rank and hung on the others.
        defined = [float(v) for v in UserCallbacks.defines(user_cbs)]
        epoch_hooks, batch_hooks = (v > 0 for v in provider.sum_floats(defined))
        if epoch_hooks or batch_hooks:
            callbacks.append(UserCallbacks(user_cbs, epoch_hooks, batch_hooks).bind(run))
        progress = Progress(settings.epochs, n).bind(run) if kw["progress"] else None
        if progress is not None:
            callbacks.append(progress)
        after = []
        if checkpoint is not None:
            cp = Checkpoint(checkpoint, checkpoint_io[0]).bind(run)
            # rank 0 writes; a failed write is raised on every rank (no rank left waiting)
            after.append(lambda net_, epoch, logs: provider.collective(lambda: cp.after_epoch(net_)))
        if kw["verbose"]:
            after.append(Verbose(settings.epochs, getattr(provider, "verbose_suffix", "")).bind(run).after_epoch)

        def start():
            if guard is not None and state.epoch == 0:
                guard.check_start(net)
            if checkpoint is not None and state.epoch == 0:
                # The starting point too: a fit stopped in its first epoch (Ctrl-C,
                # a kill) left no file, so the same call with resume=True started
                # afresh from the network as the stopped epoch had left it (and its
                # generator advanced), not bit-identical to an uninterrupted run.
                provider.collective(lambda: cp.after_epoch(net))

        # After early stopping's restore: the parameters the fit returns.
        finish = ([] if early is None else [lambda: early.on_fit_end(net)]) + \
                 ([] if guard is None else [lambda: guard.check_end(net, state.epoch)])
        # A full batch's workspace (rows x widths, the data's size or more) is
        # given back when the fit ends: a fitted model kept it for its lifetime.
        close = [net._net.release_workspace] + ([] if progress is None else [progress.close])
        return drive(run, guard, callbacks, after, start=start, close=close, finish=finish)


def drive(run, guard, callbacks, after=(), start=None, close=(), finish=()):
    """Run the epoch loop with Ctrl-C taken between chunks; returns the history.

    ``start()`` runs first (with the Ctrl-C flag installed), ``close`` always
    at the end, ``finish`` after a loop that was not interrupted. A Ctrl-C
    raises KeyboardInterrupt (with ``.history``) at a step boundary: between
    chunks, between the blocks of an epoch's validation (the epoch then not
    completed), or after an epoch.
    """
    interrupts = Interrupts()
    provider = run.provider
    if not hasattr(provider, "agree"):
        run.interrupts = interrupts
    with interrupts.installed():
        interrupts.loop_begins()
        if start is not None:
            start()
        try:
            history = run_epochs(run, guard, callbacks, after, interrupts)
        finally:
            for fn in close:
                fn()
        # Over MPI agreed, as the loop's checks (the parameters a callback changed on one rank).
        if hasattr(provider, "agree"):
            provider.check_model(lambda: [fn() for fn in finish], run.state)
        else:
            for fn in finish:
                fn()
        # a Ctrl-C during the last epoch's end still stops the program
        interrupts.check(history, provider if hasattr(provider, "agree") else None)
    return history


def _read_checkpoint(net, settings, path, load_checkpoint, batch_size):
    """``(parameters, network rng state, record)`` of the checkpoint at ``path``,
    checked against this fit (``batch_size``: as fit was given it); None when
    there is no file yet (a fresh start)."""
    if not os.path.exists(path):
        return None
    saved, record = load_checkpoint(path)
    if (saved.sizes, saved.activations, saved.loss, saved.dtype) != (net.sizes, net.activations, net.loss,
                                                                      net.dtype):
        raise ValueError(f"resume: the checkpoint {path!r} holds {saved!r}, not this network ({net!r})")
    if activation_specs(saved) != activation_specs(net):
        raise ValueError(f"resume: the checkpoint {path!r} has the activations {activation_specs(saved)}, this "
                         f"network {activation_specs(net)} (name, fixed parameter)")
    if record is None:
        raise ValueError(f"resume: {path!r} is a model file without training state (not a checkpoint)")
    diff = first_difference(record["settings"], settings.fingerprint())
    if diff is not None:
        name, was, now = diff
        if name == "batch_size":  # the effective size: say so where None (all rows) gave it
            was, now = f"{was} rows a step", (f"{now} rows a step" if batch_size is not None else
                                              f"batch_size=None ({now} rows a step)")
        else:
            was, now = repr(was), repr(now)
        arg = as_arguments([(name, None)])[0][0]
        raise ValueError(f"resume: {arg} must be as when the checkpoint {path!r} was written: it was {was}, "
                         f"this fit has {now}")
    if record["epoch"] > settings.epochs:  # else the checkpoint's longer run came back as this one's
        raise ValueError(f"resume: epochs={settings.epochs} is below the {record['epoch']} epochs the checkpoint "
                         f"{path!r} has completed (epochs counts the whole run's)")
    return saved.parameters, saved._rng.bit_generator.state, record


def _restore(net, settings, state, parameters, rng_state, record):
    # What can refuse first (the fresh state, then the generators, checked to be
    # of the file's kind), the parameters last: a refused resume leaves the network as it was.
    state.load_record(record)
    # A run stopped by a callback goes on to this fit's epochs (its callbacks
    # decide again); one whose early stopping ran out of patience stays stopped.
    if state.stopped and not (settings.early_stopping and state.wait >= settings.patience):
        state.stopped = False
    net._rng.bit_generator.state = rng_state
    state.rng.bit_generator.state = record["rng"]
    net.parameters[...] = parameters
