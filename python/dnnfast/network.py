"""dnnfast.Network: the fully-connected network of SPEC section 7."""
from __future__ import annotations

import collections.abc
import functools
import math
import numbers
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import _core
from ._buffers import aligned, aligned_zeros
from ._guards import CORE_OUTPUT_OVERFLOW, parameter_cause
from ._locking import copies_model, fits_model, reads_model
from ._registry import LOSS_TABLE, check_params_fit_dtype, check_targets, parse_activation, resolve_loss
from ._train.driver import fit_network, gradient_block_rows, gradient_in_blocks
from ._train.rows import SparseRows, cost_rows, predict_rows, rows_in_dtype, take_rows
from ._train.state import History  # noqa: F401 - dnnfast.network.History, as before
from ._validation import (PREDICT_CHUNK_ROWS as _PREDICT_CHUNK_ROWS, as_array, as_float_array, cast_finite,
                          check_bool, check_memory, check_sparse_matrix, forward_row_bytes, is_sparse, make_rng,
                          network_bytes, packed_first_w_bytes, rows_below_memory_floor)
from .distributed import current as _distributed_context

if TYPE_CHECKING:
    import onnx

    from ._types import Activation, ArrayLike, DTypeLike, FloatArray, LearningRate, PathLike, SparseMatrix

_DTYPES = {"float32": np.float32, "float64": np.float64}
_CORE_CLASS = {np.dtype(np.float32): _core.Network32, np.dtype(np.float64): _core.Network64}


def _check_network_args(sizes, activations, loss, dtype):
    """Validate the constructor's arguments -> (sizes, [ActivationSpec], loss, np.dtype)."""
    # An ordered sequence: a set ({30, 4, 2} built [2, 4, 30]) or a dict (its
    # keys) has no layer order to take. A 0-d array has __len__ but no length.
    if (isinstance(sizes, (str, bytes, collections.abc.Set, collections.abc.Mapping))
            or not hasattr(sizes, "__len__") or getattr(sizes, "ndim", None) == 0):
        raise TypeError(f"sizes must be a list of layer sizes, got {sizes!r:.80}")
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
    if (isinstance(activations, (bytes, collections.abc.Set, collections.abc.Mapping))
            or not isinstance(activations, collections.abc.Iterable)):
        raise TypeError(f"activations must be a name, a (name, params) pair or a list of them, one per layer, "
                        f"got {activations!r:.80}")
    activations = list(activations)
    if len(activations) != len(sizes) - 1:
        raise ValueError(f"activations needs one entry per layer ({len(sizes) - 1}), got {len(activations)}")
    specs = [parse_activation(a, f"activations[{i}]") for i, a in enumerate(activations)]
    loss = resolve_loss(loss)
    # An output the loss was not written for trains to chance accuracy without
    # an error (cce's -Y/Yhat on a relu output): say so, naming the usual pairing.
    # (poisson needs only a positive output: softplus and, for rates below 1,
    # sigmoid learn too.)
    usual = {"cce": "softmax", "bce": "sigmoid", "poisson": "exp"}.get(loss)
    fits = {"poisson": ("exp", "softplus", "sigmoid")}.get(loss, (usual,))
    if usual is not None and specs[-1].name not in fits:
        how = (f"the single activation {specs[-1].name!r} applies to every layer, the output too"
               if single and len(sizes) > 2 else f"the output activation is {specs[-1].name!r}")
        warnings.warn(f"loss={loss!r} with {how}: this pairing does not learn; the usual pairings are "
                      "softmax + cce, sigmoid + bce, identity/relu + sse/mse, exp + poisson "
                      f"(e.g. activations=[..., {usual!r}])", UserWarning, stacklevel=3)
    key = dtype if isinstance(dtype, str) else np.dtype(dtype).name if dtype in (np.float32, np.float64) else None
    if key not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    dtype = np.dtype(_DTYPES[key])
    check_params_fit_dtype(specs, dtype)
    return sizes, specs, loss, dtype


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


def _checkpoint_io():
    """The Network codec's checkpoint writer, reader and check, for the training driver
    (which imports no file format); imported only by a fit with a checkpoint."""
    from ._network_file import check_checkpoint, load_checkpoint, save_checkpoint

    return save_checkpoint, functools.partial(load_checkpoint, cls=Network), check_checkpoint


