"""Class-conditional priors: the ``cvae``'s learned p(z|y), and a third party's
conditional prior, reached by every path that draws from or scores the prior."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import registered, train_tiny
from typer.testing import CliRunner

from vaekit import hookimpl
from vaekit.cli import app
from vaekit.conditional import ClassConditionalPrior
from vaekit.evaluate import evaluate
from vaekit.generate import sample
from vaekit.model import iwae_bound, kl_divergence, one_hot_labels, sample_prior
from vaekit.posterior import DiagonalGaussian
from vaekit.runs import open_run


def normal_prior(dim: int):
    from vaekit.plugins import create

    return create("priors", "normal", dim)


def moved_prior() -> ClassConditionalPrior:
    prior = ClassConditionalPrior(normal_prior(2), num_classes=3, latent_dim=2)
    with torch.no_grad():
        prior.offsets.copy_(torch.tensor([[4.0, -2.0], [0.0, 0.0], [-3.0, 6.0]]))
        prior.log_scales.copy_(torch.tensor([[0.5, -1.0], [0.0, 0.0], [-0.5, 0.3]]))
    return prior


def test_the_class_prior_is_the_base_prior_moved_and_scaled():
    prior = moved_prior()
    y = one_hot_labels(torch.tensor([0, 2, 1]), 3)
    z = torch.randn(3, 2)
    scale = prior.log_scales.exp()[[0, 2, 1]]
    by_hand = torch.distributions.Normal(prior.offsets[[0, 2, 1]], scale).log_prob(z).sum(1)
    torch.testing.assert_close(prior.log_prob(z, y), by_hand)
    # draws for class 0 have its offset and scale
    generator = torch.Generator().manual_seed(0)
    draws = prior.sample(40_000, generator, y=one_hot_labels(torch.zeros(40_000).long(), 3))
    torch.testing.assert_close(draws.mean(0), prior.offsets[0], atol=0.05, rtol=0)
    torch.testing.assert_close(draws.std(0), prior.log_scales[0].exp(), atol=0.05, rtol=0)
    # the marginal is the mixture of the three, normalised
    marginal = torch.logsumexp(
        torch.stack([prior.log_prob(z, one_hot_labels(torch.full((3,), k), 3)) for k in range(3)]),
        0,
    ) - math.log(3)
    torch.testing.assert_close(prior.log_prob(z), marginal)
    # an unlabelled row (all-zero y) gets the base prior
    torch.testing.assert_close(
        prior.log_prob(z, torch.zeros(3, 3)), prior.base.log_prob(z), atol=1e-6, rtol=0
    )


def test_the_class_prior_s_closed_form_kl_agrees_with_monte_carlo():
    prior = moved_prior()
    y = one_hot_labels(torch.tensor([0, 2]), 3)
    q = DiagonalGaussian(torch.tensor([[3.0, -1.0], [-2.0, 5.0]]), torch.tensor([[-1.0, -2.0]] * 2))
    closed = kl_divergence(prior, q, q.mean, y)
    assert closed.shape == (2, 2)  # still per dimension
    draws = q.rsample(200_000, generator=torch.Generator().manual_seed(1))  # (N, B, D)
    log_p = prior.log_prob(draws.reshape(-1, 2), y.repeat(200_000, 1)).view(200_000, 2)
    monte_carlo = (q.log_prob(draws) - log_p).mean(0)
    torch.testing.assert_close(closed.sum(1), monte_carlo, atol=0.02, rtol=0.01)
    # without y, or over a base prior without a closed form, the core's Monte Carlo
    assert kl_divergence(prior, q, q.mean).shape == (2, 1)


def test_temperature_reaches_the_base_prior():
    prior = moved_prior()
    y = one_hot_labels(torch.full((20_000,), 2), 3)
    cool = sample_prior(prior, 20_000, torch.Generator().manual_seed(0), y=y, temperature=0.5)
    torch.testing.assert_close(cool.std(0), 0.5 * prior.log_scales[2].exp(), atol=0.03, rtol=0)


def test_a_cvae_learns_its_class_prior_and_samples_a_label_from_it(tmp_path):
    run_dir = train_tiny(tmp_path, kind="cvae", epochs=3).run.path
    run = open_run(run_dir)
    prior = run.model.prior
    assert isinstance(prior, ClassConditionalPrior)
    assert prior.offsets.abs().max() > 0.05  # the KL trained it (it starts at zero)
    assert (prior.log_scales.abs().max()) > 0.05
    out = sample(run, 4000, label="3", seed=0, model_prior=True)  # p(z|3), not the fit
    np.testing.assert_allclose(out.z.mean(0), prior.offsets[3].detach().numpy(), atol=0.1)
    np.testing.assert_allclose(out.z.std(0), prior.log_scales[3].exp().detach().numpy(), rtol=0.1)
    other = sample(run, 4000, label="5", seed=0, model_prior=True)
    assert not np.allclose(out.z, other.z)  # each class its own region of z
    # the CLI's sample --label draws through it too
    result = CliRunner().invoke(
        app,
        ["sample", "-m", str(run_dir), "--label", "3", "-n", "8", "-o", str(tmp_path / "a.png")],
    )
    assert result.exit_code == 0, result.output


def test_a_cvae_of_vaekit_0_2_loads_without_a_class_prior(tmp_path):
    run = train_tiny(tmp_path, kind="cvae", kind_options={"class_prior": False}, epochs=1).run
    config = json.loads(run.config_path.read_text())
    config["vaekit_version"], config["model"]["kind_options"] = "0.2.0", {}
    run.config_path.write_text(json.dumps(config))
    loaded = open_run(run.path)
    assert loaded.config.model.kind_options == {"class_prior": False}
    assert not isinstance(loaded.model.prior, ClassConditionalPrior)
    assert sample(loaded, 2, label="3").images.shape == (2, 1, 8, 8)


class ShiftedPrior(torch.nn.Module):
    """A third party's conditional prior: N(5 * class, I) in dimension 0, N(0, 1)
    elsewhere, far from N(0, I); it records which calls got a ``y``."""

    conditional = True
    calls: dict[str, int] = {}

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def _mean(self, y: torch.Tensor) -> torch.Tensor:
        mean = torch.zeros(len(y), self.latent_dim)
        mean[:, 0] = 5.0 * y.argmax(1).float()
        return mean

    def _count(self, member: str, y) -> None:
        key = f"{member}:{'y' if y is not None else 'none'}"
        ShiftedPrior.calls[key] = ShiftedPrior.calls.get(key, 0) + 1

    def log_prob(self, z, y=None):
        self._count("log_prob", y)
        mean = self._mean(y) if y is not None else torch.zeros_like(z)
        return torch.distributions.Normal(mean, 1.0).log_prob(z).sum(1)

    def sample(self, n, generator=None, y=None):
        self._count("sample", y)
        mean = self._mean(y) if y is not None else torch.zeros(n, self.latent_dim)
        return mean + torch.randn(n, self.latent_dim, generator=generator)

    def kl(self, posterior, y=None):
        self._count("kl", y)
        if y is None:
            return None
        mu = posterior.mean - self._mean(y)
        return 0.5 * (mu.square() + posterior.logvar.exp() - 1 - posterior.logvar)


class ShiftedPriorPlugin:
    @hookimpl
    def register_priors(self, register):
        register("shifted-test", ShiftedPrior)


def test_a_third_party_conditional_prior_gets_y_on_every_path(tmp_path):
    ShiftedPrior.calls.clear()
    with registered(ShiftedPriorPlugin(), "shifted-test"):
        run_dir = train_tiny(
            tmp_path, kind="cvae", kind_options={"class_prior": False}, prior="shifted-test"
        ).run.path
        assert ShiftedPrior.calls.get("kl:y", 0) > 0  # training's KL
        assert ShiftedPrior.calls.get("sample:y") == 1  # samples.png, the classes in turn
        assert "kl:none" not in ShiftedPrior.calls and "sample:none" not in ShiftedPrior.calls
        run = open_run(run_dir)
        out = sample(run, 2000, label="3", seed=0)
        assert abs(out.z[:, 0].mean() - 15.0) < 0.2  # drawn from p(z|3), not p(z)
        assert abs(out.z[:, 1].mean()) < 0.2
        ShiftedPrior.calls.clear()
        evaluate(run_dir, split="val", iwae_k=4)
        assert ShiftedPrior.calls.get("log_prob:y", 0) > 0 and "log_prob:none" not in (
            ShiftedPrior.calls
        )
        x = torch.rand(3, 1, 8, 8)
        y = one_hot_labels(torch.tensor([1, 2, 3]), 10)
        ShiftedPrior.calls.clear()
        assert torch.isfinite(iwae_bound(run.model, x, 3, y)).all()
        assert ShiftedPrior.calls == {"log_prob:y": 3}


@pytest.mark.parametrize("prior", ["mixture"])
def test_the_class_prior_wraps_a_prior_without_closed_form_kl(tmp_path, prior):
    """The example plugin's mixture prior has no closed-form KL: the cvae's class prior
    around it trains through the core's Monte Carlo KL and samples a label."""
    run_dir = train_tiny(tmp_path, kind="cvae", prior=prior, epochs=2).run.path
    run = open_run(run_dir)
    assert isinstance(run.model.prior, ClassConditionalPrior)
    assert getattr(run.model.prior.base, "kl", None) is None
    out = sample(run, 500, label="2", seed=0)
    assert np.isfinite(out.z).all() and out.images.shape == (500, 1, 8, 8)
    result = evaluate(run_dir, split="val", iwae_k=4)
    assert result.kl_per_dim is None and math.isfinite(result.iwae[4])
    # the mixture's sample takes no temperature: refused through the class prior too
    from vaekit.errors import UsageError

    with pytest.raises(UsageError, match="prior 'MixturePrior' does not support --temperature"):
        sample(run, 4, label="2", temperature=0.5)


