"""A run's pictures and its one-page HTML report.

:func:`write_run_figures` draws the training curves (from ``metrics.jsonl`` and
``steps.jsonl``) and, given an evaluation, the latent scatter, the KL per
dimension and the latent traversals into ``RUN/figures/``. :func:`build_report`
evaluates a run and writes one self-contained HTML page: every image is inlined
as a base64 PNG, the CSS is inline, there is no script and no network access.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaekit.data import HELD_OUT
from vaekit.errors import DataError
from vaekit.figures import (
    CURVES,
    FIGURES_DIR,
    KL_PER_DIM,
    SCATTER,
    TRAVERSALS,
    plot_kl_per_dim,
    plot_latent_scatter,
    plot_training_curves,
    plot_traversals,
)
from vaekit.files import atomic_write_text, check_input_file, check_output_target, is_png
from vaekit.runs import RECONSTRUCTIONS, SAMPLES, Run, resolve_run

if TYPE_CHECKING:
    from vaekit.evaluate import Evaluation

STEPS = "steps.jsonl"
#: Traversal values: standard deviations of the dimension's posterior mean over the data.
TRAVERSAL_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
MAX_TRAVERSAL_ROWS = 10


def read_steps(run: Run) -> list[dict[str, Any]]:
    """The per-log-step rows of ``steps.jsonl`` (empty for runs made before it existed)."""
    path = run.file(STEPS)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_steps(run: Run, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``steps.jsonl``: one row per logged step (every ``LOG_EVERY`` optimiser steps
    and each epoch's last), the same values the progress bar shows."""
    atomic_write_text(run.file(STEPS), "".join(json.dumps(r) + "\n" for r in rows))


def traversal_dims(evaluation: Evaluation, limit: int = MAX_TRAVERSAL_ROWS) -> list[int]:
    """The active dimensions by falling KL (all dimensions when none is active); by the
    variance of the posterior mean where the KL does not split by dimension."""
    score = evaluation.kl_per_dim or evaluation.mean_variance
    order = sorted(range(len(score)), key=lambda d: -score[d])
    active = set(evaluation.active)
    chosen = [d for d in order if d in active] or order
    return chosen[:limit]


def traversal_images(
    model: Any,
    base: Any,
    dims: Sequence[int],
    values: Sequence[float] = TRAVERSAL_VALUES,
    y: Any = None,
    centre: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
) -> np.ndarray:
    """uint8 (len(dims), len(values), C, H, W): ``base`` (D,) with dimension d set to
    ``centre[d] + value * scale[d]`` for each value in turn (centre 0, scale 1 when not
    given), decoded to the likelihood's mean."""
    import torch

    from vaekit.images import to_uint8
    from vaekit.model import mean_image

    with torch.inference_mode():
        z = base.detach().float().reshape(1, 1, -1).repeat(len(dims), len(values), 1)
        for r, d in enumerate(dims):
            at = torch.tensor(list(values), dtype=z.dtype, device=z.device)
            z[r, :, d] = (0.0 if centre is None else centre[d]) + at * (
                1.0 if scale is None else scale[d]
            )
        flat = z.reshape(-1, z.shape[-1])
        y_rows = None if y is None else y.reshape(1, -1).expand(len(flat), -1)
        images = to_uint8(mean_image(model, flat, y_rows))
    return images.reshape(len(dims), len(values), *images.shape[1:])


