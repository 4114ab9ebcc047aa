"""J and F on hand-made masks, with values derived by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from perception.eval.segmentation_metrics import (
    boundary_f_measure,
    boundary_map,
    boundary_precision_recall,
    boundary_tolerance,
    disk_kernel,
    region_similarity,
)


def square(top: int, left: int, size: int = 20, shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_tolerance_is_eight_pixels_at_davis_resolution():
    assert boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.6) = ceil(7.84)
    assert boundary_tolerance((100, 100)) == 2  # ceil(0.008 * 141.4) = ceil(1.13)


def test_disk_kernel_radius_two():
    kernel = disk_kernel(2)
    assert kernel.shape == (5, 5)
    assert kernel.sum() == 13  # x^2 + y^2 <= 4: centre, 4 at distance 1, 4 diagonals, 4 at distance 2
    assert kernel[0, 2] == 1 and kernel[0, 1] == 0


def test_boundary_of_a_square_is_the_outline_one_pixel_up_left():
    # each pixel that differs from its right, lower or lower-right neighbour: the 21x21 ring from (9, 9) to (29, 29)
    b = boundary_map(square(10, 10))
    ring = np.zeros_like(b)
    ring[9:30, 9:30] = True
    ring[10:29, 10:29] = False
    assert np.array_equal(b, ring)
    assert b.sum() == 80


@pytest.mark.parametrize("shift, j_expected", [(0, 1.0), (4, 16 / 24), (6, 14 / 26)])
def test_region_similarity_of_shifted_squares(shift, j_expected):
    # intersection 20 * (20 - k), union 800 - 20 * (20 - k): J = (20 - k) / (20 + k)
    assert region_similarity(square(10, 10 + shift), square(10, 10)) == pytest.approx(j_expected, abs=1e-12)


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_f_is_one_within_the_tolerance(shift):
    # every boundary pixel has its counterpart exactly `shift` pixels away
    assert boundary_f_measure(square(10, 10 + shift), square(10, 10), tolerance=2) == 1.0


def test_f_beyond_the_tolerance_matches_the_hand_count():
    # shift 6, tolerance 2. Predicted ring: rows 9 and 29 over cols 15..35, cols 15 and 35 over rows 10..28.
    # Matched: top and bottom rows cols 15..31 (on the gt row, or <= 2 px past its end at col 29): 2 * 17;
    # col 15 rows 10, 11, 27, 28 (<= 2 px from the gt top/bottom rows): 4; col 35: none. P = 38 / 80; R likewise.
    precision, recall = boundary_precision_recall(square(10, 16), square(10, 10), tolerance=2)
    assert precision == pytest.approx(38 / 80)
    assert recall == pytest.approx(38 / 80)
    assert boundary_f_measure(square(10, 16), square(10, 10), tolerance=2) == pytest.approx(0.475)


def test_asymmetric_precision_and_recall():
    # prediction = gt plus a far-away blob: recall stays 1, precision = 80 / (80 + 40) (blob ring of 11x11 = 40 px)
    gt = square(10, 10)
    pred = gt.copy()
    pred[70:80, 70:80] = True
    precision, recall = boundary_precision_recall(pred, gt, tolerance=2)
    assert recall == 1.0
    assert precision == pytest.approx(80 / 120)


def test_empty_cases_follow_davis():
    empty, full = np.zeros((50, 60), bool), square(5, 5, 10, (50, 60))
    assert region_similarity(empty, empty) == 1.0
    assert boundary_f_measure(empty, empty) == 1.0
    assert region_similarity(empty, full) == 0.0
    assert boundary_precision_recall(empty, full) == (1.0, 0.0)
    assert boundary_f_measure(empty, full) == 0.0
    assert boundary_precision_recall(full, empty) == (0.0, 1.0)
    assert boundary_f_measure(full, empty) == 0.0


def test_whole_image_mask_has_no_boundary():
    full = np.ones((40, 40), bool)
    assert boundary_map(full).sum() == 0
    assert region_similarity(full, full) == 1.0 and boundary_f_measure(full, full) == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        region_similarity(np.zeros((4, 5), bool), np.zeros((5, 4), bool))
