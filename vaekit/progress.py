"""Rich display of long work: the training progress bar and summary table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def make_progress(console: Console | None = None, transient: bool = False) -> Progress:
    """A progress bar with counts, times and a free-text ``info`` field."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        refresh_per_second=4,  # a redraw costs CPU that training on 2 cores would feel
    )


class CountBar:
    """A ``progress(done, total)`` callback that shows a bar from its first call on (not
    while options are still being checked); call :meth:`stop` in ``finally``. On a
    console that is not a terminal (output redirected to a file or a pipe), where no bar
    is drawn until the work ends, it writes one line when the work starts (and, for a
    transient bar, which leaves nothing behind, one when it stops)."""

    def __init__(self, description: str, console: Console | None = None, transient: bool = False):
        self.description = description
        self.bar = make_progress(console, transient=transient)
        self.transient = transient
        self.task: Any = None
        self.done, self.total = 0, 0

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total, info="")
            if not self.bar.console.is_terminal:
                self._say(f"{self.description}: {total:,} to do")
        self.done, self.total = done, total
        self.bar.update(self.task, completed=done)

    def stop(self) -> None:
        if self.task is not None:  # a bar never shown leaves no blank line behind
            self.bar.stop()
            if self.transient and not self.bar.console.is_terminal:  # else the bar stays
                self._say(f"{self.description}: {self.done:,} of {self.total:,} done")
            self.bar.remove_task(self.task)  # a bar used again starts afresh
            self.task = None

    def _say(self, line: str) -> None:
        self.bar.console.print(line, highlight=False, markup=False)

    def __enter__(self) -> CountBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()  # the bar never outlives the work, whatever ended it


@contextmanager
def evaluation_bars(console: Console | None = None) -> Iterator[tuple[CountBar, CountBar]]:
    """The transient bars of an evaluation and of the judge's training (``evaluate``,
    ``report``), stopped whatever ends the work."""
    with (
        CountBar("evaluate", console, transient=True) as progress,
        CountBar("train judge", console, transient=True) as judge,
    ):
        yield progress, judge


class RichTrainReporter:
    """Shows loss, recon, KL, beta and samples/s while training; a table at the end."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = make_progress(self.console)
        self.task: Any = None

    def banner(self, lines: list[str]) -> None:
        """The run's set-up, one line each (data, model, device, run directory)."""
        for line in lines:
            self.console.print(line, highlight=False, markup=False)

    def start(self, total_steps: int, done_steps: int, run: Any) -> None:
        self.console.print(f"training into [bold]{run.path}[/]")
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_steps, completed=done_steps, info=""
        )

    def update(self, step: int, m: dict[str, float]) -> None:
        info = (
            f"epoch {m['epoch']}  loss {m['loss']:.2f}  recon {m['recon']:.2f}  "
            f"KL {m['kl']:.2f}  β {m['beta']:.3f}  {m['samples_per_s']:.0f} samples/s"
        )
        self.progress.update(self.task, completed=step, info=info)

    def epoch_end(self, epoch: int, m: dict[str, float]) -> None:
        val = f"  val {m['val_loss']:.2f}" if "val_loss" in m else ""
        seconds = f"  {m['epoch_seconds']:.1f} s" if "epoch_seconds" in m else ""
        faults = ""
        if m.get("skipped_steps") or m.get("overflow_steps"):
            faults = (
                f"  skipped {m.get('skipped_steps', 0)} (non-finite), "
                f"{m.get('overflow_steps', 0)} (fp16 overflow)"
            )
        extras = "".join(
            f"  {key[: -len('_loss')]} {value:.3f}"
            for key, value in m.items()
            if key.endswith("_loss") and key != "val_loss" and isinstance(value, float)
        )
        self.progress.console.print(
            f"epoch {epoch:>3}  loss {m['loss']:.3f}  recon {m['recon']:.3f}  KL {m['kl']:.3f}"
            f"{val}{extras}{seconds}{faults}"
        )

    def end(self, history: list[dict[str, Any]]) -> None:
        self.progress.stop()
        if history:
            self.console.print(summary_table(history))


def summary_table(history: list[dict[str, Any]]) -> Table:
    """First and last epoch side by side, and the best (saved) one when early stopping kept
    another."""
    table = Table(title="training summary")
    table.add_column("metric")
    table.add_column("first epoch", justify="right")
    table.add_column("last epoch", justify="right")
    first, last = history[0], history[-1]
    best_epoch = int(last.get("best_epoch") or last["epoch"])
    best = next((row for row in history if row["epoch"] == best_epoch), last)
    if best is not last:
        table.add_column("best epoch (saved)", justify="right")
    for key in ("epoch", "loss", "recon", "kl", "beta", "val_loss", "samples_per_s"):
        if key in last:
            cells = [_fmt(first.get(key)), _fmt(last[key])]
            if best is not last:
                cells.append(_fmt(best.get(key)))
            table.add_row(key, *cells)
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
