"""Fuzz ``dnnfast.load``: whatever the bytes, it returns a working model or
raises ValueError -- never another exception, never a crash.

    pip install atheris
    python tools/fuzz_load.py -runs=100000

Two kinds of input, chosen by the first byte:

- ``R`` + bytes: the bytes are the file. The seeds are valid files, so the
  fuzzer mutates real archives (directory, local headers, .npy headers, data),
  and the hostile files of issue 18 (oversized or high-rank .npy headers,
  directory sizes that disagree, deflated members).
- ``S`` + JSON + ``\\0`` + control bytes: a well-formed archive (correct CRCs)
  is built around the fuzzed header text, with the arrays of one of the seed
  models, which the control bytes drop, retype, reshape, poison with NaN or
  add to. This reaches the header checks, which byte mutations of a real
  archive stop short of (the CRC catches them first).

A model that loads is also asked to predict, so a forged file that passes the
checks must still give a usable model. Extra arguments go to libFuzzer
(``-max_len``, ``-atheris_runs``, a corpus directory, ...).
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings

import atheris
import numpy as np

with atheris.instrument_imports():  # coverage feedback from dnnfast and the archive reader
    import zipfile

    import dnnfast
    import dnnfast._archive
    import dnnfast._estimators._file
    import dnnfast._model_files
    import dnnfast._network_file

warnings.simplefilter("ignore")
_DIR = tempfile.mkdtemp(prefix="dnnfast-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PATH = os.path.join(_DIR, "model.npz")


def _seed_models():
    """Small models of every kind and feature the format has."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 3))
    out = []
    net = dnnfast.Network([3, 4, 2], ["prelu", "softmax"], loss="cce", dtype="float32", seed=0)
    out.append(net)
    out.append(dnnfast.Network([3, 2], [("leaky_relu", {"alpha": 0.3})], loss="sse", dtype="float64", seed=1))
    y = np.array(["a", "b", "c"])[rng.randint(0, 3, 30)]
    out.append(dnnfast.MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y))
    out.append(dnnfast.MLPClassifier((3,), max_iter=2, solver="sgd", early_stopping=True,
                                     random_state=np.random.RandomState(1)).fit(X, (X[:, 0] > 0).astype(int)))
    out.append(dnnfast.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, X[:, :2]))
    out.append(dnnfast.MLPRegressor(loss="poisson", hidden_layer_sizes=(2,), max_iter=2, solver="sgd",
                                    random_state=0).fit(X, np.abs(X[:, 0])))
    return out


def _files(models):
    files = []
    for m in models:
        m.save(_PATH)
        with open(_PATH, "rb") as f:
            files.append(f.read())
    return files


_MODELS = _seed_models()
_FILES = _files(_MODELS)
_PARTS = []
for _data in _FILES:
    with np.load(io.BytesIO(_data), allow_pickle=False) as _z:
        _arrays = {k: _z[k] for k in _z.files}
    _PARTS.append((_arrays.pop("header").tobytes(), _arrays))


