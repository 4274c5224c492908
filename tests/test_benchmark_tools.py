"""The benchmark suite's tools outside run.py: compare.py's figures and its
handling of bad files, and the argument checks and skips of bench_sklearn.py
and bench_activations.py (benchmarks/ in the source tree; skipped where the
tests run without it). Nothing is timed: the workers are replaced by fakes,
or the scripts stop before they start one.
"""
import importlib.util
import json
import os
import subprocess
import sys
import signal
import textwrap
import time

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(BENCH, "workloads.py")),
                                reason="the benchmarks/ directory of the source tree is not here")


def load_module(name):
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location(f"bench_tools_{name}", os.path.join(BENCH, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(BENCH)


@pytest.fixture
def compare():
    return load_module("compare")


@pytest.fixture
def sk():
    return load_module("bench_sklearn")


@pytest.fixture
def act():
    return load_module("bench_activations")


# --------------------------------------------------------------------------- compare.py: GEMM figures

def gemm_doc(seconds, th=1, label="square 100", n=100):
    """A run.py --json document with one GEMM case: `seconds` {peer: per-process seconds}."""
    case = dict(label=label, group="square", M=n, N=n, K=n, trans_a=False, trans_b=False)
    runs = []
    for peer, secs in seconds.items():
        for i, s in enumerate(secs):
            task = dict(kind="gemm", peer=peer, threads=th, dtype="float32", cases=[case])
            runs.append({"id": f"G/{th}t/{peer}", "repeat": i, "task": task,
                         "result": {"ok": True, "cases": [dict(case, seconds=s)]}})
    fl = 2.0 * n ** 3
    med = {p: sorted(s)[len(s) // 2] if len(s) % 2 else sum(sorted(s)[len(s) // 2 - 1:len(s) // 2 + 1]) / 2
           for p, s in seconds.items()}
    summary = {"train": {}, "predict": {}, "memory": None, "scaling": None, "gemm_cross_core": {},
               "gemm": {str(th): {label: dict(group="square", M=n, N=n, K=n,
                                              numpy_gflops=fl / med["numpy"] / 1e9,
                                              dnnfast_gflops=fl / med["dnnfast"] / 1e9,
                                              numpy_seconds=seconds["numpy"], dnnfast_seconds=seconds["dnnfast"])}}}
    meta = {"commit": "abc1234", "cpu_model": "test", "cpus": 2, "repeats": len(seconds["numpy"]),
            "load_start": 0.5, "load_end": 0.5}
    return {"meta": meta, "summary": summary, "targets": [], "runs": runs}


def row(text, *words):
    """The one line of `text` that holds all of `words`, split on runs of two spaces."""
    lines = [l for l in text.splitlines() if all(w in l for w in words)]
    assert len(lines) == 1, (words, text)
    return [c.strip() for c in lines[0].split("  ") if c.strip()]


def table_row(text, first):
    """The cells of the table row of `text` whose first cell is `first`."""
    rows = [[c.strip() for c in l.split("  ") if c.strip()] for l in text.splitlines()]
    rows = [r for r in rows if r and r[0] == first]
    assert len(rows) == 1, (first, text)
    return rows[0]


def test_compare_gemm_figure_is_flops_over_the_median_time(compare):
    # Two processes per peer: the median of the per-process GFLOP/s is not
    # 2*M*N*K over the median time (run.py's figure): 1.33 against 1.0 for
    # numpy.matmul, 1.5 against 1.33 for dnnfast.
    doc = gemm_doc({"numpy": [1e-3, 3e-3], "dnnfast": [1e-3, 2e-3]})
    text = compare.compare(doc, doc)
    g = doc["summary"]["gemm"]["1"]["square 100"]
    assert (g["numpy_gflops"], round(g["dnnfast_gflops"], 2)) == (1.0, 1.33)
    np_row = row(text, "G square 100", "numpy.matmul", "GFLOP/s")
    assert np_row[3:5] == [f"{g['numpy_gflops']:.1f}"] * 2, text
    df_row = row(text, "G square 100", "dnnfast", "GFLOP/s")
    assert df_row[3:5] == [f"{g['dnnfast_gflops']:.1f}"] * 2, text
    ratio_row = row(text, "G square 100", "numpy.matmul", "x")
    assert ratio_row[3:5] == [f"{g['dnnfast_gflops'] / g['numpy_gflops']:.2f}x"] * 2, text


def test_compare_shows_what_run_py_printed(compare, tmp_path, monkeypatch, capsys):
    """run.py itself, its workers faked (even repeats, seconds that differ
    between processes), then compare.py on its JSON: the same GFLOP/s and
    ratios as the JSON's summary, which run.py's table prints."""
    run = load_module("run")
    if not hasattr(run, "run_worker"):
        pytest.skip("run.py has no run_worker to fake")
    secs = {"numpy": [1e-3, 3e-3], "dnnfast": [1e-3, 2e-3]}
    count = {"numpy": 0, "dnnfast": 0}

    def fake_worker(task, timeout):
        if task.get("kind") != "gemm":
            return {"ok": True}
        i = count[task["peer"]]
        count[task["peer"]] += 1
        return {"ok": True, "cases": [dict(c, seconds=secs[task["peer"]][i] * (j + 1))
                                      for j, c in enumerate(task["cases"])]}

    monkeypatch.setattr(run, "run_worker", fake_worker)
    out = tmp_path / "run.json"
    run.main(["--only", "G", "--threads", "1", "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    text = compare.compare(doc, doc)
    cases = doc["summary"]["gemm"]["1"]
    assert cases
    for label, g in cases.items():
        in_run = table_row(printed, label)  # run.py's GEMM table
        for peer, name in (("numpy", "numpy.matmul"), ("dnnfast", "dnnfast")):
            want = f"{g[peer + '_gflops']:.1f}"
            assert want in in_run, (label, want, in_run)
            got = row(text, f"G {label} ", name, "GFLOP/s")[3:5]
            assert [x.replace(",", "") for x in got] == [want] * 2, (label, got, want)
        want = f"{g['dnnfast_gflops'] / g['numpy_gflops']:.2f}x"
        assert want in in_run, (label, want, in_run)
        assert row(text, f"G {label} ", "numpy.matmul", "x")[3:5] == [want] * 2


# --------------------------------------------------------------------------- compare.py: bad files

BAD_FILES = [
    ("empty", "", "empty"),
    ("truncated", '{"meta": {"commit": "abc"}, "summary": {"gem', "not valid JSON"),
    ("list", "[]", "not a benchmarks JSON"),
    ("object", "{}", "no 'meta' and 'summary'"),
    ("sklearn-json", '{"threads": 1, "repeats": 5, "runs": {}, "summary": {}}', "no 'meta' and 'summary'"),
    ("bad-runs", '{"meta": {}, "summary": {}, "runs": [{"id": "W1/1t/dnnfast"}]}', "not a benchmarks JSON"),
    ("deep", "[" * 100000 + "]" * 100000, "nested too deeply"),  # was a RecursionError traceback
]


@pytest.mark.parametrize("name,content,says", BAD_FILES, ids=[b[0] for b in BAD_FILES])
@pytest.mark.parametrize("which", ["old", "new"])
def test_compare_rejects_a_bad_file_with_a_message(compare, tmp_path, capsys, name, content, says, which):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(gemm_doc({"numpy": [1e-3, 2e-3], "dnnfast": [1e-3, 2e-3]})))
    bad = tmp_path / f"{name}.json"
    bad.write_text(content)
    args = [str(bad), str(good)] if which == "old" else [str(good), str(bad)]
    with pytest.raises(SystemExit) as e:
        compare.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and f"{bad}: " in err and says in err, err


def test_compare_names_a_missing_file(compare, tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(gemm_doc({"numpy": [1e-3], "dnnfast": [1e-3]})))
    missing = tmp_path / "missing.json"
    with pytest.raises(SystemExit) as e:
        compare.main([str(missing), str(good)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and f"{missing}: cannot read it" in err, err


def test_compare_script_gives_no_traceback(tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text("")
    p = subprocess.run([sys.executable, os.path.join(BENCH, "compare.py"), str(bad), str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "error: " in p.stderr, p.stderr


# --------------------------------------------------------------------------- without scikit-learn

NO_SKLEARN = """
import sys


class _NoSklearn:
    # `import sklearn` raises ModuleNotFoundError, as where it is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoSklearn())
"""


def run_without_sklearn(tmp_path, args, code=None):
    """The script (or `code`) in a fresh process, and every process it
    starts, where scikit-learn cannot be imported (a sitecustomize on
    PYTHONPATH installs a finder that refuses it)."""
    site = tmp_path / "no_sklearn"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_SKLEARN)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable] + (["-c", code] if code else []) + args
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))


def test_the_finder_hides_sklearn(tmp_path):
    p = run_without_sklearn(tmp_path, [], code="import sklearn")
    assert p.returncode == 1 and "No module named 'sklearn'" in p.stderr


def test_bench_sklearn_without_sklearn_is_a_skip(tmp_path):
    p = run_without_sklearn(tmp_path, [os.path.join(BENCH, "bench_sklearn.py"), "--only", "wine", "--repeats", "1"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    assert "scikit-learn" in lines[0] and "pip install scikit-learn" in lines[0] and "fit time" in lines[0]


def test_bench_activations_sklearn_suite_without_sklearn_is_a_skip(tmp_path):
    p = run_without_sklearn(tmp_path, [os.path.join(BENCH, "bench_activations.py"), "--suite", "sklearn",
                                       "--repeats", "1"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    assert "pip install scikit-learn" in lines[0] and "tanh" in lines[0] and "logistic" in lines[0]


def test_bench_activations_all_without_sklearn_keeps_the_net_suite(tmp_path):
    # The net suite's workers are faked (no training); the sklearn suite's
    # would be real, and fail at `import sklearn`, had the script started one.
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {BENCH!r})
        import bench_activations as b

        real_spawn = b.spawn

        def spawn(task, pythonpath, threads, timeout):
            if task["suite"] == "net":
                return {{"ms": 10.0 + b.NET_ACTS.index(task["act"])}}
            return real_spawn(task, pythonpath, threads, timeout)

        b.spawn = spawn
        sys.argv = ["bench_activations.py", "--suite", "all", "--repeats", "1"]
        b.main()
    """)
    p = run_without_sklearn(tmp_path, [], code=code)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "| relu | 10.0 [10.0-10.0] 1.00x |" in p.stdout, p.stdout
    assert "| softplus | 15.0 [15.0-15.0] 1.50x |" in p.stdout, p.stdout
    skip = [l for l in p.stdout.splitlines() if "pip install scikit-learn" in l]
    assert len(skip) == 1, p.stdout


# --------------------------------------------------------------------------- arguments and failed workers

def no_subprocess(*args, **kwargs):
    raise AssertionError("no worker should start")


def no_children(monkeypatch):
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)


def fake_children(monkeypatch, fake):
    """The scripts' workers, started by workloads.run_child, replaced by
    fake(cmd, timeout=..., **popen arguments) -> CompletedProcess."""
    monkeypatch.setattr(sys.modules["workloads"], "run_child", fake)


@pytest.mark.parametrize("args,says", [
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "-3"], "--repeats"),
    (["--repeats", "two"], "--repeats"),
    (["--threads", "0"], "--threads"),
    (["--threads", "-1"], "--threads"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-5"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "1e300"], "--timeout"),
    (["--timeout", "9999999999"], "--timeout"),
    (["--only", "nope"], "unknown workload"),
])
def test_bench_sklearn_rejects_bad_arguments(sk, monkeypatch, capsys, args, says):
    no_children(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["bench_sklearn.py", "--only", "wine"] + args)
    with pytest.raises(SystemExit) as e:
        sk.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and says in err, err


def fake_result(peer):
    out = {"seconds": 0.01 if peer == "dnnfast" else 0.05, "fits": 3, "n_iter": 10, "loss": 0.5, "score": 0.9,
           "cores": 1.0, "sizes": [13, 100, 3], "rows": 178}
    if peer == "dnnfast":
        out["peak_gflops"] = 50.0
    return out


def test_bench_sklearn_worker_timeout_is_an_error_row(sk, monkeypatch, capsys, tmp_path):
    """A worker that times out (or fails) makes its workload an error row;
    the other workloads are still measured and reported, and the script
    exits non-zero at the end, naming the failed workload."""
    started = []

    def fake_run(cmd, timeout=None, **kwargs):
        task = json.loads(cmd[cmd.index("--worker") + 1])
        started.append((task["workload"], task["peer"]))
        if task["workload"] == "wine" and task["peer"] == "sklearn":
            raise subprocess.TimeoutExpired(cmd, timeout)
        if task["workload"] == "diabetes" and task["peer"] == "dnnfast":
            return subprocess.CompletedProcess(cmd, 1, "", "Traceback ...\nValueError: broken worker\n")
        return subprocess.CompletedProcess(cmd, 0, json.dumps(fake_result(task["peer"])) + "\n", "")

    fake_children(monkeypatch, fake_run)
    out = tmp_path / "sk.json"
    monkeypatch.setattr(sys, "argv", ["bench_sklearn.py", "--only", "wine,breast_cancer,diabetes", "--repeats", "3",
                                      "--timeout", "0.5", "--json", str(out)])
    with pytest.raises(SystemExit) as e:
        sk.main()
    assert e.value.code not in (0, None, 2)
    text = capsys.readouterr().out
    assert row(text, "| wine |", "timed out after 0.5 s"), text
    assert row(text, "| diabetes |", "broken worker"), text
    assert "| breast_cancer | 0.0100 | 0.0500 | 5.00x |" in text, text
    # a failed workload is not run again
    assert started.count(("wine", "sklearn")) == 1 and started.count(("diabetes", "dnnfast")) == 1
    assert started.count(("breast_cancer", "sklearn")) == 3
    doc = json.loads(out.read_text())
    assert doc["summary"]["wine"]["status"] == "ERROR" and "timed out" in doc["summary"]["wine"]["error"]
    assert doc["summary"]["breast_cancer"]["speedup"] == pytest.approx(5.0)


def test_bench_sklearn_run_one_returns_a_timeout(sk, monkeypatch):
    def timeout_run(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout"))

    fake_children(monkeypatch, timeout_run)
    res = sk.run_one("dnnfast", "wine", 1, 0.5)
    assert "timed out after 0.5 s" in res["error"]


@pytest.mark.parametrize("args,says", [
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "x"], "--repeats"),
    (["--threads", "0"], "--threads"),
    (["--threads", "-2"], "--threads"),
    (["--builds", "nopath"], "--builds"),
    (["--builds", "=/tmp"], "--builds"),
    (["--builds", "a=/no/such/dnnfast/tree"], "no such directory"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "1e300"], "--timeout"),
])
@pytest.mark.parametrize("suite", ["net", "sklearn"])
def test_bench_activations_rejects_bad_arguments(act, monkeypatch, capsys, args, says, suite):
    monkeypatch.setattr(act, "spawn", no_subprocess)
    no_children(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["bench_activations.py", "--suite", suite] + args)
    with pytest.raises(SystemExit) as e:
        act.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and says in err, err


def test_bench_activations_failed_worker_is_an_error_cell(act, monkeypatch, capsys):
    """A worker that times out or fails makes its cell read "error (why)" and
    is not started again; the other cells are measured and printed (a ratio
    to a failed relu cell reads "-"), and the script exits non-zero."""
    started = []

    def fake_run(cmd, timeout=None, **kwargs):
        task = json.loads(cmd[cmd.index("--worker") + 1])
        key = (task["suite"], task.get("peer", "dnnfast"), task["act"])
        started.append(key)
        if key == ("net", "dnnfast", "tanh"):
            raise subprocess.TimeoutExpired(cmd, timeout)
        if key == ("sklearn", "sklearn", "logistic"):
            return subprocess.CompletedProcess(cmd, 1, "", "Traceback ...\nMemoryError: broken worker\n")
        if task["suite"] == "net":
            out = {"ms": 10.0 + act.NET_ACTS.index(task["act"])}
        else:
            out = {"s": 0.5 if task["peer"] == "sklearn" else 0.1, "n_iter": 7}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(out) + "\n", "")

    fake_children(monkeypatch, fake_run)
    monkeypatch.setattr(act, "have_sklearn", lambda: True)
    monkeypatch.setattr(sys, "argv", ["bench_activations.py", "--repeats", "3", "--timeout", "0.5"])
    with pytest.raises(SystemExit) as e:
        act.main()
    assert e.value.code not in (0, None, 2)
    text = capsys.readouterr().out
    assert "| tanh | error (timed out after 0.5 s (--timeout)) |" in text, text
    assert "| softplus | 15.0 [15.0-15.0] 1.50x |" in text, text
    assert "| tanh | 0.500 [0.500-0.500] (7) 1.00x | 0.100 [0.100-0.100] (7) 5.00x |" in text, text
    assert "| logistic | error (exit 1: MemoryError: broken worker) | 0.100 [0.100-0.100] (7) - |" in text, text
    assert started.count(("net", "dnnfast", "tanh")) == 1
    assert started.count(("sklearn", "sklearn", "logistic")) == 1
    assert started.count(("net", "dnnfast", "relu")) == 3


def test_list_into_a_pipe_closed_early_ends_quietly():
    """`python -m benchmarks --list | head -1` ended in a BrokenPipeError
    traceback and status 1 (python -m dnnfast exits 141 there), and the usage
    line named the program __main__.py."""
    root = os.path.dirname(BENCH)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks", "--list"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
    usage = subprocess.run([sys.executable, "-m", "benchmarks", "--bogus"], cwd=root, capture_output=True, text=True,
                           timeout=120)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: python -m benchmarks"), usage.stderr


# --------------------------------------------------------------------------- run.py --json

FAKE_RUN = """
import json, os, sys
sys.path.insert(0, {bench!r})
import run


def fake_worker(task, timeout):
    # measures nothing: GEMM cases of 1 ms
    if task.get("kind") != "gemm":
        return {{"ok": True}}
    return {{"ok": True, "cases": [dict(c, seconds=1e-3) for c in task["cases"]]}}


run.run_worker = fake_worker
{setup}
run.main({args!r})
"""


def fake_run(tmp_path, args, setup=""):
    """run.main(args) in a fresh process, its workers faked."""
    code = FAKE_RUN.format(bench=BENCH, args=args, setup=setup)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path))


def test_json_that_cannot_be_written_keeps_the_report_and_the_old_file(tmp_path):
    """A --json whose write failed (here a file size limit, as a full disk)
    was a traceback after the whole run, with nothing on stdout, and left
    half a JSON where a good file had been."""
    out = tmp_path / "run.json"
    out.write_text('{"old": "good"}')
    p = fake_run(tmp_path, ["--only", "G", "--threads", "1", "--repeats", "1", "--json", str(out)],
                 setup="import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))")
    assert p.returncode == 74, p.stderr
    assert "targets (ratios within this run)" in p.stdout
    assert "--json" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert out.read_text() == '{"old": "good"}'
    assert [f.name for f in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind
    p = fake_run(tmp_path, ["--only", "G", "--threads", "1", "--repeats", "1", "--json", str(out)])
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["summary"]["gemm"]


@pytest.mark.parametrize("target", ["dir", "dir/"])
def test_json_into_a_directory_is_a_usage_error_before_the_run(tmp_path, monkeypatch, capsys, target):
    run = load_module("run")
    monkeypatch.setattr(run, "run_worker", no_subprocess)
    with pytest.raises(SystemExit) as e:
        run.main(["--only", "G", "--threads", "1", "--json", str(tmp_path) + ("/" if target == "dir/" else "")])
    assert e.value.code == 2
    assert "--json: " in capsys.readouterr().err


# --------------------------------------------------------------------------- run.py: signals

SLEEPER = """
import os, sys, time
with open({pidfile!r}, "w") as f:
    f.write(str(os.getpid()))
time.sleep(120)
"""

DRIVER = """
import sys
sys.path.insert(0, {bench!r})
import run
from workloads import cli
run.WORKER = {worker!r}
sys.argv[0] = "run.py"
cli(lambda: run.main(["--only", "P", "--threads", "1", "--repeats", "1"]), "run.py")
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper has ended
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def start_driver(tmp_path):
    """run.py (its workers each a sleeper that writes its pid) in a session
    of its own; returns the process and the first worker's pid."""
    pidfile = tmp_path / "worker.pid"
    worker = tmp_path / "sleeper.py"
    worker.write_text(SLEEPER.format(pidfile=str(pidfile)))
    code = DRIVER.format(bench=BENCH, worker=str(worker))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    for _ in range(600):
        if pidfile.exists() and pidfile.read_text():
            return p, int(pidfile.read_text())
        time.sleep(0.1)
    p.kill()
    raise AssertionError("the worker did not start: " + p.communicate()[1])


def gone_within(pid, seconds):
    for _ in range(int(seconds * 10)):
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals")
@pytest.mark.parametrize("sig, status", [("SIGTERM", 143), ("SIGINT", 130), ("SIGKILL", None)])
def test_the_driver_ending_ends_its_running_worker(tmp_path, sig, status):
    """SIGTERM to the driver left its worker running (with no timeout any
    more, its parent gone). SIGINT to the driver alone (the worker runs in
    a process group of its own) ends it too; SIGKILL, which runs no clean-up,
    as well on Linux."""
    if sig == "SIGKILL" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    p, pid = start_driver(tmp_path)
    try:
        os.kill(p.pid, getattr(signal, sig))
        out, err = p.communicate(timeout=60)
        if status is not None:
            assert p.returncode == status, err
            assert "Traceback" not in err, err
            assert f"INTERRUPTED ({'SIGTERM' if sig == 'SIGTERM' else 'Ctrl-C'})" in out, out
        assert gone_within(pid, 10), f"the worker {pid} runs on after the driver's {sig}"
    finally:
        if p.poll() is None:
            p.kill()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_failed_workers_exit_non_zero_and_their_targets_read_n_a(monkeypatch, capsys):
    """With --threads 100000 every worker failed, the run exited 0, and the G
    targets of that thread count vanished instead of reading n/a."""
    run = load_module("run")

    def worker(task, timeout):
        if task.get("kind") != "gemm":
            return {"ok": True}
        if task["threads"] == 2 and task["peer"] == "numpy":
            return {"ok": False, "error": "ValueError: broken worker"}
        return {"ok": True, "cases": [dict(c, seconds=1e-3) for c in task["cases"]]}

    monkeypatch.setattr(run, "run_worker", worker)
    with pytest.raises(SystemExit) as e:
        run.main(["--only", "G", "--threads", "1,2", "--repeats", "1"])
    assert e.value.code not in (0, None, 2) and "G/2t/numpy" in str(e.value.code), e.value.code
    out = capsys.readouterr().out
    for label in ("squares >= 512 >= 0.9x", "W1 products >= 1x", "W3 products >= 1x"):
        assert row(out, f"G [2t] GEMM {label} numpy.matmul: numpy.matmul error: ValueError: broken worker"), out
        assert row(out, f"G [1t] GEMM {label}")[0].split()[0] != "n/a", out


@pytest.mark.parametrize("broken, says", [
    ("torch", "PyTorch error: timed out after 2 s"),
    ("dnnfast", "dnnfast error: timed out after 2 s"),
])
def test_the_predict_target_names_a_failed_peer_error(monkeypatch, capsys, broken, says):
    """A PyTorch worker that timed out made the P target say "PyTorch
    skipped (not installed)", and dnnfast's failure read "dnnfast error"
    without its text."""
    run = load_module("run")
    monkeypatch.setattr(run, "installed", lambda peer: True)

    def worker(task, timeout):
        if task.get("kind") != "predict":
            return {"ok": True}
        if task["peer"] == broken:
            return {"ok": False, "error": "timed out after 2 s"}
        return {"ok": True, "median_us": 10.0, "p10_us": 9.0, "p90_us": 11.0, "calls": 100, "cores": 1.0}

    monkeypatch.setattr(run, "run_worker", worker)
    with pytest.raises(SystemExit):
        run.main(["--only", "P", "--threads", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert row(out, "P [1t] predict(1 row) latency", says), out


def test_ctrl_c_prints_what_was_measured_marked_interrupted(tmp_path, monkeypatch, capsys):
    """Ctrl-C gave a KeyboardInterrupt traceback and discarded every result
    measured so far."""
    run = load_module("run")

    def worker(task, timeout):
        if task.get("kind") != "gemm":
            return {"ok": True}
        if task["threads"] == 2 and task["peer"] == "dnnfast":
            raise KeyboardInterrupt  # as run_child raises it, having killed the worker
        return {"ok": True, "cases": [dict(c, seconds=1e-3) for c in task["cases"]]}

    monkeypatch.setattr(run, "run_worker", worker)
    out = tmp_path / "run.json"
    with pytest.raises(KeyboardInterrupt):
        run.main(["--only", "G", "--threads", "1,2", "--repeats", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert "INTERRUPTED (Ctrl-C)" in text
    assert table_row(text, "square 1024")[3:5] == ["2147.5", "2147.5"], text  # 1 thread: measured
    assert "dnnfast: not run (interrupted)" in text, text  # 2 threads: numpy ran, dnnfast did not
    assert row(text, "G [2t] GEMM squares >= 512", "n/a", "dnnfast not run (interrupted)"), text
    doc = json.loads(out.read_text())
    assert doc["meta"]["interrupted"] is True
    assert {r["id"] for r in doc["runs"]} == {"G/1t/numpy", "G/1t/dnnfast", "G/2t/numpy"}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("cmd", ["--list", "--help", "compare"])
def test_stdout_on_a_full_disk_exits_74(tmp_path, cmd):
    """`python -m benchmarks --list > /dev/full` and `compare.py ... >
    /dev/full` ended in an OSError traceback (status 1)."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps(gemm_doc({"numpy": [1e-3, 2e-3], "dnnfast": [1e-3, 2e-3]})))
    args = ([os.path.join(BENCH, "compare.py"), str(good), str(good)] if cmd == "compare" else
            ["-m", "benchmarks", cmd])
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, *args], cwd=os.path.dirname(BENCH), stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert p.returncode == 74, p.stderr
    assert "cannot write to stdout" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_compare_into_a_pipe_closed_early_ends_quietly(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(gemm_doc({"numpy": [1e-3, 2e-3], "dnnfast": [1e-3, 2e-3]})))
    proc = subprocess.Popen([sys.executable, os.path.join(BENCH, "compare.py"), str(good), str(good)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err


def test_a_failed_info_worker_is_named_not_the_build(monkeypatch, capsys):
    """When the info worker failed, the lines below it said "n/a
    (gemm_kernel() not available)" and "fma_peak_gflops not available", as
    if the build lacked them."""
    run = load_module("run")

    def worker(task, timeout):
        if task.get("kind") == "info":
            return {"ok": False, "error": "timed out after 600 s"}
        if task.get("kind") != "gemm":
            return {"ok": True}
        return {"ok": True, "cases": [dict(c, seconds=1e-3) for c in task["cases"]]}

    monkeypatch.setattr(run, "run_worker", worker)
    with pytest.raises(SystemExit) as e:
        run.main(["--only", "G", "--threads", "1", "--repeats", "1"])
    assert "info" in str(e.value.code)
    out = capsys.readouterr().out
    assert "not available" not in out, out
    assert "info worker: FAILED (timed out after 600 s)" in out
    assert "dnnfast GEMM kernel: n/a (the info worker failed)" in out
    assert "measured FMA peak: n/a (the info worker failed)" in out
    assert row(out, "G 1-thread GEMM 1024^3", "peak n/a (the info worker failed)"), out
