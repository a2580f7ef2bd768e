"""The 8-bit likelihood and the adversarial kind on synthetic CelebA-format faces (issue 13).

    python benchmarks/zoo_faces.py [--n 10000] [--size 32] [--epochs 16] [--mixtures 2]
        [--latent-dim 32] [--width 32] [--decoder upsample] [--batch-size 32]
        [--weight 0.05] [--start 900] [--prior-samples] [-k 100]
        [--work bench-faces] [--img docs/img] [--only vae|adversarial] [--reuse]

Writes ``--n`` synthetic RGB faces (``datasets/synthetic_faces.py``; 80/10/10
train/val/test), then trains two VAEs with vaekit's own ``train`` and the same encoder,
decoder, latent size, epochs, seed and likelihood (``dmol``, the discretised logistic
mixture): the plain ``vae`` and the ``adversarial`` kind (its term on reconstructions
only unless ``--prior-samples``).

For each model, on the test split:

- bits per dimension as ``vaekit evaluate`` reports them (``vaekit.evaluate.evaluate``,
  the function behind the command: -ELBO with ``--iwae-k 0``, and the IWAE bound with
  ``-k``), and the same -ELBO recomputed independently: the same posterior draws
  (evaluate's seeded generator, batch by batch), then a float64 sum over every pixel of
  -log P(pixel) from PixelCNN++'s formula written out (CDF differences) plus the
  closed-form KL to N(0, I) in float64. The two must agree;
- sharpness of ``--samples`` decoded prior draws (mean images) and of as many mean
  reconstructions of test images, against the test images themselves: the variance of
  the Laplacian, the share of spectral energy above 0.25 cycles/pixel, and the share on
  the Nyquist lines (a checkerboard's frequency).

Saves ``zoo-faces-samples.png`` (data | vae | adversarial prior samples),
``zoo-faces-recon.png`` (data | vae | adversarial reconstructions of the same test
images) and ``zoo-faces-dmol-draws.png`` (pixel draws) under ``--img``. Prints a table and
a JSON line. Slow; not a unit test.
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
from zoo_common import (  # noqa: E402
    high_frequency_share,
    laplacian_variance,
    laplacian_variances,
    nyquist_share,
)

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
def independent_neg_elbo(
    model, x: torch.Tensor, mixtures: int, batch_size: int = 256, seed: int = 0
) -> np.ndarray:
    """(N,) -ELBO in nats at the posterior draws ``vaekit evaluate --iwae-k 0`` makes (its
    generator seeded with ``seed``, one draw per image, batch by batch), with the
    reconstruction term as a float64 per-pixel sum and the KL to N(0, I) in closed form."""
    from vaekit.posterior import DiagonalGaussian

    generator = torch.Generator().manual_seed(seed)
    shift = model.likelihood.init_log_scale
    out = []
    for xb in x.split(batch_size):
        q = model.posterior(xb)
        q = DiagonalGaussian(q.mean.float(), q.logvar.float())
        z = q.rsample(1, generator=generator)[0]
        nll = per_pixel_neg_log_prob(xb.numpy(), model.decode(z).numpy(), mixtures, shift)
        mu, logvar = q.mean.double().numpy(), q.logvar.double().numpy()
        kl = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(1)
        out.append(nll + kl)
    return np.concatenate(out)


def weights_stamp(run: Path) -> str:
    """Size and modification time of the run's weights: a cached figure is for these."""
    info = (run / "model.safetensors").stat()
    return f"{info.st_size}-{info.st_mtime_ns}"


def bits_figures(run: Path, faces: Path, model, x_test: torch.Tensor, k: int, mixtures: int):
    """Test bits/dim as ``vaekit evaluate`` reports them, and the independent per-pixel sum."""
    from vaekit.evaluate import evaluate

    to_bits = 1 / (x_test[0].numel() * math.log(2))
    reported = evaluate(run, faces, split="test", iwae_k=0, seed=0)  # -ELBO, one draw
    bound = evaluate(run, faces, split="test", iwae_k=k, seed=0)
    ours = independent_neg_elbo(model, x_test, mixtures, seed=0)
    return {
        "evaluate_bpd_neg_elbo": reported.bits_per_dim,
        "per_pixel_sum_bpd_neg_elbo": float(ours.mean() * to_bits),
        "evaluate_neg_elbo_nats": reported.neg_elbo,
        "per_pixel_sum_neg_elbo_nats": float(ours.mean()),
        "evaluate_kl_nats": reported.kl,
        f"evaluate_bpd_iwae_k{k}": bound.bits_per_dim,
        "active_units": reported.active_units,
        "test_images": reported.n,
    }


def sharpness(images: np.ndarray) -> dict[str, float]:
    return {
        "laplacian_var": laplacian_variance(images),
        "laplacian_var_median": float(np.median(laplacian_variances(images))),
        "high_freq_share": high_frequency_share(images),
        "nyquist_share": nyquist_share(images),
    }


