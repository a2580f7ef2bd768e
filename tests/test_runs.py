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
