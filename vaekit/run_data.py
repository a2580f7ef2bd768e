"""A trained run and the images a command reads with it: loaded the run's way (its
preprocessing, its split), on the device asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vaekit.dataset import SPLITS, ImageDataset
from vaekit.errors import DataError, UsageError

if TYPE_CHECKING:
    import torch

    from vaekit.runs import LoadedRun


def open_split(
    model_dir: str | Path,
    data: str | Path | ImageDataset | None,
    split: str | Sequence[str] | None,
    accelerator: str = "cpu",
) -> tuple[LoadedRun, ImageDataset, str, torch.device]:
    """The run in ``model_dir`` loaded on ``accelerator``'s device, and the images of
    ``split`` (as :func:`evaluate` takes it) of ``data`` read the run's way; with the
    split's name (``all`` for every image) and the device."""
    from vaekit.runs import open_run

    device = device_of(accelerator)
    loaded = open_run(model_dir, str(device))
    dataset, name = read_split(loaded, data, split)
    return loaded, dataset, name, device


def read_split(
    loaded: LoadedRun, data: str | Path | ImageDataset | None, split: str | Sequence[str] | None
) -> tuple[ImageDataset, str]:
    """The images of ``split`` of ``data`` read the run's way, and the split's name,
    reading only the dataset's own splits that split needs where its source can (for a
    list of names, the first one's, then the next's when the data has no images of it).

    The images and the name are those :func:`open_run_data` gives; only what is read
    differs. Data whose source cannot read a split alone is read once, whole."""
    from vaekit.data import reads_splits_apart

    one = isinstance(split, str)
    names = [split] if one else list(split or ())
    if split not in (None, "all") and reads_splits_apart(loaded.config.train, data):
        for name in names:
            if name not in SPLITS:
                break  # the whole read's check names the mistake
            try:
                read = loaded.load_data(data, name)
            except DataError:
                break  # read it whole below, so that the error is the one every command gives
            if read.split is not None and (read.split == SPLITS.index(name)).any():
                return read.require_split(name), name
            if one:
                break  # none: the whole read's error names every split the data has
            # every image of ``name`` is in ``read``, and there are none: the next name
    everything = loaded.load_data(data)
    name = everything.choose_split(split)
    return everything.require_split(name), name or "all"


def open_run_data(
    model_dir: str | Path,
    data: str | Path | ImageDataset | None,
    split: str | Sequence[str] | None,
    accelerator: str = "cpu",
) -> tuple[LoadedRun, ImageDataset, ImageDataset, str, torch.device]:
    """:func:`open_split`, with every image of the data too: the loaded run, all of the
    data, the split's images, the split's name and the device."""
    from vaekit.runs import open_run

    device = device_of(accelerator)
    loaded = open_run(model_dir, str(device))
    everything = loaded.load_data(data)
    name = everything.choose_split(split)
    return loaded, everything, everything.require_split(name), name or "all", device


def subsample(data: ImageDataset, max_images: int | None, seed: int = 0) -> ImageDataset:
    """At most ``max_images`` images of ``data``: a seeded random choice, in data order."""
    if max_images is None or max_images >= len(data):
        return data
    if max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {max_images}")
    rng = np.random.default_rng(seed)
    return data.subset(np.sort(rng.choice(len(data), size=max_images, replace=False)))


def device_of(accelerator: str) -> torch.device:
    from vaekit.devices import choose_accelerator

    return choose_accelerator(accelerator).device
