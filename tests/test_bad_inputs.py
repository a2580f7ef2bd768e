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


# -- issue 24: writes that never destroy, reads that never leak --------------------------------


def fifo(name: str) -> Callable[[Path, World], None]:
    def setup(here: Path, world: World) -> None:
        os.mkfifo(here / name)

    return setup


def still_fifo(name: str) -> Callable[[Path, World], None]:
    def check(here: Path, world: World) -> None:
        import stat

        assert stat.S_ISFIFO(os.lstat(here / name).st_mode)

    return check


def link_to_secret(name: str) -> Callable[[Path, World], None]:
    def setup(here: Path, world: World) -> None:
        (here / "secret.txt").write_text("secret")
        (here / name).symlink_to(here / "secret.txt")

    return setup


def secret_kept(here: Path, world: World) -> None:
    assert (here / "secret.txt").read_text() == "secret"
    assert not (here / "r.html").exists()


def store_copy(here: Path, world: World) -> None:
    shutil.copy(world["store"], here / "latents.h5")


def store_kept(here: Path, world: World) -> None:
    from vaekit.files import file_sha256

    assert file_sha256(here / "latents.h5") == file_sha256(world["store"])


def run_with_link(name: str, to_folder: bool = False) -> Callable[[Path, World], None]:
    """A copy of the run holding ``name``, a link to a secret file (or a user's folder)."""

    def setup(here: Path, world: World) -> None:
        run = copy_run(here, world)
        (here / "secret.txt").write_text("secret")
        (here / "mine").mkdir()
        (here / "mine" / "curves.png").write_text("mine")
        target = here / "mine" if to_folder else here / "secret.txt"
        if (run / name).is_dir():
            shutil.rmtree(run / name)
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).symlink_to(target)

    return setup


def users_files_kept(here: Path, world: World) -> None:
    assert (here / "mine" / "curves.png").read_text() == "mine"
    assert sorted(p.name for p in (here / "mine").iterdir()) == ["curves.png"]
    assert not (here / "r.html").exists()


def run_with_fifo_figure(here: Path, world: World) -> None:
    run = copy_run(here, world)
    (run / "figures").mkdir(exist_ok=True)
    os.mkfifo(run / "figures" / "f.png")


def run_name_links_to_users_folder(here: Path, world: World) -> None:
    (here / "mine").mkdir()
    (here / "runs").mkdir()
    (here / "runs" / "x").symlink_to(here / "mine")


def users_folder_empty(here: Path, world: World) -> None:
    assert list((here / "mine").iterdir()) == []


def pickled_checkpoint(here: Path, world: World) -> None:
    import datetime

    import torch

    run = copy_run(here, world)
    torch.save({"epoch": 1, "step": 1, "when": datetime.date(2026, 1, 1)},
               run / "checkpoint" / "state.pt")  # fmt: skip


def reshaped_checkpoint(here: Path, world: World) -> None:
    import torch

    run = copy_run(here, world)
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=True)
    name = sorted(state["model"])[0]
    state["model"][name] = torch.zeros(3, 3, 3)
    torch.save(state, run / "checkpoint" / "state.pt")


def edit_store(change: Callable[..., None], name: str = "bad.h5") -> Callable[[Path, World], None]:
    """A set-up that copies the world's store to ``here/bad.h5`` and edits it (h5py File)."""

    def setup(here: Path, world: World) -> None:
        import h5py

        shutil.copy(world["store"], here / name)
        with h5py.File(here / name, "r+") as f:
            change(f)

    return setup


def _replace(name: str, data: object, **kwargs: object) -> Callable[..., None]:
    def change(f) -> None:
        del f[name]
        f.create_dataset(name, data=data, **kwargs)

    return change


def _attr(key: str, value: object) -> Callable[..., None]:
    return lambda f: f.attrs.__setitem__(key, value)


def _short_logvar(f) -> None:
    logvar = f["logvar"][()]
    del f["logvar"]
    f.create_dataset("logvar", data=logvar[:-1])


def _huge_rows(f) -> None:
    d = f["mu"].shape[1]
    for name in ("labels", "ids", "split", "attributes", "samples"):
        if name in f:
            del f[name]
    for name in ("mu", "logvar"):
        del f[name]
        f.create_dataset(name, shape=(3_000_000_000, d), dtype="f4", chunks=(1024, d),
                         compression="gzip")  # fmt: skip


def _wide_mu(f) -> None:
    n = f["mu"].shape[0]
    for name in ("mu", "logvar"):
        del f[name]
        f.create_dataset(name, shape=(n, 200_000), dtype="f4", chunks=(1, 1024),
                         compression="gzip")  # fmt: skip


