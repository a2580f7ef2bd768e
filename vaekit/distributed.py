"""Several processes under ``torchrun``: which one this is, and how they agree.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) everything here is a no-op for
rank 0 of 1, so single-process code paths need no special case.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

#: How long a rank waits for a peer that stopped answering before it gives up, in seconds
#: (``VAEKIT_DIST_TIMEOUT`` overrides).
PEER_TIMEOUT_SECONDS = 600
# how long the gloo workers get to release finished collectives before the group goes
SETTLE_SECONDS = 0.2


def peer_timeout() -> float:
    """Seconds a rank waits on a silent peer: ``VAEKIT_DIST_TIMEOUT`` or
    :data:`PEER_TIMEOUT_SECONDS`."""
    from vaekit.errors import UsageError

    text = os.environ.get("VAEKIT_DIST_TIMEOUT", "")
    try:
        seconds = float(text) if text else PEER_TIMEOUT_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e7:
        raise UsageError(f"VAEKIT_DIST_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return seconds


def is_peer_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that timed out because another rank stopped
    answering (gloo and NCCL raise RuntimeErrors that say so)."""
    text = str(exc).lower()
    return (
        int(os.environ.get("WORLD_SIZE", "1")) > 1
        and isinstance(exc, RuntimeError)
        and ("timed out" in text or "timeout" in text)
    )


def peer_timeout_message() -> str:
    """The one line printed when a rank gives up on a silent peer."""
    return (
        f"another torchrun process stopped answering for {peer_timeout():g} s "
        "(stopped, killed or stuck), so this one gives up; the run holds its last saved "
        "epoch: `vaekit train --resume` continues it (VAEKIT_DIST_TIMEOUT sets the wait)"
    )


@dataclass
class DistContext:
    """This process's place among ``torchrun``'s processes (rank 0 of 1 without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def start(cls, backend: str = "gloo") -> DistContext:
        """Join the process group when launched by torchrun (``gloo`` on CPU and for small
        messages, ``nccl`` for training on GPUs)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:  # a rank that stops answering fails the others within minutes, not hours
            dist.init_process_group(backend, timeout=timedelta(seconds=peer_timeout()))
        return cls(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owns
        )

    @staticmethod
    def local_rank_from_env() -> int:
        """``LOCAL_RANK`` as torchrun sets it (0 without torchrun)."""
        return int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def is_lead(self) -> bool:
        """Rank 0: the process that writes files and talks to the user."""
        return self.rank == 0

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's contiguous rows [lo, hi) of ``n``."""
        return self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order."""
        if self.world_size == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def from_lead(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""
        return self.gather(value)[0]

    def sum_(self, tensor: Any) -> Any:
        """Sum ``tensor`` over ranks, in place (a no-op on one process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def barrier(self) -> None:
        """Wait until every rank gets here (a no-op on one process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def stop(self) -> None:
        """Leave the process group this context joined (a no-op otherwise).

        Call it once nothing else holds the group (drop the DDP wrapper first). The
        group's destructor joins gloo's worker threads while holding the GIL, and a
        worker that is still releasing a finished collective's tensors needs the GIL:
        destroyed a moment too soon, the process hangs at exit (seen under load). So
        the wrappers' cycles are collected first, and the workers get a moment to
        finish, before the last reference goes.
        """
        if self.owns_group:
            import torch.distributed as dist

            gc.collect()
            time.sleep(SETTLE_SECONDS)  # sleeping releases the GIL to the workers
            dist.destroy_process_group()
            gc.collect()
