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

import errno
import hashlib
import json
import math
import numbers
import os
import re
import stat
import struct
import zipfile
import zlib

try:
    import fcntl
except ImportError:  # Windows: no flock, no stale-temporary cleanup
    fcntl = None

import numpy as np

from . import _core
from ._registry import ACTIVATION_TABLE, LOSS_TABLE
from ._validation import check_memory

FORMAT_NAME = "dnnfast-model"
#: The version this dnnfast writes; it reads every version from 1 up to it.
FORMAT_VERSION = 1

KINDS = ("Network", "MLPClassifier", "MLPRegressor")
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_F64 = np.dtype("<f8")
_I64 = np.dtype("<i8")
_U32 = np.dtype("<u4")
_HEADER = "header"
# Sane bounds on what a header may claim (the file size bounds the rest).
_MAX_LAYERS = 10_000
_MAX_WIDTH = 2**31 - 1
_MAX_DEPTH = 32          # nesting of an estimator parameter's value
# Members a model file can have: W, b, alpha per layer, the header and the estimators' arrays.
_MAX_MEMBERS = 3 * _MAX_LAYERS + 64
# dnnfast's .npy headers are under 128 bytes (numpy pads them to 64); numpy itself refuses
# more than 10,000 only after reading them.
_MAX_NPY_HEADER = 1024
_READ_CHUNK = 1 << 20    # bytes read per call: the transient copy while reading an array
_MT19937_KEYS = 624
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

# What reading a damaged archive can raise from zipfile / numpy.lib.format
# (besides ValueError): each becomes a ValueError naming the file.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, IndexError,
                   struct.error, zlib.error, NotImplementedError, RuntimeError, OverflowError)


# ---------------------------------------------------------------------------
# Paths and atomic writing
# ---------------------------------------------------------------------------

def check_path(path):
    """``path`` as str (or bytes) via ``os.fspath``; anything else is a TypeError naming ``path``."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if len(path) == 0:
        raise ValueError("path is empty")
    return path


def _file_kind(mode):
    """What a non-regular file is, for messages."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return kind
    return "not a regular file"


def _not_regular(path, mode, action):
    return ValueError(f"path {path!r} is {_file_kind(mode)}, not a regular file: {action}")


def _renamed(exc, path, *internal):
    """``exc`` with the user's ``path`` in place of a file name only this module knows
    (the temporary, or the resolved target), or None when it names neither."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    if exc.filename not in internal and exc.filename2 not in internal:
        return None
    return type(exc)(exc.errno, exc.strerror, path)


def _fsync_directory(directory):
    """Make the rename durable where the platform allows opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_archive(f, arrays):
    """The ``.npz`` layout: one stored (uncompressed) ``name.npy`` member per
    array, with a fixed timestamp so the same model gives the same bytes."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)


# Temporaries are named ".dnnfast-HHHHHHHH-RRRRRRRRRRRR.tmp": H, a hash of the
# target's file name, lets a later save of that target find the ones a killed
# save left; R keeps concurrent saves apart. 34 bytes whatever the target's
# name, so any name the file system takes (255 bytes) can be saved to.
_TMP_PREFIX = ".dnnfast-"
_TMP_RANDOM = 12  # hex digits
_TMP_SUFFIX = ".tmp"


def _tmp_stem(base):
    return f"{_TMP_PREFIX}{hashlib.sha256(os.fsencode(base)).hexdigest()[:8]}-"


def _lock(fd):
    """Take the temporary's lock without waiting; False if someone holds it. A save holds
    the lock on its temporary until the rename; the kernel drops it when the process dies,
    which is how a later save tells a dead save's temporary from a running one."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_stale_temporaries(directory, stem):
    """Delete the temporaries of earlier saves of this target that died (SIGKILL, SIGTERM,
    power loss) before renaming or removing them: those of this naming whose lock nobody holds.
    Best effort: whatever cannot be opened, locked or removed is left alone."""
    if fcntl is None:  # without flock a running save's temporary looks the same as a dead one's
        return
    as_bytes = isinstance(directory, bytes)
    want = len(stem) + _TMP_RANDOM + len(_TMP_SUFFIX)
    try:
        entries = os.scandir(directory)
    except OSError:
        return
    with entries:
        for entry in entries:
            name = os.fsdecode(entry.name) if as_bytes else entry.name
            if len(name) != want or not name.startswith(stem) or not name.endswith(_TMP_SUFFIX):
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or not _lock(fd):
                    continue  # a save is writing it
                # Still that file under that name? A save that just finished renamed it onto its target.
                now = os.lstat(entry.path)
                if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                    os.unlink(entry.path)
            except OSError:
                pass
            finally:
                os.close(fd)


