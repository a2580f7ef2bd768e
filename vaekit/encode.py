"""``vaekit encode``: stream a dataset's posterior latents into an HDF5 latent store.

The data is read the way the run's training read it (the preprocessing in its
config.json), split as training split it, and encoded in eval mode under
``torch.inference_mode`` in fixed-order batches; each batch's rows go to the
store's writer while the model runs on, so memory is one batch plus one chunk
per dataset whatever N is. The file is written beside the target under a
temporary name and renamed when complete.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank encodes a contiguous shard into
its own part file, and rank 0 joins the parts, in order, into the target.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data import SPLITS, DeviceBatches, ImageDataset
from vaekit.distributed import DistContext
from vaekit.errors import DataError, UsageError
from vaekit.files import atomic_path, check_output_target, remove_stale_temporaries
from vaekit.heap import release_mapped_pages, trim_heap, window_rows
from vaekit.model import one_hot_labels
from vaekit.runs import LoadedRun, open_run
from vaekit.store import LatentStoreWriter, compression_options, join_stores, remove_quietly
from vaekit.uptodate import EncodeRecord, check_existing, data_sha256, recorded_attrs

#: ``progress(done, total)``: rows encoded so far (this process's shard) and the shard's size.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EncodeResult:
    """What :func:`encode_latents` did: ``status`` is ``written`` (a new store),
    ``updated`` (a stale store replaced; ``reasons`` say what changed) or ``up-to-date``
    (the store already holds this encode; nothing written)."""

    path: Path
    status: str
    rows: int
    reasons: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line for the user."""
        if self.status == "up-to-date":
            return (
                f"{self.path} is up to date (same data, model and options): nothing written; "
                "--overwrite encodes again"
            )
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        verb = "updated" if self.status == "updated" else "wrote"
        return f"{verb} {self.path}{why}: {self.rows:,} rows"


def encode_dataset(
    data_path: str | Path | ImageDataset | None = None,
    output: str | Path = "latents.h5",
    model_dir: str | Path = "runs/latest",
    batch_size: int = 256,
    split: str | None = None,
    compression: str = "gzip",
    samples: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
    *,
    accelerator: str = "auto",
    seed: int = 0,
    hflip: bool = False,
) -> Path:
    """Encode ``data_path`` into ``output`` and return its path; an existing ``output``
    is refused unless ``overwrite`` (:func:`encode_latents` instead tells an up-to-date
    store from a stale one). Arguments as :func:`encode_latents`."""
    check_output(Path(output), overwrite)
    return encode_latents(
        data_path,
        output,
        model_dir,
        batch_size,
        split,
        compression,
        samples,
        overwrite,
        progress,
        accelerator=accelerator,
        seed=seed,
        hflip=hflip,
    ).path


def encode_latents(
    data_path: str | Path | ImageDataset | None = None,
    output: str | Path = "latents.h5",
    model_dir: str | Path = "runs/latest",
    batch_size: int = 256,
    split: str | None = None,
    compression: str = "gzip",
    samples: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
    *,
    accelerator: str = "auto",
    seed: int = 0,
    hflip: bool = False,
) -> EncodeResult:
    """Encode ``data_path`` with the model in ``model_dir`` into the latent store ``output``.

    ``data_path``: an image folder or data file, an :class:`~vaekit.data.ImageDataset`,
    or None for the run's own training data. The run's preprocessing (dataset plugin
    and its options, image size, channels, validation split) is applied. ``split``:
    ``train``, ``val``, ``test`` or None/``all``. ``compression``: ``gzip``, ``lzf`` or
    ``none``. ``samples``: K posterior draws per image stored as ``samples`` (N, K, D),
    drawn with a generator seeded by ``seed`` (plus the rank). ``hflip``: also encode
    each image mirrored left-right, stored right after it (rows 2i and 2i + 1, flagged
    by the ``hflip`` dataset). ``progress(done, total)`` is called after each batch.

    An existing ``output`` that holds this very encode (same data content, model
    weights, data location and options: :mod:`vaekit.uptodate`) is left as it is
    (status ``up-to-date``); one whose data or weights changed since is encoded again
    (``updated``); anything else is replaced only with ``overwrite``, which also
    forces a new encode of an up-to-date store.

    Raises :class:`~vaekit.errors.DataError` before any encoding when the model does
    not fit the data (with both shapes), :class:`~vaekit.errors.OutputExistsError` for an
    output it may not replace, and :class:`~vaekit.errors.UsageError` for bad options.
    """
    compression_options(compression)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if samples < 0:
        raise UsageError(f"--samples must be >= 0, got {samples}")
    output = Path(output)
    check_output(output, overwrite=True)  # links, folders, devices: refused whatever the flag
    if output.exists() and not overwrite and recorded_attrs(output) is None:
        check_output(output, overwrite)  # not a store that says what made it: refused now

    loaded = open_run(model_dir)
    data = loaded.load_data(data_path, split)
    rows = data.split_rows(split)  # the split's rows by number: no copy of its images
    n_out = len(rows) * (2 if hflip else 1)
    record = EncodeRecord(
        data_sha256=data_sha256(data, rows),
        weights_sha256=loaded.weights_sha256,
        dataset_source=data.source,
        dataset_location=data.location,
        options=encode_options(split, compression, samples, seed, hflip),
    )
    reasons: tuple[str, ...] = ()
    if output.exists() and not overwrite:
        fresh = check_existing(output, record)  # every rank reads the same file alike
        if fresh.status == "up-to-date":
            return EncodeResult(output, "up-to-date", n_out)
        reasons = fresh.reasons
    status = "updated" if reasons else "written"
    replace_ok = overwrite or bool(reasons)

    ctx = DistContext.start()
    try:
        lo, hi = ctx.shard(len(rows))
        shard = rows[lo:hi]
        backend = _accelerator(accelerator, ctx.local_rank)
        attrs = {**store_attrs(loaded, data, split, ctx.world_size), **record.attrs()}
        if ctx.world_size == 1:
            with atomic_path(output) as tmp:
                encode_shard(
                    data,
                    shard,
                    loaded,
                    backend,
                    tmp,
                    batch_size,
                    compression,
                    samples,
                    seed,
                    attrs,
                    progress,
                    hflip=hflip,
                )
                check_output(output, replace_ok)  # a file made meanwhile is not clobbered
            return EncodeResult(output, status, n_out, reasons)
        _encode_distributed(
            ctx,
            data,
            shard,
            loaded,
            backend,
            output,
            replace_ok,
            batch_size,
            compression,
            samples,
            seed,
            attrs,
            progress,
            hflip,
        )
        return EncodeResult(output, status, n_out, reasons)
    finally:
        ctx.stop()


