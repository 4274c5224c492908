"""The Network's file codec: its header and arrays, and a checkpoint's training members.

The archive itself (reading, writing, checked header fields) is ``_archive.py``;
the format is documented in ``docs/model_files.md``."""
from __future__ import annotations

import functools
import re

import numpy as np

from ._archive import (
    _BASE_FIELDS, _F64, _HEADER, Codec, atomic_write, check_loadable, check_path, read_model, _base_header, _check_architecture, _check_keys, _count, _field,
    _le, _num_params, _parameter_arrays, decode_number, decode_value, encode_value, from_canonical, to_canonical,
)
from ._buffers import aligned_empty


def _rng_state(rng, what="a network whose generator is {}"):
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise ValueError(f"cannot save {what.format(st.get('bit_generator'))}; "
                         "only PCG64 (numpy.random.default_rng) has a file form")
    return {"bit_generator": "PCG64", "state": hex(st["state"]["state"]), "inc": hex(st["state"]["inc"]),
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def _check_rng(d, where):
    """A generator's header object (``where``: its path, header.rng or header.training.rng)
    -> the PCG64 state it describes."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object")
    _check_keys(d, ["bit_generator", "state", "inc", "has_uint32", "uinteger"], [], where)
    if d["bit_generator"] != "PCG64":
        raise ValueError(f"{where}.bit_generator must be 'PCG64', got {d['bit_generator']!r:.40}")
    out = {}
    for key in ("state", "inc"):
        v = _field(d, key, str, where)
        if not re.fullmatch(r"0x[0-9a-f]{1,32}", v):
            raise ValueError(f"{where}.{key} must be a hex string of at most 128 bits")
        out[key] = int(v, 16)
    has = _count(d, "has_uint32", where, 0, 1)
    uint = _count(d, "uinteger", where, 0, 2**32 - 1)
    return {"bit_generator": "PCG64", "state": out, "has_uint32": has, "uinteger": uint}


def _network_header(net, training=None):
    """The header array of a Network's file (``training``: an optional training-state
    record from dnnfast._train), refused here if dnnfast.load would refuse it."""
    header = _base_header("Network", net.sizes, net._acts, net.loss, net.dtype, net.fused)
    header["rng"] = _rng_state(net._rng)
    if training is not None:
        header["training"] = _training_header(training[0])
    return check_loadable(header, lambda h, kind: _network_expected(h))


def network_file(net, training=None):
    """The arrays, header first, of a Network's file; ``training``: an optional
    training-state record (header part, arrays in the core's order) from dnnfast._train."""
    arrays = {_HEADER: _network_header(net, training)}
    for l, (W, b, a) in enumerate(zip(net.weights, net.biases, net.alphas), start=1):
        arrays[f"W{l}"] = _le(W, net.dtype)
        arrays[f"b{l}"] = _le(b.ravel(), net.dtype)
        if a is not None:
            arrays[f"alpha{l}"] = _le(a, net.dtype)
    if training is not None:
        arrays.update((name, to_canonical(a, net._layout, net.dtype)) for name, a in training[1].items())
        arrays.update((_HISTORY_PREFIX + key, _le(values, np.float64))
                      for key, values in training[0]["history"].items())
    return arrays


def check_checkpoint(net, training):
    """Raise, before a fit's first step, what writing its checkpoint would
    raise (a generator without a file form, a network the reader refuses)."""
    _network_header(net, training)


def _network_expected(header):
    _check_keys(header, _BASE_FIELDS + ["rng"], ["training"], "header")
    sizes, specs, loss, dtype, fused = _check_architecture(header, "Network")
    rng = _check_rng(header["rng"], "header.rng")
    plan = {"sizes": sizes, "specs": specs, "loss": loss, "dtype": dtype, "fused": fused, "rng": rng}
    expected = _parameter_arrays(sizes, specs, dtype)
    if "training" in header:
        plan["training"], arrays = _check_training(header["training"], _num_params(sizes, specs), dtype,
                                                   header["format_version"])
        expected.update(arrays)
    return plan, expected


def _network_unfilled(cls, plan):
    """-> {parameter array name: the view of the new network's parameters it is read into}.

    The network (``plan["net"]``) is built with zeros for parameters, not drawn ones,
    and the file's arrays are read straight into them: loading holds the model once,
    never a second copy or an initialisation's float64 draw. ``cls``: network.Network
    (which imports this module, so it is handed in)."""
    acts = [name if alpha is None else (name, {"alpha": alpha}) for name, alpha in plan["specs"]]
    net = cls._unfilled(plan["sizes"], acts, plan["loss"], plan["dtype"].name, plan["fused"])
    views = {}
    for l, (W, b, a) in enumerate(zip(net.weights, net.biases, net.alphas), start=1):
        views[f"W{l}"], views[f"b{l}"] = W, b.reshape(-1)
        if a is not None:
            views[f"alpha{l}"] = a
    if set(views) != set(_parameter_arrays(plan["sizes"], plan["specs"], plan["dtype"])):
        raise ValueError("the saved layers do not match this dnnfast's parameter layout")
    plan["net"] = net
    return views


def _network_build(plan, arrays):
    """The Network; a checkpoint's training arrays (read and checked with the rest) are
    dropped here: only a resume (``_checkpoint_build``) uses them."""
    net = plan["net"]  # its parameters already hold the file's arrays
    net._rng.bit_generator.state = plan["rng"]
    return net


def _checkpoint_build(plan, arrays):
    """``(network, record)``: the training-state record for fit(..., checkpoint=path,
    resume=True), None in a plain model file."""
    net = _network_build(plan, arrays)
    if "training" not in plan:
        return net, None
    record = dict(plan["training"])
    if record["history"] is None:  # format version 2: the history's arrays, checked with the rest
        record["history"] = {key: arrays[_HISTORY_PREFIX + key].tolist() for key in record["history_lengths"]}
    del record["history_lengths"]
    record["arrays"] = {}
    for name in _TRAINING_ARRAYS:
        if name in arrays:
            record["arrays"][name] = from_canonical(arrays[name], net._layout,
                                                    aligned_empty(net.num_params, net.dtype))
    return net, record


# ---------------------------------------------------------------------------
# Training state (optional members of a Network file: a checkpoint)
# ---------------------------------------------------------------------------

_TRAINING_ARRAYS = ("train_state1", "train_state2", "train_best_params")
# Format version 2: each history list is the float64 array "train_history_" + its key;
# the header holds its length. (Version 1 held the lists in the header, which grew
# with every epoch up to the header's cap, re-encoded whole at every checkpoint.)
_HISTORY_PREFIX = "train_history_"
_HISTORY_KEY = re.compile(r"[a-z_]{1,32}")  # the driver's keys: cost, time, val_cost, accuracy, ...
_TRAINING_FIELDS = ["epoch", "step", "optimizer", "t", "stopped", "wait", "best", "best_epoch", "history",
                    "settings", "rng", "best_params"]


def _training_header(header):
    """The file header's ``training`` object of a record's header part."""
    out = dict(header)
    # The network's own generator is checked first (_network_header): a
    # different one here is the fit's, from its seed argument.
    out["rng"] = _rng_state(header["rng"], "the checkpoint of a fit whose seed is a {} generator (fit's seed argument)")
    out["best"] = encode_value(header["best"], "training.best")
    out["history"] = {k: int(len(v)) for k, v in header["history"].items()}  # the arrays: network_file
    out["settings"] = [[k, encode_value(v, "training.settings")] for k, v in header["settings"]]
    return out


def _check_training(d, num_params, dtype, version):
    """Check a header's ``training`` object of a file of format ``version`` ->
    (record, {array name: (dtype, shape)}). The record's ``history``: the lists
    (version 1) or None, its ``history_lengths`` then naming the arrays that
    hold them (version 2, read with the other arrays)."""
    where = "header.training"
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object")
    _check_keys(d, _TRAINING_FIELDS, [], where)
    rec = {"epoch": _count(d, "epoch", where), "step": _count(d, "step", where, hi=2**62),
           "t": _count(d, "t", where, hi=2**62), "wait": _count(d, "wait", where),
           "stopped": _field(d, "stopped", bool, where), "optimizer": _field(d, "optimizer", str, where)}
    from ._registry import OPTIMIZER_TABLE

    if rec["optimizer"] not in OPTIMIZER_TABLE:
        raise ValueError(f"{where}.optimizer: unknown optimizer {rec['optimizer']!r:.40}")
    rec["best"] = decode_number(d["best"], f"{where}.best", nullable=True)
    # 1-based, and one of the epochs the file has completed: the best one so far.
    rec["best_epoch"] = (_count(d, "best_epoch", where, lo=1, hi=rec["epoch"]) if d["best_epoch"] is not None
                         else None)
    hist = _field(d, "history", dict, where)
    # A key names an array (version 2). Version 1 held lists under the same keys, the
    # fit's own (cost, time, val_cost, ...), and a resume writes version 2: any other
    # key is refused here, not by the resumed fit's first checkpoint.
    for k in hist:
        if not _HISTORY_KEY.fullmatch(k):
            raise ValueError(f"{where}.history: a key must be 1 to 32 of a-z and _, got {k!r:.40}")
    arrays = {}
    lengths = {}
    if version == 1:
        rec["history"] = {}
        for k, v in hist.items():
            if not isinstance(v, list):
                raise ValueError(f"{where}.history[{k!r:.40}] must be a list")
            rec["history"][k] = [decode_number(x, f"{where}.history[{k!r:.40}]") for x in v]
            lengths[k] = len(v)
    else:
        rec["history"] = None
        for k, v in hist.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{where}.history[{k!r:.40}] must be a length (an integer), got {v!r:.40}")
            lengths[k] = v
            arrays[_HISTORY_PREFIX + k] = (_F64, (v,))
    # Every epoch appends its cost and time (a resumed fit goes on from these lists);
    # what a callback logs begins at some epoch, so it is no longer.
    for k in ("cost", "time"):
        if lengths.get(k) != rec["epoch"]:
            raise ValueError(f"{where}.history.{k} must hold one value for each of the {rec['epoch']} epochs")
    for k, n in lengths.items():
        if not 0 <= n <= rec["epoch"]:
            raise ValueError(f"{where}.history[{k!r:.40}] holds more values than the {rec['epoch']} epochs"
                             if n > 0 else f"{where}.history[{k!r:.40}] has a negative length")
    rec["history_lengths"] = lengths
    settings = _field(d, "settings", list, where)
    if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in settings):
        raise ValueError(f"{where}.settings must be a list of [name, value] pairs")
    rec["settings"] = [(k, decode_value(v, f"{where}.settings")) for k, v in settings]
    rec["rng"] = _check_rng(d["rng"], f"{where}.rng")
    buffers = OPTIMIZER_TABLE[rec["optimizer"]][1]
    if buffers >= 1:
        arrays["train_state1"] = (dtype, (num_params,))
    if buffers >= 2:
        arrays["train_state2"] = (dtype, (num_params,))
    if _field(d, "best_params", bool, where):
        arrays["train_best_params"] = (dtype, (num_params,))
    return rec, arrays


# ---------------------------------------------------------------------------
# Saving and reading (Network.save, a fit's checkpoints; dnnfast.load takes network_codec)
# ---------------------------------------------------------------------------

def network_codec(cls, build=_network_build):
    """The reader's Codec of a Network file, building instances of ``cls`` (``build``:
    ``_checkpoint_build`` for a resume)."""
    return Codec(lambda header, kind: _network_expected(header), functools.partial(_network_unfilled, cls), build)


def save_network(net, path, training=None):
    """Write ``net`` (with a training-state record from dnnfast._train: a checkpoint) atomically."""
    path = check_path(path)
    atomic_write(path, network_file(net, training))


def save_checkpoint(net, path, record):
    """A Network with its training state (``record`` from dnnfast._train), atomically."""
    save_network(net, path, record)


def load_checkpoint(path, cls):
    """``(network, record)``: a Network file and its training state (None in a plain model file).

    Only a Network file is a checkpoint: any other kind is a ValueError naming ``path``."""
    return read_model(path, {"Network": network_codec(cls, _checkpoint_build)})
