"""Model files against hostile paths and files: ``dnnfast.load`` reads only
regular files, with memory bounded by the model before anything is allocated."""
from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest

import dnnfast
from dnnfast import _model_files

_PYTHONPATH = os.path.dirname(os.path.dirname(dnnfast.__file__))
POSIX = os.name == "posix"
needs_posix = pytest.mark.skipif(not POSIX, reason="POSIX file types and signals")


def _net(sizes=(4, 6, 3), seed=1):
    return dnnfast.Network(list(sizes), ["tanh"] * (len(sizes) - 2) + ["softmax"], loss="cce", dtype="float32",
                           seed=seed)


def _same(a, b):
    np.testing.assert_array_equal(a.parameters, b.parameters)


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
@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "symlink to /dev/zero", "directory"])
def test_load_refuses_what_is_not_a_regular_file(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "model.npz"
        os.mkfifo(path)
        what = "FIFO"
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
        _model_files._write_archive(buf, _model_files.network_file(net))
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
    monkeypatch.setattr(_model_files, "_parse_header", out_of_memory)
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
    _model_files._write_archive(buf, _model_files.network_file(net))
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
    path = tmp_path / "bad.npz"
    members = _header_member()
    members.update({f"x{i}": b"" for i in range(40_000)})  # more than 3 per layer of the most layers
    _archive(path, members)
    with pytest.raises(ValueError, match=r"lists \d+ members; a model file has at most"):
        dnnfast.load(path)


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
    with pytest.raises(ValueError, match=r"member 'W1.npy' claims .* bytes \(1 stored\)"):
        dnnfast.load(bad)
