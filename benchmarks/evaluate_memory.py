"""Peak memory of vaekit evaluate on 6,000 vs 60,000 images, against a plain loop.

Data: Fashion-MNIST's 60,000 training images (Debian's ``dataset-fashion-mnist``), or
the digits resized to 28x28 and tiled to 60,000 where it is not installed; stored as
a .npy file and memory-mapped, as vaekit's decode cache serves image folders
(``--in-memory`` holds them in RAM, where they are part of the RSS). Model: a run
trained for one epoch on 10,000 of them (default: mlp encoder, 16 latents).

Each measurement is a fresh subprocess (VmHWM, the RSS high-water mark, reset after
the data is opened; medians of ``--runs`` runs), alternating sizes:

- vaekit: ``evaluate_model`` -- −ELBO, KL per dimension, active units, the IWAE
  bound with ``--iwae-k`` draws, per class -- streaming fixed-size batches;
- plain loop: what one writes without it -- the images as one float tensor, then
  ``vaekit.model.iwae_bound`` per batch, the per-image bounds and posterior means
  collected and reduced at the end.

Target (issue 11): vaekit's peak on 60,000 within 15% of its peak on 6,000.

    python benchmarks/evaluate_memory.py                  # mlp, K = 100, 3 runs per size
    python benchmarks/evaluate_memory.py --encoder conv --iwae-k 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from vaekit.config import TrainConfig
from vaekit.data import ImageDataset, apply_image_options, load_dataset
from vaekit.train import train

sys.path.insert(0, str(Path(__file__).parent))
from peak_memory import reset_peak, rss_kib  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def make_images(root: Path, n: int) -> str:
    """``n`` 28x28 images and labels as .npy files; returns where they came from."""
    if FASHION.is_dir():
        data = load_dataset(FASHION).select_split("train")
        source = "Fashion-MNIST train split"
    else:
        data = apply_image_options(load_dataset(), image_size=28)
        source = "digits at 28x28, tiled"
    reps = -(-n // len(data))
    images, labels = np.tile(data.images, (reps, 1, 1, 1))[:n], np.tile(data.labels, reps)[:n]
    np.save(root / "images.npy", images)
    np.save(root / "labels.npy", labels)
    np.savez(root / "train.npz", images=images[:10_000], labels=labels[:10_000])
    return source


def dataset(root: Path, n: int, in_memory: bool) -> ImageDataset:
    images = np.load(root / "images.npy", mmap_mode="r")[:n]
    if in_memory:
        images = np.array(images)
    labels = np.load(root / "labels.npy")[:n]
    names = [str(i) for i in range(10)]
    return ImageDataset(images, np.arange(n), "bench", str(root), labels, names)


def plain_loop(model: torch.nn.Module, data: ImageDataset, k: int, batch_size: int) -> float:
    """The loop one writes by hand: all images as floats, per-batch bounds collected."""
    from vaekit.model import iwae_bound

    x_all = torch.from_numpy(np.asarray(data.images)).float() / 255.0
    bounds, means = [], []
    with torch.inference_mode():
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size]
            bounds.append(iwae_bound(model, x, k=k))
            means.append(model.posterior(x).mean)
    mu = torch.cat(means)
    (mu.var(0) > 0.01).sum()
    return -torch.cat(bounds).mean().item()


def child(args: argparse.Namespace) -> None:
    from vaekit.evaluate import evaluate_model
    from vaekit.runs import load_model

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    model = load_model(root / "runs" / "bench")
    data = dataset(root, args.child, args.in_memory)
    before = rss_kib()
    reset_peak(required=True)
    if args.mode == "vaekit":
        result = evaluate_model(
            model, data, iwae_k=args.iwae_k, by_label=True, batch_size=args.batch_size
        )
        value = result.iwae[args.iwae_k]
    else:
        value = plain_loop(model, data, args.iwae_k, args.batch_size)
    print(json.dumps({"before_kib": before, "peak_kib": rss_kib("VmHWM"), "iwae": value}))


def measure(root: Path, n: int, mode: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", str(n), "--root", str(root), "--mode", mode]
    command += ["--iwae-k", str(args.iwae_k), "--batch-size", str(args.batch_size)]
    command += ["--threads", str(args.threads)] + (["--in-memory"] if args.in_memory else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="mlp")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--iwae-k", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs=2, default=[6_000, 60_000])
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per size and mode")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--in-memory", action="store_true")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain loop")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="vaekit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_images(root, max(args.sizes))
        config = TrainConfig.build(  # one epoch on 10,000 of the images
            data=str(root / "train.npz"),
            encoder=args.encoder,
            latent_dim=args.latent_dim,
            epochs=1,
            accelerator="cpu",
            runs_dir=str(root / "runs"),
            name="bench",
            figures=False,
        )
        train(config)
        modes = ["vaekit"] + ([] if args.no_plain else ["plain"])
        rows: dict[tuple[str, int], list[dict]] = {(m, n): [] for m in modes for n in args.sizes}
        for _ in range(args.runs):
            for mode in modes:
                for n in args.sizes:
                    rows[mode, n].append(measure(root, n, mode, args))
        where = "in memory" if args.in_memory else "memory-mapped .npy"
        print(
            f"data: {source} ({where}); encoder {args.encoder}, {args.latent_dim} latents, "
            f"K = {args.iwae_k}, batch {args.batch_size}, {args.threads} threads"
        )
        for mode in modes:
            peaks = []
            for n in args.sizes:
                peak = statistics.median(r["peak_kib"] for r in rows[mode, n]) / 1024
                before = statistics.median(r["before_kib"] for r in rows[mode, n]) / 1024
                peaks.append(peak)
                print(
                    f"{mode:>6}, {n:>6} images: peak RSS {peak:7.1f} MiB "
                    f"(RSS before {before:.1f} MiB; median of {len(rows[mode, n])} runs); "
                    f"-IWAE_K {rows[mode, n][0]['iwae']:.2f} nats"
                )
            print(
                f"{mode:>6}: peak on {args.sizes[1]:,} / on {args.sizes[0]:,} = "
                f"{peaks[1] / peaks[0]:.3f}"
            )


if __name__ == "__main__":
    main()
