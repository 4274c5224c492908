"""Data-parallel training over MPI (mpi4py): many processes, one model.

Each process (an MPI *rank*) holds a shard of the training rows; together the
shards are the data set, numbered rank 0's rows first, then rank 1's, and so
on (the *global* row order). Training inside a :class:`Context` is then the
same computation as one process training on all the rows:

- the parameters are broadcast from rank 0 before training, so every rank
  starts from rank 0's weights whatever its own seed;
- each epoch, rank 0 draws the order of the global rows (with its generator,
  as one process would) and broadcasts it;
- each step, a *global* batch is the next ``batch_size`` indices of that
  order; every rank computes the gradient SUM over the rows of the batch it
  holds (nothing when it holds none), one in-place ``Allreduce`` adds the
  sums of all ranks, and every rank divides by the batch's size (or weight)
  and takes the same optimizer step, so the parameters stay bit-identical on
  all ranks.

The three kinds of gradient descent keep their meaning over the global rows:
``batch_size=None`` is one update per epoch over all rows of all ranks;
``batch_size=k`` one update per block of k global rows (the last block
shorter); ``batch_size=1`` one update per row, computed by the rank that holds
it while the others add zeros (correct, but no faster than one process).

A global batch is split between the ranks by who holds its rows: with
``shuffle=True`` each rank gets about ``k / R`` of every batch; without it a
batch is a run of consecutive rows, which mostly lies on one rank.

Errors: every check runs on every rank and the ranks then agree, so an error
on one rank (bad input, a NaN, arguments that differ between ranks, a user
callback or learning-rate schedule that raises, rank 0's verbose or progress
output that fails) is raised on all of them, with the failing rank's message,
instead of leaving the others waiting in a collective; a callback's stop on
any rank stops all. A failed non-finite check leaves every rank with the
lowest failing rank's parameters, those its message describes. A
KeyboardInterrupt or SystemExit on one rank (a callback's, a signal
handler's) ends the fit on all ranks too: from a fit's first collective on,
the user's own signal handlers are called at the ranks' next agreement (a
step boundary), not where the signal comes. Ctrl-C (Python's default
handler) is a flag from there on: before the first step every rank raises
KeyboardInterrupt at their next agreement (as one process raises it there:
an estimator is left as it was); from the first step on the ranks agree on
it at the next chunk of steps. Outside a fit nothing can agree for the
program: run it as ``mpiexec -n R python -m mpi4py
script.py``, so that an exception ending one rank aborts the job.

mpi4py is imported on first use: ``pip install "dnnfast[mpi]"`` installs it
with MPICH's binary wheels (``mpiexec`` in the environment's ``bin``).
"""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, TypeVar

import numpy as np

__all__ = ["Context", "current"]

_local = threading.local()

# Exception types that cross ranks as themselves (made from a message on the
# other ranks); any other arrives as the nearest of them in its MRO, else as
# RuntimeError, its own name leading the message.
_PORTABLE = (ValueError, TypeError, FloatingPointError, MemoryError, IndexError, KeyError, ImportError,
             OverflowError, ZeroDivisionError, NotImplementedError, OSError, RuntimeError,
             # not errors, but they end a fit on one rank (a callback, a signal handler): they end it on every rank
             KeyboardInterrupt, SystemExit)


def _payload(error):
    """What the other ranks are sent of ``error``: (type name, message, exit code).

    Made before the agreement's first collective, and never raises there
    (a ``__str__`` that fails would leave the others in the second one).
    """
    if isinstance(error, SystemExit) and (error.code is None or isinstance(error.code, int)):
        # an exit status, as a plain int (an IntEnum of a function's own cannot be pickled)
        return "SystemExit", None, None if error.code is None else int(error.code)
    try:
        text = str(error)
    except Exception as exc:  # noqa: BLE001 - any failure: the message says so
        text = f"<str() failed: {type(exc).__name__}>"
    kind = next((k for k in type(error).__mro__ if k in _PORTABLE), RuntimeError)
    return kind.__name__, text if kind is type(error) else f"{type(error).__name__}: {text}", None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("dnnfast.distributed needs mpi4py and an MPI library: pip install \"dnnfast[mpi]\" "
                          f"(mpi4py with MPICH's wheels) ({exc})") from None
    return MPI


