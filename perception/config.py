"""Typed configuration: defaults in dataclasses, YAML overrides, command-line overrides.

``load_config(path, overrides)`` reads a YAML file with ``yaml.safe_load`` and merges it over the defaults.
An unknown key or a value of the wrong type raises ``ConfigError`` naming the dotted key path, the expected
type and what was given. Overrides are ``"section.key=value"`` strings whose values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the key path."""


def check_ranges(section: str, obj: Any, checks: Sequence[tuple[str, bool, str]]) -> None:
    """Raise ``ConfigError`` for the first ``(field, ok, expected)`` check that fails, naming ``section.field``, what
    was expected and the value given. Float fields must also be finite (NaN and inf are refused)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{f.name}: expected a finite number, got {value!r}")
    for name, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{section}.{name}: expected {expected}, got {getattr(obj, name)!r}")


@dataclass
class SourceConfig:
    """Where frames come from. ``uri`` forms: a video path, ``camera:0`` or ``/dev/videoN``, ``rtsp://``/``http://``
    URLs, an image folder, a rosbag2 folder, or ``synthetic`` (seeded moving-object scene)."""

    uri: str = "synthetic"
    loop: bool = False
    rate_hz: float = 0.0  # 0: the source's own rate
    width: int = 640  # synthetic scene size
    height: int = 480
    num_frames: int = 300  # synthetic scene length
    seed: int = 0
    backend: str = "pyav"  # video files: pyav | decord | opencv
    frame_id: str = "camera_optical_frame"
    topic: str = ""  # bags: image topic; empty: the first image topic
    pattern: str = "*"  # image folders: glob of the files to read
    folder_fps: float = 30.0  # image folders: nominal rate for stamps
    timeout_s: float = 5.0  # network streams: open and read timeout
    rtsp_transport: str = "tcp"  # network streams: tcp | udp | udp_multicast | http
    reconnect_attempts: int = 3  # cameras: reopen attempts after a failed read
    reconnect_backoff_s: float = 0.5  # cameras: first reopen delay, doubled on each attempt

    def __post_init__(self) -> None:
        check_ranges("source", self, [
            ("rate_hz", self.rate_hz >= 0, ">= 0 (0: the source's own rate)"),
            ("width", 1 <= self.width <= 16384, "1..16384"), ("height", 1 <= self.height <= 16384, "1..16384"),
            ("num_frames", self.num_frames >= 0, ">= 0"), ("folder_fps", self.folder_fps > 0, "> 0"),
            ("timeout_s", self.timeout_s > 0, "> 0"), ("reconnect_attempts", self.reconnect_attempts >= 0, ">= 0"),
            ("reconnect_backoff_s", self.reconnect_backoff_s >= 0, ">= 0")])


@dataclass
class EncoderConfig:
    """Which encoder to build (by registry name) and where its weights come from."""

    name: str = "dualstream_s"
    checkpoint: str = ""  # safetensors path; empty: the shipped default if present, else random init
    global_every: int = 16  # run the global stream on every N-th frame (keyframes); 1 = every frame
    global_scale: float = 0.375  # input scale of the global stream relative to the frame
    global_stages: int = 0  # spread each global-stream run over this many frames; 0 = global_every, 1 = at once
    global_start_scale: float = 0.2  # staged: a stream's first global run, whole, at this scale; 0 = global_scale
    fusion_query_pool: int = 2  # fusion queries averaged over NxN cells (attention cost / N^2); 0 = the checkpoint's
    input_width: int = 640  # frames are resized to this before encoding (keeps aspect via height)
    input_height: int = 480

    def __post_init__(self) -> None:
        check_ranges("encoder", self, [
            ("global_every", self.global_every >= 1, "an integer >= 1"),
            ("global_scale", 0.0 < self.global_scale <= 4.0, "a scale in (0, 4]"),
            ("global_stages", 0 <= self.global_stages <= self.global_every,
             "an integer in [0, global_every] (0: global_every)"),
            ("global_start_scale", 0.0 <= self.global_start_scale <= 4.0, "a scale in [0, 4] (0: global_scale)"),
            ("fusion_query_pool", 0 <= self.fusion_query_pool <= 8, "an integer in [0, 8] (0: the checkpoint's)"),
            ("input_width", 0 <= self.input_width <= 16384, "0..16384 (0: the frame's own size)"),
            ("input_height", 0 <= self.input_height <= 16384, "0..16384 (0: the frame's own size)")])


@dataclass
class DetectorConfig:
    """Class-agnostic object discovery and tracking."""

    method: str = "discovery"
    score_threshold: float = 0.3
    nms_iou: float = 0.5
    min_area: int = 64
    max_detections: int = 50
    motion_weight: float = 0.5
    track_iou: float = 0.3
    track_max_misses: int = 15  # frames a lost track is kept (0.5 s at 30 fps) to bridge occlusions
    track_feature_weight: float = 0.3  # weight of appearance similarity against box IoU in association
    min_cells: int = 2  # smallest component, in stride-8 cells
    close_cells: int = 1  # radius, in cells, of the morphological closing that joins fragments (0: off)
    motion_scale: float = 0.5  # resolution of the motion analysis relative to the frame
    motion_threshold: float = 3.0  # frame difference counts as motion above this many times the noise level
    saliency_components: int = 8  # principal components of the feature model used for saliency
    saliency_momentum: float = 0.9  # weight of past frames in the running feature statistics
    saliency_smooth: int = 1  # box filter size, in cells, applied to the saliency map (1: off)
    saliency_border: int = 1  # outer ring of cells whose saliency is copied from inside (padding artefacts)
    group_similarity: float = -1.0  # neighbour cells join only above this feature cosine similarity (-1: always)
    split_depth: int = 2  # split touching objects by appearance up to this many times (0: off)
    split_min_cells: int = 6  # each part of a split has at least this many cells
    split_coherence: float = 0.7  # a split is kept when each part's largest connected piece has this share of it
    still_background: bool = True  # discovery adds background subtraction while the camera stands still
    fewshot_head: str = ""  # method "fewshot": the head file from `dualstream fewshot fit` (.safetensors + .json)

    def __post_init__(self) -> None:
        unit = "a value in [0, 1]"
        check_ranges("detector", self, [
            ("score_threshold", 0.0 <= self.score_threshold <= 1.0, unit),
            ("nms_iou", 0.0 <= self.nms_iou <= 1.0, unit),
            ("min_area", self.min_area >= 0, ">= 0"), ("max_detections", self.max_detections >= 1, ">= 1"),
            ("motion_weight", 0.0 <= self.motion_weight <= 1.0, unit),
            ("track_iou", 0.0 <= self.track_iou <= 1.0, unit),
            ("track_max_misses", self.track_max_misses >= 0, ">= 0"),
            ("track_feature_weight", 0.0 <= self.track_feature_weight <= 1.0, unit),
            ("min_cells", self.min_cells >= 1, ">= 1"), ("close_cells", self.close_cells >= 0, ">= 0"),
            ("motion_scale", 0.0 < self.motion_scale <= 1.0, "a scale in (0, 1]"),
            ("motion_threshold", self.motion_threshold >= 0, ">= 0"),
            ("saliency_components", self.saliency_components >= 1, ">= 1"),
            ("saliency_momentum", 0.0 <= self.saliency_momentum <= 1.0, unit),
            ("saliency_smooth", self.saliency_smooth >= 1, ">= 1"),
            ("saliency_border", self.saliency_border >= 0, ">= 0"),
            ("group_similarity", -1.0 <= self.group_similarity <= 1.0, "a cosine similarity in [-1, 1]"),
            ("split_depth", self.split_depth >= 0, ">= 0"), ("split_min_cells", self.split_min_cells >= 1, ">= 1"),
            ("split_coherence", 0.0 <= self.split_coherence <= 1.0, unit)])


@dataclass
class RuntimeConfig:
    """Device, precision and hand-off settings of the pipeline."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    threads: int = 0  # torch intra-op threads; 0 = auto: cores - 1 on the CPU when pipelined, else torch's default
    warmup_frames: int = 2  # blank frames run at start-up so the first real frame is not slow (0: off)
    pipelined: bool = True  # node: detect and publish frame t on a second thread while t+1 is encoded (TwoStage)
    compile: str = "none"  # CUDA only: none | inductor | cuda_graphs (torch.compile of the per-frame parts; runtime/gpu.py)
    switch_interval_ms: float = 0.2  # the interpreter's thread switch interval (process-wide; 0: Python's 5 ms)
    overlap_detection: bool = True  # the detector's image-only part (motion, background) runs while the encoder does
    overlap_global: bool = True  # CPU: the global stream's share of a frame runs on a helper thread (runtime/beside.py)
    publish_features: bool = True
    publish_pca: bool = True
    publish_debug: bool = True

    def __post_init__(self) -> None:
        check_ranges("runtime", self, [("threads", self.threads >= 0, ">= 0 (0: the library default)"),
                                       ("warmup_frames", self.warmup_frames >= 0, ">= 0"),
                                       ("switch_interval_ms", 0 <= self.switch_interval_ms <= 100,
                                        "0..100 ms (0: Python's default)"),
                                       ("compile", self.compile in ("none", "inductor", "cuda_graphs"),
                                        "none, inductor or cuda_graphs")])


