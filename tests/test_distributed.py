"""Data-parallel training over MPI (dnnfast.distributed).

The MPI runs are separate processes: ``mpiexec -n 2`` and ``-n 3`` on
``mpi_worker.py``, which trains every case data-parallel on unequal shards
and, on rank 0, in one process on all the rows; the comparisons are here.
Skipped, with the reason, when mpi4py or mpiexec is not installed.
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dnnfast
from dnnfast import distributed

WORKER = Path(__file__).with_name("mpi_worker.py")
TIMEOUT = 60  # seconds per mpiexec run: a hang fails the test instead of blocking CI


def _mpiexec():
    here = Path(sys.executable).with_name("mpiexec")  # MPICH's wheel installs it next to python
    return str(here) if here.exists() else shutil.which("mpiexec")


MPI_MISSING = None
if importlib.util.find_spec("mpi4py") is None:
    MPI_MISSING = 'mpi4py is not installed (pip install "dnnfast[mpi]")'
elif _mpiexec() is None:
    MPI_MISSING = "no mpiexec found (next to the Python executable or on PATH)"
needs_mpi = pytest.mark.skipif(MPI_MISSING is not None, reason=MPI_MISSING or "")


def _launch(ranks, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # ranks share this machine's cores
    return subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, str(WORKER), *args],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def run(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "result.npz"
    proc = _launch(request.param, str(path))
    assert proc.returncode == 0, f"mpiexec failed:\n{proc.stdout}\n{proc.stderr}"
    with np.load(path) as data:
        result = {k: data[k] for k in data.files}
    assert int(result["size"]) == request.param
    result["errors"] = json.loads(str(result["errors"]))
    return result


def _cases(result, prefix):
    names = sorted({k.split("/")[0] for k in result if k.startswith(prefix) and "/" in k})
    assert names, f"no case starting with {prefix!r} was run"
    return names


def _ranks(result, name):
    return [result[f"{name}/rank{r}"] for r in range(int(result["size"]))]


NET_CASES = [f"net_{dt}_b{b}_s{s}" for dt in ("float64", "float32") for b in ("None", 1, 7) for s in (0, 1)]


@needs_mpi
@pytest.mark.parametrize("name", NET_CASES)
def test_network_fit_equals_one_process(run, name):
    """Network.fit under mpiexec: the parameters after 4 epochs equal one
    process's on all rows (same seed, same global order), for batch, stochastic
    and mini-batch, shuffled or not, and are bit-identical on every rank."""
    ranks = _ranks(run, name)
    single = run[f"{name}/single"]
    for r, p in enumerate(ranks[1:], 1):
        assert np.array_equal(p, ranks[0]), f"rank {r}'s parameters differ from rank 0's"
    rtol = 1e-12 if "float64" in name else 2e-5
    scale = np.abs(single).max()
    np.testing.assert_allclose(ranks[0], single, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(run[f"{name}/cost"], run[f"{name}/cost_single"], rtol=rtol)
    assert not np.array_equal(single, 0)


@needs_mpi
@pytest.mark.parametrize("name", ["opt_adam_wd", "opt_nesterov_schedule", "opt_momentum_val_es"])
def test_fit_options_equal_one_process(run, name):
    """Network.fit's optimizers, weight decay, a schedule, validation, accuracy
    and early stopping under mpiexec equal one process on all the rows."""
    ranks = _ranks(run, name)
    single = run[f"{name}/single"]
    for r, p in enumerate(ranks[1:], 1):
        assert np.array_equal(p, ranks[0]), f"rank {r}'s parameters differ from rank 0's"
    np.testing.assert_allclose(ranks[0], single, rtol=1e-12, atol=1e-12 * np.abs(single).max())
    for key in ("cost", "val_cost", "accuracy", "val_accuracy"):
        if f"{name}/{key}_single" in run:
            np.testing.assert_allclose(run[f"{name}/{key}"], run[f"{name}/{key}_single"], rtol=1e-12)
    if name == "opt_momentum_val_es":
        assert len(run[f"{name}/cost"]) < 30  # it stopped early, on every rank alike


@needs_mpi
def test_ctrl_c_on_one_rank_stops_all_at_the_same_step(run):
    epochs = run["interrupt/epochs"]
    assert (epochs == epochs[0]).all() and epochs[0] == 1  # 11 batches an epoch: step 12 is in epoch 2
    ranks = _ranks(run, "interrupt")
    for r, p in enumerate(ranks[1:], 1):
        assert np.array_equal(p, ranks[0]), f"rank {r}"


@needs_mpi
def test_ctrl_c_on_one_rank_stops_an_estimator_on_all_at_its_last_whole_epoch(run):
    """The estimators' fit runs through the driver: a Ctrl-C seen by one rank
    in epoch 2 stops every rank at the same chunk; each warns and keeps epoch
    1 (weights, n_iter_, t_, loss_curve_, Adam's step count), as one process
    fitting one epoch on all rows."""
    seen = run["est_interrupt/seen"]
    assert (seen == run["est_interrupt/seen_single"]).all(), seen
    ranks = _ranks(run, "est_interrupt")
    for r, p in enumerate(ranks[1:], 1):
        assert np.array_equal(p, ranks[0]), f"rank {r}"
    single = run["est_interrupt/single"]
    np.testing.assert_allclose(ranks[0], single, rtol=1e-12, atol=1e-12 * np.abs(single).max())


@needs_mpi
def test_checkpoint_resume_over_mpi(run):
    """Rank 0 writes the checkpoint and reads it on resume, every rank takes it
    over: 2 + 3 epochs equal 5 in one go, bit for bit, on every rank."""
    for r, p in enumerate(_ranks(run, "checkpoint_resume")):
        assert np.array_equal(p, run["checkpoint_resume/single"]), f"rank {r}"
    assert int(run["checkpoint_resume/epochs"]) == 5


@needs_mpi
@pytest.mark.parametrize("name", ["clf_sgd", "clf_adam", "reg_adam_weighted", "reg_sgd_plain", "reg_poisson",
                                  "clf_partial_fit"])
def test_estimators_equal_one_process(run, name):
    """MLPClassifier / MLPRegressor with sgd (momentum, invscaling, L2) and adam
    (with sample weights), and loss='poisson' (the core's exp + poisson):
    float64 weights and loss curve equal one process's."""
    ranks = _ranks(run, name)
    single = run[f"{name}/single"]
    for r, p in enumerate(ranks[1:], 1):
        assert np.array_equal(p, ranks[0]), f"rank {r}'s weights differ from rank 0's"
    np.testing.assert_allclose(ranks[0], single, rtol=1e-12, atol=1e-12 * np.abs(single).max())
    np.testing.assert_allclose(run[f"{name}/loss_curve"], run[f"{name}/loss_curve_single"], rtol=1e-12)


@needs_mpi
def test_classes_are_those_of_all_ranks(run):
    """Class 2 is only in rank 0's shard; every rank's model still has 3 classes."""
    np.testing.assert_array_equal(run["clf_sgd/classes"], [0, 1, 2])


@needs_mpi
def test_block_splits_rows_evenly(run):
    """Context.block(10): contiguous, in rank order, covering 0..10, sizes differing by at most 1."""
    blocks = run["blocks"]
    assert blocks[0, 0] == 0 and blocks[-1, 1] == 10
    np.testing.assert_array_equal(blocks[1:, 0], blocks[:-1, 1])
    sizes = blocks[:, 1] - blocks[:, 0]
    assert sizes.max() - sizes.min() <= 1


@needs_mpi
@pytest.mark.parametrize("case, kind, text, only_rank", [
    ("nan_input", "ValueError", "X contains NaN", "last"),
    ("estimator_nan", "ValueError", "contains NaN", "last"),
    ("step_fails", "MemoryError", "simulated failure in step 3", "last"),
    ("epochs_differ", "ValueError", "must be the same on every rank", None),
    ("optimizer_differs", "ValueError", "fit's argument optimizer must be the same on every rank", None),
    ("on_nonfinite_differs", "ValueError", "fit's argument on_nonfinite must be the same on every rank", None),
    ("diverges", "NonFiniteError", "training produced NaN or infinity", None),
    ("estimator_lbfgs", "ValueError", "solver='lbfgs' is not supported", None),
    ("estimator_early_stopping", "ValueError", "early_stopping=True is not supported", None),
    ("shard_bad_count", "TypeError", "n_local must be a non-negative integer, got '3'", "last"),
    ("draw_gives_floats", "ValueError", "draw() must give 3 integer row indices", None),
    ("callback_raises", "RuntimeError", "callback failed on the last rank", "last"),
    ("batch_hook_raises", "RuntimeError", "callback failed on the last rank", "last"),
    ("schedule_raises", "ZeroDivisionError", "schedule failed on the last rank", "last"),
    ("checkpoint_differs", "ValueError", "checkpoint is not None must be the same on every rank", None),
    ("alpha_differs", "ValueError", "activations with their parameters", None),
    # each of these hung the ranks that did not fail, or trained different models on them
    ("estimator_y_overflows", "ValueError", "y has values too large for float32", "last"),
    ("partial_fit_nan", "ValueError", "Input y contains NaN", "last"),
    ("partial_fit_classes_missing", "ValueError", "classes must be passed on the first call", "last"),
    ("y_dimensions_differ", "ValueError", "y's dimensions", None),
    ("labels_mix", "ValueError", "class labels mix strings and numbers", None),
    ("sample_weight_on_some_ranks", "ValueError", "row weights (sample_weight or class_weight) must be the same", None),
    ("sparse_csr_refused_on_one_rank", "ValueError", "in the core's sparse form would need", "last"),
])
def test_an_error_on_one_rank_is_raised_on_all(run, case, kind, text, only_rank):
    errors = run["errors"][case]
    size = int(run["size"])
    assert len(errors) == size
    for r, err in enumerate(errors):
        assert err is not None, f"rank {r} raised nothing"
        assert err[0] == kind and text in err[1], (r, err)
    if only_rank == "last":  # the other ranks name the failing one
        for r, err in enumerate(errors[:-1]):
            assert err[1].startswith(f"rank {size - 1} of {size}: "), (r, err)


@needs_mpi
def test_a_callback_on_rank_0_alone_runs_on_every_rank(run):
    """A logger on rank 0 only: rank 0 made collectives the others did not
    (a meaningless TypeError there, a hang on the others). The ranks now
    agree on which hooks any of them has."""
    assert run["errors"]["callback_on_rank_0_only"] == [None] * int(run["size"])


@needs_mpi
def test_a_shard_whose_rows_all_weigh_zero_trains_as_one_process(run):
    """Refused shard by shard ("Sample weights must contain at least one
    non-zero number") though one process accepts the whole data."""
    single = run["zero_weight_shard/single"]
    for local in _ranks(run, "zero_weight_shard"):
        np.testing.assert_allclose(local, single, rtol=1e-12, atol=1e-14)
        assert local.tobytes() == _ranks(run, "zero_weight_shard")[0].tobytes()


@needs_mpi
def test_a_stop_on_one_rank_stops_every_rank_at_the_same_epoch(run):
    """A callback asks to stop on rank 0 only (a wall-clock budget): every rank
    ends after the same epoch instead of waiting in different collectives."""
    assert run["stop_epochs"].tolist() == [2] * int(run["size"])


@needs_mpi
def test_uncaught_error_stops_every_rank():
    """Nobody catches the last rank's error: mpiexec ends (no hang) with a
    failure, and every rank printed the message."""
    proc = _launch(2, "--uncaught")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "not reached" not in out
    assert out.count("X contains NaN") >= 2, out


MISMATCH_CASES = ["learning_rate_init", "solver", "alpha", "class_weight", "max_iter", "batch_size",
                  "hidden_layer_sizes", "partial_fit_classes"]


@pytest.fixture(scope="module")
def mismatches(tmp_path_factory):
    """One ``mpiexec -n 2`` run for every case (the worker stops a case that
    runs past its own timeout and records it as hung)."""
    path = tmp_path_factory.mktemp("mpi") / "mismatch.jsonl"
    try:
        _launch(2, "--mismatch", str(path), *MISMATCH_CASES)
    except subprocess.TimeoutExpired:
        pass  # the cases not written below are reported as not reached
    lines = path.read_text().splitlines() if path.exists() else []
    return {d["case"]: d for d in map(json.loads, lines)}


@needs_mpi
@pytest.mark.parametrize("case", MISMATCH_CASES)
def test_estimator_settings_differing_between_ranks_raise_on_all(mismatches, case):
    """An estimator setting (or partial_fit's classes) that differs on one
    rank: every rank raises the same ValueError naming it and both values --
    no hang, no silently different models."""
    assert case in mismatches, f"{case}: not reached (an earlier case hung or mpiexec failed)"
    result = mismatches[case]
    assert not result.get("hung"), f"{case}: the ranks hung"
    errors = result["errors"]
    assert len(errors) == 2
    name = "classes" if case == "partial_fit_classes" else case
    for r, err in enumerate(errors):
        assert err is not None, f"rank {r} raised nothing"
        assert err[0] == "ValueError" and f"{name} must be the same on every rank" in err[1], (r, err)
        assert "rank 1 has" in err[1], (r, err)
    assert errors[0] == errors[1]


SCENARIO_TIMEOUT = 45  # seconds per mpiexec run (the worker's ranks give up after 20)


def scenario(tmp_path, name, ranks=2):
    """Run mpi_worker's scenario ``name`` under ``mpiexec -n ranks``: each
    rank's outcome, {"result": ...} or {"error": [type, message, code]}. A
    rank that hangs fails the test (it reports itself after its timeout)."""
    path = tmp_path / name
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, str(WORKER), "--scenario", name,
                               str(path)], capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, env=env)
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        out = "mpiexec ran past its timeout"
    outcomes = []
    for r in range(ranks):
        f = path.parent / f"{name}.{r}"
        assert f.exists(), f"rank {r} wrote nothing (hung, or died):\n{out}"
        outcomes.append(json.loads(f.read_text()))
    hung = [r for r, o in enumerate(outcomes) if o.get("hung")]
    assert not hung, f"ranks {hung} hung:\n{out}"
    return outcomes


