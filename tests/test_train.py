"""Training end to end through the API: falling loss, run files, load_model, resume, hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vaekit
import vaekit.runs
from tests.helpers import registered, tiny_config, train_tiny
from vaekit.data import load_dataset
from vaekit.errors import OutputExistsError, UsageError
from vaekit.train import train


def test_training_leaves_a_complete_loadable_run(tmp_path):
    result = train_tiny(tmp_path, epochs=3)
    run = result.run
    for name in (
        "config.json",
        "model.safetensors",
        "metrics.jsonl",
        "samples.png",
        "reconstructions.png",
        "checkpoint/state.pt",
    ):
        assert run.file(name).is_file(), name
    assert (tmp_path / "runs" / "latest").resolve() == run.path
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    config = json.loads(run.config_path.read_text())
    assert config["model"]["encoder"] == "mlp"
    assert config["data"]["class_names"] == [str(i) for i in range(10)]
    assert config["train"]["epochs"] == 3
    assert len(run.read_metrics()) == 3

    model = vaekit.load_model(tmp_path / "runs" / "latest")
    assert not model.training
    x = torch.from_numpy(load_dataset().images[:32]).float() / 255
    with torch.no_grad():
        first = model.elbo(x, sample=False).neg_elbo
        again = vaekit.load_model(run.path).elbo(x, sample=False).neg_elbo
    torch.testing.assert_close(first, again)


class Interrupt:
    """A plugin that kills training right after the first epoch's checkpoint."""

    @vaekit.hookimpl
    def vaekit_epoch_end(self, run, epoch, metrics):
        raise KeyboardInterrupt


def test_resume_after_an_interruption_continues_exactly(tmp_path):
    straight = train_tiny(tmp_path / "a", epochs=2)
    with registered(Interrupt(), "interrupt"):
        with pytest.raises(KeyboardInterrupt):
            train_tiny(tmp_path / "b", epochs=2)
    assert vaekit.load_model(tmp_path / "b" / "runs" / "latest") is not None  # loadable mid-run
    resumed = train(tiny_config(tmp_path / "b", epochs=2), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-6)
    a = vaekit.load_model(straight.run.path).state_dict()
    b = vaekit.load_model(resumed.run.path).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_existing_run_is_not_overwritten(tmp_path):
    train_tiny(tmp_path, epochs=1)
    before = (tmp_path / "runs" / "tiny" / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="already exists; pass --resume"):
        train_tiny(tmp_path, epochs=1)
    assert (tmp_path / "runs" / "tiny" / "model.safetensors").read_bytes() == before


def test_unknown_component_fails_before_anything_is_written(tmp_path):
    with pytest.raises(UsageError, match="did you mean 'resnet'"):
        train_tiny(tmp_path, encoder="resnt")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("likelihood", ["bernoulli", "laplace"])
@pytest.mark.parametrize("schedule", ["sigmoid", "cyclical", "constant"])
def test_other_likelihoods_and_schedules_train(tmp_path, likelihood, schedule):
    result = train_tiny(
        tmp_path, epochs=1, likelihood=likelihood, kl_schedule=schedule, free_bits=0.05
    )
    assert np.isfinite(result.final["loss"])


def test_lifecycle_hooks_are_called(tmp_path):
    calls: list[tuple] = []

    class Recorder:
        @vaekit.hookimpl
        def vaekit_train_start(self, run, config):
            calls.append(("start", config["model"]["encoder"]))

        @vaekit.hookimpl
        def vaekit_epoch_end(self, run, epoch, metrics):
            calls.append(("epoch", epoch, "val_loss" in metrics))

        @vaekit.hookimpl
        def vaekit_train_end(self, run, metrics):
            calls.append(("end", metrics["epoch"]))

    with registered(Recorder(), "recorder"):
        train_tiny(tmp_path, epochs=2)
    assert calls == [("start", "mlp"), ("epoch", 1, True), ("epoch", 2, True), ("end", 2)]


