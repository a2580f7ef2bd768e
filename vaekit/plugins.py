"""The plugin manager: built-in and third-party plugins, component registries.

Plugins are loaded lazily, once, on first use of :func:`get_plugin_host`. Each
entry point in the group ``vaekit`` is imported on its own, inside
``try/except``: a plugin that fails to import (or implements a hook that does
not exist) is unregistered, reported with a warning naming it, and shown as
broken by ``vaekit plugins``; everything else keeps working. Set
``VAEKIT_STRICT_PLUGINS=1`` to turn those warnings into errors (for CI).

The list of entry points is cached (:func:`entry_points`): reading it costs
about a fifth of ``vaekit --help``, and it only changes when a distribution is
installed, upgraded or removed.

A name registered by two plugins in one family is a *conflict*: ``vaekit
plugins`` lists it, and only a command that uses that name fails (with both
plugins and packages named). Every component is checked against its family's
protocol (:mod:`vaekit.contract`) when it is built.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from vaekit import hookspecs
from vaekit.contract import FAMILIES, SINGULAR, check_component
from vaekit.errors import (
    ContractError,
    PluginConflictError,
    UnknownComponentError,
    UsageError,
    VaekitError,
)
from vaekit.options import OptionSpec, check_options, describe_options
from vaekit.version import __version__

#: Positional arguments each family's factory takes before its options (``encoders``:
#: the input shape; ``decoders``: the latent size and output shape...; ``datasets``: the
#: path its ``load`` reads).
OPTION_SKIP: dict[str, int] = {
    "encoders": 1,
    "decoders": 2,
    "likelihoods": 0,
    "priors": 1,
    "kl_schedules": 1,
    "datasets": 1,
    "accelerators": 0,
    "models": 2,
}

BUILTIN_MODULES: tuple[str, ...] = (
    "vaekit.builtin.networks",
    "vaekit.builtin.likelihoods",
    "vaekit.builtin.priors",
    "vaekit.builtin.schedules",
    "vaekit.builtin.datasets",
    "vaekit.builtin.accelerators",
    "vaekit.builtin.models",
    "vaekit.builtin.loggers",
)

ENTRY_POINT_GROUP = "vaekit"
STRICT_ENV = "VAEKIT_STRICT_PLUGINS"
ENTRY_POINT_CACHE_FORMAT = 2
#: A folder changed this recently may change again within its clock tick, unseen: not cached.
RACY_SECONDS = 2.0
#: cache files kept (one per distinct sys.path); older ones are deleted when one is written
KEEP_ENTRY_POINT_CACHES = 16


class VaekitPluginWarning(UserWarning):
    """A third-party plugin could not be loaded; vaekit carries on without it."""


@dataclass
class PluginInfo:
    """One registered plugin and where it came from."""

    name: str
    distribution: str
    version: str
    builtin: bool = False
    status: str = "ok"  # "ok" or "broken"
    error: str = ""
    hooks: list[str] = field(default_factory=list)


class Component:
    """A named factory in one family, with the plugin that registered it.

    A plugin registers the factory itself, or lazily its import path
    (``"package.module:attribute"``): then nothing is imported until the component is
    used, so listing components (``vaekit plugins``) imports no torch.
    """

    def __init__(self, family: str, name: str, factory: Any, plugin: str):
        self.family, self.name, self.plugin = family, name, plugin
        self._target = factory

    @property
    def lazy(self) -> bool:
        """Whether the factory is still an import path, not imported yet."""
        return isinstance(self._target, str)

    @property
    def factory(self) -> Any:
        """The factory (imported on first use when it was registered by its path)."""
        if isinstance(self._target, str):
            self._target = resolve_factory(self.family, self.name, self.plugin, self._target)
        return self._target

    def __repr__(self) -> str:
        return f"Component({self.family!r}, {self.name!r}, plugin={self.plugin!r})"


def resolve_factory(family: str, name: str, plugin: str, path: str) -> Any:
    """Import the factory that ``path`` (``"module:attribute"``) names; a path that does
    not import is one line naming the plugin and the component. A dataset is checked
    against its protocol here, when it is first used."""
    try:
        found = EntryPoint(name, path).load()
    except (ImportError, AttributeError, ValueError) as exc:
        raise ContractError(
            f"{SINGULAR[family]} '{name}' from plugin '{plugin}' names {path!r}, which does "
            f"not import ({type(exc).__name__}: {exc}); reinstall the plugin or ask its author"
        ) from None
    if family == "datasets":  # the registered object is the product
        check_component(family, name, plugin, found)
    return found


@dataclass(frozen=True)
class EntryPoint:
    """One ``vaekit`` entry point: ``name = module[:attr]``, from an installed distribution."""

    name: str
    value: str
    distribution: str = "?"
    version: str = "?"
    #: the ``entry_points.txt`` that declares it ("" when not known)
    declared_in: str = ""

    def load(self) -> Any:
        """Import the module (and attribute) the entry point names, as importlib.metadata does."""
        match = _ENTRY_POINT_VALUE.match(self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        obj = importlib.import_module(match.group("module"))
        attrs = match.group("attr")
        for attr in attrs.split(".") if attrs else ():
            obj = getattr(obj, attr)
        return obj


# the pattern of importlib.metadata.EntryPoint
_ENTRY_POINT_VALUE = re.compile(
    r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$"
)


def entry_points() -> list[EntryPoint]:
    """The installed ``vaekit`` entry points, from a cache when nothing was installed since.

    Scanning them means importing importlib.metadata and reading every installed
    distribution's metadata. The result is kept in the cache folder
    (``$VAEKIT_CACHE_DIR``, default ``~/.cache/vaekit``), one file per ``sys.path``,
    together with the modification time of each ``sys.path`` folder: installing,
    upgrading or removing a distribution adds or removes a ``*.dist-info`` folder
    there, which changes that time, and the next call scans again. A cache that
    cannot be read or written is ignored; the 16 newest files are kept.

    The cache never chooses code: each cached entry point names the
    ``entry_points.txt`` that declares it, in a distribution folder directly on
    ``sys.path``, and is used only when that file still declares exactly it
    (:func:`_declared`). A cache naming anything else, edited by hand or by
    someone else, is ignored and rebuilt.
    """
    stamps = _path_stamps()
    cache = _entry_point_cache_file()
    try:
        saved = json.loads(cache.read_text())
        if saved["format"] == ENTRY_POINT_CACHE_FORMAT and saved["stamps"] == stamps:
            cached = [EntryPoint(*fields) for fields in saved["entry_points"]]
            if _declared(cached):
                return cached
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    found = _scan_entry_points()
    cacheable = all(e.declared_in for e in found)
    if cacheable and time.time_ns() - max((t for _, t in stamps), default=0) > RACY_SECONDS * 1e9:
        payload = {
            "format": ENTRY_POINT_CACHE_FORMAT,
            "stamps": stamps,
            "entry_points": [
                [e.name, e.value, e.distribution, e.version, e.declared_in] for e in found
            ],
        }
        temporary = cache.with_name(f".{cache.name}.pid{os.getpid()}")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(payload))
            os.replace(temporary, cache)
            _prune_entry_point_caches(cache.parent)
        except OSError:
            temporary.unlink(missing_ok=True)
    return found


def _declared(cached: list[EntryPoint]) -> bool:
    """Whether every cached entry point is declared, name and value, in the
    ``[vaekit]`` section of the ``entry_points.txt`` it names, and that file lies in a
    ``*.dist-info``/``*.egg-info`` folder directly inside a ``sys.path`` folder."""
    on_path = {os.path.abspath(entry or ".") for entry in sys.path}
    sections: dict[str, dict[str, str]] = {}
    for ep in cached:
        declared = Path(ep.declared_in)
        meta = declared.parent
        if (
            not ep.declared_in
            or declared.name != "entry_points.txt"
            or not meta.name.endswith((".dist-info", ".egg-info"))
            or os.path.abspath(meta.parent) not in on_path
        ):
            return False
        if ep.declared_in not in sections:
            sections[ep.declared_in] = _vaekit_section(declared)
        if sections[ep.declared_in].get(ep.name) != ep.value:
            return False
    return True


def _vaekit_section(path: Path) -> dict[str, str]:
    """``name -> value`` of the ``[vaekit]`` section of an ``entry_points.txt``."""
    import configparser

    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names keep their case
    try:
        parser.read_string(path.read_text())
    except (OSError, UnicodeDecodeError, configparser.Error):
        return {}
    if not parser.has_section(ENTRY_POINT_GROUP):
        return {}
    return {k.strip(): v.strip() for k, v in parser.items(ENTRY_POINT_GROUP)}


def _prune_entry_point_caches(folder: Path) -> None:
    """Keep the :data:`KEEP_ENTRY_POINT_CACHES` newest cache files (one is written per
    distinct ``sys.path``: virtual environments, test runs), delete the rest."""
    files = sorted(
        folder.glob("entry-points-*.json"), key=lambda f: f.stat().st_mtime_ns, reverse=True
    )
    for old in files[KEEP_ENTRY_POINT_CACHES:]:
        old.unlink(missing_ok=True)


def _scan_entry_points() -> list[EntryPoint]:
    from importlib import metadata

    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found.append(
            EntryPoint(
                ep.name,
                ep.value,
                dist.name if dist is not None else "?",
                dist.version if dist is not None else "?",
                _entry_points_file(dist),
            )
        )
    return found


def _entry_points_file(dist: Any) -> str:
    """The ``entry_points.txt`` of a distribution found on disk ("" when there is none)."""
    folder = getattr(dist, "_path", None)  # importlib.metadata.PathDistribution's folder
    if folder is None:
        return ""
    path = Path(folder) / "entry_points.txt"
    return str(path) if path.is_file() else ""


def _path_stamps() -> list[list[Any]]:
    """``[entry, mtime_ns]`` of each ``sys.path`` entry (-1: missing)."""
    stamps: list[list[Any]] = []
    for entry in sys.path:
        try:
            stamps.append([entry, os.stat(entry or ".").st_mtime_ns])
        except (OSError, ValueError):
            stamps.append([entry, -1])
    return stamps


def _entry_point_cache_file() -> Path:
    from vaekit.cachedir import cache_dir

    key = zlib.crc32("\0".join(sys.path).encode("utf-8", "surrogateescape"))
    return cache_dir() / f"entry-points-{key:08x}.json"


class PluginHost:
    """Owns the pluggy manager, plugin provenance and per-family registries."""

    def __init__(self, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("vaekit")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registries: dict[str, dict[str, Component]] = {}
        #: family -> name -> the message of a name that two plugins registered
        self.conflicts: dict[str, dict[str, str]] = {}
        for module_name in BUILTIN_MODULES:
            module = importlib.import_module(module_name)
            self.add_plugin(module, module_name, "vaekit", __version__, builtin=True)
        if entry_points:
            self._load_entry_points()

    # -- loading ---------------------------------------------------------
    def _load_entry_points(self) -> None:
        for ep in entry_points():
            dist_name, version = ep.distribution, ep.version
            try:
                module = ep.load()
            except Exception as exc:  # any import failure of third-party code
                self._mark_broken(ep.name, dist_name, version, f"import failed: {exc!r}")
                continue
            self.add_plugin(module, ep.name, dist_name, version)

    def add_plugin(
        self,
        plugin: object,
        name: str,
        distribution: str = "?",
        version: str = "?",
        builtin: bool = False,
    ) -> PluginInfo | None:
        """Register ``plugin`` under ``name``; returns its info, or None if it was rejected.

        A plugin whose hooks fail validation is unregistered again (rolled back)
        and reported as broken. Registries already built are rebuilt on next use.
        """
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            if builtin:
                raise
            self._mark_broken(name, distribution, version, f"invalid plugin: {exc}")
            return None
        hooks = sorted(caller.name for caller in (self.pm.get_hookcallers(plugin) or []))
        info = PluginInfo(name, distribution, version, builtin=builtin, hooks=hooks)
        self.plugins[name] = info
        self._registries.clear()
        return info

    def remove_plugin(self, name: str) -> None:
        """Unregister a plugin by name (tests use this in ``finally``)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.plugins.pop(name, None)
        self._registries.clear()

    def _mark_broken(self, name: str, distribution: str, version: str, error: str) -> None:
        self.plugins[name] = PluginInfo(name, distribution, version, status="broken", error=error)
        message = f"vaekit plugin '{name}' (from {distribution}) is broken and was skipped: {error}"
        if os.environ.get(STRICT_ENV, "") not in ("", "0"):
            raise VaekitError(message)
        warnings.warn(message, VaekitPluginWarning, stacklevel=3)

    # -- registries ------------------------------------------------------
    def registry(self, family: str) -> dict[str, Component]:
        """All components of ``family`` by name, built on first use."""
        if family not in FAMILIES:
            raise ValueError(f"unknown component family {family!r}; families: {FAMILIES}")
        if family not in self._registries:
            self.conflicts[family] = {}
            self._registries[family] = self._build_registry(family)
        return self._registries[family]

    def _build_registry(self, family: str) -> dict[str, Component]:
        registry: dict[str, Component] = {}
        self.conflicts[family] = {}
        caller = getattr(self.pm.hook, f"register_{family}")
        for impl in reversed(caller.get_hookimpls()):  # registration order
            added: list[str] = []
            register = self._registrar(family, impl.plugin_name, registry, added)
            try:
                impl.function(register=register)
            except Exception as exc:
                info = self.plugins.get(impl.plugin_name)
                if info is None or info.builtin:
                    raise
                for name in added:  # roll back this plugin's part of the family
                    registry.pop(name, None)
                self.remove_plugin(impl.plugin_name)
                self._mark_broken(
                    impl.plugin_name,
                    info.distribution,
                    info.version,
                    f"register_{family} failed: {exc!r}",
                )
                return self._build_registry(family)
        return registry

    def _registrar(
        self, family: str, plugin: str, registry: dict[str, Component], added: list[str]
    ) -> Callable[[str, Any], None]:
        """The ``register`` callable handed to one plugin's registration hook."""

        def register(name: str, factory: Any) -> None:
            if not isinstance(name, str) or not name:
                raise VaekitError(f"plugin '{plugin}' registered a {family} with no name")
            if isinstance(factory, str):  # lazy: "module:attribute", imported when used
                if _ENTRY_POINT_VALUE.match(factory) is None or ":" not in factory:
                    raise VaekitError(
                        f"plugin '{plugin}' registered {SINGULAR[family]} '{name}' as "
                        f"{factory!r}; a lazy factory is named 'package.module:attribute'"
                    )
            elif family == "datasets":  # the registered object is the product
                check_component(family, name, plugin, factory)
            if name in registry and registry[name].plugin != plugin:
                other = registry[name].plugin
                self.conflicts[family][name] = (
                    f"{SINGULAR[family]} '{name}' is registered by two plugins: "
                    f"'{other}' ({self._dist(other)}) and '{plugin}' ({self._dist(plugin)}); "
                    "uninstall one of them or ask its author to rename it"
                )
                return
            registry[name] = Component(family, name, factory, plugin)
            added.append(name)

        return register

    def _dist(self, plugin_name: str) -> str:
        info = self.plugins.get(plugin_name)
        return f"{info.distribution} {info.version}" if info else "?"

    def names(self, family: str) -> list[str]:
        """Sorted names registered in ``family``."""
        return sorted(self.registry(family))

    def get(self, family: str, name: str) -> Component:
        """The component ``name`` of ``family``; unknown names fail with suggestions."""
        registry = self.registry(family)
        if name in self.conflicts.get(family, {}):
            raise PluginConflictError(self.conflicts[family][name])
        if name not in registry:
            raise UnknownComponentError(SINGULAR[family], name, list(registry))
        return registry[name]

    def create(self, family: str, name: str, *args: Any, **options: Any) -> Any:
        """Build component ``name`` with positional ``args`` and checked keyword ``options``;
        the product is checked against the family's protocol (:mod:`vaekit.contract`)."""
        component = self.get(family, name)
        check_options(SINGULAR[family], name, component.factory, options, skip=len(args))
        try:
            product = component.factory(*args, **options)
        except ValueError as exc:  # a factory refusing an option's value (arch=9)
            if not options:
                raise
            raise UsageError(f"{SINGULAR[family]} '{name}' with options {options}: {exc}") from None
        return check_component(family, name, component.plugin, product)

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, for lifecycle hooks."""
        return self.pm.hook


_HOST: PluginHost | None = None


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, created (and entry points loaded) on first call."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def reset_plugin_host() -> None:
    """Forget the plugin host so the next call rebuilds it (for tests)."""
    global _HOST
    _HOST = None


def create(family: str, name: str, *args: Any, **options: Any) -> Any:
    """Shortcut for ``get_plugin_host().create(...)``."""
    return get_plugin_host().create(family, name, *args, **options)


def factory(family: str, name: str) -> Callable[..., Any]:
    """The registered factory for ``name`` in ``family``."""
    return get_plugin_host().get(family, name).factory


@dataclass(frozen=True)
class ComponentDescription:
    """What ``vaekit plugins show NAME`` prints for one component."""

    family: str
    name: str
    plugin: str
    summary: str
    #: ``None``: the factory takes ``**options`` (any option)
    options: list[OptionSpec] | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "family": self.family,
            "name": self.name,
            "plugin": self.plugin,
            "summary": self.summary,
            "options": None if self.options is None else [o.to_dict() for o in self.options],
        }


def option_target(family: str, product: Any) -> tuple[Any, int]:
    """The callable whose keyword parameters are a component's options, and how many
    positional arguments come first (a dataset's options are those of its ``load``)."""
    if family == "datasets":
        declared = inspect.getattr_static(product, "load", None)
        unbound = inspect.isclass(product) and not isinstance(declared, (staticmethod, classmethod))
        return product.load, OPTION_SKIP[family] + (1 if unbound else 0)  # + self
    return product, OPTION_SKIP[family]


def describe_component(name: str, family: str | None = None) -> list[ComponentDescription]:
    """Every registered component called ``name`` (in ``family`` when given), with its
    options as its factory declares them (:func:`vaekit.options.describe_options`).
    None found: a :class:`UsageError` listing the names there are."""
    host = get_plugin_host()
    families = FAMILIES if family is None else (_family(family),)
    found = []
    for fam in families:
        component = host.registry(fam).get(name)
        if component is None:
            continue
        target, skip = option_target(fam, component.factory)
        doc = inspect.getdoc(component.factory) or ""
        found.append(
            ComponentDescription(
                family=SINGULAR[fam],
                name=name,
                plugin=component.plugin,
                summary=doc.strip().split("\n\n")[0].replace("\n", " "),
                options=describe_options(target, skip),
            )
        )
    if not found:
        names = sorted({n for fam in families for n in host.registry(fam)})
        where = "" if family is None else f" {SINGULAR[_family(family)]}"
        raise UsageError(f"no{where} component named '{name}'; there are: {', '.join(names)}")
    return found


def _family(name: str) -> str:
    """A family from its plural or singular name (``encoder``, ``kl_schedule``)."""
    for family, singular in SINGULAR.items():
        if name in (family, singular, singular.replace(" ", "_").lower(), family[:-1]):
            return family
    raise UsageError(f"unknown family '{name}'; families: {', '.join(SINGULAR.values())}")