def _huge_labels(f) -> None:
    del f["labels"]
    f.create_dataset("labels", shape=(2_000_000_000,), dtype="i8", chunks=(4096,),
                     compression="gzip")  # fmt: skip


def nan_images(here: Path, world: World) -> None:
    np.save(here / "x.npy", np.full((20, 8, 8), np.nan, dtype=np.float32))


def idx_header(dims: tuple[int, ...], gz: bool = False, data: bytes = b"") -> Callable:
    def setup(here: Path, world: World) -> None:
        import gzip
        import struct

        (here / "idx").mkdir()
        raw = b"\0\0\x08" + bytes([len(dims)]) + b"".join(struct.pack(">i", d) for d in dims)
        raw += data
        name = "train-images-idx3-ubyte" + (".gz" if gz else "")
        (here / "idx" / name).write_bytes(gzip.compress(raw) if gz else raw)

    return setup


def idx_bomb(here: Path, world: World) -> None:
    """A .gz whose header declares 60,000 images of 2,048 x 2,048 (240 GB) and whose stream
    goes on decompressing zeros (a few MB on disk)."""
    import gzip
    import struct

    (here / "idx").mkdir()
    header = b"\0\0\x08\x03" + struct.pack(">iii", 60_000, 2048, 2048)
    with gzip.open(here / "idx" / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header)
        block = bytes(1 << 20)
        for _ in range(64):
            f.write(block)


def empty_idx(here: Path, world: World) -> None:
    (here / "idx").mkdir()
    (here / "idx" / "train-images-idx3-ubyte").write_bytes(b"")


def weights_is_fifo(here: Path, world: World) -> None:
    run = copy_run(here, world)
    (run / "model.safetensors").unlink()
    os.mkfifo(run / "model.safetensors")


def weights_links_to_dev_zero(here: Path, world: World) -> None:
    run = copy_run(here, world)
    (run / "model.safetensors").unlink()
    (run / "model.safetensors").symlink_to("/dev/zero")


def nested_config(here: Path, world: World) -> None:
    run = copy_run(here, world)
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)


def wide_cluster(here: Path, world: World) -> None:
    data = json.loads(world["cluster"].read_text())
    data.update(latent_dim=20_000, covariance_type="spherical", mean=[0.0] * 20_000,
                covariance=1.0)  # fmt: skip
    (here / "bad.json").write_text(json.dumps(data))


def mixture_mismatch(here: Path, world: World) -> None:
    from vaekit.cluster import fit_cluster

    fit_cluster(world["store"], "3", output=here / "bad.json", components=2, gate=0)
    data = json.loads((here / "bad.json").read_text())
    data["mixture"]["weights"] = data["mixture"]["weights"][:1]
    (here / "bad.json").write_text(json.dumps(data))


PLUGIN_COMMAND = """
import vaekit
from vaekit.errors import DataError

class Plugin:
    @vaekit.hookimpl
    def register_commands(self, cli):
        @cli.command("boom")
        def boom():
            \"\"\"Fails the way a plugin command should.\"\"\"
            raise DataError("the boom file is missing; create it")

plugin = Plugin()
"""


