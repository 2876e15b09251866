"""Capture: video files and image folders in order, newest-frame-wins for live sources, reconnects, clean shutdown."""
import threading
import time

import cv2
import numpy as np
import pytest

import g2d_edge.video.capture as capture_mod
from g2d_edge import Capture
from g2d_edge.video import CaptureOptions
from g2d_edge.video.capture import jetson_csi_pipeline
from g2d_edge.video.capture import classify_source
from g2d_edge.errors import CaptureError
from g2d_edge.video.slot import LatestSlot
from runtime_helpers import frame_number, numbered_frames, write_video


# ---------------------------------------------------------------------------------------------------- LatestSlot
def test_slot_newest_wins_and_counts():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.get(0) == 3 and slot.get(0.01) is None
    assert (slot.put_count, slot.taken, slot.dropped) == (3, 1, 2)


def test_slot_put_wait_is_lossless_and_close_wakes_waiters():
    slot = LatestSlot()
    got = []

    def consumer():
        while True:
            item = slot.get(5)
            if item is None:
                return
            got.append(item)
            time.sleep(0.005)

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(20):
        assert slot.put_wait(i, timeout=5)
    deadline = time.monotonic() + 5
    while len(got) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    slot.close()
    t.join(5)
    assert got == list(range(20)) and slot.dropped == 0
    assert slot.put_wait(99, timeout=0.1) is False  # closed


# ------------------------------------------------------------------------------------------------------- sources
def test_classify_sources(tmp_path):
    assert classify_source(0) == ("camera", 0)
    assert classify_source("1") == ("camera", 1)
    assert classify_source("rtsp://10.0.0.2:554/stream")[0] == "url"
    assert classify_source(jetson_csi_pipeline())[0] == "gstreamer"
    assert classify_source(tmp_path)[0] == "folder"
    video = tmp_path / "v.avi"
    video.write_bytes(b"x")
    assert classify_source(str(video)) == ("file", video)
    for bad in (tmp_path / "nope.mp4", "", None, True):
        with pytest.raises(CaptureError):
            classify_source(bad)


def test_jetson_pipeline_string():
    p = jetson_csi_pipeline(sensor_id=1, width=1920, height=1080, fps=30, flip_method=2, output_width=960,
                            output_height=540)
    assert p.startswith("nvarguscamerasrc sensor-id=1 !")
    assert "width=(int)1920, height=(int)1080" in p and "framerate=(fraction)30/1" in p
    assert "flip-method=2" in p and "width=(int)960, height=(int)540" in p
    assert p.endswith("appsink drop=true max-buffers=1 sync=false")


def test_video_file_delivers_every_frame_in_order(tmp_path):
    video = write_video(tmp_path / "clip.avi", numbered_frames(15), fps=10)
    with Capture(video) as cap:
        assert cap.kind == "file" and not cap.live and not cap.drop_frames
        frames = list(cap)
        assert cap.ended
    assert [frame_number(f.image) for f in frames] == list(range(15))
    assert [f.index for f in frames] == list(range(15))
    stamps = [f.timestamp_ms for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 15
    assert stamps[-1] == pytest.approx(1400, abs=120)  # 10 fps
    assert cap.stats.read == cap.stats.delivered == 15 and cap.stats.dropped == 0
    assert cap.fps == pytest.approx(10, abs=0.5)


def test_video_file_with_newest_frame_wins(tmp_path):
    video = write_video(tmp_path / "clip.avi", numbered_frames(40), fps=25)
    got = []
    with Capture(video, CaptureOptions(drop_frames=True)) as cap:
        for frame in cap:
            got.append(frame_number(frame.image))
            time.sleep(0.03)  # a slow consumer: the reader decodes far faster
    assert got == sorted(got) and len(set(got)) == len(got)
    assert got[-1] == 39  # the last frame is never lost
    stats = cap.stats
    assert stats.read == 40 and stats.dropped > 0 and stats.delivered + stats.dropped == 40
    assert stats.delivered == len(got) < 40


def test_image_folder_in_name_order_skipping_bad_files(tmp_path):
    frames = numbered_frames(6)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), f)
    (tmp_path / "frame_002b.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    with Capture(str(tmp_path)) as cap:
        got = [(f.index, frame_number(f.image)) for f in cap]
    assert [n for _, n in got] == list(range(6))
    assert [i for i, _ in got] == list(range(6))
    assert cap.stats.skipped == 1


def test_sources_that_cannot_be_opened(tmp_path):
    with pytest.raises(CaptureError, match="not found"):
        Capture(tmp_path / "missing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CaptureError, match="no images"):
        Capture(empty)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(CaptureError, match="cannot open"):
        Capture(garbage)


# -------------------------------------------------------------------------------------- live sources (simulated)
class FakeStream:
    """Stands in for cv2.VideoCapture of a network camera: each open follows the next entry of `script`:
    an int = that many frames then the stream drops, None = the open fails, "forever" = frames until released."""

    script: list = []
    opens = 0

    def __init__(self, source, *args):
        cls = type(self)
        self.plan = cls.script[cls.opens] if cls.opens < len(cls.script) else None
        cls.opens += 1
        self.left = self.plan
        self.released = False

    def isOpened(self):
        return self.plan is not None

    def read(self):
        if self.released:
            return False, None
        if self.plan == "forever":
            time.sleep(0.002)
            return True, np.full((8, 8, 3), 7, np.uint8)
        if self.left:
            self.left -= 1
            return True, np.full((8, 8, 3), self.left, np.uint8)
        return False, None

    def set(self, *args):
        return True

    def get(self, prop):
        return 0.0

    def release(self):
        self.released = True


@pytest.fixture()
def fake_stream(monkeypatch):
    FakeStream.opens = 0
    monkeypatch.setattr(capture_mod.cv2, "VideoCapture", FakeStream)
    return FakeStream


def test_live_stream_reconnects_with_backoff_then_gives_up(fake_stream):
    fake_stream.script = [3, None, 2, None, None]
    opts = CaptureOptions(drop_frames=False, reconnect_delay=0.01, max_reconnect_attempts=2)
    cap = Capture("rtsp://camera/stream", opts)
    got = []
    with pytest.raises(CaptureError, match="gave up after 2"):
        for frame in cap:
            got.append(frame)
    assert len(got) == 5 and [f.index for f in got] == list(range(5))
    assert cap.stats.reconnects == 1 and fake_stream.opens == 5
    cap.close()


def test_live_open_failure_is_a_capture_error(fake_stream):
    fake_stream.script = [None]
    with pytest.raises(CaptureError, match="cannot open url source"):
        Capture("rtsp://camera/stream")


def test_live_stream_newest_wins_and_close_joins_thread(fake_stream):
    fake_stream.script = ["forever"]
    with Capture("rtsp://camera/stream") as cap:
        assert cap.drop_frames
        first = cap.read(timeout=5)
        time.sleep(0.2)  # the consumer is busy; frames keep arriving
        second = cap.read(timeout=5)
        assert second.index > first.index + 5  # we got a recent frame, not the next queued one
        assert cap.stats.dropped > 0
        thread = cap._thread
    assert not thread.is_alive() and cap.ended
    assert cap.read(timeout=0.1) is None
