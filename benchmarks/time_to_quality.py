"""Time to quality: vaekit's built-in networks against a hand-written conv VAE.

What a user would otherwise write is the reference: a conv VAE with two stride-2
4x4 convolutions (32, 64 channels) and a 256-unit layer, mirrored by the decoder
(1.69 M parameters at 28x28). It and vaekit's ``mlp``, ``conv`` and ``resnet``
(vaekit's VAE, built by ``vaekit.model.build_model``) train on Fashion-MNIST with
the Bernoulli likelihood, latent size 16, Adam 1e-3, batch 128, in one process,
one training step of each net in turn (the order rotates every round), so
contention from other processes hits every arm alike.

Two budgets, one run:

* fixed epochs (``--epochs``): every net takes the same steps, KL weight rising
  linearly over the first 30% of them (vaekit's default ``warmup``);
* fixed wall-clock (``--budget-s``): every net trains until its own step time
  reaches the budget, KL weight rising linearly over the first 30% of it.

For each it prints the test -ELBO reached (nats, one posterior sample, as
``vaekit train`` reports ``val_loss``) and the training samples/s, each with the
ratio to the reference. On cores shared with other busy processes, use
``--threads 1``: two OpenMP threads then spend much of each step waiting for each
other. ``--cpu-paths`` instead measures the CPU settings (channels-last,
torch.compile, batch size) of the default ``conv`` and the share of the machine's
float32 matmul rate that its training step reaches.

    python benchmarks/time_to_quality.py --epochs 10 --budget-s 120   # the issue's budgets
    python benchmarks/time_to_quality.py --cpu-paths
    python benchmarks/time_to_quality.py --speed --nets "ref;conv;resnet;resnet:norm=layer"
    python benchmarks/time_to_quality.py --profile "conv:arch=1;resnet:arch=1;conv;resnet"
    python benchmarks/time_to_quality.py --quick   # smoke test: tiny subset, seconds
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.config import ModelConfig
from vaekit.data import load_dataset
from vaekit.model import build_model
from vaekit.options import parse_options

FASHION = "/usr/share/datasets/fashion-mnist"
WARMUP = 0.3  # share of the budget over which the KL weight rises to 1


class HandWrittenConvVAE(nn.Module):
    """The reference: what a user writes from a PyTorch tutorial (28x28 only)."""

    def __init__(self, channels: int = 1, latent_dim: int = 16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256),
            nn.ReLU(),
            nn.Linear(256, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 64 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, 2, 1),
        )

    def neg_elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B,) Bernoulli reconstruction NLL and (B,) KL to N(0, I), one posterior draw."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)
        return recon, kl


@dataclass
class Arm:
    """One network under test, with its optimiser, clock and results."""

    label: str
    model: nn.Module
    terms: Callable[[Tensor], tuple[Tensor, Tensor]]  # x -> (recon (B,), kl (B,))
    optimizer: torch.optim.Optimizer = field(init=False)
    seconds: float = 0.0
    samples: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def step(self, x: Tensor, beta: float) -> None:
        """One timed training step."""
        start = time.perf_counter()
        recon, kl = self.terms(x)
        loss = recon.mean() + beta * kl.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.seconds += time.perf_counter() - start
        self.samples += len(x)
        self.steps += 1


def make_arm(spec: str, shape: tuple[int, int, int], latent_dim: int) -> Arm:
    """``ref`` or a vaekit net with options: ``conv``, ``resnet:norm=layer,arch=1``; options
    after a ``/`` are the decoder's (``resnet:norm=batch/norm=identity``), else both share them."""
    name, _, opts = spec.partition(":")
    if name == "ref":
        model = HandWrittenConvVAE(shape[0], latent_dim)
        return Arm(spec, model, model.neg_elbo_terms)
    enc_opts, slash, dec_opts = opts.partition("/")
    options = parse_options(enc_opts.split(",") if enc_opts else [])
    decoder_options = parse_options(dec_opts.split(",") if dec_opts else []) if slash else options
    vae = build_model(
        ModelConfig(
            input_shape=shape,
            latent_dim=latent_dim,
            encoder=name,
            encoder_options=options,
            decoder_options=decoder_options,
            likelihood="bernoulli",
        )
    )

    def terms(x: Tensor) -> tuple[Tensor, Tensor]:
        out = vae.elbo(x)
        return out.recon_nll, out.kl

    return Arm(spec, vae, terms)


