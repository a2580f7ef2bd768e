"""The CLI's tables stay inside the terminal, whatever their row names."""

from __future__ import annotations

import io

from rich.console import Console

import vaekit.commands.common as common

TABLE = (
    "sets",
    ["set", "images", "Fréchet distance", "precision", "recall", "nearest training image"],
    [
        ["real training images", 500, 684.7, 0.907, 0.935, None],
        ["prior", 500, 1192.6, 0.9, 0.8, 55.7],
    ],
)


def test_a_table_is_drawn_inside_the_terminal(monkeypatch):
    """A soft-wrapping console (as the CLI's) does not fold long lines: the table itself
    must fit, with row names wrapped rather than pushed past the edge."""
    for width in (60, 80, 120):
        out = io.StringIO()
        console = Console(file=out, width=width, force_terminal=False, soft_wrap=True)
        monkeypatch.setattr(common, "console", console)
        common.print_tables([TABLE])
        drawn = [line for line in out.getvalue().splitlines() if line[:1] in "┏┃│┡└"]
        assert drawn and max(len(line) for line in drawn) <= width, (width, drawn)