def _resolve_target(path):
    """-> (the file a save to ``path`` replaces, its stat or None when there is none yet).

    Symbolic links are followed, as ``open`` would: a save through a link replaces the
    file the link points to and leaves the link. Anything there but a regular file
    (a directory, a device such as /dev/null, a FIFO, a socket) is refused: replacing it
    would destroy it and writing into it would not be a model file."""
    target = os.path.realpath(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target, None
    except OSError as exc:
        raise _renamed(exc, path, target) or exc from None
    if stat.S_ISLNK(st.st_mode):  # realpath stops at a loop of links
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, "a model file is saved only as a regular file")
    return target, st


def _keep_metadata(fd, st):
    """Give the temporary the replaced file's permission bits (and, where allowed, its owner
    and group), so that a save changes the content only. A new file keeps what os.open gave
    it: 0666 less the umask, like any file a program creates."""
    if st is None:
        return
    own = os.fstat(fd)
    if hasattr(os, "fchown") and (own.st_uid, own.st_gid) != (st.st_uid, st.st_gid):
        for uid in (st.st_uid, -1):  # only root may give a file away; a member of its group may keep the group
            try:
                os.fchown(fd, uid, st.st_gid)
                break
            except OSError:
                continue
    if hasattr(os, "fchmod"):  # after fchown, which may clear set-id bits
        os.fchmod(fd, stat.S_IMODE(st.st_mode))


