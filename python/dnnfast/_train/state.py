"""What a fit carries from epoch to epoch: History, the settings and the
training state (what a checkpoint saves and a resume restores)."""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Dict, List

import numpy as np

from .._buffers import aligned_zeros
from .._registry import OPTIMIZER_TABLE


#: The largest learning rate taken, constant or returned by a schedule.
MAX_LEARNING_RATE = 1.0


class History(Dict[str, List[float]]):
    """What ``fit`` returns: ``history["cost"]`` (or ``history.cost``) is the
    training cost of each epoch (the mean of its batch costs, weighted by batch
    size, each measured before its update, plus the weight-decay penalty when
    there is one); ``history["time"]`` the seconds each epoch took. Validation
    adds ``val_cost``, ``metrics=["accuracy"]`` adds ``accuracy`` (and
    ``val_accuracy``), and ``lr`` holds each epoch's learning rate when it is
    a schedule."""

    def __getattr__(self, key: str) -> List[float]:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


@dataclasses.dataclass
class FitSettings:
    """The settings of one fit, validated (driver.check_settings)."""
    epochs: int
    batch_size: int            # effective: rows per update (n for batch GD)
    learning_rate: object      # float, or callable epoch -> rate
    optimizer: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0
    shuffle: bool = False
    seeded: bool = False       # fit(seed=...) given: its own generator
    on_nonfinite: str = "raise"
    early_stopping: bool = False
    monitor: str = "val_cost"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True
    metrics: tuple = ()
    validation: bool = False
    # The network's dtype: a rate below its smallest normal number updates
    # nothing. Not a setting of the run (the checkpoint's network has it).
    dtype: str = dataclasses.field(default="float64", metadata={"fingerprint": False})

    def rate(self, epoch):
        """The learning rate of ``epoch`` (0-based), checked when a callable gives it."""
        lr = self.learning_rate
        if not callable(lr):
            return lr
        value = lr(epoch)
        # As a float first: np.longdouble(1e400) is finite until it becomes the
        # core's double. Bounded as a constant rate is (MAX_LEARNING_RATE).
        rate = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
        if not 0.0 <= rate <= MAX_LEARNING_RATE:
            raise ValueError(f"learning_rate({epoch}) must return a number in [0, {MAX_LEARNING_RATE:g}], "
                             f"got {value!r:.60}")
        if 0.0 < rate < np.finfo(self.dtype).tiny:  # 0 is an epoch without updates, asked for
            raise ValueError(f"learning_rate({epoch}) must return 0 or at least {np.finfo(self.dtype).tiny:g} "
                             f"for a {self.dtype} network (smaller updates nothing), got {value!r:.60}")
        return rate

    def fingerprint(self):
        """(name, value) of every setting, in a form comparable across processes
        and stored in checkpoints (a callable schedule is compared per epoch, by its rates)."""
        out = []
        for f in dataclasses.fields(self):
            if not f.metadata.get("fingerprint", True):
                continue
            v = getattr(self, f.name)
            if f.name == "learning_rate" and callable(v):
                v = "callable"
            out.append((f.name, v if not isinstance(v, tuple) else list(v)))
        return out


#: Settings of the fingerprint that are not fit's arguments, as messages name
#: them (the checkpoint's record keeps the settings' own names): the MPI
#: check's and a resume's.
ARGUMENT_NAMES = {"seeded": "seed is not None", "validation": "validation_data is not None"}


def as_arguments(fingerprint):
    """``fingerprint`` with every setting named as fit's argument it comes from."""
    return [(ARGUMENT_NAMES.get(name, name), value) for name, value in fingerprint]


def activation_specs(net):
    """Each layer's activation with its fixed parameter (leaky_relu's or elu's
    alpha): two networks whose activations share names but not these compute
    different things. (prelu's alphas are parameters, compared as such.)"""
    return [(a.name, a.param if a.has_param and not a.per_unit else None) for a in net._acts]


def first_difference(a, b, skip=("epochs",)):
    """The first (name, value_a, value_b) where two fingerprints differ, or None."""
    da, db = dict(a), dict(b)
    for name in list(da) + [k for k in db if k not in da]:
        if name in skip:
            continue
        if da.get(name) != db.get(name):
            return name, da.get(name), db.get(name)
    return None


