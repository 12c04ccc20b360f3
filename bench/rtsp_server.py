"""Real RTSP servers on loopback and an FFmpeg publisher feeding one: for the live-source tests, the reconnect
scenario and the soak benchmark.

`RtspServer` is Debian's ``rtsp-server-perl`` (clients on one port, publishers on another; it serves RTP over
UDP only, as many cameras do). The publisher is ``ffmpeg -re`` pushing H.264, from a clip or a generated test
pattern. `GstRtspServer` is GStreamer's RTSP server with its own test pattern, serving TCP and UDP. All bind
127.0.0.1 only and are stopped by their context managers.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SERVER = "rtsp-server-perl"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the GObject bindings GStreamer's server needs
GST_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")


def missing_tools() -> list[str]:
    """The programs these helpers need that this machine lacks (``.ci/run`` installs them from Debian)."""
    return [tool for tool in (SERVER, "ffmpeg") if shutil.which(tool) is None]


def gst_missing() -> str | None:
    """Why GStreamer's RTSP server can't run here (None when it can)."""
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); gi.require_version('Gst', '1.0'); "
             "from gi.repository import Gst; Gst.init(None); "
             "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True)
    return None if result.returncode == 0 else ("GStreamer's RTSP server is not installed (Debian: python3-gi, "
                                                "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-ugly)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _describe_status(port: int, path: str) -> int | None:
    """The status code of an RTSP DESCRIBE for ``path`` on loopback ``port`` (None if it gave no answer).

    Hand-written because a probe by FFmpeg or PyAV costs a process or a decoder per poll for one status line.
    """
    request = (f"DESCRIBE rtsp://127.0.0.1:{port}/{path} RTSP/1.0\r\nCSeq: 1\r\n"
               "Accept: application/sdp\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(request)
            status_line = sock.recv(1024).split(b"\r\n", 1)[0].split()
    except OSError:
        return None
    return int(status_line[1]) if len(status_line) >= 2 and status_line[1].isdigit() else None


class RtspServer:
    """``rtsp-server-perl`` on free loopback ports; ``url(path, credentials)`` is what a camera client opens."""

    def __init__(self) -> None:
        self.client_port, self.source_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> RtspServer:
        rtp_start = 20000 + self.client_port % 20000  # RTP port pairs; apart for servers started side by side
        self.process = subprocess.Popen(
            [SERVER, "--clientport", str(self.client_port), "--serverport", str(self.source_port),
             "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
             "--rtp_start_port", str(rtp_start), "--loglevel", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not (_wait_for_port(self.client_port, 10) and _wait_for_port(self.source_port, 10)):
            self.__exit__()
            raise RuntimeError(f"{SERVER} did not start listening on ports {self.client_port}/{self.source_port}")
        return self

    def url(self, path: str, credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.client_port}/{path}"

    def publish_url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.source_port}/{path}"

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


class GstRtspServer:
    """GStreamer's RTSP server on a free loopback port, streaming a 320x240 25 FPS pattern at ``/PATH``."""

    def __init__(self, path: str = "pattern") -> None:
        self.port, self.path = free_port(), path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> GstRtspServer:
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(GST_SCRIPT), str(self.port), self.path],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_for_port(self.port, 15):
            self.__exit__()
            raise RuntimeError(f"GStreamer's RTSP server did not start listening on port {self.port}")
        return self

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/{self.path}"

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class Publisher:
    """``ffmpeg -re`` pushing H.264 to ``server`` at ``path``: ``clip`` looped forever, else a test pattern.

    `stop` ends it with SIGTERM, as a camera that goes away does (FFmpeg then tears its session down, which this
    server needs before it accepts the next publisher on the same path); `start` retries until accepted.
    """

    def __init__(self, server: RtspServer, path: str, clip: Path | None = None, size: tuple[int, int] = (320, 240),
                 fps: int = 25):
        source = (["-stream_loop", "-1", "-i", str(clip)] if clip is not None
                  else ["-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}"])
        self.command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", *source, "-an", "-c:v", "libx264",
                        "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(fps), "-pix_fmt", "yuv420p",
                        "-f", "rtsp", server.publish_url(path)]
        self.server, self.path = server, path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> float:
        """Start publishing; returns the time (``time.time()``) clients could first open the path.

        A running FFmpeg is not yet a served path (on a busy machine its ANNOUNCE can land after a client's
        DESCRIBE, which then gets 404), so this waits for the server itself to describe the path.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while self.process.poll() is None and time.monotonic() < deadline:  # a refused publisher exits
                if _describe_status(self.server.client_port, self.path) == 200:
                    return time.time()
                time.sleep(0.1)
            self.stop()
            time.sleep(0.3)
        raise RuntimeError(f"the RTSP server did not serve a publisher at /{self.path} within {timeout:g} s")

    def stop(self) -> float:
        """Stop publishing; returns the time it stopped."""
        stopped = time.time()
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        return stopped

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
