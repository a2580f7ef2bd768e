"""How much of each face attribute a default VAE's latents hold, and how disentangled they are.

    python benchmarks/latent_scores.py [--n 4000] [--size 32] [--epochs 30]
        [--max-rows 5000] [--threads 1] [--work bench-latent-scores] [--seed 0]

Writes ``--n`` synthetic CelebA-format faces (``datasets/synthetic_faces.py``, seed 0),
trains vaekit's default model on them with vaekit's own ``train`` (``conv`` encoder and
decoder, 16 latents, gaussian likelihood, warm-up KL; ``--epochs`` epochs, no fitted
prior), encodes every image and scores the store with
``vaekit.latent_scores.score_latents`` (the library behind the CLI's scores): per
attribute a linear probe's held-out accuracy beside the majority baseline, and MIG,
DCI and SAP (settings in docs/evaluation.md). For reference, the same scores of the
images' first 16 principal components (PCA of the pixels, fitted on the same images)
written as a store. Prints both results' tables and a JSON line. Not a unit test.
"""

from __future__ import annotations

import argparse
import json
import runpy
import time
from pathlib import Path

import numpy as np
import torch

from vaekit.config import TrainConfig
from vaekit.data import load_dataset
from vaekit.encode import encode_dataset
from vaekit.latent_scores import format_scores, score_latents
from vaekit.store import LatentStoreWriter
from vaekit.train import train

ROOT = Path(__file__).resolve().parents[1]


def pca_store(faces: Path, path: Path, dim: int) -> None:
    """A latent store holding each image's first ``dim`` principal components (as mu)."""
    from sklearn.decomposition import PCA

    data = load_dataset(faces)
    pixels = data.images.reshape(len(data.images), -1).astype(np.float32) / 255
    components = PCA(n_components=dim, random_state=0).fit_transform(pixels)
    with LatentStoreWriter(
        path, len(pixels), dim, attribute_names=data.attribute_names, compression="none"
    ) as writer:
        writer.append(
            components.astype(np.float32),
            np.zeros_like(components, dtype=np.float32),
            attributes=data.attributes,
            ids=data.ids,
        )
        writer.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("bench-latent-scores"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    faces = args.work / f"faces-{args.n}-{args.size}"
    if not faces.exists():
        generate = runpy.run_path(str(ROOT / "datasets" / "synthetic_faces.py"))["generate"]
        generate(faces, n=args.n, size=args.size, seed=0)

    t0 = time.perf_counter()
    config = TrainConfig.build(
        data=str(faces),
        epochs=args.epochs,
        runs_dir=str(args.work / "runs"),
        name=f"faces-default-e{args.epochs}-s{args.seed}",
        accelerator="cpu",
        seed=args.seed,
        figures=False,
        fit_prior=0,
    )
    run = Path(config.runs_dir) / config.name
    if not (run / "model.safetensors").is_file():
        train(config)
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = args.work / f"latents-e{args.epochs}-s{args.seed}.h5"
    if not store.is_file():
        encode_dataset(None, store, model_dir=run, accelerator="cpu")
    seconds["encode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    vae = score_latents(store, max_rows=args.max_rows, seed=args.seed)
    seconds["score_vae"] = time.perf_counter() - t0

    reference = args.work / f"pca-{vae.latent_dim}.h5"
    if not reference.is_file():
        pca_store(faces, reference, vae.latent_dim)
    t0 = time.perf_counter()
    pca = score_latents(reference, max_rows=args.max_rows, seed=args.seed)
    seconds["score_pca"] = time.perf_counter() - t0

    print(f"VAE: {run} ({args.epochs} epochs, train {seconds['train']:.0f} s)")
    print(format_scores(vae))
    print(f"reference: the first {vae.latent_dim} principal components of the pixels")
    print(format_scores(pca))

    def summary(result):
        return {
            "mig": result.mig,
            "dci_disentanglement": result.dci_disentanglement,
            "dci_completeness": result.dci_completeness,
            "dci_informativeness": result.dci_informativeness,
            "sap": result.sap,
            "probe": {f.name: f.probe_accuracy for f in result.factors},
            "majority": {f.name: f.majority_baseline for f in result.factors},
        }

    print(
        json.dumps(
            {
                "n": args.n,
                "size": args.size,
                "epochs": args.epochs,
                "seed": args.seed,
                "rows_scored": vae.rows,
                "vae": summary(vae),
                "pca": summary(pca),
                "seconds": {k: round(v, 1) for k, v in seconds.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
