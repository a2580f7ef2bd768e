"""Every built-in component passes the contract kit a plugin author uses (vaekit.testing)."""

from __future__ import annotations

import pytest
import torch

from vaekit import testing
from vaekit.errors import ContractError
from vaekit.plugins import get_plugin_host


@pytest.mark.parametrize("name", ["mlp", "conv", "resnet"])
def test_builtin_networks(name):
    testing.check_encoder_decoder(name, name, params_per_channel=2)


@pytest.mark.parametrize(
    "name, claim", [("gaussian", "real"), ("laplace", "real"), ("bernoulli", "binary")]
)
def test_builtin_likelihoods(name, claim):
    testing.check_likelihood(name, normalised=claim)


def test_builtin_prior():
    testing.check_prior("normal", latent_dim=3)


@pytest.mark.parametrize("name", ["constant", "warmup", "sigmoid", "cyclical"])
def test_builtin_schedules(name):
    testing.check_kl_schedule(name)


def test_builtin_dataset_source():
    testing.check_dataset_source("digits")


class Broken(torch.nn.Module):
    """A prior with log_prob but no sample."""

    def __init__(self, latent_dim):
        super().__init__()

    def log_prob(self, z):
        return z.sum(1)


class Inconsistent(torch.nn.Module):
    """sample draws N(0, I) but log_prob scores N(3, I): two different distributions."""

    def __init__(self, latent_dim):
        super().__init__()
        self.d = latent_dim

    def sample(self, n, generator=None):
        return torch.randn(n, self.d, generator=generator)

    def log_prob(self, z):
        return (-0.5 * (z - 3).square() - 0.9189385).sum(1)


def test_the_kit_fails_components_that_break_the_contract():
    with pytest.raises(ContractError, match=r"prior 'Broken' .* lacks 'sample'"):
        testing.check_prior(Broken)
    with pytest.raises(AssertionError, match="disagrees|integrates"):
        testing.check_prior(Inconsistent)
    with pytest.raises(AssertionError, match="sums to"):  # bernoulli is not a density on R
        testing.check_likelihood("bernoulli", normalised="real")


def test_a_plugin_component_missing_a_member_fails_when_built_naming_everything():
    class Plugin:
        import vaekit

        @vaekit.hookimpl
        def register_priors(self, register):
            register("half", Broken)

    host = get_plugin_host()
    host.add_plugin(Plugin(), "half-prior", "half-dist", "1.0")
    try:
        with pytest.raises(ContractError) as caught:
            host.create("priors", "half", 2)
        message = str(caught.value)
        assert "prior 'half' from plugin 'half-prior'" in message and "'sample'" in message
        assert caught.value.exit_code == 1
    finally:
        host.remove_plugin("half-prior")
