"""vaekit-zoo tested as a third party's package: the contract kit on every component,
exactness of the 8-bit likelihoods, and the whole pipeline through the installed
``vaekit`` command with the VampPrior, the mixture prior and the adversarial kind."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from vaekit_zoo.adversarial import AdversarialVAE
from vaekit_zoo.discrete import Categorical256, DiscretisedLogisticMixture
from vaekit_zoo.vamp import VampPrior, VampVAE

from vaekit import testing
from vaekit.config import ModelConfig
from vaekit.model import build_components, parameter_groups
from vaekit.plugins import PluginHost


def test_components_registered_through_the_entry_point():
    host = PluginHost()
    for family, name in (
        ("priors", "mog"),
        ("likelihoods", "dmol"),
        ("likelihoods", "cat256"),
        ("decoders", "upsample"),
        ("models", "vamp"),
        ("models", "adversarial"),
    ):
        assert host.get(family, name).plugin == "zoo", (family, name)
    assert host.plugins["zoo"].distribution == "vaekit-zoo"


def test_the_contract_kit_passes_for_priors_and_likelihoods():
    testing.check_prior("mog", latent_dim=2, options={"components": 3, "spread": 2.0})
    testing.check_prior("mog", latent_dim=3, options={"components": 1, "learn_weights": False})
    testing.check_likelihood("dmol", normalised="8bit", options={"mixtures": 3})
    testing.check_likelihood("dmol", normalised="8bit", shape=(1, 3, 3))
    testing.check_likelihood("cat256", normalised="8bit")


def tiny_model(kind: str, shape=(1, 8, 8), latent_dim=2, likelihood="bernoulli", **options):
    config = ModelConfig(
        kind=kind,
        encoder="mlp",
        decoder="mlp",
        likelihood=likelihood,
        latent_dim=latent_dim,
        encoder_options={"hidden": 16},
        decoder_options={"hidden": 16},
        input_shape=shape,
    )
    factory = {"vamp": VampVAE, "adversarial": AdversarialVAE}[kind]
    return factory(config, build_components(config), **options)


def test_the_vampprior_passes_the_contract_kit():
    torch.manual_seed(0)

    def factory(latent_dim):
        model = tiny_model("vamp", latent_dim=latent_dim, pseudo_inputs=7, init_std=2.0)
        return model.prior

    testing.check_prior(factory, latent_dim=2)


def test_the_vampprior_is_the_mixture_of_the_pseudo_inputs_posteriors():
    torch.manual_seed(0)
    model = tiny_model("vamp", pseudo_inputs=5, init_std=3.0)
    prior = model.prior
    assert isinstance(prior, VampPrior) and "prior.pseudo_logits" in model.state_dict()
    z = torch.randn(4, 2)
    q = model.posterior(torch.sigmoid(prior.pseudo_logits))
    by_hand = torch.logsumexp(q.log_prob(z[:, None, :]), dim=1) - math.log(5)
    torch.testing.assert_close(prior.log_prob(z), by_hand)
    with prior.frozen():  # cached components give the same numbers
        torch.testing.assert_close(prior.log_prob(z), by_hand)
    # the prior is trained through the encoder and the pseudo-inputs
    prior.log_prob(z).sum().backward()
    assert prior.pseudo_logits.grad is not None and prior.pseudo_logits.grad.abs().sum() > 0
    assert model.head.weight.grad is not None
    # temperature 0 gives the components' means
    draws = prior.sample(50, temperature=0.0)
    assert all(any(torch.allclose(d, m) for m in q.mean) for d in draws)


def test_vamp_refuses_another_prior():
    from vaekit.errors import UsageError

    config = ModelConfig(kind="vamp", encoder="mlp", prior="mog", input_shape=(1, 8, 8))
    with pytest.raises(UsageError, match="own prior"):
        VampVAE(config, build_components(config))


def naive_dmol_pixel_log_prob(
    x: np.ndarray, params: np.ndarray, mixtures: int, shift: float
) -> np.ndarray:
    """The PixelCNN++ formula written out in float64, one bin at a time."""
    b, ck, h, w = params.shape
    c = ck // (3 * mixtures)
    p = params.reshape(b, c, 3, mixtures, h, w).astype(np.float64)
    logits, means, log_s = p[:, :, 0], np.tanh(p[:, :, 1]), np.maximum(p[:, :, 2] + shift, -7.0)
    weights = np.exp(logits - logits.max(2, keepdims=True))
    weights /= weights.sum(2, keepdims=True)
    k = np.round(x * 255)[:, :, None]
    s = np.exp(log_s)
    centre = 2 * k / 255 - 1

    def cdf(v):
        return 1 / (1 + np.exp(-(v - means) / s))

    upper = np.where(k >= 255, 1.0, cdf(centre + 1 / 255))
    lower = np.where(k <= 0, 0.0, cdf(centre - 1 / 255))
    return np.log((weights * (upper - lower)).sum(2))


def test_dmol_is_exact_and_normalised_at_sharp_scales():
    lik = DiscretisedLogisticMixture(mixtures=2)
    torch.manual_seed(0)
    params = torch.randn(3, 2 * 6, 4, 4)
    params[:, 4:6] = -1.0  # channel 0's log-scales: sharp components (a bin or two wide)
    x = torch.randint(0, 256, (3, 2, 4, 4)).float() / 255
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0  # both tails
    ours = lik.pixel_log_prob(x, params).double().numpy()
    assert np.isfinite(ours).all()  # where the naive difference of CDFs underflows too
    with np.errstate(divide="ignore"):
        naive = naive_dmol_pixel_log_prob(x.numpy(), params.numpy(), 2, lik.init_log_scale)
    fine = naive > -20  # below, float64 cancellation spoils the naive formula itself
    assert fine.mean() > 0.5
    np.testing.assert_allclose(ours[fine], naive[fine], rtol=1e-4, atol=1e-4)
    by_pixel = lik.pixel_log_prob(x, params).sum((1, 2, 3))
    torch.testing.assert_close(lik.log_prob(x, params), by_pixel)
    grid = torch.arange(256).float().view(256, 1, 1, 1) / 255
    one = params[:1, :6, :1, :1].expand(256, 6, 1, 1)
    total = lik.log_prob(grid, one).double().exp().sum().item()
    assert abs(total - 1) < 1e-4
    sample = lik.sample(params)
    assert torch.allclose(sample * 255, (sample * 255).round(), atol=1e-4)  # on the 8-bit grid


def test_both_declare_8bit_support_so_evaluate_reports_bits_per_dim():
    from vaekit.evaluate import bits_per_dim_note

    for lik in (DiscretisedLogisticMixture(), Categorical256()):
        assert bits_per_dim_note(lik, "zoo", binary_data=False) == (True, "")


def test_cat256_puts_its_mass_where_the_logits_say():
    lik = Categorical256()
    params = torch.full((1, 256, 1, 1), -30.0)
    params[0, 200] = 10.0
    x = torch.full((1, 1, 1, 1), 200 / 255)
    assert lik.log_prob(x, params).item() > -1e-6
    assert abs(lik.mean(params).item() - 200 / 255) < 1e-4
    assert lik.sample(params).item() == pytest.approx(200 / 255)


def test_adversarial_groups_are_disjoint_and_cover_the_model():
    model = tiny_model("adversarial", start=0, width=4, layers=2)
    groups = parameter_groups(model)
    assert set(groups) == {"model", "discriminator"}
    n_params = sum(1 for _ in model.parameters())
    assert sum(len(g) for g in groups.values()) == n_params
    disc = {id(p) for p in model.discriminator.parameters()}
    assert disc == {id(p) for p in groups["discriminator"]}
    objective = model(torch.rand(4, 1, 8, 8))
    assert objective.extra is not None and objective.extra["discriminator"].requires_grad
    # the adversarial term is in the VAE's loss once started
    plain = objective.recon_nll.mean() + objective.kl.mean()
    assert not torch.isclose(objective.loss, plain)
    assert int(model.adv_step) == 1


def test_the_adversarial_term_waits_for_start():
    model = tiny_model("adversarial", start=3, width=4, layers=2)
    objective = model(torch.rand(4, 1, 8, 8))
    torch.testing.assert_close(objective.loss, objective.recon_nll.mean() + objective.kl.mean())


def test_adversarial_prior_samples_false_judges_reconstructions_only():
    x = torch.rand(4, 1, 8, 8)
    for prior_samples, judged in ((True, 8), (False, 4)):
        model = tiny_model("adversarial", width=4, layers=2, prior_samples=prior_samples)
        params = model.elbo(x).params
        assert len(model.fakes(params, None)) == judged


def test_upsample_decoder_passes_the_contract_kit():
    testing.check_encoder_decoder("conv", "upsample", params_per_channel=6)
    decoder = testing.build("decoders", "upsample", 4, (15, 32, 32), width=8)
    kinds = {type(m) for m in decoder.modules()}
    assert nn.ConvTranspose2d not in kinds and nn.Upsample in kinds


def test_upsample_decoder_draws_no_checkerboard_where_the_conv_decoder_can():
    """A flat feature map through each decoder's upsampling stages, at random weights:
    the transposed convolutions give even and odd pixels different kernel taps (a
    pattern of period 2), the resize-convolutions give a flat interior."""
    torch.manual_seed(0)
    interiors = {}
    for name in ("conv", "upsample"):
        decoder = testing.build("decoders", name, 4, (3, 32, 32), width=8)
        with torch.no_grad():
            out = decoder.net(torch.ones(1, *decoder.start))
        interiors[name] = out[..., 6:-6, 6:-6]
    assert interiors["conv"].std(dim=(2, 3)).min() > 1e-3  # the check sees a checkerboard
    assert interiors["upsample"].std(dim=(2, 3)).max() < 1e-5


def test_upsample_decoder_keeps_the_conv_decoders_plan():
    for shape in ((45, 32, 32), (3, 28, 28), (6, 12, 20)):
        conv = testing.build("decoders", "conv", 4, shape, width=8)
        up = testing.build("decoders", "upsample", 4, shape, width=8)
        assert up.start == conv.start
        widths = [m.out_channels for m in up.net if isinstance(m, nn.Conv2d)]
        assert widths == [m.out_channels for m in conv.net if isinstance(m, nn.ConvTranspose2d)]


# -- the whole pipeline through the installed command ---------------------------------

VAEKIT = Path(sys.executable).with_name("vaekit")
needs_cli = pytest.mark.skipif(not VAEKIT.exists(), reason="vaekit is not installed")


def vaekit(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(VAEKIT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


TINY = ("--encoder", "mlp", "--encoder-opt", "hidden=32", "--latent-dim", "2", "--epochs", "1")


def check_prior_draws(run: Path, z: np.ndarray, expected: str) -> None:
    """The run's prior reloads as ``expected`` and scores its own draws."""
    from vaekit.runs import open_run

    prior = open_run(run).model.prior
    assert type(prior).__name__ == expected
    with torch.no_grad():
        assert torch.isfinite(prior.log_prob(torch.from_numpy(z).float())).all()


