"""vaekit report and the run's pictures and logs: figures, HTML, Chromium, CSV, TensorBoard."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import tiny_config, train_tiny
from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.errors import UsageError
from vaekit.train import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def drawn_run(tmp_path_factory):
    """A tiny run trained with its figures drawn at the end, and its report."""
    from vaekit.plugins import reset_plugin_host

    reset_plugin_host()
    tmp = tmp_path_factory.mktemp("report")
    run = train_tiny(tmp, epochs=3, figures=True).run
    out = CliRunner().invoke(
        app, ["report", "--model", str(run.path), "-o", str(tmp / "report.html"), "--iwae-k", "10"]
    )
    assert out.exit_code == 0, out.output
    return run, tmp / "report.html"


def test_train_draws_its_figures_and_logs_csv_and_steps(drawn_run):
    run, _ = drawn_run
    for name in ("curves", "latent_scatter", "kl_per_dim", "traversals"):
        picture = run.path / "figures" / f"{name}.png"
        assert picture.read_bytes()[:8] == PNG_MAGIC, name
    rows = list(csv.DictReader((run.path / "metrics.csv").open()))
    jsonl = run.read_metrics()
    assert len(rows) == len(jsonl) == 3
    assert float(rows[-1]["val_loss"]) == pytest.approx(jsonl[-1]["val_loss"])
    steps = [json.loads(line) for line in (run.path / "steps.jsonl").read_text().splitlines()]
    assert steps[-1]["step"] == jsonl[-1]["step"]  # each epoch's last step is logged
    assert {"loss", "recon", "kl", "beta", "epoch"} <= set(steps[0])


def test_report_is_one_self_contained_page(drawn_run):
    _, report = drawn_run
    page = report.read_text()
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    titles = [alt for _, alt in images]
    for title in ("Training curves", "Latent scatter", "KL per dimension", "Latent traversals"):
        assert title in titles
    assert "Samples" in titles and "Reconstructions" in titles
    for data, title in images:
        assert base64.b64decode(data)[:8] == PNG_MAGIC, title
    assert "−log p(x) ≈ −IWAE, K = 10" in page and "active units" in page
    assert "Per class" in page and "<td>model.latent_dim</td><td>4</td>" in page


def find_browser() -> str | None:
    """A headless-capable Chromium on PATH, if any."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


PROBE = """<script>window.addEventListener('load', function () {
  var out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify(Array.from(document.images).map(function (i) {
    return {alt: i.alt, loaded: i.complete && i.naturalWidth > 0}; }));
  document.body.appendChild(out); });</script>"""


def test_report_renders_in_headless_chromium(drawn_run, tmp_path):
    """Every image of the report is decoded by a real browser (a copy of the page with a
    probe script appended reports each image's natural size after the load event)."""
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium); CI installs one")
    _, report = drawn_run
    probed = tmp_path / "probe.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probed.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the browser printed no probe result: {dom[:500]!r}"
    images = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(images) >= 6
    assert all(image["loaded"] for image in images), images


def test_unknown_logger_and_missing_tensorboard_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="unknown logger 'wandb'; available: tensorboard"):
        train(tiny_config(tmp_path, loggers=["wandb"]))
    import vaekit.builtin.loggers as loggers

    monkeypatch.setattr(loggers, "tensorboard_available", lambda: False)
    with pytest.raises(UsageError, match="pip install tensorboard"):
        train(tiny_config(tmp_path, loggers=["tensorboard"]))
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is optional and not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train_tiny(tmp_path, epochs=2, loggers=["tensorboard"]).run
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/kl", "step/beta", "epoch/loss", "epoch/val_loss"} <= tags
    steps = [e.step for e in events.Scalars("epoch/val_loss")]
    assert steps == [row["step"] for row in run.read_metrics()]
    logged = [json.loads(line)["step"] for line in run.file("steps.jsonl").read_text().splitlines()]
    assert [e.step for e in events.Scalars("step/loss")] == logged
    # a resumed run continues the same event stream
    train(tiny_config(tmp_path, epochs=3), resume=True)
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("epoch/val_loss")) == 3


def test_resume_keeps_the_steps_of_the_checkpoint(tmp_path):
    first = train_tiny(tmp_path, epochs=2).run
    before = (first.path / "steps.jsonl").read_text().splitlines()
    train(tiny_config(tmp_path, epochs=3), resume=True)
    after = (first.path / "steps.jsonl").read_text().splitlines()
    assert after[: len(before)] == before and len(after) > len(before)
    assert len(list(csv.DictReader((first.path / "metrics.csv").open()))) == 3


def test_report_on_a_run_without_figures(tmp_path):
    run = train_tiny(tmp_path, epochs=1, kind="cvae").run
    assert not (run.path / "figures").exists()
    out = CliRunner().invoke(
        app, ["report", "-m", str(run.path), "-o", str(tmp_path / "r.html"), "--iwae-k", "2"]
    )
    assert out.exit_code == 0, out.output
    assert (run.path / "figures" / "traversals.png").is_file()
    page = Path(tmp_path / "r.html").read_text()
    # 6 pictures + the judged grids: fitted class priors, p(z|y), reconstructions
    assert page.count("<img ") == 9
    assert "cvae with mlp encoder" in page  # the run's own kind
    # a conditional model's draws are judged per class
    assert "class 7" in page and "on-label" in page
    assert "−log p(x|y) ≈ −IWAE, K = 2" in page  # a conditional model's bound
