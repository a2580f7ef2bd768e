"""One torch thread for these tests: their tensors are tiny, and on a few shared cores
extra threads spin against other work (the discriminator's convolutions ran ~30x slower
with two threads on a loaded 2-core machine)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
