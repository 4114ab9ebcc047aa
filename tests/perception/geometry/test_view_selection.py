"""View selection: blurred views and near-duplicates are dropped with a reason; the kept set is spread out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.geometry.chessboard import BoardView, Chessboard, detect_board
from perception.geometry.view_selection import coverage, select_views

BOARD = Chessboard(9, 6, 0.025)


def _shifted(view: BoardView, name: str, dx: float, blur: float | None = None) -> BoardView:
    return BoardView(name, view.corners + np.float32(dx), view.image_size, view.blur_px if blur is None else blur)


@pytest.fixture
def view(distorted_camera, board_renderer) -> BoardView:
    image = board_renderer(distorted_camera, np.array([0.1, -0.2, 0.05]), np.array([-0.1, -0.06, 0.32]),
                           supersample=1)
    found = detect_board(image, BOARD, "base")
    assert found is not None
    return found


def test_blur_measure_sees_a_blurred_board(distorted_camera, board_renderer):
    image = board_renderer(distorted_camera, np.zeros(3), np.array([-0.1, -0.06, 0.3]), supersample=1)
    sharp = detect_board(image, BOARD)
    blurred = detect_board(cv2.GaussianBlur(image, (0, 0), 3.0), BOARD)
    assert sharp is not None and blurred is not None
    assert sharp.blur_px < 3.0 < blurred.blur_px


def test_blurred_views_and_near_duplicates_are_dropped_with_reasons(view):
    views = [view, _shifted(view, "still", 2.0, blur=view.blur_px + 0.5),  # board held still, a little blurrier
             _shifted(view, "moved", 40.0), _shifted(view, "smeared", -40.0, blur=7.5)]
    selection = select_views(views, BOARD, max_blur_px=5.0)
    assert [v.name for v in selection.kept] == ["base", "moved"]  # input order
    assert selection.rejected == {"still": "near-duplicate of base",
                                  "smeared": "blurred (edge width 7.50 px > 5)"}


def test_the_sharpest_of_near_duplicates_is_kept(view):
    views = [_shifted(view, "a", 0.0, blur=3.0), _shifted(view, "b", 1.0, blur=2.0), _shifted(view, "c", 2.0, 2.5)]
    selection = select_views(views, BOARD)
    assert [v.name for v in selection.kept] == ["b"]


def test_max_views_keeps_the_most_spread_out(view):
    views = [_shifted(view, f"x{dx:+d}", float(dx)) for dx in range(-60, 61, 12)]  # 11 views along x
    selection = select_views(views, BOARD, max_views=3)
    assert sorted(v.name for v in selection.kept) == ["x+0", "x+60", "x-60"]  # the middle and both extremes
    assert len(selection.rejected) == 8 and all("max_views=3" in r for r in selection.rejected.values())


def test_coverage_counts_grid_cells_and_spans(view):
    one = coverage([view], BOARD)
    assert 0.1 < one["cells_covered"] < 0.8
    spread = coverage([view, _shifted(view, "l", -120.0), _shifted(view, "r", 120.0)], BOARD)
    assert spread["cells_covered"] > one["cells_covered"]
    assert spread["x_span"][1] - spread["x_span"][0] == pytest.approx(240 / 640, abs=1e-3)
    assert coverage([], BOARD)["cells_covered"] == 0.0
