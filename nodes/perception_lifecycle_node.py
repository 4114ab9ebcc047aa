"""perception_lifecycle_node: ``perception_node`` as a managed (lifecycle) node, with a runtime enable/disable.

Transitions (``ros2 lifecycle set /perception_lifecycle_node configure`` or the ``~/change_state`` service):

- configure: read and check the parameters (checkpoint file and metadata, encoder name, device, detector; no
  weights are loaded), create the output publishers. A problem fails the transition: the reason is logged and
  published on ``/diagnostics`` (level ERROR), and the node stays *unconfigured*, so fixing the parameter and
  configuring again works.
- activate: load the model (``Perceiver``) and subscribe ``image`` (or ``image/compressed``); outputs flow.
  A model that fails to load fails the transition and leaves the node *inactive*.
- deactivate: unsubscribe, stop the worker, release the model and its memory (CUDA cache emptied).
- cleanup: destroy the publishers (back to *unconfigured*); shutdown: release everything.

Parameters are those of ``perception_node``; restart-only ones (``encoder.*``, ``qos.*``, ``input_transport``,
``runtime.device|precision|threads``) may change only while *unconfigured*. ``enabled`` (bool, also the service
``~/set_enabled``, std_srvs/SetBool) pauses processing while active without unloading the model: frames are
received and counted (``skipped_disabled``) but not processed. Topics and outputs are those of ``perception_node``.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool

from dualstream_perception.conversions import compressed_to_rgb, image_to_rgb, stamp_to_ns
from dualstream_perception.diagnostics import diagnostic_array
from dualstream_perception.node_config import PerceptionNodeConfig
from dualstream_perception.params import ConfigParameters
from dualstream_perception.perception_outputs import PerceptionOutputs
from dualstream_perception.qos import image_qos
from dualstream_perception.spin import run_node
from perception.io.frame import Frame
from perception.io.image_codec import ImageDecodeError
from perception.runtime.config_checks import startup_problem
from perception.runtime.latest import LatestSlot
from perception.runtime.perceiver import Perceiver
from perception.runtime.stats import RollingStats

RESTART_ONLY = ("encoder.", "qos.", "input_transport", "runtime.device", "runtime.precision", "runtime.threads")
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PerceptionLifecycleNode(LifecycleNode):
    def __init__(self, name: str = "perception_lifecycle_node", **kwargs) -> None:
        self.sub = self.slot = self._worker = self.perceiver = self.outputs = None
        super().__init__(name, **kwargs)
        self.declare_parameter("enabled", True, ParameterDescriptor(description="false: pause processing"))
        self.params = ConfigParameters(self, PerceptionNodeConfig(), on_change=self._apply)
        self.add_on_set_parameters_callback(self._guard_restart_only)  # runs before ConfigParameters' check
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetBool, "~/set_enabled", self._on_set_enabled)
        self.state_label = "unconfigured"
        self.last_error = ""
        self.outputs: PerceptionOutputs | None = None
        self.perceiver: Perceiver | None = None
        self.sub = None
        self.slot: LatestSlot | None = None
        self._worker: threading.Thread | None = None
        self.received = self.skipped = self.bad = self.errors = 0
        self.processing = RollingStats()
        self.create_timer(self.params.config.diagnostics_period_s, self._publish_diagnostics)

    # -- parameters ----------------------------------------------------------------------------------------------
    def _guard_restart_only(self, params) -> SetParametersResult:
        if self.state_label == "unconfigured":
            return SetParametersResult(successful=True)
        fixed = [p.name for p in params if p.name.startswith(RESTART_ONLY)]
        if fixed:
            return SetParametersResult(successful=False, reason=f"{', '.join(fixed)} can change only while "
                                       f"unconfigured (now {self.state_label}): deactivate and cleanup first")
        return SetParametersResult(successful=True)

    def _apply(self, cfg: PerceptionNodeConfig) -> None:
        if self.perceiver is not None:
            self.perceiver.update_detector(cfg.detector)

    @property
    def enabled(self) -> bool:
        return bool(self.get_parameter("enabled").value)

    def _on_set_enabled(self, request, response):
        from rclpy.parameter import Parameter  # noqa: PLC0415

        result = self.set_parameters([Parameter("enabled", value=bool(request.data))])[0]
        response.success, response.message = result.successful, f"enabled: {self.enabled}"
        return response

    # -- transitions ---------------------------------------------------------------------------------------------
    def _fail(self, transition: str, reason: str) -> TransitionCallbackReturn:
        self.last_error = f"{transition} failed: {reason}"
        self.get_logger().error(self.last_error)
        self._publish_diagnostics()
        return FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.params.config
        problem = startup_problem(cfg)
        if problem:
            return self._fail("configure", problem)
        self.outputs = PerceptionOutputs(self, image_qos(cfg.qos.reliability, cfg.qos.depth), lifecycle=True)
        self.last_error, self.state_label = "", "inactive"
        self.get_logger().info(f"configured: encoder {cfg.encoder.name}, checkpoint "
                               f"'{cfg.encoder.checkpoint or 'default'}'")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.params.config
        try:
            # its worker runs each frame whole (runtime.pipelined is perception_node's): the serial thread count
            self.perceiver = Perceiver(dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime,
                                                                                            pipelined=False)))
        except Exception as exc:  # noqa: BLE001 - the reason is reported; the node stays inactive
            self.perceiver = None
            return self._fail("activate", f"loading the model: {type(exc).__name__}: {exc}")
        self.slot = LatestSlot()
        self._worker = threading.Thread(target=self._work, args=(self.slot, self.perceiver), daemon=True,
                                        name="lifecycle_perception_worker")
        self._worker.start()
        qos = image_qos(cfg.qos.reliability, cfg.qos.depth)
        if cfg.input_transport == "compressed":
            self.sub = self.create_subscription(CompressedImage, "image/compressed",
                                                lambda m: self._on_image(m, compressed_to_rgb), qos)
        else:
            self.sub = self.create_subscription(Image, "image", lambda m: self._on_image(m, image_to_rgb), qos)
        self.state_label = "active"
        self.get_logger().info(f"active: {cfg.encoder.name} on {self.perceiver.device}, listening on "
                               f"{self.sub.topic_name}")
        return super().on_activate(state)

    def _release(self) -> None:
        """Unsubscribe, stop the worker, drop the model and return its memory."""
        if self.sub is not None:
            self.destroy_subscription(self.sub)
            self.sub = None
        if self.slot is not None:
            self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        self.slot, self._worker, self.perceiver = None, None, None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.outputs is not None:
            self.outputs.destroy(self)
            self.outputs = None
        self.state_label = "unconfigured"
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.on_cleanup(state)
        self.state_label = "finalized"
        return SUCCESS

    # -- frames --------------------------------------------------------------------------------------------------
    def _on_image(self, msg, decode) -> None:
        self.received += 1
        try:
            image = decode(msg)
        except ImageDecodeError as exc:
            self.bad += 1
            self.get_logger().warning(f"bad message: {exc}", throttle_duration_sec=2.0)
            return
        if not self.enabled:
            self.skipped += 1
            return
        slot = self.slot
        if slot is not None and not slot.closed:
            frame = Frame(image=image, stamp_ns=stamp_to_ns(msg.header.stamp), frame_id=msg.header.frame_id,
                          seq=self.received)
            slot.put((frame, msg.header, time.monotonic()))

    def _work(self, slot: LatestSlot, perceiver: Perceiver) -> None:
        while (item := slot.get(timeout=0.1)) is not None or not slot.closed:
            if item is None:
                continue
            frame, header, received_at = item
            try:
                result = perceiver.process(frame)
                if self.outputs is not None:
                    self.outputs.publish(result, header, self.params.config.runtime)
            except Exception as exc:  # noqa: BLE001 - counted and logged; the node keeps serving
                self.errors += 1
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=2.0)
                continue
            self.processing.tick((time.monotonic() - received_at) * 1000.0)

    # -- reporting -----------------------------------------------------------------------------------------------
    def counters(self) -> dict:
        return {"state": self.state_label, "enabled": self.enabled, "model_loaded": self.perceiver is not None,
                "received": self.received, "processed": self.processing.count, "skipped_disabled": self.skipped,
                "bad_messages": self.bad, "processing_errors": self.errors, "last_error": self.last_error}

    def _publish_diagnostics(self) -> None:
        level, message = ("ERROR", self.last_error) if self.last_error else ("OK", self.state_label)
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{self.get_name()}: perception",
                                               self.get_fully_qualified_name(), level, message, self.counters()))

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()


def main(args=None) -> None:
    run_node(PerceptionLifecycleNode, args)


if __name__ == "__main__":
    main()
