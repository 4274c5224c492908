"""The model-file archive: the bottom layer of ``save`` and ``load``.

A model file is a ``.npz`` archive that NumPy alone can read
(``np.load(path, allow_pickle=False)``): a ``header`` member holding a UTF-8
JSON document as a uint8 array, and plain little-endian numeric arrays. The
format is documented in ``docs/model_files.md``. This module holds what every
kind of model shares: the archive reader and writer, the checked header
fields, the value encoding and the network part of the header. Each class's
codec lives beside the class (``_network_file.py``, ``_estimators/_file.py``)
and ``_model_files.load`` dispatches on the header's kind; this module imports
nothing of dnnfast above ``_core``, ``_registry`` and ``_validation``. Nothing
is pickled, in either direction.

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

import contextlib
import errno
import hashlib
import json
import math
import numbers
import io
import os
import re
import stat
import struct
import typing
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
#: 2: a checkpoint's history is arrays (train_history_*), no longer lists in the header.
FORMAT_VERSION = 2

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
# The layer count is the header's, which is read only after the directory: the most layers
# a header may describe bound the count before (the header's arrays then fix the names).
_MAX_MEMBERS = 3 * _MAX_LAYERS + 64
# Bytes of a central directory entry: the fixed 46, a name (dnnfast's are under 32 bytes) and
# an extra field (a zip64 one is at most 32), each with room to spare. zipfile parses the
# directory by its byte size, whatever count the end record gives: the size is bounded by
# the count, so the entries parsed are bounded by it too.
_MAX_ENTRY = 46 + 64 + 64
# dnnfast's .npy headers are under 128 bytes (numpy pads them to 64); numpy itself refuses
# more than 10,000 only after reading them.
_MAX_NPY_HEADER = 1024
# The header's JSON text, in bytes, bounded before it is read: parsing takes up to about
# 25 times the text in memory ("[]," becomes a 64-byte list). A network's architecture
# makes at most about 1.4 MB of it (10,000 layers of the widest width, each activation
# with an alpha, an estimator's params repeating them); the rest grows with a class_weight's
# classes (a checkpoint's history is arrays: since format version 2 it does not grow with
# the epochs). Save refuses a longer header (check_loadable).
_MAX_HEADER = 16 << 20
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
    """``path`` as str (or bytes) via ``os.fspath``; anything else is a TypeError naming ``path``.

    A NUL byte (which no file name holds), a trailing separator and a last component
    ``.`` or ``..`` (a directory's name, where a file is meant: a save to ``"out/model/"``
    or ``"out/model/."`` would otherwise create ``out/model``) are ValueErrors naming
    the path."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if len(path) == 0:
        raise ValueError("path is empty")
    text = os.fsdecode(path)
    if "\0" in text:
        raise ValueError(f"path {path!r} holds a NUL byte")
    if text.endswith(_SEPARATORS):
        raise ValueError(f"path {path!r} ends with a separator: it names a directory, not a file")
    last = _components(text)[-1]
    if last in (os.curdir, os.pardir):
        raise ValueError(f"path {path!r} ends with {last!r}: it names a directory, not a file")
    return path


_SEPARATORS = tuple(sep for sep in (os.sep, os.altsep) if sep)


def _components(text):
    return re.split("|".join(map(re.escape, _SEPARATORS)), text)


def _check_parents(path):
    """The OS resolves ``a/../b`` through ``a``, which must be a directory; os.path.realpath
    drops the pair by its text, and a save would write ``b`` where open() fails. Each part
    before a ``..`` is checked as the OS would: FileNotFoundError, NotADirectoryError,
    PermissionError naming ``path``."""
    text = os.fsdecode(path)
    start = 0
    for part in _components(text):
        if part == os.pardir and start > 0:
            prefix = text[:start]  # ends with a separator: stat wants a directory there
            prefix = os.fsencode(prefix) if isinstance(path, bytes) else prefix
            try:
                os.stat(prefix)
            except OSError as exc:
                raise _renamed(exc, path, prefix) or exc from None
        start += len(part) + 1


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
    (the temporary, or the resolved target), or given one where it had none (a
    write or fsync on a full disk: ENOSPC); None when it names another file."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    if exc.filename is not None and exc.filename not in internal and exc.filename2 not in internal:
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


