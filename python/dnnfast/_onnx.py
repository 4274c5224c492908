"""ONNX export: the graph of a model's description, and skl2onnx's converter.

Like the model-file codecs, this module is handed what it exports (an
``OnnxSpec`` that ``Network`` and the estimators make of themselves) and never
imports their classes. ``dnnfast.to_onnx`` and the ``to_onnx`` methods are
the public entry points; see ``dnnfast.to_onnx`` for the graphs' inputs and
outputs.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

import numpy as np

from ._archive import atomic_write_bytes, check_path
from ._core import __version__

#: The ai.onnx opset used when ``opset`` is None (onnxruntime >= 1.18 runs it).
DEFAULT_OPSET = 21
#: The lowest opset accepted: Softmax over the last axis as dnnfast's is opset 13's.
MIN_OPSET = 13

# protobuf serializes no message of 2 GiB or more (a float32 model of over ~537
# million parameters): EncodeError, naming nothing. The ModelProto itself is fine.
_MAX_PROTO = 2**31 - 1

# The exp output's clip, as the core's (activations.hpp, ExpAct): e^z stays finite.
_EXP_CLIP = {np.dtype(np.float32): 88.0, np.dtype(np.float64): 709.0}


def import_onnx():
    """The ``onnx`` module, or an ImportError that names the extra to install."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("dnnfast.to_onnx needs the 'onnx' package: pip install 'dnnfast[onnx]' "
                          "(which also installs onnxruntime to run the exported model)") from exc
    return onnx


class OnnxSpec:
    """What is exported: the layers and the head of one model (copies, taken under its lock)."""

    def __init__(self, dtype, layers, kind, classes=None, y_type=None):
        self.dtype = np.dtype(dtype)
        #: [(W (m_in, m_out), b (m_out,), activation name, alpha)]; alpha: a float
        #: (leaky_relu, elu), an array (prelu, per unit) or None
        self.layers = layers
        self.kind = kind              # "network" | "classifier" | "regressor"
        self.classes = classes        # the classifier's classes_
        self.y_type = y_type          # the classifier's "binary" | "multiclass" | "multilabel-indicator"

    @property
    def n_inputs(self):
        return self.layers[0][0].shape[0]

    @property
    def n_outputs(self):
        return self.layers[-1][0].shape[1]

    @property
    def multilabel(self):
        return self.y_type == "multilabel-indicator"

    @property
    def n_proba(self):
        """Columns of ``probabilities``: one sigmoid output gives two, as predict_proba."""
        return self.n_outputs if (self.multilabel or self.n_outputs > 1) else 2

    @property
    def int_labels(self):
        return self.multilabel or np.asarray(self.classes).dtype.kind in "iu"

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        layers = [(W.astype(dtype), b.astype(dtype), name, a.astype(dtype) if isinstance(a, np.ndarray) else a)
                  for W, b, name, a in self.layers]
        return OnnxSpec(dtype, layers, self.kind, self.classes, self.y_type)


# -- the graph, written through three callbacks so that the same code serves a
#    stand-alone model and a skl2onnx converter ------------------------------------------------

