"""Normalisation and residual blocks shared by the ResNet networks."""

from __future__ import annotations

from typing import get_args

from torch import Tensor, nn

from vaekit.builtin.nets.optiontypes import NormName

NORMS: tuple[str, ...] = get_args(NormName)  # ("batch", "layer", "identity")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, LayerNorm over (C, H, W) written as GroupNorm with one group, or none."""
    if kind == "identity":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


class ResidualBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))) -- a pre-activation residual block
    (two 3x3 convolutions; the block of vaekit 0.1.0's ``resnet``)."""

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


class BottleneckBlock(nn.Module):
    """x + conv1x1(act(norm(conv3x3(act(norm(x)))))): a pre-activation residual block whose
    3x3 convolution narrows to ``channels // 2`` (the residual block of VQ-VAE, with norms)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        inner = max(1, channels // 2)
        self.body = nn.Sequential(
            make_norm(norm, channels),
            nn.SiLU(),
            nn.Conv2d(channels, inner, 3, padding=1),
            make_norm(norm, inner),
            nn.SiLU(),
            nn.Conv2d(inner, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