def write_run_figures(
    run: Run,
    evaluation: Evaluation | None = None,
    model: Any = None,
    base: Any = None,
    base_y: Any = None,
) -> list[Path]:
    """Draw the run's pictures into ``RUN/figures/``; returns the paths written.

    The training curves need only the run; the scatter and KL figures need
    ``evaluation``, the traversals also ``model`` and a ``base`` code (D,) (and its
    one-hot class ``base_y`` for a class-conditional model)."""
    folder = run.folder(FIGURES_DIR)
    folder.mkdir(exist_ok=True)
    written = []
    epochs = run.read_metrics()
    if epochs:
        written.append(
            plot_training_curves(epochs, read_steps(run), folder / CURVES, title=run.name)
        )
    if evaluation is None:
        return written
    if evaluation.sample_means is not None and len(evaluation.sample_means):
        written.append(
            plot_latent_scatter(
                evaluation.sample_means,
                evaluation.sample_labels,
                evaluation.class_names,
                folder / SCATTER,
                title=f"posterior means of {evaluation.split} images (PCA)",
            )
        )
    written.append(
        plot_kl_per_dim(
            evaluation.kl_per_dim,
            evaluation.mean_variance,
            folder / KL_PER_DIM,
            total_kl=evaluation.kl,
        )
    )
    if model is not None and base is not None:
        dims = traversal_dims(evaluation)
        # across the data's own codes: centred on their mean, in steps of their spread
        spread = [max(v, 1e-12) ** 0.5 for v in evaluation.mean_variance]
        images = traversal_images(
            model, base, dims, y=base_y, centre=evaluation.mean_posterior_mean, scale=spread
        )
        written.append(
            plot_traversals(
                images, dims, TRAVERSAL_VALUES, folder / TRAVERSALS, evaluation.kl_per_dim
            )
        )
    return written


def evaluate_and_draw(
    model_dir: str | Path = "runs/latest",
    data: Any = None,
    *,
    split: str | Sequence[str] | None = HELD_OUT,
    iwae_k: int = 100,
    by_label: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    accelerator: str = "cpu",
    progress: Any = None,
    generation: bool = False,
    clusters: Sequence[str | Path] = (),
    samples: int = 1000,
    judge_steps: int | None = None,
    max_images: int | None = None,
    judge_progress: Any = None,
) -> tuple[Evaluation, list[Path]]:
    """Evaluate a run on ``split`` and draw every figure into ``RUN/figures/``; the
    traversals start from the posterior mean of the split's first image, and the
    reconstruction grid shows the split's first images (numbers and pictures come from
    one split). ``max_images``: a seeded random subset of the split, for a quick report.
    ``split`` as :func:`vaekit.evaluate.evaluate` takes it: a name (None: every image), or names to
    try in order (by default test, then val). ``generation``: also judge what the model
    generates (:func:`vaekit.generation.evaluate_generation`) and save its grids as
    ``figures/generated_*.png``; ``judge_progress``: a ``(done, total)`` callback for the
    judge's training, when it trains."""
    import torch

    from vaekit.evaluate import evaluate_model
    from vaekit.run_data import open_run_data, subsample

    loaded, everything, dataset, split, device = open_run_data(model_dir, data, split, accelerator)
    if generation:  # a cluster that cannot be judged fails before the figures are drawn
        from vaekit.generation import check_clusters

        check_clusters(clusters, loaded, everything)
    dataset = subsample(dataset, max_images, seed)
    model, run = loaded.model, loaded.run
    evaluation = evaluate_model(
        model,
        dataset,
        iwae_k=iwae_k,
        by_label=by_label,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        split=split,
        run_dir=str(run.path),
    )
    x = torch.from_numpy(np.ascontiguousarray(dataset.images[:1])).to(device).float() / 255.0
    y = loaded.condition(None if dataset.labels is None else dataset.labels[:1], 1)
    with torch.inference_mode():
        mean = model.posterior(x, y).mean[0]
    paths = write_run_figures(run, evaluation, model, mean, None if y is None else y[0])
    paths.append(write_split_reconstructions(run, loaded, dataset, device))
    if generation:
        from vaekit.generation import evaluate_generation
        from vaekit.judge import JUDGE_STEPS

        evaluation.generation = evaluate_generation(
            loaded,
            everything,
            split,
            clusters=clusters,
            samples=samples,
            seed=seed,
            judge_steps=JUDGE_STEPS if judge_steps is None else judge_steps,
            progress=judge_progress,
        )
        paths += write_generation_grids(run, evaluation.generation)
    return evaluation, paths


