"""Built-in plugin: the ``vae`` model kind."""

from __future__ import annotations

from vaekit import hookimpl


def build_vae(config, components):
    """The unconditional VAE: q(z|x) diagonal Gaussian, p(z) prior, p(x|z) likelihood."""
    from vaekit.model import VAE

    return VAE(config, components)


@hookimpl
def register_models(register):
    """Register the built-in model kinds."""
    register("vae", build_vae)
