"""Built-in plugin: the ``vae`` model kind."""

from __future__ import annotations

from vaekit import hookimpl


def build_vae(config, components):
    """The unconditional VAE: q(z|x) diagonal Gaussian, p(z) prior, p(x|z) likelihood."""
    from vaekit.model import VAE

    return VAE(config, components)


def build_cvae(config, components):
    """The class-conditional VAE (Kingma et al. 2014, M2/CVAE): q(z|x, y) and p(x|z, y),
    with y one-hot appended to the encoder's features and to z. ``config.num_classes``
    comes from the training data's class names; unlabelled images get y = 0."""
    from vaekit.errors import UsageError
    from vaekit.model import VAE

    if config.num_classes < 1:
        raise UsageError("model 'cvae' needs data with class labels (e.g. the digits)")
    return VAE(config, components)


@hookimpl
def register_models(register):
    """Register the built-in model kinds."""
    register("vae", build_vae)
    register("cvae", build_cvae)
