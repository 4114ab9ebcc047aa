"""Running ROS 2 YAML launch files without ``launch``/``launch_ros`` (which are not available as wheels).

``load_launch_file(path, {"arg": "value"})`` reads the file into a ``LaunchPlan`` (``description``), and
``LaunchSupervisor(plan.processes).run()`` starts and supervises its processes (``supervisor``). Substitutions
(``$(var ...)``, ``$(find-pkg-share ...)``, ...) are in ``substitutions``; package lookup in ``packages``.
ROS-free: the processes are started as programs, nothing here imports rclpy.
"""

from perception.launch.description import (ArgSpec, LaunchPlan, ProcessSpec, load_launch_file,
                                           parse_launch_arguments)
from perception.launch.substitutions import LaunchError
from perception.launch.supervisor import LaunchSupervisor

__all__ = ["ArgSpec", "LaunchError", "LaunchPlan", "LaunchSupervisor", "ProcessSpec", "load_launch_file",
           "parse_launch_arguments"]