class _Builder:
    """Adds nodes and constants of one dtype; names come from ``unique``."""

    def __init__(self, dtype, add_node, add_const, unique):
        self.dtype = np.dtype(dtype)
        self._add_node = add_node     # (op, inputs, outputs, name, domain, attrs)
        self._add_const = add_const   # (name, ndarray) -> None
        self._unique = unique         # (hint) -> a fresh name
        self._scalars = {}

    def const(self, hint, value, dtype=None):
        value = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        key = (value.dtype.str, value.shape, value.tobytes()) if value.size == 1 and value.dtype != object else None
        if key in self._scalars:  # one initializer per scalar value, however often the graph uses it
            return self._scalars[key]
        name = self._unique(hint)
        self._add_const(name, value)
        if key is not None:
            self._scalars[key] = name
        return name

    def op(self, op_type, inputs, out=None, domain="", **attrs):
        out = out or self._unique(op_type.lower())
        self._add_node(op_type, list(inputs), [out], self._unique("n_" + op_type), domain, attrs)
        return out

    # The activations. Where an ONNX operator has no float64 kernel in
    # onnxruntime 1.32 (Atan, Softplus, PRelu after a Gemm), or takes its
    # parameter as a float32 attribute (LeakyRelu, Elu: alpha 0.1 would become
    # 0.10000000149), or loses the relative accuracy the core keeps (Elu's
    # e^z - 1 near 0, Sigmoid's far tail), the graph spells it out with
    # elementary operators in the model's dtype.

    def expm1(self, z):
        # e^z - 1 = 2 t / (1 - t), t = tanh(z / 2): no cancellation near 0.
        # Only called with z <= 0, so 1 - t >= 1.
        t = self.op("Tanh", [self.op("Mul", [z, self.const("half", 0.5)])])
        return self.op("Div", [self.op("Add", [t, t]), self.op("Sub", [self.const("one", 1.0), t])])

    def atan64(self, z):
        # atan for float64 (onnxruntime has Atan for float32 only): |z| > 1
        # folds to pi/2 - atan(1/|z|); two half-angle steps
        # t -> t / (1 + sqrt(1 + t^2)) bring |t| <= tan(pi/16) < 0.2, where
        # the series to t^23 is exact to round-off; atan z = sign z * 4 atan t'.
        one = self.const("one", 1.0)
        a = self.op("Abs", [z])
        big = self.op("Greater", [a, one])
        t = self.op("Where", [big, self.op("Reciprocal", [a]), a])
        for _ in range(2):
            root = self.op("Sqrt", [self.op("Add", [one, self.op("Mul", [t, t])])])
            t = self.op("Div", [t, self.op("Add", [one, root])])
        t2 = self.op("Mul", [t, t])
        terms = 12  # (-1)^k t^(2k+1) / (2k+1), k < 12: the next is below 1e-17 t
        acc = self.const("c", (-1.0) ** (terms - 1) / (2 * terms - 1))
        for k in range(terms - 2, -1, -1):
            acc = self.op("Add", [self.op("Mul", [acc, t2]), self.const("c", (-1.0) ** k / (2 * k + 1))])
        r = self.op("Mul", [self.op("Mul", [acc, t]), self.const("four", 4.0)])
        r = self.op("Where", [big, self.op("Sub", [self.const("half_pi", np.pi / 2), r]), r])
        return self.op("Mul", [self.op("Sign", [z]), r])

    def activation(self, name, alpha, z, out=None):
        zero = lambda: self.const("zero", 0.0)  # noqa: E731
        if name == "identity":
            return self.op("Identity", [z], out) if out else z
        if name == "relu":
            return self.op("Relu", [z], out)
        if name in ("leaky_relu", "prelu"):
            slope = self.const("alpha", np.atleast_1d(np.asarray(alpha, dtype=self.dtype)))
            if self.dtype == np.float32:
                return self.op("PRelu", [z, slope], out)
            # onnxruntime's PRelu has no float64 kernel after a Gemm (found so with opset 21)
            return self.op("Where", [self.op("Less", [z, zero()]), self.op("Mul", [z, slope]), z], out)
        if name == "elu":
            neg = self.op("Mul", [self.const("alpha", alpha), self.expm1(self.op("Min", [z, zero()]))])
            return self.op("Where", [self.op("Less", [z, zero()]), neg, z], out)
        if name == "sigmoid":
            # The core's two branches, (z >= 0 ? 1 : e) / (1 + e), e = exp(-|z|): onnxruntime's
            # Sigmoid loses the relative accuracy of the far tail (0 at z = -30 in float32).
            e = self.op("Exp", [self.op("Neg", [self.op("Abs", [z])])])
            num = self.op("Where", [self.op("Less", [z, zero()]), e, self.const("one", 1.0)])
            return self.op("Div", [num, self.op("Add", [self.const("one", 1.0), e])], out)
        if name == "tanh":
            return self.op("Tanh", [z], out)
        if name == "arctan":
            if self.dtype == np.float64:
                r = self.atan64(z)
                return self.op("Identity", [r], out) if out else r
            return self.op("Atan", [z], out)
        if name == "softplus":
            if self.dtype == np.float32:
                return self.op("Softplus", [z], out)
            # max(z, 0) + log1p(e^-|z|), as the core; log1p(u) = log s + (u - (s - 1)) / s, s = 1 + u
            # (the second term restores what rounding 1 + u lost)
            u = self.op("Exp", [self.op("Neg", [self.op("Abs", [z])])])
            s = self.op("Add", [self.const("one", 1.0), u])
            fix = self.op("Div", [self.op("Sub", [u, self.op("Sub", [s, self.const("one", 1.0)])]), s])
            return self.op("Add", [self.op("Relu", [z]), self.op("Add", [self.op("Log", [s]), fix])], out)
        if name == "binary_step":  # z >= 0 ? 1 : 0, as the core (NaN gives 0)
            return self.op("Where", [self.op("GreaterOrEqual", [z, zero()]), self.const("one", 1.0), zero()], out)
        if name == "softmax":
            return self.op("Softmax", [z], out, axis=-1)
        if name == "exp":
            clip = self.const("exp_clip", _EXP_CLIP[self.dtype])
            return self.op("Exp", [self.op("Min", [z, clip])], out)
        raise NotImplementedError(f"activation {name!r} has no ONNX form")  # a new registry entry: add it here

    def network(self, spec, x, out=None):
        """The layers of ``spec`` on input ``x``; returns the output's name."""
        a = x
        last = len(spec.layers) - 1
        for l, (W, b, name, alpha) in enumerate(spec.layers):
            z = self.op("Gemm", [a, self.const(f"W{l + 1}", W), self.const(f"b{l + 1}", b)])
            a = self.activation(name, alpha, z, out if l == last else None)
        return a

    def classifier_head(self, spec, p, label_out, proba_out):
        """``label`` and ``probabilities`` from the output layer ``p``, as predict / predict_proba."""
        classes = spec.classes
        if spec.y_type == "multilabel-indicator":
            self.op("Identity", [p], proba_out)
            above = self.op("Greater", [p, self.const("half", 0.5)])
            self.op("Cast", [above], label_out, to=_onnx_type(np.dtype(np.int64)))
            return
        if classes.dtype.kind in "iu":
            # astype would wrap a uint64 label >= 2**63 to a negative one, silently.
            if classes.dtype.kind == "u" and classes.size and classes.max() > np.uint64(np.iinfo(np.int64).max):
                raise NotImplementedError(f"to_onnx: classes_ value {classes.max()} is outside int64 (ONNX labels "
                                          f"are int64 or string); fit on labels in [-2**63, 2**63)")
            table = classes.astype(np.int64)
        elif classes.dtype.kind in "USO" and all(isinstance(c, str) for c in classes.tolist()):
            for c in classes.tolist():
                try:
                    c.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate (a DataFrame's column of labels may hold one)
                    raise ValueError(f"to_onnx: class label {c!r} holds a lone surrogate, which ONNX's strings "
                                     "(UTF-8) cannot hold") from None
            table = np.array(classes.tolist(), dtype=object)
        else:
            raise NotImplementedError(f"to_onnx: classes of dtype {classes.dtype} (ONNX labels are int64 or "
                                      f"string); fit on integer or string labels")
        if len(classes) < 2:
            raise NotImplementedError("to_onnx: a classifier fitted on a single class")
        if spec.y_type == "binary":  # one sigmoid output: class 1 where p > 0.5, as predict
            one_minus = self.op("Sub", [self.const("one", 1.0), p])
            self.op("Concat", [one_minus, p], proba_out, axis=1)
            idx = self.op("Cast", [self.op("Greater", [p, self.const("half", 0.5)])],
                          to=_onnx_type(np.dtype(np.int64)))
            idx = self.op("Reshape", [idx, self.const("shape", [-1], np.int64)])
        else:
            self.op("Identity", [p], proba_out)
            idx = self.op("ArgMax", [p], axis=1, keepdims=0)
        self.op("Gather", [self.const("classes", table, table.dtype), idx], label_out, axis=0)


def _onnx_type(dtype):
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _check_opset(opset, onnx):
    latest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, latest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset must be an integer in [{MIN_OPSET}, {latest}] (this onnx's latest), got {opset!r}")
    return int(opset)


def export(spec, path=None, opset=None, model_name="model"):
    """The ModelProto of ``spec`` (also written to ``path``, atomically, when given)."""
    onnx = import_onnx()
    from onnx import helper, numpy_helper

    opset = _check_opset(opset, onnx)
    nodes, inits, counts = [], [], {}

    def unique(hint):
        counts[hint] = counts.get(hint, 0) + 1
        return f"{hint}_{counts[hint]}"

    def add_node(op, ins, outs, name, domain, attrs):
        nodes.append(helper.make_node(op, ins, outs, name=name, domain=domain or None, **attrs))

    def add_const(name, arr):
        inits.append(numpy_helper.from_array(arr, name))

    b = _Builder(spec.dtype, add_node, add_const, unique)
    elem = _onnx_type(spec.dtype)
    n, m_y = "N", spec.n_outputs
    if spec.kind == "classifier":
        p = b.network(spec, "X")
        b.classifier_head(spec, p, "label", "probabilities")
        label_type = _onnx_type(np.dtype(np.int64)) if spec.int_labels else onnx.TensorProto.STRING
        outputs = [helper.make_tensor_value_info("label", label_type, [n, m_y] if spec.multilabel else [n]),
                   helper.make_tensor_value_info("probabilities", elem, [n, spec.n_proba])]
    else:
        out = "output" if spec.kind == "network" else "variable"
        b.network(spec, "X", out)
        outputs = [helper.make_tensor_value_info(out, elem, [n, m_y])]
    graph = helper.make_graph(nodes, f"dnnfast_{spec.kind}",
                              [helper.make_tensor_value_info("X", elem, [n, spec.n_inputs])], outputs, inits)
    opsets = [helper.make_opsetid("", opset)]
    # The oldest IR version that carries the opset: newer onnx releases write
    # IR versions that the onnxruntime of their day cannot read yet.
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="dnnfast", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    proto.doc_string = f"dnnfast {model_name}, {spec.dtype.name}"
    if path is not None:
        path = check_path(path)
        # ByteSize walks the whole message, as long as serialising it (0.3 s
        # of a 4096-wide model): asked only where the weights' own bytes come
        # near the limit.
        # (Other large parts, such as a classifier's string labels, are
        # caught where serialising fails.)
        weights = sum(len(t.raw_data) for t in inits)
        if (proto.ByteSize() if weights > _MAX_PROTO - (64 << 20) else weights) > _MAX_PROTO:
            raise _too_large(path, proto)
        try:
            data = proto.SerializeToString()
        except Exception as exc:  # google.protobuf's EncodeError, past its limit
            if proto.ByteSize() > _MAX_PROTO:
                raise _too_large(path, proto) from None
            raise exc
        # As save writes a model file: atomically, through links, keeping permissions.
        atomic_write_bytes(path, data)
    return proto


def _too_large(path, proto):
    return ValueError(f"cannot write {path!r}: the ONNX model is {proto.ByteSize()} bytes, over protobuf's 2 GiB "
                      "limit on one message; onnx.save_model(model, path, save_as_external_data=True) "
                      "writes its weights beside it")


# -- skl2onnx --------------------------------------------------------------------------------

def _input_dtype(operator):
    from skl2onnx.common.data_types import DoubleTensorType

    return np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32


def _skl2onnx_spec(operator, scope):
    """The estimator's OnnxSpec; with skl2onnx's option nocl=True, labels are class indices."""
    spec = operator.raw_operator._onnx_spec()
    if spec.kind == "classifier" and scope.get_options(operator.raw_operator, dict(nocl=False))["nocl"]:
        if spec.multilabel:
            raise NotImplementedError("skl2onnx option nocl=True: not for a multi-label classifier")
        spec.classes = np.arange(len(spec.classes), dtype=np.int64)
    return spec


def _skl2onnx_shape(operator):
    """skl2onnx's shape calculator: the outputs' types from the fitted estimator."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType

    spec = _skl2onnx_spec(operator, operator.scope_inst)
    n = operator.inputs[0].get_first_dimension()
    elem = DoubleTensorType if _input_dtype(operator) == np.float64 else FloatTensorType
    if spec.kind != "classifier":
        operator.outputs[0].type = elem([n, spec.n_outputs])
        return
    label = Int64TensorType if spec.int_labels else StringTensorType
    operator.outputs[0].type = label([n, spec.n_outputs] if spec.multilabel else [n])
    operator.outputs[1].type = elem([n, spec.n_proba])


def _skl2onnx_convert(scope, operator, container):
    """skl2onnx's converter: the graph of ``export``, computed in the input's
    dtype (as skl2onnx does for scikit-learn's MLPs)."""
    from onnx import numpy_helper

    dtype = _input_dtype(operator)
    spec = _skl2onnx_spec(operator, scope).astype(dtype)

    def add_node(op, ins, outs, name, domain, attrs):
        container.add_node(op, ins, outs, name=name, op_domain=domain or "", **attrs)

    def add_const(name, arr):
        container.initializers.append(numpy_helper.from_array(arr, name))

    b = _Builder(dtype, add_node, add_const, scope.get_unique_variable_name)
    x = operator.inputs[0].full_name
    if spec.kind == "classifier":
        p = b.network(spec, x)
        b.classifier_head(spec, p, operator.outputs[0].full_name, operator.outputs[1].full_name)
    else:
        b.network(spec, x, operator.outputs[0].full_name)


def register_skl2onnx(classifier, regressor):
    """Register the estimator classes with skl2onnx (which must be importable)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(classifier, "DnnfastMLPClassifier", _skl2onnx_shape, _skl2onnx_convert,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    update_registered_converter(regressor, "DnnfastMLPRegressor", _skl2onnx_shape, _skl2onnx_convert)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback`` once the module ``name`` has been imported (a post-import hook)."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback
        self._lock = threading.Lock()

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        with self._lock:
            if self not in sys.meta_path:
                return None
            sys.meta_path.remove(self)  # one use; and find_spec below must not find us
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, callback = spec.loader, self.callback

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                try:
                    callback()
                except Exception as exc:  # a failed registration must not fail the user's import
                    import warnings

                    warnings.warn(f"dnnfast could not register its estimators with skl2onnx: {exc!r}",
                                  RuntimeWarning, stacklevel=2)

            def __getattr__(self, name):  # the rest (resources, is_package, ...) is the real loader's
                return getattr(loader, name)

        spec.loader = Loader()
        return spec


def register_skl2onnx_when_imported(classifier, regressor):
    """Register the estimators with skl2onnx now if it is imported, else the
    moment it is: importing skl2onnx takes seconds, which the many users of
    the estimators who never convert them should not pay."""
    if "skl2onnx" in sys.modules:
        register_skl2onnx(classifier, regressor)
    elif importlib.util.find_spec("skl2onnx") is not None:
        sys.meta_path.insert(0, _AfterImport("skl2onnx", lambda: register_skl2onnx(classifier, regressor)))