def plugin_with_command(here: Path, world: World) -> None:
    from tests.helpers import write_fake_distribution

    site = here / "site"
    site.mkdir()
    write_fake_distribution(site, "vaekit-boom", "boom_plugin", PLUGIN_COMMAND)
    text = (site / "vaekit_boom-1.0.dist-info" / "entry_points.txt").read_text()
    (site / "vaekit_boom-1.0.dist-info" / "entry_points.txt").write_text(
        text.replace("= boom_plugin", "= boom_plugin:plugin")
    )


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
        "option 'hidden' must be from 1 to 65536", setup=huge_hidden, check=only("runs")),
    # item 10: every check before any write
    Bad("sample-save-refused", ("sample", "--prior", "-m", "{run}", "-o", "g.png", "--save",
        "z.npy"), 1, "already exists", setup=existing_npy, check=only("z.npy")),
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
        "g.png"), 2, "--ncol must be from 1", check=only()),
    Bad("sample-strength-nan", ("sample", "--from", "x.png", "--add", "3", "--strength", "nan",
        "-m", "{run}", "--latents", "{store}", "-o", "g.png"), 2, "--strength must be a finite",
        check=only()),
    Bad("store-row-minus-1", ("interpolate", "{store}:-1", "{store}:0", "-m", "{run}", "-o",
        "w.png"), 1, "row -1 does not exist", check=only()),
    # issue 24, item 1 and 2: one output rule; never renamed over a pipe, a link or a store
    Bad("sample-o-fifo", ("sample", "--prior", "-m", "{run}", "-n", "4", "-o", "f.png"), 1,
        "not a regular file", setup=fifo("f.png"), check=still_fifo("f.png")),
    Bad("report-o-link", ("report", "-m", "{run}", "-o", "r.png.html", "--iwae-k", "1"), 1,
        "symbolic link", setup=link_to_secret("r.png.html"), check=secret_kept),
    Bad("report-o-store", ("report", "-m", "{run}", "-o", "latents.h5", "--iwae-k", "1"), 1,
        "already exists; pass --overwrite", setup=store_copy, check=store_kept),
    Bad("encode-o-link", ("encode", "-m", "{run}", "-o", "l.h5", "--overwrite"), 1,
        "symbolic link", setup=link_to_secret("l.h5"), check=lambda h, w: secret_kept(h, w)),
    # item 3: a run directory is untrusted
    Bad("report-leak-link", ("report", "-m", "runs/run", "-o", "r.html", "--iwae-k", "1"), 1,
        "symbolic link", setup=run_with_link("leak.png"), check=secret_kept),
    Bad("report-figures-link", ("report", "-m", "runs/run", "-o", "r.html", "--iwae-k", "1"),
        1, "symbolic link", setup=run_with_link("figures", to_folder=True),
        check=users_files_kept),
    Bad("report-figure-dev-zero", ("report", "-m", "runs/run", "-o", "r.html", "--iwae-k",
        "1"), 1, "symbolic link", setup=run_with_link("figures/z.png"), check=secret_kept),
    Bad("report-figure-fifo", ("report", "-m", "runs/run", "-o", "r.html", "--iwae-k", "1"),
        1, "not a regular file", setup=run_with_fifo_figure),
    Bad("train-name-links-out", ("train", *TINY, "--name", "x"), 1, "symbolic link",
        setup=run_name_links_to_users_folder, check=users_folder_empty),
    # item 6 and 8: numbers and messages
    Bad("free-bits-inf", ("train", *TINY, "--free-bits", "inf"), 2, "--free-bits must be a "
        "finite number", check=only()),
    Bad("kl-beta-1e300", ("train", *TINY, "--kl-opt", "beta=1e300"), 2, "option 'beta' must be",
        check=only()),
    Bad("kl-beta-negative", ("train", *TINY, "--kl-opt", "beta=-1"), 2, "option 'beta' must be",
        check=only()),
    Bad("kl-steps-negative", ("train", *TINY, "--kl-opt", "steps=-1"), 2,
        "option 'steps' must be >= 1", check=only()),
    Bad("resnet-blocks-negative", ("train", *TINY, "--encoder", "resnet", "--encoder-opt",
        "blocks=-1"), 2, "option 'blocks' must be from 0", check=only()),
    Bad("fp16-init-scale-negative", ("train", *TINY, "--accelerator-opt", "fp16=true",
        "--accelerator-opt", "init_scale=-1"), 2, "option 'init_scale' must be", check=only()),
    Bad("threads-million", ("train", *TINY, "--accelerator-opt", "threads=1000000"), 2,
        "option 'threads' must be from 0 to", check=only()),
    Bad("parse-error", ("train", "--epochs", "x"), 2, "Invalid value for '--epochs'",
        check=only()),
    Bad("pickled-checkpoint", (*RESUME, "--epochs", "2"), 1, "pickled objects other than "
        "tensors", setup=pickled_checkpoint),
    Bad("store-short-logvar", ("inspect", "bad.h5"), 1, "'bad.h5' is not a valid latent store",
        setup=edit_store(_short_logvar)),
    Bad("store-complete-no", ("fit-cluster", "--latents", "bad.h5", "-l", "3"), 1,
        "incomplete latent store", setup=edit_store(_attr("complete", "no"))),
    Bad("arrays-all-nan", ("train", "x.npy", *TINY), 1, "NaN or infinite", setup=nan_images,
        check=only("x.npy")),
    # issue 19: crafted latent stores
    Bad("store-mu-1d", ("fit-cluster", "--latents", "bad.h5", "-l", "3"), 1,
        "'mu' must be a 2-D float array", setup=edit_store(_replace("mu", np.zeros(5)))),
    Bad("store-mu-strings", ("inspect", "bad.h5"), 1, "'mu' must be a 2-D float array",
        setup=edit_store(_replace("mu", np.array([["a", "b"]], dtype="S1")))),
    Bad("store-class-names-ints", ("inspect", "bad.h5"), 1, "'class_names' must be a list",
        setup=edit_store(_replace("class_names", np.arange(10)))),
    Bad("store-config-not-json", ("inspect", "bad.h5"), 1, "'model_config' attribute is not "
        "JSON", setup=edit_store(_attr("model_config", "{not json"))),
    Bad("store-3e9-rows", ("fit-cluster", "--latents", "bad.h5", "-l", "3"), 1, "declares",
        setup=edit_store(_huge_rows)),
    Bad("store-200k-dims", ("fit-cluster", "--latents", "bad.h5", "-l", "3"), 1,
        "200000 latent dimensions", setup=edit_store(_wide_mu)),
    Bad("store-huge-labels", ("inspect", "bad.h5"), 1, "'labels' has shape",
        setup=edit_store(_huge_labels)),
    # crafted image data
    Bad("idx-65536-pow-4", ("train", "idx", *TINY), 1, "header promises 18,446,744,073,709,"
        "551,616 data bytes", setup=idx_header((65536, 65536, 65536, 65536))),
    Bad("idx-empty", ("train", "idx", *TINY), 1, "not an IDX file", setup=empty_idx),
    Bad("idx-gz-bomb", ("train", "idx", *TINY), 1, "over vaekit's memory limit",
        setup=idx_bomb),
    Bad("data-is-fifo", ("train", "pipe", *TINY), 1, "not a regular file or folder",
        setup=fifo("pipe")),
    Bad("inspect-fifo", ("inspect", "pipe"), 1, "not a regular file", setup=fifo("pipe"),
        check=still_fifo("pipe")),
    Bad("weights-fifo", ("report", "-m", "runs/run", "-o", "r.html"), 1, "not a regular file",
        setup=weights_is_fifo),
    Bad("weights-dev-zero", ("report", "-m", "runs/run", "-o", "r.html"), 1, "symbolic link",
        setup=weights_links_to_dev_zero),
    # crafted cluster files and run directories
    Bad("cluster-mixture-mismatch", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o",
        "g.png"), 1, "mixture weights", setup=mixture_mismatch),
    Bad("cluster-version-x", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o", "g.png"),
        1, "format_version 'x'", setup=edit_cluster(_set("format_version", "x"))),
    Bad("cluster-20000-dims", ("sample", "--cluster", "bad.json", "-m", "{run}", "-o", "g.png"),
        1, "latent_dim 20000", setup=wide_cluster),
    Bad("config-nested", ("inspect", "runs/run"), 1, "nested too deeply", setup=nested_config),
    Bad("resume-reshaped-checkpoint", (*RESUME, "--epochs", "2"), 1, "does not fit the model",
        setup=reshaped_checkpoint),
    # numbers at the edges
    Bad("seed-minus-1", ("train", *TINY, "--seed", "-1"), 2, "--seed", check=only()),
    Bad("seed-2-64", ("sample", "--prior", "-m", "{run}", "--seed", str(2**64), "-o", "g.png"),
        2, "--seed", check=only()),
    Bad("fit-cluster-seed-minus-1", ("fit-cluster", "--latents", "{store}", "-l", "3",
        "--seed", "-1"), 2, "--seed", check=only()),
    Bad("latent-dim-1e20", ("train", *TINY, "-z", str(10**20)), 2, "latent size must be",
        check=only()),
    Bad("encoder-width-negative", ("train", *TINY, "--encoder", "conv", "--encoder-opt",
        "width=-5"), 2, "option 'width' must be from 1", check=only()),
    Bad("mlp-hidden-1e20", ("train", *TINY, "--encoder-opt", f"hidden={10**20}"), 2,
        "option 'hidden' must be from 1", check=only()),
    Bad("interpolate-steps-1e9", ("interpolate", "{store}:0", "{store}:1", "-m", "{run}",
        "--steps", "1000000000", "-o", "w.png"), 1, "memory limit", check=only()),
    Bad("sample-ncol-1e10", ("sample", "--prior", "-m", "{run}", "--ncol", "10000000000", "-o",
        "g.png"), 2, "--ncol must be from 1", check=only()),
    Bad("evaluate-iwae-k-1e9", ("evaluate", "-m", "{run}", "--iwae-k", "1000000000"), 2,
        "--iwae-k must be from 0", check=only()),
    # a plugin's command gets vaekit's error handling
    Bad("plugin-command-error", ("boom",), 1, "the boom file is missing; create it",
        setup=plugin_with_command),
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
    if (here / "site").is_dir():  # a third-party plugin installed for this case only
        env["PYTHONPATH"] = os.pathsep.join([str(here / "site"), env.get("PYTHONPATH", "")])
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
