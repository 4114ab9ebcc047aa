"""The YAML launch reader: substitutions, conditions, scoping, namespaces, params, includes and its errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from perception.launch import LaunchError, load_launch_file, parse_launch_arguments
from perception.launch.description import join_namespace
from perception.launch.packages import SOURCE_ROOT, executable_command, find_package_share
from perception.launch.substitutions import Scope, substitute

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str, name: str = "t.launch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_substitutions_nest_and_default():
    scope = Scope(variables={"a": "x", "d": "fallback"}, env={"HOME_X": "/h"}, file=Path("/tmp/f/l.yaml"))
    assert substitute("pre-$(var a)-post", scope) == "pre-x-post"
    assert substitute("$(env UNSET_Z $(var d))", scope) == "fallback"
    assert substitute("$(env HOME_X)/p", scope) == "/h/p"
    assert substitute("$(optenv UNSET_Z)", scope) == ""
    assert substitute("$(dirname)", scope) == "/tmp/f"
    assert substitute("$(not $(equals $(var a) x))", scope) == "false"
    assert substitute("$(anon n)", scope) == substitute("$(anon n)", scope) != "n"
    assert substitute(3, scope) == "3"


@pytest.mark.parametrize("text, message", [
    ("$(var nope)", "no launch argument or variable 'nope' (known: a)"),
    ("$(env UNSET_Z)", "UNSET_Z is not set"),
    ("$(eval 1+1)", "runs code"),
    ("$(command ls)", "runs code"),
    ("$(bogus x)", "unknown substitution 'bogus'"),
    ("$(var a", "unclosed substitution"),
])
def test_substitution_errors_name_the_problem(text, message):
    with pytest.raises(LaunchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        substitute(text, Scope(variables={"a": "1"}, env={}))


def test_package_lookup_finds_the_checkout_and_console_scripts():
    assert find_package_share("dualstream_perception", env={}) in (SOURCE_ROOT, Path(sys.prefix) / "share" /
                                                                    "dualstream_perception")
    assert executable_command("dualstream_perception", "camera_node", env={})[-2:] == [
        "-m", "dualstream_perception.camera_node"]
    with pytest.raises(LaunchError, match="executable 'nope' of package 'dualstream_perception' not found"):
        executable_command("dualstream_perception", "nope", env={})
    with pytest.raises(LaunchError, match="package 'no_such_pkg' not found"):
        find_package_share("no_such_pkg", env={})


def test_ament_prefix_wins(tmp_path):
    share = tmp_path / "share" / "dualstream_perception"
    share.mkdir(parents=True)
    (share / "package.xml").write_text("<package><name>dualstream_perception</name></package>")
    exe = tmp_path / "lib" / "dualstream_perception" / "camera_node"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = {"AMENT_PREFIX_PATH": str(tmp_path)}
    assert find_package_share("dualstream_perception", env) == share
    assert executable_command("dualstream_perception", "camera_node", env) == [str(exe)]


def test_namespaces():
    assert join_namespace("/", "cam") == "/cam"
    assert join_namespace("/robot", "cam") == "/robot/cam"
    assert join_namespace("/robot", "/abs") == "/abs"
    assert join_namespace("/robot/", None) == "/robot"


def test_nodes_params_remaps_conditions_and_groups(tmp_path):
    params = write(tmp_path, "/**:\n  ros__parameters: {x: 1}\n", "p.yaml")
    path = write(tmp_path, f"""
        launch:
        - arg: {{name: ns, default: front, description: the namespace}}
        - arg: {{name: with_cam, default: "true"}}
        - let: {{name: file, value: "{params}"}}
        - set_env: {{name: OUTER, value: "1"}}
        - group:
          - push-ros-namespace: {{namespace: robot}}
          - set_env: {{name: INNER, value: "2"}}
          - node:
              pkg: dualstream_perception
              exec: camera_node
              name: cam
              namespace: $(var ns)
              if: $(var with_cam)
              env: [{{name: PER_NODE, value: "3"}}]
              param:
              - from: $(var file)
              - {{name: source.uri, value: $(var ns).mp4}}
              - {{name: cameras, value: [a, "$(var ns)"]}}
              - {{name: empty, value: ""}}
              - {{name: encoder, param: [{{name: name, value: dualstream_tiny}}]}}
              remap: [{{from: image, to: image_raw}}]
              respawn: "true"
              respawn_delay: "2.5"
        - node: {{pkg: dualstream_perception, exec: perception_node, unless: $(var with_cam)}}
        - node: {{pkg: dualstream_perception, exec: perception_node, name: p, namespace: /abs}}
    """)
    plan = load_launch_file(path, {"ns": "left"}, env={"PATH": "/bin"})
    assert [a.name for a in plan.args] == ["ns", "with_cam"] and plan.args[0].description == "the namespace"
    assert [p.label for p in plan.processes] == ["robot/left/cam", "abs/p"]
    cam = plan.processes[0]
    ros = cam.argv[cam.argv.index("--ros-args"):]
    assert ros == ["--ros-args", "-r", "__node:=cam", "-r", "__ns:=/robot/left", "-r", "image:=image_raw",
                   "--params-file", str(params), "-p", "source.uri:=left.mp4", "-p", "cameras:=[a, left]",
                   "-p", "empty:=''", "-p", "encoder.name:=dualstream_tiny"]
    assert cam.respawn and cam.respawn_delay == 2.5 and cam.namespace == "/robot/left"
    assert cam.env["OUTER"] == "1" and cam.env["INNER"] == "2" and cam.env["PER_NODE"] == "3"
    assert "INNER" not in plan.processes[1].env  # the group was scoped
    assert plan.variables == {"ns": "left", "with_cam": "true", "file": str(params)}


def test_include_passes_arguments(tmp_path):
    write(tmp_path, """
        launch:
        - arg: {name: who, default: nobody}
        - executable: {cmd: "echo $(var who)", name: hello}
    """, "inner.launch.yaml")
    outer = write(tmp_path, """
        launch:
        - include: {file: "$(dirname)/inner.launch.yaml", arg: [{name: who, value: world}]}
        - include: {file: inner.launch.yaml}
    """)
    plan = load_launch_file(outer, {}, env={})
    assert [p.argv for p in plan.processes] == [["echo", "world"], ["echo", "nobody"]]
    assert [p.label for p in plan.processes] == ["hello", "hello-2"]


@pytest.mark.parametrize("body, arguments, message", [
    ("- arg: {name: needed}", {}, "argument 'needed' is required"),
    ("- arg: {name: a, default: x}", {"b": "1"}, "unknown launch argument(s) b (declared: a)"),
    ("- arg: {name: a, default: x, choices: [{value: x}, {value: y}]}", {"a": "z"}, "a:=z is not one of"),
    ("- node: {pkg: dualstream_perception}", {}, "node: missing 'exec'"),
    ("- node: {pkg: dualstream_perception, exec: camera_node, param: [{from: /no/file.yaml}]}", {},
     "parameters file /no/file.yaml does not exist"),
    ("- rosbag: {}", {}, "unknown action 'rosbag'"),
    ("- node: {pkg: x, exec: y, if: maybe}", {}, "expected true, false, 1 or 0, got 'maybe'"),
    ("- include: {file: other.launch.py}", {}, "only YAML launch files can be included"),
    ("- executable: {cmd: sleep, on_exit: restart}", {}, "only 'shutdown' is supported"),
])
def test_errors_name_the_file_and_the_problem(tmp_path, body, arguments, message):
    path = write(tmp_path, "launch:\n" + body + "\n")
    with pytest.raises(LaunchError) as info:
        load_launch_file(path, arguments, env={})
    assert message in str(info.value) and str(path) in str(info.value)


def test_not_a_launch_file(tmp_path):
    with pytest.raises(LaunchError, match="expected a mapping with a 'launch:' list"):
        load_launch_file(write(tmp_path, "nodes: []\n"), {})
    with pytest.raises(LaunchError, match="does not exist"):
        load_launch_file(tmp_path / "missing.launch.yaml", {})


def test_command_line_arguments():
    assert parse_launch_arguments(["a:=1", "b:=x:=y", "c:="]) == {"a": "1", "b": "x:=y", "c": ""}
    with pytest.raises(LaunchError, match="expected NAME:=VALUE"):
        parse_launch_arguments(["a=1"])


def test_shipped_launch_files_resolve():
    single = load_launch_file(REPO / "launch" / "perception.launch.yaml", {"namespace": "front"})
    assert [p.label for p in single.processes] == ["front/camera_node", "front/perception_node"]
    assert "image:=image_raw" in single.processes[1].argv and single.processes[1].respawn
    no_camera = load_launch_file(REPO / "launch" / "perception.launch.yaml", {"start_camera": "false"})
    assert [p.label for p in no_camera.processes] == ["camera/perception_node"]
    multi = load_launch_file(REPO / "launch" / "multi_camera.launch.yaml", {"cam0": "a", "cam1": "b", "cam2": "c"})
    assert [p.label for p in multi.processes] == ["a/camera_node", "b/camera_node", "c/camera_node",
                                                  "multi_perception_node"]
    assert "cameras:=[a, b, c]" in multi.processes[-1].argv


def test_python_launch_file_declares_the_same_arguments():
    """perception.launch.py (for ros2 launch, not importable here) and perception.launch.yaml: the same graph."""
    import ast

    tree = ast.parse((REPO / "launch" / "perception.launch.py").read_text())
    table = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "ARGUMENTS")
    declared = {row.elts[0].value for row in table.elts}
    yaml_args = {a.name for a in load_launch_file(REPO / "launch" / "perception.launch.yaml", {}).args}
    assert declared == yaml_args
