"""Security: weights only through safetensors or ``torch.load(weights_only=True)``, YAML only through safe loading, no
shell command built from anything, paths from parameters checked, and a perception node that listens on nothing but
what its DDS participant opens (the same sockets as a bare rclpy node).

The pickle and YAML-tag refusals are also rows of test_bad_input.py; here they are asserted on the way they are
refused (no code runs: the marker file a payload would create never appears).
"""

from __future__ import annotations

import ast
import os
import pickle
import sys
import time
from pathlib import Path

import pytest

from perception.config import ConfigError, load_config
from perception.models.checkpoint import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[3]
SOURCES = sorted(p for d in ("perception", "nodes", "launch", "bench") if (REPO / d).is_dir()
                 for p in (REPO / d).rglob("*.py"))


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _keyword(call: ast.Call, name: str):
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def test_sources_only_load_weights_and_yaml_safely_and_never_through_a_shell():
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for call, name in _calls(tree):
            where = f"{path.relative_to(REPO)}:{call.lineno}: {name}"
            weights_only = _keyword(call, "weights_only")
            if name == "torch.load" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                problems.append(f"{where} without weights_only=True")
            if name in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
                        "yaml.load_all", "marshal.loads", "os.system", "os.popen", "eval", "exec"):
                problems.append(where)
            allow_pickle = _keyword(call, "allow_pickle")
            if name.endswith("np.load") and not (isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False):
                problems.append(f"{where} without allow_pickle=False")
            if name.startswith("subprocess.") or name.startswith("asyncio.create_subprocess_shell"):
                shell = _keyword(call, "shell")
                if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                    problems.append(f"{where} with shell=")
                if call.args and isinstance(call.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    problems.append(f"{where} with a command string (use an argument list)")
    assert SOURCES and not problems, "\n".join(problems)


def test_a_pickled_checkpoint_is_refused_without_running_it(tmp_path, marker_pickle):
    import torch

    from perception.train.dinov2_init import GlobalInitError, read_state_dict

    for name in ("model.safetensors", "model.pt", "model.pth", "model.bin"):
        marker = marker_pickle(tmp_path / name)
        with pytest.raises((CheckpointError, GlobalInitError)):
            (load_checkpoint if name.endswith(".safetensors") else read_state_dict)(tmp_path / name)
        assert not marker.exists(), f"{name}: loading ran the pickle's code"
    marker = marker_pickle(tmp_path / "direct.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(tmp_path / "direct.pt", weights_only=True)  # the one allowed use refuses it too
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    "x: !!python/object/apply:os.system ['touch {marker}']\n",
    "x: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
    "x: !!python/object/apply:builtins.open ['{marker}', 'w']\n",
])
def test_yaml_tags_that_run_code_are_refused_without_running(tmp_path, payload):
    marker = tmp_path / "PWNED"
    path = tmp_path / "config.yaml"
    path.write_text(payload.format(marker=marker))
    with pytest.raises(ConfigError, match="safe loading"):
        load_config(path)
    with pytest.raises(ConfigError, match="safe loading"):
        load_config(None, [f"detector.method={payload.split(': ', 1)[1].strip().format(marker=marker)}"])
    time.sleep(0.1)
    assert not marker.exists()


def test_paths_from_parameters_must_be_regular_files_of_the_right_kind(tmp_path, tiny_checkpoint):
    (tmp_path / "zero.safetensors").symlink_to("/dev/zero")  # would never end if read
    (tmp_path / "dir.safetensors").mkdir()
    started = time.monotonic()
    for bad in (tmp_path / "zero.safetensors", tmp_path / "dir.safetensors", Path("/etc/passwd"),
                tmp_path / ".." / ".." / "etc" / "passwd", "/dev/zero"):
        with pytest.raises(CheckpointError, match="not found|not readable|metadata"):
            load_checkpoint(bad)
    assert time.monotonic() - started < 5.0
    model, meta = load_checkpoint(tiny_checkpoint)  # the good one loads
    assert meta["name"] == "dualstream_tiny"


def test_camera_info_url_to_a_device_or_folder_is_not_read(tmp_path):
    pytest.importorskip("rclpy")
    from dualstream_perception.camera_info import CameraInfoManager

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, text: str) -> None:
            self.lines.append(text)

        info = error = warning

    for url in ("file:///dev/zero", f"file://{tmp_path}", "/dev/urandom"):
        log = Log()
        started = time.monotonic()
        manager = CameraInfoManager(url, log)
        assert manager.model is None and time.monotonic() - started < 2.0
        assert any("uncalibrated" in line for line in log.lines)


def _sockets(pid: int) -> dict[str, int]:
    """Listening TCP and bound UDP sockets owned by ``pid`` (from /proc), counted by kind."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    counts = {"tcp_listen": 0, "udp": 0}
    for table, kind in (("tcp", "tcp_listen"), ("tcp6", "tcp_listen"), ("udp", "udp"), ("udp6", "udp")):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and (kind == "udp" or fields[3] == "0A"):
                counts[kind] += 1
    return counts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_perception_node_opens_no_socket_beyond_its_dds_participant(tmp_path):
    pytest.importorskip("rclpy")
    from perception.runtime.processes import ManagedProcess, graph_environment, node_command

    env = graph_environment({"ROS_DOMAIN_ID": str(90 + os.getpid() % 9)})
    bare = ManagedProcess("bare", [sys.executable, "-c", (
        "import rclpy; rclpy.init(); n = rclpy.create_node('bare'); print('ready', flush=True); rclpy.spin(n)")],
        env, echo=None).start()
    node = ManagedProcess("perception", node_command("dualstream_perception.perception_node", "perception_node",
                                                     params={"encoder.name": "dualstream_tiny",
                                                             "adaptation.enabled": True}),
                          env, tmp_path / "perception.log", echo=None).start()
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not (
                any("ready" in line for line in bare.lines) and any("listening on" in line for line in node.lines)):
            time.sleep(0.2)
        assert any("listening on" in line for line in node.lines), "\n".join(node.lines[-20:])
        time.sleep(1.0)
        baseline, ours = _sockets(bare.pid), _sockets(node.pid)
    finally:
        bare.stop(timeout=5.0)
        node.stop(timeout=10.0)
    assert ours == baseline, f"perception_node {ours} vs a bare rclpy node {baseline}"
