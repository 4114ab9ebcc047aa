"""Property-based fuzzing (hypothesis) of what the outside world feeds the core: image buffers and the config loader.

The property everywhere: any input either gives a well-formed result or raises the module's own error type
(``ImageDecodeError``, ``ConfigError``) -- never another exception, never a wrong-shaped array.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception.config import Config, ConfigError, flatten_config, load_config
from perception.io.image_codec import ENCODINGS, ImageDecodeError, decode_compressed, decode_image, encode_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENCODING_NAMES = sorted(ENCODINGS) + ["", "32FC1", "yuv422", "bayer_rggb8", "RGB8", "rgb8 "]
BASE = np.random.default_rng(1).integers(0, 256, (20, 28, 3), dtype=np.uint8)
VALID = {"jpeg": cv2.imencode(".jpg", BASE)[1].tobytes(), "png": cv2.imencode(".png", BASE)[1].tobytes()}


@FUZZ
@given(data=st.binary(max_size=4096), width=st.integers(-4, 80), height=st.integers(-4, 80),
       encoding=st.sampled_from(ENCODING_NAMES), step=st.integers(-8, 600), bigendian=st.booleans())
def test_raw_decode_gives_rgb_or_an_image_decode_error(data, width, height, encoding, step, bigendian):
    try:
        out = decode_image(data, width, height, encoding, step, bigendian)
    except ImageDecodeError as exc:
        assert str(exc)
        return
    assert out.shape == (height, width, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


@FUZZ
@given(width=st.integers(1, 40), height=st.integers(1, 30), pad=st.integers(0, 9),
       encoding=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "rgb16", "bgr16"]),
       bigendian=st.booleans(), seed=st.integers(0, 2**16))
def test_well_formed_buffers_with_any_padding_and_byte_order_decode_exactly(width, height, pad, encoding, bigendian,
                                                                            seed):
    channels, dtype = ENCODINGS[encoding]
    values = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    if dtype.itemsize == 2:
        pixels = (values.astype(np.uint16) << 8 | 0x7F).astype(">u2" if bigendian else "<u2")
    else:
        pixels = values
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    rows = np.concatenate([rows, np.full((height, pad), 0xEE, np.uint8)], axis=1)
    out = decode_image(rows.tobytes(), width, height, encoding, rows.shape[1], bigendian)
    order = [2, 1, 0] if encoding.startswith("bgr") else [0, 1, 2]
    expected = np.repeat(values, 3, axis=2) if channels == 1 else values[:, :, order]
    np.testing.assert_array_equal(out, expected)


def _mutate(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for position, value in cuts:
        buf[position % len(buf)] = value
    return bytes(buf)


@FUZZ
@given(kind=st.sampled_from(["jpeg", "png"]), cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                            max_size=12),
       keep=st.floats(0.0, 1.0), fmt=st.sampled_from(["jpeg", "png", "", "bgr8; jpeg compressed bgr8", "tiff"]))
def test_mutated_and_cut_jpeg_png_give_rgb_or_an_image_decode_error(kind, cuts, keep, fmt):
    data = _mutate(VALID[kind], cuts)
    data = data[: max(0, int(len(data) * keep))] if keep < 1.0 else data
    try:
        out = decode_compressed(data, fmt)
    except ImageDecodeError as exc:
        assert str(exc)
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8 and out.size > 0


@FUZZ
@given(data=st.binary(max_size=2048), fmt=st.text(max_size=12))
def test_arbitrary_bytes_as_compressed_images(data, fmt):
    try:
        out = decode_compressed(data, fmt)
    except ImageDecodeError:
        return
    assert out.ndim == 3 and out.shape[2] == 3


@FUZZ
@given(seed=st.integers(0, 2**16), width=st.integers(1, 33), height=st.integers(1, 17),
       encoding=st.sampled_from(["rgb8", "bgr8"]))
def test_encode_then_decode_is_the_identity(seed, width, height, encoding):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    data, step = encode_image(image, encoding)
    np.testing.assert_array_equal(decode_image(data, width, height, encoding, step), image)


# -- the config loader ---------------------------------------------------------------------------------------------
LEAVES = flatten_config(Config())
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(), max_size=3))
KEYS = st.one_of(st.sampled_from(sorted(LEAVES)), st.text(min_size=1, max_size=12))


@FUZZ
@given(pairs=st.dictionaries(KEYS, SCALARS, max_size=6))
def test_dotted_mappings_load_or_raise_config_error(pairs):
    from perception.config import nest_dotted

    try:
        data = nest_dotted(pairs)
    except (AttributeError, TypeError):
        return  # "a" and "a.b" in one mapping cannot nest; not the loader's input
    try:
        cfg = load_config(data)
    except ConfigError as exc:
        assert str(exc)
        return
    flat = flatten_config(cfg)
    for key, value in pairs.items():  # what was accepted is what the config holds
        assert flat[key] == value or (isinstance(value, int) and flat[key] == float(value))


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_yaml_text_loads_or_raises_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_text(text)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, Config)


@FUZZ
@given(pairs=st.dictionaries(st.sampled_from(sorted(LEAVES)), SCALARS, max_size=4))
def test_overrides_load_or_raise_config_error(pairs):
    overrides = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                 for k, v in pairs.items()]
    try:
        load_config(None, overrides)
    except ConfigError as exc:
        assert str(exc)


@FUZZ
@given(key=st.one_of(st.sampled_from(sorted(LEAVES)), st.text(max_size=10)), text=st.text(max_size=40))
def test_override_text_of_any_kind_loads_or_raises_config_error(key, text):
    try:
        load_config(None, [f"{key}={text}"])
    except ConfigError as exc:
        assert str(exc)


@pytest.mark.parametrize("key", sorted(LEAVES))
def test_every_leaf_refuses_a_value_of_the_wrong_kind(key):
    wrong = {bool: "maybe", int: "three", float: "fast", str: [1, 2]}[type(LEAVES[key])]
    from perception.config import nest_dotted

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(nest_dotted({key: wrong}))