@needs_mpi
@pytest.mark.parametrize("name, kind, text, code", [
    ("keyboard_interrupt_in_callback", "KeyboardInterrupt", "stop asked on the last rank", None),
    ("sys_exit_in_callback", "SystemExit", "3", 3),
    ("sys_exit_message_in_callback", "SystemExit", "leaving on the last rank", None),
    ("own_sigint_handler_raises", "KeyboardInterrupt", "the user's own handler", None),
    ("sigterm_handler_exits", "SystemExit", "4", 4),
])
def test_keyboard_interrupt_or_system_exit_on_one_rank_ends_the_fit_on_all(tmp_path, name, kind, text, code):
    """A KeyboardInterrupt or SystemExit on the last rank during a fit (from a
    callback, or a signal handler of the user's run inside one) hung the other
    ranks: they are BaseExceptions, not Exceptions. The last rank raises its
    own; the others the same kind, naming it (a SystemExit keeps an integer
    exit code, so every rank exits with the same status)."""
    errors = [o.get("error") for o in scenario(tmp_path, name)]
    assert errors[-1] is not None and errors[-1][0] == kind and errors[-1][1] == text, errors
    for r, err in enumerate(errors[:-1]):
        assert err is not None and err[0] == kind, (r, errors)
        if code is None:
            assert err[1] == f"rank 1 of 2: {text}", (r, errors)
        else:
            assert err[2] == code, (r, errors)


