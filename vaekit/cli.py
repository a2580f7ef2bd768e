"""The ``vaekit`` command line: thin commands that parse, call the core, print with rich.

Nothing heavy is imported at module level (``vaekit --help`` never loads torch):
each command imports what it needs.
"""

# No ``from __future__ import annotations`` here: with string annotations, typer evaluates
# every option's annotation twice (signature and type hints) for every command on every
# start (about 10 ms, 8% of ``vaekit --help``).

import contextlib
import copy
import dataclasses
import importlib
import json
import math
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vaekit.config import MAX_SEED
from vaekit.errors import VaekitError

app = typer.Typer(
    name="vaekit",
    help="Train VAEs on your images, encode them to HDF5 latents, fit and sample clusters.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
# soft_wrap: a message is one line whatever the width (a pipe gets no 80-column folds)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}

OptList = Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE")]
#: Training steps of a judge trained now (evaluate, report, fit-cluster --judge).
JudgeStepsOption = Annotated[
    int, typer.Option(help="Training steps of a judge trained now (a run's judge is kept).")
]
#: A grid wider than this many images is a typo (and a picture no screen shows).
MAX_NCOL = 10_000
#: The output rule (docs/guarantees.md): an existing file of another kind is replaced
#: only with --overwrite; pictures replace pictures, reports replace reports.
Overwrite = Annotated[
    bool,
    typer.Option(
        help="Replace an existing output even when it is not of the kind this command writes."
    ),
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a VaekitError as one line and exit 1 (2 for usage errors); traceback with --debug."""
    try:
        yield
    except VaekitError as exc:
        if _state["debug"]:
            raise
        # soft_wrap: the message stays one line (paths are never folded)
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:  # train's says which epoch is saved and how to go on
        hint = f"; {exc.args[0]}" if exc.args else ""
        err_console.print(f"[yellow]interrupted[/]{hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except RuntimeError as exc:
        from vaekit.distributed import is_peer_timeout, peer_timeout_message

        if _state["debug"] or not is_peer_timeout(exc):
            raise
        err_console.print(f"[bold red]Error:[/] {peer_timeout_message()}", soft_wrap=True)
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        from vaekit import __version__

        console.print(f"vaekit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="VAEKIT_DEBUG", help="Show full tracebacks.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """vaekit: variational-autoencoder data pipelines, one command per step."""
    _state["debug"] = debug


def _shown_default(field: str) -> str:
    """``[default: VALUE]`` for an option's help, escaped: rich would read the brackets as
    markup and drop them."""
    return f"\\[default: {_default(field)}]"


def _default(field: str) -> Any:
    """The default of a training setting, declared once in :mod:`vaekit.config`."""
    from vaekit.config import ModelConfig, TrainConfig

    for cls in (TrainConfig, ModelConfig):
        for f in dataclasses.fields(cls):
            if f.name == field:
                return f.default
    raise KeyError(field)


@app.command()
def train(
    data: Annotated[
        str | None, typer.Argument(help="Image folder or data file; none: the embedded digits.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset plugin to read DATA with (default: detected).")
    ] = None,
    dataset_opt: OptList = None,
    image_size: Annotated[
        int | None, typer.Option(help="Resize + centre-crop images to this square size.")
    ] = None,
    channels: Annotated[int | None, typer.Option(help="Convert images to 1 or 3 channels.")] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip unreadable images (and report how many).")
    ] = False,
    val_fraction: Annotated[
        float | None,
        typer.Option(help=f"Share of training images held out {_shown_default('val_fraction')}."),
    ] = None,
    model_kind: Annotated[
        str | None,
        typer.Option(help=f"Model kind: vae, cvae, or a plugin's {_shown_default('kind')}."),
    ] = None,
    model_opt: OptList = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            help=f"Encoder: mlp, conv, resnet, or a plugin's {_shown_default('encoder')}."
        ),
    ] = None,
    encoder_opt: OptList = None,
    decoder: Annotated[
        str | None, typer.Option(help="Decoder (default: the encoder's family).")
    ] = None,
    decoder_opt: OptList = None,
    likelihood: Annotated[
        str | None,
        typer.Option(
            help="Likelihood p(x|z): gaussian, bernoulli, laplace, or a plugin's "
            f"{_shown_default('likelihood')}."
        ),
    ] = None,
    likelihood_opt: OptList = None,
    prior: Annotated[
        str | None, typer.Option(help=f"Prior p(z) {_shown_default('prior')}.")
    ] = None,
    prior_opt: OptList = None,
    latent_dim: Annotated[
        int | None,
        typer.Option("--latent-dim", "-z", help=f"Latent size {_shown_default('latent_dim')}."),
    ] = None,
    kl_schedule: Annotated[
        str | None,
        typer.Option(
            help="KL weight schedule: constant, warmup, sigmoid, cyclical "
            f"{_shown_default('kl_schedule')}."
        ),
    ] = None,
    kl_opt: OptList = None,
    free_bits: Annotated[
        float | None,
        typer.Option(help="KL floor in nats per latent dimension \\[default: 0, off]."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Training epochs \\[default: {_default('epochs')}; with --resume: the run's own]."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Batch size {_shown_default('batch_size')}.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help=f"Adam learning rate {_shown_default('lr')}.")
    ] = None,
    grad_clip: Annotated[
        float | None,
        typer.Option(
            help=f"Clip the gradient norm at this value (0: off) {_shown_default('grad_clip')}."
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop when the validation -ELBO has not improved for N epochs; "
            "keep the best weights."
        ),
    ] = None,
    max_skipped_steps: Annotated[
        int | None,
        typer.Option(
            help="Non-finite steps skipped per epoch before rolling back "
            f"{_shown_default('max_skipped_steps')}."
        ),
    ] = None,
    max_rollbacks: Annotated[
        int | None,
        typer.Option(
            help="Roll-backs (learning rate halved) before giving up "
            f"{_shown_default('max_rollbacks')}."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_SEED,
            help=f"Random seed (data split, init, noise) {_shown_default('seed')}.",
        ),
    ] = None,
    accelerator: Annotated[
        str | None,
        typer.Option(
            help=f"Where to train: auto, cpu, cuda, or a plugin's {_shown_default('accelerator')}."
        ),
    ] = None,
    accelerator_opt: OptList = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(help=f"Folder that holds run directories {_shown_default('runs_dir')}."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name (default: timestamp and encoder).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue run --name (default: latest) from its checkpoint.")
    ] = False,
    logger: Annotated[
        list[str] | None,
        typer.Option(help="Also log to: tensorboard (needs the tensorboard package). Repeatable."),
    ] = None,
    figures: Annotated[
        bool | None,
        typer.Option(help="Draw the run's pictures into RUN/figures/ at the end \\[default: on]."),
    ] = None,
    fit_prior: Annotated[
        int | None,
        typer.Option(
            help="Fit a mixture of this many Gaussians to the training latents at the end; "
            "`sample` draws from it (0: none, sample from p(z)) \\[default: 25 with the "
            "normal prior, 0 with any other].",
        ),
    ] = None,
) -> None:
    """Train a VAE; leaves runs/<name>/ with the model, config, metrics and grids."""
    with user_errors():
        import os

        if accelerator == "cuda":  # a machine with no GPU driver: refused before torch loads
            from vaekit.builtin.accelerators import gpu_driver_present, not_available

            if not gpu_driver_present():
                raise not_available("cuda")

        from vaekit.config import TrainConfig
        from vaekit.options import parse_options
        from vaekit.progress import RichTrainReporter
        from vaekit.train import train as run_training

        given: dict[str, Any] = dict(
            data=data,
            dataset=dataset,
            image_size=image_size,
            channels=channels,
            val_fraction=val_fraction,
            kind=model_kind,
            encoder=encoder,
            decoder=decoder,
            likelihood=likelihood,
            prior=prior,
            latent_dim=latent_dim,
            kl_schedule=kl_schedule,
            free_bits=free_bits,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            grad_clip=grad_clip,
            patience=patience,
            max_skipped_steps=max_skipped_steps,
            max_rollbacks=max_rollbacks,
            seed=seed,
            accelerator=accelerator,
            runs_dir=None if runs_dir is None else str(runs_dir),
            name=name,
            loggers=list(logger) if logger else None,
            figures=figures,
            fit_prior=fit_prior,
        )
        for key, pairs, flag in (
            ("dataset_options", dataset_opt, "--dataset-opt"),
            ("kind_options", model_opt, "--model-opt"),
            ("encoder_options", encoder_opt, "--encoder-opt"),
            ("decoder_options", decoder_opt, "--decoder-opt"),
            ("likelihood_options", likelihood_opt, "--likelihood-opt"),
            ("prior_options", prior_opt, "--prior-opt"),
            ("kl_schedule_options", kl_opt, "--kl-opt"),
            ("accelerator_options", accelerator_opt, "--accelerator-opt"),
        ):
            if pairs:
                given[key] = parse_options(pairs, flag)
        if skip_bad:
            given["skip_bad"] = True
        settings = {key: value for key, value in given.items() if value is not None}
        if resume:
            check_resume_options(settings)
            settings.setdefault("epochs", 0)  # 0: the run's own count
        config = TrainConfig.build(**settings)
        result = run_training(config, resume=resume, reporter=RichTrainReporter(err_console))
        if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 talks
            minutes, seconds = divmod(result.seconds, 60)
            console.print(
                f"{result.stopped} in {int(minutes)} min {seconds:.0f} s; "
                f"model (epoch {result.best_epoch}) saved in [bold]{result.run.path}[/]",
                highlight=False,
            )


def check_resume_options(settings: dict[str, Any]) -> None:
    """With ``--resume``: an ``--epochs`` below 1, or an option whose value differs from
    the run's saved one (it could not apply), is a usage error, never silently dropped."""
    from vaekit.config import TrainConfig
    from vaekit.errors import UsageError
    from vaekit.train import RESUME_OPTIONS, changed_settings, find_run_to_resume

    if "epochs" in settings and settings["epochs"] < 1:
        raise UsageError(f"--epochs must be >= 1, got {settings['epochs']}")
    if not set(settings) - RESUME_OPTIONS:
        return
    where = {k: settings[k] for k in ("runs_dir", "name") if k in settings}
    saved = find_run_to_resume(TrainConfig.build(**where)).read_config().train
    changed = changed_settings(saved, settings)
    if changed:
        flags = ", ".join(_flag(key) for key in changed)
        raise UsageError(
            f"--resume continues the run with its saved settings, so {flags} cannot change; "
            "leave them out (--resume takes --epochs), or start a new run with another --name"
        )


def _flag(key: str) -> str:
    """The command-line spelling of a TrainConfig setting."""
    special = {"data": "DATA", "kind": "--model-kind", "kind_options": "--model-opt"}
    if key in special:
        return special[key]
    if key.endswith("_options"):
        stem = {"kl_schedule": "kl"}.get(key[: -len("_options")], key[: -len("_options")])
        return f"--{stem.replace('_', '-')}-opt"
    return f"--{key.replace('_', '-')}"


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List installed plugins (with their package and status) and every component."""
    with user_errors():
        from vaekit.plugins import FAMILIES, get_plugin_host

        host = get_plugin_host()
        components = {
            family: {name: c.plugin for name, c in sorted(host.registry(family).items())}
            for family in FAMILIES
        }
        plugins = [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "status": p.status,
                "builtin": p.builtin,
                "hooks": p.hooks,
                "error": p.error,
            }
            for p in host.plugins.values()
        ]
        conflicts = [
            {"family": family, "name": name, "error": message}
            for family, names in host.conflicts.items()
            for name, message in sorted(names.items())
        ]
        if as_json:
            payload = {"plugins": plugins, "components": components, "conflicts": conflicts}
            typer.echo(json.dumps(payload, indent=2))
            return
        from rich.table import Table

        table = Table(title="plugins")
        for column in ("plugin", "distribution", "version", "status"):
            table.add_column(column)
        for p in plugins:
            status = "[green]ok[/]" if p["status"] == "ok" else f"[red]broken[/]: {p['error']}"
            table.add_row(p["name"], p["distribution"], p["version"], status)
        console.print(table)
        table = Table(title="components")
        table.add_column("family")
        table.add_column("names (plugin)")
        for family, names in components.items():
            listed = ", ".join(
                name if plugin.startswith("vaekit.builtin") else f"{name} ({plugin})"
                for name, plugin in names.items()
            )
            table.add_row(family, listed)
        console.print(table)
        for conflict in conflicts:
            err_console.print(f"[bold red]conflict:[/] {conflict['error']}", highlight=False)


@app.command()
def encode(
    data: Annotated[
        str | None,
        typer.Argument(help="Image folder or data file; none: the run's own training data."),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Latent store to write (HDF5).")
    ] = Path("latents.h5"),
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Run directory of the trained model.")
    ] = Path("runs/latest"),
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    split: Annotated[
        str | None, typer.Option(help="Encode only this split: train, val, test (default: all).")
    ] = None,
    compression: Annotated[str, typer.Option(help="HDF5 compression: gzip, lzf or none.")] = "gzip",
    samples: Annotated[
        int, typer.Option(help="Also store K posterior draws per image (samples, N×K×D).")
    ] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Encode a dataset into an HDF5 latent store (mu, logvar, labels, ids, split)."""
    with user_errors():
        import os

        from vaekit.encode import encode_dataset
        from vaekit.progress import CountBar

        lead = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 talks
        progress = CountBar("encode", err_console)

        try:
            path = encode_dataset(
                data,
                output,
                model_dir=model,
                batch_size=batch_size,
                split=split,
                compression=compression,
                samples=samples,
                overwrite=overwrite,
                progress=progress if lead else None,
            )
        finally:
            progress.stop()
        if lead:
            from vaekit.store import LatentStore

            with LatentStore.open(path) as store:
                console.print(
                    f"wrote [bold]{path}[/]: {store.n:,} rows × {store.latent_dim} latents"
                )


@app.command("inspect")
def inspect_command(
    path: Annotated[
        Path, typer.Argument(help="A latent store (.h5), a cluster file (.json) or a run dir.")
    ],
) -> None:
    """Summarise a latent store, a cluster file or a run directory."""
    with user_errors():
        from vaekit.summary import summarise

        for renderable in summarise(path):
            console.print(renderable)


@app.command("fit-cluster")
def fit_cluster_command(
    label: Annotated[
        list[str],
        typer.Option(
            "--label",
            "-l",
            help="Label query, repeatable and ANDed: smiling, ~eyeglasses, 'smiling and not bald'.",
        ),
    ],
    latents: Annotated[Path, typer.Option(help="Latent store written by `vaekit encode`.")] = Path(
        "latents.h5"
    ),
    covariance: Annotated[
        str, typer.Option(help="full, diag, shrunk (Ledoit-Wolf) or spherical.")
    ] = "full",
    components: Annotated[
        int | None,
        typer.Option(
            help="Gaussians in the mixture (1: one) \\[default: up to 5, as many as the "
            "subset's size allows]."
        ),
    ] = None,
    gate: Annotated[
        float,
        typer.Option(
            help="Keep only draws a linear probe on the latents gives at least this "
            "probability of carrying the label (0: no gate)."
        ),
    ] = 0.9,
    max_rows: Annotated[
        int | None, typer.Option(help="Fit a seeded random sample of this many rows.")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for --max-rows and the mixture fit.")
    ] = 0,
    split: Annotated[
        str | None, typer.Option(help="Only rows of this split: train, val or test.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Cluster file (default: clusters/<query>.json)."),
    ] = None,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge",
            help="Then say how many of its draws the run's judge (a classifier trained on "
            "the labelled images) finds on-label.",
        ),
    ] = False,
    judge_steps: JudgeStepsOption = 2000,
) -> None:
    """Fit a Gaussian (or mixture) to the latents of a labelled subset; write a cluster file."""
    with user_errors():
        from vaekit.cluster import default_cluster_path, fit_cluster

        check_judge_steps(judge_steps)

        path = output or default_cluster_path(label)
        cluster = fit_cluster(
            latents,
            label,
            covariance=covariance,
            components=components,
            max_rows=max_rows,
            seed=seed,
            split=split,
            output=path,
            gate=gate,
        )
        fitted = "" if cluster.fitted_rows == cluster.n else f" (fitted on {cluster.fitted_rows:,})"
        mixture = f"{cluster.components} × " if cluster.components > 1 else ""
        gated = ""
        if cluster.gate is not None:  # on the same line: scripts read one line per fit
            gated = (
                f", gated at p ≥ {cluster.gate['threshold']:.2g} by a linear probe "
                f"({cluster.gate['accuracy']:.1%} right on the rows)"
            )
        console.print(
            f"fitted [bold]{cluster.query}[/]: {cluster.n:,} rows{fitted}, {mixture}"
            f"{cluster.covariance_type} covariance in {cluster.latent_dim} dims{gated} "
            f"-> [bold]{path}[/]"
        )
        if judge:
            from vaekit.generation import judge_cluster
            from vaekit.progress import CountBar

            bar = CountBar("train judge", err_console, transient=True)
            try:
                rate = judge_cluster(path, judge_steps=judge_steps, progress=bar)
            finally:
                bar.stop()
            ceiling = (
                "" if rate.ceiling is None else f" (real '{rate.query}' images: {rate.ceiling:.1%})"
            )
            console.print(f"judge: {rate.rate:.1%} of {rate.n:,} draws are '{rate.query}'{ceiling}")


