"""The 8-bit likelihood and the adversarial kind on synthetic CelebA-format faces (issue 13).

    python benchmarks/zoo_faces.py [--n 3000] [--size 32] [--epochs 10] [--mixtures 5]
        [--latent-dim 32] [--width 16] [--batch-size 32] [--weight 0.1] [--start 250]
        [-k 100] [--work bench-faces]
        [--img docs/img]

Writes ``--n`` synthetic RGB faces (``datasets/synthetic_faces.py``; 80/10/10
train/val/test), then trains two VAEs with vaekit's own ``train`` and the same conv
encoder and decoder, latent size, epochs, seed and likelihood (``dmol``, the
discretised logistic mixture): the plain ``vae`` and the ``adversarial`` kind.

For each model, on the test split:

- bits per dimension from the evaluation path (``-ELBO / (D ln 2)`` through the
  likelihood's ``log_prob``, and the IWAE bound with ``-k`` samples), and the same
  -ELBO recomputed as a float64 sum over every pixel of -log P(pixel) from the
  PixelCNN++ formula written out here (CDF differences), at the same z: the two
  must agree;
- sharpness of 256 decoded prior draws (mean images) against 256 test images: the
  variance of the Laplacian and the share of spectral energy above 0.25 cycles/pixel.

Saves ``zoo-faces-samples.png`` (data | vae | adversarial) and
``zoo-faces-dmol-draws.png`` under ``--img``. Prints a table and a JSON line. Slow; not
a unit test.
"""

from __future__ import annotations

import argparse
import json
import math
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from zoo_common import high_frequency_share, iwae_bound, laplacian_variance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def per_pixel_neg_log_prob(
    x: np.ndarray, params: np.ndarray, mixtures: int, shift: float
) -> np.ndarray:
    """(B,) -log p(x|z) as a float64 sum over pixels of -log P(pixel), PixelCNN++'s formula
    written out (independent of the likelihood's own stable implementation)."""
    b, ck, h, w = params.shape
    c = ck // (3 * mixtures)
    p = params.reshape(b, c, 3, mixtures, h, w).astype(np.float64)
    logits, means, log_s = p[:, :, 0], np.tanh(p[:, :, 1]), np.maximum(p[:, :, 2] + shift, -7.0)
    weights = np.exp(logits - logits.max(2, keepdims=True))
    weights /= weights.sum(2, keepdims=True)
    k = np.round(x.astype(np.float64) * 255)[:, :, None]
    inv_s = np.exp(-log_s)
    centre = 2 * k / 255 - 1

    def cdf(v: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(v - means) * inv_s))

    upper = np.where(k >= 255, 1.0, cdf(centre + 1 / 255))
    lower = np.where(k <= 0, 0.0, cdf(centre - 1 / 255))
    pixel = (weights * (upper - lower)).sum(2)
    return -np.log(np.maximum(pixel, 1e-300)).reshape(b, -1).sum(1)


