"""Feature extractors: the rgb (Lab) baseline on colours with known Lab values, the encoder adapter on a real
registered encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.eval.features import EncoderFeatures, LabColourFeatures, l2_normalise_cells, load_encoder_pair


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_rgb_features_of_known_colours():
    frame = np.zeros((16, 24, 3), np.uint8)
    frame[:8, :8] = 255  # white: L 100, a 0, b 0 -> (2, 0, 0)
    frame[:8, 8:16] = 0  # black: L 0 -> (-2, 0, 0)
    frame[:8, 16:] = (255, 0, 0)  # sRGB red: L 53.24, a 80.09, b 67.20 (CIE, D65)
    frame[8:, :] = 255
    frame[8:10, 0:8] = 0  # cell (1, 0): 3/4 white, 1/4 black -> mean (0.75*2 - 0.25*2, 0, 0) = (1, 0, 0)
    feats = LabColourFeatures()(frame)
    assert feats.shape == (3, 2, 3) and feats.dtype == torch.float32
    np.testing.assert_allclose(feats[:, 0, 0], [1, 0, 0], atol=1e-4)
    np.testing.assert_allclose(feats[:, 0, 1], [-1, 0, 0], atol=1e-4)
    red = unit([(53.24 - 50) / 25, 80.09 / 15, 67.20 / 15])
    np.testing.assert_allclose(feats[:, 0, 2], red, atol=2e-3)
    np.testing.assert_allclose(feats[:, 1, 0], [1, 0, 0], atol=1e-4)
    assert torch.allclose(feats.norm(dim=0), torch.ones(2, 3))


def test_rgb_rejects_unpadded_frames():
    with pytest.raises(ValueError, match="multiple of the stride"):
        LabColourFeatures()(np.zeros((480, 854, 3), np.uint8))


def test_l2_normalise_keeps_zero_cells_zero():
    x = torch.zeros(2, 3, 1, 2)
    x[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])
    out = l2_normalise_cells(x)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.6, 0.8, 0.0]))
    assert torch.equal(out[1], torch.zeros(3, 1, 2))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    variants = pytest.importorskip("perception.models.variants")  # noqa: F841 (registers the encoders)
    from perception.models.checkpoint import save_checkpoint
    from perception.models.registry import create_encoder

    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(create_encoder("dualstream_tiny"), path, config={}, provenance={"test": True})
    return path


def test_encoder_adapter_gives_unit_cells_at_stride_8(tiny_checkpoint):
    model, random_model, meta = load_encoder_pair(str(tiny_checkpoint), seed=0)
    assert meta["name"] == "dualstream_tiny"
    frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    features = EncoderFeatures(model, name="checkpoint")
    out = features(frame)
    assert out.shape == (32, 8, 12)
    assert torch.allclose(out.norm(dim=0), torch.ones(8, 12), atol=1e-5)
    assert torch.equal(out, features(frame))  # forward per frame: no state, deterministic
    local = EncoderFeatures(model, readout="local")(frame)
    assert local.shape[1:] == (8, 12) and not torch.allclose(local[:32], out)


def test_random_init_is_the_same_architecture_with_seeded_weights(tiny_checkpoint):
    model, random_a, _ = load_encoder_pair(str(tiny_checkpoint), seed=0)
    _, random_b, _ = load_encoder_pair(str(tiny_checkpoint), seed=0)
    trained, a, b = model.state_dict(), random_a.state_dict(), random_b.state_dict()
    assert trained.keys() == a.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # seed 0 twice: the same weights
    assert any(not torch.equal(trained[k], a[k]) for k in a)  # and not the checkpoint's


def test_streaming_adapter_carries_state(tiny_checkpoint):
    model, _, _ = load_encoder_pair(str(tiny_checkpoint))
    frames = np.random.default_rng(1).integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)
    streaming = EncoderFeatures(model, streaming=True)
    first = [streaming(f) for f in frames]
    assert streaming._state.frame_index == 3
    streaming.reset()
    assert streaming._state is None
    again = [streaming(f) for f in frames]
    assert all(torch.equal(x, y) for x, y in zip(first, again))  # a replay from reset is deterministic
    assert torch.allclose(first[0], EncoderFeatures(model)(frames[0]), atol=1e-6)  # frame 0: same as forward
