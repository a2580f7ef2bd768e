"""Typed configuration: the model, the training run, and the config.json that records both.

Each setting and its default is declared once, here. ``config.json`` is parsed
once into these objects (:meth:`RunConfig.from_dict`), strictly: an unknown
key, or a value of the wrong type (``"latent_dim": "16"``), is a one-line
:class:`~vaekit.errors.DataError` naming the file's field. Configs written by
earlier vaekit versions are upgraded on read (:func:`upgrade`).

This module imports no torch: the CLI can build configs before deciding to train.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vaekit.errors import DataError, UsageError

#: Seeds are 32-bit (what numpy's and scikit-learn's generators take).
MAX_SEED = 2**32 - 1
#: The widest latent space vaekit builds (and reads back from a store or cluster file).
MAX_LATENT_DIM = 16_384

T = TypeVar("T")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model: component names, their options, shapes.

    ``input_shape`` and ``num_classes`` come from the training data (the core fills
    them in before building); the rest is the user's choice.
    """

    kind: str = "vae"
    kind_options: dict[str, Any] = field(default_factory=dict)
    latent_dim: int = 16
    encoder: str = "conv"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    decoder: str | None = None  # None: the encoder's family
    decoder_options: dict[str, Any] = field(default_factory=dict)
    likelihood: str = "gaussian"
    likelihood_options: dict[str, Any] = field(default_factory=dict)
    prior: str = "normal"
    prior_options: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] | None = None  # (C, H, W), from the data
    num_classes: int = 0  # > 0 only for kinds that condition on labels

    def __post_init__(self) -> None:
        if self.input_shape is not None:
            self.input_shape = tuple(int(s) for s in self.input_shape)  # type: ignore[assignment]
        if self.decoder is None:
            self.decoder = self.encoder
        if not 1 <= self.latent_dim <= MAX_LATENT_DIM:
            raise UsageError(
                f"latent size must be from 1 to {MAX_LATENT_DIM:,}, got {self.latent_dim}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (:meth:`from_dict` reads it back)."""
        data = dataclasses.asdict(self)
        if self.input_shape is not None:
            data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], what: str = "model config") -> ModelConfig:
        """Strict inverse of :meth:`to_dict`: unknown keys and wrong types are errors."""
        return typed_dataclass(cls, data, what)


#: Fields of :class:`ModelConfig`, for routing flat keyword settings.
MODEL_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(ModelConfig))


