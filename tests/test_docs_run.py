"""Every shell and Python block of README.md and docs/tutorial.md, run as written, in a
fresh folder (issue 23): the docs cannot drift from the code unnoticed.

The folder looks like a checkout (``.venv`` and ``datasets/`` linked to this one), so a
block that starts with ``source .venv/bin/activate`` or ``cd ..`` behaves as for a reader.
Lines that would take minutes run shorter, by these rewrites only (listed so a reader of
this test knows what was not run verbatim):

- ``--epochs N`` becomes ``--epochs 1`` (``--epochs 2`` with ``--resume``), and a
  ``vaekit train`` line without ``--epochs`` gets ``--epochs 1``;
- ``--iwae-k 1000`` / ``iwae_k=1000`` become 5;
- ``vaekit evaluate``, ``vaekit report`` and ``fit-cluster --judge`` lines get
  ``--judge-steps 30 --samples 100`` (``--judge-steps 30`` for fit-cluster).

Skipped: the set-up block (``make demo``/``make test``: this suite is what they run),
and lines that read Fashion-MNIST from ``/usr/share/datasets`` (not shipped; Debian's
package installs it, see datasets/README.md). A line whose comment says ``exit 2`` must
exit 2; every other line must succeed. ``photos/`` (the README's "any image folder") is
made of a few small images first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dataset_fixtures import write_image

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)
CWD_MARK = "::cwd::"


def blocks(doc: str) -> list[tuple[str, str]]:
    """``(language, text)`` of each bash and python block of ``doc``."""
    text = (REPO / doc).read_text()
    return [(m[1], m[2]) for m in FENCE.finditer(text) if m[1] in ("bash", "python")]


HEREDOC = re.compile(r"<<-?'?(\w+)'?")


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comment-only lines dropped, a
    here-document kept whole with the command that reads it."""
    found: list[str] = []
    lines = iter(block.replace("\\\n", " ").splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        heredoc = HEREDOC.search(line)
        if heredoc:
            for more in lines:
                line += "\n" + more
                if more.strip() == heredoc[1]:
                    break
        found.append(line)
    return found


def shorter(line: str) -> str:
    """The rewrites listed in the module docstring."""
    resume = "--resume" in line
    line = re.sub(r"--epochs \d+", "--epochs 2" if resume else "--epochs 1", line)
    if re.search(r"\bvaekit train\b", line) and "--epochs" not in line and "resnt" not in line:
        line = _before_comment(line, "--epochs 1")
    line = line.replace("--iwae-k 1000", "--iwae-k 5").replace("iwae_k=1000", "iwae_k=5")
    if re.search(r"\bvaekit (evaluate|report)\b", line):
        line = _before_comment(line, "--judge-steps 30 --samples 100")
    if re.search(r"\bvaekit fit-cluster\b.*--judge\b", line):
        line = _before_comment(line, "--judge-steps 30")
    return line


def _before_comment(line: str, extra: str) -> str:
    code, hash_, comment = line.partition(" #")
    return f"{code.rstrip()} {extra}" + (f"  #{comment}" if hash_ else "")


def skipped(line: str) -> bool:
    return line.lstrip().startswith("make ") or "/usr/share/datasets" in line


class Reader:
    """Runs a doc's blocks in order, as a reader in one shell would (cd carries over)."""

    def __init__(self, checkout: Path):
        self.cwd, self.oldpwd = checkout, checkout
        venv_bin = str(REPO / ".venv" / "bin")
        path = os.pathsep.join([venv_bin, os.path.dirname(sys.executable), os.environ["PATH"]])
        self.env = dict(os.environ, PATH=path, COLUMNS="120")

    def bash(self, line: str) -> None:
        expected = 2 if re.search(r"#.*\bexit 2\b", line) else 0
        script = (
            f'cd "{self.oldpwd}"; cd "{self.cwd}"\n{line}\nrc=$?\n'
            f'echo "{CWD_MARK}$PWD:$OLDPWD"\nexit $rc'
        )
        done = subprocess.run(
            ["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == expected, f"{line}\n(in {self.cwd})\n{done.stderr[-3000:]}"
        if expected == 0:
            last = done.stdout.strip().splitlines()[-1]
            assert last.startswith(CWD_MARK), done.stdout[-2000:]
            cwd, _, oldpwd = last[len(CWD_MARK) :].partition(":")
            self.cwd, self.oldpwd = Path(cwd), Path(oldpwd or cwd)

    def python(self, code: str) -> None:
        done = subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-c", code],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, f"{code}\n(in {self.cwd})\n{done.stderr[-3000:]}"

    def read(self, doc: str) -> int:
        """Run every block of ``doc``; returns the number of commands run."""
        ran = 0
        for language, text in blocks(doc):
            if language == "python":
                self.python(re.sub(r"iwae_k=1000", "iwae_k=5", text))
                ran += 1
                continue
            for line in commands(text):
                if not skipped(line):
                    self.bash(shorter(line))
                    ran += 1
        return ran


@pytest.fixture
def checkout(tmp_path):
    """A folder that looks like a vaekit checkout to the docs' commands."""
    if not (REPO / ".venv" / "bin" / "vaekit").exists():
        pytest.skip("needs the project's .venv (make setup)")
    root = tmp_path / "vaekit"
    root.mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "datasets").symlink_to(REPO / "datasets")
    return root


def test_the_shorter_rewrites_do_what_the_docstring_says():
    assert shorter("vaekit train data/ --encoder resnet   # x") == (
        "vaekit train data/ --encoder resnet --epochs 1  # x"
    )
    assert shorter("vaekit train --resume --epochs 30") == "vaekit train --resume --epochs 2"
    assert shorter("vaekit evaluate --split val --iwae-k 1000") == (
        "vaekit evaluate --split val --iwae-k 5 --judge-steps 30 --samples 100"
    )
    assert "exit 2" in shorter("vaekit train --encoder resnt    # exit 2: unknown")
    assert commands("a \\\n  b\n# c\n\nd\n") == ["a    b", "d"]


@pytest.mark.slow
def test_every_readme_block_runs_as_written(checkout):
    reader = Reader(checkout)
    for i in range(12):  # the README's "any image folder"
        write_image(checkout.parent / "vaekit-tour" / "photos" / f"{i}.png", seed=i, size=(20, 16))
    assert reader.read("README.md") >= 25
    tour = checkout.parent / "vaekit-tour"
    assert (tour / "report.html").is_file() and (tour / "sevens.png").is_file()
    assert (checkout / "grid.png").is_file()  # the pipeline ran in the checkout


@pytest.mark.slow
def test_every_tutorial_block_runs_as_written(checkout):
    reader = Reader(checkout)
    assert reader.read("docs/tutorial.md") >= 18
    folder = checkout.parent / "faces-tutorial"
    assert (folder / "edit.png").is_file() and (folder / "smiling.png").is_file()
