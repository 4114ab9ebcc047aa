import av
import numpy as np
import pytest

from perception.detection.types import Detections
from perception.io.frame import Frame
from perception.runtime.result import PerceptionResult
from perception.runtime.sinks import JsonLinesSink, MemorySink, OverlayVideoSink, read_json_lines
from perception.runtime.video_writer import VideoWriter


def _pair(seq: int, width: int = 96, height: int = 64) -> tuple[PerceptionResult, Frame]:
    image = np.full((height, width, 3), 40 + 10 * seq, np.uint8)
    det = Detections(boxes=np.array([[4.0 + seq, 8.0, 20.0, 16.5]], np.float32), scores=np.array([0.75], np.float32),
                     track_ids=np.array([seq % 2], np.int64), class_ids=["object"])
    result = PerceptionResult(stamp_ns=1_000_000_000 + seq * 33_333_333, frame_id="cam", seq=seq, detections=det,
                              keyframe=seq % 4 == 0, timings_ms={"encoder": 12.5, "total": 20.25})
    return result, Frame(image=image, stamp_ns=result.stamp_ns, frame_id="cam", seq=seq)


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_json_lines_parse_back(tmp_path):
    sink = JsonLinesSink(tmp_path / "det.jsonl")
    for seq in range(3):
        sink.write(*_pair(seq))
    sink.close()
    records = read_json_lines(tmp_path / "det.jsonl")
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert records[1]["stamp_ns"] == 1_033_333_333 and records[1]["frame_id"] == "cam"
    assert records[0]["keyframe"] is True and records[1]["keyframe"] is False
    assert records[2]["detections"] == [{"box": [6.0, 8.0, 20.0, 16.5], "score": 0.75, "track_id": 0,
                                         "class_id": "object"}]
    assert records[0]["timings_ms"] == {"encoder": 12.5, "total": 20.25}
    with pytest.raises(RuntimeError, match="after close"):
        sink.write(*_pair(3))


def test_overlay_video_decodes_to_the_frame_count(tmp_path):
    path = tmp_path / "overlay.mp4"
    sink = OverlayVideoSink(path, fps=10.0)
    for seq in range(7):
        sink.write(*_pair(seq))
    assert not path.exists()  # written under a temporary name until closed
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.mp4"]
    frames = _decode(path)
    assert len(frames) == 7 and frames[0].shape == (64, 96, 3)
    # the box drawn by the sink is visible in the decoded video (colour of track 0 on the left edge, x=4)
    assert np.abs(frames[0][20, 4].astype(int) - frames[0][20, 60].astype(int)).max() > 60


def test_video_writer_pads_odd_sizes_and_aborts_cleanly(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", fps=5.0) as writer:
        for i in range(3):
            writer.write(np.full((51, 75, 3), 100, np.uint8))
    frames = _decode(tmp_path / "odd.mp4")
    assert len(frames) == 3 and frames[0].shape == (52, 76, 3)
    assert abs(int(frames[1][25, 37, 0]) - 100) < 6
    with pytest.raises(ZeroDivisionError):
        with VideoWriter(tmp_path / "broken.mp4", fps=5.0) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise ZeroDivisionError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]  # neither the target nor a temp file left
    with pytest.raises(ValueError, match="32x32"):
        with VideoWriter(tmp_path / "sizes.mp4", fps=5.0) as writer:
            writer.write(np.zeros((32, 48, 3), np.uint8))
            writer.write(np.zeros((32, 32, 3), np.uint8))


def test_memory_sink_keeps_results_and_frames():
    sink = MemorySink(keep_frames=True)
    for seq in range(2):
        sink.write(*_pair(seq))
    sink.close()
    assert [r.seq for r in sink.results] == [0, 1] and [f.seq for f in sink.frames] == [0, 1] and sink.closed
