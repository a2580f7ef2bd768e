"""vaekit: a plugin-based toolkit for variational-autoencoder data pipelines.

Importing this package is cheap (no torch): heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations: ``@vaekit.hookimpl``.
hookimpl = pluggy.HookimplMarker("vaekit")

if TYPE_CHECKING:
    from pathlib import Path

    from vaekit.model import VAE


def load_model(run_dir: str | Path = "runs/latest", device: str = "cpu") -> VAE:
    """Load a trained model from a run directory, ready for inference (eval mode)."""
    from vaekit.runs import load_model as _load

    return _load(run_dir, device=device)


def __getattr__(name: str) -> Any:
    if name == "train":
        from vaekit.train import train

        return train
    raise AttributeError(name)


__all__ = ["__version__", "hookimpl", "load_model"]
