"""dualstream_perception: an ament_python package that also installs with plain pip.

Two import packages land in site-packages: ``perception`` (the ROS-free core) and ``dualstream_perception`` (the
thin rclpy nodes, from the ``nodes/`` folder). Executables: ``dualstream`` (the command line) and the nodes, which
colcon installs under ``lib/dualstream_perception`` for ``ros2 run`` (see setup.cfg).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dualstream_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 video-stream perception with a dual-stream encoder and online self-supervised adaptation",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["perception", "perception.*"]) + [PACKAGE],
    package_dir={PACKAGE: "nodes"},
    package_data={"perception": ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.*")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.json") + glob("config/*.xml")),
        (f"share/{PACKAGE}/calibration", glob("calibration/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.safetensors") + glob("models/*.json") + glob("models/*.md")),
    ],
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "opencv-python-headless>=4.8,<5",  # OpenCV 5 removed HOGDescriptor, which the detection baseline needs
        "av>=11",
        "pyyaml>=6",
        "safetensors>=0.4",
        "rosbags>=0.10",
        "mcap>=1.1",  # reading damaged or index-less MCAP bags record by record (perception/replay/bag_access.py)
        "motmetrics>=1.4",
        "scipy>=1.10",
        "tqdm>=4.60",
        "threadpoolctl>=3",  # one BLAS thread for the per-frame numpy work (perception/runtime/blas.py)
    ],
    extras_require={
        # onnx/onnxscript/onnxruntime: `dualstream export --format onnx` and its test against onnxruntime
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6", "onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.17"],
        "onnx": ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.17"],
        "decord": ["decord>=0.6"],
    },
    entry_points={
        "console_scripts": [
            "dualstream = perception.cli:main",
            "camera_node = dualstream_perception.camera_node:main",
            "perception_node = dualstream_perception.perception_node:main",
            "recorder_node = dualstream_perception.recorder_node:main",
            "replay_node = dualstream_perception.replay_node:main",
            "record_node = dualstream_perception.record_node:main",
            "multi_perception_node = dualstream_perception.multi_perception_node:main",
            "perception_lifecycle_node = dualstream_perception.perception_lifecycle_node:main",
        ],
    },
    zip_safe=False,
)
