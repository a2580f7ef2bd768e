"""The plugin module named by this package's ``vaekit`` entry point.

It adds an encoder (``linear``) and a command (``vaekit runs``). Heavy imports
(torch) stay inside the hooks so ``vaekit --help`` stays fast.
"""

from __future__ import annotations

import vaekit


@vaekit.hookimpl
def register_encoders(register):
    """Register the ``linear`` encoder."""
    from vaekit_example.encoder import LinearEncoder

    register("linear", LinearEncoder)


@vaekit.hookimpl
def register_commands(cli):
    """Add ``vaekit runs``: list run directories with their last loss."""
    import typer

    @cli.command("runs", rich_help_panel="Plugins")
    def runs(runs_dir: str = typer.Option("runs", help="Folder of run directories.")) -> None:
        """List training runs and their last epoch's loss (from vaekit-example)."""
        import json
        from pathlib import Path

        for run in sorted(p for p in Path(runs_dir).glob("*") if (p / "config.json").is_file()):
            lines = (
                (run / "metrics.jsonl").read_text().splitlines()
                if (run / "metrics.jsonl").is_file()
                else []
            )
            last = json.loads(lines[-1]) if lines else {}
            typer.echo(f"{run.name}\tepochs={last.get('epoch', 0)}\tloss={last.get('loss', '-')}")
