"""Pipeline counts and shutdown, with a stand-in processor of known speed (the pipeline is what is under test)."""

import time

import pytest

from perception.detection.types import Detections
from perception.io.frame import Frame
from perception.io.synthetic import SyntheticScene
from perception.runtime.pipeline import Pipeline
from perception.runtime.result import PerceptionResult
from perception.runtime.sinks import MemorySink


class TimedProcessor:
    """Takes ``delay_s`` per frame; raises ``fail`` on frame ``fail_at``."""

    def __init__(self, delay_s: float, fail_at: int | None = None, fail: BaseException | None = None) -> None:
        self.delay_s, self.fail_at, self.fail = delay_s, fail_at, fail
        self.seen: list[int] = []

    def process(self, frame: Frame) -> PerceptionResult:
        if self.fail_at is not None and len(self.seen) == self.fail_at:
            raise self.fail
        time.sleep(self.delay_s)
        self.seen.append(frame.seq)
        return PerceptionResult(stamp_ns=frame.stamp_ns, frame_id=frame.frame_id, seq=frame.seq,
                                detections=Detections.empty(), keyframe=frame.seq % 2 == 0,
                                timings_ms={"total": self.delay_s * 1000.0})


class ClosingScene(SyntheticScene):
    closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def _scene(frames: int, fps: float = 30.0) -> ClosingScene:
    return ClosingScene(width=160, height=120, num_frames=frames, seed=3, fps=fps, min_size=10, max_size=40)


def test_as_fast_as_possible_processes_every_frame_in_order():
    source, sink, proc = _scene(25), MemorySink(), TimedProcessor(0.004)
    stats = Pipeline(source, proc, [sink], realtime=False).run()
    assert (stats.frames_read, stats.frames_processed, stats.frames_dropped, stats.frames_failed) == (25, 25, 0, 0)
    assert [r.seq for r in sink.results] == list(range(25)) and stats.keyframes == 13
    assert stats.stop_reason == "end" and sink.closed and source.closed == 1
    assert stats.latency_ms["p50"] >= 4.0 and stats.latency_ms["p99"] >= stats.latency_ms["p50"]
    assert stats.stage_ms["total"]["p50"] == pytest.approx(4.0)
    assert stats.fps > 0 and set(stats.to_dict()) >= {"frames_read", "fps", "latency_ms", "stop_reason"}


def test_realtime_drops_what_a_slow_consumer_cannot_take():
    # 200 fps source, 25 ms per frame: about one frame in five can be processed.
    source, sink, proc = _scene(60, fps=200.0), MemorySink(), TimedProcessor(0.025)
    stats = Pipeline(source, proc, [sink], realtime=True).run()
    assert stats.frames_read == 60
    assert stats.frames_read == stats.frames_processed + stats.frames_dropped
    assert stats.frames_dropped >= 30 and 5 <= stats.frames_processed <= 30
    seqs = [r.seq for r in sink.results]
    assert seqs == sorted(seqs) and seqs[-1] == 59  # newest first, and the last frame is drained
    assert 0.25 <= stats.elapsed_s < 3.0  # paced: 60 frames at 200 fps take at least 0.3 s
    assert stats.read_fps == pytest.approx(200.0, rel=0.35)


def test_realtime_keeps_up_when_the_consumer_is_fast():
    stats = Pipeline(_scene(30, fps=100.0), TimedProcessor(0.001), [], realtime=True).run()
    assert stats.frames_read == 30 and stats.frames_processed >= 27  # at most a few drops from scheduling noise
    assert stats.frames_processed + stats.frames_dropped == 30


