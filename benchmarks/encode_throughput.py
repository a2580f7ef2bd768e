"""vaekit encode against the same model's forward-only pass, and its peak memory vs N.

Data: the digits resized to 28x28 and tiled to N images (MNIST's shape and size),
stored as a .npy file and memory-mapped, as vaekit's decode cache serves image
folders. Model: a run trained for one epoch (default: the conv encoder, 16 latents).

1. Throughput, interleaved repeats in one process, same images and batch size:
   - forward only: a plain PyTorch loop calling ``model.encode`` under inference_mode;
   - vaekit: ``encode_dataset`` from its first batch to the renamed, complete file
     (model loading and the weights hash reported separately as end-to-end time).
   Target: vaekit / forward >= 0.9.
2. Peak memory: ``encode_dataset`` alone in a fresh subprocess per N (ru_maxrss, the
   RSS high-water mark), for 6,000 and 60,000 images. Target: within 15%.
   ``--in-memory`` holds the images in RAM instead (then they are part of the RSS).

    python benchmarks/encode_throughput.py                # conv encoder, batch 256
    python benchmarks/encode_throughput.py --encoder mlp --repeats 5
"""

from __future__ import annotations

import argparse
import json
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

from vaekit.data import ImageDataset, apply_image_options, load_dataset
from vaekit.encode import encode_dataset
from vaekit.runs import load_model
from vaekit.train import TrainConfig, train

SIZE = 28
# the mapped images are read-only; neither loop writes to them
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def make_images(path: Path, n: int) -> None:
    """Digits at 28x28, tiled to ``n`` images, saved as a .npy file."""
    digits = apply_image_options(load_dataset(), image_size=SIZE)
    reps = -(-n // len(digits))
    images = np.tile(digits.images, (reps, 1, 1, 1))[:n]
    labels = np.tile(digits.labels, reps)[:n]
    np.save(path / "images.npy", images)
    np.save(path / "labels.npy", labels)


def dataset(path: Path, n: int, in_memory: bool = False) -> ImageDataset:
    """The first ``n`` images, memory-mapped (or copied into RAM)."""
    images = np.load(path / "images.npy", mmap_mode="r")[:n]
    if in_memory:
        images = np.array(images)
    labels = np.load(path / "labels.npy")[:n]
    return ImageDataset(
        images=images,
        ids=np.arange(n),
        source="bench",
        location=str(path),
        labels=labels,
        class_names=[str(i) for i in range(10)],
    )


def forward_only(model: torch.nn.Module, images: np.ndarray, batch_size: int) -> float:
    """Images/s of a plain loop: uint8 batch -> float -> model.encode -> host arrays."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size]))
            mu, logvar = model.encode(x.float().div_(255.0))
            mu.numpy(), logvar.numpy()
    return len(images) / (time.perf_counter() - start)


def vaekit_encode(data: ImageDataset, out: Path, run: Path, batch_size: int) -> tuple[float, float]:
    """(images/s from the first batch to the complete file, end-to-end seconds)."""
    marks: list[float] = []

    def progress(done: int, total: int) -> None:
        if done == 0:
            marks.append(time.perf_counter())

    start = time.perf_counter()
    encode_dataset(
        data, out, model_dir=run, batch_size=batch_size, overwrite=True, progress=progress
    )
    end = time.perf_counter()
    return len(data) / (end - marks[0]), end - start


def child_memory(args: argparse.Namespace) -> None:
    """Run one encode and print JSON: RSS before it and the process's high-water mark."""
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    data = dataset(root, args.child, args.in_memory)
    before = _rss_kib()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        encode_dataset(
            data,
            Path(tmp) / "latents.h5",
            model_dir=root / "runs" / "bench",
            batch_size=args.batch_size,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"n": args.child, "before_kib": before, "peak_kib": peak}))


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_memory(root: Path, n: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        str(n),
        "--root",
        str(root),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    if args.in_memory:
        command.append("--in-memory")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="conv")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n", type=int, default=60_000, help="images for throughput")
    parser.add_argument("--memory-n", type=int, nargs=2, default=[6_000, 60_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--in-memory", action="store_true", help="images in RAM, not mapped")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_memory(args)
        return
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root, max(args.n, *args.memory_n))
        config = TrainConfig(
            encoder=args.encoder,
            latent_dim=args.latent_dim,
            epochs=1,
            image_size=SIZE,
            accelerator="cpu",
            runs_dir=str(root / "runs"),
            name="bench",
        )
        run = train(config).run.path
        model = load_model(run)
        data = dataset(root, args.n, args.in_memory)
        forward, ours, walls = [], [], []
        for i in range(args.repeats):
            forward.append(forward_only(model, data.images, args.batch_size))
            speed, wall = vaekit_encode(data, root / "latents.h5", run, args.batch_size)
            ours.append(speed)
            walls.append(wall)
            print(
                f"repeat {i + 1}: forward-only {forward[-1]:.0f} images/s, "
                f"vaekit encode {ours[-1]:.0f} images/s, ratio {ours[-1] / forward[-1]:.3f}"
            )
        f, v = statistics.median(forward), statistics.median(ours)
        size_mb = (root / "latents.h5").stat().st_size / 1e6
        where = "in memory" if args.in_memory else "memory-mapped .npy"
        print(
            f"data: {args.n} images 1x{SIZE}x{SIZE} ({where}), "
            f"encoder {args.encoder}, {args.latent_dim} latents, batch {args.batch_size}, "
            f"{args.threads} threads, gzip"
        )
        print(f"forward only:  {f:.0f} images/s (median of {args.repeats})")
        print(
            f"vaekit encode: {v:.0f} images/s (median of {args.repeats}); "
            f"end-to-end incl. model load: {statistics.median(walls):.2f} s; file {size_mb:.1f} MB"
        )
        print(f"throughput ratio encode / forward: {v / f:.3f}  (target >= 0.9)")

        small, large = (measure_memory(root, n, args) for n in args.memory_n)
        for m in (small, large):
            print(
                f"peak RSS, {m['n']:>6} images: {m['peak_kib'] / 1024:.1f} MiB "
                f"(RSS before encoding {m['before_kib'] / 1024:.1f} MiB)"
            )
        ratio = large["peak_kib"] / small["peak_kib"]
        print(f"peak memory ratio {large['n']} / {small['n']}: {ratio:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