class StopAfterFirst:
    @vaekit.hookimpl
    def vaekit_epoch_end(self, run, epoch, metrics):
        from vaekit.train import StopTraining

        raise StopTraining


def test_a_plugin_can_stop_training_early(tmp_path):
    with registered(StopAfterFirst(), "stopper"):
        result = train_tiny(tmp_path, epochs=5)
    assert [r["epoch"] for r in result.history] == [1]
    assert result.run.file("samples.png").is_file()


def test_resume_keeps_the_saved_epochs_and_schedule(tmp_path):
    with registered(Interrupt(), "interrupt"):
        with pytest.raises(KeyboardInterrupt):
            train_tiny(tmp_path, epochs=3, kl_schedule="warmup")
    resumed = train(tiny_config(tmp_path, epochs=0), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    straight = train_tiny(tmp_path / "s", epochs=3, kl_schedule="warmup")
    assert [r["beta"] for r in resumed.history] == [r["beta"] for r in straight.history]


def test_latest_moves_only_once_a_model_is_saved(tmp_path):
    first = train_tiny(tmp_path, epochs=1, name="first")

    class Boom:
        @vaekit.hookimpl
        def vaekit_train_start(self, run, config):
            raise KeyboardInterrupt

    with registered(Boom(), "boom"):
        with pytest.raises(KeyboardInterrupt):
            train_tiny(tmp_path, epochs=1, name="second")
    assert (tmp_path / "runs" / "latest").resolve() == first.run.path


def test_latest_is_not_a_run_name(tmp_path):
    with pytest.raises(UsageError, match="'latest' is the link"):
        train_tiny(tmp_path, name="latest")


def test_class_conditional_model_trains_and_samples_a_class(tmp_path):
    from typer.testing import CliRunner

    from vaekit.cli import app

    result = train_tiny(tmp_path, kind="cvae", epochs=1)
    loaded = vaekit.open_run(result.run.path)
    assert loaded.num_classes == 10 and loaded.config.model.kind == "cvae"
    out = tmp_path / "sevens.png"
    done = CliRunner().invoke(
        app, ["sample", "--model", str(result.run.path), "--label", "7", "-n", "8", "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert out.is_file()


def test_checkpoint_without_schedule_steps_still_resumes(tmp_path):
    with registered(Interrupt(), "interrupt"):
        with pytest.raises(KeyboardInterrupt):
            train_tiny(tmp_path, epochs=2)
    run = vaekit.runs.resolve_run(tmp_path / "runs" / "tiny")
    state = run.load_checkpoint()
    del state["schedule_steps"]  # as written before the field existed
    run.save_checkpoint(state)
    resumed = train(tiny_config(tmp_path, epochs=0), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]


def test_step_terms_sum_the_good_steps_means_in_one_flush():
    from vaekit.model import Objective
    from vaekit.train import StepTerms

    extra = {"critic": torch.zeros(())}
    terms = StepTerms(extra, torch.device("cpu"))
    steps = [  # (loss, recon (B,), kl (B,), critic, good, overflow): the last batch is short
        (1.0, [2.0, 4.0], [1.0, 3.0], 0.5, True, False),
        (float("nan"), [float("nan"), 1.0], [1.0, 1.0], float("nan"), False, False),
        (3.0, [6.0], [5.0], 1.5, True, True),
    ]
    for loss, recon, kl, critic, good, overflow in steps:
        objective = Objective(
            torch.tensor(loss),
            torch.tensor(recon),
            torch.tensor(kl),
            {"critic": torch.tensor(critic)},
        )
        terms.add(objective, torch.tensor(good), torch.tensor(overflow))
    assert len(terms) == 3
    assert terms.flush().tolist() == [4.0, 3.0 + 6.0, 2.0 + 5.0, 2.0, 1.0, 1.0]
    assert extra["critic"].item() == 2.0 and len(terms) == 0
    assert terms.flush().tolist() == [0.0] * 6
