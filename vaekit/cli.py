"""The ``vaekit`` command line, assembled: the app, its root options, one command per
module of :mod:`vaekit.commands`, plugins' commands, and the entry point.

Nothing heavy is imported here (``vaekit --help`` never loads torch).
"""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import sys
import warnings
from typing import Annotated, Any

import typer

from vaekit.commands import (
    cluster,
    encode,
    evaluate,
    generate,
    latents,
    plugins,
    report,
    runs,
    train,
)
from vaekit.commands.common import console, err_console, print_error, state
from vaekit.commands.help import import_help_formatter, readable_help
from vaekit.errors import VaekitError

app = typer.Typer(
    name="vaekit",
    help="Train VAEs on your images, encode them to HDF5 latents, fit and sample clusters.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

#: The built-in commands, in the order ``--help`` lists them.
COMMANDS = (
    ("train", train.train),
    ("encode", encode.encode),
    ("inspect", encode.inspect_command),
    ("export", latents.export_command),
    ("score", latents.score_command),
    ("fit-cluster", cluster.fit_cluster_command),
    ("sample", generate.sample_command),
    ("interpolate", generate.interpolate_command),
    ("reconstruct", generate.reconstruct_command),
    ("evaluate", evaluate.evaluate_command),
    ("report", report.report_command),
    ("runs", runs.runs_command),
)
for _name, _callback in COMMANDS:
    app.command(_name)(_callback)
app.add_typer(plugins.plugins_app, name="plugins")


def _version(value: bool) -> None:
    if value:
        from vaekit.version import __version__

        console.print(f"vaekit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="VAEKIT_DEBUG", help="Show full tracebacks.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """vaekit: variational-autoencoder data pipelines, one command per step."""
    state["debug"] = debug


def _add_plugin_commands() -> None:
    """Let plugins add commands (``register_commands``); a failure never breaks the CLI."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from vaekit.plugins import get_plugin_host

            get_plugin_host().hook.register_commands(cli=app)
        for warning in caught:
            err_console.print(
                f"[yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True
            )
    except VaekitError as exc:
        print_error(str(exc))
        raise SystemExit(exc.exit_code) from None


def _show_plugin_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Plugin and training warnings as one clean line (no source location); others as Python
    shows them."""
    from vaekit.plugins import VaekitPluginWarning

    if issubclass(category, VaekitPluginWarning) or category.__name__ == "TrainingWarning":
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning
readable_help(app)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    warnings.showwarning = _show_plugin_warning
    import_help_formatter()
    _add_plugin_commands()
    try:  # typer >= 0.24 vendors click; older ones use click itself
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException  # type: ignore[no-redef]

    try:
        result = app(
            args=argv if argv is not None else sys.argv[1:],
            prog_name="vaekit",
            standalone_mode=False,
        )
    except ClickException as exc:  # a parse error: one line, like the rest
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "vaekit"
        message = " ".join(exc.format_message().split())
        print_error(f"{message} (see `{command} --help`)")
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except VaekitError as exc:  # from a plugin's command: the same one line as vaekit's own
        if state["debug"]:
            raise
        print_error(str(exc))
        sys.exit(exc.exit_code)
    if isinstance(result, int):  # typer.Exit(code), returned outside standalone mode
        sys.exit(result)
    return result


if __name__ == "__main__":
    main()
