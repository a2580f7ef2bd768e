"""vaekit encode against the same model's forward-only pass, and its peak memory vs N.

Data: the digits resized to 28x28 and tiled to N images (MNIST's shape and size),
stored as a .npy file and memory-mapped, as vaekit's decode cache serves image
folders. Model: a run trained for one epoch (default: the conv encoder, 16 latents).

1. Throughput on ``--n`` images (20,000), interleaved pairs in one process, same images
   and batch size:
   - forward only: a plain PyTorch loop calling ``model.encode`` under inference_mode;
   - vaekit: ``encode_dataset`` from its first batch to the renamed, complete file
     (the whole call, with model loading and the weights hash, reported separately).
   Reported: the median of the pairs' ratios (robust to other load on a shared
   machine) and the ratio of CPU time (all threads). Target: vaekit / forward >= 0.9.
2. Peak memory: ``encode_dataset`` alone in fresh subprocesses (VmHWM, the RSS
   high-water mark; medians of ``--memory-runs`` runs) for 6,000 and 60,000 images:
   the whole process's peak and the peak while encoding (reset after the data is
   loaded). Target: within 15%.
   ``--in-memory`` holds the images in RAM instead (then they are part of the RSS).

    python benchmarks/encode_throughput.py                # conv encoder, batch 256
    python benchmarks/encode_throughput.py --encoder mlp --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit.config import TrainConfig
from vaekit.data import ImageDataset, apply_image_options, load_dataset
from vaekit.encode import encode_dataset

sys.path.insert(0, str(Path(__file__).parent))
from peak_memory import reset_peak, rss_kib  # noqa: E402

from vaekit.runs import load_model
from vaekit.train import train

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


def forward_only(model: torch.nn.Module, images: np.ndarray, batch_size: int) -> Timing:
    """A plain loop: uint8 batch -> float -> model.posterior -> host arrays."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size]))
            q = model.posterior(x.float().div_(255.0))
            q.mean.numpy(), q.logvar.numpy()
    return Timing(len(images), time.perf_counter() - wall, time.process_time() - cpu)


def vaekit_encode(data: ImageDataset, out: Path, run: Path, batch_size: int) -> Timing:
    """encode_dataset from its first batch to the renamed, complete file (``total``: the
    whole call, model loading and weights hash included)."""
    marks: list[tuple[float, float]] = []

    def progress(done: int, total: int) -> None:
        if done == 0:
            marks.append((time.perf_counter(), time.process_time()))

    start = time.perf_counter()
    encode_dataset(
        data, out, model_dir=run, batch_size=batch_size, overwrite=True, progress=progress
    )
    end, end_cpu = time.perf_counter(), time.process_time()
    return Timing(len(data), end - marks[0][0], end_cpu - marks[0][1], end - start)


@dataclass
class Timing:
    """One pass: images, wall seconds, process CPU seconds (all threads)."""

    n: int
    wall: float
    cpu: float
    total: float = 0.0

    @property
    def speed(self) -> float:
        return self.n / self.wall


def child_memory(args: argparse.Namespace) -> None:
    """Run one encode and print JSON: RSS before it, the peak while encoding (the
    high-water mark reset after loading the data) and the whole process's peak."""
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    data = dataset(root, args.child, args.in_memory)
    load_peak, before = rss_kib("VmHWM"), rss_kib()
    reset = reset_peak()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        encode_dataset(
            data,
            Path(tmp) / "latents.h5",
            model_dir=root / "runs" / "bench",
            batch_size=args.batch_size,
        )
    peak = rss_kib("VmHWM")
    out = {
        "n": args.child,
        "before_kib": before,
        "encode_peak_kib": peak if reset else None,
        "process_peak_kib": max(load_peak, peak),
    }
    print(json.dumps(out))


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
    parser.add_argument("--n", type=int, default=20_000, help="images for throughput")
    parser.add_argument("--memory-n", type=int, nargs=2, default=[6_000, 60_000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-runs", type=int, default=3, help="child runs per N")
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
        config = TrainConfig.build(
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
        forward, ours = [], []
        for i in range(args.repeats):  # interleaved pairs: other load hits both alike
            forward.append(forward_only(model, data.images, args.batch_size))
            ours.append(vaekit_encode(data, root / "latents.h5", run, args.batch_size))
            print(
                f"repeat {i + 1}: forward-only {forward[-1].speed:.0f} images/s, "
                f"vaekit encode {ours[-1].speed:.0f} images/s, "
                f"ratio {ours[-1].speed / forward[-1].speed:.3f}"
            )
        ratios = [o.speed / f.speed for o, f in zip(ours, forward, strict=True)]
        cpu_ratio = statistics.median(f.cpu for f in forward) / statistics.median(
            o.cpu for o in ours
        )
        size_mb = (root / "latents.h5").stat().st_size / 1e6
        where = "in memory" if args.in_memory else "memory-mapped .npy"
        print(
            f"data: {args.n} images 1x{SIZE}x{SIZE} ({where}), "
            f"encoder {args.encoder}, {args.latent_dim} latents, batch {args.batch_size}, "
            f"{args.threads} threads, gzip"
        )
        print(f"forward only:  {statistics.median(f.speed for f in forward):.0f} images/s (median)")
        print(
            f"vaekit encode: {statistics.median(o.speed for o in ours):.0f} images/s (median); "
            f"whole call incl. model load {statistics.median(o.total for o in ours):.2f} s; "
            f"file {size_mb:.1f} MB"
        )
        print(
            f"throughput ratio encode / forward: {statistics.median(ratios):.3f} "
            f"(median of {args.repeats} interleaved pairs; target >= 0.9); "
            f"by CPU time: {cpu_ratio:.3f}"
        )

        runs: dict[int, list[dict]] = {n: [] for n in args.memory_n}
        for _ in range(args.memory_runs):  # alternating: allocator noise is +-10%
            for n in args.memory_n:
                runs[n].append(measure_memory(root, n, args))
        peaks = {}
        for n, rows in runs.items():
            peaks[n] = {
                key: statistics.median(r[key] for r in rows) / 1024
                for key in ("before_kib", "encode_peak_kib", "process_peak_kib")
                if rows[0][key] is not None
            }
            p = peaks[n]
            print(
                f"peak RSS, {n:>6} images: whole process {p['process_peak_kib']:.1f} MiB, "
                f"while encoding {p.get('encode_peak_kib', float('nan')):.1f} MiB "
                f"(RSS before encoding {p['before_kib']:.1f} MiB; median of {len(rows)} runs)"
            )
        small, large = (peaks[n] for n in args.memory_n)
        for key, what in (("process_peak_kib", "whole process"), ("encode_peak_kib", "encoding")):
            if key in small:
                print(
                    f"peak memory ratio {args.memory_n[1]} / {args.memory_n[0]} ({what}): "
                    f"{large[key] / small[key]:.3f}  (target <= 1.15)"
                )


if __name__ == "__main__":
    main()