@needs_mpi
@pytest.mark.parametrize("name, kind, text, code", [
    ("own_sigint_handler_raises_mid_step", "KeyboardInterrupt", "the user's own handler", None),
    ("sigterm_handler_exits_mid_step", "SystemExit", "4", 4),
])
def test_a_signal_handler_raising_in_the_middle_of_a_step_ends_the_fit_on_all(tmp_path, name, kind, text, code):
    """A handler of the user's that raises (KeyboardInterrupt, sys.exit) when
    its signal comes at an arbitrary moment, here right after a step's
    Allreduce on the last rank: that rank left the fit there and the others
    waited in the next step's Allreduce for good. Its call is held for the
    ranks' next agreement: every rank ends (the last with its own exception,
    the others with the agreed one), with the same parameters, and the
    handler is back afterwards."""
    outcomes = [o.get("result") for o in scenario(tmp_path, name)]
    for r, res in enumerate(outcomes):
        assert res is not None, (r, outcomes)
        caught, same, back = res
        assert caught is not None and caught[0] == kind, (r, outcomes)
        assert caught[1] == (text if r == len(outcomes) - 1 or code is not None else f"rank 1 of 2: {text}"), \
            (r, outcomes)
        assert caught[2] == code and same and back, (r, outcomes)


@needs_mpi
@pytest.mark.parametrize("name", ["verbose_output_fails_on_rank_0", "progress_output_fails_on_rank_0",
                                  "estimator_verbose_output_fails_on_rank_0"])
