"""Parsing ``key=value`` component options and checking them against factories."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from vaekit.errors import UsageError

T = TypeVar("T")


def parse_value(text: str) -> Any:
    """Turn a command-line value into int, float, bool, None, list or str."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_options(pairs: Iterable[str], flag: str = "--opt") -> dict[str, Any]:
    """Parse ``["width=64", "norm=layer"]`` into ``{"width": 64, "norm": "layer"}``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects key=value, got '{pair}'")
        options[key.strip().replace("-", "_")] = parse_value(value)
    return options


def strict_dataclass(cls: type[T], data: dict[str, Any], what: str) -> T:
    """Build dataclass ``cls`` from ``data``; a key it lacks is an error naming the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{what} has unknown keys {unknown}; known: {sorted(known)}")
    return cls(**data)


def accepted_options(factory: Callable[..., Any], skip: int = 0) -> list[str] | None:
    """Keyword options a factory accepts (``None`` when it takes ``**kwargs``)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]  # self
    params = params[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


def check_options(
    family: str, name: str, factory: Callable[..., Any], options: dict[str, Any], skip: int = 0
) -> None:
    """Fail with the accepted option names when ``options`` holds one the factory lacks."""
    accepted = accepted_options(factory, skip=skip)
    if accepted is None:
        return
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        listing = ", ".join(accepted) or "(none)"
        raise UsageError(
            f"{family} '{name}' has no option {', '.join(repr(u) for u in unknown)}; "
            f"it accepts: {listing}"
        )
