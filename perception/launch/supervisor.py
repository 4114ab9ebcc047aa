"""Run the processes of a launch plan: start them, respawn with backoff, stop them all on SIGINT/SIGTERM.

Each process is a ``perception.runtime.processes.ManagedProcess`` (output lines prefixed ``[label]``, optionally
copied to ``<log_dir>/<label>.log``) with the graph's DDS environment filled in (``graph_environment``).

Respawn (``respawn: true``): a process that exits while the launch runs is started again after a delay. The first
delay is ``respawn_delay`` (at least ``min_delay_s``); each further exit within ``stable_after_s`` of its start
doubles it, up to ``max_delay_s``, so a node that crashes at start-up does not spin; a run that lasted longer
resets it. ``respawn_max_retries`` (>= 0) bounds the restarts. A process with ``on_exit: shutdown`` ends the
whole launch when it exits. The launch also ends when no process is left running or waiting to respawn.

Stopping: SIGINT to every process at once (the nodes shut down cleanly and write their stats), SIGTERM to those
still alive after ``stop_timeout_s``, SIGKILL one second later. Total: at most ``stop_timeout_s + 2`` seconds.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from perception.launch.description import ProcessSpec
from perception.runtime.processes import ManagedProcess, graph_environment


@dataclass
class ProcessRecord:
    """What happened to one process: its starts and exit codes."""

    spec: ProcessSpec
    process: ManagedProcess | None = None
    started_at: float = 0.0
    starts: int = 0
    exit_codes: list[int] | None = None
    respawn_at: float | None = None
    delay_s: float = 0.0
    done: bool = False


class LaunchSupervisor:
    """``LaunchSupervisor(specs).run()`` blocks until SIGINT/SIGTERM, ``stop()``, or every process has ended."""

    def __init__(self, specs: list[ProcessSpec], log_dir: str | Path | None = None, echo: IO[str] | None = sys.stderr,
                 stop_timeout_s: float = 3.0, min_delay_s: float = 0.5, max_delay_s: float = 30.0,
                 stable_after_s: float = 10.0, poll_s: float = 0.05) -> None:
        self.records = [ProcessRecord(spec, exit_codes=[]) for spec in specs]
        self.log_dir = Path(log_dir) if log_dir else None
        self.echo = echo
        self.stop_timeout_s = stop_timeout_s
        self.min_delay_s, self.max_delay_s, self.stable_after_s = min_delay_s, max_delay_s, stable_after_s
        self.poll_s = poll_s
        self._stop = threading.Event()
        self.stop_reason = ""

    def say(self, text: str) -> None:
        if self.echo is not None:
            self.echo.write(f"[launch] {text}\n")
            self.echo.flush()

    # -- life cycle ----------------------------------------------------------------------------------------------
    def _start(self, rec: ProcessRecord) -> None:
        spec = rec.spec
        log = self.log_dir / f"{spec.label.replace('/', '.')}.log" if self.log_dir else None
        rec.process = ManagedProcess(spec.label, spec.argv, graph_environment(base=spec.env), log, self.echo).start()
        rec.started_at = time.monotonic()
        rec.starts += 1
        rec.respawn_at = None
        self.say(f"started {spec.label} (pid {rec.process.pid})")

    def _on_exit(self, rec: ProcessRecord, code: int, now: float) -> None:
        spec = rec.spec
        assert rec.exit_codes is not None
        rec.exit_codes.append(code)
        retries_left = spec.respawn_max_retries < 0 or rec.starts - 1 < spec.respawn_max_retries
        if spec.shutdown_on_exit:
            self.say(f"{spec.label} exited with code {code}; on_exit: shutdown")
            self.stop(f"{spec.label} exited")
        if not spec.respawn or not retries_left or self._stop.is_set():
            rec.done = True
            self.say(f"{spec.label} exited with code {code}")
            return
        ran = now - rec.started_at
        base = max(spec.respawn_delay, self.min_delay_s)
        rec.delay_s = base if (ran >= self.stable_after_s or rec.delay_s == 0) else min(rec.delay_s * 2,
                                                                                         self.max_delay_s)
        rec.respawn_at = now + rec.delay_s
        self.say(f"{spec.label} exited with code {code} after {ran:.1f} s; respawning in {rec.delay_s:.1f} s "
                 f"(restart {rec.starts})")

    def step(self) -> bool:
        """Poll every process once; returns False when nothing is left running or waiting to respawn."""
        now = time.monotonic()
        for rec in self.records:
            if rec.done:
                continue
            if rec.respawn_at is not None:
                if now >= rec.respawn_at and not self._stop.is_set():
                    self._start(rec)
                continue
            code = rec.process.poll() if rec.process else None
            if code is not None:
                self._on_exit(rec, code, now)
        return not all(rec.done for rec in self.records)

    def stop(self, reason: str = "stop requested") -> None:
        """Ask ``run`` to end (thread- and signal-safe)."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def run(self, install_signal_handlers: bool = True) -> int:
        """Start everything and supervise; returns 0 when stopped by a signal or every process ended with 0."""
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        restore = self._install_handlers() if install_signal_handlers else (lambda: None)
        try:
            for rec in self.records:
                self._start(rec)
            while not self._stop.is_set() and self.step():
                self._stop.wait(self.poll_s)
        finally:
            self.shutdown()
            restore()
        if self.stop_reason.startswith("signal"):
            return 0
        failed = [rec.spec.label for rec in self.records if rec.exit_codes and rec.exit_codes[-1] not in (0, None)]
        return 1 if failed else 0

    def _install_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, lambda signum, _frame: self.stop(f"signal {signal.Signals(signum).name}"))

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return restore

    def shutdown(self) -> None:
        """SIGINT to all, then SIGTERM, then SIGKILL to whatever is still running (see the module docstring)."""
        self.stop(self.stop_reason or "shutdown")
        running = [rec.process for rec in self.records if rec.process is not None and rec.process.poll() is None]
        if running:
            self.say(f"stopping {len(running)} process(es) ({self.stop_reason})")
        started = time.monotonic()
        for sig, wait_s in ((signal.SIGINT, self.stop_timeout_s), (signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
            alive = [p for p in running if p.poll() is None]
            if not alive:
                break
            if sig != signal.SIGINT:
                self.say(f"{', '.join(p.name for p in alive)} still running: {sig.name}")
            for proc in alive:
                try:
                    proc.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.02)
        for proc in running:
            if proc._reader is not None:
                proc._reader.join(timeout=1.0)
        if running:
            self.say(f"all stopped in {time.monotonic() - started:.2f} s")
