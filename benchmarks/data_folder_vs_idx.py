"""Training from an image folder against training from IDX files, on the same images.

Fashion-MNIST (the Debian package's IDX files) is cut to ``--n`` training images,
written once as IDX files and once as PNGs in class folders, and the same model
is trained from each, interleaved, ``--repeats`` times, in one process. Reported:
the time of the epochs after the first, folder / IDX (target <= 1.1: after the
single decode, the folder is a uint8 array like the IDX data), the folder's first
(decoding) load, and a second command in a fresh process on the same folder, which
must read the decode cache and decode no image.

On a shared machine wall-clock epochs vary several-fold from minute to minute, so
the ratio is taken per repeat between the two runs done back to back (order
alternating), and the median over repeats is reported, for wall-clock training
time (``epoch_seconds`` in metrics) and for process CPU time per whole epoch
(measured by a throwaway plugin on the ``vaekit_epoch_end`` hook), which other
users of the machine disturb much less. torch runs one thread by default: with
more threads than free cores, OpenMP's spin-waiting makes epochs tens of times
slower whenever another process is busy, which would swamp the comparison.

    python benchmarks/data_folder_vs_idx.py --n 10000 --epochs 3 --repeats 4
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from vaekit import hookimpl
from vaekit.config import TrainConfig
from vaekit.data import load_dataset
from vaekit.plugins import get_plugin_host
from vaekit.progress import RichTrainReporter
from vaekit.sources.idx import FASHION_CLASSES, read_idx
from vaekit.train import train

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
SECOND_COMMAND = """
import sys, time
import vaekit.imageio as io
calls = [0]
original = io.read_image
def counting(*args, **kwargs):
    calls[0] += 1
    return original(*args, **kwargs)
io.read_image = counting
from vaekit.data import load_dataset
start = time.perf_counter()
data = load_dataset(sys.argv[1])
print(f"{calls[0]} {time.perf_counter() - start:.3f} {len(data)}")
"""


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1))


def export(source: Path, n: int, root: Path) -> tuple[Path, Path]:
    """The first ``n`` training images as IDX files and as PNG class folders."""
    images = read_idx(next(source.glob("train-images-idx3-ubyte*")))[:n]
    labels = read_idx(next(source.glob("train-labels-idx1-ubyte*")))[:n]
    idx_dir, png_dir = root / "fashion-idx", root / "fashion-png"
    idx_dir.mkdir()
    write_idx(idx_dir / "train-images-idx3-ubyte.gz", images)
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", labels)
    names = [c.replace("/", "_") for c in FASHION_CLASSES]
    for name in names:
        (png_dir / name).mkdir(parents=True)

    def save(i: int) -> None:
        Image.fromarray(images[i]).save(png_dir / names[labels[i]] / f"{i:05d}.png")

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(save, range(n)))
    return idx_dir, png_dir


class EpochClock:
    """A throwaway plugin: process CPU time at the start and at each epoch's end."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    @hookimpl
    def vaekit_train_start(self, run, config) -> None:
        self.marks = [time.process_time()]

    @hookimpl
    def vaekit_epoch_end(self, run, epoch, metrics) -> None:
        self.marks.append(time.process_time())


