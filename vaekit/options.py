"""Parsing ``key=value`` component options and checking them against factories."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
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


#: ``(low, high)``: an option's allowed values, inclusive; ``None``: no bound on that side.
Range = tuple[float | None, float | None]
RANGES_ATTRIBUTE = "__vaekit_option_ranges__"
#: The built-in networks' size options (wider or deeper would not fit any machine; a conv
#: network's ``hidden=0`` means no hidden layer).
NETWORK_RANGES: dict[str, Range] = dict(
    width=(1, 4096), hidden=(0, 65536), depth=(1, 64), blocks=(0, 64), res_stages=(0, 8)
)


def option_ranges(ranges: dict[str, Range] | None = None, **more: Range) -> Callable[[T], T]:
    """Declare the allowed range of a component's numeric options, checked with the
    names and types before the component is built (so ``width=-5`` or ``threads=10**6``
    is one line, never an error from deep inside torch)::

        @option_ranges(width=(1, 4096), blocks=(0, 64))
        class MyEncoder(nn.Module): ...

    Every number a component receives must also be finite (NaN and infinity are
    refused for every option, declared or not)."""

    declared = {**(ranges or {}), **more}

    def mark(factory: T) -> T:
        setattr(factory, RANGES_ATTRIBUTE, {**declared_ranges(factory), **declared})
        return factory

    return mark


def declared_ranges(factory: Any) -> dict[str, Range]:
    """The ranges :func:`option_ranges` declared on ``factory`` (empty when none)."""
    return dict(getattr(factory, RANGES_ATTRIBUTE, {}))


def _range_problem(value: Any, bounds: Range) -> str | None:
    low, high = bounds
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            return f"from {low:g} to {high:g}"
        return f">= {low:g}" if low is not None else f"<= {high:g}"
    return None


def _not_finite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or infinite number (in lists too)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_not_finite(v) for v in value)
    return False


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
    with the expected type when a value does not fit its parameter's default
    (``fp16=maybe`` for a ``fp16: bool = False``), with the range when a number lies
    outside what :func:`option_ranges` declared, and on any NaN or infinity."""
    for key, value in options.items():
        if _not_finite(value):
            raise UsageError(f"{family} '{name}' option '{key}' must be finite, got {value!r}")
    ranges = declared_ranges(factory)
    for key, value in options.items():
        expected = _range_problem(value, ranges[key]) if key in ranges else None
        if expected is not None:
            raise UsageError(f"{family} '{name}' option '{key}' must be {expected}, got {value!r}")
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
