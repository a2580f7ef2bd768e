"""Built-in plugin: the ``vae`` and ``cvae`` model kinds."""

from __future__ import annotations

from vaekit import hookimpl


@hookimpl
def register_models(register):
    """Register the built-in model kinds (``cvae`` declares ``needs_labels``), by import
    path: :mod:`vaekit.model` (and torch) load when a model is built."""
    register("vae", "vaekit.model:VAE")
    register("cvae", "vaekit.model:CVAE")
