"""The contract kit: checks a plugin author calls from pytest, and vaekit runs on its built-ins.

Each ``check_*`` function builds a component the way vaekit does -- by its
registered name (through the plugin host, so the entry point and the protocol
check are exercised) or from a factory you pass -- and fails with an
``AssertionError`` that says what is wrong::

    from vaekit.testing import check_encoder_decoder, check_prior

    def test_my_networks():
        check_encoder_decoder("patch-mlp", "patch-mlp")

    def test_my_prior():
        check_prior("my-mixture", options={"components": 3})

Every check runs on the CPU in a second or two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vaekit.contract import check_component

#: (C, H, W) sizes every encoder/decoder pair should handle: gray to RGB, 8x8 to 64x64,
#: one odd non-square size.
SHAPES: tuple[tuple[int, int, int], ...] = (
    (1, 8, 8),
    (3, 16, 16),
    (1, 28, 28),
    (3, 64, 64),
    (3, 12, 20),
)

Spec = str | Callable[..., Any]


def build(family: str, spec: Spec, *args: Any, **options: Any) -> Any:
    """A component of ``family`` from a registered name or a factory, checked against the
    family's protocol."""
    if isinstance(spec, str):
        from vaekit.plugins import create

        return create(family, spec, *args, **options)
    name = getattr(spec, "__name__", repr(spec))
    return check_component(family, name, "(test)", spec(*args, **options))


def _finite(t: torch.Tensor, what: str) -> None:
    assert torch.isfinite(t).all(), f"{what} has non-finite values"


def check_encoder_decoder(
    encoder: Spec,
    decoder: Spec | None = None,
    *,
    shapes: Sequence[tuple[int, int, int]] = SHAPES,
    latent_dim: int = 4,
    params_per_channel: int = 1,
    encoder_options: dict[str, Any] | None = None,
    decoder_options: dict[str, Any] | None = None,
    batch: int = 2,
) -> None:
    """At every shape: the encoder maps (B, C, H, W) to (B, out_features), the decoder maps
    (B, latent_dim) to (B, C * params_per_channel, H, W), both finite, and gradients reach
    the input and every trainable parameter of both."""
    for shape in shapes:
        torch.manual_seed(0)
        enc = build("encoders", encoder, shape, **(encoder_options or {}))
        out_shape = (shape[0] * params_per_channel, *shape[1:])
        dec_spec = decoder if decoder is not None else encoder
        dec = build("decoders", dec_spec, latent_dim, out_shape, **(decoder_options or {}))
        x = torch.rand(batch, *shape, requires_grad=True)
        features = enc(x)
        assert tuple(features.shape) == (batch, int(enc.out_features)), (
            f"encoder at {shape}: features {tuple(features.shape)}, "
            f"expected {(batch, enc.out_features)}"
        )
        _finite(features, f"encoder output at {shape}")
        z = torch.randn(batch, latent_dim, requires_grad=True)
        params = dec(z)
        assert tuple(params.shape) == (batch, *out_shape), (
            f"decoder at {shape}: output {tuple(params.shape)}, expected {(batch, *out_shape)}"
        )
        _finite(params, f"decoder output at {shape}")
        (features.square().mean() + params.square().mean()).backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, f"no gradient reaches x at {shape}"
        assert z.grad is not None and z.grad.abs().sum() > 0, f"no gradient reaches z at {shape}"
        for net, which in ((enc, "encoder"), (dec, "decoder")):
            for pname, p in net.named_parameters():
                if p.requires_grad:
                    assert p.grad is not None, f"{which} parameter '{pname}' gets no gradient"


def check_likelihood(
    likelihood: Spec,
    *,
    options: dict[str, Any] | None = None,
    shape: tuple[int, int, int] = (3, 4, 5),
    normalised: str | None = None,
    batch: int = 3,
) -> None:
    """``log_prob`` is (B,) and finite, ``mean`` and ``sample`` are (B, C, H, W) in [0, 1].

    ``normalised`` states what the likelihood claims to be a probability over, and checks
    it on one pixel: ``"binary"`` (sums to 1 over x in {0, 1}), ``"8bit"`` (sums to 1 over
    the 256 values k/255), or ``"real"`` (integrates to 1 over the real line).
    """
    lik = build("likelihoods", likelihood, **(options or {}))
    k = int(lik.params_per_channel)
    assert k >= 1, f"params_per_channel must be >= 1, got {k}"
    torch.manual_seed(0)
    params = torch.randn(batch, shape[0] * k, *shape[1:])
    x = torch.rand(batch, *shape)
    log_p = lik.log_prob(x, params)
    assert tuple(log_p.shape) == (batch,), f"log_prob gave {tuple(log_p.shape)}, want (B,)"
    _finite(log_p, "log_prob")
    for what, images in (("mean", lik.mean(params)), ("sample", lik.sample(params))):
        assert tuple(images.shape) == (batch, *shape), f"{what} gave {tuple(images.shape)}"
        assert images.min() >= 0 and images.max() <= 1, f"{what} leaves [0, 1]"
    if normalised is None:
        return
    one = torch.randn(1, k, 1, 1) * 0.5
    if normalised == "binary":
        grid = torch.tensor([0.0, 1.0])
    elif normalised == "8bit":
        grid = torch.arange(256, dtype=torch.float32) / 255
    elif normalised == "real":
        grid = torch.linspace(-20.0, 21.0, 400_001)
    else:
        raise ValueError(f"normalised must be binary, 8bit or real, got {normalised!r}")
    log_probs = torch.cat(
        [
            lik.log_prob(chunk.view(-1, 1, 1, 1), one.expand(len(chunk), k, 1, 1))
            for chunk in grid.split(8192)
        ]
    )
    if normalised == "real":
        total = torch.trapezoid(log_probs.double().exp(), grid.double()).item()
    else:
        total = log_probs.double().exp().sum().item()
    assert abs(total - 1.0) < 1e-3, f"the likelihood sums to {total:.5f} over {normalised} data"


