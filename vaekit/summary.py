"""What ``vaekit inspect`` shows: rich summaries of a latent store, a cluster file, a run.

Each ``*_summary`` function returns rich renderables; nothing here imports torch
(a latent store needs h5py, imported when one is inspected).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.table import Table

from vaekit.errors import DataError


def summarise(path: str | Path) -> list[RenderableType]:
    """Summaries of ``path``: a run directory, a cluster file (``.json``) or a latent store."""
    p = Path(path)
    if p.is_dir():
        return run_summary(p)
    if not p.exists():
        raise DataError(f"'{path}' does not exist; give a latent store, a cluster file or a run")
    if not p.is_file():  # opening a FIFO would wait for a writer forever
        raise DataError(
            f"'{path}' is not a regular file (a device, pipe or socket); give a latent store, "
            "a cluster file or a run"
        )
    if p.suffix.lower() == ".json":
        return cluster_summary(p)
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return store_summary(p)
    raise DataError(
        f"'{path}' is neither a latent store (HDF5), a cluster file (.json) nor a run directory"
    )


def _kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        if value is not None and value != "":
            table.add_row(key, str(value))
    return table


def _components(model: dict[str, Any]) -> str:
    parts = []
    for family in ("encoder", "decoder", "likelihood", "prior"):
        name = model.get(family)
        options = model.get(f"{family}_options") or {}
        if name:
            opts = ", ".join(f"{k}={v}" for k, v in options.items())
            parts.append(f"{family} {name}" + (f" ({opts})" if opts else ""))
    return "; ".join(parts)


def store_summary(path: Path) -> list[RenderableType]:
    """N, D, labels and attributes with counts, model, source, completeness."""
    from vaekit.store import LatentStore

    with LatentStore.open(path, allow_incomplete=True) as store:
        info = store.describe()
        stats = store.stats()
    model = info["model"]
    complete = "[green]yes[/]" if info["complete"] else "[red]no (an unfinished encode)[/]"
    dataset = info["dataset"]
    rows: list[tuple[str, Any]] = [
        ("rows (N)", f"{info['n']:,}"),
        ("latent size (D)", info["latent_dim"]),
        ("posterior samples (K)", info["samples"] or None),
        ("mirrored rows (hflip)", f"{info['hflip_rows']:,}" if info["hflip_rows"] else None),
        ("complete", complete),
        ("splits", ", ".join(f"{k} {v:,}" for k, v in info["splits"].items() if v)),
        ("model kind", model.get("model")),
        ("components", _components(model)),
        ("input shape", model.get("input_shape")),
        ("run", info["run_dir"]),
        ("weights sha256", (info["weights_sha256"] or "")[:16]),
        ("dataset", f"{dataset['source']} at {dataset['location']}"),
        ("dataset fingerprint", dataset["fingerprint"]),
        ("data sha256", (info["data_sha256"] or "")[:16]),
        ("per-dimension stats", None if stats else "not stored (an encode before vaekit 0.6)"),
        ("compression", info["compression"]),
        ("created", info["created"]),
        ("vaekit", info["vaekit_version"]),
    ]
    out: list[RenderableType] = [_kv_table(f"latent store {path}", rows)]
    for kind, counts in info["labels"].items():
        if counts:
            table = Table(title=f"{kind} (rows{' where true' if kind == 'attributes' else ''})")
            table.add_column("label")
            table.add_column("rows", justify="right")
            for name, count in counts.items():
                table.add_row(name, f"{count:,}")
            out.append(table)
    if stats is not None:
        out.append(stats_table(stats))
    return out


#: Dimensions ``inspect`` lists; the rest are in ``LatentStore.stats()``.
MAX_STATS_ROWS = 32


def stats_table(stats: Any, max_dims: int = MAX_STATS_ROWS) -> Table:
    """The per-dimension statistics of a store (:class:`vaekit.latent_stats.LatentStats`):
    mean and standard deviation of the posterior means, standard deviation of draws."""
    d = len(stats.mean)
    table = Table(title=f"latent statistics over {stats.count:,} rows", title_justify="left")
    for column in ("dim", "mean", "std of μ", "std of z = μ + σε"):
        table.add_column(column, justify="right")
    for i in range(min(d, max_dims)):
        table.add_row(
            str(i), f"{stats.mean[i]:.4g}", f"{stats.std[i]:.4g}", f"{stats.z_std[i]:.4g}"
        )
    if d > max_dims:
        table.caption = f"first {max_dims} of {d} dimensions; all: LatentStore.stats()"
    return table


def _shape(value: Any) -> str:
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return "×".join(str(d) for d in dims)


def _brief(value: Any, nested: bool = False) -> str:
    """A one-line form: arrays by shape, short number lists rounded, long hashes cut,
    model configs by their components, other dicts as ``key: value`` pairs."""
    if isinstance(value, list):
        if value and (isinstance(value[0], list) or len(value) > 8):
            return f"array {_shape(value)}"
        if all(isinstance(v, (int, float)) for v in value):
            return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        if "encoder" in value and "latent_dim" in value:
            return f"{value.get('model', 'vae')}: {_components(value)}"
        if nested:
            return "{" + ", ".join(value) + "}"
        return "; ".join(f"{k}: {_brief(v, nested=True)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:16] + "…"
    return str(value)


def cluster_summary(path: Path) -> list[RenderableType]:
    """Every field of a cluster file; arrays are shown by their shape."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"'{path}' is not a readable JSON cluster file: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"'{path}' is JSON but not a cluster file (not an object)")
    rows = [(key, None if value is None else _brief(value)) for key, value in data.items()]
    return [_kv_table(f"cluster file {path}", rows)]


