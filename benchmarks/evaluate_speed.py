"""vaekit evaluate against the plain chunked IWAE loop a competent user would write.

Fair by construction (issue 22, item 3):

- the same model (a run trained here: ``--encoder``, one epoch on ``--train-images``
  training images; or ``--run DIR``) and the same images: a seeded subset of
  ``--images`` test images of ``--data`` (Fashion-MNIST's IDX files by default), picked
  as ``vaekit evaluate --max-images N`` picks them;
- vaekit's arm is ``vaekit.evaluate.evaluate``, the library function the command calls:
  what ``vaekit evaluate DATA -m RUN --split test --max-images N --iwae-k K
  --no-generation --json`` runs, opening the run and reading the images included;
- the plain arm is a hand-written loop on the same model and the same images as a float
  tensor: ``torch.inference_mode``, batches of ``--batch-size`` images, the K draws
  decoded ``--plain-draws`` at a time, the log weights of a batch kept, ``logsumexp``.
  It computes what vaekit reports that costs more than a few latent-sized operations:
  the IWAE ladder (K = 1, 10, ..., K), the −ELBO from the first draw with the
  closed-form KL per dimension, and the posterior means' variance (active units).
  vaekit adds per-class sums (none without ``--by-label``), standard errors, a subset of
  posterior means for the scatter and its progress; the plain loop has none of those;
- time: the arms alternate in one process (the order swapping each round); the first
  round is warm-up, the rest give medians (wall clock and CPU time);
- memory: each arm once more in a fresh subprocess: its peak RSS (VmHWM of that
  process: ``ru_maxrss`` would inherit the parent's over fork and exec) and the peak
  above a mark, the RSS when the arm starts (``evaluate``: after the imports, as it
  reads the data itself; ``evaluate_model`` and the plain loop: after the run and the
  images are open, so that figure is the evaluation's own), with the time it took.

Note that allocator state is shared within one process: after vaekit's first call
the plain loop runs on the same primed malloc heap (:func:`vaekit.importance.keep_in_arena`)
as vaekit, so the alternated times compare the arithmetic; the fresh subprocesses show
what each arm costs on its own.

    python benchmarks/evaluate_speed.py                       # conv, K = 100, 500 images
    python benchmarks/evaluate_speed.py --encoder mlp --rounds 7
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from vaekit.data import ImageDataset

sys.path.insert(0, str(Path(__file__).parent))
from peak_memory import reset_peak, rss_kib  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
ARMS = ("evaluate", "evaluate_model", "plain")
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def train_model(data: Path, root: Path, encoder: str, images: int) -> Path:
    """A run trained for one epoch on the first ``images`` training images of ``data``."""
    from vaekit.config import TrainConfig
    from vaekit.data import load_dataset
    from vaekit.train import train

    train_split = load_dataset(data).select_split("train")
    limit = min(images, len(train_split))
    npz = root / "train.npz"
    np.savez(npz, images=train_split.images[:limit], labels=train_split.labels[:limit])
    config = TrainConfig.build(
        data=str(npz),
        encoder=encoder,
        epochs=1,
        accelerator="cpu",
        runs_dir=str(root / "runs"),
        name="bench",
        figures=False,
        fit_prior=0,
    )
    train(config)
    return root / "runs" / "bench"


def opened(run: Path, data: Path, images: int) -> tuple[torch.nn.Module, ImageDataset]:
    """The model and the very images vaekit's arm evaluates (uint8, as read)."""
    from vaekit.evaluate import open_split, subsample

    loaded, dataset, _, _ = open_split(run, data, "test")
    return loaded.model, subsample(dataset, images, seed=0)


def as_floats(images: ImageDataset) -> torch.Tensor:
    """The images as one float tensor in [0, 1], as a plain script holds them."""
    return torch.from_numpy(np.ascontiguousarray(images.images)).float().div_(255.0)


