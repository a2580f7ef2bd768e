"""The ``conv`` and ``resnet`` networks of vaekit 0.1.0 (``arch=1``), kept so old runs load.

These build exactly the modules (state_dict keys and shapes) that runs written by
vaekit 0.1.0 saved. They put a full-resolution convolution at both ends and, in the
ResNet, residual blocks at full resolution: see docs/benchmarks.md for what that
costs. New runs use ``arch=2`` (:mod:`vaekit.builtin.nets.conv`, ``.resnet``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.blocks import ResidualBlock, make_norm
from vaekit.builtin.nets.shapes import downsample_plan, output_padding, stage_channels


class ConvEncoderV1(nn.Module):
    """Stride-2 3x3 convolutions until the feature map is at most 4x4, then flatten."""

    def __init__(self, input_shape: tuple[int, int, int], width: int = 32):
        super().__init__()
        channels, height, width_px = input_shape
        plan = downsample_plan(height, width_px)
        chans = stage_channels(width, len(plan) - 1)
        layers: list[nn.Module] = [nn.Conv2d(channels, chans[0], 3, padding=1), nn.SiLU()]
        for i in range(len(plan) - 1):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.SiLU()]
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.out_features = chans[-1] * math.prod(plan[-1])

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, F)
        return self.net(x)


class ConvDecoderV1(nn.Module):
    """Linear to a small feature map, then stride-2 transposed convolutions to the image size."""

    def __init__(self, latent_dim: int, output_shape: tuple[int, int, int], width: int = 32):
        super().__init__()
        out_channels, height, width_px = output_shape
        plan = downsample_plan(height, width_px)[::-1]  # small -> large
        chans = stage_channels(width, len(plan) - 1)[::-1]
        self.start = (chans[0], *plan[0])
        self.fc = nn.Linear(latent_dim, math.prod(self.start))
        layers: list[nn.Module] = [nn.SiLU()]
        for i in range(len(plan) - 1):
            layers += [
                nn.ConvTranspose2d(
                    chans[i],
                    chans[i + 1],
                    3,
                    stride=2,
                    padding=1,
                    output_padding=output_padding(plan[i], plan[i + 1]),
                ),
                nn.SiLU(),
            ]
        layers.append(nn.Conv2d(chans[-1], out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, D) -> (B, C*k, H, W)
        return self.net(self.fc(z).view(z.shape[0], *self.start))


class ResNetEncoderV1(nn.Module):
    """Stem conv, then per stage ``blocks`` residual blocks and a stride-2 conv."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        width: int = 32,
        blocks: int = 1,
        norm: str = "batch",
    ):
        super().__init__()
        make_norm(norm, 1)  # validate early
        channels, height, width_px = input_shape
        plan = downsample_plan(height, width_px)
        chans = stage_channels(width, len(plan) - 1)
        layers: list[nn.Module] = [nn.Conv2d(channels, chans[0], 3, padding=1)]
        for i in range(len(plan) - 1):
            layers += [ResidualBlock(chans[i], norm) for _ in range(blocks)]
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1))
        layers += [ResidualBlock(chans[-1], norm), make_norm(norm, chans[-1]), nn.SiLU()]
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.out_features = chans[-1] * math.prod(plan[-1])

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, F)
        return self.net(x)


class ResNetDecoderV1(nn.Module):
    """Linear to a small map, then per stage residual blocks and a stride-2 transposed conv."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple[int, int, int],
        width: int = 32,
        blocks: int = 1,
        norm: str = "batch",
    ):
        super().__init__()
        make_norm(norm, 1)
        out_channels, height, width_px = output_shape
        plan = downsample_plan(height, width_px)[::-1]
        chans = stage_channels(width, len(plan) - 1)[::-1]
        self.start = (chans[0], *plan[0])
        self.fc = nn.Linear(latent_dim, math.prod(self.start))
        layers: list[nn.Module] = [ResidualBlock(chans[0], norm)]
        for i in range(len(plan) - 1):
            layers += [ResidualBlock(chans[i], norm) for _ in range(blocks - 1)]
            layers += [
                make_norm(norm, chans[i]),
                nn.SiLU(),
                nn.ConvTranspose2d(
                    chans[i],
                    chans[i + 1],
                    3,
                    stride=2,
                    padding=1,
                    output_padding=output_padding(plan[i], plan[i + 1]),
                ),
                ResidualBlock(chans[i + 1], norm),
            ]
        layers += [
            make_norm(norm, chans[-1]),
            nn.SiLU(),
            nn.Conv2d(chans[-1], out_channels, 3, padding=1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, D) -> (B, C*k, H, W)
        return self.net(self.fc(z).view(z.shape[0], *self.start))
