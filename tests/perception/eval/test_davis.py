"""DAVIS loading (layout, errors) and the rgb baseline pinned on a slice of the real car-roundabout sequence."""

from __future__ import annotations

import numpy as np
import pytest

from perception.eval.davis import DavisError, list_sequences, load_sequence
from perception.eval.features import LabColourFeatures
from perception.eval.propagate import evaluate_sequence


def test_loads_frames_and_masks(make_davis):
    root = make_davis({"sq-a": 4, "sq-b": 3})
    assert list_sequences(root) == ["sq-a", "sq-b"]
    seq = load_sequence(root, "sq-a")
    assert seq.frames.shape == (4, 72, 100, 3) and seq.frames.dtype == np.uint8
    assert seq.masks.shape == (4, 72, 100) and seq.masks.dtype == bool
    assert seq.masks[0].sum() == 24 * 24 and seq.masks[0, 20, 16] and not seq.masks[0, 19, 16]
    red = seq.frames[0, 30, 25]
    assert red[0] > 200 and red[2] < 60  # frames are RGB
    assert len(load_sequence(root, "sq-a", max_frames=2)) == 2


def test_errors_name_the_problem(tmp_path, make_davis):
    with pytest.raises(DavisError, match="JPEGImages/480p"):
        list_sequences(tmp_path)
    root = make_davis({"sq-a": 3})
    with pytest.raises(DavisError, match=r"'nope' not found .*available: sq-a"):
        load_sequence(root, "nope")
    (root / "Annotations" / "480p" / "sq-a" / "00001.png").unlink()
    with pytest.raises(DavisError, match=r"00001.jpg has no mask .*00001.png"):
        load_sequence(root, "sq-a")


def test_rgb_baseline_on_real_car_roundabout_slice(shared_data):
    root = shared_data / "davis2016"
    if not (root / "JPEGImages" / "480p" / "car-roundabout").is_dir():
        pytest.skip(f"DAVIS car-roundabout not found under {root}")
    seq = load_sequence(root, "car-roundabout", max_frames=10)
    assert seq.frames.shape == (10, 480, 854, 3)
    scores = evaluate_sequence(seq, LabColourFeatures())
    # pinned from this implementation, which reproduces EVAL_PROTOCOL's full-sequence references (0.549 / 0.579)
    assert scores["J"] == pytest.approx(0.7696, abs=2e-3)
    assert scores["F"] == pytest.approx(0.4613, abs=2e-3)
    assert scores["JF"] == pytest.approx(0.6154, abs=2e-3)