def test_rank_0s_output_failing_is_raised_on_all(tmp_path, name):
    """Rank 0 alone writes verbose / progress output: a write that failed
    there (stdout on a full disk) raised on rank 0 alone, and the others
    waited in their next collective for good."""
    errors = [o.get("error") for o in scenario(tmp_path, name)]
    assert errors[0] is not None and errors[0][0] == "OSError" and "No space left" in errors[0][1], errors
    assert errors[1] is not None and errors[1][0] == "OSError", errors
    assert errors[1][1].startswith("rank 0 of 2: ") and "No space left" in errors[1][1], errors


@needs_mpi
def test_ctrl_c_before_the_epoch_loop_stops_every_rank(tmp_path):
    """A real Ctrl-C (every rank gets SIGINT) while rank 0 still checked its
    data: rank 0 raised KeyboardInterrupt there and left the others waiting in
    the agreement for good. Over MPI Ctrl-C is a flag from the fit's first
    collective on: every rank stops with a KeyboardInterrupt, before any step,
    and Python's handler is back afterwards."""
    for r, o in enumerate(scenario(tmp_path, "ctrl_c_while_checking_data")):
        assert "result" in o, (r, o)
        caught, handler_back = o["result"]
        assert caught is not None and caught[0] == "KeyboardInterrupt", (r, o)
        assert "after 0 completed epochs" in caught[1], (r, o)
        assert handler_back, r


