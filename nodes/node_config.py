"""Parameter groups of the nodes, as dataclasses (so that ``ConfigParameters`` declares and validates them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.adaptation.config import AdaptationConfig
from perception.config import DetectorConfig, EncoderConfig, RuntimeConfig, SourceConfig
from perception.monitor.config import MonitorConfig


@dataclass
class QosConfig:
    """QoS of image-like topics: sensor-data defaults."""

    reliability: str = "best_effort"  # best_effort | reliable
    depth: int = 1


@dataclass
class CameraNodeConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    qos: QosConfig = field(default_factory=QosConfig)
    encoding: str = "rgb8"  # encoding of image_raw: rgb8 | bgr8 | mono8
    publish_compressed: bool = False  # also publish image_raw/compressed (jpeg)
    wait_for_subscribers: int = 0  # hold the first frame until this many subscribers match image_raw
    wait_timeout_s: float = 10.0
    startup_delay_s: float = 0.0  # extra wait after the subscribers matched (lets the rest of the graph discover)
    stats_path: str = ""  # write {"published": N, ...} as JSON here when the source ends or the node stops
    exit_at_end: bool = False  # shut the node down when a finite source ends (no loop)
    max_frames: int = 0  # 0: no limit
    camera_info_url: str = ""  # calibration YAML (file://, package:// or a path); empty: uncalibrated camera_info
    diagnostics_period_s: float = 1.0  # /diagnostics: the source's state (streaming, reconnecting, ended, failed)


@dataclass
class PerceptionNodeConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)  # online adaptation (off by default)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)  # drift / OOD / low-light levels in diagnostics
    qos: QosConfig = field(default_factory=QosConfig)
    input_transport: str = "raw"  # raw: subscribe `image`; compressed: subscribe `image/compressed`
    diagnostics_period_s: float = 1.0
    stats_path: str = ""  # write counters as JSON here on shutdown (empty: do not)
    rectify: bool = False  # undistort/rectify with the latest camera_info; boxes are then in the rectified frame