def test_max_frames_and_duration_stop_the_run():
    stats = Pipeline(_scene(100), TimedProcessor(0.0), [], realtime=False).run(max_frames=10)
    assert (stats.frames_read, stats.frames_processed, stats.stop_reason) == (10, 10, "max_frames")
    started = time.monotonic()
    stats = Pipeline(_scene(10_000, fps=100.0), TimedProcessor(0.002), [], realtime=True).run(duration_s=0.4)
    assert 0.35 <= time.monotonic() - started < 2.0 and stats.stop_reason == "duration"
    assert 20 <= stats.frames_read <= 60
    assert stats.frames_read == stats.frames_processed + stats.frames_dropped


def test_processing_error_is_raised_after_a_clean_shutdown():
    source, sink = _scene(20), MemorySink()
    pipeline = Pipeline(source, TimedProcessor(0.0, fail_at=3, fail=ValueError("bad frame")), [sink], realtime=False)
    with pytest.raises(ValueError, match="bad frame"):
        pipeline.run()
    stats = pipeline.stats
    assert stats.stop_reason == "error" and stats.error == "ValueError: bad frame"
    assert (stats.frames_processed, stats.frames_failed) == (3, 1)
    assert stats.frames_read == stats.frames_processed + stats.frames_dropped + stats.frames_failed
    assert sink.closed and source.closed == 1


def test_ctrl_c_ends_the_run_with_its_counts():
    sink = MemorySink()
    stats = Pipeline(_scene(20), TimedProcessor(0.0, fail_at=5, fail=KeyboardInterrupt()), [sink],
                     realtime=False).run()
    assert stats.stop_reason == "interrupted" and stats.frames_processed == 5 and sink.closed
    assert stats.frames_read == stats.frames_processed + stats.frames_dropped + stats.frames_failed


def test_progress_callback_sees_each_result():
    seen = []
    Pipeline(_scene(6), TimedProcessor(0.0), [], progress=lambda p: seen.append((p.processed, p.last.seq))).run()
    assert seen == [(i + 1, i) for i in range(6)]


class StagedProcessor(TimedProcessor):
    """``encode`` and ``finish`` take ``delay_s`` each; ``finish`` raises ``fail`` on frame ``fail_at``."""

    def encode(self, frame: Frame) -> Frame:
        time.sleep(self.delay_s)
        return frame

    def finish(self, frame: Frame) -> PerceptionResult:
        return self.process(frame)


def test_pipelined_run_overlaps_the_halves_and_keeps_every_frame_in_order():
    source, sink, proc = _scene(30), MemorySink(), StagedProcessor(0.02)
    started = time.monotonic()
    stats = Pipeline(source, proc, [sink], realtime=False, pipelined=True).run()
    elapsed = time.monotonic() - started
    assert (stats.frames_read, stats.frames_processed, stats.frames_dropped, stats.frames_failed) == (30, 30, 0, 0)
    assert [r.seq for r in sink.results] == list(range(30)) and stats.stop_reason == "end" and sink.closed
    assert elapsed < 0.8 * 30 * 0.04  # in series 30 x 40 ms; overlapped about 30 x 20 ms
    assert stats.latency_ms["p50"] >= 40.0  # a frame still takes both halves


def test_pipelined_error_in_the_second_half_is_raised_with_consistent_counts():
    source, sink = _scene(20), MemorySink()
    pipeline = Pipeline(source, StagedProcessor(0.005, fail_at=3, fail=ValueError("bad frame")), [sink],
                        realtime=False, pipelined=True)
    with pytest.raises(ValueError, match="bad frame"):
        pipeline.run()
    stats = pipeline.stats
    assert stats.stop_reason == "error" and stats.frames_processed == 3 and 1 <= stats.frames_failed <= 2
    assert stats.frames_read == stats.frames_processed + stats.frames_dropped + stats.frames_failed
    assert [r.seq for r in sink.results] == [0, 1, 2] and sink.closed and source.closed == 1


def test_pipelined_needs_a_two_stage_processor():
    with pytest.raises(TypeError, match="encode\\(\\) and finish\\(\\)"):
        Pipeline(_scene(2), TimedProcessor(0.0), [], pipelined=True)
