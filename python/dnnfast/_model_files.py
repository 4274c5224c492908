"""Model files: ``save`` and ``load`` for Network, MLPClassifier and MLPRegressor.

A model file is a ``.npz`` archive that NumPy alone can read
(``np.load(path, allow_pickle=False)``): a ``header`` member holding a UTF-8
JSON document as a uint8 array, and plain little-endian numeric arrays. The
format is documented in ``docs/model_files.md``; this module is its only
implementation. Nothing is pickled, in either direction.

Writing is atomic: the archive goes to a temporary file in the target's
directory, is flushed and fsync'ed, then ``os.replace``'d onto the target, so
a crash leaves either the old file or the new one, never half of one. The
target is the file a symbolic link points to, must be a regular file (or not
exist yet), and keeps its permission bits.

Reading treats the file as hostile. It must be a regular file (a device or a
FIFO is refused before it is read). Everything the header claims is checked
before anything is allocated from it: the archive is listed (a bounded number
of stored members, each within the file), the header parsed and checked field
by field, the arrays it implies are derived from the sizes (never read from a
list in the file), and their total size must fit in the file and in the
available memory, which bounds every allocation by the bytes actually in the
file. Each array's .npy header is bounded in length and rank before it is
parsed, its dtype and shape must be exactly the derived ones, its bytes pass
the archive's CRC, and parameters must be finite. A Network's arrays are read
straight into its parameter buffer. Every problem is a ValueError (a missing
file stays FileNotFoundError).
"""
from __future__ import annotations

import math
import os
import re

from . import _core
from ._archive import (
    FORMAT_NAME, FORMAT_VERSION, KINDS, _ARCHIVE_ERRORS, _HEADER, _field, _npy_member, _open_archive,
    _open_model_file, _parse_header, atomic_write, check_path,
)
from ._estimators._file import _estimator_build, _estimator_expected, estimator_file
from ._network_file import _network_build, _network_expected, _network_unfilled, network_file
from ._validation import check_memory

# ---------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------

def save(obj, path):
    """Write ``obj`` (a Network or a fitted estimator) to ``path`` atomically."""
    path = check_path(path)
    from .network import Network

    arrays = network_file(obj) if isinstance(obj, Network) else estimator_file(obj)
    atomic_write(path, arrays)


# Arrays that hold parameters (or their optimizer state): NaN or infinity there is damage.
_FINITE = re.compile(r"(W|b|alpha)[0-9]+|optimizer_state[12]|best_params|train_state[12]|train_best_params")


def save_checkpoint(net, path, record):
    """A Network with its training state (``record`` from dnnfast._train), atomically."""
    atomic_write(check_path(path), network_file(net, record))


def load_checkpoint(path):
    """``(network, record)``: a model file and its training state (None in a plain model file)."""
    net = load(path)
    return net, net.__dict__.pop("_checkpoint", None)


def _read(f, file_size):
    zf, members = _open_archive(f, file_size)
    with zf:
        header = _parse_header(zf, members[_HEADER])
        fmt = header.get("format")
        if fmt != FORMAT_NAME:
            raise ValueError(f"not a dnnfast model file (header.format is {fmt!r:.40}, expected {FORMAT_NAME!r})")
        version = _field(header, "format_version", int, "header")
        written_by = header.get("dnnfast_version")
        if version > FORMAT_VERSION:
            raise ValueError(f"the file is in model format version {version} (written by dnnfast "
                             f"{written_by!s:.20}); this dnnfast ({_core.__version__}) reads format versions "
                             f"1 to {FORMAT_VERSION}: upgrade dnnfast to read it")
        if version < 1:
            raise ValueError(f"unknown model format version {version}")
        _field(header, "dnnfast_version", str, "header")
        kind = _field(header, "kind", str, "header")
        if kind not in KINDS:
            raise ValueError(f"header.kind must be one of {list(KINDS)}, got {kind!r:.40}")
        plan, expected = _network_expected(header) if kind == "Network" else _estimator_expected(header, kind)
        names = set(members) - {_HEADER}
        if names != set(expected):
            missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
            raise ValueError(f"the archive's arrays do not match its header: missing {missing}, unexpected {extra}")
        total = sum(math.prod(shape) * dt.itemsize for dt, shape in expected.values())
        if total > file_size:
            raise ValueError(f"the header implies {total} bytes of arrays but the file has {file_size}: "
                             "truncated or forged")
        check_memory(total, "the model", f"its {len(expected)} arrays")
        into = _network_unfilled(plan) if kind == "Network" else {}
        arrays = {}
        for name, (dt, shape) in expected.items():
            arr = _npy_member(zf, members[name], dt, shape, name, into.get(name))
            if _FINITE.fullmatch(name) and not _core.all_finite(arr):  # no temporary the size of arr
                raise ValueError(f"array {name!r} holds NaN or infinity")
            arrays[name] = arr
    return (_network_build if kind == "Network" else _estimator_build)(plan, arrays)


def load(path):
    """Read a model file written by ``save``; returns a Network, MLPClassifier or MLPRegressor.

    Parameters
    ----------
    path : str or os.PathLike

    Raises
    ------
    TypeError
        ``path`` is not a str or os.PathLike.
    FileNotFoundError
        There is no file at ``path``.
    ValueError
        ``path`` is not a regular file (a directory, a device, a FIFO), or the
        file is not a dnnfast model file, is damaged, forged, or of a newer
        format version than this dnnfast reads (the message says which), or the
        model it holds needs more memory than is available.
    MemoryError
        Memory ran out while reading all the same (the message names ``path``).
    """
    path = check_path(path)
    f = _open_model_file(path)
    try:
        with f:
            return _read(f, os.fstat(f.fileno()).st_size)
    except ValueError as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from exc
    except _ARCHIVE_ERRORS as exc:
        raise ValueError(f"cannot load {path!r}: damaged archive ({type(exc).__name__}: {exc})") from exc
    except MemoryError as exc:  # the checks above make this rare: memory taken meanwhile by others
        raise MemoryError(f"cannot load {path!r}: out of memory while reading the model"
                          f"{f' ({exc})' if str(exc) else ''}") from exc