def write_split_reconstructions(run: Run, loaded: Any, dataset: Any, device: Any) -> Path:
    """``figures/reconstructions.png``: the evaluated split's first 16 images, each beside
    its reconstruction from the posterior mean, pairs titled, 4 pairs a row."""
    from vaekit.generate import decode, encode_images, side_by_side
    from vaekit.images import save_grid

    originals = np.asarray(dataset.images[:16])
    conditional = loaded.num_classes > 0 and dataset.labels is not None
    labels = np.asarray(dataset.labels[:16]) if conditional else None
    mu, _ = encode_images(loaded, originals, labels)
    recon = decode(loaded, mu, labels)
    pairs = min(4, len(originals))  # 4 pairs a row: the page shows it unscaled, titles legible
    return save_grid(
        side_by_side(originals, recon),
        run.folder(FIGURES_DIR) / SPLIT_RECONSTRUCTIONS,
        ncol=2 * pairs,
        titles=["input", "recon"] * pairs,
        group=2,
    )


#: The report's reconstruction grid, of the split it evaluates.
SPLIT_RECONSTRUCTIONS = "reconstructions.png"
GENERATED = "generated_"
#: Marks a page as vaekit's report, so `report -o` may replace it (and nothing else).
GENERATOR_TAG = "<meta name='generator' content='vaekit report'>"
#: A picture larger than this is not embedded (the run's own are well under 1 MB).
MAX_PICTURE_BYTES = 32 << 20
#: How reports before 0.6 begin (they carry no generator tag).
OLD_REPORT_HEAD = "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>vaekit report:"


def generated_grid_path(run: Run, name: str) -> Path:
    """``figures/generated_<name>.png`` (the name made file-safe)."""
    import re

    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return run.folder(FIGURES_DIR) / f"{GENERATED}{slug}.png"


def write_generation_grids(run: Run, found: Any) -> list[Path]:
    """Save each judged set's grid (prior, reconstructions, clusters) into the figures
    folder, old ones removed first (a cluster no longer asked for leaves no grid)."""
    from vaekit.images import save_grid

    folder = run.folder(FIGURES_DIR)
    for old in folder.glob(f"{GENERATED}*.png"):
        old.unlink(missing_ok=True)
    written = []
    for name, images in found.grids.items():
        path = generated_grid_path(run, name)
        save_grid(images, path, ncol=8)
        written.append(path)
    return written