def batches(images: Tensor, batch_size: int, seed: int):
    """Shuffled float batches in [0, 1], one epoch after another, forever."""
    epoch = 0
    while True:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(0, len(images) - batch_size + 1, batch_size):
            yield images[order[i : i + batch_size]].float().div_(255.0)
        epoch += 1


@torch.no_grad()
def test_neg_elbo(arm: Arm, images: Tensor, seed: int = 0) -> float:
    """Mean test -ELBO in nats (one posterior draw per image), in eval mode."""
    arm.model.eval()
    torch.manual_seed(seed)
    total = 0.0
    for i in range(0, len(images), 1000):
        recon, kl = arm.terms(images[i : i + 1000].float().div_(255.0))
        total += (recon + kl).sum().item()
    arm.model.train()
    return total / len(images)


def race(
    specs: list[str],
    train: Tensor,
    test: Tensor,
    batch_size: int,
    latent_dim: int,
    seed: int,
    steps: int | None = None,
    seconds: float | None = None,
) -> list[tuple[Arm, float]]:
    """Train every arm for ``steps`` steps or ``seconds`` of its own step time, one step
    each in rotating order; KL warm-up over the first 30% of the budget."""
    shape = tuple(train.shape[1:])
    arms = []
    for spec in specs:
        torch.manual_seed(seed)
        arms.append(make_arm(spec, shape, latent_dim))  # type: ignore[arg-type]
    streams = [batches(train, batch_size, seed) for _ in arms]
    live = list(range(len(arms)))
    rounds = 0
    while live:
        for j in live[rounds % len(live) :] + live[: rounds % len(live)]:
            arm = arms[j]
            if steps is not None:
                beta = min(1.0, arm.steps / max(1, WARMUP * steps))
            else:
                beta = min(1.0, arm.seconds / (WARMUP * seconds))
            arm.step(next(streams[j]), beta)
        rounds += 1
        if rounds % 200 == 0:
            done = ", ".join(f"{a.label} {a.steps} steps {a.seconds:.0f} s" for a in arms)
            print(f"  round {rounds}: {done}", file=sys.stderr, flush=True)
        live = [
            j
            for j in live
            if (arms[j].steps < steps if steps is not None else arms[j].seconds < seconds)
        ]
    return [(arm, test_neg_elbo(arm, test, seed)) for arm in arms]


