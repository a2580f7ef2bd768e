"""Memory limits: work that cannot be batched is checked against a stated limit first.

The limit is ``$VAEKIT_MEMORY_LIMIT`` (bytes, or with a suffix: ``512M``, ``8G``)
or, by default, half of the machine's physical memory. A command whose estimate
exceeds it stops before allocating anything, naming the option to change
(docs/cli.md#memory).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vaekit.errors import UsageError, VaekitError

if TYPE_CHECKING:
    from vaekit.config import ModelConfig

ENV = "VAEKIT_MEMORY_LIMIT"
#: More importance samples than this would take days and gain nothing measurable.
MAX_IWAE_K = 100_000
_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MemoryLimitError(VaekitError):
    """Work whose estimated memory exceeds :func:`memory_limit` (exit code 1)."""


def memory_limit() -> int:
    """The limit in bytes: ``$VAEKIT_MEMORY_LIMIT`` or half the physical memory."""
    text = os.environ.get(ENV, "").strip()
    if text:
        number, unit = text.rstrip("bB").upper(), ""
        if number and number[-1] in _SUFFIXES:
            number, unit = number[:-1], number[-1]
        try:
            value = float(number) * _SUFFIXES[unit]
        except ValueError:
            raise UsageError(f"{ENV}='{text}' is not a size; give bytes or e.g. 8G") from None
        if not value > 0:
            raise UsageError(f"{ENV}='{text}' must be > 0")
        return int(value)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(need: float, what: str, fix: str) -> None:
    """MemoryLimitError when ``need`` bytes exceed the limit; the message names ``fix``."""
    limit = memory_limit()
    if need > limit:
        raise MemoryLimitError(
            f"{what} needs about {format_bytes(need)}, over vaekit's memory limit of "
            f"{format_bytes(limit)}; {fix} (or raise {ENV})"
        )


def model_footprint(config: ModelConfig) -> tuple[int, int]:
    """``(parameter bytes, activation bytes per image)`` of the model ``config`` describes,
    measured on PyTorch's meta device: nothing is allocated, whatever the sizes.

    Activations are the outputs of every leaf module of one encoder and one decoder
    pass. A component that cannot run on the meta device gives (its parameters, 0).
    """
    import torch

    from vaekit.model import build_model

    with torch.device("meta"):
        try:
            model = build_model(config)
        except VaekitError:
            raise
        except Exception:  # noqa: BLE001 - cannot be measured; the real build reports it
            return 0, 0
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        total = [0]

        def count(_module, _inputs, output) -> None:
            if isinstance(output, torch.Tensor):
                total[0] += output.numel() * 4

        leaves = [m for m in model.modules() if not any(True for _ in m.children())]
        hooks = [m.register_forward_hook(count) for m in leaves]
        try:
            model.encoder(torch.zeros(1, *config.input_shape))
            z = torch.zeros(1, config.latent_dim + config.num_classes)
            model.decoder(z)
        except Exception:  # noqa: BLE001 - an estimate; the real run reports real errors
            total[0] = 0
        finally:
            for hook in hooks:
                hook.remove()
    return params, total[0]


def check_model_memory(config: ModelConfig, batch_size: int, training: bool, fix: str) -> None:
    """Check a model of ``config`` working on ``batch_size`` images against the limit:
    training holds weights, gradients and two Adam moments and keeps activations for
    the backward pass (counted twice); inference holds the weights and one batch."""
    params, per_image = model_footprint(config)
    if training:
        need = 4 * params + 2 * batch_size * per_image
        what = f"training this model (batch {batch_size})"
    else:
        need = params + batch_size * per_image
        what = f"this model (batch {batch_size})"
    check_memory(need, what, fix)


def check_iwae_k(iwae_k: int) -> None:
    """A UsageError for an ``--iwae-k`` outside 0 to :data:`MAX_IWAE_K`."""
    if not 0 <= iwae_k <= MAX_IWAE_K:
        raise UsageError(
            f"--iwae-k must be from 0 to {MAX_IWAE_K:,} (the bound tightens slowly past a few "
            f"thousand), got {iwae_k}"
        )
