"""camera_node: publishes ``image_raw`` (sensor_msgs/Image) and ``camera_info`` from any frame source.

Sources: video files, camera devices, network streams, image folders, rosbag2 folders, the synthetic scene
(``source.uri``). Frames go out at the source's rate or ``source.rate_hz``, optionally looping, stamped with the node
clock, so ``use_sim_time`` gives simulated stamps. Topic names are relative: namespaces and remapping work.

``camera_info`` carries the calibration of ``camera_info_url`` (``file://``, ``package://`` or a path; ROS
camera_calibration YAML), scaled to the stream's resolution, or only width and height when there is none. The
``~/set_camera_info`` service (sensor_msgs/srv/SetCameraInfo, as ROS's cameracalibrator sends it) stores a new
calibration in that file atomically and publishes it from the next frame on.

``/diagnostics`` (every ``diagnostics_period_s``): the source's state -- streaming, a camera reconnecting after
failed reads (WARN, with how long it has been down and the next attempt), ended, or failed (ERROR with the reason).
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.srv import SetCameraInfo
from std_msgs.msg import Header

from dualstream_perception.camera_info import CameraInfoManager
from dualstream_perception.camera_status import source_diagnostic
from dualstream_perception.conversions import rgb_to_compressed, rgb_to_image
from dualstream_perception.diagnostics import diagnostic_array
from dualstream_perception.node_config import CameraNodeConfig
from dualstream_perception.params import ConfigParameters
from dualstream_perception.qos import image_qos
from dualstream_perception.spin import run_node
from perception.io.atomic import write_json
from perception.io.factory import open_source
from perception.io.pacing import paced


class CameraNode(Node):
    def __init__(self, name: str = "camera_node", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.params = ConfigParameters(self, CameraNodeConfig(), read_only=("source.", "qos.", "encoding",
                                                                              "camera_info_url"))
        cfg: CameraNodeConfig = self.params.config
        qos = image_qos(cfg.qos.reliability, cfg.qos.depth)
        self.image_pub = self.create_publisher(Image, "image_raw", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.camera_info = CameraInfoManager(cfg.camera_info_url, self.get_logger())
        self.set_info_srv = self.create_service(SetCameraInfo, "~/set_camera_info", self._on_set_camera_info)
        self.compressed_pub = (self.create_publisher(CompressedImage, "image_raw/compressed", qos)
                               if cfg.publish_compressed else None)
        self.published = 0
        self.state, self.error, self._source = "opening", "", None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera_publisher", daemon=True)
        self._thread.start()

    def _wait_for_subscribers(self, cfg: CameraNodeConfig) -> None:
        if cfg.wait_for_subscribers <= 0:
            return
        deadline = time.monotonic() + cfg.wait_timeout_s
        while self.image_pub.get_subscription_count() < cfg.wait_for_subscribers and not self._stop.is_set():
            if time.monotonic() > deadline:
                self.get_logger().warning(
                    f"only {self.image_pub.get_subscription_count()} of {cfg.wait_for_subscribers} subscribers after "
                    f"{cfg.wait_timeout_s:.1f} s; publishing anyway")
                return
            time.sleep(0.05)
        self._stop.wait(cfg.startup_delay_s)

    def _run(self) -> None:
        cfg: CameraNodeConfig = self.params.config
        try:
            source = open_source(cfg.source)
        except Exception as exc:  # noqa: BLE001 - any failure to open is reported; the node stays up
            self.state, self.error = "failed", f"cannot open source '{cfg.source.uri}': {exc}"
            self.get_logger().error(self.error)
            self.finished.set()
            return
        self._source, self.state = source, "streaming"
        self.get_logger().info(f"publishing {source.name} on {self.image_pub.topic_name}")
        self._wait_for_subscribers(cfg)
        try:
            for frame in paced(source, cfg.source.rate_hz or None, loop=cfg.source.loop):
                if self._stop.is_set() or (cfg.max_frames and self.published >= cfg.max_frames):
                    break
                self._publish(frame.image, cfg)
            self.state = "ended"
        except Exception as exc:  # noqa: BLE001 - a failing source ends publishing with a clear log, not a crash
            self.state, self.error = "failed", f"after {self.published} frames: {type(exc).__name__}: {exc}"
            self.get_logger().error(f"source failed {self.error}")
        finally:
            source.close()
            self.get_logger().info(f"source ended after {self.published} frames")
            self._write_stats(cfg)
            self.finished.set()

    def _publish_diagnostics(self) -> None:
        status = getattr(self._source, "status", None)
        level, message, values = source_diagnostic(self.state, self.published, status() if status else None,
                                                   self.error)
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{self.get_name()}: source",
                                               self.get_fully_qualified_name(), level, message, values))

    def _write_stats(self, cfg: CameraNodeConfig) -> None:
        if not cfg.stats_path:
            return
        write_json(cfg.stats_path, {"published": self.published, "source": cfg.source.uri})

    def _publish(self, image, cfg: CameraNodeConfig) -> None:
        header = Header(frame_id=cfg.source.frame_id)
        header.stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(rgb_to_image(image, header, cfg.encoding))
        if self.compressed_pub is not None:
            self.compressed_pub.publish(rgb_to_compressed(image, header))
        self.info_pub.publish(self.camera_info.message(header, image.shape[1], image.shape[0]))
        self.published += 1

    def _on_set_camera_info(self, request: SetCameraInfo.Request, response: SetCameraInfo.Response):
        response.success, response.status_message = self.camera_info.set(request.camera_info)
        if not response.success:
            self.get_logger().warning(f"set_camera_info: {response.status_message}")
        return response

    def destroy_node(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        super().destroy_node()


def main(args=None) -> None:
    run_node(CameraNode, args, finished=lambda node: node.finished.is_set() and node.params.config.exit_at_end)


if __name__ == "__main__":
    main()
