"""How much of a prior share is the judge's reading: every run's draws, read by every
run's judge.

    python benchmarks/judge_agreement.py runs/f0 runs/f1 runs/f2 runs/f3 [--samples 2000]
        [--seed 0] [--attributes Eyeglasses Smiling] [--judge-steps N] [--split test]
        [--threads 2]

The runs are trainings on the same data (other seeds or settings). Each run's judge is
vaekit's (trained on that run's own training split on first use, as ``vaekit evaluate``
does, and saved in the run). Each run draws ``--samples`` images as ``vaekit sample
--prior`` does (its fitted prior, ``--seed``: the draws ``vaekit evaluate`` judges), and
every judge reads the same images. Printed per run: the share of its draws each judge
gives each named attribute (or, for class labels, the total variation of the judged
class shares from the data's), and the spread over the judges.

Judges trained on the same kind of images agree on clear images and differ on the
ambiguous ones a VAE draws (a faint smudge where glasses would be), so the spread over
judges is how far a share measured by one judge can move with the judge alone. Not a
unit test; figures in docs/benchmarks.md ("Generation").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vaekit.dataset import ImageDataset
from vaekit.generate import sample
from vaekit.genmetrics import total_variation
from vaekit.judge import Judge, judge_for
from vaekit.runs import open_run


def data_shares(train: ImageDataset, judge: Judge, wanted: list[int]) -> np.ndarray:
    """The training split's true attribute shares (``wanted`` ones) or class shares."""
    if judge.info.attribute_names and train.attributes is not None:
        return train.attributes.astype(float).mean(0)[wanted]
    labels = train.labels[train.labels >= 0]
    counts = np.bincount(labels, minlength=len(judge.info.class_names or [])).astype(float)
    return counts / counts.sum()


def read(judge: Judge, images: np.ndarray, wanted: list[int], data: np.ndarray) -> list[float]:
    """What ``judge`` reads on ``images``: the wanted attributes' shares, or the total
    variation of its class shares from ``data``'s."""
    out = judge.predict(images)
    if out.attributes is not None and wanted:
        return [float(v) for v in out.attributes.mean(0)[wanted]]
    got = np.bincount(out.labels, minlength=len(data)) / len(out.labels)
    return [total_variation(got, data)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attributes", nargs="*", default=["Eyeglasses", "Smiling"])
    parser.add_argument("--judge-steps", type=int, default=None, help="default: vaekit's")
    parser.add_argument("--split", default="test", help="the judges' held-out images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if len(args.runs) < 2:
        parser.error("give two runs or more: one judge cannot disagree with itself")

    options = {} if args.judge_steps is None else {"steps": args.judge_steps}
    loaded = [open_run(run) for run in args.runs]
    judges, data = [], []
    for run in loaded:
        everything = run.load_data()
        judge, trained = judge_for(run.path, everything, args.split, **options)
        judges.append(judge)
        data.append(everything.select_split("train"))
        print(f"judge of {run.path}: {'trained' if trained else 'reused'}", flush=True)
    names = judges[0].info.attribute_names or []
    if any((j.info.attribute_names or []) != names for j in judges):
        parser.error("the runs' judges read other attributes: give runs on the same data")
    unknown = [a for a in args.attributes if a not in names]
    if names and unknown:
        parser.error(f"--attributes: the data has no {', '.join(unknown)} (it has {names})")
    wanted = [names.index(a) for a in args.attributes if a in names]
    if names and not wanted:
        parser.error("--attributes: name at least one of the data's attributes")
    labels = [names[i] for i in wanted] or ["class shares TV"]
    judge_names = [run.path.name for run in loaded]
    print(f"columns: {', '.join(labels)} as read by the judges of {', '.join(judge_names)}")
    for index, (run, train) in enumerate(zip(loaded, data, strict=True)):
        truth = data_shares(train, judges[0], wanted)
        images = sample(run, args.samples, seed=args.seed).images
        readings = np.array([read(judge, images, wanted, truth) for judge in judges])
        said = []
        for k, label in enumerate(labels):
            column = readings[:, k]
            values = " ".join(f"{v:.3f}" for v in column)
            spread = f"spread {column.max() - column.min():.3f}"
            own = f"own judge {column[index]:.3f}"
            known = "" if label == "class shares TV" else f" (data {truth[k]:.3f})"
            said.append(f"{label}{known}: {values}; {own}, {spread}")
        print(f"{run.path.name}: " + " | ".join(said), flush=True)


if __name__ == "__main__":
    main()
