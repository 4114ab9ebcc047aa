"""VideoFileSource on clips encoded in the test, and on the shared vtest.avi."""

from __future__ import annotations

import itertools
import logging

import av
import numpy as np
import pytest

from perception.io.frame import SourceError
from perception.io.video import VideoFileSource


@pytest.fixture
def colour_error(clip_colour):
    """``colour_error(image, i)``: largest channel difference from the colour frame ``i`` was encoded with."""
    return lambda image, i: int(np.abs(image.astype(np.int16) - clip_colour(i).astype(np.int16)).max())


@pytest.mark.parametrize("name,codec,fmt", [("c.mp4", "h264", None), ("c.avi", "mpeg4", None),
                                            ("c.ts", "mpeg4", "mpegts"), ("c.mkv", "h264", None)])
def test_decodes_every_frame_in_order_with_file_stamps(make_clip, colour_error, name, codec, fmt):
    path = make_clip(name, codec=codec, fmt=fmt, n=20, fps=10)
    source = VideoFileSource(path, frame_id="cam0_optical_frame")
    assert source.size == (64, 48)
    assert source.fps == pytest.approx(10.0)
    assert source.num_frames in (20, None)
    frames = list(source)
    assert len(frames) == 20
    assert [f.seq for f in frames] == list(range(20))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.image.flags["C_CONTIGUOUS"] for f in frames)
    assert max(colour_error(f.image, i) for i, f in enumerate(frames)) <= 12
    stamps = np.array([f.stamp_ns for f in frames])
    assert stamps[0] == 0
    np.testing.assert_allclose(np.diff(stamps), 100_000_000, atol=1_000_000)
    assert frames[0].frame_id == "cam0_optical_frame"


def test_iterating_again_restarts_from_the_first_frame(make_clip):
    source = VideoFileSource(make_clip(n=6))
    first = [f.image for f in source]
    second = [f.image for f in source]
    assert len(first) == len(second) == 6
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_loop_continues_seq_and_stamps_across_passes(make_clip, colour_error):
    source = VideoFileSource(make_clip(n=20, fps=10), loop=True)
    frames = list(itertools.islice(source, 45))
    source.close()
    assert [f.seq for f in frames] == list(range(45))
    stamps = np.array([f.stamp_ns for f in frames])
    np.testing.assert_allclose(np.diff(stamps), 100_000_000, atol=1_000_000)  # no jump back at the loop seams
    assert frames[20].meta["index"] == 0 and frames[40].meta["index"] == 0
    assert colour_error(frames[20].image, 0) <= 12 and colour_error(frames[44].image, 4) <= 12


def test_close_ends_a_looping_iteration(make_clip):
    source = VideoFileSource(make_clip(n=5), loop=True)
    it = iter(source)
    assert next(it).seq == 0
    source.close()
    assert list(it) == []


def test_opencv_backend_gives_the_same_frames(make_clip):
    path = make_clip(n=10)
    pyav = list(VideoFileSource(path))
    ocv = list(VideoFileSource(path, backend="opencv"))
    assert len(ocv) == 10
    assert max(int(np.abs(a.image.astype(int) - b.image.astype(int)).max()) for a, b in zip(pyav, ocv)) <= 8
    np.testing.assert_allclose([f.stamp_ns for f in ocv], [f.stamp_ns for f in pyav], atol=1_000_000)


def test_decord_backend_missing_is_a_clear_error(make_clip, colour_error):
    try:
        import decord  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="decord is not installed"):
            VideoFileSource(make_clip(n=3), backend="decord")
    else:
        frames = list(VideoFileSource(make_clip(n=3), backend="decord"))
        assert len(frames) == 3 and colour_error(frames[2].image, 2) <= 12


def test_unknown_backend_is_rejected(make_clip):
    with pytest.raises(SourceError, match="unknown video backend 'gstreamer'"):
        VideoFileSource(make_clip(n=3), backend="gstreamer")


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match=r"missing\.mp4: no such file"):
        VideoFileSource(tmp_path / "missing.mp4")


def test_text_file_named_mp4_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(SourceError, match=r"notes\.mp4: not a video"):
        VideoFileSource(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = (np.sin(np.arange(800) / 5.0) * 1000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in itertools.chain(stream.encode(frame), stream.encode()):
            container.mux(packet)
    with pytest.raises(SourceError, match=r"tone\.wav: has no video stream \(streams found: audio\)"):
        VideoFileSource(path)


def test_truncated_body_yields_the_frames_it_has_then_warns(make_clip, colour_error, tmp_path, caplog):
    full = make_clip("full.avi", codec="mpeg4", n=60, width=96, height=64)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    with caplog.at_level(logging.WARNING):
        frames = list(VideoFileSource(cut))
    assert 5 < len(frames) < 60
    assert max(colour_error(f.image, i) for i, f in enumerate(frames)) <= 12  # a clean prefix, in order
    assert any("truncated" in r.getMessage() and "cut.avi" in r.getMessage() for r in caplog.records)


def test_truncated_header_is_an_error_naming_the_file(make_clip, tmp_path):
    full = make_clip("full.avi", codec="mpeg4", n=30)
    cut = tmp_path / "head.avi"
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(SourceError, match=r"head\.avi"):
        VideoFileSource(cut)


@pytest.mark.data
def test_vtest_avi_has_795_frames_of_768x576(shared_file):
    path = shared_file("videos/vtest.avi")
    source = VideoFileSource(path)
    assert source.size == (768, 576) and source.num_frames == 795 and source.fps == pytest.approx(10.0)
    count, last_stamp, mean_first = 0, -1, None
    for frame in source:
        assert frame.image.shape == (576, 768, 3) and frame.stamp_ns > last_stamp
        last_stamp = frame.stamp_ns
        if count == 0:
            mean_first = float(frame.image.mean())
        count += 1
    assert count == 795
    assert last_stamp == 794 * 100_000_000
    assert 60 < mean_first < 200  # real footage, not a black or saturated frame
