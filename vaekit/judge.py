"""The judge: a small classifier trained on a run's real, labelled training images, used
to measure what the model generates (:mod:`vaekit.generation`).

It predicts the data's class (when the data has class labels) and each binary attribute
(when it has attributes) from one shared trunk; its penultimate layer is the feature
space of the Fréchet distance and of precision/recall. Nothing is downloaded: it learns
from the run's own data, so it works on 8×8 digits, Fashion-MNIST and faces alike.

Saved in the run directory as ``judge/judge.safetensors`` (weights only) and
``judge/judge.json`` (what it was trained on, its settings and its accuracy per label on
held-out real images). It is reused while the data (fingerprint, labels, image shape)
and the judge's settings are unchanged, and trained again otherwise. The VAE's weights
do not enter it: retraining the VAE on the same data keeps the judge.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vaekit.errors import DataError
from vaekit.files import atomic_path, atomic_write_text

JUDGE_DIR = "judge"
WEIGHTS = "judge.safetensors"
INFO = "judge.json"
#: Bumped when the network or its training changes: older judges are retrained.
JUDGE_VERSION = 1
FEATURES = 128
#: Optimiser steps of a judge's training (batch 128).
JUDGE_STEPS = 2000
BATCH = 128
PREDICT_BATCH = 512

#: ``progress(done, total)`` after each training step.
Progress = Callable[[int, int], None]


class JudgeNet(nn.Module):
    """Conv trunk (stride-2 stages down to at most 8×8) → 128 features → class logits
    and attribute logits."""

    def __init__(self, input_shape: tuple[int, int, int], classes: int, attributes: int):
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = [nn.Conv2d(c, 16, 3, padding=1), nn.SiLU()]
        width, size = 16, min(h, w)
        while size > 8:
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU()]
            width, size = 2 * width, (size + 1) // 2
        layers += [nn.Conv2d(width, 64, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(4)]
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 16, FEATURES), nn.SiLU())
        self.classes = nn.Linear(FEATURES, classes) if classes else None
        self.attributes = nn.Linear(FEATURES, attributes) if attributes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any, Any]:
        """``x`` (B, C, H, W) in [0, 1] → features, class logits (or None), attribute
        logits (or None)."""
        features = self.trunk(x)
        classes = self.classes(features) if self.classes is not None else None
        attributes = self.attributes(features) if self.attributes is not None else None
        return features, classes, attributes


@dataclass
class JudgeOutput:
    """What the judge says of a set of images."""

    features: np.ndarray  # (N, FEATURES) float32
    labels: np.ndarray | None  # (N,) predicted class ids
    attributes: np.ndarray | None  # (N, A) predicted flags


@dataclass
class JudgeInfo:
    """``judge.json``: what the judge was trained on and how well it does on real images."""

    version: int
    key: str
    image_shape: list[int]
    class_names: list[str] | None
    attribute_names: list[str] | None
    steps: int
    seed: int
    train_images: int
    train_seconds: float
    heldout_split: str
    heldout_images: int
    #: share of held-out images whose class it names right
    class_accuracy: float | None = None
    #: per class: share of held-out images of that class it calls that class (recall)
    class_recall: dict[str, float] = field(default_factory=dict)
    #: per attribute: share of held-out images it labels right
    attribute_accuracy: dict[str, float] = field(default_factory=dict)


class Judge:
    """A trained judge: call :meth:`predict` on uint8 (N, C, H, W) images."""

    def __init__(self, net: JudgeNet, info: JudgeInfo, device: torch.device | str = "cpu"):
        self.net = net.to(device).eval()
        self.info = info
        self.device = torch.device(device)
        #: why it was not saved (a read-only run), else ""
        self.unsaved = ""

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> JudgeOutput:
        """Features, predicted classes and attributes of uint8 (N, C, H, W) images."""
        feats, classes, attrs = [], [], []
        for lo in range(0, len(images), PREDICT_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(images[lo : lo + PREDICT_BATCH]))
            f, c, a = self.net(x.to(self.device).float() / 255.0)
            feats.append(f.float().cpu().numpy())
            if c is not None:
                classes.append(c.argmax(1).cpu().numpy())
            if a is not None:
                attrs.append((a > 0).cpu().numpy())
        return JudgeOutput(
            np.concatenate(feats) if feats else np.zeros((0, FEATURES), np.float32),
            np.concatenate(classes) if classes else None,
            np.concatenate(attrs) if attrs else None,
        )


def judge_key(
    fingerprint: str,
    image_shape: tuple[int, ...],
    class_names: list[str] | None,
    attribute_names: list[str] | None,
    steps: int,
    seed: int,
) -> str:
    """What a saved judge must match to be reused: the data and the judge's settings."""
    text = json.dumps(
        [JUDGE_VERSION, fingerprint, list(image_shape), class_names, attribute_names, steps, seed]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def has_labels(data: Any) -> bool:
    """Whether ``data`` (an ImageDataset) has what a judge learns from: class names with
    at least one labelled image, or attributes."""
    return bool(
        (data.labels is not None and data.class_names and bool((data.labels >= 0).any()))
        or (data.attributes is not None and data.attribute_names)
    )


def train_judge(
    train: Any,
    heldout: Any,
    *,
    heldout_split: str = "",
    steps: int = JUDGE_STEPS,
    seed: int = 0,
    key: str = "",
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> Judge:
    """Train a judge on the labelled images of ``train`` and measure it on ``heldout``
    (both ImageDatasets, already read the run's way)."""
    if not has_labels(train):
        raise DataError(
            f"dataset '{train.source}' has neither class labels nor attributes: no judge"
        )
    use_classes = (
        train.labels is not None and bool(train.class_names) and bool((train.labels >= 0).any())
    )
    use_attrs = train.attributes is not None and bool(train.attribute_names)
    num_classes = len(train.class_names) if use_classes else 0
    num_attrs = len(train.attribute_names) if use_attrs else 0
    if len(train) == 0:
        raise DataError("no training images to train the judge on")
    device = torch.device(device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = JudgeNet(train.image_shape, num_classes, num_attrs).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    images = torch.from_numpy(np.ascontiguousarray(train.images))
    labels = torch.from_numpy(train.labels.astype(np.int64)) if use_classes else None
    attrs = torch.from_numpy(train.attributes.astype(np.float32)) if use_attrs else None
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    cursor = 0
    net.train()
    for step in range(steps):
        if cursor + BATCH > len(order):
            order, cursor = torch.randperm(len(images), generator=generator), 0
        idx = order[cursor : cursor + BATCH]
        cursor += BATCH
        x = images[idx].to(device).float() / 255.0
        _, class_logits, attr_logits = net(x)
        loss = torch.zeros((), device=device)
        if labels is not None:
            y = labels[idx].to(device)
            if bool((y >= 0).any()):
                loss = loss + nn.functional.cross_entropy(class_logits, y, ignore_index=-1)
        if attrs is not None:
            loss = loss + nn.functional.binary_cross_entropy_with_logits(
                attr_logits, attrs[idx].to(device)
            )
        if not loss.requires_grad:  # a batch of unlabelled images only: nothing to learn
            continue
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if progress:
            progress(step + 1, steps)
    info = JudgeInfo(
        version=JUDGE_VERSION,
        key=key,
        image_shape=list(train.image_shape),
        class_names=list(train.class_names) if use_classes else None,
        attribute_names=list(train.attribute_names) if use_attrs else None,
        steps=steps,
        seed=seed,
        train_images=len(train),
        train_seconds=round(time.perf_counter() - start, 2),
        heldout_split=heldout_split,
        heldout_images=len(heldout),
    )
    judge = Judge(net, info, device)
    _measure(judge, heldout)
    return judge


def _measure(judge: Judge, heldout: Any) -> None:
    """Fill the judge's held-out accuracy per label (on real images)."""
    info = judge.info
    if len(heldout) == 0:
        return
    out = judge.predict(heldout.images)
    if info.class_names and out.labels is not None and heldout.labels is not None:
        known = heldout.labels >= 0
        if known.any():
            info.class_accuracy = float((out.labels[known] == heldout.labels[known]).mean())
        for c, name in enumerate(info.class_names):
            of_class = heldout.labels == c
            if of_class.any():
                info.class_recall[name] = float((out.labels[of_class] == c).mean())
    if info.attribute_names and out.attributes is not None and heldout.attributes is not None:
        right = out.attributes == heldout.attributes.astype(bool)
        info.attribute_accuracy = {
            name: float(right[:, j].mean()) for j, name in enumerate(info.attribute_names)
        }


def save_judge(judge: Judge, run_dir: str | Path) -> Path:
    """Write the judge into ``RUN/judge/`` (weights, then its description), atomically."""
    from safetensors.torch import save_file

    folder = Path(run_dir) / JUDGE_DIR
    state = {k: v.detach().cpu().contiguous() for k, v in judge.net.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(folder / INFO, json.dumps(asdict(judge.info), indent=2) + "\n")
    return folder


def load_judge(run_dir: str | Path, key: str, device: torch.device | str = "cpu") -> Judge | None:
    """The judge saved in ``RUN/judge/`` when it was trained for ``key``; None when there
    is none, it is for other data or settings, or its files are damaged (it is retrained)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(run_dir) / JUDGE_DIR
    try:
        raw = json.loads((folder / INFO).read_text())
        if raw.get("key") != key or raw.get("version") != JUDGE_VERSION:
            return None
        info = JudgeInfo(**raw)
        net = JudgeNet(
            tuple(info.image_shape),  # type: ignore[arg-type]
            len(info.class_names or []),
            len(info.attribute_names or []),
        )
        net.load_state_dict(load_file(str(folder / WEIGHTS)))
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, SafetensorError):
        return None
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        return None
    return Judge(net, info, device)


def judge_for(
    run_dir: str | Path,
    everything: Any,
    heldout_split: str,
    *,
    steps: int = JUDGE_STEPS,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> tuple[Judge, bool]:
    """The run's judge for ``everything`` (the run's data, every split): the saved one
    when it fits, else one trained on the ``train`` split and saved. Returns it and
    whether it was trained now."""
    from vaekit.data import fingerprint_arrays

    train = everything.select_split("train") if everything.split is not None else everything
    labelled = [a for a in (train.labels, train.attributes) if a is not None]
    key = judge_key(
        fingerprint_arrays(train.images, train.ids, *labelled),
        everything.image_shape,
        everything.class_names if everything.labels is not None else None,
        everything.attribute_names if everything.attributes is not None else None,
        steps,
        seed,
    )
    saved = load_judge(run_dir, key, device)
    if saved is not None:
        return saved, False
    heldout = everything.select_split(heldout_split) if heldout_split != "all" else everything
    judge = train_judge(
        train,
        heldout,
        heldout_split=heldout_split,
        steps=steps,
        seed=seed,
        key=key,
        device=device,
        progress=progress,
    )
    try:
        save_judge(judge, run_dir)
    except OSError as exc:  # a read-only run: judge all the same, train again next time
        judge.unsaved = f"the judge could not be saved in {run_dir} ({exc.strerror or exc})"
    return judge, True
