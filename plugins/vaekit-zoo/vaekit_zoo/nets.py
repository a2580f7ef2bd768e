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

from torch import nn

from vaekit.builtin.nets.conv import ConvDecoder
from vaekit.options import NETWORK_RANGES, option_ranges


@option_ranges(NETWORK_RANGES)  # width, hidden: as vaekit's conv decoder's
class UpsampleDecoder(ConvDecoder):
    """vaekit's ``conv`` decoder (``hidden`` units, a small feature map, stages that double
    it) whose every stage is a nearest 2x upsampling (to the stage's exact size) and a 3x3
    convolution; the last stage's gives the parameters."""

    def upsample(
        self, c_in: int, c_out: int, size: tuple[int, int], doubled: tuple[int, int]
    ) -> list[nn.Module]:
        return [nn.Upsample(size=doubled, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]
