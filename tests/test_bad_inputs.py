"""Bad inputs through the real installed CLI: exit code, one-line message, nothing lost.

Each row of ``CASES`` runs ``vaekit ARGS`` in a fresh folder (the test's
``tmp_path``) as a subprocess, with stdout and stderr piped (so nothing is a
terminal), and checks:

- the exit code (docs/cli.md#exit-codes: 2 usage, 1 data, 130 interrupted);
- stderr ends in one line ``Error: ...`` holding ``fragment``, with no traceback;
- ``check(tmp_path, world)``, when given: what the command must not have written.

To add a case, append a ``Bad`` row. ``args`` may name ``{run}`` (a trained tiny
run), ``{store}`` (its latent store), ``{cluster}`` (a cluster file of it) and
``{here}`` (the folder the command runs in); ``setup(here, world)`` writes
the bad input first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import train_tiny

TINY = (
    "--encoder mlp --encoder-opt hidden=8 --decoder-opt hidden=8 -z 2 --batch-size 512 "
    "--accelerator cpu --epochs 1"
).split()

World = dict[str, Path]


@dataclass(frozen=True)
class Bad:
    """One bad input: the command line, what it must answer, and what it must not write."""

    id: str
    args: tuple[str, ...]
    code: int
    fragment: str
    setup: Callable[[Path, World], None] | None = None
    check: Callable[[Path, World], None] | None = None
    xfail: str = ""  # reason, for rows that wait on work elsewhere (strict=False)


def vaekit_command() -> list[str]:
    """The installed console script (next to this interpreter), else ``python -m``."""
    beside = Path(sys.executable).with_name("vaekit")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("vaekit")
    return [found] if found else [sys.executable, "-c", "from vaekit.cli import main; main()"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """A tiny trained run, its latent store and a cluster file, made once per module."""
    from vaekit.cluster import fit_cluster
    from vaekit.encode import encode_dataset

    root = tmp_path_factory.mktemp("bad-inputs")
    run = train_tiny(root, epochs=1).run.path
    store = encode_dataset(None, root / "latents.h5", model_dir=run)
    cluster = root / "three.json"
    fit_cluster(store, "3", output=cluster)
    return {"root": root, "run": run, "store": store, "cluster": cluster}


# -- set-ups and checks ------------------------------------------------------------------------


def copy_run(here: Path, world: World, name: str = "run") -> Path:
    """A copy of the tiny run at ``here/runs/<name>`` to damage."""
    target = here / "runs" / name
    shutil.copytree(world["run"], target)
    return target


def edit_config(change: Callable[[dict], None]) -> Callable[[Path, World], None]:
    """A set-up that copies the run and edits its config.json with ``change``."""

    def setup(here: Path, world: World) -> None:
        run = copy_run(here, world)
        config = json.loads((run / "config.json").read_text())
        change(config)
        (run / "config.json").write_text(json.dumps(config))

    return setup


def only(*names: str) -> Callable[[Path, World], None]:
    """A check: the folder holds exactly ``names`` (top level) after the command."""

    def check(here: Path, world: World) -> None:
        assert sorted(p.name for p in here.iterdir()) == sorted(names)

    return check


def user_latest_file(here: Path, world: World) -> None:
    (here / "runs").mkdir()
    (here / "runs" / "latest").mkdir()
    (here / "runs" / "latest" / "mine.txt").write_text("keep")


def latest_kept(here: Path, world: World) -> None:
    assert (here / "runs" / "latest" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in (here / "runs").iterdir()) == ["latest"]


def set_model(key: str, value: object) -> Callable[[Path, World], None]:
    def change(config: dict) -> None:
        config["model"][key] = value

    return edit_config(change)


# -- the table ---------------------------------------------------------------------------------

CASES: list[Bad] = [
    # item 1: --name stays inside --runs-dir
    Bad("name-parent", ("train", *TINY, "--name", "../y"), 2, "not a plain folder name",
        check=only()),
    Bad("name-absolute", ("train", *TINY, "--name", "{here}/abs-run"), 2,
        "not a plain folder name", check=only()),
    Bad("name-nested", ("train", *TINY, "--name", "a/b"), 2, "not a plain folder name",
        check=only()),
    Bad("name-dot", ("train", *TINY, "--name", "."), 2, "not a plain folder name",
        check=only()),
    Bad("name-latest", ("train", *TINY, "--name", "latest"), 2, "link to the newest run",
        check=only()),
    Bad("latest-is-a-folder", ("train", *TINY, "--name", "x"), 1, "not vaekit's link",
        setup=user_latest_file, check=latest_kept),
    # item 11: messages that name the right fix
    Bad("resume-missing-run", ("train", "--resume", "--name", "nope"), 1,
        "start it with `vaekit train --name nope` (without --resume)", check=only()),
    # item 6: one line instead of a traceback
    Bad("image-size-0", ("train", *TINY, "--image-size", "0"), 2, "--image-size must be >= 1",
        check=only()),
]  # fmt: skip


def _params() -> list:
    marks = {
        c.id: [pytest.mark.xfail(reason=c.xfail, strict=False)] if c.xfail else [] for c in CASES
    }
    return [pytest.param(c, id=c.id, marks=marks[c.id]) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Bad, world: World, tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    if case.setup:
        case.setup(here, world)
    names = {key: str(value) for key, value in world.items()} | {"here": str(here)}
    args = [a.format(**names) for a in case.args]
    env = dict(os.environ, COLUMNS="40", VAEKIT_DEBUG="")  # a narrow pipe must not fold lines
    env.pop("VAEKIT_DEBUG")
    done = subprocess.run(
        [*vaekit_command(), *args], cwd=here, capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    err = done.stderr.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1] if err else ""
    assert done.returncode == case.code, f"exit {done.returncode}: {err}"
    assert last.startswith("Error: "), err
    assert case.fragment in last, err
    if case.check:
        case.check(here, world)


def test_piped_output_is_one_line_per_message(world: World, tmp_path: Path) -> None:
    """Item 12: a script reading fit-cluster's ``-> PATH`` finds the whole path on the line."""
    output = tmp_path / ("a-long-folder-name-" * 4) / "three.json"
    env = dict(os.environ, COLUMNS="40")
    done = subprocess.run(
        [*vaekit_command(), "fit-cluster", "--latents", str(world["store"]), "-l", "3"]
        + ["-o", str(output)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"-> {output}"), done.stdout