def encode_options(
    split: str | None, compression: str, samples: int, seed: int, hflip: bool
) -> dict[str, Any]:
    """The options that change what a store holds (batch size and process count do
    not): recorded as ``encode_options`` and compared by :mod:`vaekit.uptodate`."""
    options: dict[str, Any] = {
        "split": split or "all",
        "compression": compression,
        "samples": samples,
        "hflip": bool(hflip),
    }
    if samples:
        options["seed"] = seed  # only draws depend on it
    return options


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse to replace an existing ``output`` unless ``overwrite``, and anything that is
    not a regular file always (:func:`vaekit.files.check_output_target`)."""
    check_output_target(output, overwrite)


def store_attrs(
    loaded: LoadedRun, data: ImageDataset, split: str | None, world_size: int
) -> dict[str, Any]:
    """The file attributes that say what made a store."""
    train = loaded.config.train
    return {
        "model_config": loaded.config.model.to_dict(),
        "weights_sha256": loaded.weights_sha256,
        "run_dir": str(loaded.path),
        "dataset_source": data.source,
        "dataset_location": data.location,
        "dataset_fingerprint": data.fingerprint,
        "split_selected": split or "all",
        "image_shape": list(data.image_shape),
        "preprocessing": {
            "image_size": train.image_size,
            "channels": train.channels,
            "dataset_options": train.dataset_options,
            "val_fraction": train.val_fraction,
            "seed": train.seed,
        },
        "processes": world_size,
    }


def _accelerator(name: str, local_rank: int) -> Any:
    from vaekit.devices import choose_accelerator, resolve_accelerator_name

    name = resolve_accelerator_name(name)
    return choose_accelerator(name, {"index": local_rank} if name == "cuda" else {})


def encode_shard(
    data: ImageDataset,
    rows: np.ndarray,
    loaded: LoadedRun,
    accelerator: Any,
    path: Path,
    batch_size: int,
    compression: str,
    samples: int,
    seed: int,
    attrs: dict[str, Any],
    progress: Progress | None = None,
    mark_complete: bool = True,
    hflip: bool = False,
) -> None:
    """Encode the images of ``data`` at ``rows`` (ascending row numbers) into a store at
    ``path`` (marked complete unless ``mark_complete`` is false: a part file that claims
    nothing until it is joined). The rows are gathered a window at a time: a split is
    never copied whole. With ``hflip`` each image's row is followed by its mirror
    image's (flagged)."""
    from vaekit.devices import batch_memory_format

    model = accelerator.prepare(loaded.model).eval()
    device = accelerator.device
    num_classes = loaded.num_classes
    latent_dim = loaded.config.model.latent_dim
    generator = torch.Generator(device=device).manual_seed(seed) if samples else None
    n = len(rows)
    copies = 2 if hflip else 1  # rows per image
    writer = LatentStoreWriter(
        path,
        n * copies,
        latent_dim,
        class_names=data.class_names,
        labels=data.labels is not None,
        attribute_names=data.attribute_names if data.attributes is not None else None,
        samples=samples,
        split_names=SPLITS if data.split is not None else None,
        compression=compression,
        attrs=attrs,
        hflip=hflip,
    )
    # Windows of whole batches: a memory-mapped dataset's pages are handed back after each
    # window, so even the images' share of resident memory does not grow with N. Rows that
    # are not one run (a split) are gathered, a copy: one batch at a time.
    contiguous = n == 0 or rows[-1] - rows[0] + 1 == n
    window = window_rows(data.images, batch_size) if contiguous else batch_size
    layout = batch_memory_format(accelerator)
    release_mapped_pages(data.images)  # pages touched by loading (fingerprint, checks)
    with writer, torch.inference_mode():
        if progress:
            progress(0, n)
        for lo in range(0, n, window):
            take = rows[lo : lo + window]
            span = data.images[take[0] : take[-1] + 1]  # a view: the rows the window spans
            images = span if len(span) == len(take) else data.images[take]
            labels = data.labels[take] if num_classes else None
            with warnings.catch_warnings():  # read-only memory maps: encode never writes
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                batches = DeviceBatches(images, device, labels, layout)
            start = lo
            for x, y in batches.epoch(batch_size, shuffle=False):
                stop = start + len(x)
                y_in = None
                if num_classes and y is not None:  # unlabelled rows (-1): an all-zero one-hot
                    y_in = one_hot_labels(y, num_classes)
                views = [x, x.flip(-1)] if hflip else [x]  # (B, C, H, W), mirrored along W
                mus, logvars, draws = [], [], []
                for view in views:
                    with accelerator.autocast():
                        q = model.posterior(view, y_in)  # (B, D), float32
                    mus.append(q.mean.float().cpu().numpy())
                    logvars.append(q.logvar.float().cpu().numpy())
                    if samples:  # (B, K, D)
                        draws.append(q.rsample(samples, generator).transpose(0, 1).cpu().numpy())
                batch = rows[start:stop]
                writer.append(
                    interleave(mus),
                    interleave(logvars),
                    samples=interleave(draws) if samples else None,
                    labels=None if data.labels is None else repeat(data.labels[batch], copies),
                    attributes=None
                    if data.attributes is None
                    else repeat(data.attributes[batch], copies),
                    ids=repeat(data.ids[batch], copies),
                    split=None if data.split is None else repeat(data.split[batch], copies),
                    hflip=np.tile([False, True], stop - start) if hflip else None,
                )
                start = stop
                if progress:
                    progress(stop, n)
            del batches, images
            release_mapped_pages(span)
            trim_heap()
        writer.finish(mark_complete)


