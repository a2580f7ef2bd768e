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

import numpy as np
import pytest

from tests.dataset_fixtures import CELEBA_NAMES, CELEBA_ROWS, celeba_folder, write_image
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
    fit_cluster(store, "3", output=cluster, components=1, gate=0)  # one Gaussian's file layout
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


def record_gone_plugin(here: Path, world: World) -> None:
    """The run names a decoder of a plugin distribution that is not installed."""

    def change(config: dict) -> None:
        config["model"]["decoder"] = "gone"
        config["plugins"] = {"gone": {"distribution": "vaekit-gone", "version": "1.2"}}

    edit_config(change)(here, world)


def empty_folder(here: Path, world: World) -> None:
    (here / "empty").mkdir()


def non_utf8_name(here: Path, world: World) -> None:
    for i in range(3):
        write_image(here / "img" / f"{i}.png", seed=i)
    write_image(Path(os.fsdecode(bytes(here / "img") + b"/bad\xff.png")), seed=9)


def celeba_rows(rows=None, names=None) -> Callable[[Path, World], None]:
    def setup(here: Path, world: World) -> None:
        rows_ = rows or CELEBA_ROWS
        partition = [i % 3 for i in range(len(rows_))]
        celeba_folder(here / "celeba", rows=rows_, names=names or CELEBA_NAMES, partition=partition)

    return setup


def nan_store(here: Path, world: World) -> None:
    import h5py

    shutil.copy(world["store"], here / "nan.h5")
    with h5py.File(here / "nan.h5", "r+") as f:
        f["mu"][:] = np.nan


def edit_cluster(change: Callable[[dict], None]) -> Callable[[Path, World], None]:
    """A set-up that writes ``here/bad.json``: the world's cluster edited by ``change``."""

    def setup(here: Path, world: World) -> None:
        data = json.loads(world["cluster"].read_text())
        change(data)
        (here / "bad.json").write_text(json.dumps(data))

    return setup


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data.__setitem__(key, value)


def _cell(key: str, i: int, j: int | None, value: float) -> Callable[[dict], None]:
    """Set ``data[key][i]`` (a vector) or ``data[key][i][j]`` (a matrix) to ``value``."""

    def change(data: dict) -> None:
        if j is None:
            data[key][i] = value
        else:
            data[key][i][j] = value

    return change


def one_small_image(here: Path, world: World) -> None:
    write_image(here / "img" / "a.png", size=(16, 16))


def huge_hidden(here: Path, world: World) -> None:
    run = copy_run(here, world)
    config = json.loads((run / "config.json").read_text())
    config["model"]["encoder_options"]["hidden"] = 100_000_000
    (run / "config.json").write_text(json.dumps(config))


def existing_npy(here: Path, world: World) -> None:
    (here / "z.npy").write_bytes(b"mine")


def damage_weights(change: Callable[[dict], None]) -> Callable[[Path, World], None]:
    """A set-up that copies the run and rewrites its model.safetensors through ``change``."""

    def setup(here: Path, world: World) -> None:
        from safetensors.torch import load_file, save_file

        run = copy_run(here, world)
        state = load_file(str(run / "model.safetensors"))
        change(state)
        save_file(state, str(run / "model.safetensors"))

    return setup


def _nan_first(state: dict) -> None:
    name = sorted(state)[0]
    state[name] = state[name] * float("nan")


def _extra_tensor(state: dict) -> None:
    import torch

    state["zzz"] = torch.zeros(1)


def write_file(name: str, content: bytes) -> Callable[[Path, World], None]:
    """A set-up that copies the run and overwrites one of its files with ``content``."""

    def setup(here: Path, world: World) -> None:
        (copy_run(here, world) / name).write_bytes(content)

    return setup


SAMPLE_RUN = ("sample", "--prior", "-m", "runs/run", "-o", "g.png")


def nothing_promoted(here: Path, world: World) -> None:
    run = here / "runs" / "nan"
    assert not (run / "model.safetensors").exists() and not (run / "metrics.jsonl").exists()
    assert not (here / "runs" / "latest").exists()


def config_unchanged(here: Path, world: World) -> None:
    saved = json.loads((here / "runs" / "run" / "config.json").read_text())
    assert saved == json.loads((world["run"] / "config.json").read_text())


def run_name_is_a_file(here: Path, world: World) -> None:
    (here / "runs").mkdir()
    (here / "runs" / "x").write_text("mine")


def runs_dir_is_a_file(here: Path, world: World) -> None:
    (here / "runs").write_text("mine")


def float_hidden(here: Path, world: World) -> None:
    run = copy_run(here, world)
    config = json.loads((run / "config.json").read_text())
    config["model"]["encoder_options"]["hidden"] = 1e8  # a float where an int is needed
    (run / "config.json").write_text(json.dumps(config))


