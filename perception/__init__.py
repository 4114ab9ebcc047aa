"""dualstream_perception core library.

ROS-free: this package imports torch, numpy, OpenCV, PyAV and PyYAML, never rclpy or any ``*_msgs`` module.
The ROS adapters live in the ``dualstream_perception`` package (the ``nodes/`` folder of the repository).
"""

import os

__version__ = "0.1.0"

# OpenMP threads (torch's intra-op pool) sleep instead of spinning while they wait for work, unless the environment
# says otherwise. It has to be set before torch loads its OpenMP runtime, hence here. On a machine shared with other
# processes (every robot) spinning threads wait for cores that others hold: measured on the 2-core machine next to
# one other busy process, a between-keyframes encode took 440 ms with the default policy and 20 ms with PASSIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
