"""Label propagation: the vectorised propagator against a direct loop, and sequences whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.eval.davis import DavisSequence
from perception.eval.features import LabColourFeatures
from perception.eval.segmentation_metrics import region_similarity
from perception.eval.propagate import (
    PropagationParams,
    _column_tiles,
    _tile_chunk,
    WindowedPropagator,
    evaluate_sequence,
    first_frame_label,
    pad_to_stride,
    propagate_masks,
    soft_to_mask,
)


def direct_propagation(query, keys, labels, radius, k, temperature):
    """The protocol written as loops: every in-grid window cell of every context frame, joint top-k, softmax."""
    _, h, w = query.shape
    out = torch.zeros(labels.shape[1], h, w)
    for i in range(h):
        for j in range(w):
            sims, labs = [], []
            for t in range(keys.shape[0]):
                for a in range(max(0, i - radius), min(h, i + radius + 1)):
                    for b in range(max(0, j - radius), min(w, j + radius + 1)):
                        sims.append(float(query[:, i, j] @ keys[t, :, a, b]))
                        labs.append(labels[t, :, a, b])
            values, index = torch.tensor(sims).topk(k)
            weights = torch.softmax(values / temperature, 0)
            out[:, i, j] = sum(weights[n] * labs[index[n]] for n in range(k))
    return out


@pytest.mark.parametrize("radius, tile, max_elements", [(2, 1, 10**7), (3, 4, 500), (3, 5, 10**7), (4, 16, 10**7)])
def test_propagator_equals_the_direct_loop(radius, tile, max_elements):
    gen = torch.Generator().manual_seed(radius * 10 + tile)
    query = torch.nn.functional.normalize(torch.randn(4, 9, 14, generator=gen), dim=0)
    keys = torch.nn.functional.normalize(torch.randn(3, 4, 9, 14, generator=gen), dim=1)
    labels = torch.rand(3, 2, 9, 14, generator=gen)
    expected = direct_propagation(query, keys, labels, radius, 5, 0.1)
    params = PropagationParams(radius=radius, tile=tile, max_elements=max_elements)
    got = WindowedPropagator(params)(query, keys, labels)
    assert got.shape == (2, 9, 14)
    assert torch.allclose(got, expected, atol=1e-5)


def test_propagator_copies_the_label_of_identical_features():
    # every cell has a distinct direction; the query equals context frame 0 shifted by nothing: a cell's own label
    # gets the largest weight, so with temperature tiny the output is the label itself
    gen = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(16, 6, 7, generator=gen), dim=0)
    labels = torch.rand(1, 2, 6, 7, generator=gen)
    params = PropagationParams(radius=2, topk=1, temperature=0.1, tile=2)
    out = WindowedPropagator(params)(feats, feats[None], labels)
    assert torch.allclose(out, labels[0])


def test_padding_and_first_label():
    image = np.arange(480 * 854, dtype=np.int64).reshape(480, 854)
    padded = pad_to_stride(image)
    assert padded.shape == (480, 856)
    assert np.array_equal(padded[:, 854], image[:, 853]) and np.array_equal(padded[:, 855], image[:, 853])
    mask = np.zeros((16, 20), bool)
    mask[0:4, 0:8] = True  # cell (0, 0): 32 of 64 pixels; the right column of cells is padded from column 19
    mask[8:16, 19] = True  # cell (1, 2): columns 16..19 plus 4 edge copies of column 19 -> 5 of 8 columns
    label = first_frame_label(mask)
    assert label.shape == (2, 2, 3)
    assert label[1, 0, 0] == pytest.approx(0.5) and label[1, 1, 2] == pytest.approx(5 / 8)
    assert torch.allclose(label.sum(0), torch.ones(2, 3))


def test_soft_to_mask_crops_and_breaks_ties_to_background():
    label = torch.zeros(2, 2, 3)
    label[1, :, 2] = 1.0  # last column of cells foreground
    label[0, :, :2] = 1.0
    mask = soft_to_mask(label, 16, 20)
    assert mask.shape == (16, 20)
    assert mask[:, 19].all() and not mask[:, :12].any()
    assert not soft_to_mask(torch.full((2, 2, 3), 0.5), 16, 20).any()


def translating_square(n_frames: int = 12, height: int = 92, width: int = 150, step: int = 3, top: int = 30,
                       left: int = 20) -> DavisSequence:
    """A red 24x24 square moving right by ``step`` px per frame over a blue background (sizes not multiples of 8)."""
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    masks = np.zeros((n_frames, height, width), bool)
    frames[:] = (40, 90, 200)
    for t in range(n_frames):
        x = left + step * t
        frames[t, top:top + 24, x:x + 24] = (230, 40, 30)
        masks[t, top:top + 24, x:x + 24] = True
    return DavisSequence("square", frames, masks)


def grid_ceiling(mask: np.ndarray) -> np.ndarray:
    """The best a stride-8 readout can do: the mask pooled to the grid and upsampled back."""
    return soft_to_mask(first_frame_label(mask), *mask.shape)


def test_cell_aligned_square_is_copied_exactly():
    # pure-colour cells, one cell of motion per frame: each prediction is the ground truth seen through the grid
    # (bilinear upsampling rounds the square's corners: 552 of its 576 pixels, J = 552 / 576)
    sequence = translating_square(step=8, top=32, left=24)
    for t, mask in propagate_masks(sequence.frames, sequence.masks[0], LabColourFeatures()):
        assert np.array_equal(mask, grid_ceiling(sequence.masks[t])), t
        assert mask.sum() == 552
    assert evaluate_sequence(sequence, LabColourFeatures())["J"] == pytest.approx(552 / 576)


def test_translating_square_is_followed():
    sequence = translating_square()
    predicted = dict(propagate_masks(sequence.frames, sequence.masks[0], LabColourFeatures()))
    assert sorted(predicted) == list(range(1, 12))
    for t, mask in predicted.items():
        assert mask.shape == (92, 150)
        assert np.argwhere(mask).mean(axis=0) == pytest.approx((41.5, 31.5 + 3 * t), abs=2.0)
    scores = evaluate_sequence(sequence, LabColourFeatures())
    ceiling = np.mean([region_similarity(grid_ceiling(m), m) for m in sequence.masks[1:]])  # 0.845
    assert scores["J"] > 0.97 * ceiling and min(scores["J_per_frame"]) > 0.78  # measured 0.830, min 0.798
    assert scores["F"] > 0.9  # measured 0.916
    assert scores["JF"] == pytest.approx((scores["J"] + scores["F"]) / 2)
    assert len(scores["J_per_frame"]) == 11  # all frames but the first


def test_static_background_only_sequence_predicts_nothing():
    sequence = translating_square(n_frames=4)
    empty = np.zeros_like(sequence.masks)
    scores = evaluate_sequence(DavisSequence("empty", sequence.frames, empty), LabColourFeatures())
    assert scores["J"] == 1.0 and scores["F"] == 1.0  # empty gt, empty prediction


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 40])
def test_tile_chunks_equal_the_whole_patch_tensor(chunk):
    """The key patches copied a chunk at a time (chunks crossing tile rows included) are exactly the patches the
    propagator used to materialise all at once (a ~1.8 GB tensor on a full DAVIS frame)."""
    torch.manual_seed(0)
    keys = torch.randn(3, 5, 9, 7)
    tiles = _column_tiles(keys, 4, 2, validity=True)              # view (nh, w, C + 1, T, K, A)
    nh, w = tiles.shape[:2]
    whole = tiles.reshape(nh * w, *tiles.shape[2:])              # the old materialisation
    got = torch.cat([_tile_chunk(tiles, lo, min(lo + chunk, nh * w)) for lo in range(0, nh * w, chunk)])
    assert got.shape == (nh * w, 6, 3, 8, 5) and torch.equal(got, whole)
    assert tiles.untyped_storage().nbytes() < whole.untyped_storage().nbytes() / 4   # the view copies nothing
