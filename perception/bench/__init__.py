"""Speed and quality measurements behind ``dualstream bench`` (ROS-free: the ROS graph runs as child processes).

- :mod:`perception.bench.measure`: percentiles, peak memory, CPU time, the machine's description and load.
- :mod:`perception.bench.pipeline_speed`: the default pipeline end to end in-process (decode, preprocess, encoder,
  detection, monitor), with and without online adaptation.
- :mod:`perception.bench.baseline`: DINOv2 ViT-S/14 on every frame at the same input resolution.
- :mod:`perception.bench.ros_graph`: camera_node -> perception_node -> recorder_node as separate processes.
- :mod:`perception.bench.quality`: what the fast path costs against the every-frame model (DAVIS J&F, PETS AP50).
"""
