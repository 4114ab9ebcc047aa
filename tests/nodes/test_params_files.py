"""The shipped ros__parameters files only use keys and types the node configs know."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dualstream_perception.node_config import CameraNodeConfig, PerceptionNodeConfig
from perception.config import ConfigError, load_config

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("name,cls", [("perception_node.yaml", PerceptionNodeConfig),
                                      ("camera_node.yaml", CameraNodeConfig)])
def test_params_file_is_valid_for_its_node(name, cls):
    data = yaml.safe_load((CONFIG / name).read_text())
    params = data["/**"]["ros__parameters"]
    cfg = load_config(params, cls=cls)
    assert cfg.qos.depth == 1 and cfg.qos.reliability == "best_effort"


def test_a_mistyped_key_would_be_caught():
    with pytest.raises(ConfigError, match="unknown config key 'detector.score_treshold'"):
        load_config({"detector": {"score_treshold": 0.2}}, cls=PerceptionNodeConfig)
