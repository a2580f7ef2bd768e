"""The conv and resnet networks: arch 2 plans, and arch 1 rebuilding vaekit 0.1.0's modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vaekit.builtin.nets.shapes import halving_plan
from vaekit.plugins import PluginHost

# state_dict keys and shapes of vaekit 0.1.0's conv and resnet (width=8, latent 5),
# recorded from the 0.1.0 source
V010 = json.loads((Path(__file__).parent / "fixtures" / "v010_net_shapes.json").read_text())


@pytest.fixture(scope="module")
def host():
    return PluginHost(entry_points=False)


def test_halving_plan_stops_at_eight_pixels_and_halves_at_least_once():
    assert halving_plan(28, 28) == [(28, 28), (14, 14), (7, 7)]
    assert halving_plan(8, 8) == [(8, 8), (4, 4)]
    assert halving_plan(64, 64) == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert halving_plan(16, 12) == [(16, 12), (8, 6)]
    assert halving_plan(1, 9) == [(1, 9)]


@pytest.mark.parametrize("key", sorted(V010))
def test_arch_1_rebuilds_the_0_1_0_modules_and_loads_their_weights(host, key):
    name, dims = key.split()
    shape = tuple(int(d) for d in dims.split("x"))
    built = {
        "encoder": host.create("encoders", name, shape, width=8, arch=1),
        "decoder": host.create("decoders", name, 5, shape, width=8, arch=1),
    }
    for part, module in built.items():
        expected = V010[key][part]
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == expected
        saved = {k: torch.randn(s) if s else torch.tensor(3) for k, s in expected.items()}
        module.load_state_dict(saved, strict=True)


@pytest.mark.parametrize("name", ["conv", "resnet"])
def test_arch_2_is_the_default_and_differs_from_0_1_0(host, name):
    new = host.create("encoders", name, (1, 28, 28), width=8)
    assert {k: list(v.shape) for k, v in new.state_dict().items()} != V010[f"{name} 1x28x28"][
        "encoder"
    ]
    assert type(new) is type(host.create("encoders", name, (1, 28, 28), width=8, arch=2))


@pytest.mark.parametrize("family", ["encoders", "decoders"])
def test_unknown_arch_is_an_error(host, family):
    args = ((1, 8, 8),) if family == "encoders" else (4, (1, 8, 8))
    with pytest.raises(ValueError, match="arch must be one of 1, 2"):
        host.create(family, "conv", *args, arch=3)


@pytest.mark.parametrize("name", ["conv", "resnet"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 12), (1, 28, 28)])
def test_no_layer_runs_at_full_resolution_with_more_than_the_image_channels(host, name, shape):
    """The cost of arch 1 was full-resolution layers; arch 2 has none inside the network."""
    encoder = host.create("encoders", name, shape, width=8)
    decoder = host.create("decoders", name, 4, shape, width=8)
    seen: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
        for m in [*encoder.modules(), *decoder.modules()][1:]
        if not list(m.children())
    ]
    encoder(torch.rand(2, *shape))
    decoder(torch.randn(2, 4))
    for hook in hooks:
        hook.remove()
    full = [s for s in seen if len(s) == 4 and s[2:] == shape[1:]]
    assert full == [(2, *shape)]  # only the decoder's last transposed convolution


@pytest.mark.parametrize("hidden", [0, 16])
def test_hidden_layer_option(host, hidden):
    encoder = host.create("encoders", "conv", (1, 28, 28), width=8, hidden=hidden)
    assert encoder.out_features == (hidden or 16 * 7 * 7)
    decoder = host.create("decoders", "conv", 3, (2, 28, 28), width=8, hidden=hidden)
    assert decoder(torch.randn(2, 3)).shape == (2, 2, 28, 28)