@torch.no_grad()
def bits(model, x: torch.Tensor, k: int, mixtures: int) -> dict[str, float]:
    """Test bits/dim three ways: -ELBO via log_prob, the same via the per-pixel sum, IWAE."""
    dims = x[0].numel()
    to_bits = 1 / (dims * math.log(2))
    elbo_path, pixel_path, iwae = [], [], []
    for xb in x.split(100):
        torch.manual_seed(1)
        terms = model.elbo(xb)  # the evaluation path: likelihood.log_prob + KL
        elbo_path.append(terms.neg_elbo.double())
        shift = model.likelihood.init_log_scale
        nll = per_pixel_neg_log_prob(xb.numpy(), terms.params.numpy(), mixtures, shift)
        pixel_path.append(torch.from_numpy(nll) + terms.kl.double())
    for xb in x.split(20):
        iwae.append(-iwae_bound(model, xb, k=k, chunk=50).double())
    elbo_path, pixel_path = torch.cat(elbo_path), torch.cat(pixel_path)
    return {
        "neg_elbo_nats": elbo_path.mean().item(),
        "bpd_elbo_log_prob": (elbo_path.mean() * to_bits).item(),
        "bpd_elbo_per_pixel_sum": (pixel_path.mean() * to_bits).item(),
        "max_abs_gap_nats": (elbo_path - pixel_path).abs().max().item(),
        f"bpd_iwae_k{k}": (torch.cat(iwae).mean() * to_bits).item(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--mixtures", type=int, default=5)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--weight", type=float, default=0.1)
    ap.add_argument("--start", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--work", type=Path, default=Path("bench-faces"))
    ap.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--only", choices=["vae", "adversarial"], default=None)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate runs already trained under --work instead of training them again "
        "(e.g. after training each with --only in parallel)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on a few shared cores more threads spin against other work",
    )
    args = ap.parse_args()

    from vaekit.config import TrainConfig
    from vaekit.data import load_dataset
    from vaekit.images import save_grid, to_uint8
    from vaekit.runs import open_run
    from vaekit.train import train

    torch.set_num_threads(args.threads)
    faces = args.work / f"faces-{args.n}-{args.size}"
    if not faces.exists():
        generate = runpy.run_path(str(ROOT / "datasets" / "synthetic_faces.py"))["generate"]
        generate(faces, n=args.n, size=args.size, seed=0)
    common = dict(
        data=str(faces),
        encoder="conv",
        decoder="conv",
        encoder_options={"width": args.width},
        decoder_options={"width": args.width},
        likelihood="dmol",
        likelihood_options={"mixtures": args.mixtures},
        latent_dim=args.latent_dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        runs_dir=str(args.work / "runs"),
        seed=0,
    )
    variants = {
        "vae": dict(kind="vae"),
        "adversarial": dict(
            kind="adversarial", kind_options={"weight": args.weight, "start": args.start}
        ),
    }
    if args.only:
        variants = {args.only: variants[args.only]}
    data = load_dataset(faces)
    test = data.images[data.split == 2]
    x_test = torch.from_numpy(test).float() / 255
    real = x_test[: args.samples].numpy()
    results: dict[str, dict[str, float]] = {
        "data": {
            "laplacian_var": laplacian_variance(real),
            "high_freq_share": high_frequency_share(real),
        }
    }
    panels = {"data": to_uint8(x_test[:64])}
    draws = {}
    for name, settings in variants.items():
        run = args.work / "runs" / name
        if not (args.reuse and (run / "model.safetensors").exists()):
            shutil.rmtree(run, ignore_errors=True)
            train(TrainConfig.build(**common, **settings, name=name), reporter=None)
        epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        train_s = sum(e["epoch_seconds"] for e in epochs)
        model = open_run(run).model.eval()
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            z = model.prior.sample(args.samples, generator=generator)
            params = model.decode(z)
            means = model.likelihood.mean(params)
            torch.manual_seed(0)
            draws[name] = to_uint8(model.likelihood.sample(params[:32]))
        fake = means.numpy()
        results[name] = {
            **bits(model, x_test, args.k, args.mixtures),
            "laplacian_var": laplacian_variance(fake),
            "high_freq_share": high_frequency_share(fake),
            "train_seconds": round(train_s),
            "val_neg_elbo_last_epoch": epochs[-1].get("val_loss"),
        }
        panels[name] = to_uint8(means[:64])
        print(name, json.dumps(results[name]), flush=True)

    args.img.mkdir(parents=True, exist_ok=True)
    row_blocks = [panels[k].reshape(8, 8, 3, args.size, args.size) for k in panels]
    strips = []
    for block in row_blocks:  # 8x8 grid per panel, as one (3, 8s, 8s) image
        strips.append(block.transpose(2, 0, 3, 1, 4).reshape(3, 8 * args.size, 8 * args.size))
    spacer = np.full((3, 8 * args.size, 8), 255, np.uint8)  # white between panels
    side_by_side = np.concatenate(sum(([s, spacer] for s in strips), [])[:-1], axis=2)
    save_grid(side_by_side[None], args.img / "zoo-faces-samples.png", ncol=1, scale=1)
    pair = np.concatenate([draws[k] for k in draws])
    save_grid(pair, args.img / "zoo-faces-dmol-draws.png", ncol=16, scale=1)

    print(
        f"{'model':12} {'-ELBO bpd':>10} {'per-pixel bpd':>14} {'IWAE bpd':>9} "
        f"{'Lap. var':>9} {'HF share':>9}"
    )
    for name, r in results.items():
        if name == "data":
            print(
                f"{name:12} {'':>10} {'':>14} {'':>9} {r['laplacian_var']:9.5f} "
                f"{r['high_freq_share']:9.4f}"
            )
            continue
        print(
            f"{name:12} {r['bpd_elbo_log_prob']:10.4f} {r['bpd_elbo_per_pixel_sum']:14.4f} "
            f"{r[f'bpd_iwae_k{args.k}']:9.4f} {r['laplacian_var']:9.5f} {r['high_freq_share']:9.4f}"
        )
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **results}))


if __name__ == "__main__":
    main()