# -- HTML --------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figure img.grid { image-rendering: pixelated; min-width: 400px; }
td.text { text-align: left; color: #555; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.note { color: #8a5a00; }
"""


@dataclass
class Picture:
    """One image of the report: its file and what it shows (``grid``: an image grid,
    enlarged without smoothing)."""

    path: Path
    title: str
    caption: str
    grid: bool = False


def check_picture(path: Path) -> Path:
    """A picture to embed, checked as untrusted without reading it: a plain PNG file (no
    link, no device or pipe) of at most :data:`MAX_PICTURE_BYTES`, else a DataError."""
    if path.is_symlink():
        raise DataError(
            f"'{path}' is a symbolic link; a report embeds only plain PNG files of the run: "
            "remove the link"
        )
    check_input_file(path, MAX_PICTURE_BYTES, "PNG picture")
    if not is_png(path):
        raise DataError(f"'{path}' is not a PNG picture; remove it from the run")
    return path


def _img(picture: Picture) -> str:
    data = base64.b64encode(check_picture(picture.path).read_bytes()).decode("ascii")
    css = ' class="grid"' if picture.grid else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(picture.title)}"'
        f"{css}>"
        f"<figcaption><b>{html.escape(picture.title)}.</b> {html.escape(picture.caption)}"
        "</figcaption></figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_column: int = -1) -> str:
    """An HTML table; column ``text_column`` holds prose (left-aligned, grey)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=text' if i == text_column else ''}>{html.escape(_fmt(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e-2 and value else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def metrics_rows(evaluation: Evaluation) -> list[tuple[str, Any, str]]:
    """(measure, value, note) rows of the evaluation table (shared by the CLI)."""
    rows: list[tuple[str, Any, str]] = [
        ("images", evaluation.n, f"split {evaluation.split}"),
        ("−ELBO (nats)", evaluation.neg_elbo, f"± {evaluation.neg_elbo_se:.2f} (s.e.)"),
        ("reconstruction NLL (nats)", evaluation.recon_nll, f"likelihood {evaluation.likelihood}"),
        ("KL (nats)", evaluation.kl, ""),
    ]
    target = "−log p(x|y)" if evaluation.conditional else "−log p(x)"
    for k, value in evaluation.iwae.items():
        rows.append(
            (f"{target} ≈ −IWAE, K = {k:,} (nats)", value, f"± {evaluation.iwae_se[k]:.2f}")
        )
    rows.append(
        (
            "active units",
            evaluation.active_units,
            f"of {len(evaluation.mean_variance)} (Cov_x E_q[z_d] > 0.01)",
        )
    )
    rows.append(("bits/dim", evaluation.bits_per_dim, evaluation.bits_note))
    return rows


def render_html(
    run: Run,
    evaluation: Evaluation | None,
    pictures: Sequence[Picture],
    config: dict[str, Any],
) -> str:
    """The report page as a string."""
    metrics = run.read_metrics()
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{GENERATOR_TAG}",
        f"<title>vaekit report: {html.escape(run.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>vaekit report: {html.escape(run.name)}</h1>",
        f"<p class='meta'>{html.escape(str(run.path))} · created "
        f"{html.escape(str(config.get('created', '?')))} · vaekit "
        f"{html.escape(str(config.get('vaekit_version', '?')))}</p>",
    ]
    model = config.get("model", {})
    data = config.get("data", {})
    parts.append(
        "<p>"
        + html.escape(
            f"{model.get('kind', 'vae')} with {model.get('encoder')} encoder, "
            f"{model.get('decoder')} decoder, {model.get('likelihood')} likelihood, "
            f"{model.get('prior')} prior, {model.get('latent_dim')} latent dimensions; "
            f"trained on {data.get('source')} ({data.get('location')}, {data.get('n')} images "
            f"of shape {data.get('image_shape')})."
        )
        + "</p>"
    )
    if evaluation is not None:
        parts.append(f"<h2>Evaluation on the {html.escape(evaluation.split)} split</h2>")
        parts.append(_table(["measure", "value", ""], metrics_rows(evaluation), text_column=2))
        if evaluation.groups:
            ks = list(evaluation.iwae)
            header = [evaluation.group_kind, "images", "−ELBO", "recon NLL", "KL"]
            header += [f"−IWAE K={k:,}" for k in ks[-1:]] + ["active units"]
            rows = [
                [g.name, g.n, g.neg_elbo, g.recon_nll, g.kl]
                + [g.iwae[k] for k in ks[-1:]]
                + [g.active_units]
                for g in evaluation.groups
            ]
            parts.append(f"<h3>Per {html.escape(evaluation.group_kind)}</h3>")
            parts.append(_table(header, rows))
    parts.append("<h2>Pictures</h2>")
    parts.extend(_img(p) for p in pictures)
    if evaluation is not None and evaluation.generation is not None:
        parts.extend(generation_html(run, evaluation.generation))
    if metrics:
        parts.append("<h2>Training, per epoch</h2>")
        keys = [
            k
            for k in ("epoch", "step", "loss", "recon", "kl", "beta", "val_loss", "samples_per_s")
            if any(k in row for row in metrics)
        ]
        parts.append(_table(keys, [[row.get(k) for k in keys] for row in metrics]))
    parts.append("<h2>Configuration</h2>")
    parts.append(_table(["setting", "value"], config_rows(config)))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def config_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """config.json as one row per setting (``model.encoder_options.width``), values as JSON."""

    def walk(value: Any, prefix: str) -> list[tuple[str, str]]:
        if isinstance(value, dict) and value:
            return [row for key, inner in value.items() for row in walk(inner, f"{prefix}.{key}")]
        return [(prefix.lstrip("."), json.dumps(value))]

    return walk(config, "")