# forward and loss_and_gradient over many rows size the core's workspace by
# them (kept, several times the data, for the model's lifetime); given back
# after the call from this size on. Below it, a loop of such calls (a custom
# optimizer's) keeps it instead of allocating it anew each time, which is
# not free next to the call itself. A fit gives its workspace back at its
# end whatever its size. (BENCHMARKS.md, "Measurements behind the code":
# _KEEP_WORKSPACE_BYTES.)
_KEEP_WORKSPACE_BYTES = 64 << 20

# What a Network is made of: set once, by __init__.
_FIXED = frozenset({"sizes", "activations", "loss", "dtype", "fused", "_acts"})


class _HandedOut(list):
    """A list the network hands out: its fixed ``sizes`` and ``activations``
    (edited in place, they described another model: ``repr`` and ``save``
    wrote it, ``dnnfast.load`` refused the file), or its layers' views
    (``weights`` ...: made anew on each access, so ``net.weights[0] = W``
    changed nothing). Changing the list is a TypeError saying what to do;
    its copies and pickles are plain lists."""

    __slots__ = ("_why",)

    def __init__(self, items, why):
        super().__init__(items)
        self._why = why

    def _refuse(self, *args, **kwargs):
        raise TypeError(self._why)

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):
        return list, (list(self),)


def _fixed(name, items):
    return _HandedOut(items, f"Network.{name} is fixed when the network is made; make a new Network(...) instead")


def _views(name, items):
    return _HandedOut(items, f"net.{name}[l] = value changes nothing (the list is made on each access): write "
                             f"into the layer's array, net.{name}[l][...] = value, or assign the whole list, "
                             f"net.{name} = [...]")