@needs_mpi
def test_ctrl_c_while_an_estimator_checks_its_data_stops_every_rank_unfitted(tmp_path):
    """As in one process, where Python's KeyboardInterrupt comes during the
    checks: over MPI the Ctrl-C (a flag) was first read in the epoch loop,
    which an estimator's fit takes as scikit-learn's interrupted training
    (warn, return): every rank returned the initial weights as fitted."""
    for r, o in enumerate(scenario(tmp_path, "estimator_ctrl_c_while_checking_data")):
        assert "result" in o, (r, o)
        caught, handler_back, fitted = o["result"]
        assert caught is not None and caught[0] == "KeyboardInterrupt", (r, o)
        assert handler_back and not fitted, (r, o)


def _raised_on_all(outcomes, kind, text):
    """Every rank raised ``kind`` with ``text``; the others than the last name it."""
    errors = [o.get("error") for o in outcomes]
    size = len(errors)
    for r, err in enumerate(errors):
        assert err is not None and err[0] == kind and text in err[1], (r, errors)
        if r < size - 1:
            assert err[1].startswith(f"rank {size - 1} of {size}: "), (r, errors)


@needs_mpi
def test_an_invalid_seed_on_one_rank_is_raised_on_all(tmp_path):
    """fit(seed=-1) on one rank: its generator was made outside the agreed
    checks, so that rank raised alone and the others hung."""
    _raised_on_all(scenario(tmp_path, "bad_seed_on_one_rank"), "ValueError", "seed must be None")


