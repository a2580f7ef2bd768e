"""Atomic writes: temporaries beside the target, leftovers of killed writers cleaned."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vaekit.files import atomic_path, atomic_write_text


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_leftover_of_a_dead_writer_is_removed_but_a_live_one_is_kept(tmp_path):
    target = tmp_path / "latents.h5"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".latents.h5.pid{dead}.abc.tmp"
    stale.write_text("partial")
    live = tmp_path / ".latents.h5.pid1.xyz.tmp"  # PID 1 is always alive
    live.write_text("someone else's")
    atomic_write_text(target, "new")
    assert not stale.exists()
    assert live.exists()
    assert target.read_text() == "new"


def test_weights_follow_the_umask_like_every_other_file(tmp_path):
    import os

    from torch import nn

    from vaekit.runs import Run

    old = os.umask(0o022)
    try:
        Run(tmp_path).save_weights(nn.Linear(2, 2))
        atomic_write_text(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ["", ".", "..", "../y", "/abs/dir", "a/b", ".hidden", " x"])
def test_a_run_name_is_one_plain_folder_name(name):
    from vaekit.errors import UsageError
    from vaekit.runs import check_run_name

    with pytest.raises(UsageError, match="plain folder name"):
        check_run_name(name)


def test_latest_that_is_not_a_link_is_never_replaced(tmp_path):
    from vaekit.errors import DataError
    from vaekit.runs import Run, point_latest

    (tmp_path / "latest").write_text("mine")
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError, match="not vaekit's link"):
        point_latest(Run(tmp_path / "run"))
    assert (tmp_path / "latest").read_text() == "mine"


def test_check_weights_refuses_nan_weights(tmp_path):
    import torch
    from torch import nn

    from vaekit.errors import DataError
    from vaekit.runs import check_weights

    model = nn.Linear(3, 2)
    check_weights(model, dict(model.state_dict()), tmp_path)  # fits: no error
    with pytest.raises(DataError, match="NaN"):
        check_weights(
            model, {"weight": torch.full((2, 3), float("nan")), "bias": torch.zeros(2)}, tmp_path
        )
    with pytest.raises(DataError, match="'weight' holds NaN or infinite values"):
        check_weights(
            model, {"weight": torch.full((2, 3), float("inf")), "bias": torch.zeros(2)}, tmp_path
        )