def _row_count(n, name):
    """A count of rows: an integer (not a bool, not a float truncated) >= 0 that fits int64."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {n!r}")
    if not 0 <= n < 2**63:
        raise ValueError(f"{name} must be a non-negative integer below 2**63, got {n!r}")
    return int(n)


def current():
    """The innermost active :class:`Context` of this thread, or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def collective(ctx, fn):
    """``fn()`` on this rank; with a context, an error on any rank is raised on all."""
    if ctx is None:
        return fn()
    with ctx.errors():
        return fn()


if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ._train.state import History
    from ._types import FloatArray

_Buf = TypeVar("_Buf", bound=np.ndarray)  # type: ignore[type-arg]  # any NumPy buffer, returned as given


class Context:
    """Data-parallel training over an MPI communicator.

    Inside ``with Context(comm):`` (``comm`` defaults to ``MPI.COMM_WORLD``),
    :meth:`dnnfast.Network.fit` and the estimators' ``fit`` / ``partial_fit``
    (solvers ``sgd`` and ``adam``) train on this rank's shard of the rows, as
    one model with all ranks::

        from dnnfast.distributed import Context
        with Context():                         # run under mpiexec -n R
            net.fit(X_shard, Y_shard, epochs=10, batch_size=256, shuffle=True)

    Every rank must make the same calls with the same arguments (only the
    data differ). Not supported across ranks, and refused with a message:
    the ``lbfgs`` solver, ``early_stopping=True`` and
    ``class_weight="balanced"`` (which need the whole data set at once).

    A fit from a callback of a fit over the same communicator is refused
    (its collectives would meet the outer fit's on the other ranks): fit
    such a model after the outer fit, or in the callback inside ``with
    Context(MPI.COMM_SELF):``, which trains it on this rank alone.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        The ranks that train together: any intra-communicator (an
        ``MPI.Comm`` wrapping one is taken too); by default
        ``MPI.COMM_WORLD``. ``MPI.COMM_NULL`` and inter-communicators are
        refused.
    """

    def __init__(self, comm: Any = None) -> None:
        MPI = _mpi()
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm must be an mpi4py intra-communicator (such as MPI.COMM_WORLD), got {comm!r}")
        if comm == MPI.COMM_NULL:  # else mpi4py's bare "Invalid communicator" from Get_rank
            raise ValueError("comm is MPI.COMM_NULL (a freed communicator, or one never created): pass an "
                             "intra-communicator such as MPI.COMM_WORLD")
        if not comm.Is_intra():
            raise TypeError(f"comm must be an intra-communicator (such as MPI.COMM_WORLD), got an "
                            f"inter-communicator {comm!r}")
        if not isinstance(comm, MPI.Intracomm):  # an intra-communicator in a base-class wrapper: MPI.Comm(comm)
            comm = MPI.Intracomm(comm)
        self._MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        # The running fit's driver.Interrupts (driver.distributed_fit): what
        # waits for the ranks' next agreement (agree runs it).
        self._fit: Any = None

    def __enter__(self) -> Context:
        if not hasattr(_local, "stack"):
            _local.stack = []
        _local.stack.append(self)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        stack = getattr(_local, "stack", [])
        if self not in stack:
            raise RuntimeError(f"{self!r} is not active in this thread: __exit__ without its __enter__ "
                               "(use it as `with Context(...):`)")
        stack.remove(self)
        return False

    def __repr__(self) -> str:
        return f"Context(rank={self.rank}, size={self.size})"

    # -- agreement on errors ----------------------------------------------------

    def agree(self, error: BaseException | None = None,
              on_failure: Callable[[int], None] | None = None) -> None:
        """Collective: raise on every rank when ``error`` (an exception or None) is set on any.

        Each failing rank re-raises its own exception; the others raise the
        lowest failing rank's, as the same type or the nearest base type
        that crosses ranks (``_PORTABLE``; else RuntimeError), with ``"rank r
        of R: <message>"``. A KeyboardInterrupt or SystemExit (a
        callback's, or a signal handler's) ends the fit on every rank as
        well: the others raise a KeyboardInterrupt, or a SystemExit with the
        same integer exit code (a text code gets the prefix).

        ``on_failure(rank)``: run on every rank, as a collective, before the
        raise, with the lowest failing rank (to take its state: then a rank
        that failed otherwise raises that rank's error too).

        Without an error of its own, a rank first takes what its fit held
        for this agreement (``driver.Interrupts.run_held``: a signal handler
        of the user's, a Ctrl-C before the epoch loop, an error of rank 0's
        output).

        Parameters
        ----------
        error : BaseException, optional
            This rank's error, or None when it has none.
        on_failure : callable, optional
            ``on_failure(rank)``, as above.
        """
        if error is None and self._fit is not None:
            error = self._fit.run_held()
        MPI = self._MPI
        payload = None if error is None else _payload(error)
        mine = np.array([self.rank if error is not None else self.size], dtype=np.int64)
        self.comm.Allreduce(MPI.IN_PLACE, mine, op=MPI.MIN)
        failed = int(mine[0])
        if failed == self.size:
            return
        name, message, code = self.comm.bcast(payload if self.rank == failed else None, root=failed)
        if self.rank == failed and error is None:  # ranks out of step: this one's MIN met another collective's data
            raise RuntimeError("dnnfast.distributed: the ranks reached different collectives (a call or "
                               "argument that differs between ranks)")
        if on_failure is not None:
            on_failure(failed)
        # Several ranks failing alike (a diverging fit): each its own, exact
        # error; but after on_failure, which gave this rank the failing rank's
        # state, an error of its own that differs describes a state it no longer has.
        if error is not None and (on_failure is None or payload == (name, message, code)):
            raise error
        where = f"rank {failed} of {self.size}"
        if message is None:
            # Every rank exits with the failing rank's status (a text in the exception would make it 1).
            exc = SystemExit(code)
            if hasattr(exc, "add_note"):  # Python 3.11
                exc.add_note(f"{where} exited with sys.exit({code!r})")
            raise exc
        kind = next((k for k in _PORTABLE if k.__name__ == name), RuntimeError)
        raise kind(f"{where}: {message}")

    @contextlib.contextmanager
    def errors(self, on_failure: Callable[[int], None] | None = None) -> Iterator[None]:
        """Run a block of local work, then agree: an error on any rank is raised on all.

        Parameters
        ----------
        on_failure : callable, optional
            As :meth:`agree`'s.
        """
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 - every error, Ctrl-C and exit included, goes to the others
            self.agree(exc, on_failure)
            raise  # not reached: agree raised
        self.agree(None, on_failure)

    def check_same(self, what: str, value: object) -> None:
        """Collective: raise on all ranks unless ``value`` is equal on every rank.

        Parameters
        ----------
        what : str
            What ``value`` is, for the ValueError's message.
        value : object
            Compared with rank 0's by ``==`` after pickling.
        """
        values = self.comm.allgather(value)
        bad = [r for r, v in enumerate(values) if v != values[0]]
        if bad:
            raise ValueError(f"{what} must be the same on every rank: rank 0 has {values[0]!r}, "
                             f"rank {bad[0]} has {values[bad[0]]!r}")

    def check_same_settings(self, fingerprint: list[tuple[str, object]], what: str) -> None:
        """Collective: ``fingerprint`` equal on every rank, else one
        ValueError, the same on all ranks, naming the first setting that
        differs (``_train.state.first_difference``) and the two values.

        Parameters
        ----------
        fingerprint : list of (str, object)
            ``(name, value)`` pairs, values comparable with ``==`` after
            pickling.
        what : str
            What the settings are of, leading the message (as
            ``"MLPClassifier's parameter"``).
        """
        from ._train.state import first_difference

        values = self.comm.allgather(fingerprint)
        for r, other in enumerate(values[1:], 1):
            diff = first_difference(values[0], other, skip=())
            if diff is not None:
                name, mine, theirs = diff
                raise ValueError(f"{what} {name} must be the same on every rank: rank 0 has {mine!r}, "
                                 f"rank {r} has {theirs!r}")

    # -- collectives on buffers (no pickling) -------------------------------------

    def sum_(self, buf: _Buf) -> _Buf:
        """In-place sum of a NumPy buffer over all ranks.

        Parameters
        ----------
        buf : numpy.ndarray
            C-contiguous, of the same shape and dtype on every rank; holds
            the sum afterwards, and is returned.
        """
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def broadcast_(self, buf: _Buf, root: int = 0) -> _Buf:
        """In-place broadcast of a NumPy buffer from ``root``.

        Parameters
        ----------
        buf : numpy.ndarray
            C-contiguous, of the same shape and dtype on every rank; holds
            ``root``'s values afterwards, and is returned.
        root : int, default=0
            The rank whose buffer is sent.
        """
        self.comm.Bcast(buf, root=root)
        return buf

    def block(self, n: int) -> slice:
        """``slice(lo, hi)``: this rank's share of ``n`` rows in an even
        contiguous split (rank 0 first), for data every rank can index.

        Parameters
        ----------
        n : int
            The number of rows, a non-negative integer.
        """
        n = _row_count(n, "n")
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def shard(self, n_local: int) -> tuple[int, int]:
        """Collective: ``(offset, n_global)``, where this rank's rows start in
        the global order, and the total over ranks.

        Parameters
        ----------
        n_local : int
            The number of rows this rank holds, a non-negative integer.
        """
        with self.errors():  # a bad count on one rank: the others are in the Allgather below
            n_local = _row_count(n_local, "n_local")
        counts = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([n_local], dtype=np.int64), counts)
        return int(counts[:self.rank].sum()), int(counts.sum())

    def union_labels(self, labels: ArrayLike) -> NDArray[Any]:
        """Collective: the labels of every rank, concatenated (a class absent
        from one rank's shard is still a class of the model).

        Parameters
        ----------
        labels : array-like
            This rank's labels; the ranks' must be all strings or all
            numbers (else a ValueError).
        """
        parts = self.comm.allgather(np.asarray(labels))

        def strings(p):
            return p.dtype.kind in "US" or (p.dtype.kind == "O" and all(isinstance(v, str) for v in p.tolist()))

        if len({strings(p) for p in parts if p.size}) > 1:  # concatenated, they failed as "invalid literal for int()"
            raise ValueError("y: the ranks' class labels mix strings and numbers (" +
                             ", ".join(f"rank {r}: {p.dtype}" for r, p in enumerate(parts)) + ")")
        return np.concatenate(parts)

    def global_order(self, n_global: int, draw: Callable[[], NDArray[np.int64]]) -> NDArray[np.int64]:
        """Collective: rank 0's ``draw()`` (an int64 order of the global rows), on every rank.

        Parameters
        ----------
        n_global : int
            The number of rows of all ranks together.
        draw : callable
            ``draw()`` returns ``n_global`` integer row indices in
            ``[0, n_global)`` (else a ValueError); called on rank 0 only.
        """
        order = np.empty(n_global, dtype=np.int64)
        with self.errors():  # rank 0's draw checked; the others wait for it in the broadcast
            if self.rank == 0:
                drawn = np.asarray(draw())
                # Floats were truncated into the order, and indices outside
                # the rows skipped by every rank in silence.
                if (drawn.shape != (n_global,) or drawn.dtype.kind not in "iu"
                        or (n_global and (drawn.min() < 0 or drawn.max() >= n_global))):
                    raise ValueError(f"global_order: draw() must give {n_global} integer row indices in "
                                     f"[0, {n_global}), got {drawn.dtype} of shape {drawn.shape}")
                order[:] = drawn
        return self.broadcast_(order)

    # -- training ----------------------------------------------------------------

    def train_epoch(self, net: Any, P: FloatArray, X: FloatArray, Y: FloatArray, w: FloatArray | None,
                    order: NDArray[np.int64], options: Any, s1: FloatArray | None, s2: FloatArray | None, t: Any,
                    offset: int, cost_sum: float = 0.0, penalty_sum: float = 0.0) -> Any:
        """The batches of the global ``order``, as the core's ``train_epoch``.

        ``net`` is a core network (``_core.Network32/64``), ``X, Y, w`` this
        rank's shard, whose first row is global row ``offset``; ``options`` a
        ``_core.TrainOptions``. Returns the global ``(cost_sum, penalty_sum,
        updates)``, the same numbers as the core's ``train_epoch`` on all rows
        (``cost_sum`` / ``penalty_sum`` continue the given running totals).

        Parameters
        ----------
        net : _core.Network32 or _core.Network64
            The core network.
        P : numpy.ndarray
            Its flat parameters, updated in place.
        X, Y : numpy.ndarray
            This rank's shard: rows and targets (an estimator's X may be sparse).
        w : numpy.ndarray or None
            The shard's sample weights, or None for none.
        order : numpy.ndarray of int64
            The epoch's order of the global rows.
        options : _core.TrainOptions
            The optimizer's settings and batch size.
        s1, s2 : numpy.ndarray or None
            The optimizer's state (momentum; Adam's moments), updated in place.
        t : numpy.ndarray of int64 or None
            Adam's step count (one element), updated in place, or None.
        offset : int
            The global index of this rank's first row.
        cost_sum, penalty_sum : float, default=0.0
            The running totals to continue.
        """
        from ._train.rows import take_rows  # an estimator's sparse X: each batch's rows made dense

        batch = options.batch_size
        n_local = X.shape[0]
        n_params = P.size
        # The gradient and, in the same Allreduce, this rank's batch cost,
        # weight sum and error flag.
        buf = np.zeros(n_params + 3, dtype=P.dtype)
        G = buf[:n_params]
        local = order - offset
        mine = (local >= 0) & (local < n_local)
        updates = 0
        n_order = order.shape[0]
        for b0 in range(0, n_order, batch):
            b1 = min(b0 + batch, n_order)
            rows = local[b0:b1][mine[b0:b1]]
            error = None
            try:
                J, wsum = net.gradient_sum(P, *take_rows(X, Y, w, rows), G)
                buf[n_params:] = (J, wsum, 0.0)
            except BaseException as exc:  # noqa: BLE001 - reported to every rank just below
                error = exc
                buf[:] = 0
                buf[-1] = 1.0
            self.sum_(buf)
            if buf[-1] != 0:
                self.agree(error)
            n = b1 - b0
            # The batch's D: its row count (exact), or its total weight.
            denom = float(n) if w is None else float(buf[n_params + 1])
            pen = net.apply_gradient_sum(P, G, denom, options, s1, s2, t)
            cost = float(buf[n_params]) / denom if denom > 0 else 0.0
            cost_sum += cost * n
            penalty_sum += pen * n
            updates += 1
        return cost_sum, penalty_sum, updates

    def fit_network(self, network: Any, X: ArrayLike, Y: ArrayLike, *args: Any, **kwargs: Any) -> History:
        """:meth:`dnnfast.Network.fit` on this rank's shard (``X``, ``Y``): the
        same training driver, with :meth:`step_provider` for the steps.

        Parameters
        ----------
        network : dnnfast.Network
            The network to train.
        X, Y : array-like
            This rank's rows and targets.
        *args, **kwargs
            ``Network.fit``'s other arguments, the same on every rank.
        """
        with self:
            return network.fit(X, Y, *args, **kwargs)

    def step_provider(self, network: Any, prepare: Callable[[], tuple[Any, Any]]) -> Any:
        """The training driver's step provider over this communicator
        (dnnfast._train.driver); an error on any rank is raised on all.

        Parameters
        ----------
        network : dnnfast.Network
            The network being trained; its architecture must be the same on
            every rank.
        prepare : callable
            ``prepare()`` checks this rank's data and returns ``(X, Y)``.
        """
        from ._train.state import activation_specs

        with self.errors():
            X, Y = prepare()
        self.check_same("the network (sizes, activations with their parameters, loss, dtype)",
                        (network.sizes, activation_specs(network), network.loss, network.dtype.name))
        return _DistributedSteps(self, network._net, network.parameters, X, Y)

    def estimator_steps(self, core, P, X, Y, w, draw):
        """The step provider of an estimator's sgd / adam fit (checked and
        agreed by the estimator).

        Parameters
        ----------
        core : _core.Network32 or _core.Network64
            The estimator's core network.
        P : numpy.ndarray
            Its flat parameters, updated in place.
        X, Y : numpy.ndarray
            This rank's shard: rows (dense or sparse) and targets.
        w : numpy.ndarray or None
            The shard's sample weights, or None for none.
        draw : callable
            ``draw(shuffle)`` gives the epoch's order of the global rows
            (only rank 0's counts).
        """
        return _DistributedSteps(self, core, P, X, Y, w, draw)