def _create_temporary(directory, stem, path):
    """-> (name, fd) of a new temporary in ``directory``, locked (see ``_lock``)."""
    while True:
        tmp = os.path.join(directory, os.fsencode(stem) if isinstance(directory, bytes) else stem)
        tail = os.urandom(_TMP_RANDOM // 2).hex() + _TMP_SUFFIX
        tmp += os.fsencode(tail) if isinstance(directory, bytes) else tail
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY | _O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _renamed(exc, path, tmp) or exc from None
        # Another save's cleanup may have taken it for stale between the open and the lock.
        try:
            ok = _lock(fd)
            if ok:
                now, st = os.lstat(tmp), os.fstat(fd)
                ok = (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
        except FileNotFoundError:
            ok = False
        except BaseException:
            os.close(fd)
            raise
        if ok:
            return tmp, fd
        os.close(fd)


def atomic_write(path, arrays):
    """Write ``arrays`` (name -> ndarray, ``header`` first) to ``path`` atomically.

    The archive goes to a temporary in the target's directory (so ``os.replace``
    is a rename within one file system), is fsync'ed, then renamed onto the target;
    a failure removes the temporary and leaves the old file as it was. ``path`` may
    be a symbolic link (its target is replaced) and must otherwise be a regular file
    or a new name; the replaced file's permissions are kept. A hard-linked target is
    replaced by a new file: its other names keep the old content. A save killed before
    it could remove its temporary (SIGKILL, or SIGTERM without a handler) leaves it
    behind; the next save of the same target removes it. Every error names ``path``.
    """
    path = check_path(path)
    target, st = _resolve_target(path)
    directory, base = os.path.split(target)
    stem = _tmp_stem(base)
    _remove_stale_temporaries(directory, stem)
    tmp, fd = _create_temporary(directory, stem, path)
    try:
        _keep_metadata(fd, st)
        with os.fdopen(fd, "wb", closefd=False) as f:
            _write_archive(f, arrays)
        os.fsync(fd)
        if fcntl is None:  # Windows renames no open file; there is no lock to hold anyway
            os.close(fd)
            fd = None
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        renamed = _renamed(exc, path, tmp, target)
        if renamed is not None:
            raise renamed from None
        raise
    finally:
        if fd is not None:
            os.close(fd)  # only now: the lock marks the temporary as in use until the rename
    _fsync_directory(directory)


# ---------------------------------------------------------------------------
# Reading the archive
# ---------------------------------------------------------------------------

# The header dict numpy writes (every version: keys sorted, a plain dtype string, a
# tuple of integers). It is matched rather than evaluated: numpy's parser runs
# ast.literal_eval, which a few hundred bytes of nested operators drive into a
# MemoryError or RecursionError.
_NPY_DICT = re.compile(r"\{\s*'descr'\s*:\s*'([<>|=]?[a-zA-Z][0-9]{0,9})'\s*,\s*'fortran_order'\s*:\s*(True|False)"
                       r"\s*,\s*'shape'\s*:\s*\(([0-9L,\s]*)\)\s*,?\s*\}\s*")


def _npy_header(m, what):
    """-> (shape, fortran_order, dtype) from a ``.npy`` member's header, its length bounded
    before it is read and its shape's rank before the shape is converted."""
    magic = m.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise ValueError(f"array {what!r}: not a .npy member")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"array {what!r}: unsupported .npy version {version}")
    size = 2 if version == (1, 0) else 4
    raw_len = m.read(size)
    if len(raw_len) < size:
        raise ValueError(f"array {what!r}: truncated .npy header")
    length = int.from_bytes(raw_len, "little")
    if length > _MAX_NPY_HEADER:
        raise ValueError(f"array {what!r}: .npy header of {length} bytes; a model file's arrays need "
                         f"at most {_MAX_NPY_HEADER}")
    raw = m.read(length)
    if len(raw) < length:
        raise ValueError(f"array {what!r}: truncated .npy header")
    match = _NPY_DICT.fullmatch(raw.decode("latin-1"))
    if match is None:
        raise ValueError(f"array {what!r}: .npy header {raw[:80]!r} is not one numpy writes for a plain array")
    descr, fortran, dims = match.groups()
    dims = [d.strip() for d in dims.split(",")]
    if dims[-1] == "":  # the trailing comma of a tuple
        dims.pop()
    if len(dims) > 2:
        raise ValueError(f"array {what!r}: its .npy header claims a shape of rank {len(dims)}; "
                         "model arrays have 1 or 2 dimensions")
    if not all(re.fullmatch(r"[0-9]{1,19}L?", d) for d in dims):
        raise ValueError(f"array {what!r}: .npy header has a malformed shape {raw[:80]!r}")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise ValueError(f"array {what!r}: unknown dtype {descr!r} in its .npy header") from None
    return tuple(int(d.rstrip("L")) for d in dims), fortran == "True", dtype


def _npy_member(zf, info, dtype, shape, what, out=None):
    """Read one ``.npy`` member whose dtype and shape must be exactly ``dtype``, ``shape``
    (``shape=None``: any 1-D length; the member's size, bounded by the file's, bounds it).

    ``out``: a C-contiguous native-order array of that shape to read into (a view of a
    network's parameters), instead of a new one. The data is read in pieces straight into
    the array: no copy of the member's bytes is ever held whole."""
    with zf.open(info) as m:
        got_shape, fortran, got_dtype = _npy_header(m, what)
        if got_dtype != dtype or got_dtype.hasobject:
            raise ValueError(f"array {what!r}: dtype {got_dtype.str}, expected {dtype.str}")
        if shape is None and len(got_shape) == 1:
            shape = got_shape
        if shape is None or got_shape != tuple(shape):
            raise ValueError(f"array {what!r}: shape {got_shape}, expected "
                             f"{'a 1-D array' if shape is None else tuple(shape)}")
        if fortran and len(shape) > 1:
            raise ValueError(f"array {what!r}: Fortran order is not part of the format")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != m.tell() + nbytes:
            raise ValueError(f"array {what!r}: member holds {info.file_size - m.tell()} data bytes, "
                             f"expected {nbytes}")
        native = dtype.newbyteorder("=") if dtype.kind in "biuf" else dtype
        if out is None:
            out = np.empty(shape, dtype=native)
        elif out.dtype != native or out.shape != tuple(shape) or not out.flags.c_contiguous:
            raise AssertionError(f"array {what!r}: cannot read into {out.dtype} {out.shape}")
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos = 0
        while pos < nbytes:
            n = m.readinto(view[pos:pos + _READ_CHUNK])
            if not n:
                raise ValueError(f"array {what!r}: truncated")
            pos += n
        if m.read(1):  # reading to the end checks the CRC
            raise ValueError(f"array {what!r}: longer than its header says")
    if native != dtype:  # a big-endian machine: the file is little-endian
        out.byteswap(inplace=True)
    return out


def _open_archive(f, file_size):
    """-> (ZipFile, {name: ZipInfo}) after checking the member list."""
    # The member count is bounded before zipfile builds an object for each entry of
    # the central directory (a forged one lists one per 46 bytes of the file).
    end_record = getattr(zipfile, "_EndRecData", lambda f: None)(f)
    if end_record is not None and end_record[4] > _MAX_MEMBERS:  # _ECD_ENTRIES_TOTAL
        raise ValueError(f"the archive lists {end_record[4]} members; a model file has at most {_MAX_MEMBERS}")
    f.seek(0)
    zf = zipfile.ZipFile(f)
    infos = zf.infolist()
    members = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise ValueError(f"unexpected or repeated archive member {name!r}")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise ValueError(f"member {name!r} is compressed or encrypted; the format stores arrays as is")
        # Stored: the directory's two sizes agree, and the member lies within the file.
        if info.compress_size != info.file_size:
            raise ValueError(f"member {name!r} claims {info.file_size} bytes but {info.compress_size} stored")
        if info.header_offset + info.file_size > file_size:
            raise ValueError(f"member {name!r} claims {info.file_size} bytes at offset {info.header_offset}, "
                             f"beyond the file's {file_size} bytes")
        members[name[:-4]] = info
    if _HEADER not in members:
        raise ValueError("no 'header' member: not a dnnfast model file")
    total = sum(info.file_size for info in infos)
    if total > file_size:
        raise ValueError(f"the archive claims {total} bytes of members but the file has {file_size}")
    return zf, members


def _parse_header(zf, info):
    raw = _npy_member(zf, info, np.dtype("|u1"), None, _HEADER)
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("header is not UTF-8") from None

    def no_constants(name):
        raise ValueError(f"header: {name} is not allowed (non-finite numbers are written as tags)")

    try:
        header = json.loads(text, parse_constant=no_constants)
    except RecursionError:
        raise ValueError("header: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError(f"header must be a JSON object, got {type(header).__name__}")
    return header


# ---------------------------------------------------------------------------
# Checked access to header fields
# ---------------------------------------------------------------------------

def _field(d, key, kind, where, optional=False):
    """``d[key]`` checked to be of ``kind`` (int, float, bool, str, list, dict, 'float?', 'int?')."""
    if key not in d:
        if optional:
            return None
        raise ValueError(f"{where}: missing field {key!r}")
    v = d[key]
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}.{key} must be a number, got {v!r:.60}")
        try:
            v = float(v)
        except OverflowError:  # an integer beyond the float range
            v = math.inf
        if not math.isfinite(v):
            raise ValueError(f"{where}.{key} must be finite, got {v}")
        return v
    if kind == int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{where}.{key} must be an integer, got {v!r:.60}")
        return v
    if not isinstance(v, kind):
        raise ValueError(f"{where}.{key} must be a {kind.__name__}, got {type(v).__name__}")
    return v


def _check_keys(d, required, optional, where):
    unknown = set(d) - set(required) - set(optional)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")


def _count(d, key, where, lo=0, hi=2**40, optional=False):
    v = _field(d, key, int, where, optional)
    if v is not None and not lo <= v <= hi:
        raise ValueError(f"{where}.{key} must lie in [{lo}, {hi}], got {v}")
    return v


# Non-finite floats and Python's tuple/dict have no JSON form: tagged objects.
def encode_value(value, where):
    """A parameter value -> JSON (tagged: {"float": "inf"}, {"tuple": [...]}, {"dict": [[k, v], ...]})."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v, where) for v in value]}
    if isinstance(value, list):
        return [encode_value(v, where) for v in value]
    if isinstance(value, dict):
        return {"dict": [[encode_value(k, where), encode_value(v, where)] for k, v in value.items()]}
    raise TypeError(f"cannot save {where}: values of type {type(value).__name__} have no file form "
                    "(numbers, strings, None, lists, tuples and dicts of them do)")


def decode_value(v, where, depth=0):
    """The inverse of :func:`encode_value`, refusing anything it cannot have written."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: nested too deeply")
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if abs(v) > 2**63:
            raise ValueError(f"{where}: integer out of range")
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{where}: non-finite number outside a tag")
        return v
    if isinstance(v, list):
        return [decode_value(x, where, depth + 1) for x in v]
    if isinstance(v, dict) and len(v) == 1:
        (tag, body), = v.items()
        if tag == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag == "tuple" and isinstance(body, list):
            return tuple(decode_value(x, where, depth + 1) for x in body)
        if tag == "dict" and isinstance(body, list):
            out = {}
            for pair in body:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError(f"{where}: a dict entry must be a [key, value] pair")
                key = decode_value(pair[0], where, depth + 1)
                try:
                    hash(key)
                except TypeError:
                    raise ValueError(f"{where}: unhashable dict key {key!r:.60}") from None
                out[key] = decode_value(pair[1], where, depth + 1)
            return out
    raise ValueError(f"{where}: unknown value form {v!r:.80}")