def _write_npy(member, arr):
    """One ``.npy`` member: the header numpy.save writes (version 1.0), then the
    array's bytes handed to the archive as they lie (np.lib.format.write_array
    copies a file-like target's data in chunks of up to 16 MiB first)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.hasobject:
        raise AssertionError("object arrays are no part of the format")
    np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(arr))
    member.write(memoryview(arr.reshape(-1).view(np.uint8)))


def _write_archive(f, arrays):
    """The ``.npz`` layout: one stored (uncompressed) ``name.npy`` member per
    array, with a fixed timestamp so the same model gives the same bytes."""
    zf = zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    try:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as member:
                _write_npy(member, arr)
    except BaseException:
        # Not `with`: after an error (a Ctrl-C inside a member's open or close)
        # the ZipFile's close raised its own ValueError ("open writing handle")
        # in place of the error. The caller discards the temporary; without its
        # file the ZipFile's close (at once, or when it is collected) does nothing.
        zf.fp = None
        raise
    zf.close()


# Temporaries are named ".dnnfast-HHHHHHHH-RRRRRRRRRRRR.tmp": H, a hash of the
# target's file name, lets a later save of that target find the ones a killed
# save left; R keeps concurrent saves apart. 34 bytes whatever the target's
# name, so any name the file system takes (255 bytes) can be saved to.
_TMP_PREFIX = ".dnnfast-"
_TMP_RANDOM = 12  # hex digits
_TMP_SUFFIX = ".tmp"


def _tmp_stem(base):
    return f"{_TMP_PREFIX}{hashlib.sha256(os.fsencode(base)).hexdigest()[:8]}-"


# flock's answers when another process holds the lock; any other error (ENOLCK on NFS
# without lockd, ENOSYS or EOPNOTSUPP on some FUSE file systems) means the file system
# has no locks, which no retry changes.
_HELD = frozenset({errno.EWOULDBLOCK, errno.EAGAIN})


def _lock(fd):
    """Take the temporary's lock without waiting: True when taken, False if someone holds it,
    None where the file system has no locks. A save holds the lock on its temporary until the
    rename; the kernel drops it when the process dies, which is how a later save tells a dead
    save's temporary from a running one. Without locks a save goes ahead unlocked and no
    temporary is taken for stale."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return False if exc.errno in _HELD else None
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
                if not stat.S_ISREG(st.st_mode):
                    continue
                locked = _lock(fd)
                if locked is None:  # no locks here: a running save's temporary looks the same
                    return
                if not locked:
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
    _check_parents(path)
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


# Tries at a temporary: a name taken (48 random bits: never in practice) or a fresh
# temporary taken for stale by another save's cleanup (a rare race) costs one each.
_TMP_TRIES = 100


def _discard(tmp, raw):
    """Close and remove a temporary of ours: only if the name is still that file."""
    try:
        st, now = os.fstat(raw.fileno()), os.lstat(tmp)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(tmp)
    except OSError:
        pass
    finally:
        raw.close()


