"""The time-to-quality benchmark runs end to end in its smallest setting (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dataset_fixtures import idx_folder

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def run_benchmark(name: str, *args: str, timeout: int = 300) -> str:
    """The stdout of ``benchmarks/NAME`` run with ``args`` (it must exit 0)."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout


def test_time_to_quality_quick_runs_every_arm(tmp_path):
    idx_folder(tmp_path / "fashion", n_train=256, n_test=32)
    out = run_benchmark("time_to_quality.py", "--quick", "--data", str(tmp_path / "fashion"))
    assert "fixed budget: 1 epochs" in out and "fixed budget: 1 s" in out
    for arm in ("ref", "mlp", "conv", "resnet"):
        assert out.count(f"\n{arm} ") == 2, out


def test_train_throughput_alternates_fair_arms():
    out = run_benchmark(
        "train_throughput.py", "--encoder", "mlp", "--epochs", "2", "--images", "512", "--random"
    )
    assert "both Adam(fused=True)" in out and "ratio vaekit / plain" in out


def test_time_to_quality_gives_encoder_and_decoder_their_own_options_after_a_slash(monkeypatch):
    spec = importlib.util.spec_from_file_location("ttq", BENCHMARKS / "time_to_quality.py")
    ttq = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ttq", ttq)  # its dataclasses look their module up
    spec.loader.exec_module(ttq)

    def norms(module):
        return {type(m).__name__ for m in module.modules() if "Norm" in type(m).__name__}

    split = ttq.make_arm("resnet:width=8,norm=batch/norm=identity", (1, 28, 28), 4).model
    assert norms(split.encoder) == {"BatchNorm2d"} and norms(split.decoder) == set()
    shared = ttq.make_arm("resnet:width=8,norm=batch", (1, 28, 28), 4).model
    assert norms(shared.encoder) == norms(shared.decoder) == {"BatchNorm2d"}


def test_gpu_throughput_quick_runs_every_arm_on_cpu():
    out = run_benchmark("gpu_throughput.py", "--device", "cpu", "--quick", "--threads", "1")
    for arm in ("vaekit bf16+cl", "vaekit fp32", "plain fp32"):
        assert f"{arm}: " in out and "(epochs: 1)" in out, out
    assert out.count("ratio ") == 3, out


def test_cli_startup_times_the_installed_command():
    out = run_benchmark("cli_startup.py", "--runs", "1", "--tree", str(REPO), timeout=120)
    assert "vaekit --help: 1 runs each" in out and "wall median" in out


def test_frechet_reference_agrees_with_vaekit_on_gaussian_features():
    out = run_benchmark("frechet_reference.py", "--quick", "--samples", "300", timeout=120)
    assert out.count("reference") == 4, out
    worst = float(out.rsplit("largest relative difference: ", 1)[1])
    assert worst < 1e-6, out


def test_latent_dataset_memory_checks_every_row_in_its_smallest_setting():
    out = run_benchmark(
        "latent_dataset_memory.py", "--sizes", "300", "600", "--runs", "1", "--epochs", "1"
    )
    assert "every row once per epoch: checked" in out and "ratio 600 / 300" in out
    assert "2 workers" in out


@pytest.mark.slow
def test_latent_scores_runs_end_to_end(tmp_path):
    out = run_benchmark(
        "latent_scores.py", "--n", "300", "--epochs", "1", "--work", str(tmp_path), timeout=600
    )
    assert out.count("per factor") == 2 and "Smiling" in out, out
    scores = json.loads(out.strip().splitlines()[-1])
    assert (
        set(scores["vae"]["probe"]) == set(scores["pca"]["probe"]) and scores["rows_scored"] == 300
    )


def test_encode_memory_measures_both_arms_on_idx_files(tmp_path):
    idx_folder(tmp_path / "fashion", n_train=300, n_test=20)
    out = run_benchmark(
        "encode_memory.py",
        "--data",
        str(tmp_path / "fashion"),
        "--runs",
        "1",
        "--train-images",
        "100",
    )
    assert "--split train (270 rows; same mu in both: True)" in out, out
    assert "ratio vaekit / hand-written: " in out, out


