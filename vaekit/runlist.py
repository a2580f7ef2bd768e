"""Listing and comparing run directories (``vaekit runs``), from their files alone.

A run's status comes from what it left: ``running`` while a process holds its lock
(:class:`vaekit.runs.RunLock`), ``finished`` when its metrics reach the epochs it was
given, ``stopped early`` when early stopping ended it, ``stopped`` when it ended before
(killed, interrupted, a plugin's ``StopTraining``, a diverged run past its roll-backs),
``failed`` when it never saved an epoch, ``damaged`` when its config does not parse.
Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.errors import DataError, VaekitError
from vaekit.runs import LATEST, LOCK, Run, resolve_run, stopped_early

STATUSES = ("running", "finished", "stopped early", "stopped", "failed", "damaged")


@dataclass
class RunInfo:
    """One run directory as ``vaekit runs`` shows it."""

    name: str
    path: Path
    status: str
    epochs_done: int = 0
    epochs: int = 0
    best_val: float | None = None
    best_epoch: int | None = None
    components: str = ""
    created: str = ""
    latest: bool = False
    problem: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # the config, flattened
    last: dict[str, Any] = field(default_factory=dict)  # the last metrics row

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``vaekit runs --json``)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "status": self.status,
            "epochs_done": self.epochs_done,
            "epochs": self.epochs,
            "best_val_neg_elbo": self.best_val,
            "best_epoch": self.best_epoch,
            "components": self.components,
            "created": self.created,
            "latest": self.latest,
            "problem": self.problem,
        }


def is_running(path: Path) -> bool:
    """Whether a live process holds the run's lock (the kernel drops it at any exit)."""
    import fcntl

    lock = path / LOCK
    if lock.is_symlink() or not lock.is_file():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops a shared lock we took
    return False


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"encoder": "mlp"}}`` -> ``{"model.encoder": "mlp"}``."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def describe_run(path: str | Path, latest: Path | None = None) -> RunInfo:
    """What ``vaekit runs`` says of one run directory."""
    run = Run(Path(path))
    info = RunInfo(name=run.name, path=run.path, status="damaged")
    info.latest = latest is not None and run.path.resolve() == latest
    try:
        config = run.read_config()
        metrics = run.read_metrics()
    except VaekitError as exc:
        info.problem = str(exc)
        if is_running(run.path):
            info.status = "running"  # a run writes its config first
        return info
    model, train = config.model, config.train
    decoder = model.decoder or model.encoder
    info.components = (
        f"{model.kind}: {model.encoder}/{decoder}, {model.likelihood}, {model.prior}, "
        f"z={model.latent_dim}"
    )
    info.created = config.created
    info.epochs = int(train.epochs)
    info.settings = flatten(
        {"model": model.to_dict(), "train": {k: v for k, v in train.to_dict().items()}}
    )
    info.settings.pop("train.model", None)
    info.settings["data"] = f"{config.data.get('source')} at {config.data.get('location')}"
    last = metrics[-1] if metrics else {}
    info.last = last
    info.epochs_done = int(last.get("epoch", 0))
    scored = [r for r in metrics if isinstance(r.get("val_loss"), (int, float))]
    if scored:
        best = min(scored, key=lambda r: r["val_loss"])
        if math.isfinite(best["val_loss"]):
            info.best_val, info.best_epoch = float(best["val_loss"]), int(best["epoch"])
    if is_running(run.path):
        info.status = "running"
    elif not metrics:
        info.status = "failed"  # it never saved an epoch
    elif info.epochs_done >= info.epochs:
        info.status = "finished"
    elif stopped_early(last, info.epochs, train.patience):
        info.status = "stopped early"
    else:
        info.status = "stopped"
    return info


def list_runs(runs_dir: str | Path = "runs") -> list[RunInfo]:
    """Every run directory in ``runs_dir``, oldest first (by creation time, then name);
    ``latest`` (the link) marks the newest instead of being listed."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise DataError(
            f"no runs folder at '{root}'; train one with `vaekit train` or pass --runs-dir"
        )
    link = root / LATEST
    latest = link.resolve() if link.is_symlink() else None
    found = [
        describe_run(p, latest)
        for p in root.iterdir()
        if p.name != LATEST and not p.name.startswith(".") and p.is_dir() and not p.is_symlink()
        and ((p / "config.json").exists() or (p / LOCK).exists())
    ]  # fmt: skip
    return sorted(found, key=lambda r: (r.created, r.name))


#: settings compared by default last (long and rarely what differs)
NOISY = ("train.runs_dir", "train.name", "model.input_shape")


@dataclass
class Comparison:
    """Runs side by side: their infos, the settings that differ, and their metrics."""

    runs: list[RunInfo]
    differing: dict[str, list[Any]]  # setting -> each run's value
    metrics: dict[str, list[Any]]  # metric -> each run's value


def compare_runs(paths: list[str | Path]) -> Comparison:
    """Compare two or more runs: every setting whose value is not the same in all of them,
    then epochs, best validation −ELBO and the last epoch's loss, KL and time."""
    if len(paths) < 2:
        raise DataError("give two or more runs to compare (e.g. `vaekit runs runs/a runs/b`)")
    runs = [describe_run(resolve_run(p).path) for p in paths]
    for info in runs:
        if info.status == "damaged":
            raise DataError(f"run '{info.path}' cannot be compared: {info.problem}")
    keys = sorted({k for info in runs for k in info.settings})
    differing = {
        k: [info.settings.get(k) for info in runs]
        for k in keys
        if k not in NOISY and len({repr(info.settings.get(k)) for info in runs}) > 1
    }
    metrics = {
        "status": [info.status for info in runs],
        "epochs": [f"{info.epochs_done} of {info.epochs}" for info in runs],
        "best val −ELBO": [
            None if info.best_val is None else f"{info.best_val:.2f} (epoch {info.best_epoch})"
            for info in runs
        ],
        "last loss": [_number(info.last.get("loss")) for info in runs],
        "last KL": [_number(info.last.get("kl")) for info in runs],
        "last epoch seconds": [_number(info.last.get("epoch_seconds")) for info in runs],
    }
    return Comparison(runs, differing, metrics)


def _number(value: Any) -> str | None:
    return f"{value:.3f}" if isinstance(value, (int, float)) else None
