"""The VAE: ELBO terms, loss scaling, free bits, IWAE, strict configs."""

from __future__ import annotations

import pytest
import torch

from vaekit.errors import UsageError
from vaekit.model import VAE, ModelConfig, build_model


def tiny_model(**kwargs) -> VAE:
    config = ModelConfig(
        input_shape=(1, 8, 8),
        latent_dim=3,
        encoder="mlp",
        encoder_options={"hidden": 16},
        decoder_options={"hidden": 16},
        **kwargs,
    )
    torch.manual_seed(0)
    return build_model(config)


def test_forward_terms_and_elbo():
    model = tiny_model()
    x = torch.rand(5, 1, 8, 8)
    terms = model(x)
    assert terms.recon_nll.shape == (5,) and terms.kl_per_dim.shape == (5, 3)
    assert terms.mu.shape == terms.logvar.shape == (5, 3)
    assert terms.params.shape == (5, 1, 8, 8)
    torch.testing.assert_close(terms.neg_elbo, terms.recon_nll + terms.kl_per_dim.sum(1))
    # beta = 1: the loss is exactly the batch-mean -ELBO (sum over dims, mean over batch)
    torch.testing.assert_close(VAE.loss(terms, 1.0), terms.neg_elbo.mean())
    torch.testing.assert_close(VAE.loss(terms, 0.0), terms.recon_nll.mean())


def test_decoder_defaults_to_the_encoder_family():
    assert ModelConfig(input_shape=(1, 8, 8), encoder="resnet").decoder == "resnet"
    assert ModelConfig(input_shape=(1, 8, 8), encoder="resnet", decoder="conv").decoder == "conv"


def test_free_bits_floor_each_dimension():
    model = tiny_model()
    terms = model(torch.rand(4, 1, 8, 8))
    floor = float(terms.kl_per_dim.detach().mean(0).max()) + 1.0
    loss = VAE.loss(terms, 1.0, free_bits=floor)
    torch.testing.assert_close(loss, terms.recon_nll.mean() + 3 * floor)


def test_mean_path_is_deterministic_and_reparametrisation_has_gradients():
    model = tiny_model().eval()
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(model(x, sample=False).neg_elbo, model(x, sample=False).neg_elbo)
    model.train()
    VAE.loss(model(x)).backward()
    assert model.head.weight.grad is not None


def test_iwae_bound_is_at_least_the_elbo_on_average():
    model = tiny_model().eval()
    x = torch.rand(8, 1, 8, 8)
    torch.manual_seed(1)
    elbo = torch.stack([-model(x).neg_elbo for _ in range(200)]).mean(0)
    iwae = model.iwae_bound(x, k=200)
    assert (iwae >= elbo - 0.5).all()


def test_model_config_round_trip_is_strict():
    config = ModelConfig(input_shape=(3, 28, 28), encoder="conv", encoder_options={"width": 8})
    assert ModelConfig.from_dict(config.to_dict()) == config
    bad = config.to_dict() | {"laten_dim": 4}
    with pytest.raises(UsageError, match="unknown keys \\['laten_dim'\\]"):
        ModelConfig.from_dict(bad)
