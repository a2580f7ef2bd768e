"""Built-in plugin: the ``cpu`` and ``cuda`` accelerators.

``cuda`` trains on an NVIDIA GPU with bf16 autocast (on GPUs that have bf16),
channels-last weights and inputs, and optional ``torch.compile``; it is selected
with ``--accelerator cuda`` (or ``auto``, the default, when a GPU is present).
Both take ``fp16=true``: float16 autocast with a gradient scaler
(:meth:`grad_scaler`), whose state the training loop checkpoints.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from vaekit import hookimpl
from vaekit.errors import UsageError, VaekitError
from vaekit.options import option_ranges

#: More intra-op threads than this is a typo (10**6 of them crash torch's thread pool).
MAX_THREADS = 256

# The options both built-in accelerators take, declared once.
Compile = Annotated[bool, "wrap the model in torch.compile"]
FP16 = Annotated[bool, "float16 autocast with a gradient scaler (excludes bf16)"]
ChannelsLast = Annotated[bool, "lay out weights and inputs channels-last"]
InitScale = Annotated[float, "the gradient scaler's first scale (fp16 only)"]


def not_available(name: str) -> VaekitError:
    """The error for an accelerator this machine cannot use."""
    return VaekitError(
        f"accelerator '{name}' is not available on this machine; try --accelerator cpu"
    )


def gpu_driver_present() -> bool:
    """False only when this is Linux and no GPU driver shows itself (NVIDIA's
    ``/proc/driver/nvidia``, ``/dev/nvidia*``, ROCm's ``/dev/kfd``, WSL's ``/dev/dxg``);
    True wherever that cannot be told without torch (then torch decides)."""
    import glob
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return True
    return (
        os.path.exists("/proc/driver/nvidia/version")
        or bool(glob.glob("/dev/nvidia*"))
        or os.path.exists("/dev/kfd")
        or os.path.exists("/dev/dxg")
    )


def autocast_dtype(bf16: bool, fp16: bool) -> Any:
    """The autocast dtype for the ``bf16`` / ``fp16`` options (None: float32)."""
    import torch

    if bf16 and fp16:
        raise UsageError("--accelerator-opt bf16=true and fp16=true exclude each other; pick one")
    return torch.bfloat16 if bf16 else torch.float16 if fp16 else None


class _Precision:
    """Autocast and gradient scaling shared by the built-in accelerators."""

    device: Any
    dtype: Any  # the autocast dtype, None for float32
    channels_last: bool
    init_scale: float  # the gradient scaler's first scale (fp16)

    @property
    def memory_format(self) -> Any:
        """The layout batches are moved to the device in (channels-last or contiguous)."""
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> Any:
        """A ``torch.amp.GradScaler`` under fp16 autocast (float16 gradients underflow
        without one), starting at ``init_scale``; None under bf16 or float32, whose range
        needs none."""
        import torch

        if self.dtype is not torch.float16:
            return None
        return torch.amp.GradScaler(self.device.type, init_scale=float(self.init_scale))


@option_ranges(threads=(0, MAX_THREADS), init_scale=(1e-30, 1e30))
class CPUAccelerator(_Precision):
    """Runs on the CPU, in float32 or with bfloat16 (``bf16``) or float16 (``fp16``, with a
    gradient scaler from ``init_scale``) autocast. ``threads`` sets torch's intra-op thread
    count; ``compile`` wraps the model in ``torch.compile``; ``channels_last`` lays out
    weights and inputs channels-last."""

    name = "cpu"

    def __init__(
        self,
        threads: Annotated[
            int | None, "torch's intra-op threads (none or 0: torch's default)"
        ] = None,
        compile: Compile = False,
        bf16: Annotated[bool, "bfloat16 autocast (excludes fp16)"] = False,
        fp16: FP16 = False,
        channels_last: ChannelsLast = False,
        init_scale: InitScale = 2.0**16,
    ):
        import torch

        self.device = torch.device("cpu")
        self.compile, self.channels_last, self.init_scale = compile, channels_last, init_scale
        self.dtype = autocast_dtype(bf16, fp16)
        if threads:
            torch.set_num_threads(int(threads))

    @staticmethod
    def is_available() -> bool:
        return True

    def prepare(self, model: Any) -> Any:
        """Move ``model`` to the CPU (channels-last and compiled when asked)."""
        import torch

        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def synchronize(self) -> None:
        """Nothing to wait for on the CPU."""


@option_ranges(index=(0, 1023), init_scale=(1e-30, 1e30))
class CUDAAccelerator(_Precision):
    """Runs on GPU ``index`` with channels-last weights and inputs and bf16 autocast where the
    GPU has bf16 (``bf16=false`` for float32; ``fp16=true`` for float16 with a gradient
    scaler from ``init_scale``, e.g. on GPUs without bf16)."""

    name = "cuda"

    def __init__(
        self,
        index: Annotated[int, "which GPU: cuda:INDEX"] = 0,
        bf16: Annotated[
            bool | None, "bfloat16 autocast (none: where the GPU has native bf16)"
        ] = None,
        fp16: FP16 = False,
        channels_last: ChannelsLast = True,
        compile: Compile = False,
        init_scale: InitScale = 2.0**16,
    ):
        import torch

        self.device = torch.device("cuda", index)
        self.channels_last, self.compile, self.init_scale = channels_last, compile, init_scale
        if bf16 is None:  # the default: bf16 where the hardware has it, not emulated
            bf16 = not fp16 and self.is_available() and bf16_native(self.device)
        self.dtype = autocast_dtype(bf16, fp16)

    @staticmethod
    def is_available() -> bool:
        if not gpu_driver_present():  # no driver at all: say so without importing torch
            return False
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

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)


def bf16_native(device: Any) -> bool:
    """Whether GPU ``device`` computes in bf16 natively (Ampere or later), not emulated."""
    import torch

    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


@hookimpl
def register_accelerators(register):
    """Register the built-in accelerators."""
    register("cpu", CPUAccelerator)
    register("cuda", CUDAAccelerator)
