"""The plugin module named by this package's ``vaekit`` entry point.

Registers, all prefixed by what they are so they do not clash with other packages:

- priors: ``mog`` (a learned mixture of Gaussians)
- model kinds: ``vamp`` (a VAE with the VampPrior), ``adversarial`` (a VAE whose decoder
  also fools a patch discriminator)
- decoders: ``upsample`` (vaekit's ``conv`` decoder with resize-convolutions instead of
  transposed ones: no checkerboard)
- likelihoods: ``dmol`` (discretised logistic mixture) and ``cat256`` (256-way
  categorical), both normalised over the 256 values of an 8-bit pixel

Components are registered by import path, so ``vaekit --help`` and ``vaekit plugins``
never load torch.
"""

from __future__ import annotations

import vaekit


@vaekit.hookimpl
def register_priors(register):
    """Register the ``mog`` prior."""
    register("mog", "vaekit_zoo.mog:MixtureOfGaussians")


@vaekit.hookimpl
def register_decoders(register):
    """Register the ``upsample`` decoder."""
    register("upsample", "vaekit_zoo.nets:UpsampleDecoder")


@vaekit.hookimpl
def register_likelihoods(register):
    """Register the ``dmol`` and ``cat256`` likelihoods."""
    register("dmol", "vaekit_zoo.discrete:DiscretisedLogisticMixture")
    register("cat256", "vaekit_zoo.discrete:Categorical256")


@vaekit.hookimpl
def register_models(register):
    """Register the ``vamp`` and ``adversarial`` model kinds."""
    register("vamp", "vaekit_zoo.vamp:VampVAE")
    register("adversarial", "vaekit_zoo.adversarial:AdversarialVAE")


@vaekit.hookimpl
def vaekit_train_start(run, config):
    """Warn when an ``adversarial`` run is too short for its adversarial term to switch on
    (``start`` steps): it would otherwise train a plain VAE, silently."""
    import math
    import warnings

    model, train, data = config["model"], config["train"], config.get("data", {})
    if model.get("kind") != "adversarial":
        return
    start = int(model.get("kind_options", {}).get("start", 500))
    images = int(data.get("n") or 0) * (1 - float(train.get("val_fraction", 0.1)))
    steps = math.ceil(images / int(train["batch_size"])) * int(train["epochs"])
    if images and steps <= start:
        from vaekit.train import TrainingWarning

        warnings.warn(
            f"adversarial: its term switches on after {start:,} steps and this run has about "
            f"{steps:,}, so it would train a plain VAE; lower --model-opt start=N or train "
            "longer",
            TrainingWarning,
            stacklevel=2,
        )
