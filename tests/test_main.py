"""python -m dnnfast: the main job trains on the shipped digits and reaches 95%."""
import os
import re
import subprocess
import sys

import pytest


def test_main_job_reaches_95_percent_and_reports_speed():
    out = subprocess.run([sys.executable, "-m", "dnnfast", "--threads", "1"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    acc = float(re.search(r"dnnfast: .* test accuracy ([0-9.]+)%", out.stdout).group(1))
    assert acc >= 95.0
    assert re.search(r"speed-up: +[0-9.]+x", out.stdout)
    assert "epoch  30/30" in out.stdout


def test_main_job_rejects_bad_arguments():
    out = subprocess.run([sys.executable, "-m", "dnnfast", "--dtype", "float16"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "float16" in out.stderr


def test_a_network_too_large_for_memory_is_a_usage_error_naming_hidden():
    """It was a traceback after the banner, with exit status 1 (which means
    "accuracy below 95%")."""
    out = subprocess.run([sys.executable, "-m", "dnnfast", "--hidden", "1000000000000", "--no-reference"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "argument --hidden" in out.stderr and "memory" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""  # before the banner


def test_ctrl_c_ends_the_main_job_with_the_epochs_done_and_no_traceback():
    """It printed a traceback saying "after 0 completed epochs" (the job
    calls fit once an epoch) after a thousand epochs."""
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "dnnfast", "--epochs", "100000", "--no-reference", "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("dnnfast ")
        p.stdout.readline()  # the first epoch's line: inside the loop now
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err
    done = int(re.search(r"interrupted after (\d+) of 100000 epochs", err).group(1))
    assert done >= 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_help_into_a_full_disk_exits_74():
    """--help > /dev/full exited 0 with nothing written (argparse drops the
    OSError), where the exit statuses --help lists say 74."""
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "dnnfast", "--help"], stdout=full, stderr=subprocess.PIPE,
                             text=True, timeout=60)
    assert out.returncode == 74, out.stderr
    assert "cannot write to stdout" in out.stderr and "Traceback" not in out.stderr
    ok = subprocess.run([sys.executable, "-m", "dnnfast", "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "74" in ok.stdout and "usage: python -m dnnfast" in ok.stdout


@pytest.mark.parametrize("args", [["--epochs", "1", "--threads", "1", "--no-reference"], ["--help"]],
                         ids=["run", "help"])
def test_a_closed_stdout_exits_74_before_training(args):
    """Started with stdout closed (`>&-`, sys.stdout is None): the run trained
    with its report dropped, then ended in an AttributeError traceback and
    status 1 ("accuracy below 95%"); --help too."""
    out = subprocess.run([sys.executable, "-m", "dnnfast", *args], stderr=subprocess.PIPE, text=True, timeout=120,
                         preexec_fn=lambda: os.close(1))
    assert out.returncode == 74, out.stderr
    assert out.stderr == "python -m dnnfast: cannot write to stdout: stdout is closed\n"


def test_training_that_diverges_ends_in_one_line_naming_the_learning_rate():
    """Valid options whose training diverges (a rate of 1 on wide layers, one
    row a step) ended in a NonFiniteError traceback with status 1, which
    --help says means "accuracy below 95%"."""
    out = subprocess.run([sys.executable, "-m", "dnnfast", "--learning-rate", "1", "--hidden", "1000", "1000",
                          "--batch-size", "1", "--epochs", "3", "--no-reference", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert re.match(r"python -m dnnfast: training diverged in epoch 1 of 3 \(NaN or infinity in .*\); "
                    r"lower --learning-rate \(now 1\)$", out.stderr), out.stderr
    assert out.stdout.startswith("dnnfast ")  # the banner, then no report of a finished run
    assert "test accuracy" not in out.stdout