@app.command("sample")
def sample_command(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Run directory (default: the run that encoded the cluster's or --latents' "
            "latents, else runs/latest).",
        ),
    ] = None,
    prior: Annotated[
        bool,
        typer.Option(
            "--prior",
            help="Draw z from the run's prior (the default): the mixture fitted to its "
            "training latents when it has one (runs since vaekit 0.5), else p(z).",
        ),
    ] = False,
    model_prior: Annotated[
        bool,
        typer.Option("--model-prior", help="Draw z from the model's p(z), not the fitted prior."),
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(help="Cluster file, or a name: smiling -> clusters/smiling.json."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Class of a class-conditional model.")] = None,
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 64,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Random seed.")] = 0,
    temperature: Annotated[float, typer.Option(help="Scale of z's standard deviation.")] = 1.0,
    pixels: Annotated[
        str, typer.Option(help="mean: the likelihood's mean image; sample: a draw from it.")
    ] = "mean",
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "grid.png"
    ),
    save: Annotated[
        Path | None,
        typer.Option(help="Also save each result: a folder (PNGs), or .npy/.h5 (latents)."),
    ] = None,
    from_image: Annotated[
        Path | None, typer.Option("--from", help="Edit this image along an attribute vector.")
    ] = None,
    add: Annotated[
        list[str] | None, typer.Option(help="With --from: the attribute to add (a label query).")
    ] = None,
    strength: Annotated[float, typer.Option(help="With --from: how far to move.")] = 1.0,
    latents: Annotated[
        Path, typer.Option(help="With --from: the store the attribute vector comes from.")
    ] = Path("latents.h5"),
    ncol: Annotated[int | None, typer.Option(help="Grid columns (default: near square).")] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an existing --save file or folder, or a -o that is no PNG."),
    ] = False,
) -> None:
    """Draw images from a cluster, the prior or a class, into a PNG grid."""
    with user_errors():
        if label and not cluster and from_image is None:  # needs only config.json: at once
            from vaekit.runs import check_class_label

            check_class_label(model or Path("runs/latest"), label)
        import numpy as np

        from vaekit.errors import UsageError
        from vaekit.generate import (
            Generated,
            attribute_edit,
            check_png_output,
            check_save_target,
            default_model_dir,
            prior_description,
            read_model_image,
            sample,
            save_samples,
            write_grid,
        )
        from vaekit.runs import open_run

        check_png_output(output, overwrite)
        if ncol is not None and not 1 <= ncol <= MAX_NCOL:
            raise UsageError(f"--ncol must be from 1 to {MAX_NCOL:,}, got {ncol}")
        if not math.isfinite(strength):
            raise UsageError(f"--strength must be a finite number, got {strength}")
        if save is not None:  # every check before any write (the grid comes first)
            check_save_target(save, overwrite=overwrite)
        if from_image is not None:
            if not add:
                raise UsageError("--from needs --add LABEL (e.g. --add smiling)")
            if prior or cluster or label:
                raise UsageError("--from edits an image; leave out --prior, --cluster and --label")
            net = open_run(model or default_model_dir(latents))
            x = read_model_image(net, from_image)
            result = attribute_edit(net, x, latents, add, strengths=(0.0, strength))
            images = np.concatenate([x[None], result.images])
            edit = f"add {' '.join(add)} ×{strength:g}"
            titles = ["original", "recon", edit] if (ncol or 3) == 3 else None
            write_grid(images, output, ncol=ncol or 3, titles=titles)
            console.print(
                f"wrote [bold]{output}[/]: original, reconstruction, {' and '.join(add)} "
                f"at strength {strength}"
            )
            result = Generated(images[1:], result.z)
        else:
            if add:
                raise UsageError("--add needs --from IMAGE (the image to edit)")
            if (prior or model_prior) and cluster:
                raise UsageError("give either --prior/--model-prior or --cluster, not both")
            net = open_run(model or default_model_dir(cluster))
            result = sample(
                net,
                n,
                cluster=cluster,
                label=label,
                seed=seed,
                temperature=temperature,
                pixels=pixels,
                model_prior=model_prior,
            )
            for note in result.warnings:
                err_console.print(f"[yellow]warning:[/] {note}", highlight=False)
            write_grid(result.images, output, ncol=ncol)
            source = f"cluster {cluster}" if cluster else prior_description(net, model_prior)
            if label:
                source += f", class {label}"
            console.print(f"wrote [bold]{output}[/]: {n} samples from {source}")
        if save is not None:
            path, what = save_samples(result, save, overwrite=overwrite)
            console.print(f"saved {what} to [bold]{path}[/]")


