"""One lock per model: predictions side by side, fits one at a time.

The C++ epoch runs with the GIL released, so two Python threads can reach one
model at once. The rules, for a ``Network`` and for the estimators alike:

- any number of reads (``predict``, ``predict_proba``, ``cost``, ...) run at
  the same time;
- a second ``fit`` / ``partial_fit`` while one runs raises ``RuntimeError``
  at once, touching nothing;
- a read that arrives during a fit waits for the fit to end, then answers
  with the fitted model; a fit that arrives during reads waits for them.

The lock lives in the model's ``__dict__`` (``_model_lock``, made on first
use) and pickles as a fresh one: an unpickled model, a ``copy.deepcopy`` or a
``sklearn.base.clone`` has a free lock of its own. A thread may read inside
its own fit, and nest reads, without deadlock.
"""
from __future__ import annotations

import functools
import threading
from threading import get_ident


class ModelLock:
    """A readers-writer lock where a writer (a fit) never waits for another writer.

    Writers have priority: once a fit has claimed the model, new reads wait
    for it, so a stream of predictions cannot hold a fit off for ever."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._changed = threading.Condition(self._mutex)  # a fit ended, or the last read did
        self._readers = {}       # thread ident -> depth of its (nested) read sections
        self._writer = None      # ident of the thread fitting, or None
        self._writer_depth = 0

    def __reduce__(self):
        # A pickled or copied model starts with a free lock of its own.
        return (ModelLock, ())

    # Reads take no mutex unless a fit is near: a one-row predict costs a few
    # microseconds, and the lock must not add much to it. This relies on the
    # GIL making each dict operation and attribute access atomic and ordered:
    # a read announces itself (in _readers) before it looks at _writer, and a
    # fit claims _writer before it looks at _readers, so one of them always
    # sees the other.

    def acquire_read(self):
        me = get_ident()
        readers = self._readers
        depth = readers.get(me, 0)
        readers[me] = depth + 1  # only this thread writes its own entry
        writer = self._writer
        if depth or writer is None or writer == me:  # nested, no fit, or inside our own fit
            return
        with self._mutex:  # a fit holds or claims the model: step back and wait for it
            del readers[me]
            if not readers:
                self._changed.notify_all()
            while self._writer is not None:
                self._changed.wait()
            readers[me] = 1  # under the mutex: no fit can claim the model in between

    def release_read(self):
        me = get_ident()
        readers = self._readers
        depth = readers[me]
        if depth > 1:
            readers[me] = depth - 1
            return
        del readers[me]
        if self._writer is not None:  # a fit may be waiting for the last read
            with self._mutex:
                self._changed.notify_all()

    def acquire_write(self, what):
        me = get_ident()
        with self._mutex:
            if me in self._readers:
                raise RuntimeError(f"{what} cannot be fitted from inside one of its own predictions")
            if self._writer == me:
                self._writer_depth += 1
                return
            if self._writer is not None:
                raise RuntimeError(f"{what} is already being fitted in another thread; fit a copy instead "
                                   "(copy.deepcopy, or sklearn.base.clone for an estimator), or wait for "
                                   "that fit to end")
            self._writer = me  # from here on new reads wait
            self._writer_depth = 1
            try:
                while self._readers:  # the reads in progress finish first
                    self._changed.wait()
            except BaseException:  # interrupted while waiting: give the model back
                self._writer = None
                self._changed.notify_all()
                raise

    def release_write(self):
        with self._mutex:
            self._writer_depth -= 1
            if self._writer_depth == 0:
                self._writer = None
                self._changed.notify_all()

    @property
    def fitting(self):
        """True while a fit holds (or is claiming) the model."""
        return self._writer is not None


def model_lock(model):
    """The lock of ``model``, made on first use and kept in its ``__dict__``."""
    lock = model.__dict__.get("_model_lock")
    if lock is None:  # setdefault is atomic: two first users get the same lock
        lock = model.__dict__.setdefault("_model_lock", ModelLock())
    return lock


def reads_model(method):
    """Decorator: ``method`` only reads the model (may run beside other reads)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        lock = self.__dict__.get("_model_lock") or model_lock(self)
        lock.acquire_read()
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release_read()
    return wrapper


def fits_model(method):
    """Decorator: ``method`` changes the model (one at a time, no reads meanwhile)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        lock = model_lock(self)
        lock.acquire_write(type(self).__name__)
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release_write()
    return wrapper
