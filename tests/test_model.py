"""The VAE: ELBO terms, loss scaling, free bits, Monte Carlo KL, IWAE, strict configs."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.config import ModelConfig
from vaekit.errors import DataError
from vaekit.model import VAE, elbo_loss, iwae_bound, kl_divergence
from vaekit.posterior import DiagonalGaussian


def tiny_model(**kwargs) -> VAE:
    from vaekit.model import build_model

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


def test_elbo_terms_and_the_objective():
    model = tiny_model()
    x = torch.rand(5, 1, 8, 8)
    terms = model.elbo(x)
    assert terms.recon_nll.shape == (5,) and terms.kl_terms.shape == (5, 3)
    assert terms.posterior.mean.shape == terms.posterior.logvar.shape == (5, 3)
    assert terms.z.shape == (5, 3) and terms.params.shape == (5, 1, 8, 8)
    torch.testing.assert_close(terms.neg_elbo, terms.recon_nll + terms.kl_terms.sum(1))
    # beta = 1: the loss is exactly the batch-mean -ELBO (sum over dims, mean over batch)
    torch.testing.assert_close(elbo_loss(terms, 1.0), terms.neg_elbo.mean())
    torch.testing.assert_close(elbo_loss(terms, 0.0), terms.recon_nll.mean())
    torch.manual_seed(3)
    objective = model(x, beta=0.5)
    torch.manual_seed(3)
    again = model.elbo(x)
    torch.testing.assert_close(objective.loss, again.recon_nll.mean() + 0.5 * again.kl.mean())


def test_decoder_defaults_to_the_encoder_family():
    assert ModelConfig(input_shape=(1, 8, 8), encoder="resnet").decoder == "resnet"
    assert ModelConfig(input_shape=(1, 8, 8), encoder="resnet", decoder="conv").decoder == "conv"


def test_free_bits_floor_each_dimension_or_the_total():
    model = tiny_model()
    terms = model.elbo(torch.rand(4, 1, 8, 8))
    floor = float(terms.kl_terms.detach().mean(0).max()) + 1.0
    loss = elbo_loss(terms, 1.0, free_bits=floor, latent_dim=3)
    torch.testing.assert_close(loss, terms.recon_nll.mean() + 3 * floor)
    # a KL that does not split by dimension (one column): the floor is on the total
    total = terms._replace(kl_terms=terms.kl_terms.sum(1, keepdim=True))
    loss = elbo_loss(total, 1.0, free_bits=floor, latent_dim=3)
    torch.testing.assert_close(loss, terms.recon_nll.mean() + 3 * floor)


class NoClosedForm(torch.nn.Module):
    """N(0, I) without ``kl``: the core must estimate the KL by Monte Carlo."""

    def log_prob(self, z):
        return (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, n, generator=None):
        return torch.randn(n, 3, generator=generator)


def test_monte_carlo_kl_is_log_q_minus_log_p_at_the_drawn_z_and_unbiased():
    q = DiagonalGaussian(torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.0, -1.0, 0.5]]))
    z = q.rsample(20000)[:, 0]  # (N, D) draws of one posterior
    mc = kl_divergence(
        NoClosedForm(), DiagonalGaussian(q.mean.expand(len(z), 3), q.logvar.expand(len(z), 3)), z
    )
    assert mc.shape == (len(z), 1)
    from vaekit.plugins import create

    exact = create("priors", "normal", 3).kl(q).sum()
    assert float(mc.mean()) == pytest.approx(float(exact), abs=0.05)


def test_mean_path_is_deterministic_and_reparametrisation_has_gradients():
    model = tiny_model().eval()
    x = torch.rand(2, 1, 8, 8)
    first, second = model.elbo(x, sample=False), model.elbo(x, sample=False)
    torch.testing.assert_close(first.neg_elbo, second.neg_elbo)
    model.train()
    model(x).loss.backward()
    assert model.head.weight.grad is not None


def test_iwae_bound_is_at_least_the_elbo_on_average():
    model = tiny_model().eval()
    x = torch.rand(8, 1, 8, 8)
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = torch.stack([-model.elbo(x).neg_elbo for _ in range(200)]).mean(0)
    iwae = iwae_bound(model, x, k=200)
    assert (iwae >= elbo - 0.5).all()


def test_model_config_round_trip_is_strict_and_typed():
    config = ModelConfig(input_shape=(3, 28, 28), encoder="conv", encoder_options={"width": 8})
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(DataError, match=r"unknown keys \['laten_dim'\]"):
        ModelConfig.from_dict(config.to_dict() | {"laten_dim": 4})
    with pytest.raises(DataError, match="latent_dim must be an integer, got '16'"):
        ModelConfig.from_dict(config.to_dict() | {"latent_dim": "16"})
    with pytest.raises(DataError, match="input_shape must have 3 entries"):
        ModelConfig.from_dict(config.to_dict() | {"input_shape": [28, 28]})