@app.command("interpolate")
def interpolate_command(
    a: Annotated[
        str | None,
        typer.Argument(
            help="Start: image file, store row (latents.h5:123), prior:SEED or cluster."
        ),
    ] = None,
    b: Annotated[str | None, typer.Argument(help="End: as A.")] = None,
    steps: Annotated[int, typer.Option(help="Images between the two ends.")] = 10,
    method: Annotated[str, typer.Option(help="lerp or slerp.")] = "lerp",
    pairs: Annotated[
        int | None, typer.Option(help="Instead of A and B: N walks between random store rows.")
    ] = None,
    latents: Annotated[Path, typer.Option(help="Store for --pairs.")] = Path("latents.h5"),
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed for --pairs.")] = 0,
    label: Annotated[
        str | None,
        typer.Option(help="Class to walk in (class-conditional models only, which need it)."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="Run directory (default: the run that encoded A, else latest)."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "walk.png"
    ),
    overwrite: Overwrite = False,
) -> None:
    """Walk through latent space from A to B; end columns are the reconstructions of A and B."""
    with user_errors():
        from vaekit.errors import UsageError
        from vaekit.generate import (
            check_png_output,
            default_model_dir,
            interpolate,
            interpolate_pairs,
            walk_titles,
            write_grid,
        )
        from vaekit.runs import open_run

        check_png_output(output, overwrite)
        if pairs is not None:
            if a is not None or b is not None:
                raise UsageError("give A and B, or --pairs N, not both")
        elif a is None or b is None:
            raise UsageError(
                "give two ends A and B (image files, latents.h5:ROW or clusters), or --pairs N"
            )
        ends = (latents,) if pairs is not None else (a, b)
        net = open_run(model or default_model_dir(*ends))
        if pairs is not None:
            result = interpolate_pairs(net, latents, pairs, steps, method, seed, label)
            rows = pairs
        else:
            result = interpolate(net, a, b, steps, method, label)
            rows = 1
        write_grid(result.images, output, ncol=steps + 2, titles=walk_titles(steps))
        console.print(
            f"wrote [bold]{output}[/]: {rows} × {steps + 2} images ({method}; the end "
            "columns, A and B, are their reconstructions)"
        )


@app.command("reconstruct")
def reconstruct_command(
    data: Annotated[
        str | None,
        typer.Argument(help="Image folder or data file; none: the run's own training data."),
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 32,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for choosing the images.")
    ] = 0,
    split: Annotated[
        str | None, typer.Option(help="Only images of this split: train, val or test.")
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Run directory of the model.")
    ] = Path("runs/latest"),
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "recon.png"
    ),
    overwrite: Overwrite = False,
) -> None:
    """Originals beside their reconstructions, with the run's preprocessing."""
    with user_errors():
        from vaekit.generate import check_png_output, reconstruct, side_by_side, write_grid
        from vaekit.runs import open_run

        check_png_output(output, overwrite)
        net = open_run(model)
        originals, recon = reconstruct(net, data, n=n, seed=seed, split=split)
        pairs = min(8, len(originals))
        write_grid(
            side_by_side(originals, recon),
            output,
            ncol=2 * pairs,
            titles=["input", "recon"] * pairs,
            group=2,
        )
        console.print(
            f"wrote [bold]{output}[/]: {len(originals)} originals, each beside its reconstruction"
        )


