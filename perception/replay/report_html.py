"""``report.html`` of ``dualstream eval bag``: one self-contained page (inline SVG charts, PNG frames as data URIs).

Sections: the summary table (one column per run, so an A/B run sits side by side), latency over time and its
distribution, throughput over time, cumulative drops, detections per frame (TP/FP/FN at the operating threshold), drift
and adaptation state from ``/diagnostics`` over time, the peak-rate sweep when there is one, and example frames with
the detections (green: true positive, red: false positive, grey: below the threshold) and the ground truth (yellow).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from perception.replay.svg_plots import histogram, line_chart

DIAG_KEYS = ("drift_score", "ood_score", "luminance", "contrast")
LEVELS = {"OK": 0.0, "WARN": 1.0, "ERROR": 2.0}


@dataclass
class RunView:
    """What the report shows of one run: its label, metrics, frame rows, diagnostics and example pictures."""

    label: str
    metrics: dict
    frames: list[dict]
    diagnostics: list[dict] = field(default_factory=list)
    examples: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG)


def draw_example(image: np.ndarray, row: dict, threshold: float | None) -> bytes:
    """PNG of ``image`` (RGB) with the frame's ground truth and detections drawn on it."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for x, y, w, h, _ in row.get("gt", []):
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), (0, 215, 255), 2)
    matched = {m[0] for m in row.get("matches", [])}
    for k, (x, y, w, h, score, track) in enumerate(row.get("detections", [])):
        above = threshold is None or score >= threshold
        colour = ((0, 200, 0) if k in matched else (0, 0, 230)) if above else (150, 150, 150)
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), colour, 1 if not above else 2)
        if above:
            cv2.putText(canvas, f"{track} {score:.2f}", (int(x), max(10, int(y) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        colour, 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", canvas)
    return png.tobytes() if ok else b""


def _cell(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return html.escape(str(value))


def summary_rows(metrics: dict) -> list[tuple[str, Any]]:
    det = metrics.get("detection") or {}
    lat = metrics.get("latency_ms") or {}
    return [("frames replayed", metrics.get("frames")), ("frames processed", metrics.get("processed")),
            ("drops", metrics.get("drops")), ("throughput (fps)", metrics.get("throughput_fps")),
            ("latency p50 (ms)", lat.get("p50")), ("latency p95 (ms)", lat.get("p95")),
            ("latency p99 (ms)", lat.get("p99")), ("precision", det.get("precision")), ("recall", det.get("recall")),
            ("AP50", det.get("ap50")), ("MOTA", det.get("mota")), ("IDF1", det.get("idf1")),
            ("FP / frame", det.get("fp_per_frame")), ("operating threshold", det.get("threshold")),
            ("scored frames", det.get("frames_evaluated"))]


def _table(runs: list[RunView]) -> str:
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs)
    rows = [list(zip(*[summary_rows(r.metrics) for r in runs]))]
    body = "".join(f"<tr><th>{html.escape(cells[0][0])}</th>" + "".join(f"<td>{_cell(v)}</td>" for _, v in cells)
                   + "</tr>" for cells in rows[0])
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _received_s(row: dict) -> float | None:
    return None if row["latency_ms"] is None else row["published_s"] + row["latency_ms"] / 1000.0


def _throughput(frames: list[dict]) -> tuple[list[float], list[float]]:
    """Outputs per second in 1-second bins of receipt time."""
    times = [t for t in (_received_s(r) for r in frames) if t is not None]
    if not times:
        return [], []
    bins = np.bincount(np.floor(np.asarray(times)).astype(int))
    return [float(i) + 0.5 for i in range(len(bins))], [float(b) for b in bins]


def _diag_series(run: RunView, key: str) -> tuple[list[float], list[float | None]]:
    if not run.diagnostics:
        return [], []
    t0 = run.metrics.get("first_publish_wall_ns") or run.diagnostics[0]["wall_ns"]
    xs = [(d["wall_ns"] - t0) / 1e9 for d in run.diagnostics]
    ys = []
    for d in run.diagnostics:
        v = d["values"].get(key)
        v = LEVELS.get(v, None) if isinstance(v, str) else v
        ys.append(None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
    return xs, ys


def charts(runs: list[RunView]) -> list[str]:
    """The SVG charts of the runs (each chart overlays every run)."""
    many = len(runs) > 1
    name = lambda r, what="": f"{r.label} {what}".strip() if many or what else ""  # noqa: E731
    out = [
        line_chart([(name(r), [f["frame"] for f in r.frames], [f["latency_ms"] for f in r.frames]) for r in runs],
                   "Latency per frame (publish to output received)", "frame", "ms", markers=True),
        histogram([(name(r), [f["latency_ms"] for f in r.frames if f["latency_ms"] is not None]) for r in runs],
                  "Latency distribution", "ms"),
        line_chart([(name(r), *_throughput(r.frames)) for r in runs], "Throughput (outputs per second)",
                   "seconds since the first image", "fps", markers=True),
        line_chart([(name(r), [f["frame"] for f in r.frames], list(np.cumsum([f["dropped"] for f in r.frames])))
                    for r in runs], "Dropped frames (cumulative)", "frame", "frames"),
    ]
    if any("tp" in f for r in runs for f in r.frames):
        series = []
        for r in runs:
            scored = [f for f in r.frames if f.get("scored")]
            for key in ("tp", "fp", "fn"):
                series.append((name(r, key.upper()), [f["frame"] for f in scored], [f[key] for f in scored]))
        out.append(line_chart(series, "Detections per scored frame at the operating threshold", "frame", "boxes"))
    out.append(line_chart([(name(r, k), *_diag_series(r, k)) for r in runs for k in DIAG_KEYS],
                          "Monitor: drift, OOD, luminance, contrast (from /diagnostics)", "seconds", "score",
                          markers=True))
    adapt = sorted({k for r in runs for d in r.diagnostics for k, v in d["values"].items()
                    if k.startswith("adaptation_") and isinstance(v, float)})
    out.append(line_chart([(name(r, k), *_diag_series(r, k)) for r in runs for k in adapt[:4]] or [("", [], [])],
                          "Adaptation state over time" + ("" if adapt else " (adaptation disabled)"), "seconds",
                          "value", markers=True))
    return out


def peak_section(peak: dict | None) -> str:
    if not peak:
        return ""
    trials = peak.get("trials", [])
    search = sorted((t for t in trials if t["kind"] == "search"), key=lambda t: t["rate_hz"])
    chart = line_chart([("drop %", [t["rate_hz"] for t in search], [100 * t["drop_fraction"] for t in search]),
                        ("p50 latency / 10 ms", [t["rate_hz"] for t in search],
                         [None if t["latency_ms"]["p50"] is None else t["latency_ms"]["p50"] / 10 for t in search])],
                       "Peak-rate sweep", "input rate (Hz)", "percent / (ms / 10)", markers=True)
    rows = "".join(f"<tr><td>{t['rate_hz']:.1f}</td><td>{t['published']}</td><td>{t['processed']}</td>"
                   f"<td>{100 * t['drop_fraction']:.1f}</td><td>{_cell(t['latency_ms']['p50'])}</td>"
                   f"<td>{_cell(t['latency_ms']['p99'])}</td><td>{_cell(t.get('jitter_ms'))}</td>"
                   f"<td>{html.escape(t['kind'])}</td></tr>" for t in trials)
    return (f"<h2>Peak rate</h2><p>Highest input rate sustained with under {100 * peak['max_drop_fraction']:.0f}% "
            f"dropped frames: <b>{_cell(peak.get('peak_rate_hz'))} Hz</b>.</p><div class='charts'>{chart}</div>"
            "<table><tr><th>rate (Hz)</th><th>published</th><th>processed</th><th>drops %</th><th>p50 ms</th>"
            f"<th>p99 ms</th><th>jitter ms</th><th>trial</th></tr>{rows}</table>")


def render(title: str, runs: list[RunView], notes: list[str], peak: dict | None = None) -> str:
    """The whole page."""
    figures = "".join(f"<figure><img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
                      f"<figcaption>{html.escape(r.label + ': ' if len(runs) > 1 else '')}{html.escape(cap)}"
                      "</figcaption></figure>" for r in runs for cap, png in r.examples)
    style = ("body{font-family:sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
             ".charts{display:flex;flex-wrap:wrap;gap:8px}figure{display:inline-block;margin:4px}"
             "figure img{max-width:380px;border:1px solid #ccc}figcaption{font-size:12px}")
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><ul>{notes_html}</ul>"
            f"<h2>Summary</h2>{_table(runs)}<h2>Timing and detections</h2><div class='charts'>"
            + "".join(charts(runs)) + f"</div>{peak_section(peak)}<h2>Example frames</h2>"
            "<p>yellow: ground truth; green: detection matched to it; red: false positive (at the operating threshold)"
            f"</p>{figures or '<p>none</p>'}</body></html>")
