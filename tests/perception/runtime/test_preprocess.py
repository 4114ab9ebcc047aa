import cv2
import numpy as np
import pytest
import torch

from perception.runtime.preprocess import Preprocessor, encoder_size, interpolation, scale_boxes_to_input


@pytest.mark.parametrize("size, target, expected", [
    ((640, 480), (640, 480), (640, 480)),  # already the encoder size: untouched
    ((960, 540), (640, 480), (640, 360)),  # wider: width limits, aspect kept
    ((768, 576), (640, 480), (640, 480)),
    ((640, 272), (640, 480), (640, 272)),
    ((480, 640), (640, 480), (360, 480)),  # portrait: height limits
    ((333, 250), (0, 0), (336, 248)),  # native size, rounded to the stride
    ((320, 240), (640, 480), (320, 240)),  # small frames are never enlarged
    ((1280, 720), (640, 0), (640, 360)),  # 0: that side does not limit
])
def test_encoder_size_keeps_aspect_in_multiples_of_eight(size, target, expected):
    out = encoder_size(*size, *target)
    assert out == expected and out[0] % 8 == 0 and out[1] % 8 == 0


def test_tensor_layout_range_and_scales():
    image = np.zeros((540, 960, 3), np.uint8)
    image[:, :, 0] = 255
    image[:, :, 2] = 51
    pre = Preprocessor("cpu", 640, 480)(image)
    assert tuple(pre.tensor.shape) == (1, 3, 360, 640)
    assert pre.tensor.dtype == torch.float32
    assert pre.tensor.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(pre.tensor[0, :, 100, 100], torch.tensor([1.0, 0.0, 0.2]))
    assert pre.image.shape == (360, 640, 3) and pre.image.dtype == np.uint8
    assert pre.scale_x == pytest.approx(640 / 960) and pre.scale_y == pytest.approx(360 / 540)
    assert pre.input_size == (960, 540) and pre.encoder_size == (640, 360)


def test_frame_at_encoder_size_is_passed_through_exactly():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pre = Preprocessor("cpu", 640, 480)(image)
    assert pre.scale_x == 1.0 and pre.scale_y == 1.0
    back = (pre.tensor[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(back, image)


def test_boxes_map_back_to_input_pixels():
    boxes = np.array([[64, 36, 32, 18]], np.float32)
    np.testing.assert_allclose(scale_boxes_to_input(boxes, 640 / 960, 360 / 540), [[96, 54, 48, 27]], rtol=1e-6)


def test_bad_images_are_refused_with_the_shape():
    with pytest.raises(ValueError, match=r"\(480, 640\) uint8"):
        Preprocessor()(np.zeros((480, 640), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        Preprocessor()(np.zeros((48, 64, 3), np.float32))


def test_mild_shrinks_are_bilinear_strong_ones_average_pixels():
    assert interpolation(768, 576, 640, 480) == cv2.INTER_LINEAR  # 0.83: bilinear taps already cover a pixel
    assert interpolation(1280, 720, 640, 360) == cv2.INTER_AREA  # 0.5: bilinear would skip every other pixel
    assert interpolation(320, 240, 640, 480) == cv2.INTER_LINEAR
    # a one-pixel checkerboard halved: averaging gives flat grey, where bilinear sampling would alias
    board = (np.indices((96, 128)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(board[:, :, None], 3, axis=2)
    out = Preprocessor("cpu", 64, 48)(image).tensor
    assert out.shape == (1, 3, 48, 64) and abs(float(out.mean()) - 0.5) < 0.01 and float(out.std()) < 0.01


def test_normalising_preprocessor_matches_the_encoder_and_makes_the_unit_tensor_on_demand():
    from perception.models.encoder import IMAGENET_MEAN, IMAGENET_STD
    from perception.models import create_encoder

    encoder = create_encoder("dualstream_tiny")
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (576, 768, 3), dtype=np.uint8)
    pre = Preprocessor("cpu", 640, 480, mean=IMAGENET_MEAN, std=IMAGENET_STD)(image)
    assert "tensor" not in pre.__dict__                        # [0, 1] not made unless asked for
    assert pre.normalised.dtype == torch.float32 and tuple(pre.normalised.shape) == (1, 3, 480, 640)
    assert pre.normalised.is_contiguous(memory_format=torch.channels_last)
    assert pre.encoder_input is pre.normalised
    plain = Preprocessor("cpu", 640, 480)(image)
    assert torch.equal(pre.tensor, plain.tensor)              # made on demand, the same as before
    assert (pre.normalised - encoder.normalise(plain.tensor)).abs().max() < 1e-6
    smaller = Preprocessor("cpu", 640, 480, mean=IMAGENET_MEAN, std=IMAGENET_STD).resized(320, 240)(image)
    assert smaller.normalised is not None and tuple(smaller.normalised.shape) == (1, 3, 240, 320)
    with pytest.raises(ValueError, match="3 values"):
        Preprocessor("cpu", mean=[0.5, 0.5], std=[0.2, 0.2, 0.2])
