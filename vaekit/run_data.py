"""A trained run and the images a command reads with it: loaded the run's way (its
preprocessing, its split), on the device asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vaekit.dataset import ImageDataset
from vaekit.errors import UsageError

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
    loaded, _, dataset, name, device = open_run_data(model_dir, data, split, accelerator)
    return loaded, dataset, name, device


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