def report(title: str, results: list[tuple[Arm, float]], n_train: int) -> None:
    """One table: params, samples/s, -ELBO, ratios to the reference (the first arm)."""
    ref_arm, ref_elbo = results[0]
    ref_speed = ref_arm.samples / ref_arm.seconds
    print(f"\n{title}")
    print(
        f"{'network':<28}{'params':>10}{'epochs':>8}{'samples/s':>11}{'x ref':>7}"
        f"{'test -ELBO':>12}{'- ref':>8}"
    )
    for arm, elbo in results:
        speed = arm.samples / arm.seconds
        print(
            f"{arm.label:<28}{arm.params / 1e6:>9.2f}M{arm.samples / n_train:>8.2f}"
            f"{speed:>11.0f}{speed / ref_speed:>7.2f}{elbo:>12.2f}{elbo - ref_elbo:>+8.2f}"
        )


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """Best float32 matmul rate (GFLOP/s) of ``size`` x ``size`` products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(arm: Arm, x: Tensor) -> float:
    """FLOPs of one training step (forward + backward), as torch's counter sees them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        recon, kl = arm.terms(x)
        (recon.mean() + kl.mean()).backward()
    arm.model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def cpu_paths(train: Tensor, latent_dim: int, threads: int, rounds: int) -> None:
    """Throughput of the default ``conv`` under each CPU setting, interleaved, and the
    share of the matmul rate its training step reaches."""
    shape = tuple(train.shape[1:])
    settings = [
        ("ref, batch 128", "ref", 128, False, False),
        ("conv, batch 128", "conv", 128, False, False),
        ("conv, channels-last", "conv", 128, True, False),
        ("conv, --compile", "conv", 128, False, True),
        ("conv, batch 64", "conv", 64, False, False),
        ("conv, batch 256", "conv", 256, False, False),
        ("conv, batch 512", "conv", 512, False, False),
    ]
    arms = []
    for label, spec, batch, last, compiled in settings:
        torch.manual_seed(0)
        arm = make_arm(spec, shape, latent_dim)  # type: ignore[arg-type]
        arm.label = label
        if last:
            arm.model.to(memory_format=torch.channels_last)
            inner = arm.terms
            arm.terms = lambda x, inner=inner: inner(
                x.contiguous(memory_format=torch.channels_last)
            )
        if compiled:
            arm.model = torch.compile(arm.model)
            vae = arm.model

            def terms(x: Tensor, vae=vae) -> tuple[Tensor, Tensor]:
                out = vae(x)  # the compiled forward: an Objective (loss, recon_nll, kl)
                return out.recon_nll, out.kl

            arm.terms = terms
        x = train[:batch].float().div_(255.0)
        for _ in range(3):  # warm-up (and compilation)
            arm.step(x, 1.0)
        arms.append((arm, x))
    times = interleaved_speeds(arms, rounds)
    peak = matmul_gflops(threads)
    print(f"\nCPU settings, {threads} threads, median of {rounds} interleaved steps")
    print(f"float32 matmul rate (1024x1024, best of 20): {peak:.1f} GFLOP/s")
    print(f"{'setting':<24}{'samples/s':>11}{'x ref':>7}{'GFLOP/step':>12}{'share':>8}")
    per_sample = math.nan  # a compiled step does the eager step's arithmetic
    for (arm, x), speeds in zip(arms, times, strict=True):
        rate = statistics.median(speeds)
        if "compile" not in arm.label:
            per_sample = step_flops(arm, x) / len(x)
        share = per_sample * rate / 1e9 / peak
        print(
            f"{arm.label:<24}{rate:>11.0f}{paired_ratio(speeds, times[0]):>7.2f}"
            f"{per_sample * len(x) / 1e9:>12.2f}{share:>8.1%}"
        )


def interleaved_speeds(arms: list[tuple[Arm, Tensor]], rounds: int) -> list[list[float]]:
    """samples/s of each arm's step, ``rounds`` steps each, one of each in turn."""
    speeds: list[list[float]] = [[] for _ in arms]
    order = list(range(len(arms)))
    for r in range(rounds):
        for j in order[r % len(arms) :] + order[: r % len(arms)]:
            arm, x = arms[j]
            before = arm.seconds
            arm.step(x, 1.0)
            speeds[j].append(len(x) / (arm.seconds - before))
    return speeds


def paired_ratio(speeds: list[float], reference: list[float]) -> float:
    """Median over rounds of speed / the reference's speed in the same round: robust to
    load that changes during the run."""
    return statistics.median(s / r for s, r in zip(speeds, reference, strict=True))


def speed(specs: list[str], train: Tensor, latent_dim: int, batch: int, rounds: int) -> None:
    """Training-step throughput of each net on one fixed batch, paired with the first."""
    shape = tuple(train.shape[1:])
    x = train[:batch].float().div_(255.0)
    arms = []
    for spec in specs:
        torch.manual_seed(0)
        arm = make_arm(spec, shape, latent_dim)  # type: ignore[arg-type]
        for _ in range(3):
            arm.step(x, 1.0)
        arms.append((arm, x))
    times = interleaved_speeds(arms, rounds)
    print(f"\nthroughput, batch {batch}, median of {rounds} interleaved steps")
    print(f"{'network':<32}{'params':>10}{'samples/s':>11}{'x ref':>7}")
    for (arm, _), speeds in zip(arms, times, strict=True):
        print(
            f"{arm.label:<32}{arm.params / 1e6:>9.2f}M{statistics.median(speeds):>11.0f}"
            f"{paired_ratio(speeds, times[0]):>7.2f}"
        )