def test_a_prior_without_temperature_is_refused_by_name(tmp_path):
    from vaekit.errors import UsageError

    run = open_run(train_tiny(tmp_path, prior="mixture", epochs=1).run.path)
    with pytest.raises(UsageError, match="prior 'mixture' does not support --temperature"):
        sample(run, 4, temperature=0.5)
    assert sample(run, 4, temperature=1.0).images.shape == (4, 1, 8, 8)
    # a plugin's prior is the user's choice: no fitted prior by default, its own p(z) draws
    assert not (run.path / "fitted_prior.json").exists()


def test_a_cvae_walks_and_decodes_clusters_within_one_class(tmp_path, monkeypatch):
    from vaekit.errors import UsageError
    from vaekit.generate import interpolate, prior_sample

    run_dir = train_tiny(tmp_path, kind="cvae", epochs=2).run.path
    run = open_run(run_dir)
    with pytest.raises(UsageError, match="add --label NAME"):
        interpolate(run, "prior:1", "prior:2", steps=3)
    walk = interpolate(run, "prior:1", "prior:2", steps=3, label="3")
    np.testing.assert_array_equal(walk.labels, [3] * 5)
    np.testing.assert_allclose(walk.z[0], prior_sample(run, 1, 1, labels=np.array([3]))[0])
    # a cluster fitted to the 3s decodes as 3s, with no --label
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (
        ["encode", "-m", str(run_dir), "-o", "z.h5"],
        ["fit-cluster", "--latents", "z.h5", "--label", "3", "-o", "threes.json"],
        ["interpolate", "prior:1", "prior:2", "-m", str(run_dir), "--label", "3", "-o", "w.png"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert sample(run, 6, cluster="threes.json").labels.tolist() == [3] * 6
    assert sample(run, 6, cluster="threes.json", label="5").labels.tolist() == [5] * 6
    result = runner.invoke(app, ["interpolate", "prior:1", "prior:2", "-m", str(run_dir)])
    assert result.exit_code == 2 and "class-conditional: add --label" in result.output
    pairs = ["interpolate", "--pairs", "2", "--steps", "2", "-m", str(run_dir)]
    result = runner.invoke(app, [*pairs, "--latents", "z.h5", "--label", "3", "-o", "p.png"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*pairs, "--latents", "missing.h5"])  # refused before reading
    assert result.exit_code == 2 and "class-conditional: add --label" in result.output


def test_an_unknown_class_suggests_the_closest():
    from types import SimpleNamespace

    from vaekit.errors import DataError
    from vaekit.generate import class_id

    run = SimpleNamespace(num_classes=3, class_names=["sandal", "sneaker", "bag"])
    assert class_id(run, "Sneaker") == 1
    with pytest.raises(DataError, match="unknown class 'snekaer'; did you mean 'sneaker'\\?"):
        class_id(run, "snekaer")
    with pytest.raises(DataError, match="unknown class 'hat'; the model's classes are: sandal"):
        class_id(run, "hat")
