"""vaekit evaluate: the IWAE ladder, KL per dimension, active units, per-label figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import train_tiny
from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.data import ImageDataset
from vaekit.errors import DataError, UsageError
from vaekit.evaluate import evaluate, evaluate_model, iwae_ladder
from vaekit.model import iwae_bound
from vaekit.runs import load_model, open_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from vaekit.plugins import reset_plugin_host

    reset_plugin_host()
    result = train_tiny(tmp_path_factory.mktemp("eval"), epochs=4, latent_dim=6)
    return result.run.path


def test_iwae_ladder():
    assert iwae_ladder(0) == []
    assert iwae_ladder(1) == [1]
    assert iwae_ladder(64) == [1, 10, 64]
    assert iwae_ladder(1000) == [1, 10, 100, 1000]


def test_iwae_is_finite_below_the_elbo_and_falls_with_k(tiny_run):
    result = evaluate(tiny_run, split="val", iwae_k=1000)
    values = [result.iwae[k] for k in (1, 10, 100, 1000)]
    assert all(math.isfinite(v) for v in values)
    # K = 1 is an unbiased estimate of the −ELBO: equal up to Monte Carlo noise
    assert values[0] <= result.neg_elbo + 3 * result.neg_elbo_se / math.sqrt(10)
    assert abs(values[0] - result.neg_elbo) < 0.05 * result.neg_elbo
    for smaller, larger in zip(values, values[1:], strict=False):
        assert larger <= smaller  # nested draws: the bound tightens with K
    assert values[-1] < result.neg_elbo
    assert result.neg_elbo == pytest.approx(result.recon_nll + result.kl)
    assert result.kl == pytest.approx(sum(result.kl_per_dim))


def test_iwae_agrees_with_the_core_s_own_bound(tiny_run):
    loaded = open_run(tiny_run)
    data = loaded.load_data().select_split("val")
    ours = evaluate_model(loaded.model, data, iwae_k=100, seed=1)
    x = torch.from_numpy(data.images).float() / 255
    torch.manual_seed(0)
    theirs = -iwae_bound(loaded.model, x, k=100).double().mean().item()
    assert ours.iwae[100] == pytest.approx(theirs, abs=0.5)


def test_the_same_seed_gives_the_same_numbers(tiny_run):
    a = evaluate(tiny_run, split="val", iwae_k=10, seed=3)
    b = evaluate(tiny_run, split="val", iwae_k=10, seed=3, batch_size=37)
    c = evaluate(tiny_run, split="val", iwae_k=10, seed=4)
    assert a.kl_per_dim == pytest.approx(b.kl_per_dim)  # closed form: no draws
    assert a.neg_elbo == evaluate(tiny_run, split="val", iwae_k=10, seed=3).neg_elbo
    assert a.iwae[10] != c.iwae[10]


def test_collapsed_dimensions_are_inactive_with_zero_kl(tiny_run):
    """Dimensions whose posterior is the prior whatever x is: KL 0 and inactive; the
    others carry KL and are active -- the two measures agree."""
    loaded = open_run(tiny_run)
    model = loaded.model
    d = model.latent_dim
    with torch.no_grad():  # rows of the head: mu (0..D-1) then logvar (D..2D-1)
        for dim in (1, 4):
            model.head.weight[dim].zero_()
            model.head.bias[dim].zero_()
            model.head.weight[d + dim].zero_()
            model.head.bias[d + dim].zero_()
    result = evaluate_model(model, loaded.load_data().select_split("val"), iwae_k=0)
    assert result.kl_per_dim[1] == pytest.approx(0, abs=1e-6)
    assert result.kl_per_dim[4] == pytest.approx(0, abs=1e-6)
    assert 1 not in result.active and 4 not in result.active
    for dim in result.active:
        assert result.kl_per_dim[dim] > 0.01
    assert result.active_units == len(result.active) <= d - 2
    assert result.iwae == {}


def test_by_label_groups_add_up(tiny_run):
    result = evaluate(tiny_run, split="val", iwae_k=10, by_label=True)
    assert result.group_kind == "class"
    assert [g.name for g in result.groups] == [str(i) for i in range(10)]
    assert sum(g.n for g in result.groups) == result.n
    weighted = sum(g.n * g.neg_elbo for g in result.groups) / result.n
    assert weighted == pytest.approx(result.neg_elbo)
    weighted_iwae = sum(g.n * g.iwae[10] for g in result.groups) / result.n
    assert weighted_iwae == pytest.approx(result.iwae[10])


def test_bits_per_dim_only_for_a_discrete_likelihood(tmp_path):
    gaussian = evaluate(train_tiny(tmp_path / "g", epochs=1).run.path, split="val", iwae_k=0)
    assert gaussian.bits_per_dim is None and "density" in gaussian.bits_note
    run = train_tiny(tmp_path / "b", epochs=1, likelihood="bernoulli").run.path
    model = load_model(run)
    grey = np.full((20, 1, 8, 8), 128, dtype=np.uint8)
    binary = np.where(np.arange(64).reshape(1, 1, 8, 8) % 3 == 0, 255, 0).astype(np.uint8)
    binary = np.repeat(binary, 20, axis=0)
    on_grey = evaluate_model(model, ImageDataset(grey, np.arange(20), "t", "t"), iwae_k=0)
    assert on_grey.bits_per_dim is None and "grey levels" in on_grey.bits_note
    on_binary = evaluate_model(model, ImageDataset(binary, np.arange(20), "t", "t"), iwae_k=10)
    assert on_binary.bits_per_dim == pytest.approx(on_binary.iwae[10] / (64 * math.log(2)))


def test_by_label_needs_labels(tiny_run):
    model = load_model(tiny_run)
    data = ImageDataset(np.zeros((4, 1, 8, 8), np.uint8), np.arange(4), "t", "t")
    with pytest.raises(UsageError, match="needs class labels or attributes"):
        evaluate_model(model, data, by_label=True)


def test_cli_json_and_table(tiny_run):
    runner = CliRunner()
    out = runner.invoke(
        app, ["evaluate", "--model", str(tiny_run), "--split", "val", "--iwae-k", "10", "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data["iwae"]) == {"1", "10"} and data["n"] == 180
    assert data["active_units"] == sum(v > 0.01 for v in data["mean_variance"])
    out = runner.invoke(app, ["evaluate", "--model", str(tiny_run), "--split", "val", "--by-label"])
    assert out.exit_code == 0, out.output
    assert "active units" in out.stdout and "per class" in out.stdout
    # the embedded digits have no test split: by default the val images are evaluated
    # (as the title says); a test split asked for by name is still an error
    out = runner.invoke(app, ["evaluate", "--model", str(tiny_run), "--iwae-k", "2", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["split"] == "val" and json.loads(out.stdout)["n"] == 180
    assert evaluate(tiny_run, iwae_k=0).split == "val"
    out = runner.invoke(app, ["evaluate", "--model", str(tiny_run), "--split", "test"])
    assert out.exit_code == 2 and "no 'test' images" in out.output


def test_cvae_is_evaluated_with_its_classes(tmp_path):
    run = train_tiny(tmp_path, epochs=1, kind="cvae").run.path
    result = evaluate(run, split="val", iwae_k=10, by_label=True)
    assert math.isfinite(result.iwae[10]) and result.iwae[10] <= result.iwae[1]


def test_a_prior_without_closed_form_kl(tmp_path):
    """The example plugin's mixture prior: the KL is one Monte Carlo column, so there is
    no KL per dimension, but active units and the IWAE bound are still measured."""
    run = train_tiny(tmp_path, epochs=2, prior="mixture").run.path
    result = evaluate(run, split="val", iwae_k=10)
    assert result.kl_per_dim is None
    assert len(result.mean_variance) == 4 and math.isfinite(result.kl)
    assert result.iwae[10] <= result.iwae[1]
    assert math.isfinite(result.neg_elbo)
    out = CliRunner().invoke(app, ["evaluate", "-m", str(run), "--split", "val", "--iwae-k", "2"])
    assert out.exit_code == 0, out.output


def test_max_images_is_a_seeded_subset(tiny_run):
    a = evaluate(tiny_run, split="val", iwae_k=2, max_images=50, seed=1)
    b = evaluate(tiny_run, split="val", iwae_k=2, max_images=50, seed=1)
    assert a.n == 50 and a.neg_elbo == b.neg_elbo
    assert evaluate(tiny_run, split="val", iwae_k=0, max_images=10_000).n == 180
    with pytest.raises(UsageError, match="max-images must be >= 1"):
        evaluate(tiny_run, split="val", max_images=0)


def test_progress_moves_within_a_batch_of_many_importance_samples(tiny_run):
    """At K = 1000 one batch takes minutes on a real model: the bar moves per chunk of
    draws, not per batch (issue 23)."""
    calls: list[int] = []
    evaluate(tiny_run, iwae_k=1000, max_images=64, progress=lambda done, total: calls.append(done))
    assert len(calls) > 4 and calls == sorted(calls)  # one batch of 64, yet many steps
    assert calls[0] == 0 and calls[-1] == 64 and len(set(calls)) > 3


def test_without_generation_only_the_split_is_read_with_the_same_figures(tmp_path):
    from tests.dataset_fixtures import idx_folder

    data = idx_folder(tmp_path / "idx", n_train=60, n_test=10)
    run = train_tiny(tmp_path, data=str(data), epochs=1).run.path
    whole = evaluate(run, data, split="test", iwae_k=10)  # before: both files readable
    held_out = evaluate(run, data, iwae_k=10)  # test, else val: the IDX files have a test split
    assert held_out.split == "test"
    val = evaluate(run, data, split="val", iwae_k=10)
    (data / "train-images-idx3-ubyte.gz").write_bytes(b"not an IDX file")  # test never reads it
    for result in (evaluate(run, data, split="test", iwae_k=10), evaluate(run, data, iwae_k=10)):
        assert result.split == "test" and result.n == whole.n == 10
        assert result.iwae == whole.iwae and result.neg_elbo == whole.neg_elbo
    with pytest.raises(DataError, match="train-images"):  # val is carved from train
        evaluate(run, data, split="val", iwae_k=10)
    assert val.split == "val"


def test_a_held_out_split_falls_back_to_val_when_the_data_has_no_test(tiny_run, monkeypatch):
    from vaekit.runs import LoadedRun

    reads = []
    real = LoadedRun.load_data
    monkeypatch.setattr(
        LoadedRun, "load_data", lambda self, *args: reads.append(args) or real(self, *args)
    )
    result = evaluate(tiny_run, iwae_k=1)  # the embedded digits: train and val only
    assert result.split == "val"
    assert len(reads) == 1  # a source that cannot read a split alone is read once
    assert result.n == evaluate(tiny_run, split="val", iwae_k=1).n