class TrainState:
    """Optimizer buffers, Adam's step count, the generator, the epoch counter,
    the history and early stopping's record: everything a resumed fit needs to
    be the same computation as one that was never interrupted."""

    def __init__(self, num_params, dtype, optimizer, rng):
        self.optimizer = optimizer
        self.dtype = np.dtype(dtype)
        nb = OPTIMIZER_TABLE[optimizer][1]
        self.state1 = aligned_zeros(num_params, dtype) if nb >= 1 else None
        self.state2 = aligned_zeros(num_params, dtype) if nb >= 2 else None
        self.t = np.zeros(1, dtype=np.int64) if nb >= 2 else None
        self.rng = rng
        self.epoch = 0          # completed epochs
        self.step = 0           # completed updates
        self.history = History(cost=[], time=[])
        self.stopped = False    # early stopping or a callback ended the fit
        # early stopping's record
        self.best = None        # best monitored value so far
        self.best_epoch = None  # 1-based
        self.wait = 0           # epochs without improvement
        self.best_params = None
        # The history as float64 arrays for the checkpoint, kept up to date by
        # appending each epoch's values (history_arrays): a checkpoint of a long
        # run then writes its history without converting every value again.
        self._history_arrays = {}  # key -> (the list, its buffer, values copied)

    def history_arrays(self):
        """{key: float64 array} of the history, views of buffers grown by
        appending (amortised O(1) per epoch). Only the driver appends to the
        lists, and only at their end; a list replaced (a resume) or shorter
        than what was copied is copied again."""
        out = {}
        for key, values in self.history.items():
            entry = self._history_arrays.get(key)
            if entry is None or entry[0] is not values or entry[2] > len(values):
                buffer = np.empty(max(16, 2 * len(values)), dtype=np.float64)
                entry = (values, buffer, 0)
            values, buffer, done = entry
            if len(values) > buffer.shape[0]:
                grown = np.empty(2 * len(values), dtype=np.float64)
                grown[:done] = buffer[:done]
                buffer = grown
            buffer[done:len(values)] = values[done:]
            self._history_arrays[key] = (values, buffer, len(values))
            out[key] = buffer[:len(values)]
        return out

    def snapshot(self):
        """Copies of the optimizer buffers (the non-finite guard's restore point)."""
        return tuple(None if a is None else a.copy() for a in (self.state1, self.state2, self.t))

    def restore(self, snap):
        for dst, src in zip((self.state1, self.state2, self.t), snap):
            if dst is not None:
                dst[...] = src

    # -- the checkpoint form (docs/model_files.md, "training state") ---------

    def to_record(self, fingerprint):
        """(header dict, arrays dict) for the model file's optional training members:
        the arrays in the core's parameter order; the header's ``history``, float64
        arrays (the file's ``train_history_*`` members, which _network_file writes)."""
        header = {"epoch": int(self.epoch), "step": int(self.step), "optimizer": self.optimizer,
                  "t": int(self.t[0]) if self.t is not None else 0, "stopped": bool(self.stopped),
                  "wait": int(self.wait), "best": self.best, "best_epoch": self.best_epoch,
                  "history": self.history_arrays(),
                  "settings": [[k, v] for k, v in fingerprint], "rng": self.rng,
                  "best_params": self.best_params is not None}
        arrays = {}
        if self.state1 is not None:
            arrays["train_state1"] = self.state1
        if self.state2 is not None:
            arrays["train_state2"] = self.state2
        if self.best_params is not None:
            arrays["train_best_params"] = self.best_params
        return header, arrays

    def load_record(self, record):
        """Take over a checkpoint's record (read by _network_file, checked there)."""
        if record["optimizer"] != self.optimizer:
            raise ValueError(f"resume: optimizer must be as when the checkpoint was written: it was "
                             f"{record['optimizer']!r}, this fit has {self.optimizer!r}")
        self.epoch, self.step = record["epoch"], record["step"]
        self.stopped, self.wait = record["stopped"], record["wait"]
        self.best, self.best_epoch = record["best"], record["best_epoch"]
        self.history = History({k: list(v) for k, v in record["history"].items()})
        arrays = record["arrays"]
        if self.state1 is not None:
            self.state1[...] = arrays["train_state1"]
        if self.state2 is not None:
            self.state2[...] = arrays["train_state2"]
            self.t[0] = record["t"]
        bp = arrays.get("train_best_params")
        self.best_params = None if bp is None else np.array(bp, dtype=self.dtype)
