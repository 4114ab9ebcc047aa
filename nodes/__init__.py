"""dualstream_perception ROS 2 nodes: thin rclpy adapters around the ``perception`` core.

Installed as the ``dualstream_perception`` import package (the repository folder is ``nodes/``).
"""

import perception  # noqa: F401,E402 - first, so that its OpenMP wait policy is set before any node loads torch
