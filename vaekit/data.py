"""Datasets in memory, and turning a dataset plugin into batches.

Images stay uint8 ``(N, C, H, W)`` (in memory or memory-mapped from the decode
cache) until a batch reaches the device, where it becomes float in [0, 1].
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaekit.errors import DataError, UsageError

if TYPE_CHECKING:
    import torch

    from vaekit.config import TrainConfig

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: the splits evaluated when none is named: the test images, else the validation ones
HELD_OUT: tuple[str, ...] = ("test", "val")
#: a dataset's own splits that hold each split's images (validation images are carved from
#: the training ones): what a dataset plugin that reads by split is asked for
SOURCE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("train", "val"),
    "test": ("test",),
}
UNLABELLED = -1


@dataclass
class ImageDataset:
    """Images with ids, splits and optional class labels and binary attributes.

    ``labels`` holds one class id per image (``UNLABELLED`` = -1 where unknown)
    with ``class_names[id]`` its name; ``attributes`` holds many booleans per
    image with ``attribute_names``. ``split`` holds an index into ``SPLITS`` per
    image, or is ``None`` when the data has no split of its own.
    """

    images: np.ndarray  # (N, C, H, W) uint8
    ids: np.ndarray  # (N,) str: relative paths or indices
    source: str  # the dataset plugin's name
    location: str  # the path it came from, or "embedded"
    labels: np.ndarray | None = None  # (N,) int64
    class_names: list[str] | None = None
    attributes: np.ndarray | None = None  # (N, A) bool
    attribute_names: list[str] | None = None
    split: np.ndarray | None = None  # (N,) uint8 index into SPLITS
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"dataset '{self.source}' gave images of dtype {self.images.dtype} and shape "
                f"{self.images.shape}; expected uint8 (N, C, H, W)"
            )
        n = len(self.images)
        self.ids = np.asarray(self.ids, dtype=str)
        for name in ("ids", "labels", "attributes", "split"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(
                    f"dataset '{self.source}': {name} has {len(value)} rows, images {n}"
                )
        if not self.fingerprint:
            self.fingerprint = fingerprint_arrays(self.images, self.ids)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray) -> ImageDataset:
        """The rows at ``index`` (an int array or boolean mask), keeping names and source."""

        def take(a):
            return None if a is None else a[index]

        return replace(
            self,
            images=self.images[index],
            ids=self.ids[index],
            labels=take(self.labels),
            attributes=take(self.attributes),
            split=take(self.split),
        )

    def with_splits(self, val_fraction: float = 0.1, seed: int = 0) -> ImageDataset:
        """Give every image a split. The dataset's own split is kept; ``val_fraction`` of
        its training images (of all images, when it has none) become ``val``, chosen by a
        seeded permutation so every command sees the same split."""
        if not 0 <= val_fraction < 1:
            raise UsageError(f"validation fraction must be in [0, 1), got {val_fraction}")
        split = np.zeros(len(self), dtype=np.uint8) if self.split is None else self.split.copy()
        train = np.flatnonzero(split == SPLITS.index("train"))
        n_val = int(round(val_fraction * len(train)))
        if n_val:
            rng = np.random.default_rng(seed)
            split[rng.permutation(train)[:n_val]] = SPLITS.index("val")
        return replace(self, split=split)

    def select_split(self, name: str | None) -> ImageDataset:
        """Only the images of split ``name`` (``None`` or ``"all"``: everything)."""
        chosen = self._split_mask(name)
        if chosen is None or chosen.all():  # all of it: no copy
            return self
        return self.subset(chosen)

    def _split_mask(self, name: str | None) -> np.ndarray | None:
        """Which rows are in split ``name`` (None for ``None`` or ``"all"``: every row)."""
        if name in (None, "all"):
            return None
        if name not in SPLITS:
            raise UsageError(f"unknown split '{name}'; choose one of: all, {', '.join(SPLITS)}")
        if self.split is None:
            raise UsageError(f"dataset '{self.source}' has no splits; use --split all")
        return self.split == SPLITS.index(name)

    def first_split(self, order: Sequence[str] = HELD_OUT) -> str:
        """The first split of ``order`` that has images here, else ``all``."""
        if self.split is None:
            return "all"
        for name in order:
            if (self.split == SPLITS.index(name)).any():
                return name
        return "all"

    def choose_split(self, split: str | Sequence[str] | None) -> str | None:
        """A ``--split`` value as one name: ``split`` itself when it is a name (or
        ``None``, everything), else the first of the names it lists that has images."""
        if split is None or isinstance(split, str):
            return split
        return self.first_split(split)

    def require_split(self, name: str | None) -> ImageDataset:
        """Like :meth:`select_split` (for a ``--split`` option), but an empty selection is an
        error that names the splits the data has."""
        rows = self.split_rows(name)
        return self if len(rows) == len(self) else self.subset(rows)

    def split_rows(self, name: str | None) -> np.ndarray:
        """The row numbers (ascending) of split ``name`` (``None`` or ``"all"``: every row),
        checked as :meth:`require_split` checks them. Going through a split by row numbers
        needs no copy of its images."""
        chosen = self._split_mask(name)
        if chosen is None:
            return np.arange(len(self))
        rows = np.flatnonzero(chosen)
        if len(rows) == 0 and len(self):
            present = [s for i, s in enumerate(SPLITS) if (self.split == i).any()]
            raise UsageError(
                f"dataset '{self.source}' has no '{name}' images; its splits are: "
                f"{', '.join(present)} (use --split {present[-1]} or --split all)"
            )
        return rows

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for run configs and file attributes."""
        return {
            "source": self.source,
            "location": self.location,
            "n": len(self),
            "image_shape": list(self.image_shape),
            "class_names": self.class_names,
            "attribute_names": self.attribute_names,
            "fingerprint": self.fingerprint,
        }


