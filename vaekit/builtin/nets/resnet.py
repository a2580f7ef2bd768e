"""The ``resnet`` encoder and decoder (after arXiv 2309.13160, Fig. 3).

The encoder alternates stride-2 convolutions with normalised residual blocks;
the decoder mirrors it with residual blocks and stride-2 transposed
convolutions. Since vaekit 0.2 they downsample from the first layer on and keep
residual blocks off the full-resolution image; the blocks narrow their 3x3
convolution to half the channels. ``arch=3`` (the default since vaekit 0.4) puts a
norm and a SiLU before each of the encoder's stride-2 convolutions after the first;
``arch=2`` (vaekit 0.2-0.3) had none there. The default norm is LayerNorm since 0.4
(BatchNorm before); ``norm=identity`` leaves normalisation out.
``arch=1`` is vaekit 0.1.0's network (:mod:`vaekit.builtin.nets.legacy`). Runs of
older versions load with the options they were built with
(:data:`vaekit.config.PINNED_OPTIONS`).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.blocks import NORMS, BottleneckBlock, ResidualBlock, make_norm
from vaekit.builtin.nets.conv import check_arch
from vaekit.builtin.nets.legacy import ResNetDecoderV1, ResNetEncoderV1
from vaekit.builtin.nets.optiontypes import (
    Block,
    Blocks,
    ConvHidden,
    Norm,
    ResNetArch,
    ResStages,
    Width,
)
from vaekit.builtin.nets.shapes import doubling_padding, halving_plan, stage_channels
from vaekit.options import NETWORK_RANGES, option_ranges

__all__ = ["NORMS", "ResNetDecoder", "ResNetEncoder", "resnet_decoder", "resnet_encoder"]

BLOCKS = {"bottleneck": BottleneckBlock, "full": ResidualBlock}
ARCHS = (1, 2, 3)
ARCH = 3
# BatchNorm until vaekit 0.4 (config.upgrade pins it for older runs). LayerNorm won the
# 10-epoch races with arch 3, on 8x8 digits too, and has no train/eval difference.
NORM = "layer"


class ResNetEncoder(nn.Module):
    """Per stage a stride-2 4x4 conv and ``blocks`` residual blocks, then one hidden layer.

    With ``preact`` (arch 3) every stride-2 convolution after the first is preceded by
    norm and SiLU, as each transposed convolution of the decoder is; without it (arch
    2) two stride-2 convolutions with no block between them compose linearly.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        width: Width = 32,
        blocks: Blocks = 1,
        norm: Norm = NORM,
        hidden: ConvHidden = 256,
        block: Block = "bottleneck",
        res_stages: ResStages = 1,
        preact: bool = True,
    ):
        super().__init__()
        make_norm(norm, 1)  # validate early
        channels, height, width_px = input_shape
        plan = halving_plan(height, width_px)
        stages = len(plan) - 1
        chans = [channels] + stage_channels(width, stages - 1)
        layers: list[nn.Module] = []
        for i in range(stages):
            if preact and i:
                layers += [make_norm(norm, chans[i]), nn.SiLU()]
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1))
            if i >= stages - res_stages:
                layers += [BLOCKS[block](chans[i + 1], norm) for _ in range(blocks)]
        if stages:
            layers += [make_norm(norm, chans[-1]), nn.SiLU()]
        layers.append(nn.Flatten())
        features = chans[-1] * math.prod(plan[-1])
        if hidden:
            layers += [nn.Linear(features, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.out_features = hidden or features

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, F)
        return self.net(x)


class ResNetDecoder(nn.Module):
    """One hidden layer to a small map, then per stage residual blocks and a stride-2
    4x4 transposed convolution (the last one gives the image)."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple[int, int, int],
        width: Width = 32,
        blocks: Blocks = 1,
        norm: Norm = NORM,
        hidden: ConvHidden = 256,
        block: Block = "bottleneck",
        res_stages: ResStages = 1,
    ):
        super().__init__()
        make_norm(norm, 1)
        out_channels, height, width_px = output_shape
        plan = halving_plan(height, width_px)[::-1]  # small -> large
        stages = len(plan) - 1
        chans = stage_channels(width, stages - 1)[::-1] + [out_channels]
        self.start = (chans[0], *plan[0])
        fc: list[nn.Module] = []
        if hidden:
            fc += [nn.Linear(latent_dim, hidden), nn.SiLU()]
        fc.append(nn.Linear(hidden or latent_dim, math.prod(self.start)))
        self.fc = nn.Sequential(*fc)
        layers: list[nn.Module] = []
        for i in range(stages):
            if i < res_stages:
                layers += [BLOCKS[block](chans[i], norm) for _ in range(blocks)]
            layers += [
                make_norm(norm, chans[i]),
                nn.SiLU(),
                nn.ConvTranspose2d(
                    chans[i],
                    chans[i + 1],
                    4,
                    stride=2,
                    padding=1,
                    output_padding=doubling_padding(plan[i], plan[i + 1]),
                ),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, D) -> (B, C*k, H, W)
        return self.net(self.fc(z).view(z.shape[0], *self.start))


@option_ranges(NETWORK_RANGES)
def resnet_encoder(
    input_shape: tuple[int, int, int],
    width: Width = 32,
    blocks: Blocks = 1,
    norm: Norm = NORM,
    hidden: ConvHidden = 256,
    block: Block = "bottleneck",
    res_stages: ResStages = 1,
    arch: ResNetArch = ARCH,
) -> nn.Module:
    """The ``resnet`` encoder; ``arch=1`` is vaekit 0.1.0's (no ``hidden``, ``block``),
    ``arch=2`` vaekit 0.2-0.3's (no activation between stride-2 convolutions)."""
    arch = check_arch(arch, ARCHS)
    if arch == 1:
        return ResNetEncoderV1(input_shape, width, blocks, norm)
    return ResNetEncoder(
        input_shape, width, blocks, norm, hidden, block, res_stages, preact=arch >= 3
    )


@option_ranges(NETWORK_RANGES)
def resnet_decoder(
    latent_dim: int,
    output_shape: tuple[int, int, int],
    width: Width = 32,
    blocks: Blocks = 1,
    norm: Norm = NORM,
    hidden: ConvHidden = 256,
    block: Block = "bottleneck",
    res_stages: ResStages = 1,
    arch: ResNetArch = ARCH,
) -> nn.Module:
    """The ``resnet`` decoder; ``arch=1`` is vaekit 0.1.0's (no ``hidden``, ``block``);
    arch 2 and 3 share one decoder."""
    if check_arch(arch, ARCHS) == 1:
        return ResNetDecoderV1(latent_dim, output_shape, width, blocks, norm)
    return ResNetDecoder(latent_dim, output_shape, width, blocks, norm, hidden, block, res_stages)