def train_tiny(tmp_path: Path, name: str, epochs: int = 1, **settings) -> Path:
    """Train on the embedded digits in-process (no subprocess: fast) and return the run."""
    from vaekit.config import TrainConfig
    from vaekit.train import train

    config = TrainConfig.build(
        encoder="mlp",
        encoder_options={"hidden": 32},
        latent_dim=2,
        epochs=epochs,
        runs_dir=str(tmp_path / "runs"),
        name=name,
        **settings,
    )
    train(config)
    return tmp_path / "runs" / name


@pytest.mark.parametrize(
    ("name", "settings", "expected"),
    [
        ("vamp", {"kind": "vamp", "kind_options": {"pseudo_inputs": 20}}, "VampPrior"),
        ("mog", {"prior": "mog", "prior_options": {"components": 4}}, "MixtureOfGaussians"),
    ],
)
def test_learned_priors_reload_with_open_run(tmp_path, name, settings, expected):
    from safetensors.torch import load_file

    from vaekit.generate import prior_sample
    from vaekit.runs import open_run

    run = train_tiny(tmp_path, name, **settings)
    loaded = open_run(run)
    z = prior_sample(loaded, 300, seed=1, temperature=0.5)  # what sample --prior calls
    assert z.shape == (300, 2)
    check_prior_draws(run, z, expected)
    saved = load_file(run / "model.safetensors")
    for key, value in loaded.model.prior.state_dict().items():  # pseudo-inputs, means...
        torch.testing.assert_close(value, saved[f"prior.{key}"])


