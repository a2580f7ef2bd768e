"""The ``conv`` encoder and decoder: stride-2 convolutions and one hidden layer.

``arch=2`` (the default since vaekit 0.2) downsamples from the first layer on:
stride-2 4x4 convolutions halve the image until it is at most 8 pixels a side,
then a fully connected layer of ``hidden`` units; the decoder mirrors it with
stride-2 4x4 transposed convolutions, the last of which gives the image. No
layer works at full resolution with many channels, which is where ``arch=1``
(vaekit 0.1.0, :mod:`vaekit.builtin.nets.legacy`) spent half its time.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.legacy import ConvDecoderV1, ConvEncoderV1
from vaekit.builtin.nets.optiontypes import ConvArch, ConvHidden, Width
from vaekit.builtin.nets.shapes import doubling_padding, halving_plan, stage_channels
from vaekit.options import NETWORK_RANGES, option_ranges

ARCHS = (1, 2)
ARCH = 2


def check_arch(arch: int, known: tuple[int, ...]) -> int:
    """``arch`` as an int, or ValueError naming the ``known`` ones."""
    if arch not in known:
        raise ValueError(f"arch must be one of {', '.join(map(str, known))}, got {arch!r}")
    return int(arch)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions to at most 8x8, flatten, one ``hidden``-unit layer."""

    def __init__(
        self, input_shape: tuple[int, int, int], width: Width = 32, hidden: ConvHidden = 256
    ):
        super().__init__()
        channels, height, width_px = input_shape
        plan = halving_plan(height, width_px)
        chans = [channels] + stage_channels(width, len(plan) - 2)[: len(plan) - 1]
        layers: list[nn.Module] = []
        for i in range(len(plan) - 1):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1), nn.SiLU()]
        layers.append(nn.Flatten())
        features = chans[len(plan) - 1] * math.prod(plan[-1])
        if hidden:
            layers += [nn.Linear(features, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.out_features = hidden or features

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, F)
        return self.net(x)


class ConvDecoder(nn.Module):
    """One ``hidden``-unit layer, a small feature map, stride-2 4x4 transposed convolutions."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple[int, int, int],
        width: Width = 32,
        hidden: ConvHidden = 256,
    ):
        super().__init__()
        out_channels, height, width_px = output_shape
        plan = halving_plan(height, width_px)[::-1]  # small -> large
        stages = len(plan) - 1
        chans = (stage_channels(width, stages - 1)[:stages] if stages else [])[::-1]
        chans.append(out_channels)
        self.start = (chans[0], *plan[0])
        fc: list[nn.Module] = []
        if hidden:
            fc += [nn.Linear(latent_dim, hidden), nn.SiLU()]
        fc.append(nn.Linear(hidden or latent_dim, math.prod(self.start)))
        self.fc = nn.Sequential(*fc)
        layers: list[nn.Module] = []
        for i in range(stages):
            layers += [nn.SiLU(), *self.upsample(chans[i], chans[i + 1], plan[i], plan[i + 1])]
        self.net = nn.Sequential(*layers)

    def upsample(
        self, c_in: int, c_out: int, size: tuple[int, int], doubled: tuple[int, int]
    ) -> list[nn.Module]:
        """The layers of one stage, ``(B, c_in, *size)`` -> ``(B, c_out, *doubled)``: a
        stride-2 transposed convolution (a subclass may draw the stage otherwise)."""
        padding = doubling_padding(size, doubled)
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, output_padding=padding)]

    def forward(self, z: Tensor) -> Tensor:  # (B, D) -> (B, C*k, H, W)
        return self.net(self.fc(z).view(z.shape[0], *self.start))


@option_ranges(NETWORK_RANGES)
def conv_encoder(
    input_shape: tuple[int, int, int],
    width: Width = 32,
    hidden: ConvHidden = 256,
    arch: ConvArch = ARCH,
) -> nn.Module:
    """The ``conv`` encoder; ``arch=1`` is vaekit 0.1.0's (it takes no ``hidden``)."""
    if check_arch(arch, ARCHS) == 1:
        return ConvEncoderV1(input_shape, width)
    return ConvEncoder(input_shape, width, hidden)


@option_ranges(NETWORK_RANGES)
def conv_decoder(
    latent_dim: int,
    output_shape: tuple[int, int, int],
    width: Width = 32,
    hidden: ConvHidden = 256,
    arch: ConvArch = ARCH,
) -> nn.Module:
    """The ``conv`` decoder; ``arch=1`` is vaekit 0.1.0's (it takes no ``hidden``)."""
    if check_arch(arch, ARCHS) == 1:
        return ConvDecoderV1(latent_dim, output_shape, width)
    return ConvDecoder(latent_dim, output_shape, width, hidden)
