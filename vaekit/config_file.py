"""Training settings in a TOML file: ``vaekit train --config FILE`` reads one, and every
run directory holds its resolved settings as ``config.toml`` (``--print-config`` prints
the same text without training).

Why TOML: Python reads it with the standard library (:mod:`tomllib`, no dependency and
no code execution, unlike YAML's tags), it has real integers, floats and booleans (YAML
reads ``no`` as false and ``1e-3`` as a string), and its tables map one-to-one onto
vaekit's components. The file vaekit writes is plain enough that this module writes it
itself: scalars, lists of strings and one table per component.

Layout::

    epochs = 30              # every training setting, at the top
    latent_dim = 32
    [encoder]                # one table per component: its name and its options
    name = "resnet"
    width = 64
    [kl_schedule]
    name = "warmup"
    steps = 2000

TOML has no null: a setting that is not set (``patience``, ``image_size``...) is left
out, and written back as a comment. Relative paths are read relative to the working
directory, as on the command line. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from pathlib import Path
from typing import Any

from vaekit.config import ModelConfig, TrainConfig, check_setting
from vaekit.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with tomllib's original, tomli
    import tomli as tomllib

#: A config file larger than this is not a settings file (a few kB at most).
MAX_CONFIG_BYTES = 1 << 20

#: Each component's table: its name's setting and its options' setting.
COMPONENT_TABLES: dict[str, tuple[str, str]] = {
    "dataset": ("dataset", "dataset_options"),
    "model": ("kind", "kind_options"),
    "encoder": ("encoder", "encoder_options"),
    "decoder": ("decoder", "decoder_options"),
    "likelihood": ("likelihood", "likelihood_options"),
    "prior": ("prior", "prior_options"),
    "kl_schedule": ("kl_schedule", "kl_schedule_options"),
    "accelerator": ("accelerator", "accelerator_options"),
}
#: Settings the data decides (the input shape, the classes), never the user.
DERIVED = frozenset({"input_shape", "num_classes"})
#: Top-level settings in the order they are written (the components' come in tables).
_IN_TABLES = {key for pair in COMPONENT_TABLES.values() for key in pair}
TOP_LEVEL: tuple[str, ...] = tuple(
    f.name
    for cls in (TrainConfig, ModelConfig)
    for f in dataclasses.fields(cls)
    if f.name not in _IN_TABLES | DERIVED | {"model"}
)
#: What a setting left unset means, written beside it as a comment.
UNSET_MEANING = {
    "data": "the embedded digits",
    "image_size": "the images' own size",
    "channels": "the images' own channels",
    "patience": "no early stopping",
    "name": "a new timestamped run name",
    "decoder": "the encoder's family",
    "dataset": "detected from the data",
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The flat training settings of TOML file ``path`` (what :meth:`TrainConfig.build`
    takes: ``encoder``, ``encoder_options``, ``epochs``...), each checked against its
    type. An unreadable file, an unknown key or table, or a value of the wrong type is
    a one-line :class:`UsageError` (exit 2) naming the key and the file."""
    path = Path(path)
    try:
        if not path.is_file():
            raise UsageError(f"config file {path} does not exist or is not a file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UsageError(f"config file {path} is over 1 MB; it is not a settings file")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    return settings_from_tables(data, str(path))


def settings_from_tables(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Flat settings from a parsed TOML document (see :func:`read_config_file`)."""
    settings: dict[str, Any] = {}
    hints = {**typing.get_type_hints(TrainConfig), **typing.get_type_hints(ModelConfig)}
    known = sorted([*TOP_LEVEL, *(f"[{t}]" for t in COMPONENT_TABLES)])
    for key, value in data.items():
        if key in COMPONENT_TABLES:
            if not isinstance(value, dict):
                raise UsageError(f"{where}: '{key}' must be a table ([{key}] name = ...)")
            settings.update(_component(key, value, where))
        elif key in TOP_LEVEL:
            if isinstance(value, dict):
                raise UsageError(f"{where}: '{key}' must be a value, not a table")
            settings[key] = check_setting(value, hints[key], f"{where}: {key}")
        else:
            raise UsageError(f"{where}: unknown key '{key}'; known: {', '.join(known)}")
    return settings


def _component(table: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    name_key, options_key = COMPONENT_TABLES[table]
    options = dict(values)
    name = options.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise UsageError(f"{where}: [{table}] name must be a string, got {name!r}")
    for key, value in options.items():
        if isinstance(value, dict):
            raise UsageError(f"{where}: [{table}] {key} must be a value, not a table")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{where}: [{table}] {key} must be finite, got {value}")
    found: dict[str, Any] = {options_key: options} if options else {}
    if name is not None:
        found[name_key] = name
    elif options:
        raise UsageError(f'{where}: [{table}] has options but no name; add name = "..."')
    return found


def merge_settings(from_file: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The file's settings overridden by the command line's: a flag replaces its key,
    ``--X-opt`` options replace the file's options one by one, and a flag that names
    another component drops the file's options for the one it replaces (they were that
    component's)."""
    merged = dict(from_file)
    for name_key, options_key in COMPONENT_TABLES.values():
        if name_key in given and given[name_key] != from_file.get(name_key):
            merged.pop(options_key, None)
    for key, value in given.items():
        if key.endswith("_options") and key in merged:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# -- writing ------------------------------------------------------------------------------


def config_toml(
    config: TrainConfig, vaekit_version: str = "", plugins: dict[str, Any] | None = None
) -> str:
    """The TOML text of ``config``, as ``--print-config`` prints it and every run's
    config.toml holds it; reading it back gives the same settings (a round trip). The
    run's own ``name`` is a comment: training from the file makes a new run."""
    head = f"# vaekit {vaekit_version} training settings".replace("  ", " ")
    lines = [head, "# train again: vaekit train --config THIS_FILE [--name NEW] [flags]"]
    for name, info in sorted((plugins or {}).items()):
        lines.append(f"# plugin {name}: {info.get('distribution', '')} {info.get('version', '')}")
    flat = {**config.to_dict(), **dataclasses.asdict(config.model)}
    for key in TOP_LEVEL:
        value = flat[key]
        if key == "name":
            shown = "" if value is None else f" (this file's run: {value})"
            lines.append(f"# name: not set: {UNSET_MEANING['name']}{shown}")
        elif value is None:
            lines.append(f"# {key}: not set: {UNSET_MEANING.get(key, 'the default')}")
        else:
            lines.append(f"{key} = {toml_value(value, key)}")
    for table, (name_key, options_key) in COMPONENT_TABLES.items():
        name, options = flat[name_key], flat[options_key]
        if name is None and not options:
            if name_key in UNSET_MEANING:
                lines += ["", f"# [{table}] not set: {UNSET_MEANING[name_key]}"]
            continue
        lines += ["", f"[{table}]"]
        if name is not None:
            lines.append(f"name = {toml_value(name, 'name')}")
        for key, value in sorted(options.items()):
            if value is None:
                lines.append(f"# {key}: none")
            else:
                lines.append(f"{_key(key)} = {toml_value(value, key)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any, key: str) -> str:
    """One TOML value: a string, boolean, integer, finite float, or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"setting '{key}' is {value}; a config file holds finite numbers")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v, key) for v in value) + "]"
    raise UsageError(f"setting '{key}' = {value!r} cannot be written to a config file")


def _string(text: str) -> str:
    escaped = []
    for ch in text:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04x}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _string(key)
