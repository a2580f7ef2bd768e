"""The everyday experience (issue 23): training says what it trains and why it stopped,
arguments that need no model are refused at once, errors start on their first line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.helpers import train_tiny
from vaekit import train as train_module
from vaekit.cli import app
from vaekit.train import TrainingWarning

runner = CliRunner()
TINY = [
    "--encoder", "mlp", "--encoder-opt", "hidden=16", "--decoder-opt", "hidden=16", "-z", "2",
    "--accelerator", "cpu",
]  # fmt: skip


def test_training_shows_its_set_up_epoch_times_and_why_it_ended(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", *TINY, "--epochs", "2", "--name", "a"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "data    digits at embedded: 1,617 training and 180 validation images of 1×8×8" in out
    assert "parameters" in out and "device  cpu, float32" in out
    assert "run     runs/a (a new run), epochs 1 to 2" in out
    assert "epoch   2  loss" in out and " s\n" in out  # each epoch's time
    assert "finished 2 epochs in 0 min" in out and "model (epoch 2) saved in runs/a" in out


def test_early_stopping_names_the_epoch_it_kept(tmp_path, monkeypatch):
    """It stopped silently, and the summary showed the last epoch while the saved
    weights were the best one's."""
    monkeypatch.chdir(tmp_path)
    args = ["train", *TINY, "--epochs", "40", "--patience", "1", "--lr", "0.03", "--name", "p"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("stopped early after"))
    stopped = int(line.split("after epoch ")[1].split(" ")[0])
    kept = int(line.split("saved weights are epoch ")[1].split("'")[0])
    assert stopped < 40 and kept == stopped - 1
    assert f"model (epoch {kept}) saved" in line
    assert "best epoch (saved)" in result.output
    shown = runner.invoke(app, ["inspect", "runs/p"]).output
    assert f"{stopped} of 40, stopped early" in shown and f"epoch {kept}'s (the best)" in shown


def test_ctrl_c_says_which_epoch_is_saved_and_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = train_module.train_epoch

    def interrupted(session, epoch, reporter):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(session, epoch, reporter)

    monkeypatch.setattr(train_module, "train_epoch", interrupted)
    result = runner.invoke(app, ["train", *TINY, "--epochs", "3", "--name", "c"])
    assert result.exit_code == 130
    assert "interrupted; epoch 1 is saved: `vaekit train --resume --name c` continues it" in (
        result.output
    )


def test_a_label_on_an_unconditional_model_is_refused_before_torch_loads(tmp_path):
    """It took 23 s (imports, weights, data) to refuse what config.json answers."""
    run = train_tiny(tmp_path, epochs=1).run.path
    code = (
        "import sys\nfrom vaekit.cli import main\n"
        f"try:\n    main(['sample', '-m', {str(run)!r}, '--label', '3'])\n"
        "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "exit 1 False", done.stdout + done.stderr
    assert "needs a class-conditional model" in done.stderr


def test_an_unavailable_accelerator_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["train", *TINY, "--accelerator", "cuda"])
    assert result.exit_code == 1 and "not available on this machine" in result.output
    assert not (tmp_path / "runs").exists()


def test_fp16_on_the_cpu_is_named_on_the_console(tmp_path, monkeypatch):
    """It overflowed most steps and ran 5-8x slower, silently; now a warning (which the
    installed CLI prints as one line) says so, and each epoch line counts the skips."""
    monkeypatch.chdir(tmp_path)
    args = ["train", *TINY, "--epochs", "1", "--accelerator-opt", "fp16=true"]
    with pytest.warns(TrainingWarning, match="fp16 on the CPU is emulated"):
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def test_an_encode_error_starts_on_its_first_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["encode", "nowhere", "-o", "x.h5"])
    assert result.exit_code == 1 and result.output.startswith("Error: ")


def test_pictures_label_themselves(tmp_path, monkeypatch):
    """reconstruct pairs each input with its reconstruction under titles, interpolate marks
    its two ends, an attribute edit names its three images."""
    import numpy as np
    from PIL import Image

    from vaekit.images import TITLE_BAND, make_grid

    monkeypatch.chdir(tmp_path)
    run = train_tiny(tmp_path, epochs=1).run.path
    assert (
        runner.invoke(app, ["reconstruct", "-m", str(run), "-n", "4", "-o", "r.png"]).exit_code == 0
    )
    picture = np.asarray(Image.open("r.png"))
    plain = make_grid(np.zeros((8, 1, 8, 8), np.uint8), ncol=8, scale=8)
    assert picture.shape[0] == plain.shape[0] + TITLE_BAND
    assert picture.shape[1] > plain.shape[1]  # wider gaps between the pairs
    assert (picture[:16] < 128).any()  # the titles are drawn
    assert runner.invoke(app, ["encode", "-m", str(run), "-o", "l.h5"]).exit_code == 0
    walk = runner.invoke(app, ["interpolate", "l.h5:0", "l.h5:1", "--steps", "3", "-o", "w.png"])
    assert walk.exit_code == 0 and "A and B, are their reconstructions" in walk.output
    band = np.asarray(Image.open("w.png"))[:16]
    marked = np.nonzero((band < 128).any(axis=(0, 2)) if band.ndim == 3 else (band < 128).any(0))
    columns = set((marked[0] // (band.shape[1] / 5)).astype(int).tolist())
    assert columns == {0, 4}  # only the end columns are titled


def test_help_has_readable_placeholders_and_train_groups_its_options():
    for command in ("train", "encode", "sample", "evaluate", "report", "fit-cluster", "runs"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "160"}).output
        for raw in ("<int>", "<float>", "<list[str]>", "<path>", "<int range>"):
            assert raw not in shown, (command, raw)
    shown = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "160"}).output
    for panel in ("─ Data ─", "─ Model ─", "─ Training ─", "─ Output ─"):
        assert panel in shown, panel
    assert "An option of the encoder (repeatable" in shown


def test_a_quick_report_reads_top_down_from_one_split(tmp_path, monkeypatch):
    """Metrics, pictures, generation, then the per-epoch table and the configuration as a
    table; --max-images evaluates a subset; the reconstructions are of the evaluated split."""
    import re

    monkeypatch.chdir(tmp_path)
    run = train_tiny(tmp_path, epochs=1).run.path
    args = ["report", "-m", str(run), "-o", "r.html", "--max-images", "50", "--iwae-k", "2"]
    result = runner.invoke(app, [*args, "--judge-steps", "20", "--samples", "50"])
    assert result.exit_code == 0, result.output
    assert "50 val images" in result.output
    page = (tmp_path / "r.html").read_text()
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == [
        "Evaluation on the val split", "Pictures", "Generation", "Training, per epoch",
        "Configuration",
    ]  # fmt: skip
    assert "The evaluated split&#x27;s first images" in page
    assert (run / "figures" / "reconstructions.png").is_file()
    assert "<td>train.lr</td><td>0.001</td>" in page


def test_cuda_on_a_machine_without_a_gpu_driver_is_refused_before_torch_loads(tmp_path):
    from vaekit.builtin.accelerators import gpu_driver_present

    if gpu_driver_present():
        pytest.skip("this machine has a GPU driver")
    code = (
        "import sys\nfrom vaekit.cli import main\n"
        "try:\n    main(['train', '--accelerator', 'cuda'])\n"
        "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "exit 1 False", done.stdout + done.stderr
    assert "not available on this machine" in done.stderr
    assert not (tmp_path / "runs").exists()