def generation_html(run: Run, found: Any) -> list[str]:
    """The report's generation section: each grid beside its figures, then the tables."""
    from vaekit.generation import generation_rows

    parts = [
        "<h2>Generation</h2>",
        "<p>"
        + html.escape(
            "Judged by a classifier trained on the run's labelled training images "
            "(vaekit's judge; docs/evaluation.md). Fréchet distance and precision/recall "
            "are measured in its features against held-out real images: not FID. "
            '"nearest training image": the median distance from an image of the set to '
            "its nearest training image, in the same features; a set well below the "
            "held-out real images' distance is copying training images. \"nearest "
            "training latent\": the same in the model's latent space, each image encoded "
            "again (it catches copies the judge's features can miss); the reconstructions, "
            "decoded and encoded again as a generated set is, are its like-for-like reference."
        )
        + "</p>",
    ]
    scores = {s.name: s for s in found.sets}
    rates = {o.source: o for o in found.on_label}
    for name in found.grids:
        path = generated_grid_path(run, name)
        if not path.is_file():
            continue
        rows: list[list[Any]] = []
        if name in scores:
            s = scores[name]
            rows += [["Fréchet distance", s.frechet], ["precision", s.precision]]
            rows += [["recall", s.recall]]
            if s.nearest_train is not None and found.real_nearest_train is not None:
                rows += [
                    ["nearest training image", s.nearest_train],
                    ["(held-out real images)", found.real_nearest_train],
                ]
            if s.nearest_latent is not None and found.real_nearest_latent is not None:
                rows += [
                    ["nearest training latent", s.nearest_latent],
                    ["(held-out real images, latent)", found.real_nearest_latent],
                ]
        if name in rates:
            rows += [["on-label", rates[name].rate], ["ceiling (real)", rates[name].ceiling]]
        if name == "reconstructions":
            rows += [["PSNR (dB)", found.psnr], ["SSIM", found.ssim]]
        parts.append(
            "<div style='display:flex;gap:1.5em;align-items:flex-start'>"
            + _img(Picture(path, name, _grid_caption(name, len(found.grids[name])), grid=True))
            + (_table(["measure", "value"], rows) if rows else "")
            + "</div>"
        )
    for title, header, rows in generation_rows(found):
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(_table(header, rows))
    parts.extend(f"<p class='note'>warning: {html.escape(line)}</p>" for line in found.warnings)
    parts.extend(f"<p class='note'>skipped: {html.escape(line)}</p>" for line in found.skipped)
    return parts


def _grid_caption(name: str, n: int) -> str:
    what = {
        "prior": "what `vaekit sample` draws: the run's fitted prior when it has one, else p(z)",
        "model prior p(z)": "draws from the model's own prior p(z) (p(z|y) per class)",
        "reconstructions": "held-out images reconstructed from their posterior means",
    }
    return f"{what.get(name, 'draws from the ' + name)}; the first {n} of the judged set."


