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
from vaekit.model import MAIN_GROUP, VAE, Objective
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


def one_step(tmp_path, on_host: bool, monkeypatch, scale: float = 1.0, nan_grad: bool = False):
    """A set-up session's first batch through :func:`vaekit.train.optimise`, decided on the
    host or (as on an accelerator) on the device; the loss times ``scale``, and with
    ``nan_grad`` a NaN in one gradient while the loss stays finite. Returns the session,
    the model, the step's flags, and what the step should leave: a model after
    ``clip_grad_norm_`` and a plain fused-Adam step, or (``nan_grad``) the weights before."""
    from tests.helpers import tiny_config
    from vaekit import train as T

    monkeypatch.setattr(T, "steps_on_host", lambda session: on_host)
    session = T.set_up(tiny_config(tmp_path, grad_clip=1.0, name=f"s{on_host}"), resume=False)
    model = session.raw_model
    reference = copy.deepcopy(model)
    x, _ = next(iter(session.batches.epoch(64, shuffle=False)))

    def loss_of(m):
        torch.manual_seed(0)  # the same reparametrisation draw for both
        objective = m(x)
        loss = objective.loss * scale
        if nan_grad:  # adds 0 to the loss, and d/dw sqrt(|w - w|) = inf * 0 = NaN to a gradient
            w = next(m.parameters()).flatten()[0]
            loss = loss + (w - w.detach()).abs().sqrt()
        return objective._replace(loss=loss)

    before = copy.deepcopy(model.state_dict())
    good, overflow = T.optimise(session, loss_of(model))
    session.run.unlock()
    expected = None
    if not nan_grad:
        optimizer = torch.optim.Adam(reference.parameters(), lr=session.config.lr, fused=True)
        loss_of(reference).loss.backward()
        torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 1.0)
        optimizer.step()
        expected = reference
    return session, model, good, overflow, expected if expected is not None else before


@pytest.mark.parametrize("on_host", [True, False], ids=["host", "device"])
@pytest.mark.parametrize("scale", [1e-3, 1e4])  # gradients under the clip, and far over it
def test_a_step_clips_as_clip_grad_norm_does_on_either_path(tmp_path, monkeypatch, on_host, scale):
    """vaekit clips inside fused Adam (grad_scale = max(1, norm / clip), no rescaling pass;
    on the host only when the norm is over the clip): the weights after ``optimise`` equal
    those after clip_grad_norm_ and a plain fused-Adam step."""
    _, model, good, overflow, expected = one_step(tmp_path, on_host, monkeypatch, scale)
    assert bool(good) and not bool(overflow)
    for a, b in zip(expected.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("on_host", [True, False], ids=["host", "device"])
def test_a_step_with_a_nan_gradient_and_a_finite_loss_is_skipped(tmp_path, monkeypatch, on_host):
    session, model, good, _, before = one_step(tmp_path, on_host, monkeypatch, nan_grad=True)
    assert not bool(good)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    for state in session.optimizers[MAIN_GROUP].state.values():  # no moments, no step counted
        assert not state or (float(state["step"]) == 0 and not state["exp_avg"].any())
