"""Run by ``torchrun`` in tests/test_distributed.py: train, then record this rank's weights.

torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py OUT [BATCH [KIND]]

KIND ``critic`` trains a kind with an extra parameter group (its own loss and optimiser).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tests.helpers import CriticKind
from vaekit.config import TrainConfig
from vaekit.plugins import get_plugin_host
from vaekit.train import train

out = Path(sys.argv[1])
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
kind = sys.argv[3] if len(sys.argv) > 3 else "vae"
if kind == "critic":
    get_plugin_host().add_plugin(CriticKind(through=True), "critic-kind")
    kind = "with-critic"
config = TrainConfig.build(
    encoder="mlp",
    encoder_options={"hidden": 32},
    decoder_options={"hidden": 32},
    latent_dim=4,
    epochs=2,
    batch_size=batch,
    accelerator="cpu",
    runs_dir=str(out / "runs"),
    name="ddp",
    kind=kind,
)

# the process group must outlive every DDP wrapper (else a rank can hang at exit): count
# the wrappers still alive when vaekit leaves the group
leave_group, alive_at_leave = dist.destroy_process_group, []


def watched_leave(*args, **kwargs):
    alive_at_leave.append(sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
    return leave_group(*args, **kwargs)


dist.destroy_process_group = watched_leave
result = train(config)
rank = os.environ.get("RANK", "0")
(out / f"teardown-{rank}.json").write_text(
    json.dumps({"ddp_alive_at_leave": alive_at_leave, "in_group": dist.is_initialized()})
)
digest = hashlib.sha256()
for key, tensor in sorted(result.model.state_dict().items()):
    digest.update(key.encode() + tensor.detach().contiguous().numpy().tobytes())
(out / f"weights-{rank}.sha256").write_text(digest.hexdigest())
torch.save(result.model.state_dict(), out / f"weights-{rank}.pt")
if rank == "0":
    (out / "history.json").write_text(json.dumps(result.history))
