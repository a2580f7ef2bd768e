"""Run directories: config.json, model.safetensors, checkpoint/, metrics.jsonl, grids.

Every file is written atomically (a temporary file beside it, then a rename), so
a kill at any moment leaves the last good state loadable. ``runs/latest`` is a
symlink to the newest run.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaekit.errors import DataError

if TYPE_CHECKING:
    from torch import nn

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint/state.pt"
METRICS = "metrics.jsonl"
SAMPLES = "samples.png"
RECONSTRUCTIONS = "reconstructions.png"
LATEST = "latest"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name carries the writer's PID; temporaries that a killed writer
    left behind (its PID no longer alive) are removed on the next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.pid{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the mode a plain open() gives, not mkstemp's 0600
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.pidPID.*.tmp`` files beside ``path`` whose writer process is gone."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.pid*.tmp"):
        pid_text = leftover.name[len(path.name) + 5 :].split(".", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under ``torch.compile`` / DDP wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model
        model = inner


@dataclass
class Run:
    """A run directory and the files in it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def read_config(self) -> dict[str, Any]:
        """The run's config.json as a dict."""
        if not self.config_path.is_file():
            raise DataError(
                f"'{self.path}' is not a vaekit run (no {CONFIG}); "
                "train one with `vaekit train` or pass --model RUN_DIR"
            )
        return json.loads(self.config_path.read_text())

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, json.dumps(config, indent=2, sort_keys=False) + "\n")

    def save_weights(self, model: nn.Module) -> str:
        """Write model.safetensors atomically; returns the file's SHA-256."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
        with atomic_path(self.weights_path) as tmp:
            save_file(state, str(tmp))
        return file_sha256(self.weights_path)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write checkpoint/state.pt atomically (tensors and plain containers only)."""
        import torch

        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> dict[str, Any]:
        """Read the resume state (``weights_only``: never unpickles code)."""
        import torch

        if not self.checkpoint_path.is_file():
            raise DataError(f"run '{self.path}' has no checkpoint to resume from")
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Write metrics.jsonl (one JSON object per epoch) atomically."""
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]


def resolve_run(path: str | Path) -> Run:
    """A run directory from a path (``runs/latest`` is followed to its target)."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"no trained model at '{path}'; run `vaekit train` first or pass --model RUN_DIR"
        )
    return Run(p.resolve())


def point_latest(run: Run) -> None:
    """Make ``<runs root>/latest`` a symlink to ``run`` (replaced atomically)."""
    link = run.path.parent / LATEST
    tmp = run.path.parent / f".{LATEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(run.path.name, tmp)
    os.replace(tmp, link)


def load_model(run_dir: str | Path = "runs/latest", device: str = "cpu") -> nn.Module:
    """Rebuild the model from config.json and load model.safetensors (eval mode)."""
    from safetensors.torch import load_file

    from vaekit.model import ModelConfig, build_model

    run = resolve_run(run_dir)
    config = run.read_config()
    model = build_model(ModelConfig.from_dict(config["model"]))
    if not run.weights_path.is_file():
        raise DataError(f"run '{run.path}' has no {WEIGHTS}; its training did not finish an epoch")
    model.load_state_dict(load_file(str(run.weights_path)))
    model.run_config = config  # preprocessing and data description for later steps
    model.run_dir = run.path
    return model.to(device).eval()
