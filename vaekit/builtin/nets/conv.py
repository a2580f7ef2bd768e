"""Plain convolutional encoder and transposed-convolution decoder."""

from __future__ import annotations

import math

from torch import Tensor, nn

from vaekit.builtin.nets.shapes import downsample_plan, output_padding, stage_channels


class ConvEncoder(nn.Module):
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


class ConvDecoder(nn.Module):
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
