"""Starting and stopping the processes of a ROS graph (the demo, launch files, benchmarks) without importing ROS.

Every process gets the same DDS environment, set before it starts (processes with different transport settings may
not discover each other): the package's Fast DDS profile ``config/fastdds_shm.xml`` (a shared-memory segment that
holds whole camera images: a 768x576 rgb8 image reaches the subscriber in about 5 ms instead of 14-16 ms with
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``, and best effort stops losing frames; the file says more), unless the user
chose a profile or builtin transports already (``LARGE_DATA`` when the profile cannot be found); and the malloc
thresholds (shared ROS2_NOTES: 1080p latency from about 11 ms to 3-5 ms).
A process's output is prefixed with its name and copied to a log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Mapping, Sequence

PACKAGE = "dualstream_perception"
DDS_PROFILE = "config/fastdds_shm.xml"  # relative to the package's share directory (the checkout when editable)
GRAPH_ENV_DEFAULTS = {
    "MALLOC_MMAP_THRESHOLD_": "67108864",
    "MALLOC_TRIM_THRESHOLD_": "268435456",
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "PYTHONUNBUFFERED": "1",
    "RCUTILS_COLORIZED_OUTPUT": "0",
}


def graph_environment(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process of the graph: ``base`` (default: this process's) with the DDS defaults filled in
    where unset, then ``extra``. Values already set by the user win over the defaults."""
    env = dict(os.environ if base is None else base)
    for key, value in GRAPH_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    if not env.get("FASTDDS_DEFAULT_PROFILES_FILE") and not env.get("FASTDDS_BUILTIN_TRANSPORTS"):
        profile = dds_profile_path()
        if profile is not None:
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
        else:
            env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    env.update(extra or {})
    return env


def dds_profile_path() -> str | None:
    """The installed ``config/fastdds_shm.xml`` (absolute path), or None when the package's share directory has
    none."""
    from perception.launch.packages import find_package_share  # noqa: PLC0415 (launch helpers: only needed here)
    from perception.launch.substitutions import LaunchError  # noqa: PLC0415

    try:
        path = find_package_share(PACKAGE) / DDS_PROFILE
    except LaunchError:
        return None
    return str(path) if path.is_file() else None


def node_command(module: str, node_name: str | None = None, namespace: str | None = None,
                 params: Mapping[str, object] | None = None, remaps: Mapping[str, str] | None = None) -> list[str]:
    """``python -m <module> --ros-args ...`` with ``-p name:=value`` (lists as YAML flow sequences) and ``-r a:=b``."""
    cmd = [sys.executable, "-m", module, "--ros-args"]
    if node_name:
        cmd += ["-r", f"__node:={node_name}"]
    if namespace:
        cmd += ["-r", f"__ns:={namespace}"]
    for src, dst in (remaps or {}).items():
        cmd += ["-r", f"{src}:={dst}"]
    for key, value in (params or {}).items():
        cmd += ["-p", f"{key}:={_param_text(value)}"]
    return cmd


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


class ManagedProcess:
    """A child process whose output lines are prefixed ``[name]`` on ``echo`` and written to ``log_path``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 log_path: str | Path | None = None, echo: IO[str] | None = sys.stderr) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else graph_environment()
        self.log_path = Path(log_path) if log_path else None
        self.echo = echo
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self.lines: list[str] = []

    def start(self) -> "ManagedProcess":
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _pump(self) -> None:
        log = self.log_path.open("a") if self.log_path else None
        try:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if len(self.lines) > 2000:
                    del self.lines[:1000]
                if log:
                    log.write(line)
                    log.flush()
                if self.echo is not None:
                    self.echo.write(f"[{self.name}] {line}")
        finally:
            if log:
                log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def wait(self, timeout: float | None = None) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGINT (the nodes shut down cleanly and write their stats), then SIGTERM, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return self.poll()
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                break
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        return self.proc.poll()