def interleave(blocks: list[np.ndarray]) -> np.ndarray:
    """Rows of equal-length ``blocks`` taken in turn: a0, b0, a1, b1, ..."""
    if len(blocks) == 1:
        return blocks[0]
    return np.stack(blocks, axis=1).reshape(-1, *blocks[0].shape[1:])


def repeat(rows: np.ndarray, copies: int) -> np.ndarray:
    """Each row ``copies`` times in a row (the per-image columns of interleaved rows)."""
    return rows if copies == 1 else np.repeat(rows, copies, axis=0)


def _encode_distributed(
    ctx: DistContext,
    data: ImageDataset,
    shard: np.ndarray,
    loaded: LoadedRun,
    accelerator: Any,
    output: Path,
    overwrite: bool,
    batch_size: int,
    compression: str,
    samples: int,
    seed: int,
    attrs: dict[str, Any],
    progress: Progress | None,
    hflip: bool = False,
) -> Path:
    """Each rank writes a part file; rank 0 joins them into ``output``; all ranks agree on
    success (a failure on any rank removes every part and raises on every rank)."""
    token = ctx.gather(uuid.uuid4().hex[:12] if ctx.rank == 0 else None)[0]
    output.parent.mkdir(parents=True, exist_ok=True)
    # every part carries rank 0's PID (rank 0 joins them and outlives them): once it is gone,
    # the next write to this output removes them (vaekit.files.remove_stale_temporaries)
    lead = ctx.from_lead(os.getpid())
    parts = [
        output.parent / f".{output.name}.pid{lead}.{token}.part{r}of{ctx.world_size}.tmp"
        for r in range(ctx.world_size)
    ]
    if ctx.rank == 0:
        remove_stale_temporaries(output)
    error = None
    try:
        encode_shard(
            data,
            shard,
            loaded,
            accelerator,
            parts[ctx.rank],
            batch_size,
            "none",  # parts are temporary: compressed once, when joined
            samples,
            seed + ctx.rank,
            attrs,
            progress if ctx.rank == 0 else None,
            mark_complete=False,
            hflip=hflip,
        )
    except Exception as exc:  # reported to every rank below
        error = f"rank {ctx.rank}: {exc}"
    errors = [e for e in ctx.gather(error) if e]
    if not errors and ctx.rank == 0:
        try:
            with atomic_path(output) as tmp:
                join_stores(parts, tmp, compression, attrs, allow_incomplete=True)
                check_output(output, overwrite)
        except Exception as exc:
            errors.append(f"joining the parts: {exc}")
    errors = ctx.gather(errors)[0]  # rank 0's verdict, which includes every rank's error
    remove_quietly(parts[ctx.rank])
    if errors:
        raise DataError("encode failed on " + "; ".join(errors))
    return output