def test_adversarial_kind_checkpoints_and_resumes_its_discriminator(tmp_path):
    options = {"start": 5, "width": 8, "layers": 2}
    run = train_tiny(tmp_path, "adv", kind="adversarial", kind_options=options)
    first = torch.load(run / "checkpoint" / "state.pt", weights_only=False)
    disc_state = first["extra_optimizers"]["discriminator"]["state"]
    assert disc_state and all(int(s["step"]) > 0 for s in disc_state.values())
    steps = int(first["model"]["adv_step"])
    assert steps == first["step"] > 0
    from vaekit.config import TrainConfig
    from vaekit.train import train

    train(TrainConfig.build(runs_dir=str(tmp_path / "runs"), name="adv", epochs=2), resume=True)
    second = torch.load(run / "checkpoint" / "state.pt", weights_only=False)
    assert int(second["model"]["adv_step"]) == second["step"] == 2 * steps
    adam = next(iter(second["extra_optimizers"]["discriminator"]["state"].values()))
    assert int(adam["step"]) == 2 * steps  # the discriminator's Adam continued, not restarted
    moved = [
        not torch.equal(first["model"][k], second["model"][k])
        for k in first["model"]
        if k.startswith("discriminator.")
    ]
    assert all(moved)
    config = json.loads((run / "config.json").read_text())
    assert config["plugins"]["zoo"]["distribution"] == "vaekit-zoo"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(row["discriminator_loss"]) for row in metrics)  # logged


