"""The estimators' file codec: MLPClassifier and MLPRegressor to and from a model file.

The archive itself (reading, writing, checked header fields) is ``dnnfast._archive``;
the format is documented in ``docs/model_files.md``."""
from __future__ import annotations

import functools
import json
import re
import types

import numpy as np

from .._archive import (
    KINDS, _BASE_FIELDS, _F64, _HEADER, _I64, _MT19937_KEYS, _U32, Codec, _base_header, from_canonical, to_canonical,
    _check_architecture, _check_keys, _count, _field, _le, _num_params, _parameter_arrays,
    atomic_write, check_loadable, check_path, decode_number, decode_value, encode_value,
)
from .._buffers import aligned_empty
from ._solver_state import SOLVER_SETTINGS, solver_settings


_CLASSES_DTYPE = re.compile(r"(\|b1|[<|][iu][1248]|<f[248]|<U[1-9][0-9]{0,5})")


def _string_array(strings, attribute):
    """``strings`` (Python str) as the file's NumPy str array. Such an array drops
    trailing NUL characters (its fixed-width items are NUL-padded): a name or label
    ending in one would come back changed, and the loaded model would refuse the
    DataFrame it was fitted on, or predict another label. It has no file form."""
    for s in strings:
        if s.endswith("\0"):
            raise ValueError(f"cannot save {attribute}: {s!r:.60} ends with a NUL character, which the file's "
                             "string array cannot hold (a NumPy str array drops trailing NULs)")
    return np.asarray(strings, dtype=str)


def _encode_params(est, arrays):
    params = {}
    for key, value in est.get_params(deep=False).items():
        if key == "random_state" and isinstance(value, np.random.RandomState):
            name, keys, pos, has_gauss, cached = value.get_state()
            arrays["random_state_keys"] = _le(keys, _U32)
            params[key] = {"RandomState": {"pos": int(pos), "has_gauss": int(has_gauss),
                                           "cached_gaussian": float(cached)}}
        else:
            if key == "hidden_layer_sizes" and isinstance(value, (np.ndarray, range)):
                value = np.asarray(value).tolist()  # array-like, as scikit-learn's docs say: its numbers
            params[key] = encode_value(value, f"parameter {key!r}")
    return params


