"""Built-in plugin: the ``cpu`` and ``cuda`` accelerators.

``cuda`` trains on an NVIDIA GPU with bf16 autocast, channels-last memory format
and optional ``torch.compile``; it is selected with ``--accelerator cuda`` (or
``auto``, the default, when a GPU is present).
"""

from __future__ import annotations

import contextlib
from typing import Any

from vaekit import hookimpl


class CPUAccelerator:
    """Runs on the CPU, in float32 or (``bf16``) with bfloat16 autocast. ``threads`` sets
    torch's intra-op thread count; ``compile`` wraps the model in ``torch.compile``."""

    name = "cpu"

    def __init__(self, threads: int | None = None, compile: bool = False, bf16: bool = False):
        import torch

        self.device = torch.device("cpu")
        self.compile = compile
        self.bf16 = bf16
        if threads:
            torch.set_num_threads(int(threads))

    @staticmethod
    def is_available() -> bool:
        return True

    def prepare(self, model: Any) -> Any:
        """Move ``model`` to the CPU (and compile it when asked)."""
        import torch

        model = model.to(self.device)
        return torch.compile(model) if self.compile else model

    def autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def synchronize(self) -> None:
        """Nothing to wait for on the CPU."""


class CUDAAccelerator:
    """Runs on GPU ``index`` with bf16 autocast and channels-last tensors."""

    name = "cuda"

    def __init__(
        self, index: int = 0, bf16: bool = True, channels_last: bool = True, compile: bool = False
    ):
        import torch

        self.device = torch.device("cuda", index)
        self.bf16, self.channels_last, self.compile = bf16, channels_last, compile

    @staticmethod
    def is_available() -> bool:
        import torch

        return torch.cuda.is_available()

    def prepare(self, model: Any) -> Any:
        """Move ``model`` to the GPU, channels-last, compiled when asked."""
        import torch

        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)


@hookimpl
def register_accelerators(register):
    """Register the built-in accelerators."""
    register("cpu", CPUAccelerator)
    register("cuda", CUDAAccelerator)