def _create_temporary(directory, stem, path):
    """-> (name, raw) of a new temporary in ``directory``: ``raw`` an ``io.FileIO``
    owning its descriptor, locked (see ``_lock``; unlocked where the file system has
    no locks). Every failure removes what it created."""
    for _ in range(_TMP_TRIES):
        tmp = os.path.join(directory, os.fsencode(stem) if isinstance(directory, bytes) else stem)
        tail = os.urandom(_TMP_RANDOM // 2).hex() + _TMP_SUFFIX
        tmp += os.fsencode(tail) if isinstance(directory, bytes) else tail
        try:
            # FileIO, not os.open: the descriptor is an object's from the moment it
            # exists (mode "x": O_CREAT | O_EXCL, 0666 less the umask, close-on-exec),
            # so a signal handler's exception as the open returns drops the object and
            # closes it, where a bare descriptor was lost.
            raw = io.FileIO(tmp, "xb")
        except FileExistsError:
            continue
        except OSError as exc:
            raise _renamed(exc, path, tmp) or exc from None
        except BaseException:
            # A signal handler's exception (SystemExit from a SIGTERM handler)
            # raised as the open returned, before raw was bound: the file, if
            # made, is this call's (O_EXCL, a random name); no temporary is left
            # beside the target.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # Another save's cleanup may have taken it for stale between the open and the lock.
        try:
            ok = _lock(raw.fileno()) is not False
            if ok:
                now, st = os.lstat(tmp), os.fstat(raw.fileno())
                ok = (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
        except FileNotFoundError:
            ok = False
        except BaseException:
            _discard(tmp, raw)
            raise
        if ok:
            return tmp, raw
        _discard(tmp, raw)
    raise OSError(errno.EAGAIN, "no temporary file could be created and locked beside it in "
                  f"{_TMP_TRIES} tries", path)


def atomic_write(path, arrays):
    """Write ``arrays`` (name -> ndarray, ``header`` first) to ``path`` atomically
    (:func:`atomic_write_with`)."""
    atomic_write_with(path, lambda f: _write_archive(f, arrays))


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes: an ONNX model) to ``path`` atomically (:func:`atomic_write_with`)."""
    atomic_write_with(path, lambda f: f.write(data))


def check_writable(path):
    """Raise now what a save to ``path`` would raise at its end: a file name
    longer than its folder allows (the rename's ENAMETOOLONG), or a folder in
    which no file can be made. Makes and removes a temporary as a save does."""
    path = check_path(path)
    target, _ = _resolve_target(path)
    directory, base = os.path.split(target)
    try:
        name_max = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or no limit given
        name_max = None
    if name_max is not None and len(os.fsencode(base)) > name_max:
        raise OSError(errno.ENAMETOOLONG, f"{os.strerror(errno.ENAMETOOLONG)} (the file name is longer than "
                      f"{name_max} bytes)", path)
    tmp, raw = _create_temporary(directory, _tmp_stem(base), path)
    raw.close()
    os.unlink(tmp)


def atomic_write_with(path, write):
    """Replace ``path`` atomically by what ``write(f)`` writes to a binary file ``f``.

    The content goes to a temporary in the target's directory (so ``os.replace``
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
    tmp, raw = _create_temporary(directory, stem, path)
    try:
        fd = raw.fileno()
        _keep_metadata(fd, st)
        with os.fdopen(fd, "wb", closefd=False) as f:
            write(f)
        os.fsync(fd)
        if fcntl is None:  # Windows renames no open file; there is no lock to hold anyway
            raw.close()
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
        raw.close()  # only now: the lock marks the temporary as in use until the rename
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


def _npy_member(zf, info, dtype, shape, what, out=None, check_length=None):
    """Read one ``.npy`` member whose dtype and shape must be exactly ``dtype``, ``shape``
    (``shape=None``: any 1-D length that ``check_length(length)`` accepts, before the
    data is read).

    ``out``: a C-contiguous native-order array of that shape to read into (a view of a
    network's parameters), instead of a new one. The data is read in pieces straight into
    the array: no copy of the member's bytes is ever held whole."""
    with zf.open(info) as m:
        got_shape, fortran, got_dtype = _npy_header(m, what)
        if got_dtype != dtype or got_dtype.hasobject:
            raise ValueError(f"array {what!r}: dtype {got_dtype.str}, expected {dtype.str}")
        if shape is None and len(got_shape) == 1:
            check_length(got_shape[0])
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
    if dtype.kind == "U" and out.size:
        # A string array's UCS-4 units past U+10FFFF are no character: numpy keeps
        # them, and the first tolist() or print of the array raises SystemError.
        units = out.reshape(-1).view(_U32)  # (the file's '<U', read as it lies)
        if int(units.max()) > 0x10FFFF:
            raise ValueError(f"array {what!r} holds a code point above U+10FFFF, which is no character")
    return out


def _open_archive(f, file_size):
    """-> (ZipFile, its ZipInfos), the directory bounded before zipfile parses it."""
    # The member count is bounded before zipfile builds an object for each entry of
    # the central directory (a forged one lists one per 46 bytes of the file).
    end_record = getattr(zipfile, "_EndRecData", lambda f: None)(f)
    if end_record is not None:
        count, size = end_record[4], end_record[5]  # _ECD_ENTRIES_TOTAL, _ECD_SIZE
        if count > _MAX_MEMBERS:
            raise ValueError(f"the archive lists {count} members; a model file has at most {_MAX_MEMBERS}")
        if size > _MAX_ENTRY * count:
            raise ValueError(f"the archive's central directory is {size} bytes for the {count} members its end "
                             f"record lists; a model file's takes at most {_MAX_ENTRY} bytes a member")
    f.seek(0)
    zf = zipfile.ZipFile(f)
    return zf, zf.infolist()


def _unstored(info, file_size):
    """Why member ``info`` is not one this format stores, or None."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return f"member {name!r} is compressed or encrypted; the format stores arrays as is"
    # Stored: the directory's two sizes agree, and the member lies within the file.
    if info.compress_size != info.file_size:
        return f"member {name!r} claims {info.file_size} bytes but {info.compress_size} stored"
    if info.header_offset + info.file_size > file_size:
        return (f"member {name!r} claims {info.file_size} bytes at offset {info.header_offset}, "
                f"beyond the file's {file_size} bytes")
    return None


def _readable_header(infos, file_size):
    """The one ``header.npy`` member when it is stored as the format stores it, else None."""
    found = [info for info in infos if info.filename == _HEADER + ".npy"]
    if len(found) != 1 or _unstored(found[0], file_size) is not None:
        return None
    return found[0]


def _check_members(infos, file_size):
    """-> {name: ZipInfo} after checking the member list."""
    members = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise ValueError(f"unexpected or repeated archive member {name!r}")
        problem = _unstored(info, file_size)
        if problem is not None:
            raise ValueError(problem)
        members[name[:-4]] = info
    if _HEADER not in members:
        raise ValueError("no 'header' member: not a dnnfast model file")
    total = sum(info.file_size for info in infos)
    if total > file_size:
        raise ValueError(f"the archive claims {total} bytes of members but the file has {file_size}")
    return members


# Digits of a JSON integer in the header: Python's default bound on int(str), whose
# conversion time is quadratic in them, kept whatever the interpreter's setting (its
# own error named neither the header nor the rule). No field holds more than 19 (larger
# integers are {"int": hex} tags); a float field's integer beyond 309 is refused as infinite.
_MAX_INT_DIGITS = 4300


def _parse_int(text):
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"header: an integer of {digits} digits is too long; a model file's have at most "
                         f"{_MAX_INT_DIGITS}")
    return int(text)


def _parse_object(pairs):
    """A JSON object of the header as a dict, refusing a key given twice: json keeps
    the last, so two readers (or a reader and a person) could read two headers."""
    d = dict(pairs)
    if len(d) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"header: the key {key!r:.40} appears twice in one object")
            seen.add(key)
    return d


def _parse_header(zf, info):
    raw = _npy_member(zf, info, np.dtype("|u1"), None, _HEADER, check_length=_check_header_length)
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("header is not UTF-8") from None

    def no_constants(name):
        raise ValueError(f"header: {name} is not allowed (non-finite numbers are written as tags)")

    try:
        header = json.loads(text, parse_constant=no_constants, parse_int=_parse_int,
                            object_pairs_hook=_parse_object)
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
# Integers beyond 2**63 in magnitude (scikit-learn takes a max_iter of 2**64) are
# tagged hex strings: a JSON integer's digits cost the reader quadratic time and
# Python refuses more than 4300 of them, hex text converts in linear time.
_MAX_PLAIN_INT = 2**63
_HEX_INT = re.compile(r"-?0x[1-9a-f][0-9a-f]*")


def encode_value(value, where):
    """A parameter value -> JSON (tagged: {"float": "inf"}, {"int": "0x..."} beyond
    2**63 in magnitude, {"tuple": [...]}, {"dict": [[k, v], ...]})."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, numbers.Integral):
        value = int(value)
        return value if abs(value) <= _MAX_PLAIN_INT else {"int": hex(value)}
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


def decode_number(v, where, nullable=False):
    """A header's float field (a number, or null where ``nullable``) -> float or None.
    An integer beyond the float range (an {"int": hex} tag) is refused naming it."""
    v = decode_value(v, where)
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where} must be a number{' or null' if nullable else ''}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{where}: an integer beyond the float range") from None


def decode_value(v, where, depth=0):
    """The inverse of :func:`encode_value`, refusing anything it cannot have written."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: nested too deeply")
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if abs(v) > _MAX_PLAIN_INT:
            raise ValueError(f"{where}: integer out of range (beyond 2**63: written as an {{\"int\": hex}} tag)")
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
        if tag == "int" and isinstance(body, str) and _HEX_INT.fullmatch(body):
            value = int(body, 16)
            if abs(value) <= _MAX_PLAIN_INT:  # one form per value: the same model, the same bytes
                raise ValueError(f"{where}: an integer of at most 2**63 is a plain number, not a tag")
            return value
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


def _canonical_slices(layout):
    """(start, stop) runs of the core's flat buffer in the file's order: per layer W
    (row-major), b, alpha. Reordering by runs needs no index array: one of those (an
    intp per parameter, built from pieces) peaked at three copies of the model."""
    runs = []
    for lay in layout:
        runs.append((lay["w_offset"], lay["w_offset"] + lay["m_in"] * lay["m_out"]))
        runs.append((lay["b_offset"], lay["b_offset"] + lay["m_out"]))
        if lay["alpha_offset"] is not None:
            runs.append((lay["alpha_offset"], lay["alpha_offset"] + lay["m_out"]))
    return runs


def to_canonical(flat, layout, dtype):
    """A vector in the core's order (parameters, optimizer state) as a new little-endian
    array of ``dtype`` in the file's order: one copy."""
    return _le(np.concatenate([flat[a:b] for a, b in _canonical_slices(layout)]), dtype)


def from_canonical(canonical, layout, out):
    """Write a vector in the file's order into ``out``, in the core's order; returns ``out``."""
    pos = 0
    for a, b in _canonical_slices(layout):
        out[a:b] = canonical[pos:pos + b - a]
        pos += b - a
    return out


def _base_header(kind, sizes, specs, loss, dtype, fused):
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "dnnfast_version": _core.__version__,
            "kind": kind, "dtype": np.dtype(dtype).name, "sizes": [int(s) for s in sizes],
            "activations": [_activation_entry(s) for s in specs], "loss": loss, "fused": bool(fused)}


