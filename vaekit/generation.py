"""What a model generates, measured: the generation section of ``vaekit evaluate`` and
the report.

A judge (:mod:`vaekit.judge`), trained on the run's real labelled training images, looks
at generated images the way a person would ask of them:

- **on-label rate**: of a cluster's draws (``fit-cluster --label smiling``), the share
  the judge says satisfy the cluster's query; of a class-conditional model's draws for
  each class, the share it calls that class. Beside it, the **ceiling**: the judge's
  rate on held-out *real* images that satisfy the query (its recall there);
- **shares**: how prior draws spread over the classes and attributes, against the
  training data's (true labels), with the total variation distance;
- **Fréchet distance and precision/recall** (:mod:`vaekit.genmetrics`) of prior draws, of
  reconstructions and, as a floor, of real training images against held-out real
  images, all in the judge's feature space. This is not FID: FID uses Inception
  features, which cannot be fetched offline and mean little on 28×28 greyscale;
- **copy checks**: how near each set comes to the training images, in the judge's
  features and in the model's latent space (each image encoded again), beside unseen
  real images' distance: a set well below it replays the training set;
- **PSNR and SSIM** of reconstructions (the posterior mean decoded to its mean image).

Without labels no judge can be trained: only PSNR/SSIM are measured, and ``skipped``
says what was left out and why. Draws are seeded: the same run, data and seed give the
same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.errors import UsageError
from vaekit.genmetrics import (
    frechet_distance,
    nearest_distance,
    precision_recall,
    psnr,
    ssim,
    total_variation,
)
from vaekit.judge import JUDGE_STEPS, Judge, JudgeOutput, has_labels, judge_for
from vaekit.run_data import open_run_data

#: Generated images per set (prior, each cluster): the default of ``--samples``.
SAMPLES = 1000
#: Images of each set kept for the report's grids.
GRID_IMAGES = 64
#: What a set is compared with unless it is a cluster's draws (its label's real images).
HELD_OUT_REAL = "held-out real images"

Progress = Callable[[int, int], None]


@dataclass
class SetScore:
    """A set of images against held-out real images, in the judge's feature space."""

    name: str
    n: int
    frechet: float
    precision: float
    recall: float
    #: the real images it is compared with
    against: str = HELD_OUT_REAL
    #: median distance from an image of the set to its nearest real training image (None:
    #: not measured, as for training images themselves); below the held-out real images'
    #: (:attr:`GenerationEvaluation.real_nearest_train`), the set copies the training set
    nearest_train: float | None = None
    #: the same in the model's latent space: median distance from the posterior mean of
    #: an image of the set, encoded again, to the nearest training image's posterior mean
    #: (:func:`reencoded_nearest`); well below the held-out real images' (encoded once,
    #: :attr:`GenerationEvaluation.real_nearest_latent`; the reconstructions' figure is the
    #: like-for-like reference, decoded and encoded again), the set copies training images
    nearest_latent: float | None = None


@dataclass
class OnLabel:
    """Draws meant to carry a label, and how many the judge says do."""

    source: str  # "cluster smiling", "class sneaker"
    query: str
    n: int
    #: None: no draws (fewer samples than classes)
    rate: float | None
    #: the judge's rate on held-out real images that satisfy the query (None: none there)
    ceiling: float | None
    real_n: int


@dataclass
class Shares:
    """How prior draws spread over the classes (a distribution) or attributes (a share
    each), as the judge sees them, against the training data's true labels."""

    kind: str  # "class" or "attribute"
    names: list[str]
    generated: list[float]
    data: list[float]
    #: the judge's shares on held-out real images (what a perfect model would score)
    real_judged: list[float]
    #: classes: total variation distance of the two distributions; attributes: the
    #: largest |generated − data| over the attributes
    distance: float
    #: the same distance for the judged real images: the floor set by the judge's errors
    #: and the sample size (a perfect generator scores about this)
    real_distance: float | None = None
    #: the shares of the model's own p(z) draws and their distance, when the run has a
    #: fitted prior (what the fit changed)
    model_prior: list[float] | None = None
    model_prior_distance: float | None = None
    #: half the width of each generated share's 95% interval from the number of draws
    #: alone (binomial); the judge's own uncertainty comes on top (docs/evaluation.md)
    margin: list[float] = field(default_factory=list)