def estimator_file(est):
    """(arrays with the header first) of a fitted MLPClassifier or MLPRegressor."""
    est._check_fitted()
    kind = type(est).__name__
    if kind not in KINDS[1:]:
        raise TypeError(f"cannot save a {kind}")
    dtype = est._model_dtype()
    sizes, specs, loss = est._architecture()
    est._check_finite("save", dtype)  # dnnfast.load would refuse the file
    arrays = {}
    header = _base_header(kind, sizes, specs, loss, dtype, True)
    header["params"] = _encode_params(est, arrays)
    fitted = {"n_iter": int(est.n_iter_), "t": int(est.t_), "loss": encode_value(est.loss_, "loss_"),
              "out_activation": est.out_activation_}
    d = est.__dict__
    for key in ("best_loss_", "best_validation_score_"):
        if key in d:
            fitted[key[:-1]] = encode_value(d[key], key)
    if "_no_improvement_count" in d:
        fitted["no_improvement_count"] = int(d["_no_improvement_count"])
    if "loss_curve_" in d:
        fitted["loss_curve"] = len(d["loss_curve_"])
        arrays["loss_curve"] = _le(d["loss_curve_"], _F64)
    if "validation_scores_" in d:
        scores = d["validation_scores_"]
        fitted["validation_scores"] = None if scores is None else len(scores)
        if scores is not None:
            arrays["validation_scores"] = _le(scores, _F64)
    history = est.history_
    fitted["history"] = len(history["loss"])
    for k in ("loss", "val_loss", "val_score", "time"):
        arrays[f"history_{k}"] = _le(history[k], _F64)
    names = d.get("feature_names_in_")
    if names is not None:
        names = _string_array([str(n) for n in names], "feature_names_in_")
        fitted["feature_names_in"] = names.dtype.itemsize // 4
        arrays["feature_names_in"] = _le(names, names.dtype)
    for l, (W, b, a) in enumerate(zip(est.coefs_, est.intercepts_, est._alphas()), start=1):
        arrays[f"W{l}"] = _le(W, dtype)
        arrays[f"b{l}"] = _le(b, dtype)
        if a is not None:
            arrays[f"alpha{l}"] = _le(a, dtype)
    layout = est._core_net(dtype).layout()
    opt = d.get("_optimizer")
    if opt is not None:
        fitted["optimizer"] = {"learning_rate": float(opt["learning_rate"]), "adam": opt["state2"] is not None,
                               "settings": dict(opt.get("settings") or solver_settings(est))}
        arrays["optimizer_state1"] = to_canonical(opt["state1"], layout, dtype)
        if opt["state2"] is not None:
            arrays["optimizer_state2"] = to_canonical(opt["state2"], layout, dtype)
        arrays["optimizer_t"] = _le(opt["t"], _I64)
    best = d.get("_best_params")
    if best is not None:
        fitted["best_params"] = True
        arrays["best_params"] = to_canonical(best, layout, dtype)
    if kind == "MLPClassifier":
        lb = est._label_binarizer
        classes = np.asarray(est.classes_)
        as_object = classes.dtype.kind == "O"
        if as_object:  # string labels given as Python objects stay objects
            if not all(isinstance(c, str) for c in classes):
                raise TypeError("cannot save a classifier whose class labels are Python objects other than "
                                "str (numbers, bools and strings have a file form)")
            classes = _string_array(classes.tolist(), "classes_")
        if classes.dtype.kind not in "biufU":
            raise TypeError(f"cannot save class labels of dtype {classes.dtype}")
        classes = _le(classes, classes.dtype)
        fitted["classes"] = {"dtype": classes.dtype.str, "length": int(classes.size), "as_object": as_object}
        fitted["y_type"] = lb.y_type_
        fitted["sparse_input"] = bool(getattr(lb, "sparse_input_", False))
        arrays["classes"] = classes
    header["fitted"] = fitted
    array = check_loadable(header, _estimator_expected)
    # And load's build, which checks the parameters against the saved network
    # and state: after fit, set_params(hidden_layer_sizes=..., loss=...,
    # max_iter=0, ...) left a model that predicts but whose file load
    # refused, written over a good one.
    own = next(c for c in type(est).__mro__ if c.__name__ == kind and c.__module__.startswith(__package__))
    plan, _ = _estimator_expected(json.loads(array.tobytes()), kind)
    try:
        _estimator_build(lambda k: own, plan, arrays, checks_only=True)
    except (TypeError, ValueError) as exc:
        # A parameter that no longer describes the fitted model is set_params'
        # doing; anything else (labels the reader refuses) is not.
        hint = ("; set_params changed the fitted model's parameters: set them back, or fit again"
                if str(exc).startswith("header") else "")
        raise ValueError(f"cannot save: dnnfast.load would refuse the file ({exc}){hint}") from None
    return {_HEADER: array, **arrays}


