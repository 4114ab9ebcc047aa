"""ImageFolderSource on folders written in the test and on a DAVIS sequence."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from perception.io.folder import ImageFolderSource, natural_key
from perception.io.frame import SourceError


def write_images(folder, colour, count, ext=".png", size=(40, 30), prefix="frame"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rgb = np.empty((size[1], size[0], 3), np.uint8)
        rgb[:] = colour(i)
        rgb[0, 0] = (255, 0, 0)  # a red corner pixel: catches a BGR/RGB swap even where the colour is symmetric
        cv2.imwrite(str(folder / f"{prefix}{i}{ext}"), rgb[:, :, ::-1])
    return folder


def test_reads_in_natural_order_as_rgb_with_stamps_from_fps(tmp_path, clip_colour):
    folder = write_images(tmp_path / "seq", clip_colour, 12)  # frame10 must come after frame9, not after frame1
    source = ImageFolderSource(folder, fps=5.0, frame_id="cam_optical_frame")
    assert source.size == (40, 30) and source.num_frames == 12 and source.fps == 5.0
    frames = list(source)
    assert [f.meta["path"].rsplit("/", 1)[-1] for f in frames][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert frames[10].meta["path"].endswith("frame10.png")
    for i, frame in enumerate(frames):
        assert np.array_equal(frame.image[5, 5], clip_colour(i))  # PNG is lossless: exact colours
        assert tuple(frame.image[0, 0]) == (255, 0, 0)
    assert [f.stamp_ns for f in frames[:3]] == [0, 200_000_000, 400_000_000]
    assert frames[0].frame_id == "cam_optical_frame"


def test_pattern_selects_files_and_other_files_are_ignored(tmp_path, clip_colour):
    folder = write_images(tmp_path / "mixed", clip_colour, 4, ext=".jpg", prefix="left")
    write_images(folder, clip_colour, 3, ext=".png", prefix="right")
    (folder / "notes.txt").write_text("not an image")
    assert ImageFolderSource(folder).num_frames == 7
    right = ImageFolderSource(folder, pattern="right*")
    assert right.num_frames == 3 and all("right" in f.meta["path"] for f in right)


def test_loop_keeps_stamps_increasing(tmp_path, clip_colour):
    source = ImageFolderSource(write_images(tmp_path / "loop", clip_colour, 3), fps=10.0, loop=True)
    frames = list(itertools.islice(source, 7))
    assert [f.seq for f in frames] == list(range(7))
    assert [f.meta["index"] for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert np.all(np.diff([f.stamp_ns for f in frames]) == 100_000_000)


def test_errors_name_the_folder_or_file(tmp_path, clip_colour):
    with pytest.raises(SourceError, match="not a directory"):
        ImageFolderSource(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty: no images matching '\*'"):
        ImageFolderSource(tmp_path / "empty")
    folder = write_images(tmp_path / "bad", clip_colour, 2)
    (folder / "frame2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(SourceError, match=r"frame2\.png: cannot read as an image"):
        list(ImageFolderSource(folder))
    with pytest.raises(SourceError, match="fps must be > 0"):
        ImageFolderSource(folder, fps=0)


def test_a_differently_sized_image_is_an_error(tmp_path, clip_colour):
    folder = write_images(tmp_path / "sizes", clip_colour, 2)
    write_images(folder, clip_colour, 3, size=(20, 10), prefix="x")
    with pytest.raises(SourceError, match=r"x0\.png: size 20x10 differs from the first image's 40x30"):
        list(ImageFolderSource(folder))


def test_natural_key_orders_numbers_by_value(tmp_path):
    names = ["img10.png", "img2.png", "img1.png", "IMG3.png"]
    assert [p.name for p in sorted((tmp_path / n for n in names), key=natural_key)] == [
        "img1.png", "img2.png", "IMG3.png", "img10.png"]


@pytest.mark.data
def test_davis_sequence(shared_file):
    folder = shared_file("davis2016/JPEGImages/480p/car-roundabout")
    source = ImageFolderSource(folder, pattern="*.jpg", fps=24.0)
    assert source.num_frames == 75 and source.size == (854, 480)
    frames = list(itertools.islice(source, 3))
    assert frames[0].image.shape == (480, 854, 3)
    assert frames[0].meta["path"].endswith("00000.jpg") and frames[2].meta["path"].endswith("00002.jpg")