def fingerprint_arrays(*arrays: np.ndarray, sample: int = 4096) -> str:
    """A short, stable hash of arrays' shapes and (a strided sample of) their contents."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.shape, array.dtype.str)).encode())
        step = max(1, len(array) // sample)
        digest.update(np.ascontiguousarray(array[::step]).tobytes())
    return digest.hexdigest()[:16]


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
        from vaekit.sources.folder import no_images_error

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
    return _read(config, config.data, config.dataset, dict(config.dataset_options), split)


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
    if data is None:
        if config.data is not None and not Path(config.data).exists():
            raise DataError(
                f"the run was trained on '{config.data}', which is not found from here; "
                "pass the data as DATA"
            )
        return load_training_data(config, split)
    source, options = config.dataset, dict(config.dataset_options)
    if source is not None and not _detects(source, data):
        source, options = None, {}
    return _read(config, data, source, options, split)


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
        from vaekit.sources.cache import cached_conversion

        images = cached_conversion(
            data.images, data.source, Path(cache_path), data.fingerprint, channels, image_size
        )
    else:
        images = convert_images(data.images, image_size, channels)
    return replace(data, images=images, fingerprint="")


def needs_conversion(images: np.ndarray, image_size: int | None, channels: int | None) -> bool:
    """Whether ``images`` differ from the asked channels or ``image_size`` squares."""
    return (channels is not None and images.shape[1] != channels) or (
        image_size is not None and images.shape[2:] != (image_size, image_size)
    )


def convert_images(
    images: np.ndarray, image_size: int | None = None, channels: int | None = None
) -> np.ndarray:
    """(N, C, H, W) uint8 to ``channels`` and ``image_size`` squares (contiguous uint8)."""
    if channels is not None and images.shape[1] != channels:
        if channels == 1:  # ITU-R 601 luma, as Pillow's "L" mode
            weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
            images = np.rint((images[:, :3].astype(np.float32) * weights).sum(1, keepdims=True))
            images = images.clip(0, 255).astype(np.uint8)
        else:
            images = np.repeat(images[:, :1], 3, axis=1)
    if image_size is not None and images.shape[2:] != (image_size, image_size):
        images = resize_batch(images, image_size)
    return np.ascontiguousarray(images)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) uint8 -> (C, size, size): scale the short side to ``size``, centre-crop."""
    from PIL import Image

    channels, height, width = image.shape
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    planes = []
    for plane in image:
        resized = Image.fromarray(plane).resize((new_w, new_h), Image.Resampling.BILINEAR)
        planes.append(np.asarray(resized)[top : top + size, left : left + size])
    return np.stack(planes)


def resize_batch(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, size, size), as :func:`resize_square` does each image.

    The same bilinear filter as Pillow's (widened when shrinking, so it
    antialiases), written as one matrix per axis and applied to ``chunk`` images
    at a time with two matrix products; values agree with Pillow's to within 1
    (Pillow rounds to 8 bits between its two passes).
    """
    n, channels, height, width = images.shape
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    rows = bilinear_matrix(height, new_h)[top : top + size]  # (size, H)
    cols = bilinear_matrix(width, new_w)[left : left + size].T.copy()  # (W, size)
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for start in range(0, n, chunk):
        block = images[start : start + chunk].astype(np.float32)
        block = rows @ (block @ cols)  # (b, C, H, W) -> (b, C, H, size) -> (b, C, size, size)
        np.clip(np.rint(block), 0, 255, out=block)
        out[start : start + chunk] = block
    return out


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) weights of Pillow's bilinear resampling along one axis."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale
    weights = 1.0 - np.abs(np.arange(in_size)[None, :] + 0.5 - centres[:, None]) / support
    weights = weights.clip(min=0.0)
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


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
