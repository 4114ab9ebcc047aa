"""Perceiver with the real (tiny, randomly initialised) encoder and the real detector on the synthetic scene."""

import threading

import cv2
import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.detection.discovery import STILL_SETTLE
from perception.io.frame import Frame
from perception.io.synthetic import SyntheticScene
from perception.runtime.perceiver import Perceiver


def _cfg(*overrides: str):
    return load_config(None, ["encoder.name=dualstream_tiny", "runtime.device=cpu", "runtime.warmup_frames=0",
                              *overrides])


def _small_cfg(*overrides: str):
    return _cfg("encoder.input_width=320", "encoder.input_height=240", *overrides)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return list(SyntheticScene(width=640, height=480, num_frames=3, seed=2))


@pytest.fixture(scope="module")
def small() -> list[Frame]:
    return list(SyntheticScene(width=320, height=240, num_frames=3, seed=2))


def test_result_shapes_stamps_and_timings(frames):
    perceiver = Perceiver(_cfg())
    assert perceiver.encoder_source == "random" and str(perceiver.device) == "cpu"
    results = [perceiver.process(f) for f in frames]
    channels = perceiver.encoder.out_channels
    for frame, result in zip(frames, results):
        assert (result.stamp_ns, result.frame_id, result.seq) == (frame.stamp_ns, frame.frame_id, frame.seq)
        assert result.features.shape == (60, 80, channels) and result.features.dtype == np.float32
        assert result.features.flags.c_contiguous and np.isfinite(result.features).all()
        assert result.pca.shape == (60, 80, 3) and result.pca.dtype == np.uint8
        assert result.overlay.shape == (480, 640, 3) and result.overlay.dtype == np.uint8
        assert result.global_embedding.ndim == 1 and result.global_embedding.dtype == np.float32
        assert set(result.timings_ms) == {"preprocess", "encoder", "detection", "visualise", "total"}
        assert result.timings_ms["total"] >= result.timings_ms["encoder"] > 0
        boxes = result.detections.boxes
        assert boxes.dtype == np.float32 and boxes.shape[1] == 4
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= 640 + 1e-3).all()
    # new global tokens land on frame 0, then on the last stage of each keyframe's staged run
    every, stages = perceiver.encoder.global_every, perceiver.encoder.global_stages
    assert [r.keyframe for r in results] == [i == 0 or (i >= every and i % every == stages - 1)
                                             for i in range(len(frames))]


def test_boxes_are_in_input_pixels(small):
    """The same pictures at twice the size give the same detections at twice the coordinates."""
    base_perceiver, big_perceiver = Perceiver(_small_cfg()), Perceiver(_small_cfg())
    count = 0
    for frame in small:
        base = base_perceiver.process(frame)
        big_frame = Frame(image=cv2.resize(frame.image, (640, 480), interpolation=cv2.INTER_NEAREST),
                          stamp_ns=frame.stamp_ns, frame_id="big", seq=frame.seq)
        big = big_perceiver.process(big_frame)
        np.testing.assert_allclose(big.detections.boxes, 2.0 * base.detections.boxes, atol=1e-3)
        np.testing.assert_array_equal(big.detections.track_ids, base.detections.track_ids)
        assert big.features.shape == base.features.shape == (30, 40, base.features.shape[2])  # same 320x240 input
        assert big.overlay.shape == (480, 640, 3)
        count += len(base.detections)
    assert count > 0  # the comparison was not vacuous


def test_streams_keep_separate_state(small):
    frames = small
    alone = Perceiver(_small_cfg())
    reference = [alone.process(f, stream="cam0") for f in frames]
    shared = Perceiver(_small_cfg())
    other = list(SyntheticScene(width=256, height=192, num_frames=len(frames), seed=9))
    mixed = []
    for f, g in zip(frames, other):
        mixed.append(shared.process(f, stream="cam0"))
        shared.process(g, stream="cam1")
    assert sorted(shared.streams) == ["cam0", "cam1"]
    for a, b in zip(reference, mixed):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.detections.boxes, b.detections.boxes)


def test_warmup_leaves_no_trace(small):
    cold = Perceiver(_small_cfg()).process(small[0])
    warm_perceiver = Perceiver(_small_cfg("runtime.warmup_frames=2"))
    assert warm_perceiver.streams == []  # the throwaway stream is gone
    warm = warm_perceiver.process(small[0])
    assert warm.keyframe
    np.testing.assert_array_equal(warm.features, cold.features)
    np.testing.assert_array_equal(warm.detections.boxes, cold.detections.boxes)
    assert warm_perceiver.warmup(64, 48, frames=1) > 0 and warm_perceiver.streams == ["default"]


