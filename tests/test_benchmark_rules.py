"""The benchmark suite's reliability rules for threads on cores far apart
(benchmarks/workloads.py, run.py and worker.py in the source tree; skipped
where the tests run without it). No timing is asserted: the probe's figure
is only checked to be a positive ratio, and the rules are fed figures.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "benchmarks")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(BENCH, "workloads.py")),
                                reason="the benchmarks/ directory of the source tree is not here")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, BENCH)
    try:
        mods = {}
        for name in ("workloads", "worker", "run"):
            spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mods[name] = mod
        yield mods
    finally:
        sys.path.remove(BENCH)


def test_far_cores_names_only_peers_with_a_far_run(bench):
    wl = bench["workloads"]
    far = wl.FAR_CORES
    reasons = wl.far_cores({"dnnfast": [1.0, far + 0.5, 1.1], "PyTorch": [1.0, far], "JAX": None, "NumPy": []})
    assert len(reasons) == 1
    assert reasons[0].startswith("dnnfast: cores far apart in 1 of 3 runs")
    assert f"{far + 0.5:.1f}x" in reasons[0]
    assert wl.far_cores({"dnnfast": [far, 1.0]}) == []


def test_cross_core_runs_take_the_larger_figure_of_each_good_run(bench):
    run = bench["run"]
    results = [{"ok": True, "cross_core": [1.1, 2.0]}, {"ok": True, "cross_core": [None, 1.2]},
               {"ok": True, "cross_core": [None, None]}, {"ok": True}, {"ok": False, "cross_core": [3.0, 3.0]}]
    assert run.cross_core_runs(results) == [2.0, 1.2]


def test_cross_core_note(bench):
    run = bench["run"]
    far = bench["workloads"].FAR_CORES
    assert run.cross_core_note({"dnnfast": [], "PyTorch": []}) is None
    note = run.cross_core_note({"dnnfast": [1.0, 1.2], "PyTorch": [1.1, far + 1]})
    assert "dnnfast 1.0-1.2x," in note and f"PyTorch 1.1-{far + 1:.1f}x (1 of 2 runs far)" in note


def test_far_cores_make_a_target_unreliable(bench):
    run = bench["run"]
    far = bench["workloads"].FAR_CORES
    runs = {"dnnfast": [150e3, 151e3, 152e3], "reference": [70e3, 71e3, 72e3]}
    summary = {"train": {"W1/2": {"samples_per_s": {k: v[1] for k, v in runs.items()}, "runs": runs,
                                  "errors": {}, "cores": {"dnnfast": 2.0, "reference": 2.0},
                                  "cross_core": {"dnnfast": [1.0, 1.1, 1.0], "reference": [1.0, far + 0.4, 1.0]}}},
               "gemm": {}, "predict": {}, "memory": None, "scaling": None}
    targets = run.check_targets(["W1"], [2], summary, lambda dtype, th: None, 0.0, 2)
    t = [t for t in targets if t["target"].startswith("W1 [2t] dnnfast >= 2x NumPy")][0]
    assert t["verdict"] == "PASS" and t["status"] == "UNRELIABLE"
    assert any("cores far apart in 1 of 3 runs" in why for why in t["unreliable"])
    summary["train"]["W1/2"]["cross_core"]["reference"] = [1.0, 1.2, 1.0]
    t = [t for t in run.check_targets(["W1"], [2], summary, lambda dtype, th: None, 0.0, 2)
         if t["target"].startswith("W1 [2t] dnnfast >= 2x NumPy")][0]
    assert t["status"] == "PASS", t


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_setaffinity")
def test_cross_core_probe_restores_the_cpus_and_needs_two(bench):
    worker = bench["worker"]
    before = os.sched_getaffinity(0)
    r = worker.cross_core_slowdown(nbytes=1 << 20, reps=1)
    assert r > 0
    assert os.sched_getaffinity(0) == before
    # Confined to one CPU, it measures nothing (in a child, so this process keeps its CPUs).
    code = ("import os, sys; sys.path.insert(0, %r); os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "import worker; print(worker.cross_core_slowdown(nbytes=1 << 20, reps=1))" % BENCH)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


def test_only_refuses_an_empty_selection_and_runs_each_workload_once(bench):
    """An empty --only ran the whole 15-minute suite, "--only ," nothing at
    all, "--only M,M" M twice, and named suites beside --only were dropped."""
    run = bench["run"]

    class Refused(Exception):
        pass

    def error(msg):
        raise Refused(msg)

    for only in ("", ",", " , "):
        with pytest.raises(Refused, match="no workload given"):
            run.selection([], only, error)
    assert run.selection([], "m,W1,M", error) == (["W1", "M"], [])
    with pytest.raises(Refused, match="not both"):
        run.selection(["gemm"], "M", error)
    assert run.selection([], None, error)[0] == run.ALL_KEYS


def test_json_with_script_suites_alone_is_a_usage_error(bench, capsys, monkeypatch):
    """--json was silently not written when only script suites ran."""
    run = bench["run"]
    for start in ("run", "Popen"):
        monkeypatch.setattr(subprocess, start, lambda *a, **k: pytest.fail("a script started"))
    for suites in (["estimators"], ["activations"], ["estimators", "activations"]):
        with pytest.raises(SystemExit) as info:
            run.main([*suites, "--json", "out.json"])
        assert info.value.code == 2
        assert "--json" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--threads", "abc"], "--threads"), (["--threads", "0"], "--threads"), (["--threads", "1,-1"], "--threads"),
    (["--threads", "100000"], "--threads"), (["--threads", f"1,{max(2, os.cpu_count()) + 1}"], "--threads"),
    (["--repeats", "0"], "--repeats must be >= 1"), (["--repeats", "-1"], "--repeats must be >= 1"),
    (["--timeout", "0"], "--timeout"), (["--timeout", "9999999999"], "--timeout"),
    (["--timeout", "1e300"], "--timeout"), (["--timeout", "nan"], "--timeout"),
    (["--json", "/nonexistent-dir/x.json"], "--json: no directory"),
])
def test_bad_arguments_are_usage_errors_before_anything_runs(bench, capsys, args, message):
    """--threads abc was a traceback, 0 ran a thread-less "PASS", --repeats 0
    silently became 5, and a --json into a missing folder failed after the run."""
    with pytest.raises(SystemExit) as info:
        bench["run"].main(["--only", "M", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def _w1_summary(sps):
    runs = {"dnnfast": [sps] * 3, "reference": [sps / 2] * 3}
    return {"train": {"W1/1": {"samples_per_s": {k: v[0] for k, v in runs.items()}, "runs": runs, "errors": {},
                               "cores": {"dnnfast": 1.0, "reference": 1.0}, "cross_core": {}}},
            "gemm": {}, "predict": {}, "memory": None, "scaling": None}


def test_the_w1_peak_share_is_never_above_100_percent_and_a_low_peak_is_unreliable(bench):
    """A W1 rate above the measured peak printed "122%" and PASSed, even when
    the run's own tables had found the peak measured low."""
    run, wl = bench["run"], bench["workloads"]
    gflops = 52.5
    sps = gflops * 1e9 / wl.flops_per_sample(wl.WORKLOADS["W1"]["sizes"])

    def target(peak, peak_low=()):
        ts = run.check_targets(["W1"], [1], _w1_summary(sps), lambda dtype, th: peak, 0.0, 2,
                               peak_low=peak_low, kernel="avx512f")
        return [t for t in ts if "of the float32 FMA peak" in t["target"]][0]

    t = target(43.1)
    assert t["status"] == "UNRELIABLE" and t["detail"].startswith(">100%"), t
    t = target(70.0, peak_low={("float32", 1)})
    assert t["status"] == "UNRELIABLE" and t["detail"].startswith("75%"), t
    assert target(70.0)["status"] == "PASS"