def test_evaluate_speed_alternates_the_arms_and_measures_each_alone(tmp_path):
    idx_folder(tmp_path / "fashion", n_train=256, n_test=40)
    out = run_benchmark(
        "evaluate_speed.py",
        *("--data", str(tmp_path / "fashion"), "--encoder", "mlp", "--train-images", "256"),
        *("--images", "32", "--iwae-k", "10", "--rounds", "2", "--threads", "1"),
    )
    for arm in ("evaluate", "evaluate_model", "plain"):
        assert f"\n{arm:>14}: wall s " in out, out
    assert "speed evaluate / plain" in out and "speed evaluate_model / plain" in out
    assert "evaluate_model / plain alone: peak RSS" in out, out
    # the same model and images: vaekit's arms agree with each other to the digit, and
    # with the plain loop to Monte Carlo noise (its own draws)
    bounds = {
        line.split(":")[0].strip(): float(line.split("-IWAE_K ")[1].split(",")[0])
        for line in out.splitlines()
        if "-IWAE_K " in line
    }
    assert bounds["evaluate"] == bounds["evaluate_model"]
    assert abs(bounds["plain"] - bounds["evaluate"]) < 0.05 * abs(bounds["evaluate"])


def test_prior_candidates_judges_every_candidate_in_its_smallest_setting(tmp_path):
    """On a tiny digits run (classes, no attributes): every candidate density is drawn,
    decoded and judged, with the class shares' distance and the nearest-neighbour check."""
    from tests.helpers import train_tiny

    run = train_tiny(tmp_path, epochs=1).run.path
    out = run_benchmark(
        "prior_candidates.py", "--run", str(run), "--samples", "60", "--draw-seeds", "0", "1",
        "--flow-steps", "20", "--judge-steps", "20", "--split", "val", "--bandwidths", "0.2",
        "--chain-steps", "1", timeout=300,
    )  # fmt: skip
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    names = ("fitted mixture", "aggregate posterior", "kernel density, bandwidth 0.2", "flow")
    names += ("fitted mixture, then 1 decode-encode steps", "model prior p(z)")
    for name in names:
        assert "class shares TV" in lines[name] and "nearest-training-neighbour" in lines[name]
        assert float(lines[name].split("nearest training latent ")[1]) > 0
        assert len(lines[name].split("class shares TV ")[1].split(";")[0].split()) == 2


def test_judge_agreement_reads_every_runs_draws_with_every_judge(tmp_path):
    """Two tiny digits runs (other seeds, so other splits and judges): each run's prior
    draws are read by both judges, with the spread between them and the run's own."""
    from tests.helpers import train_tiny

    runs = [str(train_tiny(tmp_path, epochs=1, seed=s, name=f"r{s}").run.path) for s in (0, 1)]
    out = run_benchmark(
        "judge_agreement.py", *runs, "--samples", "60", "--judge-steps", "20", "--split", "val"
    )
    assert out.count(": trained") == 2, out
    rows = [line for line in out.splitlines() if line.startswith(("r0: ", "r1: "))]
    assert len(rows) == 2, out
    for index, row in enumerate(sorted(rows)):
        readings = [float(v) for v in row.split("class shares TV: ")[1].split(";")[0].split()]
        assert len(readings) == 2 and all(0 <= v <= 1 for v in readings), row
        # the run's own judge is its column; the spread is the readings' range
        assert f"own judge {readings[index]:.3f}" in row, row
        spread = float(row.split("spread ")[1])  # of the unrounded readings
        assert abs(spread - (max(readings) - min(readings))) <= 0.0011, row
    # the judges are saved in the runs: a second call reuses them
    again = run_benchmark(
        "judge_agreement.py", *runs, "--samples", "60", "--judge-steps", "20", "--split", "val"
    )
    assert again.count(": reused") == 2, again
