"""Camera and perception nodes in one namespace (for ROS 2 installations with launch_ros).

    ros2 launch dualstream_perception perception.launch.py source:=/path/clip.mp4 namespace:=front

Parameters come from the installed share directory (config/*.yaml); topic names are relative to the namespace.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dualstream_perception"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="camera", description="namespace of the camera's topics"),
        DeclareLaunchArgument("source", default_value="synthetic",
                              description="camera_node source.uri: video file, camera:0, rtsp://..., bag folder"),
        DeclareLaunchArgument("start_camera", default_value="true",
                              description="start camera_node (false: subscribe to an existing image_raw)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception_node.yaml"),
                              description="perception_node ros__parameters file"),
        DeclareLaunchArgument("checkpoint", default_value="", description="encoder checkpoint (.safetensors)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="stamp and time with /clock"),
        Node(
            package=PACKAGE, executable="camera_node", name="camera_node", namespace=namespace,
            condition=IfCondition(LaunchConfiguration("start_camera")),
            parameters=[os.path.join(share, "config", "camera_node.yaml"),
                        {"source.uri": LaunchConfiguration("source"), "use_sim_time": use_sim_time}],
        ),
        Node(
            package=PACKAGE, executable="perception_node", name="perception_node", namespace=namespace,
            parameters=[LaunchConfiguration("params_file"),
                        {"encoder.checkpoint": LaunchConfiguration("checkpoint"),
                         "runtime.device": LaunchConfiguration("device"), "use_sim_time": use_sim_time}],
            remappings=[("image", "image_raw")],
        ),
    ])
