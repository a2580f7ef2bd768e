"""The example plugin's own tests: it is found through its entry point and trains."""

from __future__ import annotations

import torch

from vaekit.plugins import PluginHost


def test_linear_encoder_registered_through_entry_point():
    host = PluginHost()
    component = host.get("encoders", "linear")
    assert component.plugin == "example"
    assert host.plugins["example"].distribution == "vaekit-example"
    encoder = host.create("encoders", "linear", (1, 8, 8), features=32)
    assert encoder(torch.rand(4, 1, 8, 8)).shape == (4, 32)