@needs_mpi
@pytest.mark.parametrize("name, text", [
    ("nan_written_after_the_last_epoch_on_one_rank", "written into them by a callback"),
    ("nan_written_within_an_epoch_on_one_rank", "training produced NaN or infinity in epoch 1"),
])
def test_nan_in_one_ranks_parameters_is_raised_on_all(tmp_path, name, text):
    """A callback writes NaN into the last rank's parameters: the fit's
    non-finite checks (each epoch's, and the one at its end) ran on each rank
    alone, so that rank raised NonFiniteError and the others hung."""
    outcomes = scenario(tmp_path, name)
    assert outcomes[-1]["error"][0] == "NonFiniteError", outcomes
    for r, o in enumerate(outcomes):
        assert "error" in o and text in o["error"][1], (r, outcomes)
    assert outcomes[0]["error"][1].startswith("rank 1 of 2: NonFiniteError: "), outcomes
    assert outcomes[0]["error"][0] == "ValueError", outcomes  # NonFiniteError's base, which `except` may name


@needs_mpi
@pytest.mark.parametrize("name, epoch", [("nan_written_within_an_epoch_leaves_one_model", 1),
                                         ("nan_written_between_epochs_leaves_one_model", 2)])
def test_nan_in_one_ranks_parameters_leaves_one_model(tmp_path, name, epoch):
    """Within an epoch, the epoch's check failed on the poisoned rank alone,
    which restored its parameters from before the epoch, as the message on
    every rank says; the others kept theirs and the ranks' models differed.
    Between epochs, the NaN reaches every rank's next step and every check
    fails, but the poisoned rank's restore point holds it: each rank kept
    its own restore and message. Every rank now takes the lowest failing
    rank's parameters, which its message (raised on all) describes."""
    for r, o in enumerate(scenario(tmp_path, name)):
        assert o.get("result") is not None, (r, o)
        kind, text, same, start = o["result"]
        assert kind in ("NonFiniteError", "ValueError") and same, (r, o)
        assert f"the parameters are those from before epoch {epoch}" in text, (r, o)
        assert start == (epoch == 1), (r, o)


@needs_mpi
@pytest.mark.parametrize("name", ["network_fit_from_a_callback", "estimator_fit_from_a_callback"])
def test_a_fit_from_a_callback_of_a_distributed_fit_is_refused(tmp_path, name):
    """A callback on rank 0 fits another model inside the outer fit's Context:
    its collectives met the outer fit's on the other ranks (every rank hung,
    or a misleading "ranks reached different collectives"). It is refused on
    rank 0, and that error ends the outer fit on every rank."""
    errors = [o.get("error") for o in scenario(tmp_path, name)]
    for r, err in enumerate(errors):
        assert err is not None and err[0] == "RuntimeError", (r, errors)
        assert "from a callback of a distributed fit" in err[1] and "COMM_SELF" in err[1], (r, errors)
    assert errors[1][1].startswith("rank 0 of 2: "), errors


@needs_mpi
def test_a_fit_over_comm_self_from_a_callback_runs(tmp_path):
    """The way out the refusal names: a Context of its own over MPI.COMM_SELF
    trains the probe on rank 0 alone; the outer fit goes on, the same on every rank."""
    assert [o.get("result") for o in scenario(tmp_path, "fit_over_comm_self_from_a_callback")] == [True, True]


@needs_mpi
@pytest.mark.parametrize("name, mine, theirs, text", [
    ("json_error_in_callback", "JSONDecodeError", "ValueError", "JSONDecodeError: Expecting property name"),
    ("file_not_found_in_callback", "FileNotFoundError", "OSError", "FileNotFoundError: [Errno 2]"),
    ("error_without_str_in_callback", "_StrFails", "RuntimeError", "_StrFails: <str() failed"),
])
def test_an_error_reaches_the_other_ranks_as_its_nearest_portable_type(tmp_path, name, mine, theirs, text):
    """A ValueError subclass (json's JSONDecodeError) reached the other ranks
    as a RuntimeError, an `except ValueError` missing it there; an exception
    whose str() fails was formatted between the agreement's two collectives,
    and the other ranks hung. They now get the nearest type of the error's
    MRO that every rank can make, its own name leading the message."""
    errors = [o.get("error") for o in scenario(tmp_path, name)]
    assert errors[1] is not None and errors[1][0] == mine, errors
    assert errors[0] is not None and errors[0][0] == theirs, errors
    assert errors[0][1].startswith("rank 1 of 2: " + text), errors