@dataclass
class GenerationEvaluation:
    """What :func:`evaluate_generation` measured."""

    samples: int
    seed: int
    heldout_split: str
    heldout_n: int
    judge: dict[str, Any] | None = None
    judge_trained: bool = False
    sets: list[SetScore] = field(default_factory=list)
    on_label: list[OnLabel] = field(default_factory=list)
    class_shares: Shares | None = None
    attribute_shares: Shares | None = None
    psnr: float | None = None
    ssim: float | None = None
    #: the held-out real images' median distance to their nearest training image: what
    #: new images score (a set well below it is copying training images)
    real_nearest_train: float | None = None
    #: the held-out real images' median distance, in the model's latent space, from their
    #: posterior mean to the nearest training image's
    real_nearest_latent: float | None = None
    skipped: list[str] = field(default_factory=list)
    #: what was measured all the same but may mislead (a cluster fitted to another
    #: model's latents, whose gate then reads latents only)
    warnings: list[str] = field(default_factory=list)
    #: name -> up to GRID_IMAGES uint8 images, for the report (not in JSON)
    grids: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the grids are left out)."""
        data = asdict(self)
        data.pop("grids")
        return data

    def set_score(self, name: str) -> SetScore | None:
        """The score of the set called ``name`` (``prior``, ``reconstructions``, …)."""
        return next((s for s in self.sets if s.name == name), None)


def _seeded_rows(n: int, keep: int, seed: int) -> np.ndarray:
    if keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=keep, replace=False))


def score_set(
    name: str, real: np.ndarray, features: np.ndarray, training: np.ndarray | None = None
) -> SetScore:
    """Score a set of judge features against ``real`` ones: its Fréchet distance on
    every image; precision/recall on as many of its
    (randomly drawn) images as there are real ones, since k-NN radii shrink as a set grows;
    with ``training`` (the real training images' features), its nearest-image distance."""
    precision, recall = precision_recall(real, features[: max(len(real), 2)])
    nearest = None if training is None else nearest_distance(features, training)
    frechet = frechet_distance(real, features)
    return SetScore(name, len(features), frechet, precision, recall, nearest_train=nearest)


def class_rate(
    called: np.ndarray, c: int, name: str, source: str, real: Any, real_out: Any
) -> OnLabel:
    """The share of draws meant to be class ``c`` that the judge ``called`` (its class ids
    for them) class ``c``, with its rate on the real images of that class (compared by
    class id: a class name is no query)."""
    rate = float((called == c).mean()) if len(called) else None
    of_class = real.labels == c if real.labels is not None else np.zeros(len(real), bool)
    ceiling = float((real_out.labels[of_class] == c).mean()) if of_class.any() else None
    return OnLabel(source, name, len(called), rate, ceiling, int(of_class.sum()))


def _query_mask(query: Any, out: JudgeOutput, info: Any) -> np.ndarray:
    return query.mask_arrays(
        len(out.features), out.labels, info.class_names, out.attributes, info.attribute_names
    )


def _truth(query: Any, real: Any) -> np.ndarray | None:
    """Which ``real`` images truly satisfy ``query`` (a parsed :class:`vaekit.query.Query`;
    None: it names no label they have)."""
    from vaekit.errors import DataError

    try:
        return query.mask_arrays(
            len(real), real.labels, real.class_names, real.attributes, real.attribute_names
        )
    except DataError:
        return None


def query_ceiling(judge: Judge, query: Any, real: Any, real_out: JudgeOutput) -> tuple[Any, int]:
    """The judge's rate on the real images (ImageDataset ``real``, judged ``real_out``)
    that truly satisfy ``query``: the best on-label rate a generator could score."""
    truth = _truth(query, real)
    if truth is None or not truth.any():
        return None, 0
    judged = _query_mask(query, real_out, judge.info)
    return float(judged[truth].mean()), int(truth.sum())


def on_label_rate(
    judge: Judge,
    images: np.ndarray,
    query_text: str,
    source: str,
    real: Any = None,
    real_out: JudgeOutput | None = None,
) -> OnLabel:
    """The share of ``images`` the judge says satisfy ``query_text`` (a label query,
    ``smiling and not eyeglasses``), with the ceiling on ``real`` images when given."""
    from vaekit.query import parse_query

    query = parse_query(query_text)
    out = judge.predict(images)
    rate = float(_query_mask(query, out, judge.info).mean()) if len(images) else 0.0
    ceiling, real_n = (None, 0)
    if real is not None and real_out is not None:
        ceiling, real_n = query_ceiling(judge, query, real, real_out)
    return OnLabel(source, query.text, len(images), rate, ceiling, real_n)


def _shares(
    judge: Judge,
    out: JudgeOutput,
    train: Any,
    real_out: JudgeOutput,
    raw_out: JudgeOutput | None = None,
) -> list[Shares]:
    """Class and attribute shares of the prior draws ``out`` (and of the model's own
    p(z) draws ``raw_out``, when the run has a fitted prior) against the data's."""
    info, found = judge.info, []

    def largest(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(np.asarray(a) - b).max())

    kinds = []
    if info.class_names and out.labels is not None and train.labels is not None:
        k = len(info.class_names)

        def spread(o: JudgeOutput | None) -> np.ndarray | None:
            if o is None or o.labels is None:
                return None
            counts = np.bincount(o.labels[o.labels >= 0], minlength=k).astype(np.float64)
            return counts / max(counts.sum(), 1.0)

        data = np.bincount(train.labels[train.labels >= 0], minlength=k).astype(np.float64)
        kinds.append(
            ("class", info.class_names, spread, data / max(data.sum(), 1.0), total_variation)
        )
    if info.attribute_names and out.attributes is not None and train.attributes is not None:

        def means(o: JudgeOutput | None) -> np.ndarray | None:
            return None if o is None or o.attributes is None else o.attributes.mean(0)

        data = train.attributes.astype(np.float64).mean(0)
        kinds.append(("attribute", info.attribute_names, means, data, largest))
    for kind, names, shares_of, data, distance in kinds:
        generated, real, raw = shares_of(out), shares_of(real_out), shares_of(raw_out)
        draws = len(out.labels if kind == "class" else out.attributes)
        found.append(
            Shares(
                kind,
                list(names),
                generated.tolist(),
                data.tolist(),
                [] if real is None else real.tolist(),
                distance(generated, data),
                None if real is None else distance(real, data),
                None if raw is None else raw.tolist(),
                None if raw is None else distance(raw, data),
                share_margin(generated, draws).tolist(),
            )
        )
    return found


def share_margin(shares: np.ndarray, draws: int) -> np.ndarray:
    """Half the width of the 95% interval of each share measured on ``draws`` draws
    (binomial, normal approximation): how far a share moves with the draws alone."""
    shares = np.asarray(shares, dtype=np.float64)
    return 1.96 * np.sqrt(shares * (1.0 - shares) / max(draws, 1))


def check_clusters(clusters: Sequence[str | Path], loaded: Any, everything: Any) -> list[Any]:
    """Load every cluster and fail, before any work, on one the generation section cannot
    judge: missing, damaged or of another latent size (:func:`vaekit.generate.
    load_clusters`), a query naming a label the run's data ``everything`` lacks, or, for
    a class-conditional model, a query that is not one class name (its draws are decoded
    as that class)."""
    from vaekit.generate import load_clusters, names_a_class
    from vaekit.query import parse_query

    fitted = load_clusters(clusters, loaded.config.model.latent_dim)
    for cluster in fitted:
        parse_query(cluster.query).mask_arrays(  # an unknown label raises, listing the known
            len(everything),
            everything.labels,
            everything.class_names,
            everything.attributes,
            everything.attribute_names,
        )
        if loaded.num_classes and not names_a_class(loaded, cluster):
            raise UsageError(
                f"model '{loaded.config.model.kind}' is class-conditional and cluster "
                f"'{cluster.query}' names no class of it: a conditional model decodes a "
                "cluster as the class its query names; fit one with `fit-cluster --label "
                "CLASS`"
            )
    return fitted


def reencoded_nearest(
    loaded: Any, images: np.ndarray, training: np.ndarray, labels: np.ndarray | None = None
) -> float:
    """The median distance from the posterior mean of each of ``images`` (uint8, encoded by
    ``loaded``'s model, conditioned on ``labels`` for a class-conditional one) to the
    nearest row of ``training`` (the training images' posterior means, (M, D)).

    A copy check in the model's own terms: a draw that decodes to a training image
    (a training image's posterior, or a density hugging the training latents) encodes back
    next to that image's mean, while an unseen image encodes as far as held-out real images
    do. In the judge's features, faces built from a few discrete parts put unseen faces
    near a training face too, so a copier can pass there (docs/benchmarks.md)."""
    from vaekit.generate import encode_images

    means, _ = encode_images(loaded, images, labels)
    return nearest_distance(means, training)


def evaluate_generation(
    loaded: Any,
    everything: Any,
    heldout_split: str,
    *,
    clusters: Sequence[str | Path] = (),
    samples: int = SAMPLES,
    seed: int = 0,
    judge_steps: int = JUDGE_STEPS,
    progress: Progress | None = None,
) -> GenerationEvaluation:
    """Measure what the loaded run generates (see the module docstring). ``everything``:
    the run's data, every split (``loaded.load_data``); ``heldout_split``: the real
    images generated ones are compared with (``all``: every image)."""
    from vaekit.generate import (
        check_images_memory,
        decode,
        encode_images,
        has_fitted_prior,
        sample,
    )
    from vaekit.query import parse_query

    if samples < 2:
        raise UsageError(f"--samples must be >= 2, got {samples}")
    fitted_clusters = check_clusters(clusters, loaded, everything)
    check_images_memory(loaded, samples, f"{samples:,} samples to judge", "lower --samples")
    heldout = everything if heldout_split == "all" else everything.select_split(heldout_split)
    real = heldout.subset(_seeded_rows(len(heldout), samples, seed))
    result = GenerationEvaluation(samples, seed, heldout_split, len(real))
    # reconstructions: the posterior mean, decoded to the likelihood's mean image
    labels = real.labels if loaded.num_classes else None
    mu, _ = encode_images(loaded, real.images, labels)
    recon = decode(loaded, mu, labels)
    result.psnr, result.ssim = psnr(real.images, recon), ssim(real.images, recon)
    prior = sample(loaded, samples, seed=seed)
    result.grids = {"prior": prior.images[:GRID_IMAGES], "reconstructions": recon[:GRID_IMAGES]}
    raw = None  # p(z) itself, beside a fitted prior: what the fit changed
    if has_fitted_prior(loaded):
        raw = sample(loaded, samples, seed=seed, model_prior=True)
        result.grids["model prior p(z)"] = raw.images[:GRID_IMAGES]
    if not has_labels(everything):
        result.skipped.append(
            f"dataset '{everything.source}' has no class labels or attributes, so no judge "
            "could be trained: on-label rates, shares, Fréchet distance, precision/recall "
            "and the copy checks were skipped (PSNR/SSIM need no labels)"
        )
        if clusters:
            result.skipped.append("clusters were not judged: " + ", ".join(map(str, clusters)))
        return result
    judge, trained = judge_for(
        loaded.path,
        everything,
        heldout_split,
        steps=judge_steps,
        device=loaded.device,
        progress=progress,
    )
    result.judge, result.judge_trained = asdict(judge.info), trained
    if judge.unsaved:
        result.skipped.append(judge.unsaved + "; it is trained again next time")
    if len(real) < 2:
        result.skipped.append(f"split '{heldout_split}' has under 2 images: nothing to compare")
        return result
    real_out = judge.predict(real.images)
    train = everything.select_split("train") if everything.split is not None else everything
    prior_out = judge.predict(prior.images)
    raw_out = None if raw is None else judge.predict(raw.images)
    training = None  # every training image's features: how near the draws come to them
    training_mu = None  # ... and their posterior means
    if heldout_split in ("train", "all"):  # the training images are the compared ones
        result.skipped.append(
            f"no floor (real training images against split '{heldout_split}') and no "
            "nearest-training-image or -latent distances: the two sets share images; judge a "
            "held-out split (--split val or test) for them"
        )
    else:
        training = judge.predict(train.images).features
        result.real_nearest_train = nearest_distance(real_out.features, training)
        train_labels = train.labels if loaded.num_classes else None
        training_mu, _ = encode_images(loaded, train.images, train_labels)
        result.real_nearest_latent = nearest_distance(mu, training_mu)

    def scored(
        name: str,
        reference: np.ndarray,
        images: np.ndarray,
        features: np.ndarray,
        drawn_labels: np.ndarray | None,
    ) -> SetScore:
        """A set of images (with its judge features), scored against ``reference`` and,
        when the training images are not the compared ones, checked for copies."""
        score = score_set(name, reference, features, training)
        if training_mu is not None:
            score.nearest_latent = reencoded_nearest(loaded, images, training_mu, drawn_labels)
        return score

    result.sets = [
        scored("reconstructions", real_out.features, recon, judge.predict(recon).features, labels),
        scored("prior", real_out.features, prior.images, prior_out.features, prior.labels),
    ]
    if training is not None:  # the floor: a sample of the training images themselves
        floor = training[_seeded_rows(len(train), samples, seed + 1)]
        result.sets.insert(0, score_set("real training images", real_out.features, floor))
    if raw_out is not None:
        result.sets.append(
            scored("model prior p(z)", real_out.features, raw.images, raw_out.features, raw.labels)
        )
    shares = _shares(judge, prior_out, train, real_out, raw_out)
    result.class_shares = next((s for s in shares if s.kind == "class"), None)
    result.attribute_shares = next((s for s in shares if s.kind == "attribute"), None)
    # a conditional model's draws per class: what sample draws, then its own p(z|y)
    for drawn, out, suffix in ((prior, prior_out, ""), (raw, raw_out, ", p(z|y)")):
        if not loaded.num_classes or drawn is None or out is None or drawn.labels is None:
            continue
        for c, name in enumerate(loaded.class_names):
            called = out.labels[drawn.labels == c] if out.labels is not None else np.zeros(0)
            result.on_label.append(
                class_rate(called, c, name, f"class {name}{suffix}", real, real_out)
            )
    for spec, cluster in zip(clusters, fitted_clusters, strict=True):
        drawn = sample(loaded, samples, cluster=cluster, seed=seed)
        result.warnings.extend(drawn.warnings)  # e.g. fitted to another model's latents
        label = f"cluster {cluster.query}"
        if label in result.grids:  # two clusters of one query: tell them apart by file
            label += f" ({Path(str(spec)).stem})"
        result.grids[label] = drawn.images[:GRID_IMAGES]
        rate = on_label_rate(judge, drawn.images, cluster.query, label, real, real_out)
        result.on_label.append(rate)
        # against the real images of its label (all real images when they are too few)
        query = parse_query(cluster.query)
        truth = _truth(query, real)
        of_label = truth is not None and int(truth.sum()) >= 2
        reference = real_out.features[truth] if of_label else real_out.features
        against = f"real '{rate.query}' images ({len(reference):,})" if of_label else None
        floor = f"real training '{rate.query}' images"
        if of_label and training is not None and all(s.name != floor for s in result.sets):
            # the label's own floor: a distance from few real images runs high for any set
            in_train = _truth(query, train)
            members = np.zeros(0, dtype=int) if in_train is None else np.nonzero(in_train)[0]
            if len(members) >= 2:
                rows = members[_seeded_rows(len(members), samples, seed + 1)]
                result.sets.append(score_set(floor, reference, training[rows]))
                result.sets[-1].against = against
        features = judge.predict(drawn.images).features
        score = scored(label, reference, drawn.images, features, drawn.labels)
        if against is not None:
            score.against = against
        result.sets.append(score)
    return result


def generation(
    model_dir: str | Path = "runs/latest",
    data: Any = None,
    *,
    split: str | Sequence[str] | None = None,
    clusters: Sequence[str | Path] = (),
    samples: int = SAMPLES,
    seed: int = 0,
    judge_steps: int = JUDGE_STEPS,
    accelerator: str = "cpu",
    progress: Progress | None = None,
) -> GenerationEvaluation:
    """:func:`evaluate_generation` for the run in ``model_dir`` on ``data`` (None: the
    run's own), against held-out ``split`` (default: test, else val)."""
    from vaekit.data import HELD_OUT

    loaded, everything, _, name, _ = open_run_data(model_dir, data, split or HELD_OUT, accelerator)
    return evaluate_generation(
        loaded,
        everything,
        name,
        clusters=clusters,
        samples=samples,
        seed=seed,
        judge_steps=judge_steps,
        progress=progress,
    )


Table = tuple[str, list[str], list[list[Any]]]


def generation_rows(found: GenerationEvaluation) -> list[Table]:
    """The generation section as (title, header, rows) tables, shared by the CLI and the
    report."""
    tables: list[Table] = [
        (
            "reconstructions of held-out images",
            ["measure", "value"],
            [["PSNR (dB)", found.psnr], ["SSIM", found.ssim]],
        )
    ]
    if found.judge is not None:
        judge = found.judge
        accuracy = []
        if judge.get("class_accuracy") is not None:
            accuracy.append(["class accuracy", judge["class_accuracy"]])
        for name, value in (judge.get("attribute_accuracy") or {}).items():
            accuracy.append([f"{name} accuracy", value])
        state = "trained now" if found.judge_trained else "reused"
        tables.append(
            (
                f"the judge ({state}; {judge['train_images']:,} training images) on "
                f"{judge['heldout_images']:,} held-out real images",
                ["measure", "value"],
                accuracy,
            )
        )
    if found.sets:
        title = (
            f"against {found.heldout_n:,} held-out real images ({found.heldout_split}), "
            "in the judge's features (not FID)"
        )
        header = ["set", "images", "Fréchet distance", "precision", "recall"]
        rows = [[s.name, s.n, s.frechet, s.precision, s.recall] for s in found.sets]
        columns: list[tuple[str, str, str]] = []  # header, the set's field, title's words
        if any(s.against != HELD_OUT_REAL for s in found.sets):  # a cluster's own label
            columns.append(("against", "against", ""))
        if found.real_nearest_train is not None:
            said = (
                "; nearest training image: median distance, held-out real images "
                f"{found.real_nearest_train:.4g} (a set well below that copies training images)"
            )
            columns.append(("nearest training image", "nearest_train", said))
        if found.real_nearest_latent is not None:
            said = (
                "; nearest training latent (each image of a set encoded again): held-out "
                f"real images, encoded once, {found.real_nearest_latent:.4g} (reconstructions "
                "are the like-for-like reference)"
            )
            columns.append(("nearest training latent", "nearest_latent", said))
        for name, attribute, said in columns:
            title += said
            header.append(name)
            for row, score in zip(rows, found.sets, strict=True):
                row.append(getattr(score, attribute))
        tables.append((title, header, rows))
    if found.on_label:
        tables.append(
            (
                "on-label rate: draws the judge says carry their label, beside its rate on "
                "real images of that label (the ceiling)",
                ["draws", "query", "n", "on-label", "ceiling (real)", "real images"],
                [[o.source, o.query, o.n, o.rate, o.ceiling, o.real_n] for o in found.on_label],
            )
        )
    for shares in (found.class_shares, found.attribute_shares):
        if shares is None:
            continue
        measure = "total variation distance" if shares.kind == "class" else "largest |prior − data|"
        blank = [None] * len(shares.names)
        raw = shares.model_prior
        rows = [
            [name, g, m, d, r] + ([] if raw is None else [p])
            for name, g, m, d, r, p in zip(
                shares.names,
                shares.generated,
                shares.margin or blank,
                shares.data,
                shares.real_judged or blank,
                raw or blank,
                strict=True,
            )
        ]
        rows.append(
            [measure, shares.distance, None, None, shares.real_distance]
            + ([] if raw is None else [shares.model_prior_distance])
        )
        header = [shares.kind, "prior draws", "± (95%, draws)", "data", "real, judged"]
        tables.append(
            (
                f"{shares.kind} shares of prior draws (judged) against the training data's",
                header + ([] if raw is None else ["p(z) draws"]),
                rows,
            )
        )
    return tables


def judge_cluster(
    cluster: str | Path,
    model_dir: str | Path | None = None,
    *,
    samples: int = 500,
    seed: int = 0,
    judge_steps: int = JUDGE_STEPS,
    accelerator: str = "cpu",
    progress: Progress | None = None,
) -> OnLabel:
    """The judge's on-label rate of ``samples`` draws from a fitted cluster, with its
    ceiling on held-out real images (``fit-cluster --judge``). The model is the run that
    encoded the cluster's latents unless ``model_dir`` says otherwise; the run's judge is
    trained on first use and reused after. ``cluster``: a cluster file or name."""
    from vaekit.data import HELD_OUT
    from vaekit.errors import DataError
    from vaekit.generate import default_model_dir, load_cluster, sample

    if samples < 1:
        raise UsageError(f"the number of draws to judge must be >= 1, got {samples}")
    fitted = load_cluster(cluster)
    loaded, everything, heldout, name, _ = open_run_data(
        model_dir or default_model_dir(cluster), None, HELD_OUT, accelerator
    )
    if not has_labels(everything):
        raise DataError(
            f"the run's data ('{everything.location}') has no labels to train a judge on; "
            "leave out --judge"
        )
    judge, _ = judge_for(
        loaded.path, everything, name, steps=judge_steps, device=loaded.device, progress=progress
    )
    drawn = sample(loaded, samples, cluster=fitted, seed=seed)
    real_out = judge.predict(heldout.images)
    return on_label_rate(
        judge, drawn.images, fitted.query, f"cluster {fitted.query}", heldout, real_out
    )
