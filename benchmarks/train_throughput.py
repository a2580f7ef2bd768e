"""vaekit's training step against the best plain PyTorch loop a competent user would write.

Fair by construction (issue 22):

- the same model (same config, same initial weights), the same uint8 images held in
  memory, the same batch size, learning rate and KL warm-up;
- the same optimiser: ``Adam(fused=True)``, as vaekit uses (its figure used to credit
  the fused optimiser to vaekit against a default-Adam loop);
- vaekit's real epoch, ``vaekit.train.train_epoch`` (its data path, the fault checks,
  gradient clipping, the per-step bookkeeping), not only its networks;
- epochs alternated in one process (plain, vaekit, vaekit, plain, ...), so both see the
  same machine load; the first epoch of each arm is warm-up and not counted;
- Fashion-MNIST-sized epochs (60,000 28x28 images) by default: the IDX files when
  Debian's package is installed, else random images of that shape.

The plain arm skips what vaekit adds (no clipping, no finiteness checks): the ratio is
the price of those guarantees. Reported: samples/s of each arm (median over counted
epochs) and the ratio vaekit / plain.

    python benchmarks/train_throughput.py --encoder conv --epochs 4 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vaekit.config import TrainConfig
from vaekit.data import ImageDataset, load_dataset
from vaekit.model import build_model, elbo_loss
from vaekit.train import set_up, train_epoch

FASHION = Path("/usr/share/datasets/fashion-mnist")


def fashion_sized(limit: int | None, random: bool = False) -> ImageDataset:
    """Fashion-MNIST's training images when installed, else random ones of its shape."""
    if FASHION.is_dir() and not random:
        data = load_dataset(FASHION).select_split("train")
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (60_000, 1, 28, 28), dtype=np.uint8)
        ids = np.array([str(i) for i in range(len(images))])
        data = ImageDataset(images=images, ids=ids, source="random", location="fashion-sized")
    if limit is not None and limit < len(data):
        data = data.subset(np.arange(limit))
    return data


class PlainLoop:
    """What a competent user writes: fused Adam, the model's own ELBO, linear KL warm-up,
    no checks. Holds its model and optimiser across epochs, like the vaekit session."""

    def __init__(self, session, images: torch.Tensor):
        torch.manual_seed(session.config.seed)
        self.model = build_model(session.run_config.model)
        self.model.load_state_dict(session.raw_model.state_dict())  # same initial weights
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=session.config.lr, fused=True)
        self.images, self.batch_size = images, session.config.batch_size
        self.warm = max(1, session.schedule_steps * 3 // 10)
        self.step = 0

    def epoch(self, epoch: int) -> float:
        """One epoch; returns its samples/s."""
        n = len(self.images)
        start = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, n, self.batch_size):
            x = self.images[order[i : i + self.batch_size]].float().div_(255.0)
            loss = elbo_loss(self.model.elbo(x), min(1.0, self.step / self.warm))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="conv")
    parser.add_argument("--epochs", type=int, default=4, help="per arm, the first is warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=None, help="fewer images per epoch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--random", action="store_true", help="random images, not the IDX")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = fashion_sized(args.images, args.random)

    with tempfile.TemporaryDirectory() as root:
        array = Path(root) / "images.npy"
        np.save(array, data.images)
        config = TrainConfig.build(
            data=str(array),
            encoder=args.encoder,
            epochs=args.epochs,
            batch_size=args.batch_size,
            val_fraction=0.0,
            accelerator="cpu",
            runs_dir=root,
            name="bench",
            figures=False,
            fit_prior=0,
        )
        session = set_up(config, resume=False)
        plain = PlainLoop(session, torch.from_numpy(np.ascontiguousarray(data.images)))
        ours, theirs = [], []
        for epoch in range(args.epochs):
            arms = [("plain", plain.epoch), ("vaekit", None)]
            if epoch % 2:
                arms.reverse()  # alternate who goes first
            for name, run in arms:
                if name == "plain":
                    theirs.append(run(epoch))
                else:
                    ours.append(train_epoch(session, epoch, None)["samples_per_s"])
        session.run.unlock()
    counted_plain, counted_ours = theirs[1:], ours[1:]
    p, v = statistics.median(counted_plain), statistics.median(counted_ours)
    print(
        f"data: {data.source} {tuple(data.images.shape)}, encoder {args.encoder}, batch "
        f"{args.batch_size}, {args.epochs} epochs per arm (first = warm-up), alternated, "
        f"{args.threads} threads, both Adam(fused=True)"
    )
    print(f"plain  samples/s per epoch: {', '.join(f'{s:.0f}' for s in counted_plain)}")
    print(f"vaekit samples/s per epoch: {', '.join(f'{s:.0f}' for s in counted_ours)}")
    pairs = [o / t for o, t in zip(counted_ours, counted_plain, strict=True)]
    print(f"median: plain {p:.0f}, vaekit {v:.0f}, ratio vaekit / plain {v / p:.3f}")
    print(
        f"ratio per epoch pair (back to back): {', '.join(f'{r:.3f}' for r in pairs)}; "
        f"median {statistics.median(pairs):.3f}"
    )


if __name__ == "__main__":
    main()
