"""`vaekit cluster`: fit a Gaussian (or mixture) to a labelled subset of the latents."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

from pathlib import Path
from typing import Annotated

import typer

from vaekit.commands.common import JudgeStepsOption, console, err_console, seed_option, user_errors
from vaekit.commands.evaluate import check_judge_steps


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
            help="Keep only draws a probe on the latents (quadratic up to 32 dims) gives "
            "at least this probability of carrying the label, for the latent and for its "
            "decoded image encoded again (0: no gate)."
        ),
    ] = 0.9,
    check_images: Annotated[
        bool,
        typer.Option(
            "--check-images/--no-check-images",
            help="With a gate, also redraw latents whose decoded image, encoded again by the "
            "run that encoded the latents, reads less like the label than 80% of real "
            "members' images do (more on-label, somewhat less varied draws).",
        ),
    ] = True,
    max_rows: Annotated[
        int | None, typer.Option(help="Fit a seeded random sample of this many rows.")
    ] = None,
    seed: seed_option("Seed for --max-rows and the mixture fit.") = 0,
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
        from rich.markup import escape

        from vaekit.cluster import default_cluster_path, fit_cluster, weak_gate

        check_judge_steps(judge_steps)

        path = output or default_cluster_path(label)
        reencode, why_not = None, ""
        if gate > 0 and check_images:
            from vaekit.generate import store_reencoder

            reencode, why_not = store_reencoder(latents)
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
            reencode=reencode,
        )
        fitted = "" if cluster.fitted_rows == cluster.n else f" (fitted on {cluster.fitted_rows:,})"
        mixture = f"{cluster.components} × " if cluster.components > 1 else ""
        gated = ""
        if cluster.gate is not None:  # on the same line: scripts read one line per fit
            gated = (
                f", gated at p ≥ {cluster.gate['threshold']:.2g} by a "
                f"{cluster.gate.get('kind', 'linear')} probe "
                f"({cluster.gate['accuracy']:.1%} right on the rows)"
            )
            if "image_threshold" in cluster.gate:
                gated += f" and its decoded images at p ≥ {cluster.gate['image_threshold']:.3g}"
        console.print(
            f"fitted [bold]{cluster.query}[/]: {cluster.n:,} rows{fitted}, {mixture}"
            f"{cluster.covariance_type} covariance in {cluster.latent_dim} dims{gated} "
            f"-> [bold]{path}[/]"
        )
        weak = weak_gate(cluster)
        if weak:
            err_console.print(f"[yellow]warning:[/] {escape(weak)}")
        if why_not and cluster.gate is not None:
            note = f"the gate checks latents only, not decoded images: {why_not}"
            err_console.print(escape(note))
        if judge:
            from vaekit.generation import judge_cluster
            from vaekit.progress import CountBar

            with CountBar("train judge", err_console, transient=True) as bar:
                rate = judge_cluster(path, judge_steps=judge_steps, progress=bar)
            ceiling = (
                "" if rate.ceiling is None else f" (real '{rate.query}' images: {rate.ceiling:.1%})"
            )
            console.print(f"judge: {rate.rate:.1%} of {rate.n:,} draws are '{rate.query}'{ceiling}")
