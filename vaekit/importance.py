"""The per-image terms of one batch for ``vaekit evaluate``: −ELBO, KL and the
importance-weighted bounds, with the decoder fed in chunks sized from a memory budget.

The K importance samples of a batch are decoded a chunk of rows (images × draws) at a
time. A chunk's rows come from a budget in bytes, not a fixed count: what one decoded
row costs is measured once per model (:func:`decoded_row_bytes`), and a chunk holds as
many rows as :data:`CHUNK_BYTES` pays for (:func:`chunk_rows`). Memory of that size
stays in the allocator's heap from chunk to chunk (:func:`keep_in_arena`). The fixed
4,096-row chunks before (about 100 MB of activations for a conv decoder at 28x28) were
mapped, handed back to the system and faulted in again at every chunk, which made
evaluation slower than a plain loop (issue 22).

The bounds are accumulated as running log-sum-exps, so what a batch holds does not grow
with K. The draws do not depend on the chunk: draw k of a batch is one ``(B, D)`` normal
draw from the seeded generator, taken in order, whatever the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

#: Bytes a chunk of decoded importance samples may use on the CPU: the decoder's
#: activations, its output, the likelihood's temporaries (see :func:`decoded_row_bytes`).
#: 16 MiB: a conv decoder at 28x28 gets one draw of a 256-image batch (267 rows) per
#: call, as fast as a plain loop at the same peak memory; at 8 MiB a working set of
#: that size was trimmed from the primed heap and faulted in again (docs/benchmarks.md).
CHUNK_BYTES = 16 * 2**20

#: The same on an accelerator, whose caching allocator keeps freed memory anyway and whose
#: kernels want many rows: about the 4,096 rows a conv decoder at 28x28 got before 0.6.
#: Not measured on a GPU yet.
DEVICE_CHUNK_BYTES = 256 * 2**20


def default_chunk_bytes(device: torch.device) -> int:
    """:data:`CHUNK_BYTES` on the CPU, :data:`DEVICE_CHUNK_BYTES` on an accelerator."""
    return CHUNK_BYTES if device.type == "cpu" else DEVICE_CHUNK_BYTES


#: Output-sized tensors alive while a chunk is scored, besides the decoder's own
#: activations: its output, the image repeated per draw, and the likelihood's temporaries.
SCORING_COPIES = 4


def decoded_row_bytes(model: Any, latent_dim: int, num_classes: int, device: torch.device) -> int:
    """Bytes one decoded row costs while it is scored: twice the decoder's largest
    activation (a layer's input and output are alive together) plus
    :data:`SCORING_COPIES` times its output. Measured by decoding one latent of zeros
    with a hook on every module of ``model``."""
    largest = 0

    def record(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    z = torch.zeros(1, latent_dim, device=device)
    y = torch.zeros(1, num_classes, device=device) if num_classes else None
    handles = [m.register_forward_hook(record) for m in model.modules()]
    try:
        out = model.decode(z, y)
    finally:
        for handle in handles:
            handle.remove()
    largest = max(largest, out.numel() * out.element_size())
    return 2 * largest + SCORING_COPIES * out.numel() * out.element_size()


#: glibc's ceiling on its dynamic mmap threshold (``DEFAULT_MMAP_THRESHOLD_MAX``, 64-bit).
MMAP_THRESHOLD_MAX = 32 * 2**20


def keep_in_arena(size: int) -> None:
    """Let glibc's malloc serve blocks of up to ``size`` bytes (at most 32 MiB) from its
    heap and keep them there when freed, as it does by itself once it has freed one such
    mapped block (mallopt(3), dynamic mmap threshold: the threshold rises to the block's
    size, the trim threshold to twice that). One block is allocated and freed untouched,
    so it costs no memory. Otherwise blocks above the threshold are mapped and unmapped
    at every chunk and faulted in again page by page. Harmless elsewhere."""
    size = min(size, MMAP_THRESHOLD_MAX - 2**16)  # the block's own header must fit too
    if size > 0:
        del_me = torch.empty(size, dtype=torch.uint8)
        del del_me


def chunk_rows(row_bytes: int, budget: int = CHUNK_BYTES) -> int:
    """Rows (images × draws) decoded together: as many as ``budget`` bytes pay for at
    ``row_bytes`` each, and at least one."""
    return max(1, budget // max(1, row_bytes))


class LadderLogMeanExp:
    """log (1/k) Σ_{j<k} exp(w_j) per image, for each k of ``ladder``, from the log
    weights of successive chunks of draws (running sums: nothing grows with K)."""

    def __init__(self, ladder: list[int], batch: int, device: torch.device):
        self.ladder = ladder
        self.seen = 0
        self.total = torch.full((batch,), -math.inf, dtype=torch.float64, device=device)
        self.values: list[torch.Tensor] = []

    def add(self, log_w: torch.Tensor) -> None:
        """The next ``(c, B)`` log weights (float64), in draw order."""
        count = len(log_w)
        for k in self.ladder:
            if self.seen < k <= self.seen + count:
                head = torch.logsumexp(log_w[: k - self.seen], 0)
                self.values.append(torch.logaddexp(self.total, head) - math.log(k))
        self.total = torch.logaddexp(self.total, torch.logsumexp(log_w, 0))
        self.seen += count

    def result(self) -> torch.Tensor:
        """``(B, L)``: the estimate for every k of the ladder (all must have been reached)."""
        assert len(self.values) == len(self.ladder)
        return torch.stack(self.values, 1)


def batch_terms(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor | None,
    ladder: list[int],
    generator: torch.Generator,
    rows: int,
    tick: Callable[[float], None] | None = None,
) -> tuple[torch.Tensor, ...]:
    """Per image: −ELBO, reconstruction NLL, KL terms ((B, D), or (B, 1) for a prior
    without a closed-form KL), −IWAE_K for each K of ``ladder`` (B, L) or None, and the
    posterior mean; all float64 but the mean. The decoder takes at most ``rows`` rows at
    a time (:func:`chunk_rows`); ``tick(fraction)`` after each chunk of draws, so a
    progress bar moves within a long batch."""
    from vaekit.model import kl_divergence, prior_log_prob
    from vaekit.posterior import DiagonalGaussian

    q = model.posterior(x, y)
    q = DiagonalGaussian(q.mean.float(), q.logvar.float())
    batch, dim = q.shape
    k_max = ladder[-1] if ladder else 1
    draws = min(k_max, max(1, rows // batch))  # whole draws of the batch per chunk
    piece = min(rows, draws * batch)  # rows per decoder call: < batch only for huge rows
    x_rows = x.float().expand(draws, *x.shape).reshape(-1, *x.shape[1:])  # made once
    y_rows = None if y is None else y.expand(draws, *y.shape).reshape(-1, y.shape[1])
    eps = torch.empty(draws, batch, dim, device=x.device)
    bounds = LadderLogMeanExp(ladder, batch, x.device)
    recon = first = None
    for k0 in range(0, k_max, draws):
        count = min(draws, k_max - k0)
        for j in range(count):  # one (B, D) draw each: the same numbers whatever the chunk
            eps[j].normal_(generator=generator)
        z = q.reparametrise(eps[:count])  # (c, B, D)
        z_rows = z.view(-1, dim)
        log_px = _log_px(model, x_rows, z_rows, y_rows, count * batch, piece)
        log_px = log_px.view(count, batch)
        if recon is None:
            recon, first = -log_px[0], z[0]  # the −ELBO's reconstruction: the first draw
        y_draws = None if y_rows is None else y_rows[: count * batch]
        log_pz = prior_log_prob(model.prior, z_rows, y_draws).double().view(count, batch)
        bounds.add(log_px + log_pz - q.log_prob(z).double())
        if tick is not None and k0 + count < k_max:
            tick((k0 + count) / k_max)
    assert recon is not None and first is not None
    # closed form (B, D) where the prior has one, else log q - log p at the first draw (B, 1)
    kl_dim = kl_divergence(model.prior, q, first, y).double()
    neg_elbo = recon + kl_dim.sum(1)
    iwae = -bounds.result() if ladder else None
    return neg_elbo, recon, kl_dim, iwae, q.mean


def _log_px(
    model: Any,
    x_rows: torch.Tensor,
    z_rows: torch.Tensor,
    y_rows: torch.Tensor | None,
    n: int,
    piece: int,
) -> torch.Tensor:
    """log p(x|z) (float64) of the first ``n`` rows, decoded ``piece`` rows at a time."""
    parts = []
    for a in range(0, n, piece):
        b = min(n, a + piece)
        params = model.decode(z_rows[a:b], None if y_rows is None else y_rows[a:b])
        parts.append(model.likelihood.log_prob(x_rows[a:b], params).double())
    return parts[0] if len(parts) == 1 else torch.cat(parts)