def test_an_adversarial_run_too_short_for_its_term_says_so(tmp_path):
    from vaekit.train import TrainingWarning

    with pytest.warns(TrainingWarning, match="switches on after 900 steps and this run has"):
        train_tiny(tmp_path, "short", kind="adversarial", kind_options={"start": 900})


@needs_cli
@pytest.mark.slow
def test_vampprior_through_sample_fit_cluster_and_interpolate(tmp_path):
    args = ("--model-kind", "vamp", "--model-opt", "pseudo_inputs=20")
    vaekit("train", *TINY, *args, "--name", "vamp", cwd=tmp_path)
    run = tmp_path / "runs" / "vamp"
    vaekit("sample", "--prior", "-n", "500", "--save", "z.npy", "-o", "prior.png", cwd=tmp_path)
    check_prior_draws(run, np.load(tmp_path / "z.npy"), "VampPrior")
    from safetensors.torch import load_file

    from vaekit.runs import open_run

    saved = load_file(run / "model.safetensors")["prior.pseudo_logits"]  # restored by open_run
    torch.testing.assert_close(open_run(run).model.prior.pseudo_logits.detach(), saved)
    vaekit("sample", "--prior", "--temperature", "0.5", "-o", "cold.png", cwd=tmp_path)
    vaekit("encode", "-o", "latents.h5", cwd=tmp_path)
    vaekit("fit-cluster", "--label", "3", cwd=tmp_path)
    vaekit("sample", "--cluster", "3", "-o", "three.png", cwd=tmp_path)
    vaekit("interpolate", "prior:1", "prior:2", "--steps", "4", "-o", "walk.png", cwd=tmp_path)
    for png in ("prior.png", "cold.png", "three.png", "walk.png"):
        assert (tmp_path / png).stat().st_size > 0


def test_evaluate_reports_dmol_bits_per_dim_that_a_per_pixel_sum_agrees_with(tmp_path):
    """`vaekit evaluate`'s −ELBO in bits/dim for a `dmol` run against an independent
    recomputation: the same posterior draws (evaluate's generator seeded with 0, one
    draw per image, batch by batch, as ``--iwae-k 0`` makes them), the float64 per-pixel
    formula above and the closed-form KL to N(0, I)."""
    from vaekit.evaluate import evaluate
    from vaekit.posterior import DiagonalGaussian
    from vaekit.runs import open_run

    run = train_tiny(tmp_path, "dmol", likelihood="dmol", likelihood_options={"mixtures": 2})
    result = evaluate(run, split="val", iwae_k=0, seed=0, batch_size=64)
    loaded = open_run(run)
    model = loaded.model.eval()
    images = loaded.load_data(None).require_split("val").images
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255
    generator = torch.Generator().manual_seed(0)
    total, dims = [], x[0].numel()
    with torch.no_grad():
        for xb in x.split(64):
            q = model.posterior(xb)
            z = DiagonalGaussian(q.mean.float(), q.logvar.float()).rsample(1, generator=generator)
            params = model.decode(z[0]).numpy()
            shift = model.likelihood.init_log_scale
            nll = -naive_dmol_pixel_log_prob(xb.numpy(), params, 2, shift).reshape(len(xb), -1)
            mu, logvar = q.mean.double().numpy(), q.logvar.double().numpy()
            kl = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(1)
            total.append(nll.sum(1) + kl)
    ours = np.concatenate(total).mean() / (dims * math.log(2))
    assert result.n == len(x) and result.bits_per_dim is not None
    assert abs(result.bits_per_dim - ours) < 1e-4, (result.bits_per_dim, ours)
    # not luck: other draws move the figure by far more than the tolerance
    other = evaluate(run, split="val", iwae_k=0, seed=1, batch_size=64).bits_per_dim
    assert abs(other - ours) > 1e-3