#: The generation section's options, shared by `evaluate` and `report`.
GenerationFlag = Annotated[
    bool,
    typer.Option(
        "--generation/--no-generation",
        help="Also judge what the model generates (a classifier trained on the run's "
        "labelled images: on-label rates, shares, Fréchet distance, precision/recall, "
        "PSNR/SSIM).",
    ),
]
ClustersOption = Annotated[
    list[str] | None,
    typer.Option(help="With --generation: also judge this cluster's draws (repeatable)."),
]
SamplesOption = Annotated[
    int, typer.Option(help="With --generation: images drawn per set (prior, each cluster).")
]


def check_judge_steps(judge_steps: int) -> None:
    """Refuse a ``--judge-steps`` out of range, before anything is loaded."""
    from vaekit.errors import UsageError

    if not 1 <= judge_steps <= 1_000_000:
        raise UsageError(f"--judge-steps must be from 1 to 1,000,000, got {judge_steps}")


def check_generation_options(
    generation: bool,
    cluster: list[str] | None,
    samples: int,
    judge_steps: int = 2000,
    iwae_k: int = 0,
) -> None:
    """Refuse evaluation and generation options that cannot apply, before anything is
    loaded (no torch, no data, no judge)."""
    from vaekit.errors import UsageError
    from vaekit.limits import check_iwae_k

    check_iwae_k(iwae_k)
    if samples < 2:
        raise UsageError(f"--samples must be >= 2, got {samples}")
    check_judge_steps(judge_steps)
    if cluster and not generation:
        raise UsageError("--cluster is judged with --generation; drop --no-generation")


