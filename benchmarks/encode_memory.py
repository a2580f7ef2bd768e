"""Peak memory of ``vaekit encode --split train`` of Fashion-MNIST against a hand-written loop.

Both arms encode the same rows (the training images less the validation ones vaekit
holds out: the run's ``--val-fraction`` of them, chosen by ``numpy``'s permutation
seeded with the run's seed) with the same model's encoder, in batches of the same
size, and write mu and logvar (gzip) and the labels to an HDF5 file:

- vaekit: the real command, ``python -m vaekit encode DATA --split train``;
- hand-written: what a competent user writes without vaekit -- torch imported,
  the model loaded with ``vaekit.runs.load_model``, the training IDX files read the
  usual way (``np.frombuffer(gzip.open(path).read(), offset=16)``), then
  ``model.posterior`` per batch under ``inference_mode`` into preallocated h5py
  datasets.

Each measurement is its own subprocess, started by this script (which imports
neither torch nor vaekit, so the child's high-water mark starts from nothing
larger): its peak RSS is the ``ru_maxrss`` that ``os.wait4`` reports for it. Arms
alternate; the medians of ``--runs`` runs each are printed, and their ratio.
Target (issue 22): vaekit / hand-written <= 1.05.

Children run in a temporary folder, so the vaekit they import is the one on
``PYTHONPATH`` (or installed), not the current folder's: ``PYTHONPATH=/other/tree``
measures another tree with this script.

The model is made by the script: ``vaekit train`` for one epoch on the first
``--train-images`` training images (an .npz), mlp encoder, 16 latents.

    python benchmarks/encode_memory.py                         # Fashion-MNIST, 3 runs each
    python benchmarks/encode_memory.py --data DIR --runs 1     # other IDX files
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_file(data: Path, kind: str) -> Path:
    """``train-images`` / ``train-labels`` IDX file in ``data`` (gzipped or not)."""
    rank = 3 if kind == "images" else 1
    for name in (f"train-{kind}-idx{rank}-ubyte.gz", f"train-{kind}-idx{rank}-ubyte"):
        if (data / name).is_file():
            return data / name
    raise SystemExit(f"no train-{kind} IDX file in {data}")


def read_idx(path: Path, offset: int) -> np.ndarray:
    """The usual way: the whole (decompressed) file, the data after the header."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return np.frombuffer(fh.read(), dtype=np.uint8, offset=offset)


def train_rows(n: int, val_fraction: float, seed: int) -> np.ndarray:
    """The training rows less the validation ones (vaekit's documented rule)."""
    keep = np.ones(n, dtype=bool)
    keep[np.random.default_rng(seed).permutation(n)[: int(round(val_fraction * n))]] = False
    return np.flatnonzero(keep)


def hand_written(data: Path, run: Path, out: Path, batch_size: int) -> None:
    """The loop a user writes by hand (run in its own process)."""
    import json

    import h5py
    import torch

    from vaekit.runs import load_model

    model = load_model(run).eval()
    train = json.loads((run / "config.json").read_text())["train"]
    images = read_idx(idx_file(data, "images"), 16).reshape(-1, 1, 28, 28)
    labels = read_idx(idx_file(data, "labels"), 8)
    rows = train_rows(len(images), train["val_fraction"], train["seed"])
    n, d = len(rows), model.latent_dim
    with h5py.File(out, "w") as f, torch.inference_mode():
        mu = f.create_dataset("mu", (n, d), "f4", compression="gzip")
        logvar = f.create_dataset("logvar", (n, d), "f4", compression="gzip")
        f.create_dataset("labels", data=labels[rows].astype(np.int64))
        for i in range(0, n, batch_size):
            x = torch.from_numpy(images[rows[i : i + batch_size]]).float().div_(255.0)
            q = model.posterior(x)
            mu[i : i + len(x)] = q.mean.numpy()
            logvar[i : i + len(x)] = q.logvar.numpy()


def peak_mib(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run ``command`` in ``cwd``; its peak RSS (MiB) from ``os.wait4``. It must succeed."""
    child = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    out, err = child.stdout.read().decode(), child.stderr.read().decode()
    child.stdout.close()
    child.stderr.close()
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{out}\n{err}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def make_run(root: Path, data: Path, n: int, env: dict[str, str]) -> Path:
    """A one-epoch mlp run on the first ``n`` training images (an .npz)."""
    images = read_idx(idx_file(data, "images"), 16)[: n * 784].reshape(-1, 1, 28, 28)
    labels = read_idx(idx_file(data, "labels"), 8)[: len(images)]
    np.savez(root / "subset.npz", images=images, labels=labels)
    command = [sys.executable, "-m", "vaekit", "train", str(root / "subset.npz"), "--epochs", "1"]
    command += ["--encoder", "mlp", "--accelerator", "cpu", "--no-figures", "--fit-prior", "0"]
    command += ["--runs-dir", str(root / "runs"), "--name", "bench"]
    subprocess.run(command, env=env, cwd=root, check=True, capture_output=True)
    return root / "runs" / "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FASHION, help="folder of IDX files")
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per arm")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-images", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each arm")
    parser.add_argument("--hand", nargs=3, metavar=("RUN", "OUT", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand:
        run, out, data = (Path(p) for p in args.hand)
        hand_written(data, run, out, args.batch_size)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, args.data, args.train_images, env)
        vaekit = [sys.executable, "-m", "vaekit", "encode", str(args.data), "-m", str(run)]
        vaekit += ["-o", str(root / "vaekit.h5"), "--split", "train", "--overwrite"]
        vaekit += ["--batch-size", str(args.batch_size)]
        hand = [sys.executable, str(Path(__file__).resolve()), "--batch-size", str(args.batch_size)]
        hand += ["--hand", str(run), str(root / "hand.h5"), str(args.data)]
        peaks: dict[str, list[float]] = {"vaekit": [], "hand": []}
        for i in range(args.runs):  # alternating: other load and allocator noise hit both
            peaks["vaekit"].append(peak_mib(vaekit, env, root))
            peaks["hand"].append(peak_mib(hand, env, root))
            print(
                f"run {i + 1}: vaekit {peaks['vaekit'][-1]:.1f} MiB, "
                f"hand-written {peaks['hand'][-1]:.1f} MiB"
            )
        import h5py

        with h5py.File(root / "vaekit.h5") as a, h5py.File(root / "hand.h5") as b:
            same = np.allclose(a["mu"][:], b["mu"][:], atol=1e-5)
            rows = len(a["mu"])
        ours, theirs = statistics.median(peaks["vaekit"]), statistics.median(peaks["hand"])
        print(
            f"data: {args.data}, --split train ({rows:,} rows; same mu in both: {same}), "
            f"mlp 16 latents, batch {args.batch_size}, {args.threads} threads, gzip"
        )
        print(
            f"peak RSS (median of {args.runs}): vaekit encode {ours:.1f} MiB, "
            f"hand-written {theirs:.1f} MiB"
        )
        print(f"ratio vaekit / hand-written: {ours / theirs:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
