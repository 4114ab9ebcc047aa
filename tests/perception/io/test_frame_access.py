"""read_frames: random access by index must give exactly the frames a sequential decode gives."""

from __future__ import annotations

import numpy as np
import pytest

from perception.io.frame import SourceError
from perception.io.frame_access import SEEK_AHEAD, read_frames
from perception.io.video import VideoFileSource


def sequential(path) -> np.ndarray:
    return np.stack([f.image for f in VideoFileSource(path)])


@pytest.mark.parametrize("name,codec", [("long.mp4", "h264"), ("long.avi", "mpeg4"), ("long.mkv", "h264")])
def test_random_indices_match_sequential_decode(make_clip, name, codec):
    # long enough that far targets are reached by seeking, with keyframes every 7 frames
    n = 3 * SEEK_AHEAD + 10
    path = make_clip(name, codec=codec, n=n, gop=7)
    reference = sequential(path)
    assert len(reference) == n
    indices = [n - 1, 3, 3, 0, SEEK_AHEAD * 2 + 5, 71, 1, SEEK_AHEAD * 3]
    got = read_frames(path, indices, backend="pyav")
    assert got.shape == (len(indices), 48, 64, 3) and got.dtype == np.uint8
    for row, index in zip(got, indices):
        assert np.array_equal(row, reference[index]), f"frame {index} differs"


def test_index_past_the_end_names_the_file_and_count(make_clip):
    path = make_clip(n=12)
    with pytest.raises(SourceError, match=r"clip\.mp4: frame index 12 is out of range \(the video has 12"):
        read_frames(path, [2, 12], backend="pyav")


def test_bad_indices_are_rejected(make_clip):
    path = make_clip(n=4)
    with pytest.raises(SourceError, match="must be >= 0"):
        read_frames(path, [1, -1], backend="pyav")
    with pytest.raises(SourceError, match="1-D sequence of integers"):
        read_frames(path, [[0, 1]], backend="pyav")


def test_empty_request_gives_an_empty_batch_of_the_right_size(make_clip):
    out = read_frames(make_clip(n=4), [], backend="pyav")
    assert out.shape == (0, 48, 64, 3)


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_frames(tmp_path / "nope.mp4", [0])


@pytest.mark.data
def test_vtest_random_access_matches_sequential(shared_file):
    path = shared_file("videos/vtest.avi")
    indices = [700, 5, 301, 302, 794]
    got = read_frames(path, indices, backend="pyav")
    wanted = set(indices)
    reference = {f.seq: f.image for f in VideoFileSource(path) if f.seq in wanted}
    for row, index in zip(got, indices):
        assert np.array_equal(row, reference[index]), f"vtest frame {index} differs"
