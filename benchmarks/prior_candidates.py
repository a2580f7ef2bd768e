"""Ex-post densities of a trained run's latents, judged on what they decode to.

    python benchmarks/prior_candidates.py --run runs/f1 [--samples 2000]
        [--draw-seeds 0 1 2] [--attributes Eyeglasses Smiling] [--flow-steps 6000]
        [--bandwidths 0.2 0.3] [--chain-steps 1 3] [--split test] [--threads 2]

What ``vaekit sample`` could draw from, beside what it does draw from (the run's fitted
prior: a Gaussian mixture fitted after training, :mod:`vaekit.fitted_prior`):

- ``fitted mixture``: the run's own fitted prior (fitted here when it has none);
- ``fitted mixture, T=0.9``: the same at temperature 0.9;
- ``aggregate posterior``: a training image's posterior q(z|x), the image drawn at
  random: the density the decoder was trained on, exactly;
- ``kernel density, bandwidth B``: a training image's posterior mean plus Gaussian
  noise of B times the aggregate posterior's spread in each dimension (``--bandwidths``):
  the aggregate posterior widened until its draws stop being copies;
- ``flow``: a RealNVP (12 affine coupling layers, 128 hidden units) fitted by maximum
  likelihood to posterior draws of the training images (``--flow-steps`` Adam steps;
  0 leaves it out);
- ``fitted mixture, then N decode-encode steps``: a mixture draw decoded and encoded
  again (its posterior mean) N times (``--chain-steps``): where the model's own
  decoder and encoder carry a draw, which shows which way the decoder leans on an
  attribute when it is unsure;
- ``model prior p(z)``: the model's own prior.

Each draws ``--samples`` latents per draw seed; the decoded mean images are judged by
the run's judge (vaekit's, trained on first use: the run's data needs labels or
attributes). Printed per candidate: the share of draws the judge gives each named
attribute (``--attributes``; every draw seed) or the total variation of its class
shares from the data's, the largest attribute gap, the Fréchet distance, precision and
recall against held-out real images (the first draw seed), and **nearest-neighbour
distance**: the median distance, in the judge's features, from a decoded draw to its
nearest training image, beside the same for held-out real images, and **nearest training
latent**: the same in the model's latent space, each decoded draw encoded again (its
posterior mean against the training images'). A candidate whose draws sit well nearer
the training images than unseen real images do is replaying the training set, whatever
its other figures. Not a unit test; figures in
docs/benchmarks.md ("Generation").
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from vaekit.fitted_prior import fit_prior
from vaekit.generate import decode, encode_images, has_fitted_prior, sample
from vaekit.generation import reencoded_nearest, score_set
from vaekit.genmetrics import nearest_distance, total_variation
from vaekit.judge import judge_for
from vaekit.runs import open_run

Draw = Callable[[int, int], np.ndarray]  # (n, seed) -> (n, D) latents


class Coupling(nn.Module):
    """An affine coupling layer: the unmasked half scaled and shifted by a net of the rest."""

    def __init__(self, mask: torch.Tensor, hidden: int):
        super().__init__()
        d = len(mask)
        self.register_buffer("mask", mask)
        layers = [nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 2 * d))
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x * self.mask).chunk(2, 1)
        return torch.tanh(s) * (1 - self.mask), t * (1 - self.mask)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x)
        return x * torch.exp(s) + t, s.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(y)
        return (y - t) * torch.exp(-s)


def fit_flow(
    mu: np.ndarray, std: np.ndarray, steps: int, layers: int = 12, hidden: int = 128
) -> Draw:
    """A RealNVP fitted to posterior draws mu + std * eps of the rows (standardised)."""
    torch.manual_seed(0)
    d = mu.shape[1]
    centre, spread = mu.mean(0), np.sqrt(mu.var(0) + (std**2).mean(0))
    means = torch.from_numpy(((mu - centre) / spread).astype(np.float32))
    stds = torch.from_numpy((std / spread).astype(np.float32))
    rng = torch.Generator().manual_seed(1)
    masks = []
    for k in range(layers):  # a random half, then its complement
        masks.append((torch.rand(d, generator=rng) < 0.5).float() if k % 2 == 0 else 1 - masks[-1])
    flow = nn.ModuleList([Coupling(m, hidden) for m in masks])
    optimiser = torch.optim.Adam(flow.parameters(), 1e-3)
    for _ in range(steps):
        rows = torch.randint(0, len(means), (256,))
        x = means[rows] + stds[rows] * torch.randn(256, d)
        log_det = torch.zeros(256)
        for layer in flow:
            x, ld = layer(x)
            log_det = log_det + ld
        loss = -(-0.5 * x.square().sum(1) + log_det).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    @torch.no_grad()
    def draw(n: int, seed: int) -> np.ndarray:
        y = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))
        for layer in reversed(flow):
            y = layer.inverse(y)
        return (y.numpy() * spread + centre).astype(np.float32)

    return draw


def kernel_density(mu: np.ndarray, bandwidth: float) -> Draw:
    """Draws of a training row's mean plus N(0, (bandwidth * spread)^2) per dimension."""
    scale = bandwidth * mu.std(0)

    def draw(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(mu), n)
        return (mu[rows] + scale * rng.standard_normal((n, mu.shape[1]))).astype(np.float32)

    return draw


def chained(loaded: Any, draw: Draw, steps: int) -> Draw:
    """``draw``'s latents carried ``steps`` times through decode, then encode."""

    def carried(n: int, seed: int) -> np.ndarray:
        z = draw(n, seed)
        for _ in range(steps):
            z = encode_images(loaded, decode(loaded, z))[0]
        return z

    return carried


