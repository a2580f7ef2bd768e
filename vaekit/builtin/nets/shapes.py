"""Spatial plans shared by the convolutional encoders and decoders."""

from __future__ import annotations

MIN_SIDE = 4


def downsample_plan(height: int, width: int, min_side: int = MIN_SIDE) -> list[tuple[int, int]]:
    """Sizes after each stride-2 stage (kernel 3, padding 1) until both sides are <= min_side.

    ``downsample_plan(28, 28) == [(28, 28), (14, 14), (7, 7), (4, 4)]``; the first
    entry is the input size. A side shrinks as ``(s - 1) // 2 + 1``.
    """
    sizes = [(height, width)]
    while max(sizes[-1]) > min_side:
        h, w = sizes[-1]
        sizes.append(((h - 1) // 2 + 1, (w - 1) // 2 + 1))
    return sizes


def output_padding(small: tuple[int, int], large: tuple[int, int]) -> tuple[int, int]:
    """Output padding that makes ConvTranspose2d(k=3, s=2, p=1) map ``small`` to ``large``."""
    return (large[0] - (2 * small[0] - 1), large[1] - (2 * small[1] - 1))


def stage_channels(width: int, stages: int, cap: int = 4) -> list[int]:
    """Channels per stage: doubling from ``width`` and capped at ``cap * width``."""
    return [width * min(2**i, cap) for i in range(stages + 1)]


def halving_plan(height: int, width: int, max_side: int = 8) -> list[tuple[int, int]]:
    """Sizes after each stride-2 4x4 convolution (padding 1: a side ``s`` becomes ``s // 2``).

    Halves until both sides are <= ``max_side``, at least once (unless a side is
    already 1, where no convolution fits): ``halving_plan(28, 28) == [(28, 28),
    (14, 14), (7, 7)]``, ``halving_plan(8, 8) == [(8, 8), (4, 4)]``. The first entry
    is the input size.
    """
    sizes = [(height, width)]
    while min(sizes[-1]) >= 2 and (len(sizes) == 1 or max(sizes[-1]) > max_side):
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    return sizes


def doubling_padding(small: tuple[int, int], large: tuple[int, int]) -> tuple[int, int]:
    """Output padding that makes ConvTranspose2d(k=4, s=2, p=1) map ``small`` to ``large``."""
    return (large[0] - 2 * small[0], large[1] - 2 * small[1])
