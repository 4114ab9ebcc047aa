"""dualstream_perception core library.

ROS-free: this package imports torch, numpy, OpenCV, PyAV and PyYAML, never rclpy or any ``*_msgs`` module.
The ROS adapters live in the ``dualstream_perception`` package (the ``nodes/`` folder of the repository).
"""

__version__ = "0.1.0"