# ---------------------------------------------------------------------------
# The network part, shared by every kind
# ---------------------------------------------------------------------------

def _activation_entry(spec):
    return {"name": spec.name, "alpha": spec.param} if spec.has_param else {"name": spec.name}


def _check_architecture(header, kind):
    """-> (sizes, [(name, alpha or None)], loss, np.dtype, fused) from a checked header."""
    dtype_name = _field(header, "dtype", str, "header")
    if dtype_name not in _DTYPES:
        raise ValueError(f"header.dtype must be 'float32' or 'float64', got {dtype_name!r:.40}")
    sizes = _field(header, "sizes", list, "header")
    if not 2 <= len(sizes) <= _MAX_LAYERS + 1:
        raise ValueError(f"header.sizes must hold 2..{_MAX_LAYERS + 1} layer sizes, got {len(sizes)}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= _MAX_WIDTH:
            raise ValueError(f"header.sizes must hold integers in [1, {_MAX_WIDTH}], got {s!r:.40}")
    acts = _field(header, "activations", list, "header")
    if len(acts) != len(sizes) - 1:
        raise ValueError(f"header.activations needs {len(sizes) - 1} entries, got {len(acts)}")
    specs = []
    for i, a in enumerate(acts):
        where = f"header.activations[{i}]"
        if not isinstance(a, dict):
            raise ValueError(f"{where} must be an object")
        name = _field(a, "name", str, where)
        if name not in ACTIVATION_TABLE:
            raise ValueError(f"{where}: unknown activation {name!r:.40}")
        has_param = ACTIVATION_TABLE[name][1]
        _check_keys(a, ["name", "alpha"] if has_param else ["name"], [], where)
        specs.append((name, _field(a, "alpha", "float", where) if has_param else None))
    loss = _field(header, "loss", str, "header")
    allowed = {"Network": set(LOSS_TABLE), "MLPClassifier": {"cce", "bce"},
               "MLPRegressor": {"sse", "poisson"}}[kind]
    if loss not in allowed:
        raise ValueError(f"header.loss must be one of {sorted(allowed)} for {kind}, got {loss!r:.40}")
    if kind == "MLPRegressor" and loss == "poisson" and specs[-1] == ("identity", None):
        # Files written before exp joined the core's registry stored the
        # Poisson output as identity (exp was applied outside the core).
        specs[-1] = ("exp", None)
    fused = _field(header, "fused", bool, "header")
    if kind != "Network" and not fused:
        raise ValueError("header.fused must be true for the estimators")
    return sizes, specs, loss, _DTYPES[dtype_name], fused


def _parameter_arrays(sizes, specs, dtype):
    """{name: (dtype, shape)} of the per-layer parameters: W{l}, b{l}, alpha{l} (prelu), l = 1..L."""
    out = {}
    for l, (m_in, m_out, (name, _)) in enumerate(zip(sizes[:-1], sizes[1:], specs), start=1):
        out[f"W{l}"] = (dtype, (m_in, m_out))
        out[f"b{l}"] = (dtype, (m_out,))
        if ACTIVATION_TABLE[name][3]:
            out[f"alpha{l}"] = (dtype, (m_out,))
    return out


def _num_params(sizes, specs):
    return sum(m_in * m_out + m_out + (m_out if ACTIVATION_TABLE[name][3] else 0)
               for m_in, m_out, (name, _) in zip(sizes[:-1], sizes[1:], specs))


def _canonical_order(layout):
    """Indices of the core's flat buffer in the file's order: per layer W (row-major), b, alpha."""
    parts = []
    for lay in layout:
        parts.append(np.arange(lay["w_offset"], lay["w_offset"] + lay["m_in"] * lay["m_out"]))
        parts.append(np.arange(lay["b_offset"], lay["b_offset"] + lay["m_out"]))
        if lay["alpha_offset"] is not None:
            parts.append(np.arange(lay["alpha_offset"], lay["alpha_offset"] + lay["m_out"]))
    return np.concatenate(parts).astype(np.intp)


def _base_header(kind, sizes, specs, loss, dtype, fused):
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "dnnfast_version": _core.__version__,
            "kind": kind, "dtype": np.dtype(dtype).name, "sizes": [int(s) for s in sizes],
            "activations": [_activation_entry(s) for s in specs], "loss": loss, "fused": bool(fused)}


