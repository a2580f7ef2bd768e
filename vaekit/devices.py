"""Choosing where work runs: the accelerator plugins behind ``--accelerator``."""

from __future__ import annotations

from typing import Any

from vaekit.plugins import get_plugin_host


def resolve_accelerator_name(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is available, else ``cpu``; other names unchanged."""
    if name != "auto":
        return name
    cuda = get_plugin_host().registry("accelerators").get("cuda")
    return "cuda" if cuda is not None and cuda.factory.is_available() else "cpu"


def choose_accelerator(name: str, options: dict[str, Any] | None = None) -> Any:
    """Build the accelerator ``name`` (``auto``: see :func:`resolve_accelerator_name`); one
    that this machine cannot use is an error that names the fallback."""
    name = resolve_accelerator_name(name)
    accelerator = get_plugin_host().create("accelerators", name, **(options or {}))
    if not accelerator.is_available():
        from vaekit.builtin.accelerators import not_available

        raise not_available(name)
    return accelerator


def batch_memory_format(accelerator: Any) -> Any:
    """The layout batches go to ``accelerator``'s device in: its optional ``memory_format``
    (channels-last to match channels-last weights), else contiguous."""
    import torch

    return getattr(accelerator, "memory_format", None) or torch.contiguous_format
