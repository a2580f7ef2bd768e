"""The conv and resnet networks: today's plans, and arch 1 rebuilding vaekit 0.1.0's modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vaekit.builtin.nets.shapes import halving_plan
from vaekit.errors import UsageError
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
    old = {"arch": 1, "norm": "batch"} if name == "resnet" else {"arch": 1}  # as pinned
    built = {
        "encoder": host.create("encoders", name, shape, width=8, **old),
        "decoder": host.create("decoders", name, 5, shape, width=8, **old),
    }
    for part, module in built.items():
        expected = V010[key][part]
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == expected
        saved = {k: torch.randn(s) if s else torch.tensor(3) for k, s in expected.items()}
        module.load_state_dict(saved, strict=True)


@pytest.mark.parametrize(("name", "default"), [("conv", 2), ("resnet", 3)])
def test_the_default_arch_differs_from_0_1_0(host, name, default):
    new = host.create("encoders", name, (1, 28, 28), width=8)
    assert {k: list(v.shape) for k, v in new.state_dict().items()} != V010[f"{name} 1x28x28"][
        "encoder"
    ]
    same = host.create("encoders", name, (1, 28, 28), width=8, arch=default)
    assert new.state_dict().keys() == same.state_dict().keys()


@pytest.mark.parametrize(("name", "known"), [("conv", "1, 2"), ("resnet", "1, 2, 3")])
@pytest.mark.parametrize("family", ["encoders", "decoders"])
def test_unknown_arch_is_an_error(host, family, name, known):
    args = ((1, 8, 8),) if family == "encoders" else (4, (1, 8, 8))
    with pytest.raises(UsageError, match=f"arch must be one of {known}, got 9"):
        host.create(family, name, *args, arch=9)


def layer_kinds(module: torch.nn.Module) -> list[str]:
    """Leaf modules in order: "down" for a stride-2 conv, "act" for SiLU, else the class."""
    kinds = []
    for m in module.modules():
        if list(m.children()):
            continue
        if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2):
            kinds.append("down")
        else:
            kinds.append("act" if isinstance(m, torch.nn.SiLU) else type(m).__name__)
    return kinds


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_resnet_arch_3_puts_norm_and_activation_before_every_later_downsampling(host, shape):
    """Arch 2 left two stride-2 convolutions of the encoder with nothing between them (a
    linear map); arch 3 gives each one after the first a norm and a SiLU, like the decoder."""
    kinds = layer_kinds(host.create("encoders", "resnet", shape, width=8))
    downs = [i for i, k in enumerate(kinds) if k == "down"]
    assert len(downs) == len(halving_plan(*shape[1:])) - 1 >= 2
    for i in downs[1:]:
        assert kinds[i - 2 : i] == ["GroupNorm", "act"]  # LayerNorm, the default
    old = layer_kinds(host.create("encoders", "resnet", shape, width=8, arch=2))
    assert old[old.index("down") + 1] == "down"  # the 0.2-0.3 network, kept for old runs


def test_resnet_defaults_to_layernorm_on_both_sides(host):
    encoder = host.create("encoders", "resnet", (1, 28, 28), width=8)
    decoder = host.create("decoders", "resnet", 4, (1, 28, 28), width=8)
    for net in (encoder, decoder):
        assert {type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__} == {
            "GroupNorm"
        }
        assert [type(b).__name__ for b in net.modules() if "Block" in type(b).__name__] == [
            "BottleneckBlock"
        ]


def test_resnet_norm_identity_has_no_normalisation(host):
    for family, args in (("encoders", ((1, 28, 28),)), ("decoders", (4, (1, 28, 28)))):
        net = host.create(family, "resnet", *args, width=8, norm="identity")
        assert not [m for m in net.modules() if "Norm" in type(m).__name__]
        with pytest.raises(UsageError, match="'norm' must be one of 'batch', 'layer', 'identity'"):
            host.create(family, "resnet", *args, width=8, norm="group")


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
