"""A linear encoder: the smallest thing that satisfies vaekit's encoder contract."""

from __future__ import annotations

import math
from typing import Annotated

from torch import Tensor, nn


class LinearEncoder(nn.Module):
    """Flatten, then one linear layer to ``features`` units."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        features: Annotated[int, "units of the linear layer (the encoder's feature size)"] = 128,
    ):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), features), nn.SiLU()
        )
        self.out_features = features  # the contract: encoders say their feature size

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, features)
        return self.net(x)
