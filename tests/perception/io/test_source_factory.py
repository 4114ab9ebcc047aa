"""open_source: each URI form opens the right source, with the config's settings; bad URIs name the accepted forms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from perception.config import SourceConfig, load_config
from perception.io.bag import BagSource
from perception.io.factory import open_source
from perception.io.folder import ImageFolderSource
from perception.io.frame import FrameSource, SourceError
from perception.io.video import VideoFileSource


def test_video_file_by_extension_with_config_settings(make_clip):
    path = make_clip("clip.avi", codec="mpeg4", n=7)
    source = open_source(SourceConfig(uri=str(path), backend="opencv", loop=False, frame_id="f_optical_frame"))
    assert isinstance(source, VideoFileSource) and isinstance(source, FrameSource)
    assert source.backend == "opencv" and source.frame_id == "f_optical_frame" and len(list(source)) == 7


def test_decodable_file_without_a_video_extension_is_a_video(make_clip, tmp_path):
    path = make_clip("clip.mp4", n=5)
    renamed = tmp_path / "recording.bin"
    path.rename(renamed)
    assert isinstance(open_source(SourceConfig(uri=str(renamed))), VideoFileSource)


def test_file_uri_prefix(make_clip):
    path = make_clip(n=3)
    assert isinstance(open_source(SourceConfig(uri=f"file://{path}")), VideoFileSource)


def test_image_folder_with_pattern_and_rate(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 10, 3), 40 * i, np.uint8))
    (tmp_path / "skip.jpg").write_bytes(b"")
    source = open_source(SourceConfig(uri=str(tmp_path), pattern="*.png", folder_fps=4.0))
    assert isinstance(source, ImageFolderSource) and isinstance(source, FrameSource)
    assert source.num_frames == 3 and [f.stamp_ns for f in source] == [0, 250_000_000, 500_000_000]


def test_bag_folder_and_topic(tmp_path):
    types = get_typestore(Stores.LATEST)
    Image = types.types["sensor_msgs/msg/Image"]
    Header = types.types["std_msgs/msg/Header"]
    Time = types.types["builtin_interfaces/msg/Time"]
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        for topic in ("/left/image_raw", "/right/image_raw"):
            conn = writer.add_connection(topic, Image.__msgtype__, typestore=types)
            msg = Image(header=Header(stamp=Time(sec=1, nanosec=0), frame_id="x"), height=2, width=2,
                        encoding="mono8", is_bigendian=0, step=2, data=np.arange(4, dtype=np.uint8))
            writer.write(conn, 1_000_000_000, types.serialize_cdr(msg, Image.__msgtype__))
    source = open_source(SourceConfig(uri=str(tmp_path / "bag"), topic="/right/image_raw"))
    assert isinstance(source, BagSource) and isinstance(source, FrameSource) and source.topic == "/right/image_raw"
    assert open_source(SourceConfig(uri=str(tmp_path / "bag"))).topic == "/left/image_raw"


def test_synthetic_scene_gets_size_length_and_seed():
    source = open_source(SourceConfig(uri="synthetic", width=256, height=192, num_frames=4, seed=3))
    frames = list(source)
    assert len(frames) == 4 and frames[0].image.shape == (192, 256, 3)
    again = list(open_source(SourceConfig(uri="synthetic", width=256, height=192, num_frames=4, seed=3)))
    assert np.array_equal(frames[3].image, again[3].image)


@pytest.mark.parametrize("uri", ["camera:57", "57", "/dev/video57"])
def test_camera_forms_reach_the_camera_source(uri):
    with pytest.raises(SourceError, match=r"/dev/video57 does not exist"):
        open_source(SourceConfig(uri=uri))


def test_stream_url_reaches_the_network_source():
    with pytest.raises(SourceError, match=r"stream 'rtsp://127\.0\.0\.1:9/cam'"):
        open_source(SourceConfig(uri="rtsp://127.0.0.1:9/cam", timeout_s=1.0))


@pytest.mark.parametrize("uri,reason", [("", "uri is empty"), ("gopher://x/y", "unsupported URL scheme"),
                                        ("/no/such/clip.mp4", "no such file or directory")])
def test_bad_uris_name_the_uri_and_the_accepted_forms(uri, reason):
    with pytest.raises(SourceError, match=reason) as info:
        open_source(SourceConfig(uri=uri))
    assert "accepted forms" in str(info.value) and "camera:N" in str(info.value) and uri in str(info.value)


def test_a_file_that_is_nothing_we_read(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(SourceError, match=r"notes\.txt': not a video, bag or image folder.*accepted forms"):
        open_source(SourceConfig(uri=str(path)))


def test_source_settings_load_from_yaml_overrides():
    cfg = load_config({"source": {"uri": "camera:1", "reconnect_attempts": 5}}, ["source.timeout_s=2.5"])
    assert cfg.source.reconnect_attempts == 5 and cfg.source.timeout_s == 2.5 and cfg.source.topic == ""