@dataclass
class TrainConfig:
    """Every setting of a training run: the model it trains, the data, the optimisation."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str | None = None
    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    channels: int | None = None
    skip_bad: bool = False
    val_fraction: float = 0.1
    kl_schedule: str = "warmup"
    kl_schedule_options: dict[str, Any] = field(default_factory=dict)
    free_bits: float = 0.0
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float = 100.0
    max_skipped_steps: int = 20  # non-finite steps skipped in one epoch before a roll-back
    max_rollbacks: int = 3  # roll-backs (learning rate halved each time) before giving up
    patience: int | None = None  # early stopping: epochs without a better val -ELBO
    seed: int = 0
    accelerator: str = "auto"
    accelerator_options: dict[str, Any] = field(default_factory=dict)
    runs_dir: str = "runs"
    name: str | None = None
    loggers: list[str] = field(default_factory=list)  # besides metrics.jsonl/.csv: tensorboard
    figures: bool = True  # draw RUN/figures/ at the end
    #: components of the prior fitted to the training latents at the end (0: none;
    #: None: 25 with the fixed ``normal`` prior, 0 with any other, whose own p(z) the
    #: user chose); see vaekit.fitted_prior. Runs of vaekit 0.4 and older read as 0.
    fit_prior: int | None = None

    @classmethod
    def build(cls, **settings: Any) -> TrainConfig:
        """A config from flat keyword settings: model fields (``encoder``, ``latent_dim``,
        ``kind``...) go to :attr:`model`, the rest to the training config. Unknown names
        are a :class:`UsageError` listing the known ones."""
        model = {k: settings.pop(k) for k in list(settings) if k in MODEL_FIELDS}
        known = {f.name for f in dataclasses.fields(cls)} - {"model"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UsageError(
                f"unknown training settings {unknown}; known: {sorted(known | MODEL_FIELDS)}"
            )
        return cls(model=ModelConfig(**model), **settings)

    def to_dict(self) -> dict[str, Any]:
        """The training settings without the model (config.json keeps that apart)."""
        data = dataclasses.asdict(self)
        del data["model"]
        return data

    @property
    def fit_prior_components(self) -> int:
        """``fit_prior`` resolved: 25 for the ``normal`` prior when unset, else 0."""
        if self.fit_prior is not None:
            return self.fit_prior
        return 25 if self.model.prior == "normal" else 0

    def validate(self) -> None:
        """Fail early, before any data is read, on bad numbers."""
        for name, value in (
            ("epochs", self.epochs),
            ("batch size", self.batch_size),
            ("latent size", self.model.latent_dim),
        ):
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        for flag, number in (
            ("--lr", self.lr),
            ("--free-bits", self.free_bits),
            ("--grad-clip", self.grad_clip),
        ):
            if not math.isfinite(number):
                raise UsageError(f"{flag} must be a finite number, got {number}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be from 0 to {MAX_SEED}, got {self.seed}")
        if not self.lr > 0:
            raise UsageError(f"learning rate must be > 0, got {self.lr}")
        if not self.free_bits >= 0:
            raise UsageError(f"free bits must be >= 0, got {self.free_bits}")
        if not self.grad_clip >= 0:
            raise UsageError(f"--grad-clip must be >= 0 (0: off), got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise UsageError(f"--patience must be >= 1, got {self.patience}")
        if self.max_skipped_steps < 0 or self.max_rollbacks < 0:
            raise UsageError("--max-skipped-steps and --max-rollbacks must be >= 0")
        if self.fit_prior is not None and not 0 <= self.fit_prior <= 1000:
            raise UsageError(f"--fit-prior must be 0 (none) to 1000, got {self.fit_prior}")


@dataclass
class RunConfig:
    """A run's config.json: the resolved model, the training settings, the data, versions."""

    train: TrainConfig
    data: dict[str, Any] = field(default_factory=dict)
    vaekit_version: str = ""
    created: str = ""
    plugins: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> ModelConfig:
        """The model config (with its input shape and classes resolved)."""
        return self.train.model

    @property
    def class_names(self) -> list[str] | None:
        """The training data's class names (None when it had none)."""
        names = self.data.get("class_names")
        return list(names) if names is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of config.json."""
        return {
            "vaekit_version": self.vaekit_version,
            "created": self.created,
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
            "data": self.data,
            "plugins": self.plugins,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "config.json") -> RunConfig:
        """Parse (and upgrade) config.json; any fault is a :class:`DataError` naming ``where``."""
        try:
            if not isinstance(data, dict):
                raise DataError("it is not a JSON object")
            data = upgrade(data)
            unknown = sorted(
                set(data) - {"vaekit_version", "created", "model", "train", "data", "plugins"}
            )
            if unknown:
                raise DataError(f"unknown keys {unknown}")
            model = ModelConfig.from_dict(_section(data, "model"), "model")
            train_data = dict(_section(data, "train"))
            if "model" in train_data:
                raise DataError("unknown keys ['model'] in train")
            fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
            train = typed_dataclass(
                TrainConfig, train_data, "train", exclude={"model"}, known=fields
            )
            train.model = model
            if model.input_shape is None:
                raise DataError("model.input_shape is missing")
            for key in ("data", "plugins"):
                if not isinstance(data.get(key) or {}, dict):
                    raise DataError(f"'{key}' is not an object")
            return cls(
                train=train,
                data=dict(data.get("data") or {}),
                vaekit_version=str(data.get("vaekit_version", "")),
                created=str(data.get("created", "")),
                plugins=dict(data.get("plugins") or {}),
            )
        except (DataError, UsageError) as exc:
            raise DataError(
                f"{where} is damaged or not a vaekit run config: {exc}; "
                "train the run again or restore the file"
            ) from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a crafted layout
            raise DataError(
                f"{where} is damaged or not a vaekit run config ({type(exc).__name__}: {exc}); "
                "train the run again or restore the file"
            ) from None


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise DataError(f"'{key}' is missing or not an object")
    return value


# -- upgrades of older config.json layouts --------------------------------------------------


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A config.json dict in today's layout, so an old run loads as it was trained.

    - vaekit 0.1: the model's settings were repeated under ``train`` and the model kind
      was named ``model``; both are mapped.
    - vaekit 0.1 to 0.3: ``conv``/``resnet`` options that the run left to their defaults
      and whose defaults have changed since are pinned to what that version built
      (:data:`PINNED_OPTIONS`).
    - vaekit 0.1 and 0.2: a ``cvae`` had no class-conditional prior (``class_prior=False``).
    - vaekit 0.1 to 0.4 fitted no prior after training: ``fit_prior`` reads as 0, so a
      resumed old run keeps sampling from its p(z).
    """
    version = str(data.get("vaekit_version", ""))
    if version.startswith(("0.1.", "0.2.", "0.3.", "0.4.")):
        train = data.get("train")
        if isinstance(train, dict) and "fit_prior" not in train:
            data = {**data, "train": {**train, "fit_prior": 0}}
    pins = next((p for prefix, p in PINNED_OPTIONS.items() if version.startswith(prefix)), None)
    if pins is None:
        return data
    data = {**data}
    model = dict(data.get("model") or {})
    if version.startswith("0.1."):
        if "model" in model:
            model["kind"] = model.pop("model")
        train = {k: v for k, v in (data.get("train") or {}).items() if k not in MODEL_FIELDS}
        train.pop("model", None)
        data["train"] = train
    for family in ("encoder", "decoder"):
        name = model.get(family) or model.get("encoder")  # 0.1 could leave the decoder out
        options = dict(model.get(f"{family}_options") or {})
        model[f"{family}_options"] = {**pins.get(name, {}), **options}
    if model.get("kind") == "cvae" and version.startswith(("0.1.", "0.2.")):
        model["kind_options"] = {"class_prior": False, **(model.get("kind_options") or {})}
    data["model"] = model
    return data


