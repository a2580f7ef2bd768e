"""One owner per run directory (items 2, 4), diverged epochs never saved (3), resume's
--epochs checked (7): through the API and as real, concurrently running processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import vaekit
from tests.helpers import tiny_config, train_tiny
from vaekit.errors import DataError, UsageError, VaekitError
from vaekit.runs import RunLock
from vaekit.train import train

CLI = [sys.executable, "-c", "from vaekit.cli import main; main()"]
TINY = (
    "--encoder mlp --encoder-opt hidden=8 --decoder-opt hidden=8 -z 2 --accelerator cpu"
).split()


def test_a_locked_run_is_refused_to_a_second_writer(tmp_path):
    with RunLock(tmp_path / "runs" / "tiny"):
        with pytest.raises(
            DataError, match=rf"being written by another vaekit process \(PID {os.getpid()}"
        ):
            train_tiny(tmp_path, epochs=1)
    assert train_tiny(tmp_path, epochs=1).run.file("model.safetensors").is_file()


def test_resume_takes_the_lock_too(tmp_path):
    train_tiny(tmp_path, epochs=1)
    with RunLock(tmp_path / "runs" / "tiny"):
        with pytest.raises(DataError, match="being written by another"):
            train(tiny_config(tmp_path, epochs=2), resume=True)


def test_two_trains_of_one_name_at_once_never_mix(tmp_path):
    args = [*CLI, "train", *TINY, "--epochs", "2", "--batch-size", "64", "--name", "same"]
    procs = [
        subprocess.Popen([*args, "--seed", str(seed)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]  # fmt: skip
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(err for code, err in results if code)
    assert "being written by another" in loser or "already exists" in loser, loser
    run = tmp_path / "runs" / "same"
    seed = json.loads((run / "config.json").read_text())["train"]["seed"]
    winner = next(s for (code, _), s in zip(results, (1, 2), strict=True) if code == 0)
    assert seed == winner
    assert [r["epoch"] for r in vaekit.runs.Run(run).read_metrics()] == [1, 2]


def test_a_kill_in_epoch_one_leaves_the_name_free(tmp_path):
    """kill -9 before the first epoch is saved: the kernel drops the lock, and the same
    --name starts the run again (--resume says so)."""
    args = [*CLI, "train", *TINY, "--epochs", "1", "--batch-size", "1", "--name", "k"]
    proc = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    config = tmp_path / "runs" / "k" / "config.json"
    deadline = time.time() + 120
    while not config.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert config.exists() and not (tmp_path / "runs" / "k" / "model.safetensors").exists()
    resumed = subprocess.run(
        [*CLI, "train", "--resume", "--name", "k"], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 1 and "vaekit train --name k` (without --resume)" in resumed.stderr
    again = subprocess.run([*args[:-4], "--batch-size", "512", "--name", "k"], cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "runs" / "latest").resolve() == (tmp_path / "runs" / "k").resolve()


def test_a_diverged_epoch_is_never_saved_or_promoted(tmp_path):
    first = train_tiny(tmp_path, epochs=1, name="good")
    with pytest.raises(VaekitError, match="diverged"):
        train_tiny(tmp_path, epochs=2, name="bad", lr=1e30, batch_size=2000)
    bad = tmp_path / "runs" / "bad"
    assert not (bad / "model.safetensors").exists() and not (bad / "metrics.jsonl").exists()
    assert (tmp_path / "runs" / "latest").resolve() == first.run.path
    again = train_tiny(tmp_path, epochs=1, name="bad")  # the name is free again
    assert again.run.file("model.safetensors").is_file()


def test_a_diverged_later_epoch_keeps_the_last_good_one(tmp_path, monkeypatch):
    import vaekit.train as training

    original = training.train_epoch

    def poisoned(session, epoch, reporter):
        metrics = original(session, epoch, reporter)
        if epoch == 1:
            metrics["loss"] = float("nan")
        return metrics

    monkeypatch.setattr(training, "train_epoch", poisoned)
    with pytest.raises(VaekitError, match="diverged .*checkpoint of epoch 1 in .* is intact"):
        train_tiny(tmp_path, epochs=3)
    run = vaekit.runs.Run(tmp_path / "runs" / "tiny")
    assert [r["epoch"] for r in run.read_metrics()] == [1]
    assert int(run.load_checkpoint()["epoch"]) == 1
    json.loads(run.metrics_path.read_text().splitlines()[0])  # standard JSON


def test_resume_checks_epochs_against_what_was_done(tmp_path):
    train_tiny(tmp_path, epochs=3)
    before = (tmp_path / "runs" / "tiny" / "config.json").read_text()
    for epochs, message in ((-5, "must be >= 1"), (1, "already trained 3 epochs")):
        with pytest.raises(UsageError, match=message):
            train(tiny_config(tmp_path, epochs=epochs), resume=True)
    assert (tmp_path / "runs" / "tiny" / "config.json").read_text() == before