def test_a_spread_just_over_the_limit_is_not_printed_as_equal_to_it(bench):
    run, wl = bench["run"], bench["workloads"]
    xs = [1.0, 1.0, 1.0 + wl.MAX_SPREAD + 0.003]
    (why,) = run.unreliable_reasons(None, 2, {"x": xs})
    assert f"{100 * wl.spread(xs):.1f}% > {100 * wl.MAX_SPREAD:.0f}%" in why
    assert f"{100 * wl.MAX_SPREAD:.0f}% > {100 * wl.MAX_SPREAD:.0f}%" not in why


def test_gemm_targets_only_at_the_thread_counts_asked_for(bench):
    """The 1-thread 1024^3 run made for the peak check was reported as
    "G [1t] GEMM squares >= 512" in a --threads 2 run."""
    case = {"group": "square", "M": 1024, "N": 1024, "K": 1024, "numpy_gflops": 50.0, "dnnfast_gflops": 60.0,
            "numpy_seconds": [1.0, 1.0, 1.0], "dnnfast_seconds": [0.8, 0.8, 0.8]}
    summary = {"train": {}, "gemm": {1: {"square 1024": case}, 2: {"square 1024": case}}, "gemm_cross_core": {},
               "predict": {}, "memory": None, "scaling": None}
    names = [t["target"] for t in bench["run"].check_targets(["G"], [2], summary, lambda d, t: 100.0, 0.0, 2)]
    assert any(n.startswith("G [2t] GEMM squares") for n in names)
    assert not any(n.startswith("G [1t] GEMM squares") for n in names)
    assert "G 1-thread GEMM 1024^3 float32 >= 75% of FMA peak" in names


