"""Training under torchrun: 2 CPU processes with gloo against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import CriticKind, registered, train_tiny

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), COLUMNS="200")
    result = subprocess.run(
        [*TORCHRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    torchrun([str(REPO / "tests" / "ddp_worker.py"), str(tmp_path), "32"], cwd=tmp_path)
    # DDP keeps the copies identical: both ranks end with the same weights
    assert (tmp_path / "weights-0.sha256").read_text() == (
        tmp_path / "weights-1.sha256"
    ).read_text()
    two = json.loads((tmp_path / "history.json").read_text())
    one = train_tiny(tmp_path / "one", epochs=2, batch_size=64).history
    # global batch 2 x 32 = 64: 1617 training images -> 26 steps an epoch, as for one process
    assert [row["step"] for row in two] == [row["step"] for row in one] == [26, 52]
    # the same batches, data order and initial weights; only the posterior noise differs
    for a, b in zip(two, one, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=0.03)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp", "latest"]
    # each rank left the group once, after its DDP wrapper was gone (see DistContext.stop)
    for rank in (0, 1):
        teardown = json.loads((tmp_path / f"teardown-{rank}.json").read_text())
        assert teardown == {"ddp_alive_at_leave": [0], "in_group": False}


def test_torchrun_train_verbatim_and_resume_on_one_process(tmp_path):
    done = torchrun(["-m", "vaekit", "train", "--epochs", "1"], cwd=tmp_path)
    assert done.stdout.count(") saved in runs/") == 1  # only rank 0 talks
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and (runs[0] / "model.safetensors").is_file()
    assert len((runs[0] / "metrics.jsonl").read_text().splitlines()) == 1
    # an interrupted (here: finished) multi-process run continues in one process
    from vaekit.config import TrainConfig
    from vaekit.train import train

    resumed = train(TrainConfig.build(runs_dir=str(tmp_path / "runs"), epochs=2), resume=True)
    assert [row["epoch"] for row in resumed.history] == [1, 2]


def test_a_kind_with_an_extra_parameter_group_trains_on_two_processes(tmp_path):
    torchrun([str(REPO / "tests" / "ddp_worker.py"), str(tmp_path), "32", "critic"], cwd=tmp_path)
    # both groups' gradients are averaged over the ranks (which see different data), so
    # both optimisers step identically: every weight, the critic's included, is the same
    rank0, rank1 = (torch.load(tmp_path / f"weights-{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys() and any(k.startswith("critic.") for k in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    with registered(CriticKind(through=True), "critic-kind"):
        one = train_tiny(tmp_path / "one", epochs=2, batch_size=64, kind="with-critic")
    # one process with the same global batch: the same steps and nearly the same critic
    # (only the posterior noise differs; measured 1% apart)
    two = json.loads((tmp_path / "history.json").read_text())
    assert [row["step"] for row in two] == [row["step"] for row in one.history] == [26, 52]
    single = one.model.state_dict()
    for key in ("critic.weight", "critic.bias"):
        gap = (rank0[key] - single[key]).norm() / single[key].norm()
        assert gap < 0.05, (key, float(gap))


STOPPING_WORKER = """
import os, signal, sys
from vaekit import train as train_module
from vaekit.cli import main

original = train_module.train_epoch

def stopping(session, epoch, reporter):
    if epoch == 1 and os.environ.get("RANK") == "1":
        os.kill(os.getpid(), signal.SIGSTOP)  # a peer that stops answering, not dead
    return original(session, epoch, reporter)

train_module.train_epoch = stopping
main(["train", "--encoder", "mlp", "--encoder-opt", "hidden=8", "--decoder-opt", "hidden=8",
      "-z", "2", "--epochs", "3", "--accelerator", "cpu", "--name", "s"])
"""


@pytest.mark.slow
def test_a_rank_gives_up_on_a_stopped_peer_with_one_line(tmp_path):
    """Issue 24: a SIGSTOPped rank no longer leaves the other waiting silently; after
    VAEKIT_DIST_TIMEOUT seconds it stops with one line saying why and how to resume."""
    (tmp_path / "worker.py").write_text(STOPPING_WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), VAEKIT_DIST_TIMEOUT="15")
    done = subprocess.run(
        [*TORCHRUN, str(tmp_path / "worker.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert lines and "another torchrun process stopped answering for 15 s" in lines[0], done.stderr[
        -3000:
    ]
    metrics = (tmp_path / "runs" / "s" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1  # epoch 1 was saved and is whole