@needs_mpi
def test_warm_start_takes_all_ranks_classes(tmp_path):
    """A class in one rank's rows only: the warm fit and partial_fit compared
    the local classes with the fitted ones and were refused on every rank."""
    results = [o.get("result") for o in scenario(tmp_path, "warm_start_with_a_class_on_one_rank_only")]
    assert results[0] is not None and results == [results[0]] * len(results), results
    assert results[0]["classes"] == [0, 1, 2]


@needs_mpi
def test_an_exit_code_that_cannot_be_pickled_ends_every_rank(tmp_path):
    """sys.exit(IntEnum member of a local class): its code could not be sent,
    the failing rank raised a pickling error and the others hung."""
    outcomes = scenario(tmp_path, "exit_with_an_int_enum_code_on_one_rank")
    assert [o.get("error", [None])[0] for o in outcomes] == ["SystemExit", "SystemExit"], outcomes
    assert [o["error"][2] for o in outcomes] == [4, 4], outcomes


@needs_mpi
@pytest.mark.parametrize("name", ["continued_partial_fit", "continued_invscaling_fit",
                                  "continued_fit_stopping_on_tol"])
def test_a_continued_estimator_goes_on_from_rank_0s_whole_training_state(tmp_path, name):
    """Each rank fitted its own model before the Context, then all continue
    it inside one (partial_fit, warm_start). Only the weights were broadcast:
    each rank went on with its own t_, solver state (Adam's moments and step
    count, the invscaling rate) and stopping record, and ended with other
    weights, or stopped on tol alone while the others waited for good. Every
    rank now takes rank 0's whole state: the same weights everywhere, those
    of rank 0's model continued in one process on all the rows."""
    results = [o.get("result") for o in scenario(tmp_path, name)]
    assert all(res is not None for res in results), results
    for r, res in enumerate(results[1:], 1):
        assert res["P"] == results[0]["P"], f"rank {r}'s weights differ from rank 0's"
        assert (res["n_iter"], res["t"]) == (results[0]["n_iter"], results[0]["t"]), r
    assert results[0]["n_iter"] == results[0]["ref_n_iter"]
    np.testing.assert_allclose(results[0]["P"], results[0]["ref"], rtol=1e-12, atol=1e-12)


@needs_mpi
def test_mismatch_messages_name_the_fit_arguments(tmp_path):
    """A seed or validation_data given on some ranks only was named by its
    inner setting ("fit's argument seeded", "validation"), not an argument of fit."""
    for r, o in enumerate(scenario(tmp_path, "mismatch_messages_name_fit_arguments")):
        seed, validation = o["result"]
        assert seed.startswith("fit's argument seed is not None must be the same on every rank"), (r, seed)
        assert validation.startswith("fit's argument validation_data is not None must be the same"), (r, validation)


@needs_mpi
def test_context_communicators(tmp_path):
    """A freed or null communicator raised mpi4py's bare "Invalid communicator"
    from inside Context; COMM_WORLD in a base-class wrapper (MPI.Comm(comm), an
    intra-communicator) was refused. The first two are refused by name, the
    third trains as COMM_WORLD."""
    for r, o in enumerate(scenario(tmp_path, "context_communicators")):
        freed, null, wrapped = o["result"]
        for got in (freed, null):
            assert got[0] == "ValueError" and "MPI.COMM_NULL" in got[1], (r, got)
        assert wrapped == [2, True], (r, wrapped)


def test_missing_mpi4py_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(ImportError, match=r"dnnfast\[mpi\]"):
        distributed.Context()


def test_no_context_by_default():
    """Outside a Context, fit is the ordinary one-process fit."""
    assert distributed.current() is None
    X = np.random.default_rng(0).normal(size=(20, 3))
    net = dnnfast.Network([3, 2], ["softmax"], dtype="float64", seed=0)
    hist = net.fit(X, (X[:, 0] > 0).astype(np.int64), epochs=2)
    assert len(hist.cost) == 2


