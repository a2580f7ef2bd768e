"""`vaekit encode`: encode images into a latent store; inspect a store, cluster file or run."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

from pathlib import Path
from typing import Annotated

import typer

from vaekit.commands.common import DataArgument, console, err_console, is_lead_process, user_errors


def encode(
    data: DataArgument = None,
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
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an existing output file (and encode an up-to-date one again)."),
    ] = False,
    hflip: Annotated[
        bool,
        typer.Option(
            "--hflip",
            help="Also encode each image mirrored left-right (rows 2i and 2i+1, flagged 'hflip').",
        ),
    ] = False,
) -> None:
    """Encode a dataset into an HDF5 latent store (mu, logvar, labels, ids, split); an
    up-to-date store (same data, model and options) is left as it is."""
    with user_errors():
        from vaekit.encode import encode_latents
        from vaekit.progress import CountBar

        lead = is_lead_process()
        with CountBar("encode", err_console) as progress:
            result = encode_latents(
                data,
                output,
                model_dir=model,
                batch_size=batch_size,
                split=split,
                compression=compression,
                samples=samples,
                overwrite=overwrite,
                progress=progress if lead else None,
                hflip=hflip,
            )
        if lead:
            console.print(result.message, highlight=False)


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
