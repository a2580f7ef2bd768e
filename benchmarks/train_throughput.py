"""vaekit's training loop against a plain PyTorch loop on the same model and data.

Both train the same model (same config, same initial weights) on the same uint8
images with the same batch size and optimiser, interleaved, several repeats, in
one process. Reported: training-step throughput (samples/s over the epochs'
training steps, the first epoch skipped as warm-up) and the ratio
vaekit / plain. vaekit's figure includes its progress reporting (a rich bar
drawn to a null console) and per-epoch hooks; its end-to-end time (validation,
checkpoints, grids) is reported separately.

    python benchmarks/train_throughput.py --encoder resnet --epochs 6 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import tempfile
import time

import torch
from rich.console import Console

from vaekit.config import TrainConfig
from vaekit.data import load_dataset
from vaekit.model import build_model, elbo_loss
from vaekit.progress import RichTrainReporter
from vaekit.train import resolve_model_config, train


def plain_loop(config: TrainConfig, images: torch.Tensor, model_config) -> list[float]:
    """A hand-written loop: samples/s of each epoch after the first."""
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = len(images)
    total_steps = -(-n // config.batch_size) * config.epochs
    warm = max(1, int(0.3 * total_steps))
    step, speeds = 0, []
    model.train()
    for epoch in range(config.epochs):
        start = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, n, config.batch_size):
            x = images[order[i : i + config.batch_size]].float().div_(255.0)
            terms = model.elbo(x)
            loss = elbo_loss(terms, min(1.0, step / warm))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
        if epoch > 0:
            speeds.append(n / (time.perf_counter() - start))
    return speeds


def vaekit_loop(config: TrainConfig, root: str, index: int) -> tuple[list[float], float]:
    """vaekit.train: (samples/s of each epoch after the first, end-to-end seconds)."""
    config.runs_dir, config.name = root, f"bench-{index}"
    reporter = RichTrainReporter(Console(file=io.StringIO()))
    start = time.perf_counter()
    result = train(config, reporter=reporter)
    wall = time.perf_counter() - start
    return [r["samples_per_s"] for r in result.history[1:]], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = TrainConfig.build(
        encoder=args.encoder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        val_fraction=0.0,
        accelerator="cpu",
    )
    data = load_dataset()
    images = torch.from_numpy(data.images)
    model_config = resolve_model_config(config.model, data)
    plain, ours, walls = [], [], []
    with tempfile.TemporaryDirectory() as root:
        warm = dataclasses.replace(config, epochs=2)
        plain_loop(warm, images, model_config)  # warm-up: kernels, allocator, caches
        vaekit_loop(warm, root, -1)
        for i in range(args.repeats):
            plain += plain_loop(config, images, model_config)
            speeds, wall = vaekit_loop(dataclasses.replace(config), root, i)
            ours += speeds
            walls.append(wall)
    print(
        f"data: digits {tuple(images.shape)}, encoder {args.encoder}, batch {args.batch_size}, "
        f"{args.epochs} epochs x {args.repeats} repeats, {args.threads} threads"
    )
    for label, pick in (("median epoch", statistics.median), ("best epoch", max)):
        p, v = pick(plain), pick(ours)
        print(
            f"{label:>12}: plain {p:.0f} samples/s, vaekit {v:.0f} samples/s, "
            f"ratio vaekit / plain {v / p:.3f}  (target >= 0.95)"
        )
    print(
        f"vaekit end-to-end incl. validation, checkpoints, grids: {statistics.median(walls):.2f} s"
    )


if __name__ == "__main__":
    main()
