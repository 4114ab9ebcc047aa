"""``dualstream run`` with the ``adaptation:`` config group: the pipeline adapts the encoder online while it serves
frames, saves the adapted state, reports it in result.json; a mistyped adaptation key is a user error."""

from __future__ import annotations

import json

import yaml

from perception.cli import main
from perception.config import load_config
from perception.runtime.run_config import RunConfig

SMALL = ["--set", "encoder.name=dualstream_tiny", "--set", "source.width=320", "--set", "source.height=240",
         "--set", "encoder.input_width=160", "--set", "encoder.input_height=120", "--set", "runtime.device=cpu",
         "--set", "runtime.warmup_frames=0", "--set", "runtime.threads=1"]


def test_adaptation_group_loads_from_yaml_with_checked_keys(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"adaptation": {"enabled": True, "lr": 1e-4, "params": "norm", "gaps": [1, 2]}}))
    cfg = load_config(path, ["adaptation.buffer_size=16"], cls=RunConfig)
    assert cfg.adaptation.enabled and cfg.adaptation.params == "norm" and cfg.adaptation.gaps == (1, 2)
    assert cfg.adaptation.buffer_size == 16 and cfg.encoder.name == "dualstream_s"
    assert not load_config(None, cls=RunConfig).adaptation.enabled          # off by default


def test_run_adapts_online_saves_the_state_and_reports_it(tmp_path, capsys):
    out, state = tmp_path / "run", tmp_path / "state"
    code = main(["run", "--source", "synthetic", "--max-frames", "45", "--realtime", "--out", str(out),
                 "--no-progress", *SMALL, "--set", "source.rate_hz=15",
                 "--set", "adaptation.enabled=true", "--set", f"adaptation.state_dir={state}",
                 "--set", "adaptation.buffer_size=8", "--set", "adaptation.min_frames=4",
                 "--set", "adaptation.train_width=64", "--set", "adaptation.train_height=48",
                 "--set", "adaptation.walk_grid=4", "--set", "adaptation.max_updates_per_s=0",
                 "--set", "adaptation.compute_share=1.0",
                 # the self-supervised path (the exposure default pulls the synthetic scene out of its contrast)
                 "--set", "adaptation.params=norm", "--set", "adaptation.exposure_weight=0",
                 "--set", "adaptation.temporal_weight=1.0", "--set", "adaptation.lr=0.0001"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["frames_processed"] >= 30
    adaptation = result["adaptation"]
    assert adaptation["updates"] >= 1 and adaptation["status"] == "adapting" and adaptation["buffered"] == 8
    manifest = json.loads((state / "adapted.json").read_text())
    assert manifest["updates"] == adaptation["updates"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["adaptation"]["enabled"] is True and config["adaptation"]["state_dir"] == str(state)


def test_without_adaptation_result_says_none_and_a_bad_key_is_a_user_error(tmp_path, capsys):
    out = tmp_path / "plain"
    assert main(["run", "--source", "synthetic", "--max-frames", "2", "--out", str(out), "--no-progress", *SMALL]) == 0
    assert json.loads((out / "result.json").read_text())["adaptation"] is None
    capsys.readouterr()
    assert main(["run", "--out", str(tmp_path / "x"), "--no-progress", "--set", "adaptation.learning_rate=1"]) == 2
    assert "adaptation.learning_rate" in capsys.readouterr().err
