"""The time-to-quality benchmark runs end to end in its smallest setting (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.dataset_fixtures import idx_folder

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_quality.py"


def test_time_to_quality_quick_runs_every_arm(tmp_path):
    idx_folder(tmp_path / "fashion", n_train=256, n_test=32)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data", str(tmp_path / "fashion")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "fixed budget: 1 epochs" in out and "fixed budget: 1 s" in out
    for arm in ("ref", "mlp", "conv", "resnet"):
        assert out.count(f"\n{arm} ") == 2, out


def test_gpu_throughput_quick_runs_every_arm_on_cpu():
    script = SCRIPT.parent / "gpu_throughput.py"
    out = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--quick", "--threads", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    for arm in ("vaekit bf16+cl", "vaekit fp32", "plain fp32"):
        assert f"{arm}: " in out and "(epochs: 1)" in out, out
    assert out.count("ratio ") == 3, out


def test_cli_startup_times_the_installed_command():
    script = SCRIPT.with_name("cli_startup.py")
    out = subprocess.run(
        [sys.executable, str(script), "--runs", "1", "--tree", str(SCRIPT.parents[1])],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "vaekit --help: 1 runs each" in out and "wall median" in out