#: Per vaekit version (prefix), the defaults its ``conv``/``resnet`` were built with, for
#: the options whose defaults changed since: 0.1.0's nets had no ``arch``; 0.2 and 0.3
#: built resnet arch 2; until 0.4 the resnet normalised with BatchNorm.
PINNED_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "0.1.": {"conv": {"arch": 1}, "resnet": {"arch": 1, "norm": "batch"}},
    "0.2.": {"resnet": {"arch": 2, "norm": "batch"}},
    "0.3.": {"resnet": {"arch": 2, "norm": "batch"}},
}


# -- strict, typed dataclasses from JSON --------------------------------------------------


def typed_dataclass(
    cls: type[T],
    data: dict[str, Any],
    what: str,
    exclude: set[str] | frozenset[str] = frozenset(),
    known: dict[str, dataclasses.Field] | None = None,
) -> T:
    """Build dataclass ``cls`` from JSON ``data``, checking every value's type against the
    field's annotation. Unknown keys and wrong types raise :class:`DataError` naming the
    field (``what.field``) and the expected type."""
    if not isinstance(data, dict):
        raise DataError(f"{what} is not an object")
    fields = known or {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    allowed = set(fields) - set(exclude)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise DataError(f"unknown keys {unknown} in {what}; known: {sorted(allowed)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        values[key] = _checked(value, hints[key], f"{what}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError, UsageError) as exc:
        raise DataError(f"{what}: {exc}") from None


def check_setting(value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it is of type ``annotation``, else a one-line :class:`UsageError`
    naming ``where`` and the type expected (for settings a user wrote, e.g. a config file)."""
    try:
        return _checked(value, annotation, where)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def _checked(value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it is of type ``annotation`` (JSON lists become tuples where asked)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _checked(value, option, where)
            except DataError as exc:
                errors.append(exc)
        raise errors[0]
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        return typed_dataclass(annotation, value, where)  # type: ignore[arg-type]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise DataError(f"{where} must be an object, got {value!r}")
        return dict(value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise DataError(f"{where} must have {len(args)} entries, got {value!r}")
            return tuple(_checked(v, a, where) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        converted = [_checked(v, item, where) for v in value]
        return tuple(converted) if origin is tuple else converted
    if annotation is bool:
        if not isinstance(value, bool):
            raise DataError(f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise DataError(f"{where} must be a string, got {value!r}")
        return value
    return value
