"""Parsing ``key=value`` component options and checking them against factories."""

from __future__ import annotations

import dataclasses
import inspect
import json
import numbers
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


def _option_parameters(
    factory: Callable[..., Any], skip: int = 0
) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of a factory (``None`` when it takes ``**kwargs``)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]  # self
    params = params[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {
        p.name: p
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def accepted_options(factory: Callable[..., Any], skip: int = 0) -> list[str] | None:
    """Keyword options a factory accepts (``None`` when it takes ``**kwargs``)."""
    params = _option_parameters(factory, skip)
    return None if params is None else list(params)


def with_defaults(factory: Callable[..., Any], options: dict[str, Any], skip: int = 0) -> dict:
    """``options`` and, for each keyword the factory has that they leave out, its default
    when that is a plain JSON value (bool, number, string or None). A run's config.json
    keeps these, so a later release that changes a default still rebuilds the run as it
    was trained. A factory that takes ``**kwargs`` gets ``options`` back unchanged."""
    params = _option_parameters(factory, skip)
    if params is None:
        return dict(options)
    plain = (bool, int, float, str, type(None))
    defaults = {
        name: p.default
        for name, p in params.items()
        if name not in options and p.default is not p.empty and isinstance(p.default, plain)
    }
    return {**defaults, **options}


def _type_problem(value: Any, default: Any) -> str | None:
    """What ``value`` should be, judged by the type of the parameter's ``default``
    (None when it fits, or when the default says nothing: None or another type)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, numbers.Integral):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if ok else "an integer"
    if isinstance(default, numbers.Real):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    return None


def check_options(
    family: str, name: str, factory: Callable[..., Any], options: dict[str, Any], skip: int = 0
) -> None:
    """Fail with the accepted option names when ``options`` holds one the factory lacks,
    and with the expected type when a value does not fit its parameter's default
    (``fp16=maybe`` for a ``fp16: bool = False``)."""
    params = _option_parameters(factory, skip=skip)
    if params is None:
        return
    unknown = sorted(set(options) - set(params))
    if unknown:
        listing = ", ".join(params) or "(none)"
        raise UsageError(
            f"{family} '{name}' has no option {', '.join(repr(u) for u in unknown)}; "
            f"it accepts: {listing}"
        )
    for key, value in options.items():
        expected = _type_problem(value, params[key].default)
        if expected is not None:
            hint = " (none and null on the command line mean None)" if value is None else ""
            raise UsageError(
                f"{family} '{name}' option '{key}' must be {expected} "
                f"(default {params[key].default!r}), got {value!r}{hint}"
            )
