"""Built-in plugin: logs a run where people already look, on the lifecycle hooks.

- ``metrics.csv`` beside ``metrics.jsonl`` (always): one row per epoch, for
  spreadsheets and pandas.
- TensorBoard event files in ``RUN/tensorboard/`` with ``--logger tensorboard``
  (needs the optional ``tensorboard`` package): every logged step's loss,
  reconstruction NLL, KL and β, and each epoch's means and validation −ELBO.
- The run's pictures in ``RUN/figures/`` at the end of training (unless
  ``--no-figures``): curves, latent scatter, KL per dimension, traversals.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaekit import hookimpl
from vaekit.errors import UsageError

if TYPE_CHECKING:
    from vaekit.config import TrainConfig

LOGGERS: tuple[str, ...] = ("tensorboard",)
METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"

_writers: dict[Path, Any] = {}  # run path -> open SummaryWriter


def check_loggers(names: Sequence[str]) -> None:
    """Fail before training starts on an unknown logger or a missing optional package."""
    for name in names:
        if name not in LOGGERS:
            raise UsageError(f"unknown logger '{name}'; available: {', '.join(LOGGERS)}")
        if name == "tensorboard" and not tensorboard_available():
            raise UsageError(
                "--logger tensorboard needs the tensorboard package: pip install tensorboard"
            )


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can write event files here."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def write_metrics_csv(run: Any) -> None:
    """``metrics.csv``: the rows of ``metrics.jsonl``, columns in first-seen order."""
    from vaekit.runs import atomic_write_text

    rows = run.read_metrics()
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run.file(METRICS_CSV), buffer.getvalue())


def _train_settings(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("train", {}) if isinstance(config, dict) else {}


@hookimpl(tryfirst=True)
def vaekit_train_start(run: Any, config: dict[str, Any]) -> None:
    """Open the TensorBoard writer when the run asks for it."""
    path = Path(run.path)
    if "tensorboard" not in _train_settings(config).get("loggers", []):
        return
    from torch.utils.tensorboard import SummaryWriter

    done = run.read_metrics()
    last = int(done[-1]["step"]) if done else 0  # a resumed run drops events after its checkpoint
    _writers[path] = SummaryWriter(
        log_dir=str(run.file(TENSORBOARD_DIR)), purge_step=last + 1 if done else None
    )


@hookimpl(tryfirst=True)
def vaekit_epoch_end(run: Any, epoch: int, metrics: dict[str, float]) -> None:
    """Rewrite metrics.csv; send the epoch's steps and means to TensorBoard."""
    write_metrics_csv(run)
    writer = _writers.get(Path(run.path))
    if writer is None:
        return
    from vaekit.report import read_steps

    for row in read_steps(run):
        if row.get("epoch") != epoch:  # this epoch's steps (again after a roll-back)
            continue
        for key in ("loss", "recon", "kl", "beta", "samples_per_s"):
            if key in row:
                writer.add_scalar(f"step/{key}", row[key], row["step"])
    step = int(metrics.get("step", epoch))
    for key, value in metrics.items():
        if key not in ("epoch", "step") and isinstance(value, (int, float)):
            writer.add_scalar(f"epoch/{key}", value, step)
    writer.add_scalar("epoch/epoch", epoch, step)
    writer.flush()


@hookimpl
def vaekit_train_end(run: Any, metrics: dict[str, float]) -> None:
    """Close TensorBoard, rewrite metrics.csv, draw the run's pictures."""
    path = Path(run.path)
    writer = _writers.pop(path, None)
    if writer is not None:
        writer.close()
    write_metrics_csv(run)
    settings = run.read_config().train
    if settings.figures:
        draw_figures(run, settings)


def draw_figures(run: Any, settings: TrainConfig) -> None:
    """The run's figures on its validation split (the training split without one); a
    failure is a warning: the trained model is already saved."""
    from vaekit.report import evaluate_and_draw

    try:
        evaluate_and_draw(
            run.path,
            split=("val", "train"),
            iwae_k=0,
            batch_size=settings.batch_size,
            seed=settings.seed,
            accelerator=settings.accelerator,
        )
    except Exception as exc:  # noqa: BLE001 -- pictures never fail a finished training
        warnings.warn(f"the run's figures were not drawn: {exc!r}", stacklevel=2)