@dataclass
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_value(path: str, tp: Any, value: Any) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_value(path, arm, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: expected {tp}, got {type(value).__name__} {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_check_value(f"{path}[{i}]", inner, v) for i, v in enumerate(value)]
        return list(items) if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected bool, got {type(value).__name__} {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected int, got {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected float, got {type(value).__name__} {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected str, got {type(value).__name__} {value!r}")
    if _is_dataclass_type(tp):
        return _merge(tp(), value, path)
    return value


def _merge(obj: Any, data: Any, path: str = "") -> Any:
    """Merge a mapping into a dataclass instance, returning a new instance."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    updates = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"unknown config key '{key_path}' (known keys here: {known})")
        tp = hints[key]
        if _is_dataclass_type(tp):
            updates[key] = _merge(getattr(obj, key), value, key_path)
        else:
            updates[key] = _check_value(key_path, tp, value)
    return dataclasses.replace(obj, **updates)


def parse_override(text: str) -> dict:
    """``"a.b.c=value"`` -> ``{"a": {"b": {"c": parsed}}}`` with the value parsed as a YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE, for example encoder.global_every=2")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{key}': the value is not valid YAML (safe loading): {exc}") from exc
    return nest_dotted({key: value})


def nest_dotted(flat: Mapping[str, Any]) -> dict:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}``."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def flatten_config(cfg: Any) -> dict[str, Any]:
    """``{"detector.score_threshold": 0.3, ...}`` for every leaf of a config dataclass (the inverse of nesting)."""
    flat: dict[str, Any] = {}

    def walk(d: Mapping, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(config_to_dict(cfg), "")
    return flat


def _deep_update(base: dict, extra: Mapping) -> dict:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file with ``safe_load``; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}): not a YAML file") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML (safe loading): {exc}") from exc


def load_config(
    source: str | Path | Mapping | None = None,
    overrides: Sequence[str] = (),
    cls: type = Config,
) -> Any:
    """Build a config of type ``cls`` from its defaults, a YAML file or mapping, then ``KEY=VALUE`` overrides."""
    data: dict = {}
    if isinstance(source, Mapping):
        data = dict(source)
    elif source is not None and str(source) != "":
        loaded = read_yaml(source)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {source}: top level must be a mapping, got {type(loaded).__name__}")
        data = dict(loaded)
    for text in overrides:
        _deep_update(data, parse_override(text))
    return _merge(cls(), data)


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically) so that a run can be reproduced."""
    from perception.io.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_json(cfg: Any) -> str:
    return json.dumps(config_to_dict(cfg), sort_keys=True)