def epoch_seconds(config: TrainConfig) -> tuple[list[float], list[float]]:
    """(wall seconds of training, CPU seconds of the whole epoch) per epoch after the first."""
    clock = EpochClock()
    host = get_plugin_host()
    host.add_plugin(clock, "benchmark-clock")
    try:
        reporter = RichTrainReporter(Console(file=io.StringIO()))
        history = train(config, reporter=reporter).history
    finally:
        host.remove_plugin("benchmark-clock")
    cpu = [b - a for a, b in zip(clock.marks[:-1], clock.marks[1:], strict=True)]
    return [m["epoch_seconds"] for m in history[1:]], cpu[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEBIAN, help="Fashion-MNIST IDX folder")
    parser.add_argument("--n", type=int, default=10000, help="images to export")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--encoder", default="mlp")
    parser.add_argument(
        "--hidden", type=int, default=128, help="mlp width (small: the data path weighs more)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: immune to the spin-waiting that a busy machine inflicts)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["VAEKIT_CACHE_DIR"] = str(root / "cache")
        t0 = time.perf_counter()
        idx_dir, png_dir = export(args.source, args.n, root)
        print(f"exported {args.n} images to PNG and IDX in {time.perf_counter() - t0:.1f}s")

        t0 = time.perf_counter()
        first = load_dataset(png_dir)
        decode_s = time.perf_counter() - t0
        print(f"first load of the folder (decodes, writes the cache): {decode_s:.2f}s")
        t0 = time.perf_counter()
        load_dataset(idx_dir)
        print(f"load of the IDX files: {time.perf_counter() - t0:.2f}s")
        assert first.class_names == sorted(c.replace("/", "_") for c in FASHION_CLASSES)

        wall_ratios, cpu_ratios = [], []
        wall: dict[str, list[float]] = {"folder": [], "idx": []}
        kinds = [("folder", png_dir), ("idx", idx_dir)]
        for repeat in range(args.repeats):
            # alternate the order: a noisy, shared machine must not favour one side
            this: dict[str, tuple[float, float]] = {}
            for kind, path in kinds if repeat % 2 == 0 else kinds[::-1]:
                config = TrainConfig.build(
                    data=str(path),
                    encoder=args.encoder,
                    encoder_options={"hidden": args.hidden} if args.encoder == "mlp" else {},
                    decoder_options={"hidden": args.hidden} if args.encoder == "mlp" else {},
                    epochs=args.epochs,
                    batch_size=args.batch_size,
                    accelerator="cpu",
                    runs_dir=str(root / "runs"),
                    name=f"{kind}-{repeat}",
                )
                seconds, cpu_seconds = epoch_seconds(config)
                wall[kind] += seconds
                this[kind] = (statistics.median(seconds), statistics.median(cpu_seconds))
                print(
                    f"repeat {repeat} {kind:>6}: epochs after the first: wall "
                    + ", ".join(f"{s:.2f}s" for s in seconds)
                    + "; CPU "
                    + ", ".join(f"{s:.2f}s" for s in cpu_seconds)
                )
            wall_ratios.append(this["folder"][0] / this["idx"][0])
            cpu_ratios.append(this["folder"][1] / this["idx"][1])
        ratio = statistics.median(wall_ratios)
        ratio_cpu = statistics.median(cpu_ratios)
        folder, idx = statistics.median(wall["folder"]), statistics.median(wall["idx"])

        out = subprocess.run(
            [sys.executable, "-c", SECOND_COMMAND, str(png_dir)],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ),
        ).stdout.split()
        decoded, second_s = int(out[0]), float(out[1])
        print(
            f"second command on the folder (fresh process): decoded {decoded} images, "
            f"loaded {out[2]} in {second_s:.2f}s (first load {decode_s:.2f}s)"
        )
        print(
            f"epochs after the first, folder / IDX (median of {args.repeats} paired repeats): "
            f"wall {ratio:.3f}, CPU {ratio_cpu:.3f} (target <= 1.1); median wall epoch "
            f"folder {folder:.3f}s, IDX {idx:.3f}s"
        )
        print(
            json.dumps(
                {
                    "n": args.n,
                    "encoder": args.encoder,
                    "folder_epoch_s": folder,
                    "idx_epoch_s": idx,
                    "ratio_wall": ratio,
                    "ratio_cpu": ratio_cpu,
                    "wall_ratios": wall_ratios,
                    "cpu_ratios": cpu_ratios,
                    "first_load_s": decode_s,
                    "second_command_decoded": decoded,
                    "second_command_load_s": second_s,
                }
            )
        )
        if decoded:
            raise SystemExit("the second command decoded images again")


if __name__ == "__main__":
    main()
