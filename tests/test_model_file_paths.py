"""Model files against hostile paths and files: ``dnnfast.load`` reads only
regular files, with memory bounded by the model before anything is allocated;
``save`` writes through symbolic links, refuses devices, FIFOs and
directories, keeps the replaced file's permissions, saves to any valid name,
names the user's path in its errors, and cleans up after a killed save."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import dnnfast
from dnnfast import _archive as archive, _network_file

_PYTHONPATH = os.path.dirname(os.path.dirname(dnnfast.__file__))
POSIX = os.name == "posix"
needs_posix = pytest.mark.skipif(not POSIX, reason="POSIX file types and signals")
needs_root = pytest.mark.skipif(not POSIX or os.geteuid() != 0, reason="only root may make device nodes or chown")


def _net(sizes=(4, 6, 3), seed=1):
    return dnnfast.Network(list(sizes), ["tanh"] * (len(sizes) - 2) + ["softmax"], loss="cce", dtype="float32",
                           seed=seed)


def _same(a, b):
    np.testing.assert_array_equal(a.parameters, b.parameters)


def _temporaries(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".tmp"))


def _python(code, timeout, check=True):
    """Run ``code`` in a fresh interpreter that imports this dnnfast; -> CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=_PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


# ---------------------------------------------------------------------------
# load: only regular files
# ---------------------------------------------------------------------------

# In a child with its address space capped at 2 GiB and a timeout, so that a
# loader that reads /dev/zero for ever or blocks on a FIFO fails the test
# instead of the machine.
_LOAD_IN_CHILD = """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import dnnfast
    try:
        dnnfast.load(sys.argv[1] if len(sys.argv) > 1 else {path!r})
    except BaseException as exc:
        print(type(exc).__name__, exc)
    else:
        print("loaded")
"""


