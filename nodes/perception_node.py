"""perception_node: images in, dense features and detections out, with diagnostics.

Subscribes ``image`` (sensor_msgs/Image) or ``image/compressed`` (``input_transport: compressed``). Publishes, each
with the input header: ``detections`` (vision_msgs/Detection2DArray), ``features`` (Image ``32FC<C>``, one pixel per
stride-8 cell), ``features/pca`` (rgb8), ``debug/image`` (rgb8 overlay) and ``/diagnostics``.

The subscription callback only decodes and hands the frame to a latest-only slot; a worker thread runs the core
``Perceiver`` on the newest frame, so a slow model drops old frames (counted) instead of queueing them. With
``runtime.pipelined`` (default) the worker only encodes; detection, the monitor and publishing of that frame run on a
second thread (``perception.runtime.staged.TwoStage``) while the worker encodes the next one, so the frame rate is set
by the longer half instead of their sum; every encoded frame is finished, in order. A bad message is logged with what
was wrong, counted, and skipped.

``camera_info`` is always subscribed. With ``rectify: true`` the worker undistorts and rectifies each frame with the
latest calibration received (``perception.geometry.rectify``; maps built once per calibration and resolution) before
the model sees it, so every output (detections, features, overlay) is in the RECTIFIED frame: pixel coordinates of
that camera_info's ``P``, not of the raw image. Until a usable camera_info arrives, frames are skipped and counted
(``not_rectified``) rather than processed unrectified.

With ``adaptation.enabled`` the encoder adapts online (``perception.adaptation``); services ``~/adaptation/reset``
and ``~/adaptation/snapshot`` (std_srvs/Trigger); ``adaptation.lr``, ``max_updates_per_s`` and ``compute_share`` change
live, the rest of the group needs a restart. The monitor (``perception.monitor``) adds image-quality, drift and OOD
levels; both appear in ``/diagnostics`` (``adaptation_*``, ``*_level`` values).

``stats_path`` (written on shutdown) holds the counters of ``/diagnostics`` plus ``timeline``: for each published
frame the wall-clock marks stamp, received, taken (from the latest-only slot), encoded, finishing and published
(``perception.runtime.frame_timeline``), summarised per step and for the slowest 5 % of frames (``timeline_rows``: the
last 2,000 chains, for joining with a subscriber's receipts as ``dualstream bench`` does).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from dualstream_perception.camera_info import msg_to_camera_info_fields
from dualstream_perception.conversions import compressed_to_rgb, image_to_rgb, stamp_to_ns
from dualstream_perception.diagnostics import diagnostic_array
from dualstream_perception.node_config import PerceptionNodeConfig
from dualstream_perception.params import ConfigParameters
from dualstream_perception.perception_outputs import PerceptionOutputs
from dualstream_perception.qos import image_qos
from dualstream_perception.spin import run_node
from perception.adaptation import OnlineAdapter, attach_online_adapter
from perception.geometry.rectify import LatestRectifier
from perception.io.atomic import write_json
from perception.io.frame import Frame
from perception.io.image_codec import ImageDecodeError
from perception.monitor import StreamMonitor, stream_health
from perception.runtime.blas import single_threaded_blas
from perception.runtime.frame_timeline import FrameTimeline, now_ns
from perception.runtime.gc_pauses import GcPauses, freeze_start_up
from perception.runtime.latest import LatestSlot
from perception.runtime.perceiver import Perceiver
from perception.runtime.resilience import NonFiniteOutput, ResilientPerceiver
from perception.runtime.staged import TwoStage
from perception.runtime.stats import RollingStats


_ADAPTATION_RESTART = tuple(f"adaptation.{f.name}" for f in dataclasses.fields(PerceptionNodeConfig().adaptation)
                            if f.name not in OnlineAdapter.LIVE_SETTINGS)


class PerceptionNode(Node):
    def __init__(self, name: str = "perception_node", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.params = ConfigParameters(self, PerceptionNodeConfig(),
                                       read_only=("encoder.", "qos.", "input_transport", "runtime.device",
                                                  "runtime.precision", "runtime.threads", "runtime.pipelined",
                                                  "runtime.compile", "runtime.switch_interval_ms",
                                                  "runtime.overlap_detection", "runtime.overlap_global",
                                                  "monitor.",
                                                  *_ADAPTATION_RESTART),
                                       on_change=self._apply_config)
        cfg: PerceptionNodeConfig = self.params.config
        self.perceiver = Perceiver(cfg)
        self.adapter: OnlineAdapter | None = None
        if cfg.adaptation.enabled:
            self.adapter, note = attach_online_adapter(self.perceiver, cfg.adaptation)
            self.get_logger().info(note)
        self.monitor = StreamMonitor(cfg.monitor) if cfg.monitor.enabled else None
        # NaN/inf outputs dropped and counted, out-of-memory degrades step by step (perception.runtime.resilience)
        self.resilient = ResilientPerceiver(self.perceiver, self.adapter, warn=self.get_logger().warning)
        self.create_service(Trigger, "~/adaptation/reset", self._on_adaptation_reset)
        self.create_service(Trigger, "~/adaptation/snapshot", self._on_adaptation_snapshot)
        qos = image_qos(cfg.qos.reliability, cfg.qos.depth)
        self.outputs = PerceptionOutputs(self, qos)
        self.det_pub = self.outputs.detections
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if cfg.input_transport == "compressed":
            self.sub = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, qos)
        elif cfg.input_transport == "raw":
            self.sub = self.create_subscription(Image, "image", self._on_image, qos)
        else:
            raise ValueError(f"input_transport '{cfg.input_transport}': expected 'raw' or 'compressed'")
        self.calibration = LatestRectifier()
        self.info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
        self.slot: LatestSlot = LatestSlot()
        self.received = 0
        self.bad = Counter()
        self.errors = 0
        self.last_problem = ""
        self.processing = RollingStats()
        self.timeline = FrameTimeline()  # per published frame: where its latency went (stats file)
        self.stage_ms: dict[str, float] = {}
        self.seq = 0
        self._stop = threading.Event()
        self.tail = (TwoStage(self._finish, lambda item, exc: self._failed(item[0], exc), name="perception_finish")
                     if cfg.runtime.pipelined else None)
        self._worker = threading.Thread(target=self._work, name="perception_worker", daemon=True)
        self._worker.start()
        self.diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        # the collector's pauses hold every thread: what start-up made is never walked again, and each pause from now
        # on is counted in /diagnostics (logged from 20 ms)
        frozen = freeze_start_up()
        self.gc_pauses = GcPauses(warn_ms=20.0, warn=self.get_logger().warning).install()
        self.get_logger().info(f"listening on {self.sub.topic_name}; encoder {cfg.encoder.name} on "
                               f"{self.perceiver.device} ({self.perceiver.precision}); {frozen} start-up objects "
                               "frozen")

    # -- input -------------------------------------------------------------------------------------------------
    def _reject(self, kind: str, detail: str, topic: str | None = None) -> None:
        self.bad[kind] += 1
        self.last_problem = f"{kind}: {detail}"
        self.get_logger().warning(f"bad message on {topic or self.sub.topic_name} ({kind}): {detail}",
                                  throttle_duration_sec=2.0)

    def _accept(self, image, header, received_ns: int) -> None:
        stamp = stamp_to_ns(header.stamp)
        frame = Frame(image=image, stamp_ns=stamp, frame_id=header.frame_id, seq=self.seq)
        self.seq += 1
        self.slot.put((frame, header, time.monotonic(), {"stamp": stamp, "received": received_ns}))

    def _on_image(self, msg: Image) -> None:
        received_ns = now_ns()
        self.received += 1
        try:
            image = image_to_rgb(msg)
        except ImageDecodeError as exc:
            self._reject("image", str(exc))
            return
        self._accept(image, msg.header, received_ns)

    def _on_compressed(self, msg: CompressedImage) -> None:
        received_ns = now_ns()
        self.received += 1
        try:
            image = compressed_to_rgb(msg)
        except ImageDecodeError as exc:
            self._reject("compressed", str(exc))
            return
        self._accept(image, msg.header, received_ns)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        if not self.calibration.update(msg_to_camera_info_fields(msg)) and any(msg.k):  # all-zero K: uncalibrated
            self._reject("camera_info", self.calibration.problem, self.info_sub.topic_name)

    # -- processing ----------------------------------------------------------------------------------------------
    def _rectified(self, frame: Frame) -> Frame | None:
        rectifier = self.calibration.rectifier
        if rectifier is None:
            self.bad["not_rectified"] += 1
            self.last_problem = f"rectify is on but {self.calibration.problem}: frame skipped"
            self.get_logger().warning(self.last_problem, throttle_duration_sec=2.0)
            return None
        return dataclasses.replace(frame, image=rectifier.rectify(frame.image))

    def _work(self) -> None:
        """The first half of each frame (rectify, encode) on this thread; the second half (detection, monitor,
        publishing) here too, or on ``self.tail`` while the next frame is encoded (``runtime.pipelined``)."""
        while not self._stop.is_set():
            item = self.slot.get(timeout=0.1)
            if item is None:
                continue
            frame, header, received_at, marks = item
            marks["taken"] = now_ns()
            try:
                if self.params.config.rectify and (frame := self._rectified(frame)) is None:
                    continue
                encoded = self.resilient.encode(frame)
            except Exception as exc:  # noqa: BLE001 - the node must keep serving; the error is counted and logged
                self._failed(frame, exc)
                continue
            marks["encoded"] = now_ns()
            if self.tail is not None:
                self.tail.submit((frame, header, received_at, marks, encoded))
            else:
                self._finish((frame, header, received_at, marks, encoded))

    def _finish(self, item) -> None:
        frame, header, received_at, marks, encoded = item
        marks["finishing"] = now_ns()
        try:
            result = self.resilient.finish(encoded)
            self._publish(result, header)
            marks["published"] = now_ns()
            self.stage_ms = result.timings_ms
        except NonFiniteOutput as exc:  # counted in non_finite_outputs; nothing is published for the frame
            self.last_problem = str(exc)
            self.get_logger().warning(str(exc), throttle_duration_sec=2.0)
            return
        except Exception as exc:  # noqa: BLE001 - the node must keep serving; the error is counted and logged
            self._failed(frame, exc)
            return
        self.processing.tick((time.monotonic() - received_at) * 1000.0)
        self.timeline.add(marks)
        if self.monitor is not None:  # after publishing: its cost (a reference fit takes tens of ms once) is not the
            try:                      # frame's latency; it only feeds /diagnostics
                with single_threaded_blas():  # small products: BLAS threads would only spin (runtime/blas.py)
                    self.monitor.update(frame.image, result.global_embedding)
            except Exception as exc:  # noqa: BLE001 - a monitor failure is counted and logged, the node keeps serving
                self._failed(frame, exc)

    def _failed(self, frame: Frame, exc: BaseException) -> None:
        self.errors += 1
        self.last_problem = f"processing: {type(exc).__name__}: {exc}"
        self.get_logger().error(f"frame {frame.seq} failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)

    def _publish(self, result, header) -> None:
        self.outputs.publish(result, header, self.params.config.runtime)

    def _apply_config(self, cfg: PerceptionNodeConfig) -> None:
        self.perceiver.update_detector(cfg.detector)
        if self.adapter is not None:
            self.adapter.apply_live_settings(cfg.adaptation)

    def _on_adaptation_reset(self, request, response):
        response.success = self.adapter is not None
        response.message = self.adapter.reset() if self.adapter else "adaptation is disabled (adaptation.enabled)"
        return response

    def _on_adaptation_snapshot(self, request, response):
        response.success = self.adapter is not None
        response.message = (self.adapter.take_snapshot() if self.adapter
                            else "adaptation is disabled (adaptation.enabled)")
        return response

    # -- reporting -----------------------------------------------------------------------------------------------
    def health(self):
        return stream_health(self.monitor.last if self.monitor else None,
                             self.adapter.stats() if self.adapter else None)

    def counters(self) -> dict:
        latency = self.processing.latency_ms()
        return {
            "received": self.received,
            "processed": self.processing.count,
            "dropped": self.slot.dropped,
            "bad_messages": sum(self.bad.values()),
            "processing_errors": self.errors,
            "rate_hz": self.processing.rate_hz(),
            "latency_p50_ms": latency["p50"],
            "latency_p95_ms": latency["p95"],
            **{f"{stage}_ms": ms for stage, ms in self.stage_ms.items()},
            "last_problem": self.last_problem,
            "device": str(self.perceiver.device),
            "frame_calibration": self.perceiver.frame_calibration(),
            **self.resilient.values(),
            **self.gc_pauses.values(),
            **self.health().values,
        }

    def _publish_diagnostics(self) -> None:
        values = self.counters()
        level, message = "OK", "running"
        if self.errors or self.bad or self.resilient.non_finite or self.resilient.degradations:
            level, message = "WARN", self.last_problem
        if self.received and not self.processing.count:
            level, message = "WARN", "receiving images but nothing processed yet"
        health = self.health()
        if (health.problems and level == "OK") or health.level == "ERROR":
            level, message = health.level, "; ".join(health.problems)
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{self.get_name()}: perception",
                                               self.get_fully_qualified_name(), level, message, values))

    def write_stats(self) -> None:
        path = self.params.config.stats_path
        if not path:
            return
        write_json(path, {**self.counters(), "timeline": self.timeline.summary(),
                          "timeline_rows": self.timeline.rows()})

    def destroy_node(self) -> None:
        if hasattr(self, "_worker"):  # absent when the constructor failed (a bad parameter): nothing to stop
            self._stop.set()
            self.slot.close()
            self._worker.join(timeout=5.0)
            if self.tail is not None:
                self.tail.close()
            if self.adapter is not None:
                self.adapter.stop(save=True)
            self.write_stats()
            self.gc_pauses.remove()
        super().destroy_node()


def main(args=None) -> None:
    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