def test_exit_without_enter_is_explained():
    """Context.__exit__ of a context not entered on this thread names the
    misuse instead of raising list.remove's ValueError."""
    pytest.importorskip("mpi4py")
    ctx = distributed.Context()
    with pytest.raises(RuntimeError, match=r"not active in this thread.*with Context"):
        ctx.__exit__(None, None, None)
    with ctx:
        assert distributed.current() is ctx
    with pytest.raises(RuntimeError, match="not active"):
        ctx.__exit__(None, None, None)  # a second exit
    assert distributed.current() is None


def test_a_handler_chained_to_a_held_one_during_a_fit_still_reaches_the_users():
    """A callback that chains a handler of its own to the one getsignal gives
    during a distributed fit chains to dnnfast's holder: after the fit that
    holder kept the calls for an agreement that never came, and the user's
    handler never ran again."""
    pytest.importorskip("mpi4py")
    from mpi4py import MPI

    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1")
    calls = []

    def user(s, f):
        calls.append("user")

    class Chain:
        def on_epoch_end(self, net, epoch, logs):
            prev = signal.getsignal(signal.SIGUSR1)

            def chained(s, f):
                calls.append("chained")
                prev(s, f)

            if epoch == 0:
                signal.signal(signal.SIGUSR1, chained)
            return False

    old = signal.signal(signal.SIGUSR1, user)
    try:
        X = np.random.default_rng(0).normal(size=(32, 3))
        net = dnnfast.Network([3, 4, 1], ["relu", "identity"], loss="mse", seed=0)
        with distributed.Context(MPI.COMM_SELF):
            net.fit(X, X[:, :1], epochs=2, callbacks=[Chain()])
        signal.raise_signal(signal.SIGUSR1)
        assert calls == ["chained", "user"]
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_a_sparse_X_trains_one_batch_of_rows_dense_at_a_time_as_its_dense_form(monkeypatch):
    """Data-parallel sgd / adam (here over MPI.COMM_SELF, this process alone)
    make each batch's rows of a sparse X dense in turn (each rank made its
    whole shard dense): the weights and loss curve of the dense X, bit for
    bit, with sample weights, one-row batches and shuffled epochs."""
    pytest.importorskip("mpi4py")
    sparse = pytest.importorskip("scipy.sparse")
    import warnings

    from mpi4py import MPI

    rng = np.random.default_rng(0)
    n, m = 300, 45
    D = np.where(rng.random((n, m)) < 0.3, rng.standard_normal((n, m)), 0.0)  # (made dense: above CORE_CSR_MAX_DENSITY)
    y, w = rng.integers(0, 3, n), rng.random(n)
    largest = [0]
    toarray = sparse.csr_matrix.toarray
    from dnnfast._train import rows
    monkeypatch.setattr(rows, "DENSE_CHUNK_BYTES", 1)  # (an X this small is otherwise made dense at once)

    def recording(self, *args, **kwargs):
        largest[0] = max(largest[0], self.shape[0])
        return toarray(self, *args, **kwargs)

    for solver, batch in (("adam", 7), ("sgd", 1), ("adam", "auto")):
        kw = dict(hidden_layer_sizes=(9,), solver=solver, batch_size=batch, max_iter=2, random_state=0)
        with warnings.catch_warnings(), distributed.Context(MPI.COMM_SELF):
            warnings.simplefilter("ignore")
            dense = dnnfast.MLPClassifier(**kw).fit(D, y, sample_weight=w)
            largest[0] = 0
            with monkeypatch.context() as patch:
                patch.setattr(sparse.csr_matrix, "toarray", recording)
                fit = dnnfast.MLPClassifier(**kw).fit(sparse.csr_matrix(D), y, sample_weight=w)
        for a, b in zip(dense.coefs_ + dense.intercepts_, fit.coefs_ + fit.intercepts_):
            assert np.array_equal(a, b), (solver, batch)
        assert dense.loss_curve_ == fit.loss_curve_, (solver, batch)
        assert largest[0] == (200 if batch == "auto" else batch), (solver, batch, largest[0])
