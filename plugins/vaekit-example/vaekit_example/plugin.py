"""The plugin module named by this package's ``vaekit`` entry point.

It adds one component of every kind a third party most often writes: an
encoder (``linear``), a prior with no closed-form KL (``mixture``), a
non-Gaussian likelihood (``logistic``), a KL schedule (``step``), a dataset
source (``csv``), a model kind with its own objective (``iwae``), a command
(``vaekit runs``) and a lifecycle logger (``example-log.csv`` in each run).
Each component is registered by its import path (``"module:attribute"``): vaekit
imports it when it is first used, so ``vaekit --help`` and ``vaekit plugins`` never
load torch.
"""

from __future__ import annotations

import vaekit


@vaekit.hookimpl
def register_encoders(register):
    """Register the ``linear`` encoder."""
    register("linear", "vaekit_example.encoder:LinearEncoder")


@vaekit.hookimpl
def register_priors(register):
    """Register the learned ``mixture`` prior (Monte Carlo KL)."""
    register("mixture", "vaekit_example.prior:MixturePrior")


@vaekit.hookimpl
def register_likelihoods(register):
    """Register the ``logistic`` likelihood."""
    register("logistic", "vaekit_example.likelihood:LogisticLikelihood")


@vaekit.hookimpl
def register_kl_schedules(register):
    """Register the ``step`` KL schedule."""
    register("step", "vaekit_example.schedule:StepSchedule")


@vaekit.hookimpl
def register_datasets(register):
    """Register the ``csv`` dataset source."""
    register("csv", "vaekit_example.csvdata:CSVImages")


@vaekit.hookimpl
def register_models(register):
    """Register the ``iwae`` model kind."""
    register("iwae", "vaekit_example.kinds:IWAE")


@vaekit.hookimpl
def vaekit_epoch_end(run, epoch, metrics):
    """Append the epoch's loss to ``example-log.csv`` in the run directory."""
    path = run.file("example-log.csv")
    new = not path.exists()
    with open(path, "a") as fh:
        if new:
            fh.write("epoch,loss\n")
        fh.write(f"{epoch},{metrics['loss']:.6f}\n")


@vaekit.hookimpl
def register_commands(cli):
    """Add ``vaekit example-runs``: list run directories with their last loss (vaekit's own
    ``vaekit runs`` does more; this shows how a plugin adds a command)."""
    import typer

    @cli.command("example-runs", rich_help_panel="Plugins")
    def example_runs(
        runs_dir: str = typer.Option("runs", help="Folder of run directories."),
    ) -> None:
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
