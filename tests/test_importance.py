"""Importance sampling in chunks: rows from a memory budget, the same bounds whatever the
chunk, running log-mean-exps, and the malloc arena kept between chunks (issue 22)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import train_tiny
from torch import nn

from vaekit.evaluate import evaluate_model
from vaekit.importance import (
    CHUNK_BYTES,
    DEVICE_CHUNK_BYTES,
    LadderLogMeanExp,
    batch_terms,
    chunk_rows,
    decoded_row_bytes,
    default_chunk_bytes,
)
from vaekit.runs import open_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from vaekit.plugins import reset_plugin_host

    reset_plugin_host()
    return train_tiny(tmp_path_factory.mktemp("importance"), epochs=2, latent_dim=6).run.path


def test_chunk_rows_fill_the_budget_and_never_reach_zero():
    assert chunk_rows(1000, 10_000) == 10
    assert chunk_rows(1000, 10_999) == 10  # whole rows within the budget
    assert chunk_rows(10**9, 1) == 1  # a row larger than the budget: still one
    assert chunk_rows(0, 5) == 5
    assert default_chunk_bytes(torch.device("cpu")) == CHUNK_BYTES
    assert default_chunk_bytes(torch.device("meta")) == DEVICE_CHUNK_BYTES > CHUNK_BYTES
    for row_bytes in (1, 7, 3136, 62_720, 10**6):
        rows = chunk_rows(row_bytes, CHUNK_BYTES)
        assert rows >= 1 and (rows == 1 or rows * row_bytes <= CHUNK_BYTES)
        assert (rows + 1) * row_bytes > CHUNK_BYTES


class _Decoder(nn.Module):
    """A model whose decoder widens to 100 features, then gives 64 outputs."""

    def __init__(self, classes: int = 0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4 + classes, 100), nn.SiLU(), nn.Linear(100, 64))
        self.seen: list[int] = []

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(len(z))
        return self.net(z if y is None else torch.cat([z, y], 1)).view(-1, 1, 8, 8)


def test_a_decoded_row_costs_twice_its_largest_activation_and_copies_of_its_output():
    cpu = torch.device("cpu")
    # largest activation: 100 float32 (the Linear and the SiLU); output: 64 float32
    assert decoded_row_bytes(_Decoder(), 4, 0, cpu) == 2 * 400 + 4 * 256
    assert decoded_row_bytes(_Decoder(classes=3), 4, 3, cpu) == 2 * 400 + 4 * 256
    model = _Decoder()
    decoded_row_bytes(model, 4, 0, cpu)
    assert not model.net[0]._forward_hooks  # the probe's hooks are gone


def test_ladder_log_mean_exp_equals_one_logsumexp_whatever_the_chunks():
    log_w = torch.randn(100, 7, dtype=torch.float64) * 30
    ladder = [1, 10, 64, 100]
    expected = torch.stack([torch.logsumexp(log_w[:k], 0) - math.log(k) for k in ladder], 1)
    for sizes in ([100], [1] * 100, [3, 7, 54, 36], [10, 54, 36]):
        running = LadderLogMeanExp(ladder, 7, torch.device("cpu"))
        for chunk in log_w.split(sizes):
            running.add(chunk)
        torch.testing.assert_close(running.result(), expected, rtol=1e-12, atol=1e-9)


def test_the_decoder_never_gets_more_rows_than_the_chunk(tiny_run):
    model = open_run(tiny_run).model
    x = torch.rand(37, *model.config.input_shape)
    seen: list[int] = []
    decode = model.decode
    model.decode = lambda z, y=None: (seen.append(len(z)), decode(z, y))[1]
    for rows, expected in ((10_000, 37 * 20), (100, 74), (37, 37), (10, 10), (1, 1)):
        seen.clear()
        generator = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            batch_terms(model, x, None, [1, 10, 20], generator, rows)
        assert max(seen) == expected <= rows
        assert sum(seen) == 37 * 20  # every draw of every image, once


def test_the_chunk_budget_changes_the_speed_not_the_figures(tiny_run):
    """180 images of 6 latents: B x D is no multiple of 16, where one normal draw of
    (c, B, D) differs from c draws of (B, D); each draw is its own, so budgets of one
    row, a part of a batch, a few draws and everything give the same bounds."""
    loaded = open_run(tiny_run)
    data = loaded.load_data().select_split("val")
    results = [
        evaluate_model(loaded.model, data, iwae_k=20, batch_size=50, seed=2, chunk_bytes=budget)
        for budget in (1, 20_000, 200_000, 10**9)
    ]
    first = results[0]
    for other in results[1:]:
        for k in (1, 10, 20):
            assert other.iwae[k] == pytest.approx(first.iwae[k], rel=1e-5)
            assert other.iwae_se[k] == pytest.approx(first.iwae_se[k], rel=1e-4)
        assert other.neg_elbo == pytest.approx(first.neg_elbo, rel=1e-5)
        assert other.kl == pytest.approx(first.kl, rel=1e-6)
        assert other.mean_variance == pytest.approx(first.mean_variance, rel=1e-6)
    with pytest.raises(Exception, match="chunk budget must be >= 1"):
        evaluate_model(loaded.model, data, iwae_k=2, chunk_bytes=0)


FAULTS = textwrap.dedent(
    """
    import resource, sys, numpy as np, torch
    import vaekit.importance
    from vaekit.config import ModelConfig
    from vaekit.data import ImageDataset
    from vaekit.evaluate import evaluate_model
    from vaekit.model import build_model

    if sys.argv[1] == "unprimed":
        vaekit.importance.keep_in_arena = lambda size: None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig(input_shape=(1, 28, 28), latent_dim=4, encoder="conv")
    model = build_model(config).eval()
    images = np.random.default_rng(0).integers(0, 256, (256, 1, 28, 28), dtype=np.uint8)
    data = ImageDataset(images, np.arange(256), "t", "t")
    evaluate_model(model, data, iwae_k=2)  # warm-up
    for k in sys.argv[2:]:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        evaluate_model(model, data, iwae_k=int(k))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def test_evaluation_does_not_fault_its_chunks_in_again():
    """A conv decoder at 28x28 (25 KB of activations a row): without the primed arena,
    glibc maps and unmaps each chunk's activations and the page faults grow with K;
    with it, the faults of an evaluation are the same at K = 10 and K = 30 (issue 22)."""

    def faults(*args: str) -> list[int]:
        run = subprocess.run(
            [sys.executable, "-c", FAULTS, *args], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        return [int(line) for line in run.stdout.split()]

    (unprimed,) = faults("unprimed", "30")
    if unprimed < 50_000:
        pytest.skip(f"this malloc keeps freed blocks by itself ({unprimed} faults at K = 30)")
    few, many = faults("primed", "10", "30")
    assert many < unprimed / 5
    assert many < 1.5 * few + 1000  # flat in K: no chunk is faulted in again
