"""One epoch is one commit: a process killed (SIGKILL) at each step of an epoch's write
leaves the run at epoch N or N-1, whole, and ``--resume`` neither loses nor repeats a
metrics row (issue 24).

The writer runs in a subprocess that kills itself at the k-th file operation of its second
epoch's commit; the check and the resume run here."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_config
from vaekit.runs import COMMIT, Run, resolve_run
from vaekit.train import train

#: the file operations of one commit without patience: 4 staged files flushed, the staging
#: folder flushed, the journal renamed into place, the folder flushed, 4 renames, a flush
OPERATIONS = 12
#: the operation that renames the journal into place (the kill comes after it): the commit
JOURNAL = 6

DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from vaekit import runs
    from tests.helpers import tiny_config
    from vaekit.train import train

    kill_at, root = int(sys.argv[1]), Path(sys.argv[2])
    state = {"armed": False, "count": 0}
    commit, fsync, replace = runs.Run.commit_epoch, runs._fsync, os.replace

    def tick():
        if state["armed"]:
            state["count"] += 1
            if state["count"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    def counting_commit(self, epoch, *args, **kwargs):
        state["armed"] = epoch == 2
        try:
            return commit(self, epoch, *args, **kwargs)
        finally:
            state["armed"] = False

    def counting_fsync(path):
        fsync(path)
        tick()

    def counting_replace(src, dst):
        replace(src, dst)
        tick()

    runs.Run.commit_epoch = counting_commit
    runs._fsync = counting_fsync
    runs.os.replace = counting_replace
    train(tiny_config(root, epochs=3))
    """
)


def _kill_inside_second_commit(tmp_path, kill_at: int) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(kill_at), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr[-2000:]  # it died where it was told to
    return Run(tmp_path / "runs" / "tiny")


def _epoch_on_disk(run: Run) -> int:
    """The epoch the run's files show; fails unless weights, checkpoint and metrics agree."""
    state = torch.load(run.checkpoint_path, weights_only=True)
    epochs = [row["epoch"] for row in run.read_metrics()]
    assert epochs == list(range(1, state["epoch"] + 1))
    weights = load_file(str(run.weights_path))
    assert weights.keys() == state["model"].keys()
    assert all(torch.equal(weights[k], state["model"][k]) for k in weights)
    steps = [json.loads(line) for line in run.file("steps.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in steps) == state["step"]
    return int(state["epoch"])


def _check_kill_and_resume(tmp_path, kill_at: int) -> None:
    run = _kill_inside_second_commit(tmp_path, kill_at)
    resolved = resolve_run(run.path)  # what a reader sees: a finished or an absent commit
    assert not (run.path / COMMIT).exists()
    assert _epoch_on_disk(resolved) == (1 if kill_at < JOURNAL else 2)
    resumed = train(tiny_config(tmp_path, epochs=4), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert _epoch_on_disk(run) == 4
    assert not list(run.path.glob(".epoch-*"))  # the owner cleared the staging


@pytest.mark.parametrize("kill_at", [2, 6])  # while staging; right after the journal
def test_a_kill_inside_an_epoch_commit_leaves_one_whole_epoch(tmp_path, kill_at):
    _check_kill_and_resume(tmp_path, kill_at)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [k for k in range(1, OPERATIONS + 1) if k not in (2, 6)])
def test_a_kill_at_every_operation_of_an_epoch_commit(tmp_path, kill_at):
    _check_kill_and_resume(tmp_path, kill_at)


@pytest.mark.slow
def test_a_commit_past_its_last_operation_is_not_killed(tmp_path):
    """The count above is the commit's: killing past it lets the run finish."""
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(OPERATIONS + 1), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _epoch_on_disk(Run(tmp_path / "runs" / "tiny")) == 3


def test_a_crafted_journal_cannot_move_files_into_the_run(tmp_path):
    from vaekit.errors import DataError

    train(tiny_config(tmp_path, epochs=1))
    run = Run(tmp_path / "runs" / "tiny")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (run.path / COMMIT).write_text(
        json.dumps({"epoch": 2, "staging": "../..", "files": ["metrics.jsonl"]})
    )
    with pytest.raises(DataError, match="not a commit journal"):
        run.recover()
    assert outside.read_text() == "secret"
    assert _epoch_on_disk(run) == 1
