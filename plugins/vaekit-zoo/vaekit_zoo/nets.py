"""The ``upsample`` decoder: the ``conv`` decoder's plan with resize-convolutions.

vaekit's ``conv`` decoder doubles the map with stride-2 transposed convolutions. Their
kernels overlap unevenly unless trained not to, and an adversarial loss readily turns
that into a checkerboard (Odena et al. 2016, "Deconvolution and checkerboard
artifacts"). Here each stage is a nearest-neighbour 2x upsampling followed by a 3x3
convolution: every output pixel sees the same number of taps, so no stage can draw a
checkerboard that the next one's smooth kernel has not already smoothed.

Same stages, channels and ``hidden`` layer as vaekit's ``conv`` decoder (arch 2), so
runs differ in the upsampling only; about 2.25x the multiply-adds of the transposed
convolutions (nine taps at the doubled size instead of four).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.shapes import halving_plan, stage_channels


class UpsampleDecoder(nn.Module):
    """``hidden`` units, a small feature map, then per stage nearest 2x upsampling (to the
    stage's exact size) and a 3x3 convolution; the last stage's gives the parameters."""

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple[int, int, int],
        width: int = 32,
        hidden: int = 256,
    ):
        super().__init__()
        out_channels, height, width_px = output_shape
        plan = halving_plan(height, width_px)[::-1]  # small -> large, as the conv decoder
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
            layers += [
                nn.SiLU(),
                nn.Upsample(size=plan[i + 1], mode="nearest"),
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, D) -> (B, C*k, H, W)
        return self.net(self.fc(z).view(z.shape[0], *self.start))
