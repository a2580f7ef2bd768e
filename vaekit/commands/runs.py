"""`vaekit runs`: list and compare run directories."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

from pathlib import Path
from typing import Annotated

import typer

from vaekit.commands.common import cell, console, user_errors


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
                table.add_row(f"[bold]{key}[/]", *(cell(v) for v in values))
            if found.differing:
                table.add_section()
            for key, values in found.differing.items():
                table.add_row(key, *(cell(v) for v in values))
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