PEER_PROCESS = """
import os, sys, types
sys.path.insert(0, {bench!r})
# Stand-ins for the optional peers: only what set_threads touches.
torch = types.ModuleType("torch")
torch.set_num_threads = lambda n: setattr(torch, "threads", n)
sys.modules["torch"] = torch
import worker
worker.set_threads({peer!r}, 1)
if {peer!r} == "numpy":
    worker.TASKS["gemm"](dict(peer="numpy", dtype="float32", min_time=0.0, cases=[
        dict(label="t", group="t", M=4, N=4, K=4, trans_a=True, trans_b=False)]))
if {peer!r} == "torch":
    assert torch.threads == 1
print("dnnfast" in sys.modules)
"""


@pytest.mark.parametrize("peer", ["torch", "sklearn", "jax", "numpy", "dnnfast", "reference"])
def test_only_the_dnnfast_peers_processes_import_dnnfast(peer):
    """Every peer's worker process (PyTorch's, scikit-learn's, JAX's,
    numpy.matmul's) imported dnnfast to call dnnfast.set_num_threads: the
    yardstick never imports what it measures."""
    code = PEER_PROCESS.format(bench=BENCH, peer=peer)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(peer in ("dnnfast", "reference")), out.stdout


def test_the_gemm_peak_share_is_never_above_100_percent(bench):
    """The 1-thread GEMM 1024^3 target printed "58.0 of 44.6 GFLOP/s =
    130.0%" where the W1 share and the tables print >100% / >peak*."""
    case = {"group": "square", "M": 1024, "N": 1024, "K": 1024, "numpy_gflops": 60.0, "dnnfast_gflops": 58.0,
            "numpy_seconds": [0.036, 0.036], "dnnfast_seconds": [0.037, 0.037]}
    summary = {"train": {}, "gemm": {1: {"square 1024": case}}, "gemm_cross_core": {}, "predict": {},
               "memory": None, "scaling": None}

    def target(peak):
        ts = bench["run"].check_targets(["G"], [1], summary, lambda d, t: peak, 0.5, 2, kernel="avx512f")
        return [t for t in ts if t["target"].startswith("G 1-thread GEMM 1024^3")][0]

    t = target(44.6)
    assert t["detail"].startswith(">100% (58.0 GFLOP/s") and "130" not in t["detail"], t
    assert t["status"] == "UNRELIABLE" and "a GEMM ran faster than the measured 1-thread peak" in t["unreliable"]
    t = target(70.0)
    assert t["detail"] == "58.0 of 70.0 GFLOP/s = 82.9%" and t["status"] == "PASS", t


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_setaffinity")
def test_jax_at_one_thread_is_confined_by_affinity_and_gets_only_real_xla_flags():
    """XLA_FLAGS held "intra_op_parallelism_threads=1", no XLA flag (XLA
    ignores a token without "--", and refuses an unknown one with it)."""
    code = ("import os, sys; sys.path.insert(0, %r); os.environ.pop('XLA_FLAGS', None); import worker; "
            "worker.set_threads('jax', 1); print(len(os.sched_getaffinity(0))); print(os.environ['XLA_FLAGS'])"
            % BENCH)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cpus, flags = out.stdout.splitlines()
    assert cpus == "1"
    assert flags.split() == ["--xla_cpu_multi_thread_eigen=false"], flags
