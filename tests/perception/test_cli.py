"""The ``dualstream`` command line: ``run`` end to end on the synthetic scene, and its error handling."""

import json

import av
import pytest
import yaml

from perception.cli import COMMANDS, build_parser, main


def test_subcommands_are_registered():
    assert {"run", "demo"} <= set(COMMANDS)
    args = build_parser().parse_args(["run", "--source", "synthetic", "--max-frames", "3"])
    assert args.command == "run" and args.max_frames == 3 and callable(args.handler)


def test_a_command_that_does_not_import_leaves_the_others_working(monkeypatch, capsys):
    from perception import cli

    monkeypatch.setitem(cli.COMMANDS, "broken", "perception.commands.no_such_module")
    assert cli.build_parser().parse_args(["run", "--max-frames", "2"]).max_frames == 2
    assert cli.main(["broken"]) == 1
    assert "perception.commands.no_such_module does not import" in capsys.readouterr().err


def test_run_writes_config_detections_overlay_and_result(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--source", "synthetic", "--max-frames", "4", "--out", str(out), "--overlay", "--no-progress",
                 "--set", "encoder.name=dualstream_tiny", "--set", "source.width=320", "--set", "source.height=240",
                 "--set", "runtime.device=cpu", "--set", "runtime.warmup_frames=1"])
    assert code == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["encoder"]["name"] == "dualstream_tiny" and config["source"]["uri"] == "synthetic"
    lines = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [rec["seq"] for rec in lines] == [0, 1, 2, 3]
    assert all(isinstance(rec["detections"], list) and rec["stamp_ns"] >= 0 for rec in lines)
    result = json.loads((out / "result.json").read_text())
    assert (result["frames_read"], result["frames_processed"], result["frames_dropped"]) == (4, 4, 0)
    assert result["stop_reason"] == "max_frames" and result["device"] == "cpu" and result["fps"] > 0
    with av.open(str(out / "overlay.mp4")) as container:
        frames = [f for f in container.decode(video=0)]
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (320, 240)
    printed = capsys.readouterr().out
    assert "4 processed" in printed and "latency" in printed


@pytest.mark.parametrize("argv, message", [
    (["--set", "encoder.nmae=x"], "encoder.nmae"),
    (["--set", "runtime.threads=many"], "runtime.threads"),
    (["--source", "/no/such/video.mp4"], "/no/such/video.mp4"),
    (["--max-frames", "0"], "--max-frames"),
    (["--set", "encoder.name=nope"], "encoder.name 'nope'"),
    (["--set", "encoder.name=dualstream_tiny", "--set", "detector.method=magic"], "detector.method"),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["run", "--out", str(tmp_path / "x"), "--no-progress", *argv])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("dualstream run: error:")


def test_missing_config_file_is_a_user_error(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
