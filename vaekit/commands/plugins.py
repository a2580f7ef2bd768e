"""`vaekit plugins`: list the installed plugins and their components; `vaekit plugins
show NAME`: a component's options."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import json
from typing import Annotated

import typer

from vaekit.commands.common import JsonFlag, console, err_console, user_errors

plugins_app = typer.Typer(
    help="List installed plugins (with their package and status) and every component; "
    "`vaekit plugins show NAME` lists a component's options.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@plugins_app.callback(invoke_without_command=True)
def plugins_command(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """List installed plugins (with their package and status) and every component."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        from vaekit.plugins import FAMILIES, get_plugin_host

        host = get_plugin_host()
        components = {
            family: {name: c.plugin for name, c in sorted(host.registry(family).items())}
            for family in FAMILIES
        }
        plugins = [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "status": p.status,
                "builtin": p.builtin,
                "hooks": p.hooks,
                "error": p.error,
            }
            for p in host.plugins.values()
        ]
        conflicts = [
            {"family": family, "name": name, "error": message}
            for family, names in host.conflicts.items()
            for name, message in sorted(names.items())
        ]
        if as_json:
            payload = {"plugins": plugins, "components": components, "conflicts": conflicts}
            typer.echo(json.dumps(payload, indent=2))
            return
        from rich.table import Table

        table = Table(title="plugins")
        for column in ("plugin", "distribution", "version", "status"):
            table.add_column(column)
        for p in plugins:
            status = "[green]ok[/]" if p["status"] == "ok" else f"[red]broken[/]: {p['error']}"
            table.add_row(p["name"], p["distribution"], p["version"], status)
        console.print(table)
        table = Table(title="components")
        table.add_column("family")
        table.add_column("names (plugin)")
        for family, names in components.items():
            listed = ", ".join(
                name if plugin.startswith("vaekit.builtin") else f"{name} ({plugin})"
                for name, plugin in names.items()
            )
            table.add_row(family, listed)
        console.print(table)
        for conflict in conflicts:
            err_console.print(f"[bold red]conflict:[/] {conflict['error']}", highlight=False)


@plugins_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="A component's name: resnet, warmup, mog…")],
    family: Annotated[
        str | None,
        typer.Option(help="Only this family: encoder, decoder, prior, kl_schedule…"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A component's options, as its factory declares them: type, default, range, help
    (what --encoder-opt and the like, and a config file's tables, accept)."""
    with user_errors():
        from rich.markup import escape
        from rich.table import Table

        from vaekit.plugins import describe_component

        found = describe_component(name, family)
        if as_json:
            typer.echo(json.dumps([c.to_dict() for c in found], indent=2))
            return
        for component in found:
            where = (
                "" if component.plugin.startswith("vaekit.builtin") else f" ({component.plugin})"
            )
            console.print(f"[bold]{component.family} {escape(component.name)}[/]{escape(where)}")
            if component.summary:
                console.print(escape(component.summary), highlight=False)
            if component.options is None:
                console.print("options: any (its factory takes **options)")
                continue
            if not component.options:
                console.print("options: none")
                continue
            table = Table()
            for column in ("option", "type", "default", "range", "help"):
                table.add_column(column, overflow="fold")
            for option in component.options:
                bounds = "" if option.range is None else _bounds(option.range)
                default = "(required)" if option.required else _shown(option.default)
                table.add_row(
                    option.name, escape(option.type), escape(default), bounds, escape(option.help)
                )
            console.print(table)


def _bounds(bounds: tuple) -> str:
    low, high = bounds
    if low is None:
        return f"<= {high:g}"
    return f">= {low:g}" if high is None else f"{low:g} to {high:g}"


def _shown(value: object) -> str:
    """A default as a config file or ``--X-opt`` would write it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