def _estimator_expected(header, kind):
    _check_keys(header, _BASE_FIELDS + ["params", "fitted"], [], "header")
    sizes, specs, loss, dtype, fused = _check_architecture(header, kind)
    expected = _parameter_arrays(sizes, specs, dtype)
    n_params = _num_params(sizes, specs)
    params_raw = _field(header, "params", dict, "header")
    params, random_state = {}, None
    for key, value in params_raw.items():
        where = f"header.params[{key!r}]"  # repr'd: a stranger's text
        if key == "random_state" and isinstance(value, dict) and "RandomState" in value:
            body = value["RandomState"]
            if len(value) != 1 or not isinstance(body, dict):
                raise ValueError(f"{where}: malformed RandomState")
            _check_keys(body, ["pos", "has_gauss", "cached_gaussian"], [], where)
            random_state = (_count(body, "pos", where, 0, _MT19937_KEYS), _count(body, "has_gauss", where, 0, 1),
                            _field(body, "cached_gaussian", "float", where))
            expected["random_state_keys"] = (_U32, (_MT19937_KEYS,))
            continue
        params[key] = decode_value(value, where)
    f = _field(header, "fitted", dict, "header")
    w = "header.fitted"
    required = ["n_iter", "t", "loss", "out_activation", "history"]
    optional = ["best_loss", "best_validation_score", "no_improvement_count", "loss_curve", "validation_scores",
                "feature_names_in", "optimizer", "best_params"]
    if kind == "MLPClassifier":
        required += ["classes", "y_type", "sparse_input"]
    _check_keys(f, required, optional, w)
    fit = {"n_iter": _count(f, "n_iter", w), "t": _count(f, "t", w, hi=2**62),
           "out_activation": _field(f, "out_activation", str, w)}
    for key in ("loss", "best_loss", "best_validation_score"):
        if key in f:
            fit[key] = decode_number(f[key], f"{w}.{key}", nullable=key != "loss")
    fit["no_improvement_count"] = _count(f, "no_improvement_count", w, optional=True)
    history = _count(f, "history", w)
    for k in ("loss", "val_loss", "val_score", "time"):
        expected[f"history_{k}"] = (_F64, (history,))
    if "loss_curve" in f:
        expected["loss_curve"] = (_F64, (_count(f, "loss_curve", w),))
        fit["loss_curve"] = True
    if "validation_scores" in f:
        fit["validation_scores"] = f["validation_scores"] is not None
        if fit["validation_scores"]:
            expected["validation_scores"] = (_F64, (_count(f, "validation_scores", w),))
    if f.get("feature_names_in") is not None:
        chars = _count(f, "feature_names_in", w, lo=1, hi=2**20)
        expected["feature_names_in"] = (np.dtype(f"<U{chars}"), (sizes[0],))
    if f.get("optimizer") is not None:
        opt = _field(f, "optimizer", dict, w)
        _check_keys(opt, ["learning_rate", "adam"], ["settings"], f"{w}.optimizer")
        lr = _field(opt, "learning_rate", "float", f"{w}.optimizer")
        if not lr >= 0:  # 0: an invscaling rate that underflowed; below, gradient ascent
            raise ValueError(f"{w}.optimizer.learning_rate must be >= 0, got {lr}")
        adam = _field(opt, "adam", bool, f"{w}.optimizer")
        # Absent from files written before the solver kept them: the saved
        # parameters then stand in, as they did when those files were read.
        settings = _field(opt, "settings", dict, f"{w}.optimizer", optional=True)
        if settings is not None:
            _check_keys(settings, SOLVER_SETTINGS, [], f"{w}.optimizer.settings")
            if settings["solver"] != ("adam" if adam else "sgd"):
                raise ValueError(f"{w}.optimizer.settings.solver is {settings['solver']!r:.20}, but the state is "
                                 f"{'adam' if adam else 'sgd'}'s")
        fit["optimizer"] = (lr, adam, settings)
        expected["optimizer_state1"] = (dtype, (n_params,))
        if adam:
            expected["optimizer_state2"] = (dtype, (n_params,))
        expected["optimizer_t"] = (_I64, (1,))
    if "best_params" in f:
        if f["best_params"] is not True:
            raise ValueError(f"{w}.best_params must be true when present")
        expected["best_params"] = (dtype, (n_params,))
    if kind == "MLPClassifier":
        c = _field(f, "classes", dict, w)
        _check_keys(c, ["dtype", "length", "as_object"], [], f"{w}.classes")
        cdt = _field(c, "dtype", str, f"{w}.classes")
        if not _CLASSES_DTYPE.fullmatch(cdt):
            raise ValueError(f"{w}.classes.dtype must be bool, an integer, float16, float32, float64 or str of at most "
                             f"999999 characters, got {cdt!r:.40}")
        expected["classes"] = (np.dtype(cdt), (_count(c, "length", f"{w}.classes", 1, 2**31),))
        y_type = _field(f, "y_type", str, w)
        if y_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"{w}.y_type must be binary, multiclass or multilabel-indicator, got {y_type!r:.40}")
        fit["y_type"] = y_type
        fit["classes_as_object"] = _field(c, "as_object", bool, f"{w}.classes")
        if fit["classes_as_object"] and not cdt.startswith("<U"):
            raise ValueError(f"{w}.classes.as_object is only for str labels")
        fit["sparse_input"] = _field(f, "sparse_input", bool, w)
    plan = {"kind": kind, "sizes": sizes, "specs": specs, "loss": loss, "dtype": dtype, "params": params,
            "random_state": random_state, "fitted": fit}
    return plan, expected


