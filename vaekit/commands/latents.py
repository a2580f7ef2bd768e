"""`vaekit export` and `vaekit score`: a latent store in the formats other tools read;
how well its posterior means hold the labels."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import json
from pathlib import Path
from typing import Annotated

import typer

from vaekit.commands.common import (
    JsonFlag,
    console,
    err_console,
    print_tables,
    seed_option,
    split_option,
    user_errors,
)

LatentsArgument = Annotated[
    Path, typer.Argument(help="Latent store (HDF5) written by `vaekit encode`.")
]


def export_command(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="File to write: .h5ad (AnnData), .parquet or .npz, by suffix."
        ),
    ],
    latents: LatentsArgument = Path("latents.h5"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Export a latent store to AnnData (.h5ad), Parquet or NPZ."""
    with user_errors():
        from vaekit.export import export_latents

        path = export_latents(latents, output, overwrite=overwrite)
        console.print(f"wrote [bold]{path}[/]", highlight=False)


def score_command(
    latents: LatentsArgument = Path("latents.h5"),
    split: split_option("Score only this split: train, val or test (default: every row).") = None,
    max_rows: Annotated[
        int, typer.Option(min=10, help="Score a seeded random subset of at most this many rows.")
    ] = 5000,
    test_fraction: Annotated[
        float,
        typer.Option(min=0.05, max=0.5, help="Share of each label's rows held out (stratified)."),
    ] = 0.2,
    seed: seed_option("Seed of the subset and of the held-out split.") = 0,
    as_json: JsonFlag = False,
) -> None:
    """Linear-probe accuracy per label and attribute, and MIG, DCI and SAP of the
    posterior means against the attributes."""
    with user_errors():
        from rich.markup import escape

        from vaekit.latent_scores import score_latents, score_tables

        result = score_latents(
            latents, split=split, max_rows=max_rows, seed=seed, test_fraction=test_fraction
        )
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
            return
        print_tables(score_tables(result))
        for factor in result.factors:
            if factor.skipped:
                err_console.print(
                    f"[yellow]skipped:[/] {escape(factor.name)}: {escape(factor.skipped)}"
                )
        for note in result.notes:
            err_console.print(f"[yellow]note:[/] {escape(note)}")
