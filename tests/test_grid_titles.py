"""Column titles above a grid: every title stays in its own column and on the page."""

from __future__ import annotations

import numpy as np

from vaekit.images import TITLE_BAND, add_titles, column_centres


def _ink_columns(picture: np.ndarray) -> np.ndarray:
    """x of every dark pixel in the title band."""
    return np.nonzero((picture[:TITLE_BAND, :, 0] < 128).any(0))[0]


def test_a_long_title_is_drawn_inside_its_column_and_a_times_sign_is_a_letter():
    grid = np.full((64, 3 * 68, 3), 200, dtype=np.uint8)
    centres = column_centres(3, 32, scale=2)
    width = centres[1] - centres[0]
    long = add_titles(grid, ["", "", "add ~smiling and not eyeglasses ×1.5"], centres)
    ink = _ink_columns(long)
    assert len(ink) and ink.min() >= centres[2] - width / 2 - 1
    assert ink.max() <= centres[2] + width / 2 + 1  # shortened to its column
    times = add_titles(grid, ["", "", "add smiling ×1.5"], centres)
    plain = add_titles(grid, ["", "", "add smiling x1.5"], centres)
    np.testing.assert_array_equal(times, plain)  # no box for a glyph the font lacks
    short = add_titles(grid, ["original", "", ""], centres)
    ink = _ink_columns(short)
    assert ink.max() <= centres[0] + width / 2  # fits as it is: centred on its column
    assert abs((ink.min() + ink.max()) / 2 - centres[0]) <= 2