def _estimator_build(estimator_class, plan, arrays, checks_only=False):
    """The estimator of a checked header's plan and its arrays; ``checks_only``
    (save's dry run): every check of the build, without the arrays' copies
    into the estimator (they doubled a save's peak memory)."""
    # Imported here: they import scikit-learn when installed, which loading a Network file
    # (one process's memory peak, test_model_file_paths.py) does without.
    from ._progress import TrainingHistory
    from ._targets import LabelBinarizer

    kind, fit, sizes = plan["kind"], plan["fitted"], plan["sizes"]
    cls = estimator_class(kind)
    params = dict(plan["params"])
    names = set(cls._get_param_names())
    if set(params) | ({"random_state"} if plan["random_state"] else set()) != names:
        got = set(params) | ({"random_state"} if plan["random_state"] else set())
        raise ValueError(f"header.params: expected the parameters {sorted(names)}; "
                         f"missing {sorted(names - got)}, unknown {sorted(got - names)}")
    if plan["random_state"] is not None:
        rs = np.random.RandomState()
        pos, has_gauss, cached = plan["random_state"]
        rs.set_state(("MT19937", arrays["random_state_keys"], pos, has_gauss, cached))
        params["random_state"] = rs
    est = cls(**params)
    L = len(sizes) - 1
    try:
        est._check_params()  # random_state's too
        hidden = est._hidden_sizes()
        est._hidden_specs(len(hidden))
        if hidden != sizes[1:-1]:
            raise ValueError(f"hidden_layer_sizes {hidden} do not match the saved layers {sizes[1:-1]}")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"header.params: {exc}") from None
    est.n_features_in_ = sizes[0]
    est.n_outputs_ = sizes[-1]
    est.n_layers_ = len(sizes)
    est.n_iter_ = fit["n_iter"]
    est.t_ = fit["t"]
    est.loss_ = fit["loss"]
    est.out_activation_ = fit["out_activation"]
    out_name, out_param = plan["specs"][-1]
    if kind == "MLPRegressor" and out_param is not None:
        est._output_param = out_param  # the output's fitted parameter, which predict uses (_output_spec)
    est.coefs_ = [arrays[f"W{l}"] for l in range(1, L + 1)]
    est.intercepts_ = [arrays[f"b{l}"] for l in range(1, L + 1)]
    alphas = [arrays.get(f"alpha{l}") for l in range(1, L + 1)]
    if any(a is not None for a in alphas):
        est.prelu_alphas_ = alphas
    for key in ("best_loss", "best_validation_score"):
        if key in fit:
            setattr(est, key + "_", fit[key])
    if fit["no_improvement_count"] is not None:
        est._no_improvement_count = fit["no_improvement_count"]
    if fit.get("loss_curve"):
        est.loss_curve_ = arrays["loss_curve"].tolist()
    if "validation_scores" in fit:
        est.validation_scores_ = arrays["validation_scores"].tolist() if fit["validation_scores"] else None
    history = TrainingHistory()
    for k in TrainingHistory.KEYS:
        history[k] = arrays[f"history_{k}"].tolist()
    est.history_ = history
    if "feature_names_in" in arrays:
        est.feature_names_in_ = np.asarray(arrays["feature_names_in"].tolist(), dtype=object)
    if kind == "MLPClassifier":
        y_type, classes = fit["y_type"], arrays["classes"]
        if classes.dtype.kind == "f" and not np.isfinite(classes).all():
            raise ValueError("array 'classes': labels must be finite")
        if classes.size > 1 and not np.all(classes[1:] > classes[:-1]):
            raise ValueError("array 'classes': labels must be sorted and distinct")
        n_out = sizes[-1]
        ok = {"binary": n_out == 1 and classes.size <= 2, "multiclass": n_out == classes.size >= 3,
              "multilabel-indicator": n_out == classes.size}[y_type]
        if not ok:
            raise ValueError(f"{classes.size} classes of type {y_type} do not fit {n_out} outputs")
        if fit["classes_as_object"]:
            classes = classes.astype(object)
        lb = LabelBinarizer()
        lb.classes_ = classes
        lb.y_type_ = y_type
        lb.sparse_input_ = fit["sparse_input"]
        est._label_binarizer = lb
        est.classes_ = classes
    # The output activation follows from the parameters (and the target type), as in fit.
    if est.out_activation_ != est._output_activation_name():
        raise ValueError(f"header.fitted.out_activation is {est.out_activation_!r:.40}, but the parameters "
                         f"give {est._output_activation_name()!r}")
    # The saved network must be the one the parameters describe.
    try:
        got_sizes, got_specs, got_loss = est._architecture()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"header: the parameters do not describe the saved network: {exc}") from None
    got = [(s.name, s.param if s.has_param else None) for s in got_specs]
    if got_sizes != sizes or got != plan["specs"] or got_loss != plan["loss"]:
        raise ValueError(f"header: the parameters describe sizes={got_sizes}, activations={got}, "
                         f"loss={got_loss!r}, but the file holds sizes={sizes}, activations={plan['specs']}, "
                         f"loss={plan['loss']!r}")
    dtype = plan["dtype"].newbyteorder("=")
    net = est._core_net(dtype)
    if net.num_params != _num_params(sizes, plan["specs"]):
        raise ValueError("the saved layers do not match this dnnfast's parameter layout")

    def core_order(canonical):
        return from_canonical(canonical, net.layout(), aligned_empty(net.num_params, dtype))

    if "optimizer" in fit:
        lr, adam, settings = fit["optimizer"]
        t = arrays["optimizer_t"]
        if t[0] < 0:
            raise ValueError("array 'optimizer_t' must be >= 0")
        if settings is None:
            settings = solver_settings(est)
        else:
            # Checked as the estimator's own parameters are, by the same rules.
            try:
                type(est)(**{**est.get_params(deep=False), **settings})._check_params()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"header.fitted.optimizer.settings: {exc}") from None
            settings = solver_settings(types.SimpleNamespace(**settings))
        if checks_only:
            return est
        est._optimizer = {"learning_rate": lr, "state1": core_order(arrays["optimizer_state1"]),
                          "state2": core_order(arrays["optimizer_state2"]) if adam else None, "t": t,
                          "settings": settings}
    if checks_only:
        return est
    if "best_params" in arrays:
        est._best_params = core_order(arrays["best_params"])
    est._bind_loaded()  # coefs_ & co become views of one flat buffer, as after fit
    return est


# ---------------------------------------------------------------------------
# Saving and reading (the estimators' save; dnnfast.load takes estimator_codec)
# ---------------------------------------------------------------------------

def estimator_codec(estimator_class):
    """The reader's Codec of an estimator file; ``estimator_class(kind)`` -> MLPClassifier or
    MLPRegressor (the classes import this module, so they are handed in)."""
    return Codec(_estimator_expected, lambda plan: {}, functools.partial(_estimator_build, estimator_class))


def save_estimator(est, path):
    """Write the fitted ``est`` to ``path`` atomically."""
    path = check_path(path)
    atomic_write(path, estimator_file(est))
