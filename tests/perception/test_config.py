"""The typed config loader: defaults, YAML, overrides, and errors that name the key path."""

from __future__ import annotations

import pytest

from perception.config import Config, ConfigError, load_config, parse_override, read_yaml, save_config


def test_defaults_yaml_and_overrides_merge_in_order(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("encoder:\n  global_every: 2\n  global_scale: 1\ndetector:\n  score_threshold: 0.4\n")
    cfg = load_config(path, ["detector.score_threshold=0.7", "source.uri=clip.mp4", "runtime.publish_pca=false"])
    assert cfg.encoder.global_every == 2
    assert cfg.encoder.global_scale == 1.0 and isinstance(cfg.encoder.global_scale, float)
    assert cfg.detector.score_threshold == 0.7
    assert cfg.source.uri == "clip.mp4" and cfg.runtime.publish_pca is False
    assert cfg.encoder.name == Config().encoder.name  # untouched defaults stay


@pytest.mark.parametrize("data,message", [
    ({"encoder": {"nme": "x"}}, "unknown config key 'encoder.nme'"),
    ({"encodr": {}}, "unknown config key 'encodr'"),
    ({"encoder": {"global_every": "four"}}, "encoder.global_every: expected int, got str 'four'"),
    ({"encoder": {"global_every": 2.5}}, "encoder.global_every: expected int, got float 2.5"),
    ({"runtime": {"publish_pca": "yes"}}, "runtime.publish_pca: expected bool"),
    ({"detector": {"nms_iou": True}}, "detector.nms_iou: expected float, got bool"),
    ({"encoder": 3}, "encoder: expected a mapping, got int"),
])
def test_errors_name_the_key_path_and_what_was_expected(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(data)


def test_yaml_problems_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("encoder: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="tagged.yaml is not valid YAML"):  # safe loading refuses python tags
        load_config(tagged)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(top)
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_yaml(tmp_path / "missing.yaml")


def test_override_syntax():
    assert parse_override("a.b.c=3") == {"a": {"b": {"c": 3}}}
    assert parse_override("x=[1, 2]") == {"x": [1, 2]}
    assert parse_override("s=") == {"s": ""}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("no_equals_sign")


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(None, ["encoder.global_every=3", "source.uri=camera:1"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
