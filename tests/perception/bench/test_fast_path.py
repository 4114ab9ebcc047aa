"""The CPU fast path changes nothing but speed: fused normalisation, one BLAS thread, zero-copy preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.config import DetectorConfig
from perception.detection.detector import build_detector
from perception.io.synthetic import SyntheticScene
from perception.models.registry import create_encoder
from perception.runtime.blas import blas_threads, single_threaded_blas
from perception.runtime.preprocess import Preprocessor
import perception.models.variants  # noqa: F401  (registers the encoders)


def test_fused_normalisation_equals_subtract_divide(one_torch_thread):
    encoder = create_encoder("dualstream_tiny").eval()
    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    cl = x.contiguous(memory_format=torch.channels_last)
    reference = (x - encoder.mean) / encoder.std
    fused = encoder.normalise(cl)
    assert torch.allclose(fused, reference, atol=1e-6)
    assert fused.is_contiguous(memory_format=torch.channels_last)  # no layout change, no extra copy
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert encoder.normalise(cl.bfloat16()).dtype == torch.bfloat16


def test_single_threaded_blas_is_scoped():
    before = blas_threads()
    if before is None:
        pytest.skip("threadpoolctl sees no BLAS library")
    with single_threaded_blas():
        assert blas_threads() == 1
    assert blas_threads() == before


def test_detections_do_not_depend_on_blas_threads(one_torch_thread):
    scene = SyntheticScene(width=160, height=120, num_frames=8, seed=3, max_size=40, pan_margin=16)
    frames = [frame.image for frame in scene]
    rng = np.random.default_rng(0)
    dense = [torch.from_numpy(rng.standard_normal((32, 15, 20)).astype(np.float32)) for _ in frames]

    def run(limited: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        detector = build_detector(DetectorConfig())
        out = []
        for image, features in zip(frames, dense):
            if limited:
                with single_threaded_blas():
                    dets = detector.detect(image, features)
            else:
                dets = detector.detect(image, features)
            out.append((dets.boxes, dets.scores, dets.track_ids))
        return out

    for (b1, s1, t1), (b2, s2, t2) in zip(run(False), run(True)):
        np.testing.assert_allclose(b1, b2, atol=1e-3)
        np.testing.assert_allclose(s1, s2, atol=1e-5)
        np.testing.assert_array_equal(t1, t2)


def test_preprocess_is_channels_last_without_resize_copy():
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    pre = Preprocessor("cpu", 640, 480)(image)
    assert pre.tensor.shape == (1, 3, 480, 640) and pre.tensor.is_contiguous(memory_format=torch.channels_last)
    assert pre.image is image  # a frame already at the encoder size is not resized or copied
    assert torch.allclose(pre.tensor[0, :, 5, 7], torch.from_numpy(image[5, 7]).float() / 255.0)