RESUME = ("train", "--resume", "--name", "run")

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
    Bad("run-name-is-a-file", ("train", *TINY, "--name", "x"), 1,
        "cannot use 'runs/x' as a run directory", setup=run_name_is_a_file, check=only("runs")),
    Bad("runs-dir-is-a-file", ("train", *TINY, "--name", "x"), 1, "as a run directory",
        setup=runs_dir_is_a_file, check=only("runs")),
    # item 11: messages that name the right fix
    Bad("resume-missing-run", ("train", "--resume", "--name", "nope"), 1,
        "start it with `vaekit train --name nope` (without --resume)", check=only()),
    # item 6: one line instead of a traceback
    Bad("image-size-0", ("train", *TINY, "--image-size", "0"), 2, "--image-size must be >= 1",
        check=only()),
    Bad("non-utf8-file-name", ("train", "img", *TINY), 1, "is not valid UTF-8",
        setup=non_utf8_name, check=only("img")),
    Bad("celeba-value-300", ("train", "celeba", *TINY), 1, "value '300'; values must be 1 or -1",
        setup=celeba_rows(rows=[*CELEBA_ROWS[:2], ("000003.jpg", [300, -1, 1])]),
        check=only("celeba")),
    Bad("fit-mixture-on-nan-store",
        ("fit-cluster", "--latents", "nan.h5", "-l", "3", "--components", "2", "-o", "c.json"),
        1, "NaN or infinite latents", setup=nan_store, check=only("nan.h5")),
    Bad("fit-gaussian-on-nan-store",
        ("fit-cluster", "--latents", "nan.h5", "-l", "3", "-o", "c.json"),
        1, "NaN or infinite latents", setup=nan_store, check=only("nan.h5")),
    # item 6: a damaged run directory is one line naming the run and the fix
    Bad("run-config-not-json", SAMPLE_RUN, 1, "config.json is not readable JSON",
        setup=write_file("config.json", b"{oops"), check=only("runs")),
    Bad("run-config-no-model", SAMPLE_RUN, 1, "it is not a JSON object",
        setup=write_file("config.json", b"[]"), check=only("runs")),
    Bad("run-weights-truncated", SAMPLE_RUN, 1, "is not a readable safetensors file",
        setup=write_file("model.safetensors", b"\x10\x00"), check=only("runs")),
    Bad("run-weights-shape", SAMPLE_RUN, 1,
        "tensor 'decoder.net.0.0.weight' has shape (32, 4), the config builds (32, 3)",
        setup=set_model("latent_dim", 3), check=only("runs")),
    Bad("run-weights-extra-tensor", SAMPLE_RUN, 1, "unexpected ['zzz']",
        setup=damage_weights(_extra_tensor), check=only("runs")),
    Bad("run-latent-dim-string", SAMPLE_RUN, 1, "latent_dim", setup=set_model("latent_dim", "16"),
        check=only("runs")),
    Bad("run-input-shape-2d", SAMPLE_RUN, 1, "input_shape",
        setup=set_model("input_shape", [1, 8]), check=only("runs")),
    Bad("run-latent-dim-zero", SAMPLE_RUN, 1, "latent", setup=set_model("latent_dim", 0),
        check=only("runs")),
    Bad("run-option-float-width", SAMPLE_RUN, 1, "hidden", setup=float_hidden,
        check=only("runs")),
    Bad("run-plugin-not-installed", SAMPLE_RUN, 1, "install the plugin the run was trained with",
        setup=set_model("encoder", "gone"), check=only("runs")),
    Bad("run-plugin-not-installed-named", SAMPLE_RUN, 1,
        "trained with: pip install vaekit-gone==1.2 (", setup=record_gone_plugin,
        check=only("runs")),
    Bad("resume-damaged-checkpoint", (*RESUME, "--epochs", "2"), 1, "state.pt is damaged",
        setup=write_file("checkpoint/state.pt", b"junk"), check=only("runs")),
    Bad("resume-damaged-metrics", (*RESUME, "--epochs", "2"), 1, "line 1 is not JSON",
        setup=write_file("metrics.jsonl", b"{bad\n"), check=only("runs")),
    Bad("inspect-damaged-metrics", ("inspect", "runs/run"), 1, "line 1 is not JSON",
        setup=write_file("metrics.jsonl", b"{bad\n"), check=only("runs")),
    # item 3: a NaN model is never used
    Bad("run-weights-nan-sample", SAMPLE_RUN, 1, "NaN or infinite values",
        setup=damage_weights(_nan_first), check=only("runs")),
    Bad("run-weights-nan-encode", ("encode", "-m", "runs/run", "-o", "z.h5"), 1,
        "NaN or infinite values", setup=damage_weights(_nan_first), check=only("runs")),
    # item 3: a diverged epoch is never saved, promoted or called intact
    Bad("train-diverges", ("train", *TINY, "--lr", "1e30", "--batch-size", "2000", "--name",
        "nan"), 1, "diverged", check=nothing_promoted),
    # item 7: --resume checks --epochs and refuses options it cannot apply
    Bad("resume-epochs-negative", (*RESUME, "--epochs", "-5"), 2, "--epochs must be >= 1",
        setup=copy_run, check=config_unchanged),
    Bad("resume-epochs-zero", (*RESUME, "--epochs", "0"), 2, "--epochs must be >= 1",
        setup=copy_run, check=config_unchanged),
    Bad("resume-with-lr", (*RESUME, "--epochs", "3", "--lr", "0.1", "--encoder", "conv"), 2,
        "--encoder, --lr cannot change", setup=copy_run, check=config_unchanged),
    # item 11: the empty-folder message is the one docs/datasets.md shows
    Bad("empty-folder", ("train", "empty", *TINY), 1, "no images found in", setup=empty_folder,
        check=only("empty")),
    # item 5: what cannot be batched is checked against the memory limit first
    Bad("sample-n-huge", ("sample", "--prior", "-m", "{run}", "-n", "100000000", "-o", "g.png"),
        1, "lower -n", check=only()),
    Bad("train-image-size-4096", ("train", "img", "--image-size", "4096", "--epochs", "1",
        "--accelerator", "cpu"), 1, "memory limit", setup=one_small_image, check=only("img")),
    Bad("config-hidden-1e8", ("sample", "--prior", "-m", "runs/run", "-o", "g.png"), 1,
        "memory limit", setup=huge_hidden, check=only("runs")),
    # item 10: every check before any write
    Bad("sample-save-refused", ("sample", "--prior", "-m", "{run}", "-o", "g.png", "--save",
        "z.npy"), 2, "already exists", setup=existing_npy, check=only("z.npy")),
    # an option value of the wrong type is refused before anything is written
    Bad("train-option-not-a-number", ("train", *TINY, "--likelihood-opt", "sigma=small"), 2,
        "option 'sigma' must be a number", check=only()),
    Bad("train-option-not-a-bool", ("train", *TINY, "--model-kind", "cvae", "--model-opt",
        "class_prior=maybe"), 2, "option 'class_prior' must be true or false", check=only()),
    Bad("train-option-not-an-int", ("train", *TINY, "--encoder-opt", "hidden=abc"), 2,
        "option 'hidden' must be an integer", check=only()),
    Bad("train-option-value-refused", ("train", *TINY, "--encoder", "resnet", "--encoder-opt",
        "arch=9"), 2, "arch must be one of 1, 2, 3, got 9", check=only()),
    Bad("train-option-none-for-a-string", ("train", *TINY, "--encoder", "resnet",
        "--encoder-opt", "norm=none"), 2, "none and null on the command line mean None",
        check=only()),
    # item 9: bad values are refused, not used
    Bad("celeba-value-0", ("train", "celeba", *TINY), 1, "value '0'; values must be 1 or -1",
        setup=celeba_rows(rows=[*CELEBA_ROWS[:2], ("000003.jpg", [0, -1, 1])]),
        check=only("celeba")),
    Bad("celeba-value-2", ("train", "celeba", *TINY), 1, "value '2'; values must be 1 or -1",
        setup=celeba_rows(rows=[*CELEBA_ROWS[:2], ("000003.jpg", [2, -1, 1])]),
        check=only("celeba")),
    Bad("celeba-duplicate-row", ("train", "celeba", *TINY), 1, "already has a row",
        setup=celeba_rows(rows=[*CELEBA_ROWS, CELEBA_ROWS[0]]), check=only("celeba")),
    Bad("celeba-duplicate-attribute", ("train", "celeba", *TINY), 1, "is named twice",
        setup=celeba_rows(names=["Smiling", "Eyeglasses", "Smiling"]), check=only("celeba")),
    Bad("cluster-not-psd", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o", "g.png"), 1,
        "not positive semi-definite", setup=edit_cluster(_cell("covariance", 0, 0, -10.0)),
        check=only("bad.json")),
    Bad("cluster-asymmetric", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o", "g.png"),
        1, "not symmetric", setup=edit_cluster(_cell("covariance", 0, 1, 0.5)),
        check=only("bad.json")),
    Bad("cluster-unknown-type", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o", "g.png"),
        1, "covariance type 'banana'", setup=edit_cluster(_set("covariance_type", "banana")),
        check=only("bad.json")),
    Bad("cluster-nan-mean", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o", "g.png"), 1,
        "mean that is NaN", setup=edit_cluster(_cell("mean", 0, None, float("nan"))),
        check=only("bad.json")),
    Bad("temperature-nan", ("sample", "--prior", "-m", "{run}", "--temperature", "nan", "-o",
        "g.png"), 2, "--temperature must be a finite number", check=only()),
    Bad("sample-ncol-negative", ("sample", "--prior", "-m", "{run}", "--ncol", "-1", "-o",
        "g.png"), 2, "--ncol must be >= 1", check=only()),
    Bad("sample-strength-nan", ("sample", "--from", "x.png", "--add", "3", "--strength", "nan",
        "-m", "{run}", "--latents", "{store}", "-o", "g.png"), 2, "--strength must be a finite",
        check=only()),
    Bad("store-row-minus-1", ("interpolate", "{store}:-1", "{store}:0", "-m", "{run}", "-o",
        "w.png"), 1, "row -1 does not exist", check=only()),
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
