"""perception_lifecycle_node over real rclpy: transitions through the lifecycle services, a failed configure that
says why and recovers, the model released on deactivate, restart-only parameters guarded, runtime enable/disable."""

from __future__ import annotations

import gc
import weakref

import pytest
import rclpy.node
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import rgb_to_image
from dualstream_perception.perception_lifecycle_node import PerceptionLifecycleNode
from dualstream_perception.qos import image_qos
from perception.io.synthetic import SyntheticScene

pytestmark = pytest.mark.ros

MISSING = "/nonexistent/dualstream_missing.safetensors"
NAME = "perception_lifecycle_node"


class LifecycleClient:
    def __init__(self, ros, wait_for) -> None:
        self.node = ros.add(rclpy.node.Node("lifecycle_client", context=ros.context))
        self.wait_for = wait_for
        self.change = self.node.create_client(ChangeState, f"/{NAME}/change_state")
        self.get = self.node.create_client(GetState, f"/{NAME}/get_state")
        self.enable = self.node.create_client(SetBool, f"/{NAME}/set_enabled")
        for client in (self.change, self.get, self.enable):
            assert client.wait_for_service(timeout_sec=10.0), client.srv_name

    def call(self, client, request):
        future = client.call_async(request)
        assert self.wait_for(future.done, timeout=60.0), f"no answer from {client.srv_name}"
        return future.result()

    def transition(self, transition_id: int) -> bool:
        return self.call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state(self) -> int:
        return self.call(self.get, GetState.Request()).current_state.id


def test_lifecycle_transitions(ros, wait_for, one_torch_thread):
    node = ros.add(PerceptionLifecycleNode(context=ros.context, parameter_overrides=[
        Parameter("encoder.name", value="dualstream_tiny"), Parameter("encoder.checkpoint", value=MISSING),
        Parameter("qos.reliability", value="reliable"), Parameter("qos.depth", value=10),
        Parameter("runtime.publish_pca", value=False), Parameter("runtime.publish_debug", value=False)]))
    client = LifecycleClient(ros, wait_for)
    qos = image_qos("reliable", 10)
    image_pub = client.node.create_publisher(Image, "image", qos)
    detections: list = []
    client.node.create_subscription(Detection2DArray, "detections", detections.append, qos)
    diagnostics: list = []
    client.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    frames = [f.image for f in SyntheticScene(width=320, height=240, num_frames=4, seed=2)]

    def send(sec: int) -> None:
        header = Header(frame_id="cam")
        header.stamp.sec = sec
        image_pub.publish(rgb_to_image(frames[sec % 4], header))

    # a failed configure reports why and leaves the node unconfigured
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert not client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    reason = f"configure failed: encoder.checkpoint '{MISSING}': file not found"
    assert node.last_error.startswith(reason)
    assert wait_for(lambda: any(s.message.startswith(reason) and s.level == b"\x02" for a in diagnostics
                                for s in a.status), timeout=5.0)
    assert node.outputs is None and node.perceiver is None

    # fixed while unconfigured: configure succeeds; restart-only parameters are now guarded
    assert node.set_parameters([Parameter("encoder.checkpoint", value="")])[0].successful
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == State.PRIMARY_STATE_INACTIVE and node.perceiver is None  # no model before activate
    refused = node.set_parameters([Parameter("encoder.name", value="dualstream_s")])[0]
    assert not refused.successful and "only while unconfigured (now inactive)" in refused.reason
    assert node.set_parameters([Parameter("detector.score_threshold", value=0.2)])[0].successful

    # activate: the model is loaded, frames flow
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.state() == State.PRIMARY_STATE_ACTIVE
    encoder = weakref.ref(node.perceiver.encoder)
    assert wait_for(lambda: image_pub.get_subscription_count() > 0, timeout=10.0)
    for sec in (10, 11):
        send(sec)
        assert wait_for(lambda: len(detections) == sec - 9, timeout=30.0)
    assert [d.header.stamp.sec for d in detections] == [10, 11]

    # runtime disable (service): received, not processed; enable again
    assert client.call(client.enable, SetBool.Request(data=False)).success
    send(12)
    assert wait_for(lambda: node.skipped == 1, timeout=10.0) and len(detections) == 2
    assert client.call(client.enable, SetBool.Request(data=True)).success
    send(13)
    assert wait_for(lambda: len(detections) == 3, timeout=30.0)

    # deactivate: unsubscribed, the model and its memory released
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == State.PRIMARY_STATE_INACTIVE
    gc.collect()
    assert encoder() is None and node.perceiver is None and node.sub is None
    assert wait_for(lambda: image_pub.get_subscription_count() == 0, timeout=10.0)

    # and back: activate loads a fresh model; cleanup returns to unconfigured
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert wait_for(lambda: image_pub.get_subscription_count() > 0, timeout=10.0)
    send(14)
    assert wait_for(lambda: len(detections) == 4, timeout=30.0) and detections[-1].header.stamp.sec == 14
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.transition(Transition.TRANSITION_CLEANUP)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED and node.outputs is None
    assert node.set_parameters([Parameter("encoder.name", value="dualstream_tiny")])[0].successful
