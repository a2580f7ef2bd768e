"""Does the VampPrior beat the standard prior on Fashion-MNIST? (issue 13)

    python benchmarks/zoo_vampprior.py [--data /usr/share/datasets/fashion-mnist]
        [--train 20000] [--test 1000] [--epochs 5] [--latent-dim 40]
        [--pseudo-inputs 500] [-k 1000] [--work bench-vamp]

Trains two VAEs with vaekit's own ``train`` -- the same mlp encoder and decoder,
latent size, likelihood, epochs, seed and data -- one with ``--prior normal``, one
with ``--model-kind vamp``, then computes each model's IWAE bound with K
importance samples on the same test images (the first ``--test`` of Fashion-MNIST's
t10k split), batched over K. ``--train`` takes the first images of the training
split (10% of them held out for validation) so it fits a CPU budget. Prints a table
and a JSON line. Slow; not a unit test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from zoo_common import iwae_bound, neg_elbo  # noqa: E402


def subset_npz(data: Path, n_train: int, n_test: int, out: Path) -> Path:
    """The first ``n_train`` training and ``n_test`` test images as one .npz with splits."""
    from vaekit.sources.idx import load_idx

    full = load_idx(data)
    train = np.flatnonzero(full.split == 0)[:n_train]
    test = np.flatnonzero(full.split == 2)[:n_test]
    index = np.concatenate([train, test])
    np.savez(
        out,
        images=full.images[index],
        labels=full.labels[index],
        class_names=np.array(full.class_names),
        split=full.split[index],
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--test", type=int, default=1_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--latent-dim", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=300)
    ap.add_argument("--pseudo-inputs", type=int, default=500)
    ap.add_argument("--likelihood", default="bernoulli")
    ap.add_argument("-k", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=Path("bench-vamp"))
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on a few shared cores more threads spin against other work",
    )
    args = ap.parse_args()

    from vaekit.config import TrainConfig
    from vaekit.runs import open_run
    from vaekit.train import train

    torch.set_num_threads(args.threads)
    shutil.rmtree(args.work / "runs", ignore_errors=True)  # a fresh pair of runs each time
    args.work.mkdir(parents=True, exist_ok=True)
    data = subset_npz(args.data, args.train, args.test, args.work / "fmnist-subset.npz")
    common = dict(
        data=str(data),
        encoder="mlp",
        decoder="mlp",
        encoder_options={"hidden": args.hidden},
        decoder_options={"hidden": args.hidden},
        likelihood=args.likelihood,
        latent_dim=args.latent_dim,
        epochs=args.epochs,
        runs_dir=str(args.work / "runs"),
        seed=0,
    )
    variants = {
        "normal": dict(kind="vae", prior="normal"),
        "vamp": dict(kind="vamp", kind_options={"pseudo_inputs": args.pseudo_inputs}),
    }
    images = np.load(data)
    x_test = torch.from_numpy(images["images"][images["split"] == 2]).float() / 255
    results, per_image = {}, {}
    for name, settings in variants.items():
        t0 = time.perf_counter()
        train(TrainConfig.build(**common, **settings, name=name), reporter=None)
        train_s = time.perf_counter() - t0
        model = open_run(args.work / "runs" / name).model.eval()
        torch.manual_seed(0)
        t0 = time.perf_counter()
        bounds = torch.cat([iwae_bound(model, xb, k=args.k) for xb in x_test.split(50)])
        elbos = torch.cat([neg_elbo(model, xb) for xb in x_test.split(500)])
        per_image[name] = bounds
        results[name] = {
            "test_iwae_nats": bounds.mean().item(),
            "test_iwae_sem": (bounds.std() / len(bounds) ** 0.5).item(),
            "test_neg_elbo_nats": elbos.mean().item(),
            "train_seconds": round(train_s),
            "iwae_seconds": round(time.perf_counter() - t0),
        }
        print(name, json.dumps(results[name]), flush=True)
    diff = per_image["vamp"] - per_image["normal"]  # paired: the same test images
    gain, gain_sem = diff.mean().item(), (diff.std() / len(diff) ** 0.5).item()
    results["vamp_gain_nats"], results["vamp_gain_sem"] = gain, gain_sem
    print(f"{'prior':8} {'test IWAE (K=' + str(args.k) + ')':>20} {'test -ELBO':>12}")
    for name in variants:
        r = results[name]
        print(
            f"{name:8} {r['test_iwae_nats']:14.2f} ± {r['test_iwae_sem']:.2f} "
            f"{r['test_neg_elbo_nats']:12.2f}"
        )
    print(f"VampPrior gain in the test IWAE bound: {gain:+.2f} ± {gain_sem:.2f} nats (paired)")
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **results}))


if __name__ == "__main__":
    main()
