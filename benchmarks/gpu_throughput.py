"""ResNet VAE at 64x64 on a GPU: vaekit's training step in bf16 autocast + channels-last
against the same in float32 eager, and against a hand-written PyTorch loop of the same net.

Three arms train the built-in ``resnet`` VAE (64x64 RGB, same config, same initial
weights) on the same uint8 images with the same batch size, interleaved (the order
rotates each repeat), in one process:

- ``vaekit bf16+cl``: ``vaekit.train.train`` with the accelerator's bf16 autocast and
  channels-last weights and inputs (the cuda accelerator's defaults on a bf16 GPU);
- ``vaekit fp32``: the same with ``bf16=false, channels_last=false``;
- ``plain fp32``: what a user writes by hand: the same encoder, head and decoder modules,
  the Gaussian ELBO (sigma 0.1) written out, Adam, the data on the device, float32 eager.

Reported: training-step throughput (samples/s per epoch, the first epoch of each run
skipped as warm-up; vaekit's figure is its own ``samples_per_s``, training steps only),
the median per arm, and the ratios. On a GPU every arm runs with cuDNN autotuning and
TF32 matmuls on (vaekit's cuda accelerator turns them on process-wide; the benchmark
does so first, for all arms alike). The images are random uint8 (throughput does not
depend on them; nothing is downloaded).

    python benchmarks/gpu_throughput.py                      # on a GPU: cuda:0
    python benchmarks/gpu_throughput.py --device cpu --quick # smoke run (no GPU figure)
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vaekit.config import TrainConfig
from vaekit.data import load_training_data
from vaekit.model import build_model
from vaekit.train import resolve_model_config, train

ARMS = ("vaekit bf16+cl", "vaekit fp32", "plain fp32")


def write_images(path: Path, n: int, size: int, seed: int = 0) -> Path:
    """Random uint8 RGB images (N, 3, size, size) as an ``images`` array in an .npz."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    np.savez(path, images=images)
    return path


def make_config(args: argparse.Namespace, data: Path, runs: Path, arm: str, i: int) -> TrainConfig:
    """The run config of one vaekit arm."""
    fast = arm == "vaekit bf16+cl"
    options: dict = {"bf16": fast, "channels_last": fast}
    if args.device == "cpu":
        options["threads"] = args.threads
    return TrainConfig.build(
        encoder="resnet",
        encoder_options={"width": args.width, "hidden": args.hidden},
        decoder_options={"width": args.width, "hidden": args.hidden},
        latent_dim=args.latent_dim,
        data=str(data),
        epochs=args.epochs,
        batch_size=args.batch_size,
        val_fraction=0.0,
        accelerator=args.device,
        accelerator_options=options,
        runs_dir=str(runs),
        name=f"{arm.replace(' ', '-').replace('+', '-')}-{i}",
        figures=False,
    )


def vaekit_arm(config: TrainConfig) -> list[float]:
    """vaekit.train: samples/s of each epoch after the first."""
    return [row["samples_per_s"] for row in train(config).history[1:]]


def plain_arm(config: TrainConfig, device: torch.device) -> list[float]:
    """A hand-written float32 loop over the same net: samples/s of each epoch after the
    first."""
    data = load_training_data(config)
    model_config = resolve_model_config(config.model, data)
    torch.manual_seed(config.seed)
    model = build_model(model_config).to(device)  # the same modules and initial weights
    encoder, head, decoder = model.encoder, model.head, model.decoder
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    images = torch.from_numpy(data.images).to(device)
    n, batch = len(images), config.batch_size
    log_norm = math.log(0.1) + 0.5 * math.log(2 * math.pi)  # Gaussian, sigma 0.1
    speeds = []
    model.train()
    for epoch in range(config.epochs):
        sync(device)
        start = time.perf_counter()
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            x = images[order[i : i + batch]].float() / 255.0
            mu, logvar = head(encoder(x)).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            mean = decoder(z)
            recon = (50.0 * (x - mean).square() + log_norm).flatten(1).sum(1)
            kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)
            loss = (recon + kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        if epoch > 0:
            speeds.append(n / (time.perf_counter() - start))
    return speeds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--n", type=int, default=8192, help="training images")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.quick:
        args.n, args.epochs, args.repeats, args.batch_size = 64, 2, 1, 32
        args.width, args.hidden, args.latent_dim = 8, 32, 8
    torch.set_num_threads(args.threads)
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no GPU here: run with --device cpu --quick for a smoke run")
        # vaekit's cuda accelerator sets these process-wide when it prepares a model; set
        # them first so every arm, the plain loop's included, runs under the same flags
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    speeds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as root:
        data = write_images(Path(root) / "images.npz", args.n, 64)
        runs = Path(root) / "runs"
        for r in range(args.repeats):
            for k in range(len(ARMS)):
                arm = ARMS[(r + k) % len(ARMS)]  # rotate: no arm always goes first
                config = make_config(args, data, runs, arm, r)
                if arm == "plain fp32":
                    speeds[arm] += plain_arm(config, device)
                else:
                    speeds[arm] += vaekit_arm(config)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device: {name}; resnet VAE 64x64x3, width {args.width}, hidden {args.hidden}, "
        f"latent {args.latent_dim}; {args.n} images, batch {args.batch_size}, "
        f"{args.epochs} epochs x {args.repeats} repeats (first epoch of each skipped)"
    )
    median = {arm: statistics.median(values) for arm, values in speeds.items()}
    for arm in ARMS:
        print(f"{arm:>15}: {median[arm]:9.1f} samples/s  (epochs: {len(speeds[arm])})")
    fast, fp32, plain = (median[arm] for arm in ARMS)
    print(f"ratio bf16+channels-last / fp32 eager (vaekit): {fast / fp32:.3f}")
    print(f"ratio vaekit fp32 / plain fp32: {fp32 / plain:.3f}")
    print(f"ratio vaekit bf16+channels-last / plain fp32: {fast / plain:.3f}")


if __name__ == "__main__":
    main()