def profile_step(spec: str, shape: tuple[int, int, int], latent_dim: int, batch: int) -> None:
    """Where one training step's CPU time goes: by the largest spatial side among each
    op's inputs, and by kind of op (torch.profiler, 10 steps after 5 warm-up steps)."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    arm = make_arm(spec, shape, latent_dim)
    x = torch.rand(batch, *shape)
    for _ in range(5):
        arm.step(x, 1.0)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(10):
            arm.step(x, 1.0)
    by_side: Counter[int] = Counter()
    by_kind: Counter[str] = Counter()
    kinds = ("conv", "norm", "silu", "relu", "copy", "addmm", "mm")
    for event in prof.key_averages(group_by_input_shape=True):
        sides = [s[-1] for s in event.input_shapes if isinstance(s, list) and len(s) == 4]
        by_side[max(sides, default=0)] += event.self_cpu_time_total
        by_kind[next((k for k in kinds if k in event.key), "other")] += event.self_cpu_time_total
    total = sum(by_side.values())
    print(f"\nprofile of {spec} at {shape}, batch {batch}: {total / 10 / 1e3:.1f} ms per step")
    for side, t in sorted(by_side.items(), reverse=True):
        label = f"{side}x{side} maps" if side else "no image-shaped input"
        print(f"  {label:<22}{t / 10 / 1e3:7.1f} ms {t / total:6.1%}")
    for kind, t in by_kind.most_common():
        print(f"  {kind:<22}{t / 10 / 1e3:7.1f} ms {t / total:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FASHION, help="Fashion-MNIST IDX folder")
    parser.add_argument("--nets", default="ref,mlp,conv,resnet", help="comma list; ref first")
    parser.add_argument("--epochs", type=float, default=10, help="0 skips the fixed-epoch race")
    parser.add_argument("--budget-s", type=float, default=120, help="0 skips the wall-clock race")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-paths", action="store_true", help="measure CPU settings instead")
    parser.add_argument("--rounds", type=int, default=60, help="steps per --cpu-paths setting")
    parser.add_argument("--speed", action="store_true", help="throughput of --nets only")
    parser.add_argument("--profile", metavar="NETS", help="profile one step of each (comma list)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1024 images, seconds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.data)
    train = torch.from_numpy(data.select_split("train").images)
    test = torch.from_numpy(data.select_split("test").images)
    if args.quick:
        train, test = train[:1024], test[:256]
        args.epochs, args.budget_s, args.rounds = min(args.epochs, 1), min(args.budget_s, 1), 2
    print(
        f"data: {data.location} train {tuple(train.shape)} test {tuple(test.shape)}; "
        f"batch {args.batch_size}, latent {args.latent_dim}, {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    if args.profile:
        for spec in args.profile.split(";" if ":" in args.profile else ","):
            profile_step(spec, tuple(train.shape[1:]), args.latent_dim, args.batch_size)
        return
    if args.cpu_paths:
        cpu_paths(train, args.latent_dim, args.threads, args.rounds)
        return
    specs = [s.strip() for s in args.nets.split(";" if ":" in args.nets else ",")]
    if args.speed:
        speed(specs, train, args.latent_dim, args.batch_size, args.rounds)
        return
    common = dict(
        train=train,
        test=test,
        batch_size=args.batch_size,
        latent_dim=args.latent_dim,
        seed=args.seed,
    )
    if args.epochs:
        steps = max(1, int(args.epochs * (len(train) // args.batch_size)))
        start = time.perf_counter()
        results = race(specs, steps=steps, **common)
        report(
            f"fixed budget: {args.epochs:g} epochs ({steps} steps) each "
            f"[{time.perf_counter() - start:.0f} s wall]",
            results,
            len(train),
        )
    if args.budget_s:
        start = time.perf_counter()
        results = race(specs, seconds=args.budget_s, **common)
        report(
            f"fixed budget: {args.budget_s:g} s of training-step time each "
            f"[{time.perf_counter() - start:.0f} s wall]",
            results,
            len(train),
        )


if __name__ == "__main__":
    main()
