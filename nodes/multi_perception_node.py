"""multi_perception_node: several cameras through ONE model (one set of weights in memory), outputs per camera.

Parameters: ``cameras`` (camera namespaces, relative: ``[front, left, right]``), ``image_topic`` (the image topic
under each camera namespace, default ``image``), ``enabled`` (false: frames are received and counted but not
processed; the model stays loaded), and every ``perception_node`` parameter (``encoder.*``, ``detector.*``, ...;
``adaptation.enabled`` and ``rectify`` are not supported here).

Subscribes ``<camera>/<image_topic>`` (sensor_msgs/Image; ``<camera>/<image_topic>/compressed`` with
``input_transport: compressed``); publishes ``<camera>/detections``, ``<camera>/features``, ``<camera>/features/pca``,
``<camera>/debug/image`` with the input header, and one ``/diagnostics`` status per camera. The callbacks put each
camera's newest frame in a latest-per-camera hand-off; one worker takes the frames waiting from every camera and
runs them as one batch through ``MultiCameraPerceiver`` (per-camera encoder state, tracks and stamps).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from functools import partial

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from dualstream_perception.conversions import compressed_to_rgb, image_to_rgb, stamp_to_ns
from dualstream_perception.diagnostics import diagnostic_array
from dualstream_perception.node_config import PerceptionNodeConfig
from dualstream_perception.params import ConfigParameters
from dualstream_perception.perception_outputs import PerceptionOutputs
from dualstream_perception.qos import image_qos
from dualstream_perception.spin import run_node
from perception.config import ConfigError
from perception.io.atomic import write_json
from perception.io.frame import Frame
from perception.io.image_codec import ImageDecodeError
from perception.runtime.latest_batch import LatestPerKey
from perception.runtime.multi_camera import MultiCameraPerceiver
from perception.runtime.perceiver import Perceiver
from perception.runtime.stats import RollingStats

READ_ONLY = ("encoder.", "qos.", "input_transport", "runtime.device", "runtime.precision", "runtime.threads",
             "runtime.pipelined", "runtime.switch_interval_ms",
             "runtime.overlap_detection", "runtime.overlap_global", "monitor.", "adaptation.", "rectify")


class MultiPerceptionNode(Node):
    def __init__(self, name: str = "multi_perception_node", **kwargs) -> None:
        super().__init__(name, **kwargs)
        fixed = ParameterDescriptor(read_only=True)
        self.cameras = list(self.declare_parameter("cameras", ["cam0", "cam1", "cam2"], fixed).value)
        image_topic = self.declare_parameter("image_topic", "image", fixed).value
        self.declare_parameter("enabled", True, ParameterDescriptor(description="false: receive but do not process"))
        self.params = ConfigParameters(self, PerceptionNodeConfig(), read_only=READ_ONLY, on_change=self._apply)
        cfg: PerceptionNodeConfig = self.params.config
        if cfg.adaptation.enabled or cfg.rectify:
            raise ConfigError("multi_perception_node: adaptation.enabled and rectify are not supported with several "
                              "cameras; run perception_node per camera for them")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"multi_perception_node: cameras {self.cameras}: expected distinct camera namespaces")
        # one worker runs each batch whole (runtime.pipelined is perception_node's), so the perceiver's automatic
        # thread count is the serial one: all cores for the batched encoder
        serial = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, pipelined=False))
        self.multi = MultiCameraPerceiver(Perceiver(serial), self.cameras)
        qos = image_qos(cfg.qos.reliability, cfg.qos.depth)
        compressed = cfg.input_transport == "compressed"
        msg_type, decode = (CompressedImage, compressed_to_rgb) if compressed else (Image, image_to_rgb)
        self.outputs, self.subs, self.stats = {}, {}, {}
        self.received, self.bad, self.skipped = Counter(), Counter(), Counter()
        self.seq = Counter()
        for cam in self.cameras:
            topic = f"{cam}/{image_topic}" + ("/compressed" if compressed else "")
            self.subs[cam] = self.create_subscription(msg_type, topic, partial(self._on_image, cam, decode), qos)
            self.outputs[cam] = PerceptionOutputs(self, qos, prefix=f"{cam}/")
            self.stats[cam] = RollingStats()
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.slots: LatestPerKey = LatestPerKey()
        self.errors, self.last_problem = 0, ""
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="multi_perception_worker", daemon=True)
        self._worker.start()
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(f"{len(self.cameras)} cameras ({', '.join(s.topic_name for s in self.subs.values())}) "
                               f"through one {cfg.encoder.name} on {self.multi.perceiver.device}")

    def _on_image(self, cam: str, decode, msg) -> None:
        self.received[cam] += 1
        try:
            image = decode(msg)
        except ImageDecodeError as exc:
            self.bad[cam] += 1
            self.last_problem = f"{cam}: {exc}"
            self.get_logger().warning(f"bad message on {self.subs[cam].topic_name}: {exc}", throttle_duration_sec=2.0)
            return
        frame = Frame(image=image, stamp_ns=stamp_to_ns(msg.header.stamp), frame_id=msg.header.frame_id,
                      seq=self.seq[cam])
        self.seq[cam] += 1
        self.slots.put(cam, (frame, msg.header, time.monotonic()))

    @property
    def enabled(self) -> bool:
        return bool(self.get_parameter("enabled").value)

    def _work(self) -> None:
        while not self._stop.is_set():
            items = self.slots.take_all(timeout=0.1)
            if not items:
                continue
            if not self.enabled:
                self.skipped.update(items.keys())
                continue
            try:
                results = self.multi.process({cam: item[0] for cam, item in items.items()})
            except Exception as exc:  # noqa: BLE001 - the node keeps serving; counted and logged
                self.errors += 1
                self.last_problem = f"processing: {type(exc).__name__}: {exc}"
                self.get_logger().error(self.last_problem, throttle_duration_sec=2.0)
                continue
            runtime = self.params.config.runtime
            for cam, result in results.items():
                _, header, received_at = items[cam]
                self.outputs[cam].publish(result, header, runtime)
                self.stats[cam].tick((time.monotonic() - received_at) * 1000.0)

    def _apply(self, cfg: PerceptionNodeConfig) -> None:
        self.multi.update_detector(cfg.detector)

    def counters(self) -> dict:
        per_camera = {}
        for cam in self.cameras:
            latency = self.stats[cam].latency_ms()
            per_camera[cam] = {"received": self.received[cam], "processed": self.stats[cam].count,
                               "dropped": self.slots.dropped[cam], "bad_messages": self.bad[cam],
                               "skipped_disabled": self.skipped[cam], "rate_hz": self.stats[cam].rate_hz(),
                               "latency_p50_ms": latency["p50"], "latency_p95_ms": latency["p95"]}
        params = list(self.multi.encoder.parameters())
        return {"cameras": per_camera, "batches": {str(k): v for k, v in sorted(self.multi.batches.items())},
                "encoder_parameters": sum(p.numel() for p in params), "processing_errors": self.errors,
                "enabled": self.enabled, "device": str(self.multi.perceiver.device), "last_problem": self.last_problem}

    def _publish_diagnostics(self) -> None:
        counters = self.counters()
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        for cam, values in counters["cameras"].items():
            level, message = ("WARN", self.last_problem) if (self.errors or self.bad[cam]) else ("OK", "running")
            if not counters["enabled"]:
                level, message = "OK", "disabled (parameter enabled: false)"
            out.status += diagnostic_array(out.header.stamp, f"{self.get_name()}: {cam}", cam, level, message,
                                           {**values, "batches": counters["batches"]}).status
        self.diag_pub.publish(out)

    def destroy_node(self) -> None:
        if hasattr(self, "_worker"):  # absent when the constructor refused the parameters
            self._stop.set()
            self.slots.close()
            self._worker.join(timeout=5.0)
            if self.params.config.stats_path:
                write_json(self.params.config.stats_path, self.counters())
        super().destroy_node()


def main(args=None) -> None:
    run_node(MultiPerceptionNode, args)


if __name__ == "__main__":
    main()
