"""vaekit: a plugin-based toolkit for variational-autoencoder data pipelines.

Importing this package is cheap (no torch): heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from vaekit.version import __version__

#: Decorator for plugin hook implementations: ``@vaekit.hookimpl``.
hookimpl = pluggy.HookimplMarker("vaekit")

if TYPE_CHECKING:
    from pathlib import Path

    from vaekit.runs import LoadedRun


def load_model(run_dir: str | Path = "runs/latest", device: str = "cpu") -> Any:
    """Load a trained model from a run directory, ready for inference (eval mode)."""
    return open_run(run_dir, device=device).model


def open_run(run_dir: str | Path = "runs/latest", device: str = "cpu") -> LoadedRun:
    """Load a trained run: model (eval mode), typed config, class names, weights hash."""
    from vaekit.runs import open_run as _open

    return _open(run_dir, device=device)


__all__ = ["__version__", "hookimpl", "load_model", "open_run"]
