"""dnnfast.Network: the fully-connected network of SPEC section 7."""
from __future__ import annotations

import numbers
import time
import warnings

import numpy as np

from . import _core
from ._guards import (NonFiniteError, NonFiniteWarning, check_on_nonfinite, describe, epoch_is_finite,
                      locate_nonfinite)
from ._locking import copies_model, fits_model, reads_model, step_boundary
from ._registry import ACTIVATION_TABLE, LOSS_TABLE, parse_activation, resolve_loss
from ._validation import (as_array, as_float_array, check_bool, check_memory, check_positive_float,
                          check_positive_int, make_rng, network_bytes, packed_first_w_bytes, rows_below_memory_floor)
from .batching import check_batch_size, epoch_order
from .distributed import current as _distributed_context

_DTYPES = {"float32": np.float32, "float64": np.float64}
_CORE_CLASS = {np.dtype(np.float32): _core.Network32, np.dtype(np.float64): _core.Network64}
# Rows per pass of predict and cost on large inputs (kChunkRows, cpp/nn/network.cpp):
# their workspace is this many rows at most.
_PREDICT_CHUNK_ROWS = 1024


def _check_network_args(sizes, activations, loss, dtype):
    """Validate the constructor's arguments -> (sizes, [ActivationSpec], loss, np.dtype)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"sizes must be a list of layer sizes, got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output size, got {sizes}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must hold integers, got {s!r}")
        if s <= 0:
            raise ValueError(f"sizes must be positive, got {sizes}")
    sizes = [int(s) for s in sizes]
    # One spec for every layer: a name, or (name, {"alpha": ...}); a tuple of
    # names is a per-layer list like any other sequence.
    single = isinstance(activations, str) or (
        isinstance(activations, tuple) and len(activations) == 2 and isinstance(activations[1], dict))
    if single:
        activations = [activations] * (len(sizes) - 1)
    activations = list(activations)
    if len(activations) != len(sizes) - 1:
        raise ValueError(f"activations needs one entry per layer ({len(sizes) - 1}), got {len(activations)}")
    specs = [parse_activation(a, f"activations[{i}]") for i, a in enumerate(activations)]
    loss = resolve_loss(loss)
    key = dtype if isinstance(dtype, str) else np.dtype(dtype).name if dtype in (np.float32, np.float64) else None
    if key not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return sizes, specs, loss, np.dtype(_DTYPES[key])


def _init_parameters(sizes, specs, dtype, rng, init="glorot"):
    """Initial (weights, biases, prelu alphas) drawn from ``rng``.

    glorot: W ~ U(-r, r), r = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010);
    he:     W ~ U(-r, r), r = sqrt(6 / fan_in) (He et al. 2015, uniform form).
    Biases start at 0, prelu's alphas at their initial value (0.25).
    """
    if init not in ("glorot", "he"):
        raise ValueError(f"init must be 'glorot' or 'he', got {init!r}")
    weights, biases, alphas = [], [], []
    for m_in, m_out, spec in zip(sizes[:-1], sizes[1:], specs):
        r = np.sqrt(6.0 / (m_in + m_out)) if init == "glorot" else np.sqrt(6.0 / m_in)
        weights.append(rng.uniform(-r, r, size=(m_in, m_out)).astype(dtype))
        biases.append(np.zeros((1, m_out), dtype=dtype))
        alphas.append(np.full(m_out, spec.param, dtype=dtype) if spec.per_unit else None)
    return weights, biases, alphas


class History(dict):
    """What ``fit`` returns: ``history["cost"]`` (or ``history.cost``) is the
    training cost of each epoch (the mean of its batch costs, weighted by batch
    size, each measured before its update); ``history["time"]`` the seconds
    each epoch took."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class Network:
    """A fully-connected network trained by gradient descent.

    Parameters
    ----------
    sizes : list of int
        Layer widths ``[m_x, m_h[1], ..., m_y]``.
    activations : list
        One per layer: a name (``"relu"``) or ``(name, {"alpha": value})``.
        Names: identity, relu, leaky_relu, prelu, elu, sigmoid (logistic),
        tanh, arctan, softplus, binary_step, softmax.
    loss : {"sse", "mse", "bce", "cce"}
    dtype : {"float32", "float64"}
    seed : int or None
        Seeds the generator used for the initial weights and for shuffling.
    init : {"glorot", "he"}
        Weight initialisation (uniform forms); biases start at zero.
    fused : bool
        Use the fused output gradient for softmax+cce and sigmoid+bce.

    Attributes
    ----------
    parameters : ndarray, shape (num_params,)
        The flat parameter buffer; ``weights``, ``biases`` and ``alphas`` are views of it.

    Notes
    -----
    Thread safety: predictions (``predict``, ``cost``, ``forward``, ...) from
    several threads run side by side; ``fit`` while another thread fits the
    same network raises ``RuntimeError``; a prediction during a fit waits for
    the fit to end. Writing into ``parameters`` directly is not guarded.
    """

    def __init__(self, sizes, activations, loss="cce", dtype="float32", seed=None, init="glorot", fused=True):
        self.sizes, self._acts, self.loss, self.dtype = _check_network_args(sizes, activations, loss, dtype)
        self.activations = [s.name for s in self._acts]
        self.fused = check_bool(fused, "fused")
        self._rng = make_rng(seed)
        self._check_size()
        self._build_core()
        self.parameters = np.zeros(self._net.num_params, dtype=self.dtype)
        weights, biases, alphas = _init_parameters(self.sizes, self._acts, self.dtype, self._rng, init)
        self.weights = weights
        self.biases = biases
        for view, a in zip(self.alphas, alphas):
            if view is not None:
                view[...] = a

    def _build_core(self, core=None):
        """The C++ network of this spec (it holds no parameters: those stay in ``parameters``).

        ``core``: another build's ``_core`` module to take it from (benchmarks/ab_builds.py
        compares two builds this way); by default this package's.
        """
        cls = _CORE_CLASS[self.dtype] if core is None else getattr(core, _CORE_CLASS[self.dtype].__name__)
        self._net = cls(self.sizes, [s.id for s in self._acts], [s.param for s in self._acts],
                        LOSS_TABLE[self.loss][0], self.fused)
        self._layout = self._net.layout()

    # -- saving, pickling, copying -------------------------------------------

    @reads_model  # a save during a fit waits for it: never a half-trained file
    def save(self, path):
        """Write the network to ``path`` (str or os.PathLike) as a model file.

        The file is a versioned ``.npz`` readable with NumPy alone (see
        ``docs/model_files.md``); it is written atomically, so a failure leaves
        any previous file at ``path`` as it was. ``dnnfast.load(path)`` reads it
        back: same predictions, bit for bit, and the same shuffling generator.
        """
        from ._model_files import save

        save(self, path)

    @copies_model  # during a fit: the state at its next epoch boundary, never a torn one
    def __getstate__(self):
        # The C++ object is rebuilt from the spec; everything else pickles as is.
        state = dict(self.__dict__)
        state.pop("_net", None)
        state.pop("_layout", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._check_size()  # and the values it derives, which older pickles lack
        self._build_core()
        if self.parameters.shape != (self._net.num_params,) or self.parameters.dtype != self.dtype:
            raise ValueError(f"pickled parameters do not fit the network: {self.parameters.shape} "
                             f"{self.parameters.dtype}, expected ({self._net.num_params},) {self.dtype}")

    # -- parameters: per-layer views of the one flat buffer -----------------

    def _view(self, key, shape_of):
        out = []
        for lay in self._layout:
            off = lay[key]
            if off is None:
                out.append(None)
                continue
            shape = shape_of(lay)
            out.append(self.parameters[off:off + int(np.prod(shape))].reshape(shape))
        return out

    @property
    def weights(self):
        """W[l] for l = 1..L, shape (m_h[l-1], m_h[l]); views of ``parameters``."""
        return self._view("w_offset", lambda lay: (lay["m_in"], lay["m_out"]))

    @weights.setter
    def weights(self, values):
        self._assign(self.weights, values, "weights")

    @property
    def biases(self):
        """b[l], shape (1, m_h[l]); views of ``parameters``."""
        return self._view("b_offset", lambda lay: (1, lay["m_out"]))

    @biases.setter
    def biases(self, values):
        self._assign(self.biases, values, "biases")

    @property
    def alphas(self):
        """prelu's trainable alpha per layer (shape (m_h[l],)), None for other activations."""
        return self._view("alpha_offset", lambda lay: (lay["m_out"],))

    @fits_model
    def _assign(self, views, values, name):
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name}: expected {len(views)} arrays, got {len(values)}")
        checked = []
        for l, (view, v) in enumerate(zip(views, values)):
            v = as_array(v, f"{name}[{l}]")
            if v.ndim not in (1, 2):  # a scalar or a 3-D block is no layer's array
                raise ValueError(f"{name}[{l}]: expected shape {view.shape}, got {v.shape}")
            a = as_float_array(v, f"{name}[{l}]", self.dtype, ndim=v.ndim)
            # A 1-D array is accepted only for a single row (a bias (1, m)):
            # a flat matrix would be reshaped silently.
            flat_ok = a.ndim == 1 and (view.ndim == 1 or view.shape[0] == 1)
            if a.size != view.size or (a.ndim == 2 and a.shape != view.shape) or not (a.ndim == 2 or flat_ok):
                raise ValueError(f"{name}[{l}]: expected shape {view.shape}, got {a.shape}")
            checked.append(a)
        for view, a in zip(views, checked):  # all checked first: no half-assigned network
            view[...] = a.reshape(view.shape)

    @property
    def num_params(self):
        return self.parameters.size

    # -- input checks ------------------------------------------------------

    def _check_size(self):
        """Refuse, before anything is allocated, a network that cannot fit in
        memory: the parameters, the core's gradient, packed first-layer W and
        one-row workspace, and the float64 draw of the largest W at
        initialisation."""
        itemsize = self.dtype.itemsize
        prelu = [l for l, s in enumerate(self._acts) if s.per_unit]
        p_bytes, self._ws_per_row = network_bytes(self.sizes, itemsize, per_unit_params=prelu)
        # Up to this many rows, predict's workspace and output are too small
        # for a memory check (_check_rows would return at once).
        self._predict_rows_unchecked = rows_below_memory_floor(self._ws_per_row + self.sizes[-1] * itemsize,
                                                               _PREDICT_CHUNK_ROWS)
        largest_w = max(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        need = 2 * p_bytes + packed_first_w_bytes(self.sizes, itemsize) + self._ws_per_row + 16 * largest_w
        check_memory(need, "sizes", f"a network of {p_bytes // itemsize:,} parameters")

    def _check_rows(self, rows, out_elems=0, name="X"):
        """Refuse a call whose workspace for ``rows`` rows at a time, plus
        ``out_elems`` output elements, cannot be allocated."""
        need = rows * self._ws_per_row + out_elems * self.dtype.itemsize
        check_memory(need, name, lambda: f"{rows:,} rows at a time")  # formatted only on refusal

    def _check_X(self, X, name="X", check_finite=True):
        X = as_float_array(X, name, self.dtype, check_finite=check_finite)
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"{name} has {X.shape[1]} columns but the network takes {self.sizes[0]} inputs")
        return X

    def _check_Y(self, Y, n, name="Y"):
        m_y = self.sizes[-1]
        arr = as_array(Y, name)
        if arr.ndim == 1 and self.loss == "cce" and arr.dtype.kind in "iu":
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n} rows")
            if arr.size and (arr.min() < 0 or arr.max() >= m_y):
                raise ValueError(f"{name}: class labels must lie in [0, {m_y}), got {arr.min()}..{arr.max()}")
            onehot = np.zeros((n, m_y), dtype=self.dtype)
            onehot[np.arange(n), arr] = 1
            return onehot
        if arr.ndim == 1 and m_y == 1 and arr.dtype.kind in "biuf":
            arr = arr.reshape(-1, 1)
        Y = as_float_array(arr, name, self.dtype)
        if Y.shape[0] != n:
            raise ValueError(f"{name} has {Y.shape[0]} rows but X has {n}")
        if Y.shape[1] != m_y:
            raise ValueError(f"{name} has {Y.shape[1]} columns but the network has {m_y} outputs")
        return Y

    # -- the API of SPEC section 7 -----------------------------------------

    @reads_model
    def forward(self, X):
        """Per-layer ``(Zs, As)``: ``Zs[l-1] = Z[l]`` for l = 1..L, and
        ``As[0] = X``, ``As[l] = A[l]``."""
        X = self._check_X(X)
        self._check_rows(0, 2 * X.shape[0] * sum(self.sizes[1:]))
        Zs, As = self._net.forward(self.parameters, X)
        return list(Zs), [X] + list(As)

    @reads_model
    def predict(self, X):
        """Yhat = A[L], shape (n, m_y)."""
        # A one-row predict takes about 15 us, and each Python call in it
        # about half a microsecond: an X already as _check_X would return it
        # (as_float_array's fast path), with too few rows for a memory check,
        # goes straight to the core. The core checks that X is finite.
        if not (type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2 and X.flags.c_contiguous
                and 0 < X.shape[0] <= self._predict_rows_unchecked and X.shape[1] == self.sizes[0]):
            X = self._check_X(X, check_finite=False)
            self._check_rows(min(X.shape[0], _PREDICT_CHUNK_ROWS), X.shape[0] * self.sizes[-1])
        return self._net.predict(self.parameters, X)

    @reads_model
    def cost(self, X, Y):
        """C = J(Y, Yhat) / n."""
        X = self._check_X(X)
        self._check_rows(min(X.shape[0], _PREDICT_CHUNK_ROWS))
        return self._net.cost(self.parameters, X, self._check_Y(Y, X.shape[0]))

    @reads_model
    def loss_and_gradient(self, X, Y):
        """``(C, grad)``: the cost and its gradient with respect to ``parameters`` (same layout)."""
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        self._check_rows(X.shape[0], self.parameters.size)
        grad = np.empty_like(self.parameters)
        c, _ = self._net.loss_and_gradient(self.parameters, X, Y, None, None, 0.0, grad)
        return c, grad

    @reads_model
    def gradients(self, X, Y):
        """``(dWs, dbs)`` for one batch of all rows of X, without an update."""
        _, grad = self.loss_and_gradient(X, Y)
        dWs = [grad[l["w_offset"]:l["w_offset"] + l["m_in"] * l["m_out"]].reshape(l["m_in"], l["m_out"])
               for l in self._layout]
        dbs = [grad[l["b_offset"]:l["b_offset"] + l["m_out"]].reshape(1, l["m_out"]) for l in self._layout]
        return dWs, dbs

    @fits_model
    def fit(self, X, Y, epochs=1, batch_size=None, learning_rate=0.01, shuffle=False, seed=None, verbose=False,
            on_nonfinite="raise"):
        """Train by gradient descent; returns a :class:`History`.

        ``batch_size``: None = batch GD (one update per epoch), 1 = stochastic,
        k = mini-batch (last shorter batch used, averaged over its own size).
        ``shuffle``: a fresh permutation each epoch from the network's seeded
        generator (or from ``seed`` when given). ``verbose``: print one line per epoch.
        Inside a :class:`dnnfast.distributed.Context`, X and Y are this rank's
        shard and the training is data-parallel over all ranks.
        ``on_nonfinite``: what an epoch whose cost or parameters come out NaN
        or infinite does. "raise" (default): the parameters go back to their
        values at the start of that epoch and :class:`dnnfast.NonFiniteError`
        names the epoch and the first non-finite layer (its ``history``
        attribute holds the epochs before); "warn": a
        :class:`dnnfast.NonFiniteWarning` (once) and training goes on; "ignore":
        no check. The check runs once per epoch, never inside the C++ loop.
        """
        ctx = _distributed_context()
        if ctx is not None:
            return ctx.fit_network(self, X, Y, epochs, batch_size, learning_rate, shuffle, seed, verbose,
                                   on_nonfinite)
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        epochs = check_positive_int(epochs, "epochs", allow_zero=True)
        learning_rate = check_positive_float(learning_rate, "learning_rate", upper=1.0)
        shuffle = check_bool(shuffle, "shuffle")
        verbose = check_bool(verbose, "verbose")
        on_nonfinite = check_on_nonfinite(on_nonfinite)
        n = X.shape[0]
        size = check_batch_size(batch_size, n)
        rng = self._rng if seed is None else make_rng(seed)
        self._check_rows(size, 2 * n)  # + the int64 row order of an epoch
        history = History(cost=[], time=[])
        guard = on_nonfinite != "ignore"
        if guard and not _core.all_finite(self.parameters):  # the user wrote NaN into parameters
            self._nonfinite(on_nonfinite, 0, X, history, None)
        warned = False
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = epoch_order(n, shuffle, rng)
            good = self.parameters.copy() if on_nonfinite == "raise" else None  # one snapshot per epoch
            cost_sum, _, _ = self._net.train_epoch(
                self.parameters, X, Y, None, order, size, 0, learning_rate, 0.0, 0.0, 0.0, 0.0, 0.0,
                None, None, None)
            history["cost"].append(cost_sum / n)
            history["time"].append(time.perf_counter() - t0)
            if guard and not warned and not epoch_is_finite(cost_sum, self.parameters):
                self._nonfinite(on_nonfinite, epoch + 1, X, history, good)
                warned = True
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}  cost {history['cost'][-1]:.6f}  "
                      f"{n / history['time'][-1]:,.0f} samples/s", flush=True)
            step_boundary(self)  # a whole state here: a waiting copy or fork may take it
        return history

    def _nonfinite(self, on_nonfinite, epoch, X, history, good):
        """Name where training went non-finite; restore ``good`` and raise, or warn."""
        layer, where = locate_nonfinite(self._layout, self.parameters, self._net.forward, X)
        msg = f"training produced NaN or infinity {describe(epoch, layer, where)}"
        if on_nonfinite == "raise":
            if good is not None:
                self.parameters[...] = good
                history["cost"].pop()
                history["time"].pop()
                msg += f"; the parameters are those from before epoch {epoch}"
            msg += " (lower learning_rate, scale the data, or pass on_nonfinite='warn' to go on)"
            exc = NonFiniteError(msg, epoch=epoch, layer=layer, where=where)
            exc.history = history
            raise exc
        warnings.warn(msg, NonFiniteWarning, stacklevel=3)

    def __repr__(self):
        acts = ", ".join(self.activations)
        return f"Network(sizes={self.sizes}, activations=[{acts}], loss={self.loss!r}, dtype={self.dtype.name!r})"