class _DistributedSteps:
    """The global row order (rank 0's draw, broadcast) and the summed-gradient
    step (gradient_sum, one Allreduce, apply_gradient_sum): the only part of a
    fit that differs from one process."""

    def __init__(self, ctx, core, P, X, Y, w=None, draw=None):
        self.ctx = ctx
        self.X, self.Y, self.w = X, Y, w
        self.offset, self.n = ctx.shard(self.X.shape[0])
        self.core, self.P = core, P
        self.draw = draw
        self.is_root = ctx.rank == 0
        self.verbose_suffix = f"  ({ctx.size} ranks)"
        self.rng = None  # the fit's generator; only rank 0's draws count

    def collective(self, fn):
        with self.ctx.errors():
            return fn()

    def errors(self):
        """``collective`` as a context manager (no frame between a warning and its caller)."""
        return self.ctx.errors()

    def check_same(self, fingerprint):
        """Collective: every setting equal on every rank, else one ValueError
        on all ranks naming the first setting that differs."""
        self.ctx.check_same_settings(fingerprint, "fit's argument")

    def sum_floats(self, values):
        buf = np.array(values, dtype=np.float64)
        return self.ctx.sum_(buf).tolist()

    def agree(self, batches, interrupted):
        """Collective, once per chunk: ``(rank 0's batch count, whether any rank
        saw Ctrl-C)``, so every rank runs the same chunks and stops at the same
        step boundary instead of leaving the others in a collective. What the
        fit held for the ranks' agreement (``Context.agree``) is raised on all
        here too, in the same Allreduce when nothing was."""
        fit = self.ctx._fit
        error = None if fit is None else fit.run_held()
        buf = np.array([batches if self.ctx.rank == 0 else 0, int(bool(interrupted)), int(error is not None)],
                       dtype=np.int64)
        self.ctx.sum_(buf)
        if buf[2]:
            self.ctx.agree(error)
        return int(buf[0]), bool(buf[1])

    def alone(self, fn):
        """``fn()``, work of this rank alone (rank 0's verbose and progress
        output): what it raises is held and raised on every rank at the
        ranks' next agreement (raised here, on rank 0 alone, it left the
        others in their next collective for good)."""
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - every error goes to the others
            if self.ctx._fit is None:
                raise
            self.ctx._fit.hold(exc)

    def check_model(self, check, state):
        """Collective: ``check()`` (the non-finite guard's, which may restore
        the parameters and optimizer state of the epoch's start and raise) on
        every rank; when it raises on any, every rank takes the lowest failing
        rank's parameters and optimizer ``state`` before raising, those its
        message describes: the others had kept theirs, and the ranks' models
        differed."""
        def take(failed):
            for buf in (self.P, state.state1, state.state2, state.t):
                if buf is not None:
                    self.ctx.broadcast_(buf, failed)
        with self.ctx.errors(on_failure=take):
            check()

    def share(self, obj):
        """Collective: rank 0's ``obj`` on every rank (a checkpoint read by rank 0)."""
        return self.ctx.comm.bcast(obj, root=0)

    def start(self):
        self.ctx.broadcast_(self.P)  # every rank starts from rank 0's parameters

    def epoch_order(self, shuffle):
        if self.draw is not None:
            return self.ctx.global_order(self.n, lambda: self.draw(shuffle))
        from .batching import epoch_order

        return self.ctx.global_order(self.n, lambda: epoch_order(self.n, shuffle, self.rng))

    def splits_steps(self, batch_size):
        """Never: a step's blocks would need the ranks' agreement on Ctrl-C
        between them; each rank's shard of a batch is one call."""
        return False

    def dense_rows(self, batch_size):
        """The most rows of a sparse X that the steps make dense at a time:
        this rank's rows of one batch (``Context.train_epoch``)."""
        return batch_size

    def run_steps(self, order, options, state, cost_sum, penalty_sum, interrupts=None):
        c, p, _ = self.ctx.train_epoch(self.core, self.P, self.X, self.Y, self.w, order, options, state.state1,
                                       state.state2, state.t, self.offset, cost_sum, penalty_sum)
        return c, p
