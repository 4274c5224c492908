"""One lock per model: predictions side by side, fits one at a time.

The C++ epoch runs with the GIL released, so two Python threads can reach one
model at once. The rules, for a ``Network`` and for the estimators alike:

- any number of reads (``predict``, ``predict_proba``, ``cost``, ...) run at
  the same time;
- a second ``fit`` / ``partial_fit`` while one runs raises ``RuntimeError``
  at once, touching nothing;
- a read that arrives during a fit waits for the fit to end, then answers
  with the fitted model; a fit that arrives during reads waits for them;
- a copy (``pickle``, ``copy.deepcopy``, ``copy.copy``) taken during a fit
  waits for the fit's next step boundary (``Network.fit``: the end of an
  epoch; the estimators: the end of the fit) and copies the model as it is
  there, a whole training state; the copy is taken under the lock, so a fit
  that starts while the copy is written out cannot tear it either;
- ``os.fork()`` (and multiprocessing's 'fork') while other threads use
  models waits until none of them is inside a call: fits park at their next
  step boundary, reads finish, new calls wait for the fork. The child starts
  with every lock free (the other threads do not exist there), each model a
  whole training state, and no core mutex held by a thread that is gone. A
  fork by a C library that bypasses ``os.fork`` gets the free locks but not
  the wait.

The lock lives in the model's ``__dict__`` (``_model_lock``, made on first
use) and pickles as a fresh one: an unpickled model, a ``copy.deepcopy`` or a
``sklearn.base.clone`` has a free lock of its own. A thread may read inside
its own fit, and nest reads, without deadlock.

Asynchronous exceptions: a KeyboardInterrupt (any exception a signal handler
raises) can arrive between any two bytecodes. The lock's state machine is in
C++ (``cpp/bindings/bind_lock.cpp``): each transition runs with the GIL held
and no Python code, so a handler never sees it half done, and an interrupted
wait leaves the state as it was. The decorators below enter it only through
``with lock:`` (a read) or ``with lock.fits:`` / ``with lock.copies:``, whose
``__enter__`` and ``__exit__`` are C functions: CPython runs no signal handler
between a C ``__enter__`` returning and the with-block's protection starting
(CPython 3.11 to 3.13: BEFORE_WITH calls ``__enter__``, the block's exception
table entry starts at the next instruction, and pending handlers run only at
calls, backward jumps and function entry), nor between the block's end and
the C ``__exit__`` call, so a lock that was taken is always given back.
(CPython 3.9 checks for handlers after the with-block's POP_BLOCK, before
``__exit__``: one instruction where an interrupt would still leak a lock.
3.10 and 3.14 are not checked; the SIGINT tests in
tests/test_fork_and_signals.py would show a leak on any version they run on.)
``acquire_*`` and ``release_*`` written by hand around a ``try:`` are not
safe: the check at the end of the acquiring call can raise before the ``try:``
(that was the bug: 124 SIGINTs into a loop of predictions and fits left a
read held).
"""
from __future__ import annotations

import copy
import functools
import inspect
import os
from typing import Any, Callable, TypeVar

from . import _core

ModelLock = _core.ModelLock
# The decorators return a function of the same signature, so type checkers see the method's own.
_F = TypeVar("_F", bound=Callable[..., Any])


def model_lock(model):
    """The lock of ``model``, made on first use and kept in its ``__dict__``."""
    lock = model.__dict__.get("_model_lock")
    if lock is None:  # setdefault is atomic: two first users get the same lock
        lock = model.__dict__.setdefault("_model_lock", ModelLock(type(model).__name__))
    return lock


def reads_model(method: _F) -> _F:
    """Decorator: ``method`` only reads the model (may run beside other reads)."""
    if _takes_only_x(method):
        # predict(X) and predict_proba(X): packing and unpacking *args and
        # **kwargs is a visible part of a one-row predict (BENCHMARKS.md,
        # "Measurements behind the code": reads_model).
        @functools.wraps(method)
        def read_x(self, X):
            with self.__dict__.get("_model_lock") or model_lock(self):
                return method(self, X)
        return read_x  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.__dict__.get("_model_lock") or model_lock(self):  # `with lock:` is a read
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _takes_only_x(method) -> bool:
    """True when ``method``'s parameters are ``(self, X)``, both positional or keyword, X without a default."""
    params = list(inspect.signature(method).parameters.values())
    return [p.name for p in params] == ["self", "X"] and all(
        p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params)


def fits_model(method: _F) -> _F:
    """Decorator: ``method`` changes the model (one at a time, no reads meanwhile)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with model_lock(self).fits:
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def copies_model(getstate: _F) -> _F:
    """Decorator for ``__getstate__``: the state of a whole model, never a torn one.

    Waits for a running fit's next step boundary (see :func:`step_boundary`),
    and returns a deep copy made under the lock: pickle writes the state out,
    and deepcopy copies it, after ``__getstate__`` returns, when a new fit may
    already be changing the model's own arrays. (So ``copy.deepcopy`` copies
    the arrays twice, and ``copy.copy`` makes a whole copy too.)"""
    @functools.wraps(getstate)
    def wrapper(self):
        with model_lock(self).copies:
            return copy.deepcopy(getstate(self))
    return wrapper  # type: ignore[return-value]


def step_boundary(model):
    """Called by a training loop, inside its fit, where ``model`` is a whole
    training state (``Network.fit``: after each epoch, once the non-finite
    check has put the parameters back if it had to). A copy or a fork waiting
    for the fit runs here while the fit waits; otherwise it costs one check.
    A loop that never calls it makes copies and forks wait for the fit's end."""
    lock = model.__dict__.get("_model_lock")
    if lock is not None:
        lock.step_boundary()


if hasattr(os, "register_at_fork"):
    # CPython runs before-fork hooks last registered first. A hook registered
    # after this one runs before it: one that takes a lock (logging's module
    # lock; concurrent.futures.thread's shutdown lock) holds it while this one
    # waits for fits, and a fit or read that needs it (a warning routed
    # through logging.captureWarnings, a log record, a callback's
    # executor.submit) never ends: both wait for ever. Importing them here
    # registers their hooks first, so they run after the wait, when no thread
    # is inside a model's call. (random's, threading's and asyncio's hooks
    # run only in the child; a third-party hook registered later that takes
    # a lock a fit needs still hangs: README, "Threads".)
    import concurrent.futures.thread  # noqa: F401  (imports logging too)
    import logging  # noqa: F401

    # before: wait until no other thread is inside a model's call (fits park
    # at a step boundary, reads finish; new calls wait) so the child sees
    # whole models; the child's locks are freed by a pthread_atfork handler
    # in the core.
    os.register_at_fork(before=_core._locks_fork_prepare, after_in_parent=_core._locks_fork_done)