_BASE_FIELDS = ["format", "format_version", "dnnfast_version", "kind", "dtype", "sizes", "activations", "loss",
                "fused"]


def _header_array(header):
    text = json.dumps(header, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _le(a, dtype):
    """``a`` as a C-contiguous little-endian array of ``dtype``'s kind and size."""
    return np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

def _rng_state(rng):
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise ValueError(f"cannot save a network whose generator is {st.get('bit_generator')}; "
                         "only PCG64 (numpy.random.default_rng) has a file form")
    return {"bit_generator": "PCG64", "state": hex(st["state"]["state"]), "inc": hex(st["state"]["inc"]),
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def _check_rng(d):
    if not isinstance(d, dict):
        raise ValueError("header.rng must be an object")
    _check_keys(d, ["bit_generator", "state", "inc", "has_uint32", "uinteger"], [], "header.rng")
    if d["bit_generator"] != "PCG64":
        raise ValueError(f"header.rng.bit_generator must be 'PCG64', got {d['bit_generator']!r:.40}")
    out = {}
    for key in ("state", "inc"):
        v = _field(d, key, str, "header.rng")
        if not re.fullmatch(r"0x[0-9a-f]{1,32}", v):
            raise ValueError(f"header.rng.{key} must be a hex string of at most 128 bits")
        out[key] = int(v, 16)
    has = _count(d, "has_uint32", "header.rng", 0, 1)
    uint = _count(d, "uinteger", "header.rng", 0, 2**32 - 1)
    return {"bit_generator": "PCG64", "state": out, "has_uint32": has, "uinteger": uint}


def network_file(net, training=None):
    """(header, arrays) of a Network; ``training``: an optional training-state
    record (header part, arrays in the core's order) from dnnfast._train."""
    header = _base_header("Network", net.sizes, net._acts, net.loss, net.dtype, net.fused)
    header["rng"] = _rng_state(net._rng)
    extra = {}
    if training is not None:
        header["training"], extra = _training_header(net, *training)
    arrays = {_HEADER: _header_array(header)}
    for l, (W, b, a) in enumerate(zip(net.weights, net.biases, net.alphas), start=1):
        arrays[f"W{l}"] = _le(W, net.dtype)
        arrays[f"b{l}"] = _le(b.ravel(), net.dtype)
        if a is not None:
            arrays[f"alpha{l}"] = _le(a, net.dtype)
    arrays.update(extra)
    return arrays


def _network_expected(header):
    _check_keys(header, _BASE_FIELDS + ["rng"], ["training"], "header")
    sizes, specs, loss, dtype, fused = _check_architecture(header, "Network")
    rng = _check_rng(header["rng"])
    plan = {"sizes": sizes, "specs": specs, "loss": loss, "dtype": dtype, "fused": fused, "rng": rng}
    expected = _parameter_arrays(sizes, specs, dtype)
    if "training" in header:
        plan["training"], arrays = _check_training(header["training"], _num_params(sizes, specs), dtype)
        expected.update(arrays)
    return plan, expected


def _network_unfilled(plan):
    """-> {parameter array name: the view of the new network's parameters it is read into}.

    The network (``plan["net"]``) is built with zeros for parameters, not drawn ones,
    and the file's arrays are read straight into them: loading holds the model once,
    never a second copy or an initialisation's float64 draw."""
    from .network import Network

    acts = [name if alpha is None else (name, {"alpha": alpha}) for name, alpha in plan["specs"]]
    net = Network._unfilled(plan["sizes"], acts, plan["loss"], plan["dtype"].name, plan["fused"])
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
    net = plan["net"]  # its parameters already hold the file's arrays
    net._rng.bit_generator.state = plan["rng"]
    if "training" in plan:  # a checkpoint: fit(..., checkpoint=path, resume=True) takes it up
        record = dict(plan["training"])
        order = _canonical_order(net._layout)
        record["arrays"] = {}
        for name in _TRAINING_ARRAYS:
            if name in arrays:
                flat = np.empty(net.num_params, dtype=net.dtype)
                flat[order] = arrays[name]
                record["arrays"][name] = flat
        net._checkpoint = record
    return net


# ---------------------------------------------------------------------------
# Training state (optional members of a Network file: a checkpoint)
# ---------------------------------------------------------------------------

_TRAINING_ARRAYS = ("train_state1", "train_state2", "train_best_params")
_TRAINING_FIELDS = ["epoch", "step", "optimizer", "t", "stopped", "wait", "best", "best_epoch", "history",
                    "settings", "rng", "best_params"]


def _training_header(net, header, arrays):
    """The header's ``training`` object and the arrays (canonical order) of a record."""
    order = _canonical_order(net._layout)
    out = dict(header)
    out["rng"] = _rng_state(header["rng"])
    out["best"] = encode_value(header["best"], "training.best")
    out["history"] = {k: [encode_value(float(x), "training.history") for x in v] for k, v in header["history"].items()}
    out["settings"] = [[k, encode_value(v, "training.settings")] for k, v in header["settings"]]
    return out, {name: _le(a[order], net.dtype) for name, a in arrays.items()}


def _check_training(d, num_params, dtype):
    """Check a header's ``training`` object -> (record, {array name: (dtype, shape)})."""
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
    best = decode_value(d["best"], f"{where}.best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        raise ValueError(f"{where}.best must be a number or null")
    rec["best"] = None if best is None else float(best)
    rec["best_epoch"] = _count(d, "best_epoch", where, optional=True) if d["best_epoch"] is not None else None
    hist = _field(d, "history", dict, where)
    rec["history"] = {}
    for k, v in hist.items():
        if not isinstance(v, list):
            raise ValueError(f"{where}.history.{k:.40} must be a list")
        vals = [decode_value(x, f"{where}.history") for x in v]
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in vals):
            raise ValueError(f"{where}.history.{k:.40} must hold numbers")
        rec["history"][k] = [float(x) for x in vals]
    settings = _field(d, "settings", list, where)
    if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in settings):
        raise ValueError(f"{where}.settings must be a list of [name, value] pairs")
    rec["settings"] = [(k, decode_value(v, f"{where}.settings")) for k, v in settings]
    rec["rng"] = _check_rng(d["rng"])
    buffers = OPTIMIZER_TABLE[rec["optimizer"]][1]
    arrays = {}
    if buffers >= 1:
        arrays["train_state1"] = (dtype, (num_params,))
    if buffers >= 2:
        arrays["train_state2"] = (dtype, (num_params,))
    if _field(d, "best_params", bool, where):
        arrays["train_best_params"] = (dtype, (num_params,))
    return rec, arrays


# ---------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------

_CLASSES_DTYPE = re.compile(r"(\|b1|[<|][iu][1248]|<f[48]|<U[1-9][0-9]{0,5})")


def _encode_params(est, arrays):
    params = {}
    for key, value in est.get_params(deep=False).items():
        if key == "random_state" and isinstance(value, np.random.RandomState):
            name, keys, pos, has_gauss, cached = value.get_state()
            arrays["random_state_keys"] = _le(keys, _U32)
            params[key] = {"RandomState": {"pos": int(pos), "has_gauss": int(has_gauss),
                                           "cached_gaussian": float(cached)}}
        else:
            params[key] = encode_value(value, f"parameter {key!r}")
    return params


def _list_or_none(v):
    return None if v is None else [float(x) for x in v]


def estimator_file(est):
    """(arrays with the header first) of a fitted MLPClassifier or MLPRegressor."""
    est._check_fitted()
    kind = type(est).__name__
    if kind not in KINDS[1:]:
        raise TypeError(f"cannot save a {kind}")
    dtype = est.coefs_[0].dtype
    sizes, specs, loss = est._architecture()
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
        names = np.asarray([str(n) for n in names], dtype=str)
        fitted["feature_names_in"] = names.dtype.itemsize // 4
        arrays["feature_names_in"] = _le(names, names.dtype)
    for l, (W, b, a) in enumerate(zip(est.coefs_, est.intercepts_, est._alphas()), start=1):
        arrays[f"W{l}"] = _le(W, dtype)
        arrays[f"b{l}"] = _le(b, dtype)
        if a is not None:
            arrays[f"alpha{l}"] = _le(a, dtype)
    order = _canonical_order(est._core_net(dtype).layout())
    opt = d.get("_optimizer")
    if opt is not None:
        fitted["optimizer"] = {"learning_rate": float(opt["learning_rate"]), "adam": opt["state2"] is not None}
        arrays["optimizer_state1"] = _le(opt["state1"][order], dtype)
        if opt["state2"] is not None:
            arrays["optimizer_state2"] = _le(opt["state2"][order], dtype)
        arrays["optimizer_t"] = _le(opt["t"], _I64)
    best = d.get("_best_params")
    if best is not None:
        fitted["best_params"] = True
        arrays["best_params"] = _le(best[order], dtype)
    if kind == "MLPClassifier":
        lb = est._label_binarizer
        classes = np.asarray(est.classes_)
        as_object = classes.dtype.kind == "O"
        if as_object:  # string labels given as Python objects stay objects
            if not all(isinstance(c, str) for c in classes):
                raise TypeError("cannot save a classifier whose class labels are Python objects other than "
                                "str (numbers, bools and strings have a file form)")
            classes = classes.astype(str)
        if classes.dtype.kind not in "biufU":
            raise TypeError(f"cannot save class labels of dtype {classes.dtype}")
        classes = _le(classes, classes.dtype)
        fitted["classes"] = {"dtype": classes.dtype.str, "length": int(classes.size), "as_object": as_object}
        fitted["y_type"] = lb.y_type_
        fitted["sparse_input"] = bool(getattr(lb, "sparse_input_", False))
        arrays["classes"] = classes
    header["fitted"] = fitted
    return {_HEADER: _header_array(header), **arrays}


def _estimator_expected(header, kind):
    _check_keys(header, _BASE_FIELDS + ["params", "fitted"], [], "header")
    sizes, specs, loss, dtype, fused = _check_architecture(header, kind)
    expected = _parameter_arrays(sizes, specs, dtype)
    n_params = _num_params(sizes, specs)
    params_raw = _field(header, "params", dict, "header")
    params, random_state = {}, None
    for key, value in params_raw.items():
        where = f"header.params.{key}"
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
            v = decode_value(f[key], f"{w}.{key}")
            if not (v is None and key != "loss") and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"{w}.{key} must be a number{'' if key == 'loss' else ' or null'}")
            fit[key] = v if v is None else float(v)
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
        _check_keys(opt, ["learning_rate", "adam"], [], f"{w}.optimizer")
        lr = _field(opt, "learning_rate", "float", f"{w}.optimizer")
        adam = _field(opt, "adam", bool, f"{w}.optimizer")
        fit["optimizer"] = (lr, adam)
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
            raise ValueError(f"{w}.classes.dtype must be a bool, integer, float or str dtype, got {cdt!r:.40}")
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