def check_prior(
    prior: Spec,
    *,
    latent_dim: int = 2,
    options: dict[str, Any] | None = None,
    n: int = 200_000,
    kl_tolerance: float = 0.05,
) -> None:
    """``sample`` and ``log_prob`` describe one normalised distribution, and a closed-form
    ``kl`` (if any) agrees with the Monte Carlo estimate.

    Consistency is checked by importance sampling from a wide Gaussian fitted to the
    prior's own samples: E_g[p/g] = 1 (``log_prob`` is normalised) and
    E_g[(p/g) z] = the mean of ``sample`` (both describe the same distribution).
    """
    from vaekit.posterior import DiagonalGaussian

    p = build("priors", prior, latent_dim, **(options or {}))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z = p.sample(n, generator=generator)
        assert tuple(z.shape) == (n, latent_dim), f"sample gave {tuple(z.shape)}"
        _finite(z, "sample")
        assert tuple(p.log_prob(z[:5]).shape) == (5,), "log_prob must give (B,)"
        mean, std = z.double().mean(0), z.double().std(0)
        proposal = DiagonalGaussian(mean[None], (2 * (2 * std + 0.5)).log()[None])
        g = proposal.rsample(n, generator=generator)[:, 0]
        log_w = p.log_prob(g.float()).double() - proposal.log_prob(g)
        w = (log_w - log_w.max()).exp()
        scale = log_w.max().exp()
        mass = (w.mean() * scale).item()
        assert abs(mass - 1) < 0.05, f"log_prob integrates to {mass:.3f}, not 1"
        weighted = (w[:, None] * g).sum(0) / w.sum()
        gap = (weighted - mean).abs() / (std + 1e-3)
        assert (gap < 0.1).all(), (
            f"sample's mean {mean.tolist()} disagrees with log_prob's {weighted.tolist()}"
        )
        if getattr(p, "kl", None) is None:
            return
        q = DiagonalGaussian(
            mean[None].float() + torch.randn(4, latent_dim, generator=generator) * std.float(),
            torch.randn(4, latent_dim, generator=generator) * 0.5 + 2 * std.float().log() - 1,
        )
        closed = p.kl(q)
        if closed is None:
            return  # no closed form for this posterior: the core's Monte Carlo estimate
        assert closed.dim() == 2 and closed.shape[0] == 4, "kl must give (B, D) or (B, 1)"
        draws = q.rsample(20_000, generator=generator)  # (N, B, D)
        mc = q.log_prob(draws) - p.log_prob(draws.reshape(-1, latent_dim)).view(20_000, 4)
        mc = mc.mean(0)
        err = (closed.sum(1) - mc).abs()
        assert (err < kl_tolerance * (1 + mc.abs())).all(), (
            f"closed-form KL {closed.sum(1).tolist()} differs from Monte Carlo {mc.tolist()}"
        )


def check_kl_schedule(
    schedule: Spec, *, total_steps: int = 100, options: dict[str, Any] | None = None
) -> None:
    """beta is a finite number >= 0 at every step, and a pure function of (step, epoch)."""
    fn = build("kl_schedules", schedule, total_steps, **(options or {}))
    points = [(step, step // 10) for step in range(0, total_steps + 20)]
    first = [fn(step, epoch) for step, epoch in points]
    again = [fn(step, epoch) for step, epoch in reversed(points)][::-1]
    for (step, _), beta in zip(points, first, strict=True):
        assert isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0, (
            f"beta at step {step} is {beta!r}"
        )
    assert first == again, "the schedule is not a pure function of (step, epoch)"


def check_dataset_source(
    source: str | Any, path: str | Path | None = None, *, options: dict[str, Any] | None = None
) -> None:
    """``detect`` answers a bool, ``load`` gives a well-formed :class:`ImageDataset`
    (uint8 (N, C, H, W), one id per image, labels within the class names)."""
    import numpy as np

    from vaekit.data import ImageDataset

    if isinstance(source, str):
        from vaekit.plugins import get_plugin_host

        source = get_plugin_host().get("datasets", source).factory
    check_component("datasets", getattr(source, "__name__", "source"), "(test)", source)
    if path is not None:
        assert isinstance(source.detect(Path(path)), bool), "detect must return a bool"
    data = source.load(None if path is None else Path(path), **(options or {}))
    assert isinstance(data, ImageDataset), f"load returned {type(data).__name__}"
    assert len(data) > 0, "load returned no images"
    if data.labels is not None:
        assert data.class_names, "labels without class_names"
        assert data.labels.max() < len(data.class_names), "a label beyond class_names"
        assert data.labels.min() >= -1, "labels below -1 (unlabelled)"
    if data.attributes is not None:
        assert data.attribute_names and data.attributes.shape[1] == len(data.attribute_names)
        assert data.attributes.dtype == np.bool_, "attributes must be bool"
    assert len(set(data.ids.tolist())) == len(data), "ids are not unique"


__all__ = [
    "SHAPES",
    "build",
    "check_dataset_source",
    "check_encoder_decoder",
    "check_kl_schedule",
    "check_likelihood",
    "check_prior",
]
