"""``open_source(cfg)``: the one place that turns a ``SourceConfig.uri`` into a ``FrameSource``.

Accepted forms, checked in this order:

* ``synthetic``: the seeded synthetic scene with ground truth (``width``, ``height``, ``num_frames``, ``seed``);
* ``camera:N``, ``N`` (digits) or ``/dev/videoN``: a local camera;
* a URL (``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``, ...): a network stream;
* a directory holding ``metadata.yaml``, or a ``.mcap``/``.db3`` file: a rosbag2 bag;
* any other directory: an image folder;
* a file with a video extension, or any file FFmpeg can decode a video stream from: a video file.
"""

from __future__ import annotations

import re
from pathlib import Path

from perception.config import SourceConfig
from perception.io.frame import FrameSource, SourceError

ACCEPTED_FORMS = ("'synthetic', 'camera:N', 'N', '/dev/videoN', a stream URL (rtsp://, http(s)://, udp://, tcp://), "
                  "a rosbag2 folder (with metadata.yaml) or .mcap/.db3 file, an image folder, or a video file")


def _is_camera(uri: str) -> bool:
    return bool(re.fullmatch(r"(camera:)?\d+", uri) or re.fullmatch(r"/dev/video\d+", uri))


def _open_synthetic(cfg: SourceConfig) -> FrameSource:
    from perception.io.synthetic import SyntheticScene  # noqa: PLC0415 (built by its own module, loaded on use)

    return SyntheticScene(width=cfg.width, height=cfg.height, num_frames=cfg.num_frames, seed=cfg.seed,
                          frame_id=cfg.frame_id)


def _open_camera(cfg: SourceConfig) -> FrameSource:
    from perception.io.camera import CameraSource  # noqa: PLC0415

    return CameraSource(cfg.uri, reconnect_attempts=cfg.reconnect_attempts, backoff_s=cfg.reconnect_backoff_s,
                        frame_id=cfg.frame_id)


def _open_stream(cfg: SourceConfig) -> FrameSource:
    from perception.io.network import NetworkStreamSource  # noqa: PLC0415

    return NetworkStreamSource(cfg.uri, timeout_s=cfg.timeout_s, rtsp_transport=cfg.rtsp_transport,
                               frame_id=cfg.frame_id)


def _open_path(cfg: SourceConfig, path: Path) -> FrameSource:
    from perception.io.bag import BagSource, is_bag  # noqa: PLC0415
    from perception.io.folder import ImageFolderSource  # noqa: PLC0415
    from perception.io.video import VIDEO_EXTENSIONS, VideoFileSource  # noqa: PLC0415

    if is_bag(path):
        return BagSource(path, topic=cfg.topic or None, loop=cfg.loop, frame_id=cfg.frame_id)
    if path.is_dir():
        return ImageFolderSource(path, pattern=cfg.pattern, fps=cfg.folder_fps, loop=cfg.loop, frame_id=cfg.frame_id)
    try:
        return VideoFileSource(path, backend=cfg.backend, loop=cfg.loop, frame_id=cfg.frame_id)
    except SourceError as exc:
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            raise  # a video by its name: the decoder's reason is the useful message
        raise SourceError(f"source '{cfg.uri}': not a video, bag or image folder ({exc}); accepted forms: "
                          f"{ACCEPTED_FORMS}") from exc


def open_source(cfg: SourceConfig) -> FrameSource:
    """Open the source ``cfg.uri`` names; ``SourceError`` naming the uri and the accepted forms when none fits."""
    uri = cfg.uri.strip()
    if not uri:
        raise SourceError(f"source uri is empty; accepted forms: {ACCEPTED_FORMS}")
    if uri == "synthetic":
        return _open_synthetic(cfg)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if _is_camera(uri):
        return _open_camera(cfg)
    if "://" in uri:
        from perception.io.network import is_stream_url  # noqa: PLC0415

        if not is_stream_url(uri):
            raise SourceError(f"source '{uri}': unsupported URL scheme; accepted forms: {ACCEPTED_FORMS}")
        return _open_stream(cfg)
    path = Path(uri).expanduser()
    if not path.exists():
        raise SourceError(f"source '{uri}': no such file or directory; accepted forms: {ACCEPTED_FORMS}")
    return _open_path(cfg, path)