@app.command("evaluate")
def evaluate_command(
    data: Annotated[
        str | None,
        typer.Argument(help="Image folder or data file; none: the run's own data."),
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Run directory of the model.")
    ] = Path("runs/latest"),
    split: Annotated[
        str | None,
        typer.Option(
            help="Split to evaluate: test, val, train or all \\[default: test, else val, else all]."
        ),
    ] = None,
    iwae_k: Annotated[
        int, typer.Option(help="Importance samples per image for the IWAE bound (0: none).")
    ] = 100,
    by_label: Annotated[
        bool, typer.Option("--by-label", help="Also per class (or per binary attribute).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of the posterior draws.")
    ] = 0,
    accelerator: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    max_images: Annotated[
        int | None, typer.Option(help="Evaluate a seeded random subset of this many images.")
    ] = None,
    generation: GenerationFlag = True,
    cluster: ClustersOption = None,
    samples: SamplesOption = 1000,
    judge_steps: JudgeStepsOption = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """−ELBO, reconstruction NLL, KL, the IWAE bound, bits/dim, active units and what the
    model generates."""
    with user_errors():
        from vaekit.data import HELD_OUT
        from vaekit.evaluate import evaluate
        from vaekit.progress import CountBar

        check_generation_options(generation, cluster, samples, judge_steps, iwae_k)
        progress = CountBar("evaluate", err_console, transient=True)
        judge_bar = CountBar("train judge", err_console, transient=True)

        try:
            result = evaluate(
                model,
                data,
                split=split or HELD_OUT,
                iwae_k=iwae_k,
                by_label=by_label,
                batch_size=batch_size,
                seed=seed,
                accelerator=accelerator,
                progress=None if as_json else progress,
                max_images=max_images,
                generation=generation,
                clusters=cluster or (),
                samples=samples,
                judge_steps=judge_steps,
                judge_progress=None if as_json else judge_bar,
            )
        finally:
            progress.stop()
            judge_bar.stop()
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
            return
        _print_evaluation(result)
        if result.generation is not None:
            _print_generation(result.generation)


def _print_evaluation(result: Any) -> None:
    """The evaluation as rich tables: totals, per dimension, per group."""
    from rich.markup import escape
    from rich.table import Table

    from vaekit.report import metrics_rows

    table = Table(title=f"evaluation of {result.run_dir} ({result.split} split)")
    for column, justify in (("measure", "left"), ("value", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, value, note in metrics_rows(result):
        shown = (
            "–" if value is None else (f"{value:,}" if isinstance(value, int) else f"{value:.2f}")
        )
        table.add_row(escape(name), shown, escape(note))
    console.print(table)
    table = Table(title="latent dimensions")
    for column in ("dim", "KL (nats)", "Cov_x E_q[z_d]", "active"):
        table.add_column(escape(column), justify="right")
    active = set(result.active)
    per_dim = result.kl_per_dim or [None] * len(result.mean_variance)  # None: KL does not split
    for d, (kl, var) in enumerate(zip(per_dim, result.mean_variance, strict=True)):
        shown = "–" if kl is None else f"{kl:.3f}"
        table.add_row(str(d), shown, f"{var:.4f}", "yes" if d in active else "")
    console.print(table)
    if result.groups:
        k = list(result.iwae)[-1:] if result.iwae else []
        table = Table(title=f"per {result.group_kind}")
        columns = [result.group_kind, "images", "−ELBO", "recon NLL", "KL"]
        columns += [f"−IWAE K={k[0]:,}"] if k else []
        for column in [*columns, "active"]:
            table.add_column(column, justify="right")
        for g in result.groups:
            cells = [
                escape(g.name),
                f"{g.n:,}",
                f"{g.neg_elbo:.2f}",
                f"{g.recon_nll:.2f}",
                f"{g.kl:.2f}",
            ]
            cells += [f"{g.iwae[k[0]]:.2f}"] if k else []
            table.add_row(*cells, str(g.active_units))
        console.print(table)


def _print_generation(found: Any) -> None:
    """The generation section as rich tables (rows shared with the report)."""
    from rich.markup import escape
    from rich.table import Table

    from vaekit.generation import generation_rows

    for title, header, rows in generation_rows(found):
        table = Table(title=escape(title))
        for i, column in enumerate(header):
            table.add_column(escape(column), justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(escape(_cell(v)) for v in row))
        console.print(table)
    for line in found.skipped:
        err_console.print(f"[yellow]skipped:[/] {escape(line)}")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@app.command("report")
def report_command(
    data: Annotated[
        str | None,
        typer.Argument(help="Image folder or data file; none: the run's own data."),
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Run directory of the model.")
    ] = Path("runs/latest"),
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    split: Annotated[
        str | None, typer.Option(help="Split to evaluate (default: test, else val, else all).")
    ] = None,
    iwae_k: Annotated[int, typer.Option(help="Importance samples for the IWAE bound.")] = 100,
    by_label: Annotated[
        bool, typer.Option(help="Per-class (or per-attribute) table when the data has labels.")
    ] = True,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of the posterior draws.")
    ] = 0,
    accelerator: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    generation: GenerationFlag = True,
    cluster: ClustersOption = None,
    samples: SamplesOption = 1000,
    judge_steps: JudgeStepsOption = 2000,
    max_images: Annotated[
        int | None,
        typer.Option(help="Evaluate and draw a seeded random subset of this many images."),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """One self-contained HTML page: config, metrics, curves, scatter, traversals, grids."""
    with user_errors():
        from vaekit.data import HELD_OUT
        from vaekit.report import build_report

        check_generation_options(generation, cluster, samples, judge_steps, iwae_k)
        path, result = build_report(
            model,
            output,
            data,
            split=split or HELD_OUT,
            iwae_k=iwae_k,
            by_label=by_label,
            seed=seed,
            accelerator=accelerator,
            generation=generation,
            clusters=cluster or (),
            samples=samples,
            judge_steps=judge_steps,
            overwrite=overwrite,
            max_images=max_images,
        )
        console.print(
            f"wrote [bold]{path}[/]: {result.n:,} {result.split} images, "
            f"−ELBO {result.neg_elbo:.2f} nats"
        )


@app.command("runs")
def runs_command(
    compare: Annotated[
        list[str] | None,
        typer.Argument(
            help="Two or more runs to compare side by side (names in --runs-dir, or paths); "
            "none: list every run.",
            show_default=False,
        ),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Folder of run directories.")] = Path("runs"),
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List runs with their status, epochs, best validation −ELBO and components; or compare
    runs: the settings that differ and their metrics."""
    with user_errors():
        from rich.table import Table

        from vaekit.runlist import compare_runs, list_runs

        if compare:
            paths = [c if Path(c).exists() or "/" in c else str(runs_dir / c) for c in compare]
            found = compare_runs(paths)
            if json_output:
                console.print_json(
                    data={
                        "runs": [r.to_dict() for r in found.runs],
                        "differing": found.differing,
                        "metrics": found.metrics,
                    }
                )
                return
            table = Table(title="runs compared")
            table.add_column("")
            for info in found.runs:
                table.add_column(info.name, overflow="fold")
            for key, values in found.metrics.items():
                table.add_row(f"[bold]{key}[/]", *(_cell(v) for v in values))
            if found.differing:
                table.add_section()
            for key, values in found.differing.items():
                table.add_row(key, *(_cell(v) for v in values))
            console.print(table)
            if not found.differing:
                console.print("the runs' settings are the same")
            return
        infos = list_runs(runs_dir)
        if json_output:
            console.print_json(data=[r.to_dict() for r in infos])
            return
        table = Table(title=f"runs in {runs_dir}")
        for column in ("run", "status", "epochs", "best val −ELBO"):
            table.add_column(column, no_wrap=True)
        table.add_column("components", overflow="fold")
        table.add_column("created", overflow="fold")
        for info in infos:
            best = "" if info.best_val is None else f"{info.best_val:.2f} (epoch {info.best_epoch})"
            name = f"{info.name} (latest)" if info.latest else info.name
            epochs = f"{info.epochs_done} of {info.epochs}" if info.epochs else ""
            table.add_row(name, info.status, epochs, best, info.components, info.created)
        console.print(table)
        for info in infos:
            if info.problem:
                console.print(f"{info.name}: {info.problem}", highlight=False)


def _add_plugin_commands() -> None:
    """Let plugins add commands (``register_commands``); a failure never breaks the CLI."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from vaekit.plugins import get_plugin_host

            get_plugin_host().hook.register_commands(cli=app)
        for warning in caught:
            err_console.print(
                f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True
            )
    except VaekitError as exc:
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False)
        raise SystemExit(exc.exit_code) from None


def _show_plugin_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Plugin and training warnings as one clean line (no source location); others as Python
    shows them."""
    from vaekit.plugins import VaekitPluginWarning

    if issubclass(category, VaekitPluginWarning) or category.__name__ == "TrainingWarning":
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


class _Deferred(type):
    """The class of a stand-in that loads the real class on first use (see below)."""

    def __getattr__(cls, attr: str) -> Any:  # class attributes, e.g. Traceback.from_exception
        return getattr(cls.real(), attr)


def _stand_in(module: str, name: str) -> type:
    """A stand-in for class ``module.name``: calling it or reading its attributes imports
    the real class and uses that."""

    def real() -> Any:
        return getattr(importlib.import_module(module), name)

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return real()(*args, **kwargs)

    return _Deferred(name, (), {"__new__": new, "real": staticmethod(real)})


def _import_help_formatter() -> None:
    """Import typer's rich help formatter without rich.markdown and rich.traceback.

    ``typer.rich_utils`` imports both at module level (markdown_it and pygments
    with them: a fifth of ``vaekit --help``), but vaekit uses neither: its help
    is rich markup, not markdown, and pretty exceptions are off. While it is
    imported, those two modules are stand-ins whose classes import the real ones
    when first used; afterwards ``import rich.markdown`` gets the real module.
    """
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {}
    for module, name in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if module not in sys.modules:
            stand_ins[module] = types.ModuleType(module)
            setattr(stand_ins[module], name, _stand_in(module, name))
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        for module, stub in stand_ins.items():
            if sys.modules.get(module) is stub:
                del sys.modules[module]


#: ``vaekit train --help`` groups its many options under these panels.
TRAIN_PANELS = {
    "Data": (
        "dataset", "dataset_opt", "image_size", "channels", "skip_bad", "val_fraction",
    ),
    "Model": (
        "model_kind", "model_opt", "encoder", "encoder_opt", "decoder", "decoder_opt",
        "likelihood", "likelihood_opt", "prior", "prior_opt", "latent_dim",
    ),
    "Training": (
        "kl_schedule", "kl_opt", "free_bits", "epochs", "batch_size", "lr", "grad_clip",
        "patience", "max_skipped_steps", "max_rollbacks", "seed", "accelerator",
        "accelerator_opt", "fit_prior",
    ),
    "Output": ("runs_dir", "name", "resume", "logger", "figures"),
}  # fmt: skip


def _metavar(annotation: Any, name: str, argument: bool) -> str:
    """A readable placeholder for a parameter: ``N``, ``X``, ``PATH``, ``TEXT`` (none for
    a flag), where typer would show ``<int>``, ``<bool>`` or ``<list[str]>``."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union) and args:
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if argument:
        return name.upper()
    return {bool: "", int: "N", float: "X", Path: "PATH"}.get(annotation, "TEXT")


def _readable_help() -> None:
    """Give every built-in command's parameters readable placeholders and ``train``'s
    options their panels (typer's own show ``<int>``, ``<list[str]>``, one long list)."""
    import typing

    from typer.core import TyperArgument
    from typer.models import ArgumentInfo, OptionInfo

    shown_type = TyperArgument.display_type_rich
    if not getattr(shown_type, "vaekit", False):  # an argument named by its metavar: no <str>

        def argument_type(self: Any, ctx: Any) -> str | None:
            return None if self.metavar else shown_type(self, ctx)

        argument_type.vaekit = True  # type: ignore[attr-defined]
        TyperArgument.display_type_rich = argument_type  # type: ignore[method-assign]
    panel_of = {name: panel for panel, names in TRAIN_PANELS.items() for name in names}
    for command in app.registered_commands:
        callback = command.callback
        if callback is None:
            continue
        hints = typing.get_type_hints(callback, include_extras=True)
        for name, hint in hints.items():
            if typing.get_origin(hint) is not Annotated:
                continue
            base, *extras = typing.get_args(hint)
            infos = [
                copy.copy(e) if isinstance(e, OptionInfo | ArgumentInfo) else e for e in extras
            ]
            for info in infos:
                if isinstance(info, OptionInfo | ArgumentInfo) and info.metavar is None:
                    info.metavar = _metavar(base, name, isinstance(info, ArgumentInfo))
                if isinstance(info, OptionInfo) and name.endswith("_opt") and not info.help:
                    owner = {"model": "model kind", "kl": "KL schedule"}.get(
                        name[:-4], name[:-4].replace("_", " ")
                    )
                    info.help = f"An option of the {owner} (repeatable; see docs/cli.md)."
                if isinstance(info, OptionInfo) and callback.__name__ == "train":
                    info.rich_help_panel = panel_of.get(name, info.rich_help_panel)
            callback.__annotations__[name] = Annotated[(base, *infos)]  # a copy per parameter


_readable_help()


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    warnings.showwarning = _show_plugin_warning
    _import_help_formatter()
    _add_plugin_commands()
    try:  # typer >= 0.24 vendors click; older ones use click itself
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException  # type: ignore[no-redef]

    try:
        result = app(
            args=argv if argv is not None else sys.argv[1:],
            prog_name="vaekit",
            standalone_mode=False,
        )
    except ClickException as exc:  # a parse error: one line, like the rest
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "vaekit"
        message = " ".join(exc.format_message().split())
        err_console.print(
            f"[bold red]Error:[/] {message} (see `{command} --help`)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except VaekitError as exc:  # from a plugin's command: the same one line as vaekit's own
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    if isinstance(result, int):  # typer.Exit(code), returned outside standalone mode
        sys.exit(result)
    return result


if __name__ == "__main__":
    main()
