"""Every built-in family's contract: shapes, finite values, gradients, exact formulas."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.builtin.nets.shapes import downsample_plan
from vaekit.errors import UsageError
from vaekit.plugins import PluginHost
from vaekit.posterior import DiagonalGaussian

SHAPES = [(1, 8, 8), (3, 8, 8), (1, 28, 28), (3, 28, 28), (3, 64, 64), (1, 16, 12)]
NETS = ["mlp", "conv", "resnet"]


@pytest.fixture(scope="module")
def host():
    return PluginHost(entry_points=False)


def test_downsample_plan_mirrors_exactly():
    assert downsample_plan(28, 28) == [(28, 28), (14, 14), (7, 7), (4, 4)]
    assert downsample_plan(8, 8) == [(8, 8), (4, 4)]
    assert downsample_plan(4, 4) == [(4, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NETS)
def test_encoder_and_decoder_shapes_and_gradients(host, name, shape):
    torch.manual_seed(0)
    options = {"hidden": 32} if name == "mlp" else {"width": 8}
    encoder = host.create("encoders", name, shape, **options)
    decoder = host.create("decoders", name, 5, (shape[0] * 2, *shape[1:]), **options)
    x = torch.rand(3, *shape)
    features = encoder(x)
    assert features.shape == (3, encoder.out_features)
    out = decoder(torch.randn(3, 5))
    assert out.shape == (3, shape[0] * 2, *shape[1:])
    assert torch.isfinite(features).all() and torch.isfinite(out).all()
    (features.sum() + out.sum()).backward()
    for module in (encoder, decoder):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_resnet_norm_options(host, norm):
    encoder = host.create("encoders", "resnet", (3, 28, 28), width=8, norm=norm)
    kinds = {type(m).__name__ for m in encoder.modules()}
    assert ("BatchNorm2d" if norm == "batch" else "GroupNorm") in kinds
    assert encoder(torch.rand(2, 3, 28, 28)).shape[0] == 2


def test_resnet_rejects_unknown_norm(host):
    match = "option 'norm' must be one of 'batch', 'layer', 'identity'"
    with pytest.raises(UsageError, match=match):
        host.create("encoders", "resnet", (1, 8, 8), norm="instance")


def test_gaussian_log_likelihood_matches_hand_computation(host):
    lik = host.create("likelihoods", "gaussian", sigma=0.5)
    x = torch.tensor([[[[0.2, 0.9]]]])
    mu = torch.tensor([[[[0.0, 1.0]]]])
    expected = sum(
        -0.5 * math.log(2 * math.pi * 0.25) - (a - b) ** 2 / (2 * 0.25)
        for a, b in [(0.2, 0.0), (0.9, 1.0)]
    )
    assert lik.log_prob(x, mu).item() == pytest.approx(expected, rel=1e-6)
    ref = torch.distributions.Normal(mu, 0.5).log_prob(x).sum()
    assert lik.log_prob(x, mu).item() == pytest.approx(ref.item(), rel=1e-6)


def test_gaussian_learned_sigma_is_a_parameter(host):
    lik = host.create("likelihoods", "gaussian", sigma=0.2, learn_sigma=True)
    assert [n for n, _ in lik.named_parameters()] == ["log_sigma"]
    x, mu = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    lik.log_prob(x, mu).sum().backward()
    assert lik.log_sigma.grad is not None
    fixed = host.create("likelihoods", "gaussian", sigma=0.2)
    assert list(fixed.parameters()) == []


def test_bernoulli_and_laplace_match_torch_distributions(host):
    x = torch.rand(5, 1, 4, 4).round()
    params = torch.randn(5, 1, 4, 4)
    bern = host.create("likelihoods", "bernoulli")
    ref = torch.distributions.Bernoulli(logits=params).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bern.log_prob(x, params), ref)
    lap = host.create("likelihoods", "laplace", scale=0.3)
    ref = torch.distributions.Laplace(params, 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(lap.log_prob(x, params), ref)


@pytest.mark.parametrize("name", ["gaussian", "bernoulli", "laplace"])
def test_likelihood_mean_and_sample_are_images(host, name):
    lik = host.create("likelihoods", name)
    params = torch.randn(2, 3, 5, 5)
    for image in (lik.mean(params), lik.sample(params)):
        assert image.shape == (2, 3, 5, 5)
        assert image.min() >= 0 and image.max() <= 1


def test_normal_prior_kl_matches_the_formula_and_monte_carlo(host):
    prior = host.create("priors", "normal", 3)
    mu = torch.tensor([[0.5, -1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(0.25), math.log(2.0)]])
    by_hand = [
        0.5 * (m**2 + math.exp(lv) - 1 - lv)
        for m, lv in zip(mu[0].tolist(), logvar[0].tolist(), strict=True)
    ]
    posterior = DiagonalGaussian(mu, logvar)
    torch.testing.assert_close(prior.kl(posterior)[0], torch.tensor(by_hand))
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(prior.kl(posterior), torch.distributions.kl_divergence(q, p))
    z = prior.sample(1000)
    assert z.shape == (1000, 3)
    assert prior.log_prob(torch.zeros(1, 3)).item() == pytest.approx(-1.5 * math.log(2 * math.pi))


def test_kl_schedules(host):
    warmup = host.create("kl_schedules", "warmup", 1000, steps=100)
    assert [warmup(s, 0) for s in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    assert host.create("kl_schedules", "warmup", 1000)(150, 0) == 0.5  # 30% of the run
    sigmoid = host.create("kl_schedules", "sigmoid", 1000, midpoint=200)
    assert sigmoid(0, 0) < 0.01 and sigmoid(200, 0) == 0.5 and sigmoid(1000, 0) > 0.99
    cyclical = host.create("kl_schedules", "cyclical", 400, cycles=4, ratio=0.5)
    assert [cyclical(s, 0) for s in (0, 25, 50, 99, 100, 125)] == [0, 0.5, 1, 1, 0, 0.5]
    # steps that do not divide by the cycles: the run still ends at the top (issue 23: it
    # ended at beta 0.02, the last steps starting a fifth cycle)
    for total, cycles in ((390, 4), (1_000, 3), (30 * 13, 4), (1_001, 7)):
        schedule = host.create("kl_schedules", "cyclical", total, cycles=cycles)
        assert schedule(total - 1, 0) == 1.0, (total, cycles)
        starts = [s for s in range(1, total) if schedule(s, 0) < schedule(s - 1, 0)]
        assert len(starts) == cycles - 1, (total, cycles)  # exactly `cycles` cycles
    constant = host.create("kl_schedules", "constant", 10, beta=0.3)
    assert constant(0, 0) == constant(9, 3) == 0.3


def test_accelerators(host):
    cpu = host.create("accelerators", "cpu")
    assert cpu.is_available() and cpu.device.type == "cpu"
    model = cpu.prepare(torch.nn.Linear(2, 2))
    with cpu.autocast():
        assert model(torch.ones(1, 2)).dtype == torch.float32
    cuda_cls = host.get("accelerators", "cuda").factory
    assert cuda_cls.is_available() == torch.cuda.is_available()