@needs_posix
@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "socket", "symlink to /dev/zero", "directory"])
def test_load_refuses_what_is_not_a_regular_file(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "model.npz"
        os.mkfifo(path)
        what = "FIFO"
    elif kind == "socket":
        import socket

        path = tmp_path / "model.npz"
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        what = "socket"
    elif kind == "symlink to /dev/zero":
        path = tmp_path / "model.npz"
        os.symlink("/dev/zero", path)
        what = "character device"
    elif kind == "directory":
        path, what = tmp_path, "directory"
    else:
        path, what = kind, "character device"
    try:
        out = _python(_LOAD_IN_CHILD.format(path=str(path)), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load({kind}) did not return within 60 s")
    assert out.stdout.startswith("ValueError"), out.stdout + out.stderr[-2000:]
    assert repr(str(path)) in out.stdout and what in out.stdout and "not a regular file" in out.stdout


def test_load_follows_a_symlink_to_a_model_file(tmp_path):
    net = _net()
    net.save(tmp_path / "real.npz")
    os.symlink(tmp_path / "real.npz", tmp_path / "link.npz")
    _same(dnnfast.load(tmp_path / "link.npz"), net)


# ---------------------------------------------------------------------------
# load: memory bounded by the model
# ---------------------------------------------------------------------------

def _write_sparse(path, data, block=1 << 16):
    """``data`` written with holes where whole blocks are zero (as ``cp --sparse=always`` would)."""
    zero = bytes(block)
    with open(path, "wb") as f:
        for start in range(0, len(data), block):
            chunk = data[start:start + block]
            if chunk == zero[:len(chunk)]:
                f.seek(len(chunk), os.SEEK_CUR)
            else:
                f.write(chunk)
        f.truncate(len(data))


_PEAK_IN_CHILD = """
    import sys
    import dnnfast

    def status(key):  # this process's own figures (getrusage's ru_maxrss survives exec: the parent's)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

    before = status("VmRSS")
    assert status("VmHWM") < before + (16 << 20)
    net = dnnfast.load(sys.argv[1])
    print(status("VmHWM") - before, net.parameters.nbytes)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("content", ["trained", "sparse zeros"])
def test_load_peak_memory_is_about_the_model(tmp_path, content):
    """A 64 MB float32 network loads with a peak RSS increase of about its size: no
    copies of the member bytes, no random initialisation before the file's weights
    (today's main: about 3.5x). The sparse file is 64 MB long but holds only ~100 KB
    on disk: its holes read as zeros, so it is a valid model all the same."""
    sizes = [4000, 4000, 10]
    net = dnnfast.Network(sizes, ["relu", "softmax"], loss="cce", dtype="float32", seed=0)
    path = tmp_path / "big.npz"
    if content == "sparse zeros":
        net.parameters[:] = 0
        buf = io.BytesIO()
        archive._write_archive(buf, _network_file.network_file(net))
        _write_sparse(path, buf.getvalue())
        if os.stat(path).st_blocks * 512 > 8 << 20:
            pytest.skip("this file system does not keep holes")
    else:
        net.save(path)
    del net
    code = "import sys; sys.argv[1:] = [%r]\n" % str(path) + textwrap.dedent(_PEAK_IN_CHILD)
    grew, model = map(int, _python(code, timeout=120).stdout.split())
    assert model == (4000 * 4000 + 4000 + 4000 * 10 + 10) * 4
    assert grew < 1.5 * model, f"loading a {model / 2**20:.0f} MiB model grew RSS by {grew / 2**20:.0f} MiB"


def test_model_larger_than_available_memory_is_refused_before_reading(tmp_path, monkeypatch):
    net = dnnfast.Network([1000, 1000, 10], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    monkeypatch.setattr(dnnfast._validation, "available_memory", lambda: 4 << 20)
    monkeypatch.setattr(dnnfast._validation, "_MEMORY_CHECK_FLOOR", 1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"cannot load .*m\.npz.*memory"):
            dnnfast.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB allocated before refusing an 8 MB model"


def test_memory_error_while_loading_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    _net().save(path)

    def out_of_memory(*args):
        raise MemoryError()
    monkeypatch.setattr(archive, "_parse_header", out_of_memory)
    with pytest.raises(MemoryError, match=r"cannot load .*m\.npz.*out of memory"):
        dnnfast.load(path)


def test_loaded_network_draws_no_initial_weights(tmp_path, monkeypatch):
    net = _net()
    net.save(tmp_path / "m.npz")

    def no_draw(*args, **kwargs):
        raise AssertionError("load drew initial weights")
    monkeypatch.setattr(dnnfast.network, "_init_parameters", no_draw)
    loaded = dnnfast.load(tmp_path / "m.npz")
    _same(loaded, net)
    assert loaded._rng.bit_generator.state == net._rng.bit_generator.state


# ---------------------------------------------------------------------------
# load: hostile archives (also seeds of tools/fuzz_load.py)
# ---------------------------------------------------------------------------

def _npy(shape_text, descr="|u1", version=1, length=None, body=b""):
    """A .npy member whose header says ``shape_text`` (any text) and declares ``length`` bytes."""
    header = ("{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    size = len(header) if length is None else length
    prefix = b"\x93NUMPY" + bytes([version, 0]) + size.to_bytes(2 if version == 1 else 4, "little")
    return prefix + header + body


def _archive(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def _header_member():
    net = _net()
    buf = io.BytesIO()
    archive._write_archive(buf, _network_file.network_file(net))
    with zipfile.ZipFile(buf) as zf:
        return {n[:-4]: zf.read(n) for n in zf.namelist()}


@pytest.mark.parametrize("member", ["header", "W1"])
@pytest.mark.parametrize("shape", ["(1, 1, 1, 1)", "(" + "1, " * 3000 + ")", "(" + "9" * 9000 + ",)",
                                   "(" + "-" * 9000 + "1,)", "(" + "-" * 900 + "1,)", "(" + "1+" * 450 + "1,)"])
def test_npy_header_with_a_huge_shape_is_refused(tmp_path, member, shape):
    members = _header_member()
    members[member] = _npy(shape)
    path = tmp_path / "bad.npz"
    _archive(path, members)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=rf"cannot load .*array '{member}'.*(\.npy header|rank)"):
            dnnfast.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_npy_header_claiming_gigabytes_is_refused(tmp_path):
    members = _header_member()
    members["W1"] = _npy("(4, 6)", descr="<f4", version=2, length=2**32 - 1)
    path = tmp_path / "bad.npz"
    _archive(path, members)
    with pytest.raises(ValueError, match=r"array 'W1'.*\.npy header of 4294967295 bytes"):
        dnnfast.load(path)


def test_archive_listing_too_many_members_is_refused(tmp_path):
    """A directory listing one member per 46 bytes of the file makes zipfile build an object
    for each; the count in the end record is checked first (here: 40,000, more than 3 per layer
    of the most layers a header may have)."""
    good = tmp_path / "good.npz"
    _net().save(good)
    data = bytearray(good.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = (40_000).to_bytes(2, "little") * 2  # entries on this disk, in total
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"lists 40000 members; a model file has at most"):
        dnnfast.load(bad)


def test_central_directory_larger_than_its_member_count_allows_is_refused(tmp_path, monkeypatch):
    """zipfile parses the central directory by its byte size, not by the end record's
    count: an end record claiming 1 entry over 2 million of them took 20 s and 551 MB.
    The size was bounded by the most members any model file has (5.2 MB, 113,000 entries):
    an end record claiming 3 over 65,000 entries took 37 MB. It is bounded by the count
    the end record gives, before zipfile reads the directory."""
    import struct

    entry = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    directory = entry * 1000
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 3, 3, len(directory), 0, 0)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(directory + end)
    monkeypatch.setattr(archive.zipfile, "ZipFile", None)  # never reached
    with pytest.raises(ValueError, match=re.escape(repr(str(bad))) + r": the archive's central directory is "
                                         r"47000 bytes for the 3 members its end record lists; a model file's "
                                         r"takes at most 174 bytes a member"):
        dnnfast.load(bad)
    assert archive._MAX_ENTRY < 200  # a few hundred bytes an entry at most


def test_directory_sizes_that_disagree_are_refused(tmp_path):
    good = tmp_path / "good.npz"
    _net().save(good)
    data = bytearray(good.read_bytes())
    # The central directory entry of W1: its compressed size (offset 20) set to 1 byte.
    entry = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 1)
    assert data[entry + 46:entry + 52] == b"W1.npy"
    data[entry + 20:entry + 24] = (1).to_bytes(4, "little")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"member 'W1.npy' claims \d+ bytes but 1 stored"):
        dnnfast.load(bad)


# ---------------------------------------------------------------------------
# save: what it writes to
# ---------------------------------------------------------------------------

@needs_posix
def test_save_writes_through_a_symlink(tmp_path):
    old, new = _net(seed=1), _net(seed=2)
    real = tmp_path / "models" / "real.npz"
    real.parent.mkdir()
    old.save(real)
    link = tmp_path / "link.npz"
    os.symlink(real, link)
    new.save(link)
    assert os.path.islink(link) and os.readlink(link) == str(real)
    _same(dnnfast.load(real), new)
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "models"] and os.listdir(real.parent) == ["real.npz"]


@needs_posix
def test_save_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.npz"
    os.symlink("target.npz", link)
    _net().save(link)
    assert os.path.islink(link) and (tmp_path / "target.npz").is_file()


@needs_posix
@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "symlink to fifo"])
def test_save_refuses_a_target_that_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / "model.npz"
    check = path
    if kind == "fifo":
        os.mkfifo(path)
        what = "FIFO"
    elif kind == "symlink to fifo":
        check = tmp_path / "pipe"
        os.mkfifo(check)
        os.symlink(check, path)
        what = "FIFO"
    elif kind == "directory":
        path.mkdir()
        what = "directory"
    else:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip("only root may make a device node")
        # A private twin of /dev/null (same device numbers): root saving to /dev/null
        # replaced the node by a file, and a test must not risk the real one.
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        what = "character device"
    before = os.lstat(check)
    with pytest.raises(ValueError, match=re.escape(f"{str(path)!r} is a {what}") + ".*not a regular file"):
        _net().save(path)
    after = os.lstat(check)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("name,match", [("model.npz\0x", "holds a NUL byte"),
                                        ("out" + os.sep, "ends with a separator"),
                                        ("out" + os.sep + ".", "ends with '.'"),
                                        ("out" + os.sep + "..", "ends with '..'")])
def test_path_that_cannot_name_a_file_raises_naming_it(tmp_path, name, match):
    """A trailing separator names a directory (save created ``out`` from ``out/``;
    load said only "Not a directory"); a NUL byte fits no file name (numpy's
    "embedded null byte" named no path)."""
    path = str(tmp_path) + os.sep + name  # (pathlib would drop the trailing separator)
    net = _net()
    P = net.parameters.copy()
    for call in (lambda: net.save(path), lambda: dnnfast.load(path),
                 lambda: net.fit(np.zeros((4, 4)), np.eye(3)[[0, 1, 2, 0]], epochs=1, checkpoint=path)):
        with pytest.raises(ValueError, match=re.escape(repr(path)) + " " + match):
            call()
    assert os.listdir(tmp_path) == []
    _same(net, dnnfast.Network(net.sizes, net.activations, loss=net.loss, dtype=net.dtype, seed=1))
    np.testing.assert_array_equal(net.parameters, P)  # refused before the first step


@pytest.mark.parametrize("name,error", [("missing/../m.npz", FileNotFoundError),
                                        ("notes.txt/../m.npz", NotADirectoryError),
                                        ("models/../notes.txt/../m.npz", NotADirectoryError)])
def test_save_through_a_parent_that_is_no_directory_is_refused_as_open_would(tmp_path, name, error):
    """os.path.realpath drops "x/.." by its text: save wrote m.npz where open() fails
    (and load of the same path then failed). The system's answer, naming the path."""
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "models").mkdir()
    path = str(tmp_path) + os.sep + name.replace("/", os.sep)
    net = _net()
    for call in (lambda: net.save(path),
                 lambda: net.fit(np.zeros((4, 4)), np.eye(3)[[0, 1, 2, 0]], epochs=1, checkpoint=path)):
        with pytest.raises(error) as info:
            call()
        assert info.value.filename == path
    assert sorted(os.listdir(tmp_path)) == ["models", "notes.txt"] and os.listdir(tmp_path / "models") == []
    net.save(str(tmp_path / "models" / ".." / "m.npz"))  # through a directory: as the system resolves it
    _same(dnnfast.load(tmp_path / "m.npz"), net)


def test_checkpoint_in_a_missing_directory_is_refused_before_the_first_step(tmp_path):
    """It was FileNotFoundError at the first epoch's end, the parameters moved."""
    net = _net()
    P = net.parameters.copy()
    path = tmp_path / "no such dir" / "ck.npz"
    with pytest.raises(FileNotFoundError, match="no such directory"):
        net.fit(np.zeros((4, 4)), np.eye(3)[[0, 1, 2, 0]], epochs=2, checkpoint=path)
    np.testing.assert_array_equal(net.parameters, P)


@needs_posix
def test_save_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "model.npz"
    _net(seed=1).save(path)
    os.chmod(path, 0o600)
    _net(seed=2).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o640)
    _net(seed=3).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@needs_posix
def test_new_file_gets_0666_less_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        _net().save(tmp_path / "model.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "model.npz").st_mode) == 0o640


@needs_root
def test_root_saving_over_a_users_file_keeps_its_owner(tmp_path):
    path = tmp_path / "model.npz"
    _net(seed=1).save(path)
    os.chown(path, 4321, 4322)
    _net(seed=2).save(path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (4321, 4322)


@needs_posix
def test_save_replaces_a_hard_linked_file_and_leaves_its_other_name(tmp_path):
    """The documented choice: atomic replacement splits a hard link; the other name keeps the old model."""
    old, new = _net(seed=1), _net(seed=2)
    old.save(tmp_path / "a.npz")
    os.link(tmp_path / "a.npz", tmp_path / "b.npz")
    new.save(tmp_path / "a.npz")
    _same(dnnfast.load(tmp_path / "a.npz"), new)
    _same(dnnfast.load(tmp_path / "b.npz"), old)


@pytest.mark.parametrize("length", [250, 255])
def test_save_to_the_longest_file_name(tmp_path, length):
    try:
        name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        name_max = 255
    if length > name_max:
        pytest.skip(f"this file system's names are at most {name_max} bytes")
    net = _net()
    path = tmp_path / ("m" * (length - 4) + ".npz")
    net.save(path)
    net.save(path)
    _same(dnnfast.load(path), net)
    assert os.listdir(tmp_path) == [path.name]


def test_save_into_a_missing_directory_names_the_users_path(tmp_path):
    path = tmp_path / "no" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        _net().save(path)
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)


@needs_posix
@pytest.mark.skipif(POSIX and os.geteuid() == 0, reason="root may write to any directory")
def test_save_into_a_read_only_directory_names_the_users_path(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(PermissionError) as info:
            _net().save(tmp_path / "model.npz")
    finally:
        os.chmod(tmp_path, 0o700)
    assert info.value.filename == str(tmp_path / "model.npz") and ".tmp" not in str(info.value)


def test_failed_rename_names_the_users_path(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"

    def replace(src, dst):
        raise OSError(28, "No space left on device", src, dst)
    monkeypatch.setattr(archive.os, "replace", replace)
    with pytest.raises(OSError) as info:
        _net().save(path)
    assert info.value.filename == str(path) and info.value.filename2 is None and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# save: temporaries of killed saves
# ---------------------------------------------------------------------------

_SAVE_FOR_EVER = """
    import sys
    import dnnfast
    net = dnnfast.Network([2000, 2000, 10], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    print("ready", flush=True)
    while True:
        net.save(sys.argv[1])
"""


@needs_posix
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_next_save_removes_the_temporary_of_a_killed_save(tmp_path, sig):
    """A save killed mid-write (SIGKILL; SIGTERM too, whose default action kills the process
    without running Python code) leaves its temporary; the next save of that target removes it."""
    path = tmp_path / "model.npz"
    env = dict(os.environ, PYTHONPATH=_PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    left = []
    for _ in range(3):
        # The last killed save's temporary is there until this save removes it: wait for a new one
        # (waiting for any, the signal could come between that removal and the new temporary).
        before = set(_temporaries(tmp_path))
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SAVE_FOR_EVER), str(path)],
                                stdout=subprocess.PIPE, env=env)
        try:
            assert proc.stdout.readline().strip() == b"ready"
            deadline = time.monotonic() + 60
            while not set(_temporaries(tmp_path)) - before and time.monotonic() < deadline:  # a save in progress
                time.sleep(0.001)
            proc.send_signal(getattr(signal, sig))
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        left += _temporaries(tmp_path)
    assert left, "no save was caught mid-write"
    other = tmp_path / "other.npz"
    _net().save(other)
    assert _temporaries(tmp_path), "a save must not remove another target's temporaries"
    net = _net()
    net.save(path)
    assert _temporaries(tmp_path) == []
    _same(dnnfast.load(path), net)


@needs_posix  # flock: without it stale temporaries are not cleaned
def test_save_leaves_the_temporary_of_a_running_save_alone(tmp_path):
    path = tmp_path / "model.npz"
    stem = archive._tmp_stem("model.npz")
    tmp, raw = archive._create_temporary(str(tmp_path), stem, str(path))  # as a save in progress holds it
    try:
        _net().save(path)
        assert os.path.exists(tmp)
    finally:
        raw.close()
    _net().save(path)
    assert not os.path.exists(tmp)


def test_temporary_name_is_short_and_fixed(tmp_path):
    stem = archive._tmp_stem("m" * 255)
    tmp, raw = archive._create_temporary(str(tmp_path), stem, "x")
    raw.close()
    assert len(os.path.basename(tmp)) == 34 and os.path.basename(tmp).startswith(".dnnfast-")


def _flock_failing(monkeypatch, err):
    """Make every flock fail with ``err``; past 500 calls it raises RuntimeError (a save
    that retried for ever would otherwise hang the test)."""
    calls = []

    def flock(fd, op):
        calls.append(fd)
        if len(calls) > 500:
            raise RuntimeError("flock called more than 500 times: the save loops")
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(archive.fcntl, "flock", flock)


@needs_posix
def test_save_goes_ahead_where_the_file_system_has_no_locks(tmp_path, monkeypatch):
    """flock failing with ENOLCK (NFS without lockd; FUSE: ENOSYS, EOPNOTSUPP) was taken
    for "held": the save looped for ever, leaving an empty temporary each turn. Without
    locks a save writes unlocked, and cleans up no temporary (a running save's looks the
    same as a dead one's)."""
    path = tmp_path / "model.npz"
    stale = tmp_path / (archive._tmp_stem("model.npz") + "0" * 12 + ".tmp")
    stale.write_bytes(b"")
    _flock_failing(monkeypatch, errno.ENOLCK)
    net = _net()
    net.save(path)
    monkeypatch.undo()
    _same(dnnfast.load(path), net)
    assert _temporaries(tmp_path) == [stale.name]


@needs_posix
def test_save_that_never_gets_its_lock_gives_up_and_leaves_nothing(tmp_path, monkeypatch):
    """Retries are bounded, each failed temporary removed; the old file stays."""
    path = tmp_path / "model.npz"
    old = _net(seed=1)
    old.save(path)
    _flock_failing(monkeypatch, errno.EWOULDBLOCK)
    with pytest.raises(OSError, match="no temporary file could be created") as info:
        _net(seed=2).save(path)
    assert info.value.filename == str(path)
    monkeypatch.undo()
    assert _temporaries(tmp_path) == []
    _same(dnnfast.load(path), old)
