"""A full disk loses nothing (issue 19): on a small tmpfs filled to the last block, every
command that writes stops with one line and exit 1, every file that existed before is
byte-identical, and `train --resume` continues once space is freed.

Needs a tmpfs mount (root on Linux); skipped with the reason elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.test_bad_inputs import TINY, vaekit_command
from vaekit.files import file_sha256

#: the start and end lines of a progress bar that cannot be drawn (vaekit.progress)
PROGRESS = re.compile(r"^[\w ]+: [\d,]+ (to do|of [\d,]+ done)$")


def _mount(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs (unmounted afterwards)."""
    disk = tmp_path / "disk"
    _mount(disk, "24m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free block of ``disk``; returns the file to delete to free them."""
    filler = disk / "filler"
    info = os.statvfs(disk)
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, info.f_bavail * info.f_frsize)
    return filler


def _vaekit(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*vaekit_command(), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_a_full_disk_loses_nothing_and_training_resumes_once_space_is_freed(small_disk):
    env = dict(os.environ, VAEKIT_CACHE_DIR=str(small_disk / "cache"))
    here = small_disk

    def ok(*args: str) -> None:
        done = _vaekit(*args, cwd=here, env=env)
        assert done.returncode == 0, done.stderr

    ok("train", *TINY, "--name", "a")
    ok("encode", "-o", "lat.h5")
    ok("fit-cluster", "--latents", "lat.h5", "-l", "3", "-o", "c3.json")
    ok("sample", "--cluster", "c3.json", "-n", "16", "-o", "g.png")
    ok("report", "-o", "r.html", "--iwae-k", "1", "--no-generation")
    before = {name: file_sha256(here / name) for name in ("lat.h5", "c3.json", "g.png", "r.html")}
    run = here / "runs" / "a"
    run_before = {p.name: file_sha256(p) for p in run.iterdir() if p.is_file()}

    filler = _fill(here)
    for args in (
        ("train", "--resume", "--name", "a", "--epochs", "3"),
        ("encode", "-o", "lat.h5", "--overwrite"),
        ("fit-cluster", "--latents", "lat.h5", "-l", "3", "-o", "c3.json"),
        ("sample", "--cluster", "c3.json", "-n", "64", "-o", "g.png"),
        ("report", "-o", "r.html", "--iwae-k", "1", "--no-generation"),
    ):
        done = _vaekit(*args, cwd=here, env=env)
        err = done.stderr.strip()
        assert done.returncode == 1, (args, err)
        # beside a progress line or two (stderr is no terminal here), one line says why
        said = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
        assert "Traceback" not in err and len(said) <= 2, (args, err)
        assert said[-1].startswith("Error: no space left to write"), (args, err)
    assert {name: file_sha256(here / name) for name in before} == before
    for name in ("model.safetensors", "metrics.jsonl", "config.json"):
        assert file_sha256(run / name) == run_before[name], name
    assert not list(run.glob(".epoch-*")) and not (run / ".commit.json").exists()

    filler.unlink()
    ok("train", "--resume", "--name", "a", "--epochs", "3")
    epochs = [line.split(",")[0] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == ['{"epoch": 1', '{"epoch": 2', '{"epoch": 3']


def test_a_full_cache_disk_decodes_into_memory_instead_of_dying(small_disk, tmp_path):
    """The decode cache maps its file: on a full disk that would be SIGBUS; vaekit decodes
    the images into memory instead and trains."""
    from tests.dataset_fixtures import write_image

    for i in range(12):
        write_image(tmp_path / "img" / f"{i}.png", seed=i, size=(8, 8))
    env = dict(os.environ, VAEKIT_CACHE_DIR=str(small_disk / "cache"))
    (small_disk / "cache").mkdir()
    _fill(small_disk)
    done = _vaekit("train", "img", *TINY, "--name", "b", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "b" / "model.safetensors").is_file()
