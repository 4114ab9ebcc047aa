"""NetworkStreamSource against servers started in the test on 127.0.0.1 (loopback only)."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from perception.io.frame import SourceError
from perception.io.network import NetworkStreamSource, is_stream_url, redact


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def http_root(tmp_path: Path):
    """An HTTP server on a free loopback port serving ``tmp_path``; yields ``(base_url, folder)``."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize("name,codec,fmt", [("live.ts", "mpeg4", "mpegts"), ("clip.mp4", "h264", None)])
def test_http_stream_decodes_every_frame_with_wall_clock_stamps(http_root, make_clip, clip_colour, name, codec,
                                                                 fmt):
    base, folder = http_root
    make_clip(name, codec=codec, fmt=fmt, n=15)
    before = time.time_ns()
    source = NetworkStreamSource(f"{base}/{name}", timeout_s=2.0, frame_id="net_optical_frame")
    assert source.size == (64, 48) and source.fps == pytest.approx(10.0)
    frames = list(source)
    after = time.time_ns()
    assert len(frames) == 15 and [f.seq for f in frames] == list(range(15))
    assert max(int(np.abs(f.image.astype(int) - clip_colour(i)).max()) for i, f in enumerate(frames)) <= 12
    stamps = [f.stamp_ns for f in frames]
    assert before <= stamps[0] and stamps[-1] <= after and stamps == sorted(stamps)
    assert [f.meta["pts_ns"] for f in frames[:3]] == [0, 100_000_000, 200_000_000]
    assert frames[0].frame_id == "net_optical_frame"


def test_second_iteration_reconnects(http_root, make_clip):
    base, _ = http_root
    make_clip("again.ts", codec="mpeg4", fmt="mpegts", n=5)
    source = NetworkStreamSource(f"{base}/again.ts", timeout_s=2.0)
    assert len(list(source)) == 5
    assert len(list(source)) == 5


def test_closed_port_fails_fast():
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(SourceError, match=rf"127\.0\.0\.1:{port}.*connection refused"):
        NetworkStreamSource(f"http://127.0.0.1:{port}/cam.ts", timeout_s=5.0)
    assert time.monotonic() - started < 1.0


def test_http_404_names_the_url(http_root):
    base, _ = http_root
    with pytest.raises(SourceError, match=r"missing\.ts.*404"):
        NetworkStreamSource(f"{base}/missing.ts", timeout_s=2.0)


@pytest.mark.parametrize("scheme", ["http", "tcp", "rtsp"])
def test_server_that_never_answers_fails_within_the_timeout(silent_port, scheme):
    started = time.monotonic()
    with pytest.raises(SourceError, match=rf"127\.0\.0\.1:{silent_port}.*(timeout|no answer)"):
        NetworkStreamSource(f"{scheme}://127.0.0.1:{silent_port}/stream", timeout_s=0.5)
    waited = time.monotonic() - started
    assert 0.4 < waited < 2.5


def test_stream_that_stalls_mid_way_raises_after_the_timeout(make_clip):
    """A server that sends half a stream and then goes quiet with the connection open: frames, then an error."""
    data = make_clip("stall.ts", codec="mpeg4", fmt="mpegts", n=40).read_bytes()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    release = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + data[: len(data) // 2])
        release.wait(10.0)  # hold the connection open, silent
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        source = NetworkStreamSource(f"http://127.0.0.1:{listener.getsockname()[1]}/live.ts", timeout_s=0.5)
        frames = []
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"reading failed \(no data within the read timeout\)"):
            for frame in source:
                frames.append(frame)
        assert 5 <= len(frames) < 40
        assert time.monotonic() - started < 3.0
    finally:
        release.set()
        listener.close()


def test_bad_arguments_are_rejected():
    with pytest.raises(SourceError, match="unsupported scheme 'ftp'"):
        NetworkStreamSource("ftp://127.0.0.1/x")
    with pytest.raises(SourceError, match="rtsp_transport 'quic'"):
        NetworkStreamSource("rtsp://127.0.0.1/x", rtsp_transport="quic")
    with pytest.raises(SourceError, match="timeout_s must be > 0"):
        NetworkStreamSource("rtsp://127.0.0.1/x", timeout_s=0)


def test_url_helpers():
    assert redact("rtsp://admin:hunter2@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert redact("http://127.0.0.1/a.ts") == "http://127.0.0.1/a.ts"
    assert is_stream_url("RTSP://cam/1") and is_stream_url("udp://@:5000") and not is_stream_url("/tmp/a.mp4")


def test_password_never_appears_in_errors(http_root):
    base, _ = http_root
    url = base.replace("http://", "http://admin:hunter2@") + "/missing.ts"
    with pytest.raises(SourceError) as info:
        NetworkStreamSource(url, timeout_s=1.0)
    assert "hunter2" not in str(info.value) and "admin:***@" in str(info.value)