class Network:
    """A fully-connected network trained by gradient descent.

    Parameters
    ----------
    sizes : list of int
        Layer widths ``[m_x, m_h[1], ..., m_y]``.
    activations : list
        One per layer: a name (``"relu"``) or ``(name, {"alpha": value})``.
        Names: ``dnnfast.activation_names()`` (identity, relu, leaky_relu,
        prelu, elu, sigmoid (alias logistic), tanh, arctan, softplus,
        binary_step, softmax, exp).
    loss : {"sse", "mse", "bce", "cce", "poisson"}
        ``dnnfast.loss_names()``; poisson is half the Poisson deviance, for counts.
    dtype : {"float32", "float64"}
    seed : int, numpy.random.Generator or None
        Seeds the generator used for the initial weights and for shuffling (a
        Generator is used as it is, its state advancing); None: fresh entropy.
    init : {"glorot", "he"}
        Weight initialisation (uniform forms); biases start at zero.
    fused : bool
        Use the fused output gradient for softmax+cce, sigmoid+bce and exp+poisson.

    Attributes
    ----------
    parameters : ndarray, shape (num_params,)
        The flat parameter buffer; ``weights``, ``biases`` and ``alphas`` are views of it.
        Its data starts on a 64-byte boundary, which the core's one-row paths read fastest.

    Notes
    -----
    Thread safety: predictions (``predict``, ``cost``, ``forward``, ...) from
    several threads run side by side; ``fit`` while another thread fits the
    same network raises ``RuntimeError``; a prediction during a fit waits for
    the fit to end. Writing into ``parameters`` directly is not guarded.
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[Activation], loss: str = "cce",
                 dtype: DTypeLike = "float32", seed: int | np.random.Generator | None = None, init: str = "glorot",
                 fused: bool = True) -> None:
        self._setup(sizes, activations, loss, dtype, seed, fused)
        weights, biases, alphas = _init_parameters(self.sizes, self._acts, self.dtype, self._rng, init)
        self.weights = weights
        self.biases = biases
        for view, a in zip(self.alphas, alphas):
            if view is not None:
                view[...] = a

    def _setup(self, sizes, activations, loss, dtype, seed, fused):
        """Everything but the initial values: the checked spec, the generator, the core, zeroed parameters."""
        sizes, self._acts, self.loss, self.dtype = _check_network_args(sizes, activations, loss, dtype)
        self.sizes = _fixed("sizes", sizes)
        self.activations = _fixed("activations", [s.name for s in self._acts])
        self.fused = check_bool(fused, "fused")
        self._rng = make_rng(seed)
        self._check_size()
        self._build_core()
        self.parameters = aligned_zeros(self._net.num_params, self.dtype)  # the core reads W in place

    @classmethod
    def _unfilled(cls, sizes, activations, loss, dtype, fused):
        """A network whose parameters are zeros instead of drawn values, for ``dnnfast.load``,
        which reads every parameter from the file straight into them: drawing initial weights
        first would cost a transient float64 copy of the model and the time to draw it."""
        net = cls.__new__(cls)
        net._setup(sizes, activations, loss, dtype, 0, fused)
        return net

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
    def save(self, path: PathLike) -> None:
        """Write the network to ``path`` as a model file.

        The file is a versioned ``.npz`` readable with NumPy alone (see
        ``docs/model_files.md``); it is written atomically, so a failure leaves
        any previous file at ``path`` as it was. ``dnnfast.load(path)`` reads it
        back: same predictions, bit for bit, and the same shuffling generator.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            The file to write.
        """
        from ._network_file import save_network  # the archive (zipfile, json) loads on first use

        self._check_finite("save")
        save_network(self, path)

    def _check_finite(self, what):
        """Refuse what predict would refuse, before ``what`` (save, to_onnx)
        writes it: weights edited in place to NaN make a file dnnfast.load
        refuses, or an ONNX model answering NaN."""
        cause = parameter_cause(what, self._layout, self.parameters, ": weights, biases or alphas edited in place")
        if cause is not None:
            raise cause

    @reads_model  # during a fit: waits for it, never a torn model
    def _onnx_spec(self):
        from ._onnx import OnnxSpec

        self._check_finite("to_onnx")
        layers = [(W.copy(), b.ravel().copy(), act.name,
                   alpha.copy() if alpha is not None else (act.param if act.has_param else None))
                  for W, b, alpha, act in zip(self.weights, self.biases, self.alphas, self._acts)]
        return OnnxSpec(self.dtype, layers, "network")

    def to_onnx(self, path: PathLike | None = None, *, opset: int | None = None) -> onnx.ModelProto:
        """The network as an ONNX model (``onnx.ModelProto``), also written to ``path`` if given.

        Input ``X`` (n, m_x), output ``output`` (n, m_y) = ``predict(X)``, in
        the network's dtype. See ``dnnfast.to_onnx``; needs ``dnnfast[onnx]``.

        Parameters
        ----------
        path : str, bytes or os.PathLike, optional
            Also write the model there (atomically).
        opset : int, optional
            The ai.onnx opset, 13 or later (default: as ``dnnfast.to_onnx``).
        """
        from . import _onnx

        _onnx.import_onnx()  # the missing extra is said before any work
        return _onnx.export(self._onnx_spec(), path, opset, type(self).__name__)

    @copies_model  # during a fit: the state at its next epoch boundary, never a torn one
    def __getstate__(self):
        # The C++ object is rebuilt from the spec; everything else pickles as is.
        state = dict(self.__dict__)
        state.pop("_net", None)
        state.pop("_layout", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        for name in ("sizes", "activations"):  # pickled as plain lists
            self.__dict__[name] = _fixed(name, self.__dict__[name])
        for old in ("_predict_rows_unchecked", "_predict_as_is"):  # older versions' forms of _predict_rows
            self.__dict__.pop(old, None)
        self._check_size()  # and the values it derives, which older pickles lack
        self._build_core()
        if self.parameters.shape != (self._net.num_params,) or self.parameters.dtype != self.dtype:
            raise ValueError(f"pickled parameters do not fit the network: {self.parameters.shape} "
                             f"{self.parameters.dtype}, expected ({self._net.num_params},) {self.dtype}")
        self.__dict__["parameters"] = aligned(self.parameters)  # unpickled or deep-copied by NumPy, 16-byte aligned

    # -- parameters: per-layer views of the one flat buffer -----------------

    def _view(self, key, shape_of, name):
        out = []
        for lay in self._layout:
            off = lay[key]
            if off is None:
                out.append(None)
                continue
            shape = shape_of(lay)
            out.append(self.parameters[off:off + int(np.prod(shape))].reshape(shape))
        return _views(name, out)

    @property
    def weights(self) -> list[FloatArray]:
        """W[l] for l = 1..L, shape (m_h[l-1], m_h[l]); views of ``parameters``."""
        return self._view("w_offset", lambda lay: (lay["m_in"], lay["m_out"]), "weights")

    @weights.setter
    def weights(self, values: Sequence[ArrayLike]) -> None:
        self._assign(self.weights, values, "weights")

    @property
    def biases(self) -> list[FloatArray]:
        """b[l], shape (1, m_h[l]); views of ``parameters``."""
        return self._view("b_offset", lambda lay: (1, lay["m_out"]), "biases")

    @biases.setter
    def biases(self, values: Sequence[ArrayLike]) -> None:
        self._assign(self.biases, values, "biases")

    @property
    def alphas(self) -> list[FloatArray | None]:
        """prelu's trainable alpha per layer (shape (m_h[l],)), None for other activations."""
        return self._view("alpha_offset", lambda lay: (lay["m_out"],), "alphas")

    def __setattr__(self, name, value):
        # ``net.parameters = values`` replaced the flat buffer itself with
        # anything (None, a string, 9 values for 10, float32 for a float64
        # network), which the next call into the core refused with pybind11's
        # message or the views no longer matched. It is assigned like weights:
        # checked, then copied into the buffer, which keeps its identity.
        if name == "parameters" and "parameters" in self.__dict__:
            self._assign_parameters(value)
        elif name in _FIXED and name in self.__dict__:
            # The core network and the flat buffer were built from these;
            # assigned, they described another model (save wrote a file
            # dnnfast.load refused, or a float32 one from float64 weights).
            raise AttributeError(f"{name} is fixed when the network is made; make a new Network(...) instead")
        else:
            object.__setattr__(self, name, value)

    @fits_model
    def _assign_parameters(self, values):
        P = self.parameters
        a = as_array(values, "parameters")
        if a.shape != P.shape:
            raise ValueError(f"parameters: expected shape {P.shape}, got {a.shape}")
        P[...] = as_float_array(a, "parameters", self.dtype, ndim=1)

    @fits_model
    def _assign(self, views, values, name):
        if isinstance(values, (str, bytes, np.ndarray)) or not isinstance(values, collections.abc.Iterable):
            raise TypeError(f"{name} must be a list of arrays, one per layer, got {type(values).__name__}")
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
            # A view of the buffer itself (net.weights = net.weights[::-1]) is
            # copied first: written in order, an earlier layer's write had
            # overwritten a later layer's source.
            checked.append(a.copy() if np.shares_memory(a, self.parameters) else a)
        for view, a in zip(views, checked):  # all checked first: no half-assigned network
            view[...] = a.reshape(view.shape)

    @property
    def num_params(self) -> int:
        """The number of parameters: weights, biases and prelu's alphas (``parameters.size``)."""
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
        self._fwd_per_row = forward_row_bytes(self.sizes, itemsize)
        # Up to this many rows, predict's workspace and output are too small
        # for a memory check (_check_rows would return at once).
        rows_unchecked = rows_below_memory_floor(self._fwd_per_row + self.sizes[-1] * itemsize, _PREDICT_CHUNK_ROWS)
        # Predict sends an X of up to this many rows, already as _check_X
        # would return it, straight to the core (predict_as_is).
        self._predict_rows = rows_unchecked
        largest_w = max(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        need = 2 * p_bytes + packed_first_w_bytes(self.sizes, itemsize) + self._ws_per_row + 16 * largest_w
        check_memory(need, "sizes", f"a network of {p_bytes // itemsize:,} parameters")

    def _check_rows(self, rows, out_elems=0, name="X", forward=False):
        """Refuse a call whose workspace for ``rows`` rows at a time (a
        training workspace's, or with ``forward`` predict's and cost's), plus
        ``out_elems`` output elements, cannot be allocated."""
        need = rows * (self._fwd_per_row if forward else self._ws_per_row) + out_elems * self.dtype.itemsize
        check_memory(need, name, lambda: f"{rows:,} rows at a time" + (  # formatted only on refusal
            f" and an output of {out_elems:,} values" if out_elems else ""))

    def _check_X(self, X, name="X", check_finite=True, sparse=False):
        """X as the network's calls take it: a C-contiguous finite array of
        the network's dtype (``as_float_array``), or for a SciPy sparse X
        (``check_sparse_matrix``), with ``sparse``, what ``rows_in_dtype``
        makes of it (a ``SparseRows``: the core's CSR, or rows made dense a
        block at a time; or, when small, X made dense), without, X made
        dense (its memory checked first)."""
        sparse_x = is_sparse(X)
        X = check_sparse_matrix(X, name) if sparse_x else as_float_array(X, name, self.dtype,
                                                                         check_finite=check_finite)
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"{name} has {X.shape[1]} columns but the network takes {self.sizes[0]} inputs")
        if not sparse_x:
            return X
        if sparse:
            return rows_in_dtype(X, self.dtype, name)
        n, m = X.shape
        check_memory(n * m * (X.dtype.itemsize + self.dtype.itemsize), name,
                     lambda: f"its {n * m:,} values made dense")
        return cast_finite(X.toarray(), self.dtype, name)

    def _check_Y(self, Y, n, name="Y", x_name="X"):
        m_y = self.sizes[-1]
        arr = as_array(Y, name)
        if arr.ndim == 1 and self.loss == "cce" and arr.dtype.kind in "iu":
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} labels but {x_name} has {n} rows")
            if arr.size and (arr.min() < 0 or arr.max() >= m_y):
                raise ValueError(f"{name}: class labels must lie in [0, {m_y}), got {arr.min()}..{arr.max()}")
            check_memory(n * m_y * self.dtype.itemsize, name, lambda: f"{n:,} labels as one-hot rows of {m_y:,}")
            onehot = np.zeros((n, m_y), dtype=self.dtype)
            onehot[np.arange(n), arr] = 1
            return onehot
        if arr.ndim == 1 and m_y == 1 and arr.dtype.kind in "biuf":
            arr = arr.reshape(-1, 1)
        if arr.ndim == 1 and self.loss == "cce":
            raise ValueError(
                f"{name}: a 1-D {name} for cce must hold integer class labels in [0, {m_y}), got dtype "
                f"{arr.dtype}; pass {name}.astype(int) for labels, or a one-hot array of shape (n, {m_y})")
        if arr.ndim != 2:  # (as_float_array's hint, reshape(1, -1) for one row, is X's)
            raise ValueError(f"{name} must be 2-D, of shape (n, {m_y}) for this network's {m_y} outputs, got "
                             f"an array of shape {arr.shape}")
        Y = as_float_array(arr, name, self.dtype)
        if Y.shape[0] != n:
            raise ValueError(f"{name} has {Y.shape[0]} rows but {x_name} has {n}")
        if Y.shape[1] != m_y:
            raise ValueError(f"{name} has {Y.shape[1]} columns but the network has {m_y} outputs")
        check_targets(Y, self.loss, name)
        return Y

    # -- the API of SPEC section 7 -----------------------------------------

    def _nonfinite(self, what):
        """The ValueError for a NaN or infinite result of ``what`` from a finite X:
        the parameters' first non-finite value (weights edited in place bypass the
        setters' checks), or else an overflow. Said, never returned (as predict)."""
        inputs = "X or the parameters" if what in ("predict", "forward") else "X, Y or the parameters"
        wider = ", or use float64" if self.dtype != np.float64 else ""
        return parameter_cause(what, self._layout, self.parameters) or ValueError(
            f"{what}: the result overflowed to NaN or infinity in {self.dtype.name} ({inputs} are too large for "
            f"this dtype; scale X{wider})")

    @reads_model
    def forward(self, X: ArrayLike | SparseMatrix) -> tuple[list[FloatArray], list[FloatArray]]:
        """Per-layer ``(Zs, As)``: ``Zs[l-1] = Z[l]`` for l = 1..L, and
        ``As[0] = X``, ``As[l] = A[l]``.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix, shape (n, m_x)
            The input rows (finite numbers; converted to the network's dtype;
            a sparse X made dense, which ``As[0]`` is).
        """
        X = self._check_X(X)
        self._check_rows(0, 2 * X.shape[0] * sum(self.sizes[1:]))
        Zs, As = self._net.forward(self.parameters, X)
        self._net.release_workspace(_KEEP_WORKSPACE_BYTES)
        # Every layer's: a saturating layer (sigmoid, tanh, arctan,
        # binary_step) gives a finite A from an infinite Z, which forward returns.
        if not all(_core.all_finite(a) for a in (*Zs, *As)):
            raise self._nonfinite("forward")
        return list(Zs), [X] + list(As)

    @reads_model
    def predict(self, X: ArrayLike | SparseMatrix) -> FloatArray:
        """Yhat = A[L], shape (n, m_y).

        Parameters
        ----------
        X : array-like or SciPy sparse matrix, shape (n, m_x)
            The input rows (finite numbers; converted to the network's dtype).
            A sparse X of few values (``_train.rows.CORE_CSR_MAX_DENSITY``)
            is read as CSR, never made dense.
        """
        # A one-row predict takes a few microseconds, and each Python call or
        # test in it a tenth of one or more: an X already as _check_X would
        # return it (as_float_array's fast path), with too few rows for a
        # memory check, is recognised and predicted in one call to the core,
        # which also checks that X is finite; any other X is validated here.
        try:
            Y = self._net.predict_as_is(self.parameters, X, self._predict_rows)
            if Y is not None:
                return Y
            X = self._check_X(X, check_finite=False, sparse=True)
            rows = min(X.shape[0], _PREDICT_CHUNK_ROWS)
            self._check_rows(rows, X.shape[0] * self.sizes[-1], forward=True)
            if isinstance(X, SparseRows):
                X.check_memory(rows, "predict")
            return predict_rows(self._net, self.parameters, X)
        except ValueError as exc:  # the core's "output overflowed": said more exactly when P is the cause
            if not str(exc).startswith(CORE_OUTPUT_OVERFLOW):
                raise
            raise self._nonfinite("predict") from None

    @reads_model
    def cost(self, X: ArrayLike | SparseMatrix, Y: ArrayLike) -> float:
        """C = J(Y, Yhat) / n.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix, shape (n, m_x)
            The input rows (as ``predict`` takes them).
        Y : array-like, shape (n, m_y)
            The targets (for ``cce``, one-hot rows or integer labels of shape (n,)).
        """
        X = self._check_X(X, sparse=True)
        Y = self._check_Y(Y, X.shape[0])
        rows = min(X.shape[0], _PREDICT_CHUNK_ROWS)
        self._check_rows(rows, forward=True)
        if isinstance(X, SparseRows):
            X.check_memory(rows, "cost")
        c = cost_rows(self._net, self.parameters, X, Y)
        if not math.isfinite(c):
            raise self._nonfinite("cost")
        return c

    @reads_model
    def loss_and_gradient(self, X: ArrayLike | SparseMatrix, Y: ArrayLike) -> tuple[float, FloatArray]:
        """``(C, grad)``: the cost and its gradient with respect to ``parameters`` (same layout).

        Parameters
        ----------
        X : array-like or SciPy sparse matrix, shape (n, m_x)
            The input rows (as ``predict`` takes them).
        Y : array-like, shape (n, m_y)
            The targets (for ``cce``, one-hot rows or integer labels of shape (n,)).
        """
        X = self._check_X(X, sparse=True)
        Y = self._check_Y(Y, X.shape[0])
        n, P = X.shape[0], self.parameters
        # Many rows: in blocks (gradient_block_rows), their means weighted and summed in float64
        rows = gradient_block_rows(n, P.size, self._ws_per_row)
        if isinstance(X, SparseRows):  # the core's CSR, or made dense a block at a time
            if X.core_x is None and rows >= n:  # (X dense whole in one call: in blocks, to round-off)
                rows = min(rows, X.rows_per_chunk(1))
            X.check_memory(rows, "loss_and_gradient")
        self._check_rows(rows, P.size * (1 if rows >= n else 1 + 8 // P.itemsize))
        grad = np.empty_like(P)
        if rows >= n:
            Xc = X.core_rows(0, n) if isinstance(X, SparseRows) else X
            c, _ = self._net.loss_and_gradient(P, Xc, Y, None, None, 0.0, grad)
        else:
            c, _ = gradient_in_blocks(self._net, P, grad, n, rows,
                                      lambda r0, r1: take_rows(X, Y, None, np.arange(r0, r1, dtype=np.int64)))
        self._net.release_workspace(_KEEP_WORKSPACE_BYTES)
        if not (math.isfinite(c) and _core.all_finite(grad)):
            raise self._nonfinite("loss_and_gradient")
        return c, grad

    @reads_model
    def gradients(self, X: ArrayLike | SparseMatrix, Y: ArrayLike) -> tuple[list[FloatArray], list[FloatArray]]:
        """``(dWs, dbs)`` for one batch of all rows of X, without an update.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix, shape (n, m_x)
            The input rows (as ``predict`` takes them).
        Y : array-like, shape (n, m_y)
            The targets (for ``cce``, one-hot rows or integer labels of shape (n,)).
        """
        _, grad = self.loss_and_gradient(X, Y)
        dWs = [grad[l["w_offset"]:l["w_offset"] + l["m_in"] * l["m_out"]].reshape(l["m_in"], l["m_out"])
               for l in self._layout]
        dbs = [grad[l["b_offset"]:l["b_offset"] + l["m_out"]].reshape(1, l["m_out"]) for l in self._layout]
        return dWs, dbs

    @fits_model
    def fit(self, X: ArrayLike | SparseMatrix, Y: ArrayLike, epochs: int = 1, batch_size: int | None = None,
            learning_rate: LearningRate = 0.01, shuffle: bool = False, seed: int | np.random.Generator | None = None,
            verbose: bool = False, on_nonfinite: str = "raise", *, optimizer: str = "sgd", momentum: float = 0.9,
            beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, weight_decay: float = 0.0,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None, metrics: Sequence[str] | None = None,
            early_stopping: bool = False, monitor: str = "val_cost", patience: int = 10, min_delta: float = 0.0,
            restore_best: bool = True, callbacks: Sequence[Any] | None = None, progress: bool = False,
            checkpoint: PathLike | None = None, resume: bool = False) -> History:
        """Train by gradient descent; returns a :class:`History`.

        Parameters
        ----------
        X, Y : arrays (X may be a SciPy sparse matrix)
            Training rows and targets (for ``cce``, one-hot rows or integer labels).
            A sparse X of few values is read by the core as CSR, never made
            dense; a denser one is made dense whole, or above 32 MiB a chunk
            of whole batches at a time (the fit of X made dense, bit for bit).
        epochs : int
            Epochs to run (with ``resume``: the total, counting the checkpoint's).
        batch_size : int or None
            None = batch GD (one update per epoch), 1 = stochastic, k = mini-batch
            (last shorter batch used, averaged over its own size).
        learning_rate : float or callable
            A rate in (0, 1], or ``epoch -> rate`` (epoch 0-based), called once per epoch
            (its rate in [0, 1]). A rate other than 0 must be at least the
            smallest normal number of the network's dtype (``np.finfo(dtype).tiny``):
            a smaller one updates nothing.
        shuffle : bool
            A fresh permutation each epoch from the network's seeded generator
            (or from ``seed`` when given).
        seed : int, numpy.random.Generator or None
            A generator of its own for the shuffling. With ``resume``, its
            state comes from the checkpoint: whether a seed is given must be
            as when the checkpoint was written, its value is not compared.
        verbose : bool
            One line per epoch: cost, validation values, samples/s.
        on_nonfinite : {"raise", "warn", "ignore"}
            What an epoch whose cost or parameters come out NaN or infinite
            does. "raise": the parameters (and optimizer state) go back to their
            values at the start of that epoch and :class:`dnnfast.NonFiniteError`
            names the epoch and the first non-finite layer (its ``history``
            holds the epochs before); "warn": a :class:`dnnfast.NonFiniteWarning`
            (once) and training goes on; "ignore": no check.
        optimizer : {"sgd", "momentum", "nesterov", "adam"}
            scikit-learn's update rules: ``v = momentum v - lr g; W += v``
            (Nesterov: ``W += momentum v - lr g``); Adam with
            ``lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)``, ``W -= lr_t m / (sqrt(v) + epsilon)``.
        momentum : float in [0, 1)
        beta1, beta2 : float in [0, 1)
        epsilon : float > 0
        weight_decay : float >= 0
            L2: ``weight_decay / 2 * sum of squared weights`` (biases and prelu
            alphas excluded) is added to the cost of every update, so every
            weight's gradient gains ``weight_decay * W`` whatever the batch
            size. (scikit-learn's ``alpha`` is ``alpha / (2 n_batch) ||W||^2``:
            ``weight_decay = alpha / batch_size`` for full batches.)
            ``history["cost"]`` includes the penalty.
        validation_data : (X_val, Y_val) or None
            ``history["val_cost"]``: the cost on it after each epoch (X_val
            may be sparse, as X).
        metrics : list of str or None
            ``["accuracy"]``: ``history["accuracy"]`` on the training rows after
            each epoch (and ``history["val_accuracy"]``); softmax outputs count
            a row right when its argmax matches, sigmoid outputs each output
            thresholded at 0.5. Other outputs: ValueError.
        early_stopping : bool
            Stop when ``monitor`` has not improved by more than ``min_delta``
            for ``patience`` epochs.
        monitor : {"val_cost", "cost", "val_accuracy", "accuracy"}
        patience : int >= 1
        min_delta : float >= 0
        restore_best : bool
            With early stopping, end with the parameters of the best epoch
            (also when the epochs run out first): those its monitored value
            was measured with. For ``"val_cost"`` and the accuracies, the
            parameters after the epoch; for ``"cost"``, which is measured as
            the epoch's batches are visited (each before its own update), the
            parameters at the epoch's start: with a full batch,
            ``net.cost(X, Y)`` then equals the best ``history["cost"]``; with
            mini-batches the best cost is the mean over the epoch's updates
            and no single parameter vector has it exactly.
        callbacks : list
            Objects with optional ``on_epoch_end(net, epoch, logs)`` (epoch
            0-based; a true return stops the fit) and ``on_batch_end(net, step,
            logs)`` (after each chunk of batches, about every 0.1 s; ``step``
            counts the updates so far; ``logs["rows"]`` the epoch's rows so far,
            ``logs["cost"]`` their mean cost with the weight-decay penalty, as
            ``history["cost"]``). Each hook gets its own ``logs`` dict.
        progress : bool
            A progress bar that moves within the epoch (tqdm when installed,
            else one line on stderr), with samples/s and the latest metrics.
        checkpoint : str, bytes or os.PathLike or None
            After every epoch, an atomic save of the model with its optimizer
            state, generator state, history and epoch count
            (``dnnfast.load(path)`` reads it as a Network).
        resume : bool
            With ``checkpoint``: when the file exists, take its parameters and
            training state and run the remaining epochs of ``epochs``; the
            result is bit-identical to a fit that was never interrupted. The
            settings must be those of the checkpoint (``epochs`` may differ,
            but not be below the epochs the checkpoint has completed). A run
            that a callback had stopped goes on to ``epochs``; one whose early
            stopping ran out of patience stays stopped.

        Each call starts from the network's current parameters with a fresh
        optimizer state (no velocity, Adam moments and step count at zero),
        as scikit-learn's ``fit`` does; to continue a run with its optimizer
        state, fit with ``checkpoint`` and ``resume=True``.

        Ctrl-C stops the fit within about 0.1 s of work with a
        KeyboardInterrupt whose ``history`` holds the completed epochs; the
        parameters are those after the last completed step (a step of more
        rows than two blocks of about 0.1 s runs in blocks, and one cut
        between them is not taken). Inside a :class:`dnnfast.distributed.Context`, X and Y (and
        ``validation_data``) are this rank's shard and the training is
        data-parallel over all ranks.
        """
        return fit_network(self, X, Y, context=_distributed_context(), checkpoint_io=_checkpoint_io, epochs=epochs, batch_size=batch_size,
                           learning_rate=learning_rate, shuffle=shuffle, seed=seed, verbose=verbose,
                           on_nonfinite=on_nonfinite, optimizer=optimizer, momentum=momentum, beta1=beta1,
                           beta2=beta2, epsilon=epsilon, weight_decay=weight_decay,
                           validation_data=validation_data, metrics=metrics, early_stopping=early_stopping,
                           monitor=monitor, patience=patience, min_delta=min_delta, restore_best=restore_best,
                           callbacks=callbacks, progress=progress, checkpoint=checkpoint, resume=resume)

    def __repr__(self):
        acts = ", ".join(self.activations)
        return f"Network(sizes={self.sizes}, activations=[{acts}], loss={self.loss!r}, dtype={self.dtype.name!r})"
