"""Soak test of the ROS graph (issue 10): frames at a fixed rate into a perception_node process with online adaptation
on, for minutes, watching memory, queues, accounting and latency. Prints JSON (and writes it with ``--json``).

    python bench/soak.py --minutes 10 --rate 30 [--encoder dualstream_tiny --width 320 --height 240] [--json OUT]

This process is the camera: it publishes synthetic frames (``sensor_msgs/Image`` rgb8, stamped with the wall clock)
on ``image`` with reliable QoS, so every frame published reaches the node (``sent == received`` checks DDS), and it
subscribes to ``detections`` and ``/diagnostics``. The perception node runs in its own process (``ManagedProcess``,
the graph's DDS settings). Measured:

* resident memory (VmRSS) of the node every second; growth = last minute's median against the median of the first
  minute after warm-up (``--warmup-s``), in percent (criterion: under 5);
* queues: the node's hand-off is a latest-only slot (bounded by design); what could grow is any DDS or executor
  backlog, which shows as latency growing over the run, and the adapter's buffer (``adaptation_buffered``, bounded);
  reported per window;
* accounting at the end, after the node drained: ``processed + dropped + bad + errors + non_finite == received``
  exactly, ``detections received here == processed`` and ``sent == received``;
* latency (input stamp to the detections' receipt here): p50/p99 per window of ``--window-s`` after warm-up, and
  the ratio of the last window's p99 to the first one's (stable: close to 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from perception.io.synthetic import SyntheticScene
from perception.runtime.processes import ManagedProcess, graph_environment, node_command


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Camera:
    """The bench's rclpy side: publishes frames, collects detections' latencies and the node's diagnostics."""

    def __init__(self, width: int, height: int, domain_id: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        from dualstream_perception.conversions import rgb_to_image
        from dualstream_perception.diagnostics import values_of
        from dualstream_perception.qos import image_qos

        self.rclpy, self.rgb_to_image, self.values_of = rclpy, rgb_to_image, values_of
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("soak_camera", context=self.context)
        qos = image_qos("reliable", 10)
        self.pub = self.node.create_publisher(Image, "image", qos)
        self.latencies: list[tuple[float, float]] = []  # (receipt monotonic, ms)
        self.diagnostics: dict = {}
        self.node.create_subscription(Detection2DArray, "detections", self._on_detections, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.frames = [f.image for f in SyntheticScene(width=width, height=height, num_frames=120, seed=7)]
        self.sent = 0
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._running = True
        self._spin.start()

    def _spin_loop(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_detections(self, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.latencies.append((time.monotonic(), (time.time_ns() - stamp) / 1e6))

    def _on_diagnostics(self, msg) -> None:
        values = self.values_of(msg, "perception")
        if values:
            self.diagnostics = values

    def publish(self) -> None:
        from std_msgs.msg import Header

        header = Header(frame_id="soak_optical_frame")
        now = time.time_ns()
        header.stamp.sec, header.stamp.nanosec = now // 1_000_000_000, now % 1_000_000_000
        self.pub.publish(self.rgb_to_image(self.frames[self.sent % len(self.frames)], header))
        self.sent += 1

    def close(self) -> None:
        self._running = False
        self._spin.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def _windows(latencies, rss, start: float, warmup_s: float, window_s: float, end: float) -> list[dict]:
    out = []
    t = start + warmup_s
    while t + window_s <= end + 1e-6:
        lat = [ms for when, ms in latencies if t <= when < t + window_s]
        mem = [mb for when, mb, _ in rss if t <= when < t + window_s]
        buffered = [b for when, _, b in rss if t <= when < t + window_s and b is not None]
        out.append({"t_s": round(t - start, 1), "outputs": len(lat), "latency_p50_ms": pct(lat, 50),
                    "latency_p99_ms": pct(lat, 99), "rss_mb": pct(mem, 50),
                    "adaptation_buffered_max": max(buffered) if buffered else None})
        t += window_s
    return out


def run(args: argparse.Namespace) -> dict:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    domain = 100 - 1 - os.getpid() % 50
    params = {"encoder.name": args.encoder, "encoder.input_width": args.width, "encoder.input_height": args.height,
              "qos.reliability": "reliable", "qos.depth": 10, "runtime.threads": args.threads,
              "adaptation.enabled": not args.no_adaptation, "adaptation.state_dir": str(out_dir / "adapted"),
              "adaptation.save_every_s": 60.0, "monitor.enabled": True, "stats_path": str(out_dir / "stats.json")}
    node = ManagedProcess("perception", node_command("dualstream_perception.perception_node", "perception_node",
                                                     params=params),
                          graph_environment({"ROS_DOMAIN_ID": str(domain)}), out_dir / "perception.log", echo=None)
    node.start()
    camera = Camera(args.width, args.height, domain)
    try:
        deadline = time.monotonic() + 90.0
        while camera.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        if camera.pub.get_subscription_count() == 0:
            raise SystemExit("perception_node did not subscribe within 90 s:\n" + "\n".join(node.lines[-20:]))
        time.sleep(1.0)
        rss: list[tuple[float, float, int | None]] = []
        start = time.monotonic()
        end = start + args.minutes * 60.0
        period = 1.0 / args.rate
        next_frame, next_sample, late = start, start, 0
        while (now := time.monotonic()) < end:
            if now >= next_sample:
                buffered = camera.diagnostics.get("adaptation_buffered")
                rss.append((now, rss_mb(node.pid) or float("nan"), int(buffered) if buffered else None))
                next_sample += 1.0
            if now >= next_frame:
                camera.publish()
                next_frame += period
                if now - next_frame > period:  # this process fell behind the rate: count, do not burst
                    late += 1
                    next_frame = now + period
            time.sleep(max(0.0, min(next_frame, next_sample) - time.monotonic()))
        elapsed = time.monotonic() - start
        drained = _drain(camera, args.drain_s)
        windows = _windows(camera.latencies, rss, start, args.warmup_s, args.window_s, start + elapsed)
        diag = dict(camera.diagnostics)
        detections = len(camera.latencies)
        latencies = [ms for when, ms in camera.latencies if when >= start + args.warmup_s]
    finally:
        camera.close()
        node.stop(timeout=30.0)
    stats = json.loads((out_dir / "stats.json").read_text()) if (out_dir / "stats.json").exists() else diag
    return _report(args, elapsed, late, camera.sent, detections, drained, stats, windows, rss, start, latencies)


def _drain(camera: Camera, timeout_s: float) -> bool:
    """Wait until every received frame is accounted for (processed, dropped, bad, failed or non-finite)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        d = camera.diagnostics
        if d and int(d["received"]) == camera.sent and _accounted(d) == camera.sent and \
                len(camera.latencies) == int(d["processed"]):
            return True
        time.sleep(0.2)
    return False


def _accounted(d: dict) -> int:
    return sum(int(float(d.get(k, 0) or 0)) for k in ("processed", "dropped", "bad_messages", "processing_errors",
                                                       "non_finite_outputs"))


def _report(args, elapsed, late, sent, detections, drained, stats, windows, rss, start, latencies) -> dict:
    after = [mb for when, mb, _ in rss if when >= start + args.warmup_s]
    first = [mb for when, mb, _ in rss if start + args.warmup_s <= when < start + args.warmup_s + 60.0]
    last = [mb for when, mb, _ in rss if when >= start + elapsed - 60.0]
    growth = (pct(last, 50) / pct(first, 50) - 1.0) * 100.0 if first and last else None
    p99 = [w["latency_p99_ms"] for w in windows if w["latency_p99_ms"] is not None]
    received = int(stats.get("received", 0))
    accounted = _accounted(stats)
    return {
        "bench": "soak", "minutes": args.minutes, "rate_hz": args.rate, "encoder": args.encoder,
        "input": f"{args.width}x{args.height}", "adaptation": not args.no_adaptation, "elapsed_s": round(elapsed, 1),
        "sent": sent, "sender_late": late, "received": received, "processed": int(stats.get("processed", 0)),
        "dropped": int(stats.get("dropped", 0)), "bad_messages": int(stats.get("bad_messages", 0)),
        "processing_errors": int(stats.get("processing_errors", 0)),
        "non_finite_outputs": int(float(stats.get("non_finite_outputs", 0) or 0)),
        "detections_received": detections, "drained": drained,
        "accounting_exact": bool(received == sent and accounted == received
                                 and detections == int(stats.get("processed", 0))),
        "processed_fps": round(int(stats.get("processed", 0)) / elapsed, 2) if elapsed else None,
        "rss_mb": {"after_warmup_first_min": pct(first, 50), "last_min": pct(last, 50), "max": max(after, default=None),
                   "growth_pct": growth},
        "latency_ms": {"p50": pct(latencies, 50), "p99": pct(latencies, 99),
                       "p99_first_window": p99[0] if p99 else None,
                       "p99_last_window": p99[-1] if p99 else None,
                       "p99_ratio_last_first": (p99[-1] / p99[0]) if len(p99) > 1 and p99[0] else None},
        "adaptation_state": {"status": stats.get("adaptation_status"), "updates": stats.get("adaptation_updates"),
                       "rollbacks": stats.get("adaptation_rollbacks")},
        "windows": windows,
        "criteria": {"rss_growth_under_5pct": growth is not None and growth < 5.0,
                     "p99_stable_within_1.5x": bool(len(p99) > 1 and p99[0] and p99[-1] / p99[0] < 1.5)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second sent")
    parser.add_argument("--encoder", default="dualstream_tiny")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the node")
    parser.add_argument("--no-adaptation", action="store_true")
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--drain-s", type=float, default=30.0)
    parser.add_argument("--out", default="runs/soak")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if result["accounting_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
