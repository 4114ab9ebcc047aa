"""``dualstream eval propagate`` (perception.commands.eval_propagate): the JSON it writes and its user errors."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from perception.commands import eval_propagate


def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_propagate.add_arguments(parser)
    return eval_propagate.run(parser.parse_args(argv))


def test_rgb_only_writes_the_report(make_davis, tmp_path, capsys):
    root = make_davis({"sq-a": 5, "sq-b": 4})
    out = tmp_path / "report" / "propagate.json"
    assert run_command(["--davis", str(root), "--seqs", "sq-a,sq-b", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rgb = report["methods"]["rgb"]
    assert set(report["methods"]) == {"rgb"}
    for seq in ("sq-a", "sq-b"):
        entry = rgb["per_sequence"][seq]
        assert 0.0 <= entry["J"] <= 1.0 and 0.0 <= entry["F"] <= 1.0
        assert entry["JF"] == pytest.approx((entry["J"] + entry["F"]) / 2)
    assert rgb["per_sequence"]["sq-a"]["frames"] == 5 and len(rgb["per_sequence"]["sq-a"]["J_per_frame"]) == 4
    for key in ("J", "F", "JF"):
        assert rgb[key] == pytest.approx((rgb["per_sequence"]["sq-a"][key] + rgb["per_sequence"]["sq-b"][key]) / 2)
    assert rgb["J"] > 0.7  # the square is followed
    assert report["protocol"]["radius"] == 12 and report["protocol"]["topk"] == 5
    assert report["protocol"]["temperature"] == 0.1 and report["protocol"]["n_context"] == 7
    assert report["arguments"]["seqs"] == ["sq-a", "sq-b"] and report["arguments"]["methods"] == ["rgb"]
    assert report["timing"]["total_seconds"] > 0
    err = capsys.readouterr().err
    assert "rgb sq-a: J" in err and "rgb sq-b: J" in err  # progress per sequence
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temporary file


def test_all_sequences_by_default_and_max_frames(make_davis, tmp_path):
    root = make_davis({"only": 6})
    out = tmp_path / "r.json"
    assert run_command(["--davis", str(root), "--max-frames", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["sequences"] == ["only"]
    assert report["methods"]["rgb"]["per_sequence"]["only"]["frames"] == 3


def test_checkpoint_random_init_and_rgb_in_one_run(make_davis, tmp_path):
    pytest.importorskip("perception.models.variants")
    from perception.models.checkpoint import save_checkpoint
    from perception.models.registry import create_encoder

    torch.manual_seed(5)
    ckpt = save_checkpoint(create_encoder("dualstream_tiny"), tmp_path / "ck" / "tiny", {}, {})
    root = make_davis({"sq-a": 3})
    out = tmp_path / "r.json"
    assert run_command(["--davis", str(root), "--checkpoint", str(ckpt), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["methods"]) == ["checkpoint", "random_init", "rgb"]
    for name in ("checkpoint", "random_init", "rgb"):
        assert 0.0 <= report["methods"][name]["JF"] <= 1.0
    assert report["checkpoint_meta"]["name"] == "dualstream_tiny"
    assert report["protocol"]["encoder_mode"] == "forward per frame"


def test_readout_follows_the_checkpoint_declaration(make_davis, tmp_path):
    pytest.importorskip("perception.models.variants")
    from perception.models.checkpoint import save_checkpoint
    from perception.models.registry import create_encoder

    torch.manual_seed(5)
    model = create_encoder("dualstream_tiny")
    dense_ckpt = save_checkpoint(model, tmp_path / "ck" / "dense", {}, {})
    local_ckpt = save_checkpoint(model, tmp_path / "ck" / "local", {}, {}, correspondence_readout="local")
    root = make_davis({"sq-a": 3})
    readouts = {}
    for name, ckpt, extra in (("dense", dense_ckpt, []), ("local", local_ckpt, []),
                              ("forced", local_ckpt, ["--readout", "dense"])):
        out = tmp_path / f"{name}.json"
        assert run_command(["--davis", str(root), "--checkpoint", str(ckpt), "--json", str(out), *extra]) == 0
        readouts[name] = json.loads(out.read_text())["protocol"]["encoder_readout"]
    assert readouts == {"dense": "dense", "local": "local", "forced": "dense"}


@pytest.mark.parametrize("argv, message", [
    (["--seqs", "nope"], "'nope' not found"),
    (["--methods", "checkpoint"], "need --checkpoint"),
    (["--methods", "rgb,colour"], "unknown colour"),
])
def test_user_errors_exit_2_with_a_message(make_davis, tmp_path, capsys, argv, message):
    root = make_davis({"sq-a": 3})
    out = tmp_path / "r.json"
    assert run_command(["--davis", str(root), "--json", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_root_is_a_user_error(tmp_path, capsys):
    assert run_command(["--davis", str(tmp_path / "absent"), "--json", str(tmp_path / "r.json")]) == 2
    assert "JPEGImages/480p" in capsys.readouterr().err
