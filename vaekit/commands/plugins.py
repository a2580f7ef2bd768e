"""`vaekit plugins`: list the installed plugins and their components."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import json

import typer

from vaekit.commands.common import JsonFlag, console, err_console, user_errors


def plugins_command(
    as_json: JsonFlag = False,
) -> None:
    """List installed plugins (with their package and status) and every component."""
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
