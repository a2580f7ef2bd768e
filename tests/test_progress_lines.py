"""Progress where no bar can be drawn: output redirected to a file or a pipe."""

from __future__ import annotations

import io

from rich.console import Console

from vaekit.progress import CountBar


def _run(bar: CountBar, total: int) -> None:
    with bar:
        for done in range(total + 1):
            bar(done, total)


def test_a_redirected_count_bar_says_when_its_work_starts_and_ends():
    out = io.StringIO()
    _run(CountBar("train judge", Console(file=out, force_terminal=False), transient=True), 300)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert lines == ["train judge: 300 to do", "train judge: 300 of 300 done"]
    kept = io.StringIO()  # a bar that stays printed needs no end line
    _run(CountBar("encode", Console(file=kept, force_terminal=False)), 40)
    lines = [line for line in kept.getvalue().splitlines() if line.strip()]
    assert lines[0] == "encode: 40 to do" and "40/40" in lines[-1] and len(lines) == 2
    never = io.StringIO()  # work that never started prints nothing
    with CountBar("evaluate", Console(file=never, force_terminal=False), transient=True):
        pass
    assert never.getvalue() == ""


def test_a_count_bar_on_a_terminal_draws_only_the_bar():
    out = io.StringIO()
    _run(CountBar("encode", Console(file=out, force_terminal=True, width=80), transient=True), 5)
    assert "to do" not in out.getvalue() and "done" not in out.getvalue()
