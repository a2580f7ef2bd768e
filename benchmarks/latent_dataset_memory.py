"""Peak memory of a 2-worker DataLoader over a LatentDataset of 6,000 vs 60,000 rows;
and what hashing every Fashion-MNIST training image costs (encode's up-to-date check).

Stores: synthetic, written through vaekit's store writer (``LatentStoreWriter``, gzip,
the layout ``encode`` writes for Fashion-MNIST: 16 latents, 10 classes, ids). Each
measurement is a fresh subprocess that builds ``LatentDataset(draw=True,
standardize=True)``, iterates ``--epochs`` shuffled epochs through
``DataLoader(batch_size=256, num_workers=2)`` with ``set_epoch``, checks that every
row came exactly once per epoch, and reports the RSS high-water mark (VmHWM) of the
main process plus that of each worker (read from /proc while they are alive, after
each batch; the largest sum over one epoch's workers, which run together). Sizes
alternate; medians of ``--runs``.

Target (issue 21): the total peak at 60,000 rows within 1.15x of that at 6,000.

    python benchmarks/latent_dataset_memory.py              # 6,000 and 60,000 rows, 3 runs
    python benchmarks/latent_dataset_memory.py --sizes 600 6000 --runs 1 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")
LATENT_DIM = 16


def write_store(path: Path, n: int) -> None:
    """A synthetic store of ``n`` rows, written as encode writes one."""
    from vaekit.store import LatentStoreWriter

    rng = np.random.default_rng(0)
    writer = LatentStoreWriter(
        path, n, LATENT_DIM, class_names=[str(c) for c in range(10)], attrs={"model_config": {}}
    )
    with writer:
        for lo in range(0, n, 4096):
            m = min(4096, n - lo)
            writer.append(
                rng.normal(size=(m, LATENT_DIM)).astype(np.float32),
                rng.normal(-2, 0.5, size=(m, LATENT_DIM)).astype(np.float32),
                labels=rng.integers(0, 10, m),
                ids=np.arange(lo, lo + m).astype(str),
            )
        writer.finish()


def vm_hwm_kib(pid: int | str = "self") -> int:
    """The RSS high-water mark of process ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(path: str, epochs: int) -> dict[str, float]:
    """In this (fresh) process: iterate the loader, check coverage, report peaks."""
    import multiprocessing

    import torch
    from torch.utils.data import DataLoader

    from vaekit.latent_dataset import LatentDataset

    torch.set_num_threads(1)
    data = LatentDataset(path, draw=True, standardize=True, seed=0)
    loader = DataLoader(data, batch_size=256, shuffle=True, num_workers=2)
    workers: dict[int, int] = {}  # this epoch's workers (the loader starts new ones each epoch)
    peak_workers = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        data.set_epoch(epoch)
        seen = np.zeros(len(data), dtype=np.int32)
        workers.clear()
        for batch in loader:
            np.add.at(seen, batch["index"].numpy(), 1)
            for child in multiprocessing.active_children():  # the loader's workers
                workers[child.pid] = max(workers.get(child.pid, 0), vm_hwm_kib(child.pid))
        if not (seen == 1).all():
            raise SystemExit(f"epoch {epoch}: {int((seen != 1).sum())} rows not seen exactly once")
        peak_workers = max(peak_workers, sum(workers.values()))
    seconds = time.perf_counter() - start
    main = vm_hwm_kib()
    return {
        "rows": len(data),
        "main_mib": main / 1024,
        "workers_mib": peak_workers / 1024,
        "worker_count": len(workers),
        "total_mib": (main + peak_workers) / 1024,
        "rows_per_s": len(data) * epochs / seconds,
    }


def hash_cost(repeats: int = 3) -> str:
    """Seconds to hash every Fashion-MNIST training image (vaekit.uptodate.data_sha256)."""
    from vaekit.data import load_dataset
    from vaekit.uptodate import data_sha256

    if not FASHION.is_dir():
        return "Fashion-MNIST not installed: hash cost not measured"
    data = load_dataset(FASHION).select_split("train")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        data_sha256(data)
        times.append(time.perf_counter() - start)
    mib = data.images.nbytes / 2**20
    return (
        f"data_sha256 of {len(data):,} Fashion-MNIST images ({mib:.1f} MiB): "
        f"median {statistics.median(times):.3f} s of {repeats}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[6000, 60000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # PATH EPOCHS
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: Path(tmp) / f"latents_{n}.h5" for n in args.sizes}
        for n, path in paths.items():
            write_store(path, n)
        results: dict[int, list[dict[str, float]]] = {n: [] for n in args.sizes}
        for _ in range(args.runs):
            for n, path in paths.items():  # sizes alternate
                out = subprocess.run(
                    [sys.executable, __file__, "--measure", str(path), str(args.epochs)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"LatentDataset(draw=True, standardize=True), DataLoader(batch_size=256, "
          f"num_workers=2), {args.epochs} epochs, every row once per epoch: checked")  # fmt: skip
    totals = {}
    for n, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        totals[n] = med["total_mib"]
        print(
            f"{n:>7,} rows: peak RSS main {med['main_mib']:.1f} MiB + "
            f"{int(med['worker_count'])} workers {med['workers_mib']:.1f} MiB = "
            f"{med['total_mib']:.1f} MiB; {med['rows_per_s']:,.0f} rows/s "
            f"(medians of {len(runs)})"
        )
    small, large = args.sizes
    print(f"ratio {large:,} / {small:,}: {totals[large] / totals[small]:.3f} (target <= 1.15)")
    print(hash_cost())


if __name__ == "__main__":
    main()