def grid(images: np.ndarray, size: int) -> np.ndarray:
    """64 uint8 images (64, 3, s, s) -> one 8x8 grid (3, 8s, 8s)."""
    block = images[:64].reshape(8, 8, 3, size, size)
    return block.transpose(2, 0, 3, 1, 4).reshape(3, 8 * size, 8 * size)


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    spacer = np.full((3, panels[0].shape[1], 8), 255, np.uint8)  # white between panels
    return np.concatenate(sum(([p, spacer] for p in panels), [])[:-1], axis=2)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--mixtures", type=int, default=2)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--encoder", default="conv")
    ap.add_argument("--decoder", default="upsample", help="conv, or the zoo's upsample")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--weight", type=float, default=0.05)
    ap.add_argument("--start", type=int, default=900)
    ap.add_argument(
        "--prior-samples",
        action="store_true",
        help="also show the discriminator decoded prior draws (default: reconstructions only)",
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--work", type=Path, default=Path("bench-faces"))
    ap.add_argument("--img", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--only", choices=["vae", "adversarial"], default=None)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate runs already trained under --work instead of training them again "
        "(e.g. after training each with --only in parallel); their bits/dim figures are "
        "reused from RUN/zoo_faces_bits.json when written for the same weights and -k",
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
        encoder=args.encoder,
        decoder=args.decoder,
        encoder_options={"width": args.width},
        decoder_options={"width": args.width},
        likelihood="dmol",
        likelihood_options={"mixtures": args.mixtures},
        latent_dim=args.latent_dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        accelerator="cpu",
        runs_dir=str(args.work / "runs"),
        seed=0,
    )
    adversarial = {"weight": args.weight, "start": args.start}
    adversarial["prior_samples"] = args.prior_samples
    variants = {
        "vae": dict(kind="vae"),
        "adversarial": dict(kind="adversarial", kind_options=adversarial),
    }
    if args.only:
        variants = {args.only: variants[args.only]}
    data = load_dataset(faces)
    test = data.images[data.split == 2]
    x_test = torch.from_numpy(test).float() / 255
    shown = x_test[: args.samples]
    results: dict[str, dict] = {"data": sharpness(shown.numpy())}
    samples = {"data": to_uint8(shown[:64])}
    recons = {"data": to_uint8(shown[:64])}
    draws = {}
    for name, settings in variants.items():
        run = args.work / "runs" / name
        if not (args.reuse and (run / "model.safetensors").exists()):
            shutil.rmtree(run, ignore_errors=True)
            train(TrainConfig.build(**common, **settings, name=name), reporter=None)
        epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        model = open_run(run).model.eval()
        cache = run / "zoo_faces_bits.json"  # the slow part, kept beside the run for --reuse
        cached = json.loads(cache.read_text()) if args.reuse and cache.exists() else {}
        if cached.get("k") == args.k and cached.get("weights") == weights_stamp(run):
            bits = cached["bits"]
        else:
            bits = bits_figures(run, faces, model, x_test, args.k, args.mixtures)
            stamp = {"k": args.k, "weights": weights_stamp(run), "bits": bits}
            cache.write_text(json.dumps(stamp) + "\n")
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            z = model.prior.sample(args.samples, generator=generator)
            params = model.decode(z)
            means = model.likelihood.mean(params)
            torch.manual_seed(0)
            draws[name] = to_uint8(model.likelihood.sample(params[:32]))
            recon = model.likelihood.mean(model.decode(model.posterior(shown).mean))
        results[name] = {
            **bits,
            "samples": sharpness(means.numpy()),
            "reconstructions": sharpness(recon.numpy()),
            "train_seconds": round(sum(e["epoch_seconds"] for e in epochs)),
            "steps": epochs[-1]["step"],
        }
        samples[name], recons[name] = to_uint8(means[:64]), to_uint8(recon[:64])
        print(name, json.dumps(results[name]), flush=True)

    args.img.mkdir(parents=True, exist_ok=True)
    for what, panels in (("samples", samples), ("recon", recons)):
        images = side_by_side([grid(p, args.size) for p in panels.values()])
        save_grid(images, args.img / f"zoo-faces-{what}.png", ncol=1, scale=1)
    pair = np.concatenate([draws[k] for k in draws])
    save_grid(pair, args.img / "zoo-faces-dmol-draws.png", ncol=16, scale=1)

    print(
        f"{'model':12} {'evaluate bpd':>12} {'per-pixel bpd':>13} {'IWAE bpd':>9} "
        f"{'Lap. var':>9} {'HF share':>9} {'Nyquist':>8}"
    )
    for name, r in results.items():
        s = r if name == "data" else r["samples"]
        figures = f"{s['laplacian_var']:9.5f} {s['high_freq_share']:9.4f} {s['nyquist_share']:8.5f}"
        if name == "data":
            print(f"{name:12} {'':>12} {'':>13} {'':>9} {figures}")
            continue
        print(
            f"{name:12} {r['evaluate_bpd_neg_elbo']:12.5f} {r['per_pixel_sum_bpd_neg_elbo']:13.5f} "
            f"{r[f'evaluate_bpd_iwae_k{args.k}']:9.4f} {figures}"
        )
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **results}))


if __name__ == "__main__":
    main()
