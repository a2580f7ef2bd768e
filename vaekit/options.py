"""Parsing ``key=value`` component options and checking them against factories."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, get_args, get_origin

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


def _annotation_problem(value: Any, annotation: Any) -> str | None:
    """What ``value`` should be, judged by the parameter's declared type (None when it
    fits, or when the declaration is not one of the plain types options take)."""
    import types
    import typing

    origin = get_origin(annotation)
    if origin is typing.Literal:
        choices = get_args(annotation)
        # by type too: True == 1, so ``Literal[1, 2]`` would otherwise accept ``true``
        fits = any(value == c and type(value) is type(c) for c in choices)
        return None if fits else "one of " + ", ".join(map(repr, choices))
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if value is None:
            return None if type(None) in get_args(annotation) else type_name(annotation)
        problems = [_annotation_problem(value, a) for a in members]
        return None if any(p is None for p in problems) else type_name(annotation)
    for kind, default in ((bool, False), (int, 0), (float, 0.0), (str, "")):
        if annotation is kind:
            return _type_problem(value, default)
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
    hints = _annotations(factory)
    for key, value in options.items():
        declared, _ = _split_annotated(hints.get(key, inspect.Parameter.empty))
        expected = _annotation_problem(value, declared)
        if expected is None and (declared is inspect.Parameter.empty or isinstance(declared, str)):
            expected = _type_problem(value, params[key].default)
        if expected is not None:
            hint = " (none and null on the command line mean None)" if value is None else ""
            raise UsageError(
                f"{family} '{name}' option '{key}' must be {expected} "
                f"(default {params[key].default!r}), got {value!r}{hint}"
            )


# -- describing a factory's options (``vaekit plugins show``) ------------------------------


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One option of a component, as its factory's signature declares it: the keyword
    parameter's name, type, default, help (``Annotated[int, "help"]``) and range
    (:func:`option_ranges`)."""

    name: str
    type: str
    default: Any
    help: str = ""
    range: Range | None = None
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``vaekit plugins show --json``)."""
        default = self.default if _is_plain(self.default) else repr(self.default)
        return {
            "name": self.name,
            "type": self.type,
            "default": None if self.required else default,
            "required": self.required,
            "help": self.help,
            "range": None if self.range is None else list(self.range),
        }


def describe_options(factory: Callable[..., Any], skip: int = 0) -> list[OptionSpec] | None:
    """The options ``factory`` accepts, typed, with defaults, help and ranges, in the
    order of its signature (``None`` when it takes ``**kwargs``: any option).

    A component declares its options once, in its factory's signature::

        def my_encoder(
            input_shape,
            width: Annotated[int, "channels of the first stage"] = 32,
            norm: Literal["layer", "batch"] = "layer",
        ): ...

    The same declaration serves ``--encoder-opt``, the ``[encoder]`` table of a config
    file, the check of unknown options and values (:func:`check_options`), and this
    listing.
    """
    params = _option_parameters(factory, skip)
    if params is None:
        return None
    hints = _annotations(factory)
    ranges = declared_ranges(factory)
    specs = []
    for name, param in params.items():
        annotation = hints.get(name, param.annotation)
        base, help_text = _split_annotated(annotation)
        required = param.default is param.empty
        default = None if required else param.default
        specs.append(
            OptionSpec(
                name=name,
                type=type_name(base, default),
                default=default,
                help=help_text,
                range=ranges.get(name),
                required=required,
            )
        )
    return specs


def _annotations(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's parameter annotations, evaluated where they can be (a string
    annotation naming something imported only for type checkers stays a string)."""
    import typing

    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - one annotation does not evaluate: each on its own
        pass
    raw = dict(getattr(target, "__annotations__", {}))
    scope = getattr(inspect.unwrap(target), "__globals__", {})
    hints = {}
    for name, annotation in raw.items():
        try:
            hints[name] = typing.get_type_hints(
                _Annotated1(name, annotation), globalns=scope, include_extras=True
            )[name]
        except Exception:  # noqa: BLE001 - a name imported only for type checkers
            hints[name] = annotation
    return hints


class _Annotated1:
    """An object with one annotation, for evaluating a factory's annotations one by one."""

    def __init__(self, name: str, annotation: Any):
        self.__annotations__ = {name: annotation}


def _split_annotated(annotation: Any) -> tuple[Any, str]:
    """``(type, help)`` of ``Annotated[type, "help", ...]``; other annotations have no help."""
    import typing

    if get_origin(annotation) is typing.Annotated:
        base, *extras = get_args(annotation)
        return base, next((e for e in extras if isinstance(e, str)), "")
    return annotation, ""


def type_name(annotation: Any, default: Any = None) -> str:
    """A short readable name of an option's type: ``int``, ``float or none``,
    ``"layer" | "batch"``; from the default's type when there is no annotation."""
    import types
    import typing

    if annotation is inspect.Parameter.empty or annotation is None:
        return type(default).__name__ if default is not None else "any"
    if isinstance(annotation, str):
        return annotation
    origin = get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in get_args(annotation) if a is not type(None)]
        none = type(None) in get_args(annotation)
        return " or ".join(names) + (" or none" if none else "")
    if origin is not None:
        return repr(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", repr(annotation))


def _is_plain(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, type(None)))
