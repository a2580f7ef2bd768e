"""Help that reads well and starts fast: typer's rich formatter without the modules vaekit
never uses, readable placeholders, and ``train``'s options in panels."""

import copy
import importlib
import sys
import types
from pathlib import Path
from typing import Annotated, Any

import typer


class _Deferred(type):
    """The class of a stand-in that loads the real class on first use (see below)."""

    def __getattr__(cls, attr: str) -> Any:  # class attributes, e.g. Traceback.from_exception
        return getattr(cls.real(), attr)


def _stand_in(module: str, name: str) -> type:
    """A stand-in for class ``module.name``: calling it or reading its attributes imports
    the real class and uses that."""

    def real() -> Any:
        return getattr(importlib.import_module(module), name)

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return real()(*args, **kwargs)

    return _Deferred(name, (), {"__new__": new, "real": staticmethod(real)})


def import_help_formatter() -> None:
    """Import typer's rich help formatter without rich.markdown and rich.traceback.

    ``typer.rich_utils`` imports both at module level (markdown_it and pygments
    with them: a fifth of ``vaekit --help``), but vaekit uses neither: its help
    is rich markup, not markdown, and pretty exceptions are off. While it is
    imported, those two modules are stand-ins whose classes import the real ones
    when first used; afterwards ``import rich.markdown`` gets the real module.
    """
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {}
    for module, name in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if module not in sys.modules:
            stand_ins[module] = types.ModuleType(module)
            setattr(stand_ins[module], name, _stand_in(module, name))
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        for module, stub in stand_ins.items():
            if sys.modules.get(module) is stub:
                del sys.modules[module]


#: ``vaekit train --help`` groups its many options under these panels.
TRAIN_PANELS = {
    "Data": (
        "dataset", "dataset_opt", "image_size", "channels", "skip_bad", "val_fraction",
    ),
    "Model": (
        "model_kind", "model_opt", "encoder", "encoder_opt", "decoder", "decoder_opt",
        "likelihood", "likelihood_opt", "prior", "prior_opt", "latent_dim",
    ),
    "Training": (
        "kl_schedule", "kl_opt", "free_bits", "epochs", "batch_size", "lr", "grad_clip",
        "patience", "max_skipped_steps", "max_rollbacks", "seed", "accelerator",
        "accelerator_opt", "fit_prior",
    ),
    "Output": ("runs_dir", "name", "resume", "logger", "figures"),
    "Config file": ("config_file", "print_config"),
}  # fmt: skip


def _metavar(annotation: Any, name: str, argument: bool) -> str:
    """A readable placeholder for a parameter: ``N``, ``X``, ``PATH``, ``TEXT`` (none for
    a flag), where typer would show ``<int>``, ``<bool>`` or ``<list[str]>``."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union) and args:
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if argument:
        return name.upper()
    return {bool: "", int: "N", float: "X", Path: "PATH"}.get(annotation, "TEXT")


def readable_help(app: typer.Typer) -> None:
    """Give every built-in command's parameters readable placeholders and ``train``'s
    options their panels (typer's own show ``<int>``, ``<list[str]>``, one long list)."""
    import typing

    from typer.core import TyperArgument, TyperOption
    from typer.models import ArgumentInfo, OptionInfo

    shown_type = TyperArgument.display_type_rich
    if not getattr(shown_type, "vaekit", False):  # an argument named by its metavar: no <str>

        def argument_type(self: Any, ctx: Any) -> str | None:
            return None if self.metavar else shown_type(self, ctx)

        argument_type.vaekit = True  # type: ignore[attr-defined]
        TyperArgument.display_type_rich = argument_type  # type: ignore[method-assign]
    option_type = TyperOption.display_type_rich
    if not getattr(option_type, "vaekit", False):  # a flag (--help too) takes no value

        def flag_type(self: Any, ctx: Any) -> str | None:
            return None if self.is_flag and self.metavar is None else option_type(self, ctx)

        flag_type.vaekit = True  # type: ignore[attr-defined]
        TyperOption.display_type_rich = flag_type  # type: ignore[method-assign]
    panel_of = {name: panel for panel, names in TRAIN_PANELS.items() for name in names}
    callbacks = [c.callback for c in app.registered_commands]
    for group in app.registered_groups:  # a command group: its own options and commands
        sub = group.typer_instance
        if sub is not None:
            callbacks += [c.callback for c in sub.registered_commands]
            if sub.registered_callback is not None:
                callbacks.append(sub.registered_callback.callback)
    for callback in callbacks:
        if callback is None:
            continue
        hints = typing.get_type_hints(callback, include_extras=True)
        for name, hint in hints.items():
            if typing.get_origin(hint) is not Annotated:
                continue
            base, *extras = typing.get_args(hint)
            infos = [
                copy.copy(e) if isinstance(e, OptionInfo | ArgumentInfo) else e for e in extras
            ]
            for info in infos:
                if isinstance(info, OptionInfo | ArgumentInfo) and info.metavar is None:
                    info.metavar = _metavar(base, name, isinstance(info, ArgumentInfo))
                if isinstance(info, OptionInfo) and name.endswith("_opt") and not info.help:
                    owner = {"model": "model kind", "kl": "KL schedule"}.get(
                        name[:-4], name[:-4].replace("_", " ")
                    )
                    info.help = f"An option of the {owner} (repeatable; see docs/cli.md)."
                if isinstance(info, OptionInfo) and callback.__name__ == "train":
                    info.rich_help_panel = panel_of.get(name, info.rich_help_panel)
            callback.__annotations__[name] = Annotated[(base, *infos)]  # a copy per parameter