def run_pictures(run: Run) -> list[Picture]:
    """Every picture of the run that exists, in reading order."""
    folder = run.folder(FIGURES_DIR)
    known = [
        (
            folder / CURVES,
            "Training curves",
            "Loss, reconstruction NLL, KL and β per logged "
            "step (thin) and per epoch (dots), with the validation −ELBO.",
        ),
        (
            folder / SCATTER,
            "Latent scatter",
            "The first two principal components of the posterior means, coloured by class.",
        ),
        (
            folder / KL_PER_DIM,
            "KL per dimension",
            "Mean KL(q(z_d|x) ‖ p(z_d)) per latent "
            "dimension (top) and the variance of the posterior mean over the data (bottom); "
            "active units in blue.",
        ),
        (
            folder / TRAVERSALS,
            "Latent traversals",
            "One active dimension per row, from −3 to "
            "+3 standard deviations of that dimension's posterior mean over the data (around its "
            "average), the others held at one image's posterior mean.",
        ),
        (run.file(SAMPLES), "Samples", "Decoded prior draws (the likelihood's mean)."),
    ]
    if (folder / SPLIT_RECONSTRUCTIONS).is_file():  # of the split the numbers come from
        known.append(
            (
                folder / SPLIT_RECONSTRUCTIONS,
                "Reconstructions",
                "The evaluated split's first images, each beside its reconstruction from "
                "the posterior mean.",
            )
        )
    else:  # a run never reported: training's grid of validation images
        known.append(
            (
                run.file(RECONSTRUCTIONS),
                "Reconstructions",
                "Validation images (top row) above their reconstructions from the posterior mean.",
            )
        )
    grids = {run.file(SAMPLES), run.file(RECONSTRUCTIONS), folder / SPLIT_RECONSTRUCTIONS}
    pictures = [Picture(p, t, c, grid=p in grids) for p, t, c in known if p.is_file()]
    seen = {p.path.resolve() for p in pictures}
    seen.add(run.file(RECONSTRUCTIONS).resolve())  # training's grid: shown above or replaced
    for extra in sorted([*run.path.glob("*.png"), *folder.glob("*.png")]):
        if extra.name.startswith(GENERATED):  # shown in the generation section
            continue
        run.member(str(extra.relative_to(run.path)))  # a link or a pipe is refused
        if extra.resolve() not in seen:
            pictures.append(Picture(extra, extra.stem.replace("_", " "), extra.name))
    return pictures


def build_report(
    model_dir: str | Path = "runs/latest",
    output: str | Path = "report.html",
    data: Any = None,
    *,
    split: str | Sequence[str] | None = HELD_OUT,
    iwae_k: int = 100,
    by_label: bool = True,
    seed: int = 0,
    accelerator: str = "cpu",
    progress: Any = None,
    generation: bool = True,
    clusters: Sequence[str | Path] = (),
    samples: int = 1000,
    judge_steps: int | None = None,
    overwrite: bool = False,
    max_images: int | None = None,
    judge_progress: Any = None,
) -> tuple[Path, Evaluation]:
    """Evaluate the run, redraw its figures and write the self-contained report to
    ``output``; ``generation``: with a generation section (see :func:`evaluate_and_draw`).
    An existing vaekit report at ``output`` is replaced; any other file only with
    ``overwrite``; both, and every cluster of ``clusters``, checked before the
    evaluation starts."""
    output = check_output_target(output, overwrite, replaceable=is_report)
    run = resolve_run(model_dir)
    for picture in run_pictures(run):  # a link or pipe in the run: refused before the work
        check_picture(picture.path)
    if generation and clusters:  # a cluster that cannot be judged: refused before the work
        from vaekit.generate import load_clusters

        load_clusters(clusters, run.read_config().model.latent_dim)
    evaluation, _ = evaluate_and_draw(
        run.path,
        data,
        split=split,
        iwae_k=iwae_k,
        by_label=by_label and _has_labels(run),
        seed=seed,
        accelerator=accelerator,
        progress=progress,
        generation=generation,
        clusters=clusters,
        samples=samples,
        judge_steps=judge_steps,
        max_images=max_images,
        judge_progress=judge_progress,
    )
    page = render_html(run, evaluation, run_pictures(run), run.read_config().to_dict())
    check_output_target(output, overwrite, replaceable=is_report)  # made meanwhile?
    atomic_write_text(output, page)
    return output, evaluation


def is_report(path: Path) -> bool:
    """Whether ``path`` is a report vaekit wrote (its generator tag is in the first bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
        return GENERATOR_TAG.encode() in head or head.startswith(OLD_REPORT_HEAD.encode())
    except OSError:
        return False


def _has_labels(run: Run) -> bool:
    data = run.read_config().data
    return bool(data.get("class_names") or data.get("attribute_names"))
