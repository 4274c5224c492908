"""python -m dnnfast: the main job trains on the shipped digits and reaches 95%."""
import re
import subprocess
import sys


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