_BASE_FIELDS = ["format", "format_version", "dnnfast_version", "kind", "dtype", "sizes", "activations", "loss",
                "fused"]


def _check_header_length(n):
    if n > _MAX_HEADER:
        raise ValueError(f"the header is {n} bytes of JSON; a model file's header is at most {_MAX_HEADER}")


def check_loadable(header, expected):
    """``header``'s array as the file holds it (``_header_array``), after the
    check that ``dnnfast.load`` would accept it reading it back (``expected``:
    the reader's header check, a Codec's ``expected``): a layer count, an
    integer, a label dtype or a name length beyond what the reader accepts is
    refused by the save, never written into a file that cannot be loaded. The
    arrays are the savers' own: their shapes follow the header."""
    array = _header_array(header)
    try:
        _check_header_length(array.size)
        expected(json.loads(array.tobytes()), header["kind"])
    except ValueError as exc:
        raise ValueError(f"cannot save: dnnfast.load would refuse the file ({exc})") from None
    return array


def _header_array(header):
    # Non-ASCII characters as \u escapes: every Python string then has a file form,
    # a lone surrogate (a DataFrame column or a class_weight key may hold one)
    # included, which UTF-8 cannot encode; the reader's json gives it back.
    text = json.dumps(header, allow_nan=False, separators=(",", ":"), ensure_ascii=True)
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8)


