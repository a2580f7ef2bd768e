"""Docs that cannot drift: every hook documented, every command in the CLI reference."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from vaekit import contract, errors, hookspecs
from vaekit.cli import app

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS = [
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "vaekit_spec")
]


def test_there_are_hooks():
    assert "register_encoders" in HOOKS and "vaekit_epoch_end" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_and_a_place_in_the_plugin_guide(hook):
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring"
    assert f"`{hook}`" in (DOCS / "plugins.md").read_text(), f"{hook} missing from plugins.md"


def test_every_command_is_in_the_cli_reference():
    reference = (DOCS / "cli.md").read_text()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        assert f"## `vaekit {name}" in reference, f"`vaekit {name}` missing from docs/cli.md"


@pytest.mark.parametrize("family", sorted(contract.PROTOCOLS))
def test_every_protocol_and_member_is_in_the_plugin_guide(family):
    guide = (DOCS / "plugins.md").read_text()
    protocol = contract.PROTOCOLS[family]
    assert f"`{protocol.__name__}`" in guide, f"{protocol.__name__} missing from plugins.md"
    hook = getattr(hookspecs, f"register_{family}")
    assert f"vaekit.contract.{protocol.__name__}" in inspect.getdoc(hook), (
        f"register_{family}'s docstring does not name its protocol"
    )
    for member in contract.members(protocol):
        if member != "__call__":
            assert member in guide, f"{protocol.__name__}.{member} missing from plugins.md"


def test_every_error_class_is_in_the_plugin_guide():
    guide = (DOCS / "plugins.md").read_text()
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.VaekitError) and cls.__module__ == errors.__name__:
            if name not in ("PluginConflictError", "UnknownComponentError"):
                assert f"`{name}`" in guide, f"{name} missing from plugins.md"