@torch.inference_mode()
def plain_loop(
    model: torch.nn.Module, x_all: torch.Tensor, k: int, batch_size: int, draws: int
) -> dict[str, float]:
    """The hand-written evaluation: −IWAE_k for k = 1, 10, ..., K, −ELBO, KL per dimension
    and active units, means over the images."""
    ladder = [10**i for i in range(int(math.log10(k)) + 1) if 10**i < k] + [k]
    n = len(x_all)
    iwae = torch.zeros(len(ladder), dtype=torch.float64)
    neg_elbo = 0.0
    kl_dim = mu_sum = mu_sq = None
    for i in range(0, n, batch_size):
        x = x_all[i : i + batch_size]
        b = len(x)
        q = model.posterior(x)
        x_rep = x.expand(draws, *x.shape).reshape(-1, *x.shape[1:])
        log_w = []
        for k0 in range(0, k, draws):
            c = min(draws, k - k0)
            z = q.rsample(c)  # (c, B, D)
            z_rows = z.reshape(-1, z.shape[-1])
            log_px = model.likelihood.log_prob(x_rep[: c * b], model.decode(z_rows)).view(c, b)
            if k0 == 0:
                recon = -log_px[0].double()
            log_pz = model.prior.log_prob(z_rows).view(c, b)
            log_w.append((log_px + log_pz - q.log_prob(z)).double())
        log_w = torch.cat(log_w)
        for j, kk in enumerate(ladder):
            iwae[j] -= (torch.logsumexp(log_w[:kk], 0) - math.log(kk)).sum()
        kl = model.prior.kl(q).double()  # (B, D), closed form
        neg_elbo += (recon + kl.sum(1)).sum().item()
        mu = q.mean.double()
        kl_dim = kl.sum(0) if kl_dim is None else kl_dim + kl.sum(0)
        mu_sum = mu.sum(0) if mu_sum is None else mu_sum + mu.sum(0)
        mu_sq = mu.square().sum(0) if mu_sq is None else mu_sq + mu.square().sum(0)
    variance = mu_sq / n - (mu_sum / n).square()
    return {
        "iwae": iwae[-1].item() / n,
        "neg_elbo": neg_elbo / n,
        "kl": kl_dim.sum().item() / n,
        "active_units": int((variance > 0.01).sum()),
    }


def vaekit_arm(run: Path, data: Path, args: argparse.Namespace) -> dict[str, float]:
    """``vaekit evaluate``'s library call (it opens the run and reads the data); its figures."""
    from vaekit.evaluate import evaluate

    result = evaluate(
        run,
        data,
        split="test",
        iwae_k=args.iwae_k,
        batch_size=args.batch_size,
        max_images=args.images,
        seed=0,
        **_budget(args),
    )
    return figures_of(result, args.iwae_k)


def evaluation_arm(
    model: torch.nn.Module, images: ImageDataset, args: argparse.Namespace
) -> dict[str, float]:
    """``evaluate_model``, which ``evaluate`` calls once the run and the data are open."""
    from vaekit.evaluate import evaluate_model

    result = evaluate_model(
        model, images, iwae_k=args.iwae_k, batch_size=args.batch_size, seed=0, **_budget(args)
    )
    return figures_of(result, args.iwae_k)


def _budget(args: argparse.Namespace) -> dict[str, int]:
    """``chunk_bytes`` when ``--chunk-mib`` is given (so the script also runs on 0.5)."""
    return {} if args.chunk_mib is None else {"chunk_bytes": int(args.chunk_mib * 2**20)}


def figures_of(result, k: int) -> dict[str, float]:
    """The figures both arms compute, from an ``Evaluation``."""
    return {
        "iwae": result.iwae[k],
        "neg_elbo": result.neg_elbo,
        "kl": result.kl,
        "active_units": result.active_units,
    }