def _le(a, dtype):
    """``a`` as a C-contiguous little-endian array of ``dtype``'s kind and size."""
    return np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))



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
    except BaseException:
        os.close(fd)
        raise
    # Outside the try: once fdopen has returned, the file object owns fd, and an
    # interrupt landing then closes it as the object is dropped; closing it again
    # could close a descriptor another thread had just been given.
    return os.fdopen(fd, "rb")


# ---------------------------------------------------------------------------
# Reading a model file
# ---------------------------------------------------------------------------

class Codec(typing.NamedTuple):
    """How the reader turns one kind of model file into an object (the codec beside its class).

    ``expected(header, kind)`` checks the header -> ``(plan, {array name: (dtype, shape)})``;
    ``unfilled(plan)`` -> ``{array name: array}`` read in place (the rest are read into new
    arrays); ``build(plan, arrays)`` -> the object."""
    expected: typing.Callable
    unfilled: typing.Callable
    build: typing.Callable


# Arrays that hold parameters (or their optimizer state): NaN or infinity there is damage.
_FINITE = re.compile(r"(W|b|alpha)[0-9]+|optimizer_state1|best_params|train_state1|train_best_params")
# Adam's second moments (the only optimizer with a second buffer): means of
# squares, >= 0. +inf is one: a float32 fit on large gradients overflows
# them while the weights stay finite (their steps m / (sqrt(v) + eps) are
# then 0), and such a model saved, and checkpointed, a file that load refused.
_NON_NEGATIVE = re.compile(r"optimizer_state2|train_state2")