def run_summary(path: Path) -> list[RenderableType]:
    """A run directory: model, data, training settings, last metrics, files."""
    from vaekit.runs import Run, resolve_run

    run: Run = resolve_run(path)
    config = run.read_config()
    model, train, data = config.model, config.train, config.data
    metrics = run.read_metrics()
    last = metrics[-1] if metrics else {}
    rows: list[tuple[str, Any]] = [
        ("run", run.path),
        ("created", config.created),
        ("model kind", model.kind),
        ("components", _components(model.to_dict())),
        ("latent size", model.latent_dim),
        ("input shape", list(model.input_shape or ())),
        ("data", f"{data.get('source')} at {data.get('location')} ({data.get('n')} images)"),
        ("preprocessing", f"image size {train.image_size}, channels {train.channels}"),
        ("KL schedule", train.kl_schedule),
        ("epochs", epochs_status(last, train.epochs, train.patience)),
        ("last loss", f"{last['loss']:.3f}" if "loss" in last else None),
        ("last val -ELBO", f"{last['val_loss']:.3f}" if "val_loss" in last else None),
        ("weights", weights_status(run, last, train.patience)),
        ("vaekit", config.vaekit_version),
    ]
    return [_kv_table(f"run {run.name}", rows)]


def epochs_status(last: dict[str, Any], epochs: int, patience: int | None) -> str:
    """ "17 of 40, stopped early (patience 2)" or "40 of 40"."""
    from vaekit.runs import stopped_early

    text = f"{int(last.get('epoch', 0))} of {epochs}"
    if stopped_early(last, epochs, patience):
        text += f", stopped early (no better validation −ELBO for {patience} epochs)"
    return text


def weights_status(run: Any, last: dict[str, Any], patience: int | None) -> str:
    """Whether the weights are there, and of which epoch."""
    if not run.weights_path.is_file():
        return "[red]missing[/]"
    done = int(last.get("epoch", 0))
    if patience is not None and last.get("best_epoch"):
        return f"present: epoch {int(last['best_epoch'])}'s (the best)"
    return f"present: epoch {done}'s" if done else "present"
