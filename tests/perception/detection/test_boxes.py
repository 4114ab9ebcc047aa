"""Box geometry: values derived by hand."""

from __future__ import annotations

import numpy as np
import pytest

from perception.detection.boxes import (
    box_area, clip_boxes, containment_matrix, cxcywh_to_xywh, iou_matrix, nms, xywh_to_cxcywh, xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_iou_by_hand() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 10, 10], [0, 0, 10, 10], [20, 20, 5, 5], [2, 2, 0, 5]], np.float32)
    # overlap 5x10 = 50, union 150 -> 1/3; identical -> 1; disjoint -> 0; zero width -> 0
    assert np.allclose(iou_matrix(a, b), [[1 / 3, 1.0, 0.0, 0.0]])
    assert iou_matrix(a, np.zeros((0, 4))).shape == (1, 0)
    # inner box 5x5 fully inside: containment 1, IoU 25/100
    inner = np.array([[2, 2, 5, 5]])
    assert np.allclose(containment_matrix(a, inner), [[1.0]])
    assert np.allclose(iou_matrix(a, inner), [[0.25]])


def test_conversions_round_trip_and_clip() -> None:
    boxes = np.array([[1.5, 2.0, 3.0, 4.0], [-5, -5, 10, 20]])
    assert np.allclose(xywh_to_xyxy(boxes), [[1.5, 2, 4.5, 6], [-5, -5, 5, 15]])
    assert np.allclose(xyxy_to_xywh(xywh_to_xyxy(boxes)), boxes)
    assert np.allclose(xywh_to_cxcywh(boxes)[0], [3.0, 4.0, 3.0, 4.0])
    assert np.allclose(cxcywh_to_xywh(xywh_to_cxcywh(boxes)), boxes)
    assert np.allclose(clip_boxes(boxes, 8, 10), [[1.5, 2, 3, 4], [0, 0, 5, 10]])
    assert np.allclose(clip_boxes([[20, 20, 5, 5]], 8, 10), [[8, 10, 0, 0]])
    assert np.allclose(box_area(boxes), [12, 200])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        iou_matrix(np.zeros((2, 3)), np.zeros((1, 4)))


def test_nms_greedy_in_score_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [20, 0, 10, 10], [0, 5, 10, 10]], np.float32)
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    # box 1 (0.9) kept; box 0 has IoU 90/110 with it -> suppressed; box 3 IoU with box 1: 9*5=45/(200-45)=0.29 -> kept
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.2).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    # equal scores: earlier index first
    assert nms(boxes[:2], np.array([0.5, 0.5]), 0.5).tolist() == [0]
    with pytest.raises(ValueError, match="scores"):
        nms(boxes, scores[:2], 0.5)
