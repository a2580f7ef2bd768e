"""Run directories (config.json, model.safetensors, checkpoint/, metrics.jsonl, grids)
and :func:`open_run`, the one way a trained model is loaded.

Every file is written atomically (:mod:`vaekit.files`), so a kill at any moment
leaves the last good state loadable. ``runs/latest`` is a symlink to the newest run.
:func:`open_run` gives encode, generate, inspect and evaluation the same
:class:`LoadedRun`: the model, its typed config, its preprocessing, its class
names and the hash of its weights.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaekit.config import RunConfig
from vaekit.config_file import config_toml
from vaekit.errors import DataError, UnknownComponentError, UsageError
from vaekit.files import (
    atomic_path,
    atomic_write_text,
    check_input_file,
    disk_full_error,
    file_sha256,
)

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor, nn

    from vaekit.data import ImageDataset

CONFIG = "config.json"
#: The run's settings as a config file: ``vaekit train --config RUN/config.toml``.
CONFIG_TOML = "config.toml"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint/state.pt"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
#: The journal of an epoch's commit (see :meth:`Run.commit_epoch`).
COMMIT = ".commit.json"
#: The files one epoch commits together, and the flat names they have while staged.
EPOCH_FILES = {WEIGHTS: "weights", CHECKPOINT: "checkpoint", METRICS: "metrics", STEPS: "steps"}
_STAGING = re.compile(r"^\.epoch-\d+\.pending$")
SAMPLES = "samples.png"
RECONSTRUCTIONS = "reconstructions.png"
LATEST = "latest"
#: A config.json larger than this is not one vaekit wrote (they are a few kB).
MAX_CONFIG_BYTES = 16 << 20


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under ``torch.compile`` / DDP wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model
        model = inner


LOCK = ".lock"


class RunLock:
    """Ownership of a run directory while a process writes it: an exclusive
    ``fcntl.flock`` on ``<run>/.lock``, held until :meth:`release` or the process ends
    (the kernel drops it on any exit, ``kill -9`` included, so a lock never goes stale).

    A second writer (``train --name same``, ``--resume`` of a run being trained) gets a
    DataError naming the owner's PID instead of mixing its files into the run.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise a DataError when another process holds it."""
        import fcntl

        if self.path.is_symlink():
            raise DataError(
                f"'{self.path}' is a symbolic link; a run directory must be a plain folder "
                "inside --runs-dir: choose another --name"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise DataError(
                f"cannot use '{self.path}' as a run directory ({exc.strerror}); "
                "choose another --name or --runs-dir"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataError(
                f"run '{self.path}' is being written by another vaekit process (PID {owner}); "
                "wait for it to finish, or choose another --name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Give the run up (closing the file drops the lock)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Run:
    """A run directory and the files in it."""

    path: Path
    owner: RunLock | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        """``RUN/name`` (a file), checked as untrusted: see :meth:`member`."""
        return self.member(name)

    def folder(self, name: str) -> Path:
        """``RUN/name`` (a folder), checked as untrusted: see :meth:`member`."""
        return self.member(name, folder=True)

    def member(self, name: str, folder: bool = False) -> Path:
        """``RUN/name``, where a run directory is untrusted (someone may have given it to
        you): no part of the path inside the run may be a symbolic link, and what exists
        there must be a regular file (or, with ``folder``, a folder). So vaekit reads only
        what it could have written, and writes only inside the run. A DataError names
        the offending path."""
        path = self.path
        for part in Path(name).parts:
            path = path / part
            if path.is_symlink():
                raise DataError(
                    f"'{path}' is a symbolic link inside run '{self.path}'; vaekit reads and "
                    "writes only plain files inside a run: remove the link"
                )
        if path.exists() and (not path.is_dir() if folder else not path.is_file()):
            wanted = "a folder" if folder else "a regular file"
            raise DataError(
                f"'{path}' inside run '{self.path}' is not {wanted}; remove it "
                "(vaekit writes it again)"
            )
        return path

    def lock(self) -> RunLock:
        """Own this run directory (see :class:`RunLock`) until :meth:`unlock`."""
        if self.owner is None:
            self.owner = RunLock(self.path).acquire()
        return self.owner

    def unlock(self) -> None:
        """Give up the ownership :meth:`lock` took."""
        if self.owner is not None:
            self.owner.release()
            self.owner = None

    def has_saved_epoch(self) -> bool:
        """Whether an epoch was saved (a checkpoint or weights): a run that can resume."""
        return self.checkpoint_path.is_file() or self.weights_path.is_file()

    @property
    def config_path(self) -> Path:
        return self.member(CONFIG)

    @property
    def weights_path(self) -> Path:
        return self.member(WEIGHTS)

    @property
    def checkpoint_path(self) -> Path:
        return self.member(CHECKPOINT)

    @property
    def metrics_path(self) -> Path:
        return self.member(METRICS)

    def read_config(self) -> RunConfig:
        """The run's config.json, parsed and checked (a damaged file is a DataError)."""
        if not self.config_path.is_file():
            raise DataError(
                f"'{self.path}' is not a vaekit run (no {CONFIG}); "
                "train one with `vaekit train` or pass --model RUN_DIR"
            )
        try:
            check_input_file(self.config_path, MAX_CONFIG_BYTES, "run config")
            data = json.loads(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{self.config_path} is not readable JSON ({exc})") from None
        except RecursionError:
            raise DataError(
                f"{self.config_path} is not a run config (JSON nested too deeply)"
            ) from None
        return RunConfig.from_dict(data, where=str(self.config_path))

    def write_config(self, config: RunConfig) -> None:
        try:
            text = json.dumps(config.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
        except ValueError:
            raise UsageError(
                "a setting is NaN or infinite; give finite numbers (config.json is strict JSON)"
            ) from None
        atomic_write_text(self.config_path, text)
        settings = copy.deepcopy(config.train)
        settings.fit_prior = settings.fit_prior_components
        settings.name = None  # training from the file makes a new run
        toml = config_toml(settings, config.vaekit_version, config.plugins)
        atomic_write_text(self.path / CONFIG_TOML, toml)

    def save_weights(self, model: nn.Module) -> str:
        """Write model.safetensors atomically; returns the file's SHA-256."""
        with atomic_path(self.weights_path) as tmp:
            write_weights(model, tmp)
        return file_sha256(self.weights_path)

    def commit_epoch(
        self,
        epoch: int,
        checkpoint: dict[str, Any],
        metrics: list[dict[str, Any]],
        steps: list[dict[str, Any]],
        model: nn.Module | None = None,
    ) -> None:
        """Write one epoch's files so that they become visible together: its checkpoint,
        the metrics rows up to it, the step log and (when given) the weights.

        Each file is first written whole into ``.epoch-N.pending/`` and flushed to disk;
        then the journal ``.commit.json`` names them (one atomic rename: the commit);
        then each is renamed into place and the journal removed. A kill or a full disk
        before the commit leaves epoch N-1 as it was (the staging folder is removed by
        the next :meth:`recover`); after it, :meth:`recover` finishes the renames. So the
        files a reader sees are always of one epoch.
        """
        import torch

        staging = self.path / f".epoch-{epoch}.pending"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        writers: dict[str, Any] = {
            CHECKPOINT: lambda path: torch.save(checkpoint, path),
            METRICS: lambda path: path.write_text(_jsonl(metrics)),
            STEPS: lambda path: path.write_text(_jsonl(steps)),
        }
        if model is not None:
            writers = {WEIGHTS: lambda path: write_weights(model, path), **writers}
        umask = os.umask(0)
        os.umask(umask)
        try:
            for name, write in writers.items():
                staged = staging / EPOCH_FILES[name]
                write(staged)
                os.chmod(staged, 0o666 & ~umask)  # what a plain open() gives, as elsewhere
                _fsync(staged)
        except Exception as exc:  # torch, safetensors and the OS each word a full disk their way
            full = disk_full_error(self.path / name, exc)  # before the staging is freed
            shutil.rmtree(staging, ignore_errors=True)  # epoch N-1 stays whole
            if full is None:
                raise
            then = (
                f"`vaekit train --resume --name {self.name}` continues from epoch {epoch - 1}"
                if epoch > 1
                else f"`vaekit train --name {self.name}` starts it again"
            )
            raise DataError(f"{full}; {then}") from None
        _fsync(staging)
        journal = {"epoch": epoch, "staging": staging.name, "files": list(writers)}
        atomic_write_text(self.path / COMMIT, json.dumps(journal) + "\n")
        _fsync(self.path)
        self._apply_commit(journal)

    def recover(self) -> None:
        """Finish an epoch commit that a kill interrupted after its journal was written,
        and remove staged files of one that never committed. The run's owner calls it;
        a reader calls :meth:`recover_if_needed`."""
        journal_path = self.member(COMMIT)
        if journal_path.is_file():
            try:
                journal = json.loads(journal_path.read_text())
            except (OSError, UnicodeDecodeError, ValueError, RecursionError):
                journal = None
            if not _valid_journal(journal):
                raise DataError(
                    f"'{journal_path}' is not a commit journal vaekit wrote; remove it "
                    "(the run then holds its last whole epoch)"
                )
            self._apply_commit(journal)
        for leftover in self.path.glob(".epoch-*.pending"):
            if _STAGING.match(leftover.name) and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)

    def recover_if_needed(self) -> None:
        """:meth:`recover` when an interrupted commit is there and nobody writes the run
        (the owner, if alive, finishes its own commit); a run we cannot lock (another
        process trains it, or it is read-only) is read as it is."""
        if not (self.path / COMMIT).exists():
            return
        try:
            with RunLock(self.path):
                self.recover()
        except DataError:
            pass

    def _apply_commit(self, journal: dict[str, Any]) -> None:
        staging = self.path / journal["staging"]
        for name in journal["files"]:
            staged = staging / EPOCH_FILES[name]
            if staged.is_file() and not staged.is_symlink():
                target = self.member(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
        _fsync(self.path)
        (self.path / COMMIT).unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write checkpoint/state.pt atomically (tensors and plain containers only)."""
        import torch

        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> dict[str, Any]:
        """Read the resume state (``weights_only``: never unpickles code)."""
        import torch

        if not self.checkpoint_path.is_file():
            raise DataError(f"run '{self.path}' has no checkpoint to resume from")
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Write metrics.jsonl (one JSON object per epoch) atomically."""
        atomic_write_text(self.metrics_path, _jsonl(rows))

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for number, line in enumerate(self.metrics_path.read_text().splitlines(), start=1):
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise DataError(
                    f"{self.metrics_path} line {number} is not JSON ({exc}); restore the file "
                    "or delete that line"
                ) from None
        return rows


def check_class_label(model_dir: str | Path, label: str) -> None:
    """``--label``'s first check, from the run's config.json alone (before torch is imported
    or weights are read): the run must be class-conditional."""
    config = resolve_run(model_dir).read_config()
    if config.model.num_classes == 0:
        raise no_classes_error(label)


def no_classes_error(label: str) -> DataError:
    """``--label`` given to a model without classes: the error names the alternative."""
    return DataError(
        f"--label {label} needs a class-conditional model (this one has no classes); "
        f"fit a cluster instead: `vaekit fit-cluster --label {label}` then "
        f"`vaekit sample --cluster {label}`"
    )


def stopped_early(last: dict[str, Any], epochs: int, patience: int | None) -> bool:
    """Whether early stopping ended a run whose last metrics row is ``last``: fewer epochs
    than it was given, and ``patience`` epochs past its best."""
    done = int(last.get("epoch", 0))
    best = int(last.get("best_epoch") or done)
    return patience is not None and 0 < done < epochs and done - best >= patience


def write_weights(model: nn.Module, path: Path) -> None:
    """The model's weights as safetensors at ``path``."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    save_file(state, str(path))


def _jsonl(rows: list[dict[str, Any]]) -> str:
    """Rows as JSON lines; strict JSON (a non-finite value is a bug, never written)."""
    return "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows)


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk, so a commit never names data still in the cache."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _valid_journal(journal: Any) -> bool:
    """Whether ``journal`` is what :meth:`Run.commit_epoch` writes (a crafted one could
    otherwise move files from anywhere into the run)."""
    return (
        isinstance(journal, dict)
        and isinstance(journal.get("staging"), str)
        and bool(_STAGING.match(journal["staging"]))
        and isinstance(journal.get("files"), list)
        and all(isinstance(f, str) and f in EPOCH_FILES for f in journal["files"])
    )


def check_run_name(name: str) -> str:
    """``name`` if it names a folder directly inside the runs folder, else a UsageError.

    A name is one path component: not empty, not ``.``/``..``, no ``/`` (or the
    platform's separator), not hidden (``.x``: vaekit's temporaries) and not
    ``latest`` (the link to the newest run).
    """
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if (
        not name
        or name.strip() != name
        or name.startswith(".")
        or any(sep in name for sep in seps)
        or "\0" in name
    ):
        raise UsageError(
            f"--name '{name}' is not a plain folder name; give one name without '/' or a "
            "leading '.' (e.g. --name faces-1): runs live directly in --runs-dir"
        )
    if name == LATEST:
        raise UsageError(f"'{LATEST}' is the link to the newest run; choose another --name")
    return name


def check_latest_link(runs_dir: str | Path) -> None:
    """Fail when ``<runs_dir>/latest`` exists but is not a symlink: vaekit never replaces a
    user's file or folder."""
    link = Path(runs_dir) / LATEST
    if not link.is_symlink() and link.exists():
        kind = "folder" if link.is_dir() else "file"
        raise DataError(
            f"'{link}' is a {kind}, not vaekit's link to the newest run; rename or move it "
            "(vaekit keeps a symlink there)"
        )


def resolve_run(path: str | Path) -> Run:
    """A run directory from a path (``runs/latest`` is followed to its target)."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"no trained model at '{path}'; run `vaekit train` first or pass --model RUN_DIR"
        )
    run = Run(p.resolve())
    run.recover_if_needed()
    return run


def point_latest(run: Run) -> None:
    """Make ``<runs root>/latest`` a symlink to ``run`` (replaced atomically)."""
    check_latest_link(run.path.parent)
    link = run.path.parent / LATEST
    tmp = run.path.parent / f".{LATEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(run.path.name, tmp)
    os.replace(tmp, link)


@dataclass
class LoadedRun:
    """A trained run, loaded once: what encode, generate, inspect and evaluation share."""

    run: Run
    config: RunConfig
    model: Any  # the model kind's nn.Module, in eval mode
    weights_sha256: str

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def num_classes(self) -> int:
        """Classes a conditional model takes (0: unconditional)."""
        return int(self.config.model.num_classes)

    @property
    def class_names(self) -> list[str]:
        """A conditional model's class names (ids as strings when the data had none)."""
        names = self.config.class_names
        return list(names) if names else [str(i) for i in range(self.num_classes)]

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def condition(self, labels: np.ndarray | Tensor | None, n: int) -> Tensor | None:
        """The one-hot ``y`` for ``n`` rows of class ids (None for an unconditional model;
        no labels: the classes in turn), on the model's device."""
        import numpy as np
        import torch

        from vaekit.model import one_hot_labels

        if not self.num_classes:
            return None
        if labels is None:
            labels = np.arange(n) % self.num_classes
        ids = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        return one_hot_labels(ids, self.num_classes).to(self.device)

    def load_data(
        self, data: str | Path | ImageDataset | None = None, split: str | None = None
    ) -> ImageDataset:
        """``data`` (None: the run's training data) read with the run's preprocessing and
        split, checked to fit the model (shape, classes). ``split``: the one split the
        caller takes, which may then be all that is read (:func:`vaekit.data.load_dataset`)."""
        from vaekit.data import load_run_data

        dataset = load_run_data(self.config.train, data, split)
        self.check_fits(dataset)
        return dataset

    def check_fits(self, data: ImageDataset) -> None:
        """Fail, before any work, when the model's input shape or classes do not fit ``data``."""
        expected = tuple(self.config.model.input_shape or ())
        if data.image_shape != expected:
            raise DataError(
                f"the model in {self.path} takes images of shape {expected} (C, H, W) but "
                f"'{data.location}' gives {data.image_shape}; encode data like its training "
                f"data or train a model on this data (`vaekit train {data.location}`)"
            )
        if self.num_classes:
            trained = self.config.class_names
            if data.labels is None:
                raise DataError(
                    f"the model in {self.path} is class-conditional and '{data.location}' has "
                    "no class labels; use labelled data"
                )
            if trained is not None and list(data.class_names or []) != list(trained):
                raise DataError(
                    f"the model in {self.path} was trained on classes {trained} but "
                    f"'{data.location}' has {data.class_names}; class ids would not match"
                )


def missing_plugins(recorded: dict[str, Any]) -> str:
    """The distributions a run's config records (``plugins``) that are not loaded now,
    as ``": pip install NAME==VERSION"`` (empty when it records none missing)."""
    from vaekit.plugins import get_plugin_host

    loaded = {
        (info.distribution, info.version)
        for info in get_plugin_host().plugins.values()
        if info.status == "ok"
    }
    wanted = sorted(
        f"{entry['distribution']}=={entry['version']}"
        for entry in recorded.values()
        if isinstance(entry, dict)
        and entry.get("distribution")
        and (entry.get("distribution"), entry.get("version")) not in loaded
    )
    return f": pip install {' '.join(wanted)}" if wanted else ""


def open_run(run_dir: str | Path = "runs/latest", device: str = "cpu") -> LoadedRun:
    """Load a trained run: its config (parsed and checked), the model rebuilt from it with
    the weights of model.safetensors (checked against the config's shapes), in eval mode
    on ``device``. Anything missing or damaged is a one-line :class:`DataError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from vaekit.limits import check_model_memory
    from vaekit.model import build_model

    run = resolve_run(run_dir)
    config = run.read_config()
    if not run.weights_path.is_file():
        raise DataError(f"run '{run.path}' has no {WEIGHTS}; its training did not finish an epoch")
    try:
        check_model_memory(
            config.model, 1, training=False, fix=f"check the model options in {run.config_path}"
        )
        model = build_model(config.model)
    except UnknownComponentError as exc:  # trained with a plugin this machine lacks
        raise DataError(
            f"{run.config_path}: {exc}; install the plugin the run was trained with"
            f"{missing_plugins(config.plugins)} (`vaekit plugins` lists what is installed)"
        ) from None
    except UsageError as exc:  # an option the factory refuses: the file's fault, not the user's
        raise DataError(
            f"{run.config_path}: {exc}; train the run again or restore its config.json"
        ) from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        m = config.model
        options = {f"{f}_options": getattr(m, f"{f}_options") for f in ("encoder", "decoder")}
        raise DataError(
            f"{run.config_path}: the model cannot be built from its settings {options} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "train the run again or restore its config.json"
        ) from None
    try:
        state = load_file(str(run.weights_path))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{run.weights_path} is not a readable safetensors file ({exc})") from None
    check_weights(model, state, run.weights_path)
    model.load_state_dict(state)
    return LoadedRun(run, config, model.to(device).eval(), file_sha256(run.weights_path))


def check_weights(model: nn.Module, state: dict[str, Any], where: str | Path) -> None:
    """Fail with a DataError naming the tensor when ``state`` does not fit ``model``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DataError(
            f"{where} does not match its config: missing tensors {missing[:3]}, "
            f"unexpected {unexpected[:3]}; train the run again or restore its files"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise DataError(
                f"{where} does not match its config: tensor '{key}' has shape "
                f"{tuple(state[key].shape)}, the config builds {tuple(tensor.shape)}; "
                "train the run again or restore its files"
            )
        if state[key].is_floating_point() and not bool(state[key].isfinite().all()):
            raise DataError(
                f"{where}: tensor '{key}' holds NaN or infinite values (its training "
                "diverged); train the run again with a lower --lr"
            )


def load_model(run_dir: str | Path = "runs/latest", device: str = "cpu") -> nn.Module:
    """The trained model of a run, ready for inference (eval mode); see :func:`open_run`."""
    return open_run(run_dir, device).model
