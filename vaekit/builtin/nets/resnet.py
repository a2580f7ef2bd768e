"""ResNet-like encoder and decoder (after arXiv 2309.13160, Fig. 3).

The encoder alternates residual blocks with stride-2 convolutions; the decoder
mirrors it with residual blocks and stride-2 transposed convolutions.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.shapes import downsample_plan, output_padding, stage_channels

NORMS = ("batch", "layer")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, or LayerNorm over (C, H, W) written as GroupNorm with one group."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


class ResidualBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))) -- a pre-activation residual block."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            make_norm(norm, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            make_norm(norm, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetEncoder(nn.Module):
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


class ResNetDecoder(nn.Module):
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
