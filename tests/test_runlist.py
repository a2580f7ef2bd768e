"""``vaekit runs``: every run with its status (finished, stopped early, stopped, failed,
running, damaged), and two or more runs compared (issue 23)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.helpers import train_tiny
from vaekit.cli import app
from vaekit.runlist import compare_runs, list_runs
from vaekit.runs import RunLock

runner = CliRunner()


def _set_epochs(run_dir, epochs: int) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["epochs"] = epochs
    (run_dir / "config.json").write_text(json.dumps(config))


def test_runs_lists_every_status_and_compares(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_tiny(tmp_path, name="done", epochs=2)
    stopped = train_tiny(tmp_path, name="cut", epochs=1, lr=3e-3).run.path
    _set_epochs(stopped, 5)  # as if killed after epoch 1 of 5
    early = train_tiny(tmp_path, name="early", epochs=60, patience=1, lr=0.05).run.path
    runs = tmp_path / "runs"
    (runs / "failed").mkdir()
    (runs / "failed" / "config.json").write_text((stopped / "config.json").read_text())
    (runs / "broken").mkdir()
    (runs / "broken" / "config.json").write_text("{")
    busy = train_tiny(tmp_path, name="busy", epochs=1).run.path
    _set_epochs(busy, 3)
    with RunLock(busy):  # a live process owns it: running
        by_name = {r.name: r for r in list_runs(runs)}
        listed = runner.invoke(app, ["runs"])
    assert by_name["done"].status == "finished" and by_name["done"].epochs_done == 2
    assert by_name["cut"].status == "stopped"
    assert by_name["early"].status == "stopped early", by_name["early"]
    assert by_name["failed"].status == "failed"
    assert (
        by_name["broken"].status == "damaged" and "not readable JSON" in by_name["broken"].problem
    )
    assert by_name["busy"].status == "running"
    assert by_name["busy"].latest and not by_name["done"].latest
    assert by_name["done"].best_val is not None and by_name["done"].best_epoch in (1, 2)
    assert listed.exit_code == 0, listed.output
    for text in ("finished", "stopped early", "running", "failed", "damaged", "busy (latest)"):
        assert text in listed.output, text
    assert "latest" not in [r.name for r in by_name.values()]

    found = compare_runs([runs / "done", runs / "cut", early])
    assert found.differing["train.lr"] == [1e-3, 3e-3, 0.05]
    assert found.differing["train.patience"] == [None, None, 1]
    assert "model.encoder" not in found.differing  # the same in all three
    shown = runner.invoke(app, ["runs", "done", "cut", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["metrics"]["status"] == ["finished", "stopped"]
    one = runner.invoke(app, ["runs", "done"])
    assert one.exit_code == 1 and "two or more runs" in one.output