def _check_version(header):
    """``header`` once its format is dnnfast's and its version one this dnnfast reads."""
    fmt = header.get("format")
    if fmt != FORMAT_NAME:
        raise ValueError(f"not a dnnfast model file (header.format is {fmt!r:.40}, expected {FORMAT_NAME!r})")
    version = _field(header, "format_version", int, "header")
    written_by = header.get("dnnfast_version")
    if version > FORMAT_VERSION:
        raise ValueError(f"the file is in model format version {version} (written by dnnfast "
                         f"{written_by!r:.40}); this dnnfast ({_core.__version__}) reads format versions "
                         f"1 to {FORMAT_VERSION}: upgrade dnnfast to read it")
    if version < 1:
        raise ValueError(f"unknown model format version {version}")
    return header


def _read(f, file_size, codecs):
    zf, infos = _open_archive(f, file_size)
    with zf:
        # The header's version first, wherever its member reads as this version stores
        # it: a newer version may change the archive too (compress its members, add
        # others), and such a file is refused as newer, not as damaged.
        info = _readable_header(infos, file_size)
        header = None if info is None else _check_version(_parse_header(zf, info))
        members = _check_members(infos, file_size)  # refuses whatever made the header unreadable
        if header is None:
            header = _check_version(_parse_header(zf, members[_HEADER]))
        _field(header, "dnnfast_version", str, "header")
        kind = _field(header, "kind", str, "header")
        if kind not in KINDS:
            raise ValueError(f"header.kind must be one of {list(KINDS)}, got {kind!r:.40}")
        if kind not in codecs:
            raise ValueError(f"header.kind is {kind!r}; expected {' or '.join(map(repr, codecs))} here")
        codec = codecs[kind]
        plan, expected = codec.expected(header, kind)
        names = set(members) - {_HEADER}
        if names != set(expected):
            missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
            raise ValueError(f"the archive's arrays do not match its header: missing {missing}, unexpected {extra}")
        total = sum(math.prod(shape) * dt.itemsize for dt, shape in expected.values())
        if total > file_size:
            raise ValueError(f"the header implies {total} bytes of arrays but the file has {file_size}: "
                             "truncated or forged")
        check_memory(total, "the model", f"its {len(expected)} arrays")
        into = codec.unfilled(plan)
        arrays = {}
        for name, (dt, shape) in expected.items():
            arr = _npy_member(zf, members[name], dt, shape, name, into.get(name))
            if _FINITE.fullmatch(name) and not _core.all_finite(arr):  # no temporary the size of arr
                raise ValueError(f"array {name!r} holds NaN or infinity")
            if _NON_NEGATIVE.fullmatch(name) and arr.size and not arr.min() >= 0:
                if np.isnan(arr).any():
                    raise ValueError(f"array {name!r} holds NaN")
                raise ValueError(f"array {name!r} holds a negative value: Adam's second moments are means of "
                                 "squares")
            arrays[name] = arr
    return codec.build(plan, arrays)


def read_model(path, codecs):
    """The object in the model file at ``path``; ``codecs``: {header kind: Codec} accepted here.

    Every failure is a ValueError naming ``path`` (a missing file: FileNotFoundError),
    as ``dnnfast.load`` documents."""
    path = check_path(path)
    f = _open_model_file(path)
    try:
        with f:
            return _read(f, os.fstat(f.fileno()).st_size, codecs)
    except ValueError as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from exc
    except _ARCHIVE_ERRORS as exc:
        raise ValueError(f"cannot load {path!r}: damaged archive ({type(exc).__name__}: {exc})") from exc
    except MemoryError as exc:  # the checks above make this rare: memory taken meanwhile by others
        raise MemoryError(f"cannot load {path!r}: out of memory while reading the model"
                          f"{f' ({exc})' if str(exc) else ''}") from exc
