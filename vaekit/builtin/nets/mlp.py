"""Fully connected encoder and decoder."""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.optiontypes import MLPDepth, MLPHidden
from vaekit.options import NETWORK_RANGES, option_ranges


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.SiLU()]
    return nn.Sequential(*layers)


@option_ranges(NETWORK_RANGES, hidden=(1, 65536))
class MLPEncoder(nn.Module):
    """Flattens the image and applies ``depth`` hidden layers of size ``hidden``."""

    def __init__(
        self, input_shape: tuple[int, int, int], hidden: MLPHidden = 512, depth: MLPDepth = 2
    ):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), _mlp([math.prod(input_shape)] + [hidden] * depth))
        self.out_features = hidden

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, hidden)
        return self.net(x)


@option_ranges(NETWORK_RANGES, hidden=(1, 65536))
class MLPDecoder(nn.Module):
    """Maps z through ``depth`` hidden layers to a flat output, reshaped to the image."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple[int, int, int],
        hidden: MLPHidden = 512,
        depth: MLPDepth = 2,
    ):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = nn.Sequential(
            _mlp([latent_dim] + [hidden] * depth), nn.Linear(hidden, math.prod(output_shape))
        )

    def forward(self, z: Tensor) -> Tensor:  # (B, D) -> (B, C*k, H, W)
        return self.net(z).view(z.shape[0], *self.output_shape)
