"""Issue 12, class 10 (a silent RTSP/HTTP endpoint blocks for 30 s): `CaptureOptions.open_timeout` and
`read_timeout` bound how long a network source may keep the caller waiting, ending in CaptureError. Real sockets on
localhost: a server that accepts and never answers, and an MJPEG-over-HTTP camera that sends a few frames and then
goes silent. Each Capture call runs on a helper thread so that a regression fails instead of hanging."""
import socket
import threading
import time

import cv2
import pytest

from g2d_edge import Capture
from g2d_edge.video import CaptureOptions
from g2d_edge.errors import CaptureError, InputError
from runtime_helpers import frame_number, numbered_frames


class Server:
    """A TCP server on localhost: each connection gets `reply(index)` (bytes) and is then left open and silent."""

    def __init__(self, reply=lambda index: b""):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            conn.settimeout(5)
            try:
                conn.recv(65536)  # the request
                conn.sendall(self.reply(len(self.connections) - 1))
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


def mjpeg_once(frames):
    """Reply of a camera that streams `frames` as multipart JPEG over HTTP on the first connection only."""
    parts = b""
    for f in frames:
        jpg = cv2.imencode(".jpg", f)[1].tobytes()
        parts += b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpg), jpg)
    head = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
    return lambda index: head + parts if index == 0 else b""


def within(seconds, fn):
    """fn()'s result or exception, failing the test if it takes longer than `seconds`."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    t0 = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], time.monotonic() - t0


def test_default_options_give_up_on_a_silent_endpoint_within_seconds():
    server = Server()
    try:
        with pytest.raises(CaptureError, match="cannot open url source"):
            within(15, lambda: Capture(f"rtsp://127.0.0.1:{server.port}/stream"))  # OpenCV alone: 30 s
    finally:
        server.close()


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_silent_endpoint_fails_to_open_within_the_open_timeout(scheme):
    server = Server()
    try:
        with pytest.raises(CaptureError, match=r"no stream within CaptureOptions\.open_timeout=1 s"):
            within(10, lambda: Capture(f"{scheme}://127.0.0.1:{server.port}/stream", CaptureOptions(open_timeout=1)))
    finally:
        server.close()


def test_stream_that_goes_silent_ends_in_capture_error_after_the_read_timeout():
    camera = Server(mjpeg_once(numbered_frames(6, size=(48, 64))))  # later connections: silence
    opts = CaptureOptions(open_timeout=1, read_timeout=1, reconnect_delay=0.05, max_reconnect_attempts=1,
                          drop_frames=False)
    try:
        cap, _ = within(10, lambda: Capture(f"http://127.0.0.1:{camera.port}/cam.mjpg", opts))
        got = []

        def consume():
            for frame in cap:
                got.append(frame_number(frame.image))

        with pytest.raises(CaptureError, match="gave up after 1 reconnection attempts"):
            within(15, consume)  # 1 s read timeout, one reconnection that times out after 1 s
        assert got == list(range(6))
        cap.close()
    finally:
        camera.close()


def test_without_reconnection_a_silent_stream_ends_in_capture_error():
    camera = Server(mjpeg_once(numbered_frames(6, size=(48, 64))))
    opts = CaptureOptions(open_timeout=2, read_timeout=1, reconnect=False)
    try:
        cap, _ = within(10, lambda: Capture(f"http://127.0.0.1:{camera.port}/cam.mjpg", opts))
        with pytest.raises(CaptureError, match=r"stopped delivering frames \(none within "
                                               r"CaptureOptions\.read_timeout=1 s\)"):
            within(10, lambda: [f for f in cap])
        cap.close()
    finally:
        camera.close()


def test_timeouts_must_be_positive():
    for bad in (0, -1, "5", None, float("nan")):
        with pytest.raises(InputError, match="CaptureOptions.open_timeout must be a finite number of seconds > 0"):
            CaptureOptions(open_timeout=bad)
        with pytest.raises(InputError, match="CaptureOptions.read_timeout must be a finite number of seconds > 0"):
            CaptureOptions(read_timeout=bad)
