"""The ``vaekit`` command line: thin commands that parse, call the core, print with rich.

Nothing heavy is imported at module level (``vaekit --help`` never loads torch):
each command imports what it needs.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vaekit.errors import VaekitError

app = typer.Typer(
    name="vaekit",
    help="Train VAEs on your images, encode them to HDF5 latents, fit and sample clusters.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

OptList = Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE")]
# --split for commands that read a dataset: the data's own split (IDX train/t10k, CelebA
# partition, split folders) or the seeded train/val split; apply with data.require_split.
SplitOpt = Annotated[
    str,
    typer.Option(help="Which images to use: all, train, val or test.", metavar="SPLIT"),
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
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


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
    val_fraction: Annotated[float, typer.Option(help="Share of training images held out.")] = 0.1,
    model: Annotated[str, typer.Option(help="Model kind.")] = "vae",
    encoder: Annotated[
        str, typer.Option(help="Encoder: mlp, conv, resnet, or a plugin's.")
    ] = "conv",
    encoder_opt: OptList = None,
    decoder: Annotated[
        str | None, typer.Option(help="Decoder (default: the encoder's family).")
    ] = None,
    decoder_opt: OptList = None,
    likelihood: Annotated[
        str, typer.Option(help="Likelihood p(x|z): gaussian, bernoulli, laplace.")
    ] = "gaussian",
    likelihood_opt: OptList = None,
    prior: Annotated[str, typer.Option(help="Prior p(z).")] = "normal",
    prior_opt: OptList = None,
    latent_dim: Annotated[int, typer.Option("--latent-dim", "-z", help="Latent size.")] = 16,
    kl_schedule: Annotated[
        str, typer.Option(help="KL weight schedule: constant, warmup, sigmoid, cyclical.")
    ] = "warmup",
    kl_opt: OptList = None,
    free_bits: Annotated[
        float, typer.Option(help="Per-dimension KL floor in nats (0: off).")
    ] = 0.0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Random seed (data split, init, noise).")] = 0,
    accelerator: Annotated[
        str, typer.Option(help="Where to train: auto, cpu, cuda, or a plugin's.")
    ] = "auto",
    accelerator_opt: OptList = None,
    runs_dir: Annotated[Path, typer.Option(help="Folder that holds run directories.")] = Path(
        "runs"
    ),
    name: Annotated[
        str | None, typer.Option(help="Run name (default: timestamp and encoder).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue run --name (default: latest) from its checkpoint.")
    ] = False,
) -> None:
    """Train a VAE; leaves runs/<name>/ with the model, config, metrics and grids."""
    with user_errors():
        from vaekit.options import parse_options
        from vaekit.progress import RichTrainReporter
        from vaekit.train import TrainConfig
        from vaekit.train import train as run_training

        config = TrainConfig(
            data=data,
            dataset=dataset,
            dataset_options=parse_options(dataset_opt or [], "--dataset-opt"),
            image_size=image_size,
            channels=channels,
            skip_bad=skip_bad,
            val_fraction=val_fraction,
            model=model,
            encoder=encoder,
            encoder_options=parse_options(encoder_opt or [], "--encoder-opt"),
            decoder=decoder,
            decoder_options=parse_options(decoder_opt or [], "--decoder-opt"),
            likelihood=likelihood,
            likelihood_options=parse_options(likelihood_opt or [], "--likelihood-opt"),
            prior=prior,
            prior_options=parse_options(prior_opt or [], "--prior-opt"),
            latent_dim=latent_dim,
            kl_schedule=kl_schedule,
            kl_schedule_options=parse_options(kl_opt or [], "--kl-opt"),
            free_bits=free_bits,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            accelerator=accelerator,
            accelerator_options=parse_options(accelerator_opt or [], "--accelerator-opt"),
            runs_dir=str(runs_dir),
            name=name,
        )
        result = run_training(config, resume=resume, reporter=RichTrainReporter(err_console))
        console.print(f"model saved in [bold]{result.run.path}[/]")


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
        if as_json:
            typer.echo(json.dumps({"plugins": plugins, "components": components}, indent=2))
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
        from vaekit.progress import make_progress

        lead = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 talks
        bar = make_progress(err_console)
        tasks: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not tasks:  # shown once encoding starts, not while options are checked
                bar.start()
                tasks.append(bar.add_task("encode", total=total, info=""))
            bar.update(tasks[0], completed=done)

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
            bar.stop()
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


def _add_plugin_commands() -> None:
    """Let plugins add commands (``register_commands``); a failure never breaks the CLI."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from vaekit.plugins import get_plugin_host

            get_plugin_host().hook.register_commands(cli=app)
        for warning in caught:
            err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False)
    except VaekitError as exc:
        err_console.print(f"[bold red]Error:[/] {exc}", highlight=False)
        raise SystemExit(exc.exit_code) from None


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    _add_plugin_commands()
    return app(args=argv if argv is not None else sys.argv[1:], prog_name="vaekit")


if __name__ == "__main__":
    main()
