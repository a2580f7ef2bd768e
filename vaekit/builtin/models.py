"""Built-in plugin: the ``vae`` and ``cvae`` model kinds."""

from __future__ import annotations

from vaekit import hookimpl


@hookimpl
def register_models(register):
    """Register the built-in model kinds (``cvae`` declares ``needs_labels``)."""
    from vaekit.model import CVAE, VAE

    register("vae", VAE)
    register("cvae", CVAE)