def candidates(
    loaded: Any,
    mu: np.ndarray,
    logvar: np.ndarray,
    flow_steps: int,
    bandwidths: list[float],
    chain_steps: list[int],
) -> dict[str, Draw]:
    """The ex-post densities compared, each a function (n, seed) -> latents."""
    std = np.exp(0.5 * logvar)
    found: dict[str, Draw] = {}
    if has_fitted_prior(loaded):
        mixture_draw: Draw = lambda n, s: sample(loaded, n, seed=s).z  # noqa: E731
        found["fitted mixture, T=0.9"] = lambda n, s: sample(loaded, n, seed=s, temperature=0.9).z
    else:
        mixture = fit_prior(mu, logvar)
        assert mixture is not None
        mixture_draw = mixture.sample
        found["fitted mixture, T=0.9"] = lambda n, s: mixture.sample(n, s, temperature=0.9)
    found = {"fitted mixture": mixture_draw, **found}

    def posterior(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(mu), n)
        return (mu[rows] + std[rows] * rng.standard_normal((n, mu.shape[1]))).astype(np.float32)

    found["aggregate posterior"] = posterior
    for bandwidth in bandwidths:
        found[f"kernel density, bandwidth {bandwidth:g}"] = kernel_density(mu, bandwidth)
    if flow_steps > 0:
        start = time.perf_counter()
        found["flow"] = fit_flow(mu, std, flow_steps)
        print(f"flow: {flow_steps} steps in {time.perf_counter() - start:.0f} s")
    for steps in chain_steps:
        found[f"fitted mixture, then {steps} decode-encode steps"] = chained(
            loaded, mixture_draw, steps
        )
    found["model prior p(z)"] = lambda n, s: sample(loaded, n, seed=s, model_prior=True).z
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/latest")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--draw-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--attributes", nargs="*", default=["Eyeglasses", "Smiling"])
    parser.add_argument("--flow-steps", type=int, default=6000, help="0: no flow")
    parser.add_argument("--bandwidths", type=float, nargs="*", default=[0.2, 0.3])
    parser.add_argument("--chain-steps", type=int, nargs="*", default=[1, 3])
    parser.add_argument("--judge-steps", type=int, default=None, help="default: vaekit's")
    parser.add_argument("--split", default="test", help="held-out real images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = open_run(args.run)
    everything = loaded.load_data()
    options = {} if args.judge_steps is None else {"steps": args.judge_steps}
    judge, trained = judge_for(loaded.path, everything, args.split, **options)
    train = everything.select_split("train")
    heldout = everything.select_split(args.split)
    keep = np.random.default_rng(0).permutation(len(heldout))[: args.samples]
    real_images = heldout.subset(np.sort(keep)).images
    real_out = judge.predict(real_images)
    train_features = judge.predict(train.images).features
    mu, logvar = encode_images(loaded, train.images)
    info = judge.info
    names = info.attribute_names or []
    unknown = [a for a in args.attributes if a not in names]
    if names and unknown:
        parser.error(f"--attributes: the data has no {', '.join(unknown)} (it has {names})")
    wanted = [names.index(a) for a in args.attributes if a in names]
    data_attrs = None if train.attributes is None else train.attributes.astype(float).mean(0)
    data_classes = None
    if train.labels is not None and info.class_names:
        counts = np.bincount(
            train.labels[train.labels >= 0], minlength=len(info.class_names)
        ).astype(float)
        data_classes = counts / counts.sum()
    print(
        f"run {loaded.path}; judge {'trained' if trained else 'reused'}; "
        f"{len(train):,} training rows; {len(real_out.features):,} held-out real images; "
        "nearest-training-neighbour distance of held-out real images "
        f"{nearest_distance(real_out.features, train_features):.1f}, nearest training latent "
        f"{reencoded_nearest(loaded, real_images, mu):.3f}"
    )
    if data_attrs is not None:
        print("data: " + ", ".join(f"{names[i]} {data_attrs[i]:.3f}" for i in wanted))
    for name, draw in candidates(
        loaded, mu, logvar, args.flow_steps, args.bandwidths, args.chain_steps
    ).items():
        shares, figures = [], ""
        for k, seed in enumerate(args.draw_seeds):
            images = decode(loaded, draw(args.samples, seed))
            out = judge.predict(images)
            if out.attributes is not None and data_attrs is not None:
                got = out.attributes.mean(0)
                shares.append([got[i] for i in wanted] + [np.abs(got - data_attrs).max()])
            elif out.labels is not None and data_classes is not None:
                got = np.bincount(out.labels, minlength=len(data_classes)) / len(out.labels)
                shares.append([total_variation(got, data_classes)])
            if k == 0:  # as vaekit evaluate scores a set
                score = score_set(name, real_out.features, out.features, train_features)
                figures = (
                    f"Fréchet {score.frechet:.1f}, precision {score.precision:.3f}, recall "
                    f"{score.recall:.3f}, nearest-training-neighbour distance "
                    f"{score.nearest_train:.1f}, nearest training latent "
                    f"{reencoded_nearest(loaded, images, mu):.3f}"
                )
        columns = np.array(shares).T
        labels = [names[i] for i in wanted] + ["largest attribute gap"]
        if data_attrs is None:
            labels = ["class shares TV"]
        said = "; ".join(
            f"{label} {' '.join(f'{v:.3f}' for v in column)}"
            for label, column in zip(labels, columns, strict=True)
        )
        print(f"{name}: {said}; {figures}", flush=True)


if __name__ == "__main__":
    main()
