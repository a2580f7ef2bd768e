"""`vaekit report`: one self-contained HTML page per run."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

from pathlib import Path
from typing import Annotated

import typer

from vaekit.commands.common import (
    DataArgument,
    EvalAccelerator,
    EvalSplit,
    JudgeStepsOption,
    ModelDir,
    Overwrite,
    console,
    err_console,
    seed_option,
    user_errors,
)
from vaekit.commands.evaluate import (
    ClustersOption,
    GenerationFlag,
    SamplesOption,
    check_generation_options,
)


def report_command(
    data: DataArgument = None,
    model: ModelDir = Path("runs/latest"),
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    split: EvalSplit = None,
    iwae_k: Annotated[int, typer.Option(help="Importance samples for the IWAE bound.")] = 100,
    by_label: Annotated[
        bool, typer.Option(help="Per-class (or per-attribute) table when the data has labels.")
    ] = True,
    seed: seed_option("Seed of the posterior draws.") = 0,
    accelerator: EvalAccelerator = "cpu",
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
        from vaekit.progress import evaluation_bars
        from vaekit.report import build_report

        check_generation_options(generation, cluster, samples, judge_steps, iwae_k)
        with evaluation_bars(err_console) as (progress, judge_bar):
            path, result = build_report(
                model,
                output,
                data,
                split=split or HELD_OUT,
                iwae_k=iwae_k,
                by_label=by_label,
                seed=seed,
                accelerator=accelerator,
                progress=progress,
                generation=generation,
                clusters=cluster or (),
                samples=samples,
                judge_steps=judge_steps,
                overwrite=overwrite,
                max_images=max_images,
                judge_progress=judge_bar,
            )
        console.print(
            f"wrote [bold]{path}[/]: {result.n:,} {result.split} images, "
            f"−ELBO {result.neg_elbo:.2f} nats"
        )