def _estimator_build(plan, arrays):
    from ._estimators._compat import check_random_state
    from ._estimators._classifier import MLPClassifier
    from ._estimators._regressor import MLPRegressor
    from ._estimators._progress import TrainingHistory
    from ._estimators._targets import LabelBinarizer

    kind, fit, sizes = plan["kind"], plan["fitted"], plan["sizes"]
    cls = MLPClassifier if kind == "MLPClassifier" else MLPRegressor
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
        est._check_params()
        try:
            check_random_state(est.random_state)
        except ValueError as exc:
            raise ValueError(f"random_state: {exc}") from None
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
    order = _canonical_order(net.layout())

    def core_order(canonical):
        P = np.empty(net.num_params, dtype=dtype)
        P[order] = canonical
        return P

    if "optimizer" in fit:
        lr, adam = fit["optimizer"]
        t = arrays["optimizer_t"]
        if t[0] < 0:
            raise ValueError("array 'optimizer_t' must be >= 0")
        est._optimizer = {"learning_rate": lr, "state1": core_order(arrays["optimizer_state1"]),
                          "state2": core_order(arrays["optimizer_state2"]) if adam else None, "t": t}
    if "best_params" in arrays:
        est._best_params = core_order(arrays["best_params"])
    est._bind_loaded()  # coefs_ & co become views of one flat buffer, as after fit
    return est


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


def _open_model_file(path):
    """``path`` opened for reading, refusing anything but a regular file (after symbolic links).

    Reading /dev/zero or a FIFO as an archive would never end (or never start), and opening
    some devices acts on them: the kind is checked before the open, the open cannot block
    (O_NONBLOCK), and the opened file is checked again in case it was swapped in between."""
    def cannot(exc):
        if isinstance(exc, FileNotFoundError):
            return exc
        return ValueError(f"cannot read model file {path!r}: {exc}")

    try:
        st = os.stat(path)
    except OSError as exc:
        raise cannot(exc) from exc
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, "a model file is a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise cannot(exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode, "a model file is a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
