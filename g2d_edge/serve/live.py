"""Live recognition of one frame source for `g2d serve`: a thread runs `VideoLoop` over the source with its own
tracking `Recognizer`, keeps the newest annotated frame as JPEG (the MJPEG stream and snapshots) and a short history
of recognition events (the server-sent-event stream), and offers each recognised person to the webhooks.

An event is made when a track is first seen or its name changes (a video is tracked, so a person standing in view
is one event, not one per frame); faces of untracked sources (folders of photos) are one event each. Video files
are played at their own frame rate and started again at their end (`ServeOptions.realtime` / `loop_files`); a live
source that fails is opened again after a pause.
"""
from __future__ import annotations

import collections
import logging
import re
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

import cv2

from ..video.capture import CaptureOptions, classify_source
from ..draw import annotate
from ..errors import G2DError
from ..text import printable
from ..results import FrameResult
from ..video import VideoLoop, VideoOptions

log = logging.getLogger(__name__)

#: Events kept per source for clients that connect or fall behind.
EVENT_HISTORY = 256
#: Seconds between two attempts to open a source that failed or ended.
RESTART_DELAY_S = 1.0
JPEG_QUALITY = 80


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@]*@")


def redacted(source: str) -> str:
    """`source` as shown to clients: a URL's user and password (rtsp://user:pass@camera/...) become ***."""
    return _USERINFO.sub(r"\1***@", source)


class LiveSource:
    """One source: `start()` its thread, read `jpeg()` / `events_after(seq)`, `stop()` it."""

    def __init__(self, index: int, source: str, recognizer: Any, options: Any, metrics: Any = None,
                 webhooks: Any = None) -> None:
        self.index = index
        self.source = source
        self.label = printable(redacted(source), 120)
        self.recognizer = recognizer
        self.options = options
        self.metrics = metrics
        self.webhooks = webhooks
        self.kind = classify_source(source)[0]
        self.frames = 0
        self.fps: Optional[float] = None
        self.error: Optional[str] = None
        self.faces: List[Dict[str, Any]] = []  # the newest frame's faces (name, track, score, masked)
        self._jpeg: Tuple[int, Optional[bytes]] = (0, None)
        self._events: Deque[Tuple[int, Dict[str, Any]]] = collections.deque(maxlen=EVENT_HISTORY)
        self._event_seq = 0
        self._names: Dict[Any, Optional[str]] = {}  # track -> the name its last event gave
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"g2d-serve-source-{index}", daemon=True)

    # ------------------------------------------------------------------ readers (any thread)
    def jpeg(self) -> Tuple[int, Optional[bytes]]:
        """(frame number, JPEG bytes) of the newest annotated frame; (0, None) before the first."""
        with self._lock:
            return self._jpeg

    def events_after(self, seq: int) -> List[Tuple[int, Dict[str, Any]]]:
        """The events newer than `seq` still held, oldest first, as (seq, event)."""
        with self._lock:
            return [(s, e) for s, e in self._events if s > seq]

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._event_seq

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def describe(self) -> Dict[str, Any]:
        """JSON-ready state (`GET /sources`)."""
        with self._lock:
            faces = list(self.faces)
        return {"id": self.index, "source": self.label, "kind": self.kind, "running": self.running,
                "frames": self.frames, "fps": None if self.fps is None else round(self.fps, 2), "error": self.error,
                "faces": faces, "mjpeg": f"/sources/{self.index}/mjpeg", "events": f"/sources/{self.index}/events"}

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        video_options = VideoOptions(show_fps=False,
                                     capture=CaptureOptions(max_image_pixels=self.options.max_image_pixels))
        while not self._stop.is_set():
            try:
                self._play(video_options)
                self.error = None
            except G2DError as exc:
                self.error = printable(str(exc).replace(self.source, redacted(self.source)))
                log.warning("source %d (%s): %s; trying again in %g s", self.index, self.label, self.error,
                            RESTART_DELAY_S)
            except Exception as exc:  # a bug must not kill the source for good: log it, try again
                self.error = f"internal error: {type(exc).__name__}"
                log.exception("source %d (%s) failed", self.index, self.label)
            if self.kind in ("file", "image", "folder") and not self.options.loop_files and self.error is None:
                return
            self._stop.wait(RESTART_DELAY_S)

    def _play(self, video_options: VideoOptions) -> None:
        paced = self.options.realtime and self.kind in ("file", "folder", "image")
        last_index = -1
        self._names.clear()  # the loop starts new tracks
        with VideoLoop(self.recognizer, self.source, video_options) as loop:
            start = time.monotonic()
            for result in loop:
                if self._stop.is_set():
                    break
                if self.metrics is not None and self.kind not in ("file", "folder", "image") \
                        and result.index > last_index + 1 >= 1:
                    self.metrics.dropped.labels(str(self.index)).inc(result.index - last_index - 1)
                last_index = result.index
                self._frame(result)
                if paced:  # a file at its own frame rate (a folder: one photo a second)
                    position_s = result.timestamp_ms / 1000 if self.kind == "file" else float(result.index)
                    ahead = position_s - (time.monotonic() - start)
                    if ahead > 0:
                        self._stop.wait(min(ahead, 5.0))

    def _frame(self, result: FrameResult) -> None:
        shown = annotate(result.image, result.faces, fps=result.fps)
        ok, encoded = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        now = time.time()
        events = [self._event(face, result, now) for face in result.faces if self._is_news(face, result)]
        with self._lock:
            self.frames += 1
            self.fps = result.fps
            self.faces = [{"name": f.name, "track_id": f.track_id, "masked": f.masked,
                           "score": None if f.score is None else round(float(f.score), 4)} for f in result.faces]
            if ok:
                self._jpeg = (self.frames, encoded.tobytes())
            for event in events:
                self._event_seq += 1
                self._events.append((self._event_seq, event))
        if self.metrics is not None:
            self.metrics.frames.labels(str(self.index)).inc()
            self.metrics.recognised(str(self.index), result.faces, self.recognizer.last_timings)
        if self.webhooks is not None:
            for event in events:
                if event["name"] is not None:
                    key = (self.index, event["track_id"] if event["track_id"] is not None else event["name"])
                    self.webhooks.offer(key, event)

    def _is_news(self, face: Any, result: FrameResult) -> bool:
        """A face is news when its track is new or its name changed (untracked faces always are)."""
        if face.track_id is None:
            return True
        key = face.track_id
        if key in self._names and self._names[key] == face.name:
            return False
        self._names[key] = face.name
        if len(self._names) > 4096:
            for old in list(self._names)[:2048]:
                del self._names[old]
        return True

    def _event(self, face: Any, result: FrameResult, now: float) -> Dict[str, Any]:
        return {"source": self.index, "time": round(now, 3), "frame": result.index,
                "timestamp_ms": result.timestamp_ms, "track_id": face.track_id, "name": face.name,
                "score": None if face.score is None else round(float(face.score), 4), "masked": face.masked,
                "box": [round(float(v), 1) for v in face.box]}
