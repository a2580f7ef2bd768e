"""Datasets in memory, and turning a dataset plugin into batches.

Images stay uint8 ``(N, C, H, W)`` (in memory or memory-mapped from the decode
cache) until a batch reaches the device, where it becomes float in [0, 1].
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaekit.dataset import (  # noqa: F401 - the data types, importable here as always
    HELD_OUT,
    SOURCE_SPLITS,
    SPLITS,
    UNLABELLED,
    ImageDataset,
    fingerprint_arrays,
)
from vaekit.errors import DataError, UsageError
from vaekit.resize import (  # noqa: F401 - moved there, importable here as before
    bilinear_matrix,
    convert_images,
    needs_conversion,
    resize_batch,
    resize_square,
)
from vaekit.sources.cache import cached_conversion
from vaekit.sources.folder import no_images_error

if TYPE_CHECKING:
    import torch

    from vaekit.config import TrainConfig


def resolve_source(path: str | Path | None, dataset: str | None) -> tuple[str, Any]:
    """The dataset plugin to use: ``dataset`` if named, else the one that detects ``path``."""
    from vaekit.plugins import get_plugin_host

    host = get_plugin_host()
    if dataset is not None:
        return dataset, host.get("datasets", dataset).factory
    if path is None:
        return "digits", host.get("datasets", "digits").factory
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path '{path}' does not exist; give an image folder or file")
    if not (p.is_dir() or p.is_file()):  # reading a pipe hangs, a device never ends
        raise DataError(
            f"data path '{path}' is not a regular file or folder (a device, pipe or socket); "
            "give an image folder or file"
        )
    registry = host.registry("datasets")
    ordered = sorted(
        registry.values(), key=lambda c: -int(getattr(c.factory, "detect_priority", 0))
    )
    for component in ordered:
        if component.factory.detect(p):
            return component.name, component.factory
    if p.is_dir() and not any(not e.name.startswith(".") for e in p.iterdir()):
        raise no_images_error(p)  # an empty folder: the words docs/datasets.md gives
    raise DataError(
        f"'{path}' holds none of the known kinds of data ({', '.join(sorted(registry))}); "
        "pass --dataset NAME to choose one"
    )


def load_dataset(
    path: str | Path | None = None,
    dataset: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    split: str | None = None,
    **options: Any,
) -> ImageDataset:
    """Load images through a dataset plugin and apply the image options.

    ``path=None`` gives the embedded digits. ``image_size`` (square resize + centre
    crop) and ``channels`` (1 or 3) are passed to plugins that accept them and
    applied afterwards either way; applied afterwards to data read from ``path``,
    the converted images are kept in the decode cache (keyed by the files at
    ``path``), so the next load reads them back instead of converting again.
    ``skip_bad`` (leave out unreadable images and report the count) goes to
    plugins that accept it. ``split`` (``train``, ``val``, ``test``; None or ``all``:
    everything): the split the caller will take, passed to plugins that accept a
    ``splits`` keyword as the dataset's own splits it needs (:data:`SOURCE_SPLITS`), so
    they can leave the others unread; the images come back with every image of that
    split (and possibly others). Other ``options`` go to the plugin as given.
    """
    from vaekit.options import check_options

    check_image_options(image_size, channels)
    name, source = resolve_source(path, dataset)
    load = source.load
    accepted = inspect.signature(load).parameters
    splits = SOURCE_SPLITS.get(split or "all")
    given = (("image_size", image_size), ("channels", channels), ("skip_bad", skip_bad))
    for key, value in (*given, ("splits", splits)):
        if value not in (None, False) and key in accepted:
            options[key] = value
    check_options("dataset", name, load, options, skip=1)
    data = load(None if path is None else Path(path), **options)
    return apply_image_options(
        data, image_size=image_size, channels=channels, cache_path=None if path is None else path
    )


def load_training_data(config: TrainConfig, split: str | None = None) -> ImageDataset:
    """The data a training config names, with its preprocessing and validation split
    (``split``: the one split the caller takes, which may then be all that is read)."""
    return _read(config, *_run_source(config, None), split)


def load_run_data(
    config: TrainConfig, data: str | Path | ImageDataset | None, split: str | None = None
) -> ImageDataset:
    """``data`` (None: the run's training data) read with the run's preprocessing (image
    size, channels, skip-bad) and validation split. The run's dataset plugin and options
    are used for its own data, or when that plugin recognises ``data``; otherwise the
    plugin is detected. ``split``: the one split the caller takes (None: all), passed to
    :func:`load_dataset`; its images, and the validation ones carved out, are the same
    as in a whole read."""
    if isinstance(data, ImageDataset):
        dataset = apply_image_options(data, image_size=config.image_size, channels=config.channels)
        return _non_empty(dataset).with_splits(config.val_fraction, config.seed)
    if data is None and config.data is not None and not Path(config.data).exists():
        raise DataError(
            f"the run was trained on '{config.data}', which is not found from here; "
            "pass the data as DATA"
        )
    return _read(config, *_run_source(config, data), split)


def reads_splits_apart(config: TrainConfig, data: str | Path | ImageDataset | None) -> bool:
    """Whether :func:`load_run_data` of ``data`` can leave splits other than the one
    asked for unread: the dataset plugin it uses takes a ``splits`` keyword."""
    if isinstance(data, ImageDataset):
        return False
    try:
        path, source, _ = _run_source(config, data)
        _, plugin = resolve_source(path, source)
    except (DataError, UsageError):
        return False  # the read says what is wrong
    return "splits" in inspect.signature(plugin.load).parameters


def _run_source(
    config: TrainConfig, data: str | Path | None
) -> tuple[str | Path | None, str | None, dict[str, Any]]:
    """The path, dataset plugin and options :func:`load_run_data` reads ``data`` with:
    the run's plugin and options for its own data or data that plugin recognises;
    otherwise none (detected at the read)."""
    if data is None:
        return config.data, config.dataset, dict(config.dataset_options)
    if config.dataset is not None and _detects(config.dataset, data):
        return data, config.dataset, dict(config.dataset_options)
    return data, None, {}


def _read(
    config: TrainConfig,
    path: str | Path | None,
    source: str | None,
    options: dict[str, Any],
    split: str | None = None,
) -> ImageDataset:
    dataset = load_dataset(
        path,
        source,
        image_size=config.image_size,
        channels=config.channels,
        skip_bad=config.skip_bad,
        split=split,
        **options,
    )
    return _non_empty(dataset).with_splits(config.val_fraction, config.seed)


def _non_empty(dataset: ImageDataset) -> ImageDataset:
    if len(dataset) == 0:
        raise DataError(f"dataset '{dataset.source}' at {dataset.location} holds no images")
    return dataset


def _detects(source: str, path: str | Path) -> bool:
    """Whether dataset plugin ``source`` recognises ``path``."""
    from vaekit.plugins import get_plugin_host

    plugin = get_plugin_host().get("datasets", source).factory
    return Path(path).exists() and bool(plugin.detect(Path(path)))


def check_image_options(image_size: int | None, channels: int | None) -> None:
    """UsageError for an ``--image-size`` below 1 or ``--channels`` other than 1 or 3."""
    if image_size is not None and image_size < 1:
        raise UsageError(f"--image-size must be >= 1, got {image_size}")
    if channels is not None and channels not in (1, 3):
        raise UsageError(f"--channels must be 1 or 3, got {channels}")


def apply_image_options(
    data: ImageDataset,
    image_size: int | None = None,
    channels: int | None = None,
    cache_path: str | Path | None = None,
) -> ImageDataset:
    """Convert to ``channels`` (1 or 3) and resize + centre-crop to ``image_size`` squares.

    With ``cache_path`` (the file or folder the data came from) a conversion is
    stored in the decode cache and read back (memory-mapped) while the files there
    and the options are unchanged.
    """
    if channels is not None and channels not in (1, 3):
        raise UsageError(f"--channels must be 1 or 3, got {channels}")
    if not needs_conversion(data.images, image_size, channels):
        return data
    if cache_path is not None:
        images = cached_conversion(
            data.images, data.source, Path(cache_path), data.fingerprint, channels, image_size
        )
    else:
        images = convert_images(data.images, image_size, channels)
    return replace(data, images=images, fingerprint="")


#: A dataset up to this size lives on the GPU; a larger one stays in host memory and each
#: batch is gathered into pinned memory for an asynchronous copy.
ON_DEVICE_BYTES = 2**31


def placement(device: torch.device, nbytes: int) -> str:
    """Where :class:`DeviceBatches` keeps ``nbytes`` of images for ``device``: ``"device"``
    (a small dataset on a GPU), ``"pinned"`` (a large one: host memory, each batch staged in
    pinned memory) or ``"host"`` (the CPU: no copy at all). Pinning is for CUDA only."""
    if device.type != "cuda":
        return "host"
    return "device" if nbytes < ON_DEVICE_BYTES else "pinned"


class DeviceBatches:
    """Batches of a uint8 image tensor, converted to float on the device.

    The whole uint8 array is one tensor (shared with numpy, no copy on CPU); a
    batch is one index/gather, one transfer and one conversion -- no per-sample
    Python. Shuffling uses a generator seeded per epoch, so a resumed run sees
    the same order. On a GPU a small dataset is copied there once; a large one is
    gathered batch by batch into pinned host memory and copied without blocking
    (see :func:`placement`). Batches come in ``memory_format`` (channels-last for
    channels-last weights).
    """

    def __init__(
        self,
        images: np.ndarray,
        device: torch.device,
        labels: np.ndarray | None = None,
        memory_format: torch.memory_format | None = None,
    ):
        import torch

        self.device = device
        self.memory_format = memory_format or torch.contiguous_format
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        labels_t = None if labels is None else torch.from_numpy(labels.astype(np.int64))
        self.placement = placement(device, tensor.nbytes)
        if self.placement == "device":
            tensor = tensor.to(device)
            labels_t = None if labels_t is None else labels_t.to(device)
        self.images = tensor
        self.labels = labels_t
        self.n = len(images)

    def __len__(self) -> int:
        return self.n

    def num_batches(self, batch_size: int, drop_last: bool = False, world_size: int = 1) -> int:
        """Batches per epoch (per process, with ``world_size`` processes sharing each global
        batch of ``batch_size * world_size``; a last global batch smaller than the number of
        processes is dropped, since every process must take a step)."""
        size = batch_size * world_size
        full, rest = divmod(self.n, size)
        return full + int(not drop_last and rest >= world_size)

    def epoch(
        self,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Yield ``(x, y)`` per batch: x float (B, C, H, W) in [0, 1] on the device.

        With ``world_size`` processes, every process walks the same seeded permutation in
        global batches of ``batch_size * world_size`` and takes its own disjoint part of
        each (an even split of a smaller last batch), so one process with the global batch
        size sees the same batches."""
        import torch

        if shuffle:
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(self.n, generator=generator).to(self.images.device)
        else:
            order = None
        size = batch_size * world_size
        for index in range(self.num_batches(batch_size, drop_last, world_size)):
            start = index * size
            rows = min(size, self.n - start)
            lo = start + rank * rows // world_size
            hi = start + (rank + 1) * rows // world_size
            idx = slice(lo, hi) if order is None else order[lo:hi]
            x = gather_rows(self.images, idx, pin=self.placement == "pinned")
            y = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
            yield to_float(x, self.device, self.memory_format), y


def gather_rows(images: torch.Tensor, idx: slice | torch.Tensor, pin: bool = False) -> torch.Tensor:
    """``images[idx]``; with ``pin``, into a fresh pinned buffer, so the copy to the GPU that
    follows does not block. (torch's caching host allocator keeps a pinned block from reuse
    until the copies that read it are done.)"""
    import torch

    if not pin:
        return images[idx]
    n = len(range(*idx.indices(len(images)))) if isinstance(idx, slice) else len(idx)
    out = torch.empty((n, *images.shape[1:]), dtype=images.dtype, pin_memory=True)
    if isinstance(idx, slice):
        return out.copy_(images[idx])
    return torch.index_select(images, 0, idx, out=out)


def to_float(
    x: torch.Tensor, device: torch.device, memory_format: torch.memory_format | None = None
) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1] on ``device`` in ``memory_format`` (default
    contiguous), converted and laid out in one kernel after the copy."""
    import torch

    x = x.to(device, non_blocking=True)
    layout = memory_format or torch.contiguous_format
    return x.to(dtype=torch.float32, memory_format=layout).div_(255.0)
