"""The output publishers of a perception node for one camera, shared by the multi-camera and lifecycle nodes.

``detections`` (vision_msgs/Detection2DArray), ``features`` (Image ``32FC<C>``), ``features/pca`` and ``debug/image``
(rgb8), under ``prefix`` (``"front/"`` for a camera namespace of the multi-camera node, ``""`` otherwise), each
message with the input image's header. The same conversions as ``perception_node``.

The three image outputs are published lazily, as image_transport does: only while something subscribes to them.
The feature map alone is 60 x 80 x 128 float32 = 2.4 MB a frame at 640x480; converting and handing it to DDS for
nobody cost the 30 Hz graph about 2 ms of CPU a frame. Detections are always published.
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import detections_to_msg, features_to_image, rgb_to_image


class PerceptionOutputs:
    """Publishers for one camera. ``lifecycle=True`` makes lifecycle publishers (they publish only when active)."""

    def __init__(self, node: Node, qos: Any, prefix: str = "", lifecycle: bool = False) -> None:
        self.lifecycle = lifecycle
        create = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        self.detections = create(Detection2DArray, f"{prefix}detections", qos)
        self.features = create(Image, f"{prefix}features", qos)
        self.pca = create(Image, f"{prefix}features/pca", qos)
        self.debug = create(Image, f"{prefix}debug/image", qos)

    def publish(self, result: Any, header: Any, runtime: Any) -> None:
        """Publish what ``result`` has and ``runtime`` (``RuntimeConfig``) asks for."""
        self.detections.publish(detections_to_msg(result.detections, header))
        if runtime.publish_features and result.features is not None and _listened(self.features):
            self.features.publish(features_to_image(result.features, header))
        if runtime.publish_pca and result.pca is not None and _listened(self.pca):
            self.pca.publish(rgb_to_image(result.pca, header))
        if runtime.publish_debug and result.overlay is not None and _listened(self.debug):
            self.debug.publish(rgb_to_image(result.overlay, header))

    def destroy(self, node: Node) -> None:
        destroy = node.destroy_lifecycle_publisher if self.lifecycle else node.destroy_publisher
        for pub in (self.detections, self.features, self.pca, self.debug):
            destroy(pub)


def _listened(publisher: Any) -> bool:
    """Whether any subscription (in this process or another) is matched to ``publisher``."""
    return publisher.get_subscription_count() > 0