def child(args: argparse.Namespace) -> None:
    """One arm in this fresh process: its figures, time, page faults and RSS, as JSON.
    ``evaluate`` opens the run and reads the data itself, so its mark is set after the
    imports; the other two get the opened model and images, and their mark is set after
    that, so their peak is the evaluation's own."""
    # every arm imports the same modules before its mark, those evaluate imports when
    # called too
    import importlib.util

    import vaekit.evaluate  # noqa: F401

    if importlib.util.find_spec("vaekit.importance"):  # not in vaekit 0.5
        import vaekit.importance  # noqa: F401

    torch.set_num_threads(args.threads)
    run, data = Path(args.run), Path(args.data)
    if args.child != "evaluate":
        model, images = opened(run, data, args.images)
        x = as_floats(images) if args.child == "plain" else None
    before = rss_kib()
    reset_peak(required=True)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start, cpu = time.perf_counter(), time.process_time()
    if args.child == "evaluate":
        figures = vaekit_arm(run, data, args)
    elif args.child == "evaluate_model":
        figures = evaluation_arm(model, images, args)
    else:
        figures = plain_loop(model, x, args.iwae_k, args.batch_size, args.plain_draws)
    figures["wall_s"] = time.perf_counter() - start
    figures["cpu_s"] = time.process_time() - cpu
    figures["before_kib"], figures["peak_kib"] = before, rss_kib("VmHWM")
    figures["minor_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps(figures))


def in_subprocess(arm: str, run: Path, args: argparse.Namespace) -> dict:
    """:func:`child` for ``arm`` in a fresh Python."""
    command = [sys.executable, __file__, "--child", arm, "--run", str(run), "--data", args.data]
    for flag in ("images", "iwae_k", "batch_size", "plain_draws", "threads", "chunk_mib"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(arm, *arm_args) -> tuple[float, float, int, dict]:
    """Wall and CPU seconds of ``arm(*arm_args)``, its minor page faults and its figures."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start, cpu = time.perf_counter(), time.process_time()
    figures = arm(*arm_args)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(FASHION), help="an IDX folder (train-/t10k-)")
    parser.add_argument("--run", help="evaluate this run (default: train one here)")
    parser.add_argument("--encoder", default="conv")
    parser.add_argument("--train-images", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=500, help="test images evaluated")
    parser.add_argument("--iwae-k", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--plain-draws", type=int, default=1, help="draws per decoder call")
    parser.add_argument("--rounds", type=int, default=5, help="alternated; the first: warm-up")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--chunk-mib", type=float, help="vaekit's chunk budget (default: its own)")
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = (
            Path(args.run)
            if args.run
            else train_model(Path(args.data), Path(tmp), args.encoder, args.train_images)
        )
        compare(run, args)


def compare(run: Path, args: argparse.Namespace) -> None:
    """The arms alternated in this process, then each alone; prints what it measured."""
    data = Path(args.data)
    model, images = opened(run, data, args.images)
    x = as_floats(images)
    arms = {
        "evaluate": (vaekit_arm, run, data, args),
        "evaluate_model": (evaluation_arm, model, images, args),
        "plain": (plain_loop, model, x, args.iwae_k, args.batch_size, args.plain_draws),
    }
    times: dict[str, list[tuple[float, float, int]]] = {name: [] for name in ARMS}
    figures: dict[str, dict] = {}
    for round_ in range(max(2, args.rounds)):
        order = ARMS if round_ % 2 else ARMS[::-1]
        for name in order:
            wall, cpu, faults, figures[name] = timed(*arms[name])
            if round_:  # the first round is warm-up
                times[name].append((wall, cpu, faults))
    import vaekit

    print(f"vaekit from {Path(vaekit.__file__).parent}, torch {torch.__version__}")
    print(
        f"data: {data} test split, {len(x)} images; run {run.name} ({model.config.encoder}, "
        f"{model.latent_dim} latents); K = {args.iwae_k}, batch {args.batch_size}, plain loop "
        f"{args.plain_draws} draw(s) per decoder call; {args.threads} threads"
    )
    print(f"alternated in one process, {len(times['plain'])} rounds after a warm-up round:")
    for name in ARMS:
        f, walls = figures[name], ", ".join(f"{t[0]:.2f}" for t in times[name])
        faults = statistics.median(t[2] for t in times[name])
        print(
            f"{name:>14}: wall s {walls}, median {_median(times[name], 0):.2f} (CPU "
            f"{_median(times[name], 1):.2f} s; {faults:,.0f} minor faults); -IWAE_K "
            f"{f['iwae']:.3f}, -ELBO {f['neg_elbo']:.3f}, KL {f['kl']:.3f}, active units "
            f"{f['active_units']}"
        )
    for name in ARMS[:2]:
        pairs = [p[0] / v[0] for v, p in zip(times[name], times["plain"], strict=True)]
        print(
            f"speed {name} / plain: {_median(times['plain'], 0) / _median(times[name], 0):.3f} "
            f"(CPU time {_median(times['plain'], 1) / _median(times[name], 1):.3f}; per round "
            f"{', '.join(f'{r:.3f}' for r in pairs)}, median {statistics.median(pairs):.3f})"
        )
    alone = {name: in_subprocess(name, run, args) for name in ARMS}
    print("each alone in a fresh process (evaluate: opening the run and reading the data too):")
    for name, r in alone.items():
        print(
            f"{name:>14}: peak RSS {r['peak_kib'] / 1024:.1f} MiB, "
            f"{(r['peak_kib'] - r['before_kib']) / 1024:.1f} MiB above its mark (RSS "
            f"{r['before_kib'] / 1024:.1f} MiB), {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s "
            f"CPU, {r['minor_faults']:,} minor page faults"
        )
    v, p = alone["evaluate_model"], alone["plain"]
    above = (v["peak_kib"] - v["before_kib"]) / max(1, p["peak_kib"] - p["before_kib"])
    print(
        f"evaluate_model / plain alone: peak RSS {v['peak_kib'] / p['peak_kib']:.3f} (above "
        f"the mark {above:.3f}); speed {p['wall_s'] / v['wall_s']:.3f} (CPU time "
        f"{p['cpu_s'] / v['cpu_s']:.3f})"
    )


def _median(rows: list[tuple[float, float, int]], column: int) -> float:
    return statistics.median(row[column] for row in rows)


if __name__ == "__main__":
    main()
