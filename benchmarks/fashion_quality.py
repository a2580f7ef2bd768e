"""Quality on Fashion-MNIST: test −ELBO and IWAE bound after N epochs, mlp vs conv vs resnet.

Data: Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``;
60,000 training images, 10% held out for validation, and the 10,000 test images).
Each encoder family is trained with vaekit's defaults (gaussian likelihood σ = 0.1,
16 latents, warm-up KL schedule, batch 128, Adam 1e-3) for ``--epochs`` epochs, then
``vaekit.evaluate`` measures on the test split:

- every test image: −ELBO, reconstruction NLL, KL, −IWAE with K = ``--k`` and the
  active units;
- a seeded subset of ``--ladder-images`` test images: the IWAE ladder K = 1, 10, 100,
  1,000 (nested draws) beside the −ELBO of the same images -- the estimate of
  −log p(x) must be finite, never above the −ELBO (beyond Monte Carlo noise at
  K = 1) and not rise with K.

The numbers are nats per image of a Gaussian density on pixel values in [0, 1]:
they compare across vaekit runs and with other code that uses the same likelihood,
not with bits/dim of discrete likelihoods.

    python benchmarks/fashion_quality.py --epochs 3
    python benchmarks/fashion_quality.py --encoders mlp --epochs 10 --k 1000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from vaekit.config import TrainConfig
from vaekit.evaluate import Evaluation, evaluate
from vaekit.train import train

FASHION = Path("/usr/share/datasets/fashion-mnist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(FASHION))
    parser.add_argument("--encoders", nargs="+", default=["mlp", "conv", "resnet"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--k", type=int, default=100, help="IWAE samples on the whole test split")
    parser.add_argument("--ladder-images", type=int, default=1000)
    parser.add_argument("--runs-dir", default="bench-runs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data} not found: apt-get install dataset-fashion-mnist")
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(torch threads {args.threads}), torch {torch.__version__}"
    )
    results = []
    for encoder in args.encoders:
        name = f"fashion-{encoder}-{args.epochs}ep"
        run_dir = Path(args.runs_dir) / name
        start = time.perf_counter()
        if not (run_dir / "model.safetensors").is_file():
            config = TrainConfig.build(
                data=args.data,
                encoder=encoder,
                epochs=args.epochs,
                accelerator="cpu",
                runs_dir=args.runs_dir,
                name=name,
            )
            train(config)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        full = evaluate(run_dir, split="test", iwae_k=args.k)
        eval_s = time.perf_counter() - start
        start = time.perf_counter()
        ladder = evaluate(run_dir, split="test", iwae_k=1000, max_images=args.ladder_images)
        ladder_s = time.perf_counter() - start
        values = [ladder.iwae[k] for k in sorted(ladder.iwae)]
        checks = {
            "finite": all(math.isfinite(v) for v in values),
            "below_elbo": all(
                v <= ladder.neg_elbo + 3 * ladder.neg_elbo_se / math.sqrt(10) for v in values
            ),
            "falls_with_k": all(b <= a for a, b in zip(values, values[1:], strict=False)),
        }
        agree = units_agree(full)
        checks["active_units_agree_with_kl"] = agree["agree"]
        row = {
            "encoder": encoder,
            "epochs": args.epochs,
            "train_seconds": round(train_s, 1),
            "test_images": full.n,
            "neg_elbo": full.neg_elbo,
            "recon_nll": full.recon_nll,
            "kl": full.kl,
            f"iwae_{args.k}": full.iwae[args.k],
            "active_units": full.active_units,
            "latent_dim": len(full.mean_variance),
            "eval_seconds": round(eval_s, 1),
            "ladder_images": ladder.n,
            "ladder_neg_elbo": ladder.neg_elbo,
            "ladder": {str(k): v for k, v in ladder.iwae.items()},
            "ladder_seconds": round(ladder_s, 1),
            "kl_per_dim": full.kl_per_dim,
            "mean_variance": full.mean_variance,
            "units": agree,
            "checks": checks,
        }
        results.append(row)
        print(
            f"{encoder:>6}, {args.epochs} epochs ({train_s:.0f} s): test −ELBO "
            f"{full.neg_elbo:.1f} (recon {full.recon_nll:.1f}, KL {full.kl:.1f}), "
            f"−IWAE_{args.k} {full.iwae[args.k]:.1f} nats on {full.n:,} images "
            f"({eval_s:.0f} s); active units {full.active_units}/{len(full.mean_variance)}"
        )
        shown = ", ".join(f"K={k}: {v:.1f}" for k, v in sorted(ladder.iwae.items()))
        print(
            f"        ladder on {ladder.n:,} test images ({ladder_s:.0f} s): −ELBO "
            f"{ladder.neg_elbo:.1f}; {shown}"
        )
        print(
            f"        KL of the active units >= {agree['min_kl_active']:.3f} nats, of the "
            f"inactive <= {agree['max_kl_inactive']:.3f}; checks {checks}"
        )
        if args.json:  # after every encoder: a long run leaves what it measured
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def units_agree(result: Evaluation, gap: float = 0.05) -> dict:
    """Active units (Cov_x E_q[z_d] > 0.01) against the KL per dimension: they agree when
    every active unit carries more than ``gap`` nats and every inactive one less."""
    kl = result.kl_per_dim or []
    active = set(result.active)
    on = [kl[d] for d in active] if kl else []
    off = [kl[d] for d in range(len(kl)) if d not in active]
    low, high = min(on, default=math.inf), max(off, default=0.0)
    return {"min_kl_active": low, "max_kl_inactive": high, "agree": low > gap > high}


if __name__ == "__main__":
    main()