def test_pictures_only_when_enabled_and_reset_starts_over(small):
    frames = small
    perceiver = Perceiver(_small_cfg("runtime.publish_pca=false", "runtime.publish_debug=false"))
    first = perceiver.process(frames[0])
    assert first.pca is None and first.overlay is None and first.features is not None
    assert not perceiver.process(frames[1]).keyframe
    perceiver.reset()
    again = perceiver.process(frames[0])
    assert again.keyframe
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.detections.boxes, first.detections.boxes)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from perception.models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="nope.safetensors"):
        Perceiver(_cfg(f"encoder.checkpoint={tmp_path / 'nope.safetensors'}"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu_layout(small):
    gpu = Perceiver(_small_cfg("runtime.device=cuda"))
    assert gpu.device.type == "cuda" and gpu.precision == "fp16"
    cpu_result = Perceiver(_small_cfg("runtime.precision=fp32")).process(small[0])
    result = gpu.process(small[0])
    assert result.features.shape == cpu_result.features.shape and result.features.dtype == np.float32
    assert np.isfinite(result.features).all() and result.pca.shape == (30, 40, 3)
    cos = (result.features * cpu_result.features).sum(-1) / (
        np.linalg.norm(result.features, axis=-1) * np.linalg.norm(cpu_result.features, axis=-1) + 1e-6)
    assert np.median(cos) > 0.98  # fp16 on the GPU computes the same features as fp32 on the CPU


def test_a_swap_of_global_stream_parameters_drops_a_staged_run(small):
    from perception.adaptation import attach_online_adapter
    from perception.adaptation.config import AdaptationConfig

    perceiver = Perceiver(_small_cfg("encoder.global_every=2", "encoder.global_stages=2"))
    adapter, _ = attach_online_adapter(perceiver, AdaptationConfig(enabled=True, params="norm"), start=False)
    assert adapter.touches_global_stream
    frames = list(small) + list(small)
    state = lambda: perceiver._streams["default"].encoder  # noqa: E731
    perceiver.process(frames[0])
    perceiver.process(frames[1])
    perceiver.process(frames[2])                           # keyframe 2 starts a staged run
    assert state().pending is not None and state().pending.done == 1
    tokens = state().global_tokens
    adapter.versions.publish({n: p + 0.01 for n, p in adapter.serving.items()})
    result = perceiver.process(frames[3])                   # the swap lands here: the half-run is dropped
    assert state().pending is None and not result.keyframe and torch.equal(state().global_tokens, tokens)
    perceiver.process(frames[4])                           # the next keyframe starts afresh
    assert state().pending is not None and state().pending.done == 1
    from perception.adaptation.adapter import OnlineAdapter  # the default subset (input affine) leaves runs alone

    assert not OnlineAdapter(perceiver.encoder, AdaptationConfig(enabled=True, params="input")).touches_global_stream


def test_normalised_input_from_the_preprocessor_gives_the_encoders_own_result(small):
    """On the CPU the preprocessor normalises (one lookup table) and the encoder skips its own normalisation: the
    features are those of the encoder normalising the [0, 1] frames itself, frame after frame."""
    from perception.runtime.perceiver import encode
    from perception.runtime.preprocess import Preprocessor

    perceiver = Perceiver(_small_cfg("runtime.precision=fp32"))
    assert perceiver.preprocess.lut is not None
    plain = Preprocessor("cpu", 320, 240)
    state_a = state_b = None
    for frame in small:
        pre = perceiver.preprocess(frame.image)
        with torch.inference_mode():
            out_a, state_a = encode(perceiver.encoder, pre, state_a)
            out_b, state_b = perceiver.encoder.encode(plain(frame.image).tensor, state_b)
        assert pre.normalised is not None
        assert torch.allclose(out_a.dense, out_b.dense, atol=1e-5)
        assert torch.allclose(out_a.global_embedding, out_b.global_embedding, atol=1e-5)


def _boxes_and_ids(result) -> tuple:
    d = result.detections
    return d.boxes.tolist(), d.scores.tolist(), d.track_ids.tolist()


def _still_camera(frames: int) -> list[Frame]:
    """A fixed textured background (a still camera) with two squares crossing it."""
    rng = np.random.default_rng(4)
    background = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    out = []
    for i in range(frames):
        image = background.copy()
        image[60:100, 20 + 5 * i:60 + 5 * i] = (230, 40, 40)
        image[150:200, 280 - 4 * i:310 - 4 * i] = (40, 200, 60)
        out.append(Frame(image=image, stamp_ns=i * 33_000_000, seq=i))
    return out


@pytest.mark.parametrize("camera", ["moving", "still"])
def test_overlapped_detection_gives_the_serial_results_and_prepares_each_frame_once(monkeypatch, camera):
    """The detector's image-only half (motion, background model) runs on its own thread while the encoder works
    (``runtime.overlap_detection``); pipelined like the node (encode t+1 before finishing t), on a moving camera (the
    full path every frame) and on a still one (its background model settles and serves the frames), the boxes, scores
    and track ids equal the serial path's."""
    scene = (list(SyntheticScene(width=320, height=240, num_frames=40, seed=5)) if camera == "moving"
             else _still_camera(40))
    serial = Perceiver(_small_cfg("runtime.overlap_detection=false"))
    expected = [_boxes_and_ids(serial.process(f)) for f in scene]
    overlapped = Perceiver(_small_cfg("runtime.overlap_detection=true"))
    prepared = []
    real_build = overlapped._stream

    def stream(key):
        state = real_build(key)
        detector = state.detector
        if not getattr(detector, "_counted", False):
            original = detector.prepare
            detector.prepare = lambda image: (prepared.append(threading.current_thread().name), original(image))[1]
            detector._counted = True
        return state

    monkeypatch.setattr(overlapped, "_stream", stream)
    got, pending = [], None
    for frame in scene:  # the node's order: encode t+1, then finish t
        encoded = overlapped.encode(frame)
        if pending is not None:
            got.append(_boxes_and_ids(overlapped.finish(pending)))
        pending = encoded
    got.append(_boxes_and_ids(overlapped.finish(pending)))
    assert got == expected
    assert sum(len(ids) for _, _, ids in got) > 0  # objects were found and tracked
    assert len(prepared) == len(scene) and set(prepared) != {threading.current_thread().name}
    still = overlapped._streams["default"].detector.discovery.frames_still
    assert still > STILL_SETTLE if camera == "still" else still == 0


def test_a_failed_encode_keeps_its_prepared_half_for_the_retry(small):
    perceiver = Perceiver(_small_cfg("runtime.overlap_detection=true"))
    perceiver.process(small[0])
    calls = []
    detector = perceiver._stream("default").detector
    original = detector.prepare
    detector.prepare = lambda image: (calls.append(1), original(image))[1]
    real = perceiver._encoder_half
    failures = [RuntimeError("out of memory, say")]

    def flaky(*args):
        if failures:
            raise failures.pop()
        return real(*args)

    perceiver._encoder_half = flaky
    with pytest.raises(RuntimeError, match="out of memory"):
        perceiver.encode(small[1])
    result = perceiver.finish(perceiver.encode(small[1]))  # the retry of the same frame
    assert calls == [1] and result.seq == small[1].seq  # the motion model saw the frame once
    perceiver.process(small[2])
    assert calls == [1, 1]


def test_global_share_runs_beside_unless_adapting_or_off(small):
    perceiver = Perceiver(_small_cfg())
    assert perceiver._beside is not None  # runtime.overlap_global, on by default on the CPU
    calls = []
    real = perceiver._beside.__call__
    perceiver._beside = lambda fn, *args: (calls.append(fn.__name__), real(fn, *args))[1]
    serial = Perceiver(_small_cfg("runtime.overlap_global=false"))
    assert serial._beside is None
    for frame in small:
        a, b = perceiver.process(frame), serial.process(frame)
        assert np.array_equal(a.features, b.features) and np.array_equal(a.global_embedding, b.global_embedding)
    assert calls == ["_global_share"] * len(small)
    perceiver.adapter = object()  # an attached adapter (its hooks and swaps want the model on one thread)
    perceiver.encode(small[0], stream="other")
    assert len(calls) == len(small)


def test_global_share_stays_beside_with_an_adapter_that_leaves_the_global_stream_alone(small):
    """The default adapted subset (the input affine) and the BN statistics live outside the ViT: the global share
    keeps running beside the local stream, with the outputs of the one-thread encode; an adapter of global-stream
    parameters (``params: norm`` takes the ViT's LayerNorms) gets one thread."""
    from perception.adaptation import attach_online_adapter
    from perception.adaptation.config import AdaptationConfig

    adapting = Perceiver(_small_cfg("encoder.global_every=2", "encoder.global_stages=2"))
    serial = Perceiver(_small_cfg("encoder.global_every=2", "encoder.global_stages=2", "runtime.overlap_global=false"))
    serial.encoder.load_state_dict(adapting.encoder.state_dict())
    for perceiver in (adapting, serial):
        adapter, _ = attach_online_adapter(perceiver, AdaptationConfig(enabled=True), start=False)
        assert not adapter.touches_global_stream
    calls = []
    real = adapting._beside.__call__
    adapting._beside = lambda fn, *args: (calls.append(fn.__name__), real(fn, *args))[1]
    for frame in list(small) + list(small):
        a, b = adapting.process(frame), serial.process(frame)
        assert np.array_equal(a.features, b.features) and np.array_equal(a.global_embedding, b.global_embedding)
    assert calls == ["_global_share"] * (2 * len(small))
    other = Perceiver(_small_cfg("encoder.global_every=2", "encoder.global_stages=2"))
    adapter, _ = attach_online_adapter(other, AdaptationConfig(enabled=True, params="norm"), start=False)
    assert adapter.touches_global_stream
    real_other = other._beside.__call__
    other._beside = lambda fn, *args: (calls.append("other"), real_other(fn, *args))[1]
    other.process(small[0])
    other.process(small[1])
    assert "other" not in calls
