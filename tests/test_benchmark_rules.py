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
