"""Camera and perception nodes in one namespace (for ROS 2 installations with launch_ros).

    ros2 launch dualstream_perception perception.launch.py source:=/path/clip.mp4 namespace:=front
    ros2 launch dualstream_perception perception.launch.py --show-args

The same graph as ``perception.launch.yaml``, which also runs without launch_ros (``dualstream launch``); the two
declare the same arguments (a test checks it). Parameter files come from the installed share directory; topic names
are relative to the namespace (``image`` is remapped to ``image_topic``); what runs is chosen by conditions
evaluated by launch, not by Python branching.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "dualstream_perception"

ARGUMENTS = [
    ("namespace", "camera", "namespace of the camera's topics"),
    ("source", "synthetic", "camera_node source.uri: video file, camera:0, rtsp://..., bag folder, synthetic"),
    ("rate_hz", "0.0", "camera publishing rate (0: the source's own rate)"),
    ("start_camera", "true", "start camera_node (false: subscribe an existing topic)"),
    ("image_topic", "image_raw", "image topic perception subscribes (relative)"),
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "perception_node.yaml"]),
     "perception_node ros__parameters file"),
    ("camera_params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "camera_node.yaml"]),
     "camera_node ros__parameters file"),
    ("encoder", "dualstream_s", "encoder registry name (dualstream_tiny, dualstream_s)"),
    ("checkpoint", "", "encoder checkpoint (.safetensors); empty: the shipped one"),
    ("device", "auto", "auto | cpu | cuda | cuda:N"),
    ("use_sim_time", "false", "stamp and time with /clock"),
    ("respawn", "true", "restart perception_node when it exits"),
]


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    camera = Node(
        package=PACKAGE, executable="camera_node", name="camera_node", namespace=arg("namespace"),
        condition=IfCondition(arg("start_camera")),
        parameters=[arg("camera_params_file"),
                    {"source.uri": arg("source"), "source.rate_hz": arg("rate_hz"), "source.loop": True,
                     "use_sim_time": arg("use_sim_time")}],
    )
    perception = Node(
        package=PACKAGE, executable="perception_node", name="perception_node", namespace=arg("namespace"),
        respawn=arg("respawn"), respawn_delay=1.0,
        parameters=[arg("params_file"),
                    {"encoder.name": arg("encoder"), "encoder.checkpoint": arg("checkpoint"),
                     "runtime.device": arg("device"), "use_sim_time": arg("use_sim_time")}],
        remappings=[("image", arg("image_topic"))],
    )
    return LaunchDescription([*declared, camera, perception])