def _structured(data):
    """An archive with valid CRCs around the fuzzed header and perturbed seed arrays."""
    text, _, control = data.partition(b"\0")
    fdp = atheris.FuzzedDataProvider(control)
    _, arrays = _PARTS[fdp.ConsumeIntInRange(0, len(_PARTS) - 1)]
    arrays = dict(arrays)
    names = sorted(arrays)
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if not names:
            break
        name = names[fdp.ConsumeIntInRange(0, len(names) - 1)]
        action = fdp.ConsumeIntInRange(0, 6)
        a = arrays.get(name)
        if a is None:
            continue
        if action == 0:
            del arrays[name]
        elif action == 1:
            arrays[name] = a.astype(fdp.PickValueInList([np.float32, np.float64, np.int64, np.uint8, bool]))
        elif action == 2:
            arrays[name] = a.reshape(-1)[: fdp.ConsumeIntInRange(0, a.size)].copy()
        elif action == 3 and a.dtype.kind == "f" and a.size:
            a = a.copy()
            a.flat[fdp.ConsumeIntInRange(0, a.size - 1)] = fdp.PickValueInList([np.nan, np.inf, -np.inf, 1e300])
            arrays[name] = a
        elif action == 4:
            arrays[name + "x"] = a
        elif action == 5:
            arrays[name] = np.asfortranarray(a.reshape(a.shape[::-1]) if a.ndim == 2 else a)
        elif action == 6:
            arrays[name] = a.astype(a.dtype.newbyteorder(">"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in {"header": np.frombuffer(text, dtype=np.uint8), **arrays}.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            zf.writestr(name + ".npy", member.getvalue())
    return buf.getvalue()


def TestOneInput(data):
    if not data:
        return
    mode, body = data[:1], data[1:]
    payload = _structured(body) if mode == b"S" else body
    with open(_PATH, "wb") as f:
        f.write(payload)
    try:
        model = dnnfast.load(_PATH)
    except ValueError:
        return
    n_in = model.sizes[0] if isinstance(model, dnnfast.Network) else model.n_features_in_
    X = np.zeros((2, n_in))
    model.predict(X)


def _npy(shape, descr="<f8", version=1, length=None):
    """A .npy member header that says ``shape`` (any text) and declares ``length`` header bytes."""
    text = ("{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    size = len(text) if length is None else length
    return b"\x93NUMPY" + bytes([version, 0]) + size.to_bytes(2 if version == 1 else 4, "little") + text


def _rewritten(data, compression=zipfile.ZIP_STORED, **replace):
    """The archive ``data`` with members replaced (name -> bytes), as a new archive."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name in src.namelist():
            zf.writestr(name, replace.get(name[:-4], src.read(name)))
    return buf.getvalue()


def _sizes_disagree(data):
    """The second directory entry's stored size set to 1 (its uncompressed size unchanged)."""
    d = bytearray(data)
    entry = d.find(b"PK\x01\x02", d.find(b"PK\x01\x02") + 1)
    d[entry + 20:entry + 24] = (1).to_bytes(4, "little")
    return bytes(d)


def _hostile_seeds():
    """Files that once escaped the checks (issue 18), built from the first seed model; the
    same cases are tests in tests/test_model_file_paths.py. A file's kind (device, FIFO)
    and a sparse file's holes are not bytes, so those cases are tests only."""
    net = _FILES[0]
    return {
        "npy_rank4_shape": _rewritten(net, W1=_npy("(1, 1, 1, 1)")),
        "npy_9000_char_shape": _rewritten(net, W1=_npy("(" + "1, " * 3000 + ")")),
        "npy_9000_digit_size": _rewritten(net, header=_npy("(" + "9" * 9000 + ",)", descr="|u1")),
        "npy_nested_minus_shape": _rewritten(net, W1=_npy("(" + "-" * 900 + "1,)")),  # numpy: MemoryError
        "npy_header_claims_4GiB": _rewritten(net, W1=_npy("(3, 4)", version=2, length=2**32 - 1)),
        "directory_sizes_disagree": _sizes_disagree(net),
        "deflated_members": _rewritten(net, compression=zipfile.ZIP_DEFLATED),
    }


_HOSTILE = _hostile_seeds()


def _write_seeds(corpus):
    os.makedirs(corpus, exist_ok=True)
    if os.listdir(corpus):
        return
    for name, data in _HOSTILE.items():
        with open(os.path.join(corpus, f"hostile_{name}"), "wb") as f:
            f.write(b"R" + data)
    for i, (data, (header, _)) in enumerate(zip(_FILES, _PARTS)):
        with open(os.path.join(corpus, f"raw{i}"), "wb") as f:
            f.write(b"R" + data)
        for j in range(len(_PARTS)):
            with open(os.path.join(corpus, f"structured{i}_{j}"), "wb") as f:
                f.write(b"S" + header + b"\0" + bytes([j]))


def main():
    argv = list(sys.argv)
    corpus = [a for a in argv[1:] if not a.startswith("-")]
    if not corpus:
        corpus = [os.path.join(_DIR, "corpus")]
        argv.append(corpus[0])
    _write_seeds(corpus[0])
    if not any(a.startswith("-max_len") for a in argv):
        argv.append(f"-max_len={max(len(d) for d in _FILES + list(_HOSTILE.values())) + 64}")
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
