"""What every command shares: the consoles, the error handling, and the option types
declared once (``--model``, ``--seed``, ``--json``, ``--overwrite``, the data argument)."""

# No ``from __future__ import annotations`` in the command modules: with string
# annotations typer evaluates every option's annotation twice on every start.

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vaekit.config import MAX_SEED
from vaekit.errors import VaekitError

# soft_wrap: a message is one line whatever the width (a pipe gets no 80-column folds)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
#: Set by the root callback (``--debug``): errors raise with their traceback.
state = {"debug": False}

#: A grid wider than this many images is a typo (and a picture no screen shows).
MAX_NCOL = 10_000

OptList = Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE")]
#: Training steps of a judge trained now (evaluate, report, fit-cluster --judge).
JudgeStepsOption = Annotated[
    int, typer.Option(help="Training steps of a judge trained now (a run's judge is kept).")
]
#: The output rule (docs/guarantees.md): an existing file of another kind is replaced
#: only with --overwrite; pictures replace pictures, reports replace reports.
Overwrite = Annotated[
    bool,
    typer.Option(
        help="Replace an existing output even when it is not of the kind this command writes."
    ),
]
#: A trained run, for the commands that read one.
ModelDir = Annotated[Path, typer.Option("--model", "-m", help="Run directory of the model.")]
#: The images a command reads when given; none: the run's own data.
DataArgument = Annotated[
    str | None,
    typer.Argument(help="Image folder or data file; none: the run's own training data."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
#: The evaluation's own split choice (evaluate, report).
EvalSplit = Annotated[
    str | None,
    typer.Option(
        help="Split to evaluate: test, val, train or all \\[default: test, else val, else all]."
    ),
]
#: Where evaluate and report run.
EvalAccelerator = Annotated[str, typer.Option(help="cpu, cuda or auto.")]


def seed_option(help: str) -> Any:
    """A ``--seed`` option (0 to :data:`MAX_SEED`) with its own help text."""
    return Annotated[int, typer.Option(min=0, max=MAX_SEED, help=help)]


def split_option(help: str = "Only images of this split: train, val or test.") -> Any:
    """A ``--split`` option with its own help text."""
    return Annotated[str | None, typer.Option(help=help)]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a VaekitError as one line and exit 1 (2 for usage errors); traceback with --debug."""
    try:
        yield
    except VaekitError as exc:
        if state["debug"]:
            raise
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:  # train's says which epoch is saved and how to go on
        hint = f"; {exc.args[0]}" if exc.args else ""
        err_console.print(f"[yellow]interrupted[/]{hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except RuntimeError as exc:
        from vaekit.distributed import is_peer_timeout, peer_timeout_message

        if state["debug"] or not is_peer_timeout(exc):
            raise
        print_error(peer_timeout_message())
        raise typer.Exit(1) from None


def print_error(message: str) -> None:
    """One red ``Error:`` line on stderr (paths are never folded; brackets in the message
    are text, never rich markup)."""
    from rich.markup import escape

    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def cell(value: Any) -> str:
    """A table cell: ``–`` for nothing, numbers with thousands separators."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def is_lead_process() -> bool:
    """Under torchrun only rank 0 talks."""
    import os

    return os.environ.get("RANK", "0") == "0"


def print_tables(tables: Any) -> None:
    """Print ``(title, header, rows)`` tables (the library's plain rows: the report's
    generation section, a store's scores) with rich; the first column left-aligned."""
    from rich.markup import escape
    from rich.table import Table

    for title, header, rows in tables:
        table = Table(title=escape(title))
        for i, column in enumerate(header):
            table.add_column(escape(column), justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(escape(cell(v)) for v in row))
        console.print(table)
