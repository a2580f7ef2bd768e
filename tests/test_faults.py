"""Training through faults: non-finite steps skipped, roll-backs with a halved learning
rate, a bounded number of tries, nothing non-finite saved; early stopping."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import vaekit
from tests.helpers import registered, train_tiny
from vaekit.errors import VaekitError
from vaekit.model import VAE, Objective
from vaekit.runs import Run, open_run


class NaNAt:
    """A kind whose loss is NaN on the forward passes numbered ``first``..``last``."""

    @vaekit.hookimpl
    def register_models(self, register):
        class Faulty(VAE):
            def __init__(self, config, components, first: int = 0, last: int = -1):
                super().__init__(config, components)
                self.first, self.last, self.calls = first, last, 0

            def forward(self, x, y=None, beta=1.0, free_bits=0.0):
                objective = super().forward(x, y, beta, free_bits)
                self.calls += 1
                if self.training and self.first <= self.calls <= self.last:
                    return Objective(objective.loss * math.nan, *objective[1:])
                return objective

        register("faulty", Faulty)


def train_with_nan_passes(tmp_path, first: int, last: int, **settings):
    """``train_tiny`` of the ``faulty`` kind: the loss is NaN on training passes
    ``first``..``last`` (counted from 1 over the whole run, retries included)."""
    with registered(NaNAt(), "nan-at"):
        return train_tiny(
            tmp_path, kind="faulty", kind_options={"first": first, "last": last}, **settings
        )


def finite_weights(run) -> bool:
    from safetensors.torch import load_file

    return all(torch.isfinite(t).all() for t in load_file(run.weights_path).values())


def test_a_few_non_finite_steps_are_skipped_and_counted(tmp_path):
    result = train_with_nan_passes(tmp_path, 3, 5, epochs=2)
    first, second = result.history
    assert first["skipped_steps"] == 3 and second["skipped_steps"] == 0
    assert first["rollbacks"] == 0 and math.isfinite(first["loss"])
    assert finite_weights(result.run)


def test_too_many_skips_roll_back_with_a_halved_learning_rate_and_finish(tmp_path):
    # digits at batch 64: 26 steps an epoch; passes 5..30 are NaN, so epoch 1 skips more
    # than 10 steps, rolls back to the initial weights, and its retry skips 10 (passes 21..30)
    with pytest.warns(UserWarning, match="rolled back to epoch 0"):
        result = train_with_nan_passes(tmp_path, 5, 30, epochs=2, max_skipped_steps=10)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.history[0]["rollbacks"] == 1 and result.history[0]["skipped_steps"] == 10
    state = result.run.load_checkpoint()
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5e-3)
    assert state["rollbacks"] == 1
    assert finite_weights(result.run)


def test_past_the_roll_back_limit_training_stops_and_keeps_the_last_good_epoch(tmp_path):
    with pytest.raises(VaekitError, match="lower --lr") as caught:
        train_with_nan_passes(tmp_path, 30, 10_000, epochs=3, max_skipped_steps=5, max_rollbacks=2)
    assert "2 roll-backs" in str(caught.value) and "epoch 1" in str(caught.value)
    run = Run(tmp_path / "runs" / "tiny")  # epoch 1 was good and is what is saved
    assert finite_weights(run)
    assert len(run.read_metrics()) == 1
    lr = run.load_checkpoint()["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3)  # the checkpoint is epoch 1's, before any roll-back


def test_an_epoch_whose_every_step_is_skipped_fails_whatever_the_skip_limit(tmp_path):
    """A run that learns nothing does not "succeed" with loss 0.0 (issue 24): with a skip
    limit above the epoch's 26 steps it still rolls back, then stops, saving nothing."""
    with pytest.raises(VaekitError, match="lower --lr") as caught:
        train_with_nan_passes(
            tmp_path, 1, 10_000, epochs=2, max_skipped_steps=1000, max_rollbacks=1
        )
    assert "every step of epoch 1 was skipped" in str(caught.value)
    run = Run(tmp_path / "runs" / "tiny")
    assert not run.weights_path.exists() and not run.metrics_path.exists()
    assert not (tmp_path / "runs" / "latest").exists()


def test_patience_stops_early_and_keeps_the_best_weights(tmp_path):
    result = train_tiny(tmp_path, epochs=30, lr=3e-2, patience=2)
    history = result.history
    best = min(history, key=lambda row: row["val_loss"])
    assert len(history) < 30 and history[-1]["epoch"] - best["epoch"] == 2
    assert state_epoch_of_weights(result.run) == best["epoch"]


def state_epoch_of_weights(run) -> int:
    """Which epoch's weights model.safetensors holds (matched by validation -ELBO)."""
    from vaekit.data import load_training_data

    loaded = open_run(run.path)
    data = load_training_data(loaded.config.train).select_split("val")
    x = torch.from_numpy(data.images).float() / 255
    torch.manual_seed(0)
    with torch.no_grad():
        val = float(loaded.model.elbo(x, sample=False).neg_elbo.mean())
    rows = run.read_metrics()
    return min(rows, key=lambda row: abs(row["val_loss"] - val))["epoch"]


def test_bf16_autocast_on_cpu_stays_close_to_float32(tmp_path):
    fp32 = train_tiny(tmp_path / "a", epochs=1).history[0]
    bf16 = train_tiny(tmp_path / "b", epochs=1, accelerator_options={"bf16": True}).history[0]
    assert bf16["val_loss"] == pytest.approx(fp32["val_loss"], rel=0.02)


def test_compiled_model_trains_like_the_eager_one(tmp_path):
    eager = train_tiny(tmp_path / "a", epochs=1).history[0]
    compiled = train_tiny(tmp_path / "b", epochs=1, accelerator_options={"compile": True})
    assert compiled.history[0]["val_loss"] == pytest.approx(eager["val_loss"], rel=0.01)
    assert open_run(compiled.run.path).model is not None  # saved without the wrapper


@pytest.mark.parametrize("scale", [1e-3, 1e4])  # gradients under the clip, and far over it
def test_the_clip_fused_into_adam_steps_as_clip_grad_norm_does(scale):
    """vaekit clips by handing fused Adam grad_scale = max(1, norm / clip) (no rescaling
    pass over the gradients); the weights after a step equal clip_grad_norm_'s."""
    from vaekit.train import gradient_norm

    torch.manual_seed(0)
    clip = 1.0
    reference = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    fused = copy.deepcopy(reference)
    x = torch.randn(8, 6)
    steps = []
    for model in (reference, fused):
        (model(x).square().sum() * scale).backward()
        steps.append(torch.optim.Adam(model.parameters(), lr=0.1, fused=True))
    torch.nn.utils.clip_grad_norm_(list(reference.parameters()), clip)
    steps[0].step()
    params = list(fused.parameters())
    norm = gradient_norm(params)
    assert torch.isclose(norm, torch.nn.utils.get_total_norm([p.grad for p in params]))
    steps[1].grad_scale = (norm / clip).clamp(min=1.0)
    steps[1].found_inf = torch.zeros(())
    steps[1].step()
    for a, b in zip(reference.parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
