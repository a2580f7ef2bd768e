"""`vaekit evaluate`: bounds, latent statistics and the generation section."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vaekit.commands.common import (
    DataArgument,
    EvalAccelerator,
    EvalSplit,
    JsonFlag,
    JudgeStepsOption,
    ModelDir,
    console,
    err_console,
    print_tables,
    seed_option,
    user_errors,
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


def evaluate_command(
    data: DataArgument = None,
    model: ModelDir = Path("runs/latest"),
    split: EvalSplit = None,
    iwae_k: Annotated[
        int, typer.Option(help="Importance samples per image for the IWAE bound (0: none).")
    ] = 100,
    by_label: Annotated[
        bool, typer.Option("--by-label", help="Also per class (or per binary attribute).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    seed: seed_option("Seed of the posterior draws.") = 0,
    accelerator: EvalAccelerator = "cpu",
    max_images: Annotated[
        int | None, typer.Option(help="Evaluate a seeded random subset of this many images.")
    ] = None,
    generation: GenerationFlag = True,
    cluster: ClustersOption = None,
    samples: SamplesOption = 1000,
    judge_steps: JudgeStepsOption = 2000,
    as_json: JsonFlag = False,
) -> None:
    """−ELBO, reconstruction NLL, KL, the IWAE bound, bits/dim, active units and what the
    model generates."""
    with user_errors():
        from vaekit.data import HELD_OUT
        from vaekit.evaluate import evaluate
        from vaekit.progress import evaluation_bars

        check_generation_options(generation, cluster, samples, judge_steps, iwae_k)
        with evaluation_bars(err_console) as (progress, judge_bar):
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

    from vaekit.generation import generation_rows

    print_tables(generation_rows(found))
    for line in found.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(line)}")
    for line in found.skipped:
        err_console.print(f"[yellow]skipped:[/] {escape(line)}")
