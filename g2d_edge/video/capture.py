"""Threaded frame sources that never lag: webcam, video file, RTSP/HTTP URL, GStreamer pipeline, image folder, image.

A reader thread pulls frames as fast as the source gives them into a one-frame slot. For live sources the newest
frame wins: a frame the application has not taken yet is replaced (and counted as dropped), so a slow consumer
always gets the current picture instead of one from seconds ago. Files and folders by default deliver every frame in
order (the reader waits for the consumer) for offline processing; `CaptureOptions.drop_frames` overrides either.

    with Capture(0) as cap:                 # webcam 0; also "video.mp4", "rtsp://...", a folder, a photo, a GStreamer
        for frame in cap:                   # Frame(image, index, timestamp_ms, path)
            faces = rec.identify(frame.image)

`Capture.is_video` is the SDK's one answer to "is this a video?" (frames of one scene, where faces are tracked) or
independent stills (an image, a folder of images); `VideoLoop` acts on it. `PushedFrames` is the source the
application feeds itself (stream mode, `g2d_edge.video.FrameStream`).

Live streams that drop are reopened with exponential backoff; a file that ends ends the iteration. Network sources
never block for long: opening a URL gives up after `CaptureOptions.open_timeout` seconds and a read after
`read_timeout` seconds (OpenCV's CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC), ending in CaptureError
(or a reconnection).
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..errors import CaptureError, ClosedError, ImageReadError, InputError, check_fields, option
from ..imagesize import DEFAULT_MAX_IMAGE_PIXELS, PIXEL_LIMIT
from ..io import IMAGE_SUFFIXES, check_bgr_frame, list_images, read_image
from .slot import LatestSlot

log = logging.getLogger(__name__)

SourceLike = Union[int, str, os.PathLike]

_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


@dataclass(frozen=True)
class CaptureOptions:
    """How a `Capture` reads its source.

    drop_frames: True: newest frame wins (frames the consumer did not take in time are dropped);
        False: every frame is delivered in order (the reader waits); None (default): True for live sources
        (camera, URL, GStreamer), False for files and folders.
    reconnect: reopen a live source when it stops delivering frames (never for files/folders).
    reconnect_delay: seconds before the first reconnection attempt; doubled after each failure ...
    max_reconnect_delay: ... up to this many seconds.
    max_reconnect_attempts: give up (and end with CaptureError) after this many failed attempts in a row; 0: never.
    width, height, fps: requested camera mode (cameras only; the driver may pick the nearest it supports).
    open_timeout: URLs (RTSP, HTTP ...; OpenCV's FFmpeg backend): seconds to wait for the stream to open before
        CaptureError (OpenCV's own default is 30 s). Cameras and GStreamer pipelines use their driver's timeouts.
    read_timeout: URLs: seconds to wait for the next frame; a stream silent for longer counts as dropped
        (reconnect, else CaptureError).
    max_image_pixels: image folders: images whose header claims more pixels are skipped (see `read_image`).
    """

    drop_frames: Optional[bool] = None
    reconnect: bool = True
    reconnect_delay: float = option(0.5, low=0.0, high=3600.0, unit="seconds")
    max_reconnect_delay: float = option(10.0, low=0.0, high=86400.0, unit="seconds")
    max_reconnect_attempts: int = option(0, low=0, high=1_000_000)
    width: Optional[int] = option(None, low=1, high=16384)
    height: Optional[int] = option(None, low=1, high=16384)
    fps: Optional[float] = option(None, above=0.0, high=1000.0)
    open_timeout: float = option(5.0, above=0.0, below=1e6, unit="seconds")
    read_timeout: float = option(5.0, above=0.0, below=1e6, unit="seconds")
    max_image_pixels: int = option(DEFAULT_MAX_IMAGE_PIXELS, **PIXEL_LIMIT)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True, eq=False)
class Frame:
    """A frame from a source: BGR uint8 image, its index in the source (counting dropped frames too), a timestamp
    in milliseconds (position in the file for videos, time since opening for live sources, the frame number for image
    folders; always increasing) and, for image folders and image files, the file it was read from."""

    image: np.ndarray
    index: int
    timestamp_ms: int
    path: Optional[Path] = None


@dataclass(frozen=True)
class CaptureStats:
    """Counters of a `Capture`: frames read from the source, delivered to the consumer, dropped (replaced by a
    newer frame before being taken), skipped (unreadable folder images) and successful reconnections."""

    read: int
    delivered: int
    dropped: int
    skipped: int
    reconnects: int


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30,
                        flip_method: int = 0, output_width: Optional[int] = None,
                        output_height: Optional[int] = None) -> str:
    """GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc) delivering BGR frames to OpenCV.

    The appsink keeps only the newest buffer (drop=true max-buffers=1), matching `Capture`'s newest-frame-wins.
    flip_method: 0 none, 2 rotate 180 (common for upside-down mounted modules). Pass the result as a Capture source.
    """
    ow, oh = output_width or width, output_height or height
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM), width=(int){int(width)}, height=(int){int(height)}, "
            f"framerate=(fraction){int(fps)}/1, format=(string)NV12 ! "
            f"nvvidconv flip-method={int(flip_method)} ! "
            f"video/x-raw, width=(int){int(ow)}, height=(int){int(oh)}, format=(string)BGRx ! "
            "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


def has_gstreamer() -> bool:
    """True if this OpenCV build can open GStreamer pipelines."""
    return re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()) is not None


def classify_source(source: SourceLike) -> Tuple[str, Union[int, str, Path]]:
    """("camera"|"gstreamer"|"url"|"folder"|"image"|"file", normalised source): "image" is a file with an image
    suffix (`g2d_edge.io.IMAGE_SUFFIXES`), "file" any other file (a video). Raises CaptureError for a missing path."""
    if isinstance(source, bool):
        raise CaptureError(f"not a frame source: {source!r}")
    if isinstance(source, int):
        return "camera", source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source.strip():
        raise CaptureError(f"not a frame source: {source!r}; pass a camera index, a video file, a URL, "
                           "an image folder or a GStreamer pipeline")
    text = source.strip()
    if text.isascii() and text.isdigit():  # "0", "12"; not "²" or other Unicode digits
        return "camera", int(text)
    if "!" in text:
        return "gstreamer", text
    if _URL_RE.match(text):
        return "url", text
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder", path
    if path.is_file():
        return ("image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"), path
    raise CaptureError(f"frame source not found: {text!r} is not a camera index, an existing file or folder, "
                       "a URL (rtsp://, http://) or a GStreamer pipeline")


class _VideoReader:
    """cv2.VideoCapture over a camera, file, URL or GStreamer pipeline."""

    def __init__(self, kind: str, source: Union[int, str, Path], options: CaptureOptions) -> None:
        self.kind, self.source, self.options = kind, source, options
        self.cap: Optional[cv2.VideoCapture] = None
        self.open()

    def open(self) -> None:
        if self.kind == "gstreamer":
            if not has_gstreamer():
                raise CaptureError("this OpenCV build has no GStreamer support, so a GStreamer pipeline cannot be "
                                   "opened; on a Jetson use the system OpenCV from JetPack (python3-opencv)")
            cap = cv2.VideoCapture(str(self.source), cv2.CAP_GSTREAMER)
        elif self.kind == "url":
            cap = cv2.VideoCapture(str(self.source), cv2.CAP_ANY, self._timeout_params())
        else:
            cap = cv2.VideoCapture(self.source if self.kind == "camera" else str(self.source))
        if not cap.isOpened():
            cap.release()
            hint = {"camera": "is the camera connected and not used by another program?",
                    "url": f"is the URL reachable and the stream running? (no stream within "
                           f"CaptureOptions.open_timeout={self.options.open_timeout:g} s)",
                    "file": "is it a video format this OpenCV build can decode?",
                    "gstreamer": "check the pipeline with gst-launch-1.0"}[self.kind]
            raise CaptureError(f"cannot open {self.kind} source {self.source!r}: {hint}")
        if self.kind == "camera":
            opts = self.options
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if opts.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, opts.width)
            if opts.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, opts.height)
            if opts.fps:
                cap.set(cv2.CAP_PROP_FPS, opts.fps)
        self.cap = cap

    def _timeout_params(self) -> List[int]:
        """OpenCV open parameters bounding how long a network stream may keep us waiting (FFmpeg backend)."""
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1, int(self.options.open_timeout * 1000)),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(1, int(self.options.read_timeout * 1000))]

    def read(self) -> Tuple[bool, Optional[np.ndarray], Optional[float]]:
        assert self.cap is not None
        ok, image = self.cap.read()
        if not ok or image is None:
            return False, None, None
        pos = self.cap.get(cv2.CAP_PROP_POS_MSEC) if self.kind == "file" else None
        return True, image, pos

    @property
    def fps(self) -> Optional[float]:
        value = self.cap.get(cv2.CAP_PROP_FPS) if self.cap is not None else 0.0
        return float(value) if value and value > 0 and np.isfinite(value) else None

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def check_frame(path: Path, image: np.ndarray) -> None:
    """ImageReadError naming `path` for an image no face can be found in (smaller than 8 px, narrower than
    `g2d_edge.io.MAX_ASPECT_RATIO`): a folder skips it as it skips an unreadable one."""
    try:
        check_bgr_frame(image)
    except InputError as exc:
        raise ImageReadError(f"{path}: {exc}") from None


class _FolderReader:
    """Images of a folder in name order, unreadable ones skipped (logged and counted); or one image file, read when
    the source is opened (CaptureError if it cannot be)."""

    def __init__(self, folder: Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, single: bool = False) -> None:
        self.max_pixels = max_pixels
        self._first: Optional[np.ndarray] = None
        try:
            self.files: List[Path] = [folder] if single else list_images(folder)
            if single:
                self._first = read_image(folder, max_pixels)
        except ImageReadError as exc:
            raise CaptureError(str(exc)) from exc
        if not self.files:
            raise CaptureError(f"image folder {folder} holds no images (looked for .jpg, .png, ...)")
        self.pos = 0
        self.skipped = 0
        self.fps = None
        self.current: Optional[Path] = None  # the file of the image `read` returned last

    def read(self) -> Tuple[bool, Optional[np.ndarray], Optional[float]]:
        if self._first is not None:
            image, self._first, self.pos, self.current = self._first, None, 1, self.files[0]
            return True, image, None
        while self.pos < len(self.files):
            path = self.files[self.pos]
            self.pos += 1
            try:
                image = read_image(path, self.max_pixels)
                check_frame(path, image)
            except ImageReadError as exc:  # unreadable, too large, too small or too narrow for a face
                self.skipped += 1
                log.warning("capture: skipping %s", exc)
                continue
            self.current = path
            return True, image, None
        return False, None, None

    def release(self) -> None:
        pass


class Capture:
    """A frame source read on its own thread; iterate it (or call `read`) to get `Frame`s.

    Args:
        source: camera index (0 or "0"), video file, URL (rtsp://, http://), GStreamer pipeline string (e.g.
            `jetson_csi_pipeline()`), a folder of images (read in sorted name order) or one image file.
        options: `CaptureOptions`.

    Raises CaptureError at construction when the source cannot be opened. Use as a context manager (or call
    `close()`): the reader thread is stopped and joined and the device released.
    """

    def __init__(self, source: SourceLike, options: Optional[CaptureOptions] = None) -> None:
        self.options = options or CaptureOptions()
        self.kind, self.source = classify_source(source)
        self.live = self.kind in ("camera", "url", "gstreamer")
        self.drop_frames = self.live if self.options.drop_frames is None else bool(self.options.drop_frames)
        self._reader: Union[_VideoReader, _FolderReader]
        if self.kind in ("folder", "image"):
            self._reader = _FolderReader(Path(self.source), self.options.max_image_pixels, single=self.kind == "image")
        else:
            self._reader = _VideoReader(self.kind, self.source, self.options)
        self.fps: Optional[float] = self._reader.fps
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._error: Optional[CaptureError] = None
        self._read = 0
        self._reconnects = 0
        self._fail_streak = 0  # failed reconnection attempts since the last frame read
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"g2d-capture-{self.kind}", daemon=True)
        self._thread.start()
        log.info("capture: opened %s source %r (%s)", self.kind, str(self.source),
                 "newest frame wins" if self.drop_frames else "every frame")

    # ------------------------------------------------------------------ consumer side
    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next frame (the newest one for dropping sources). None when the source has ended or `timeout`
        seconds passed without a frame. Raises CaptureError if a live source was lost for good."""
        if self._stop.is_set():
            return None
        frame = self._slot.get(timeout)
        if frame is None and self._slot.closed and self._error is not None:
            raise self._error
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            frame = self._slot.get(timeout=0.25)
            if frame is not None:
                yield frame
            elif self._slot.closed:
                if self._error is not None:
                    raise self._error
                return

    @property
    def is_video(self) -> bool:
        """True for a video file, a camera, a URL or a GStreamer pipeline (one scene: faces are tracked); False for
        an image or a folder of independent images."""
        return self.kind not in ("image", "folder")

    @property
    def ended(self) -> bool:
        """True once the source has no more frames (file end, folder end, lost stream, or close())."""
        return self._slot.closed

    @property
    def stats(self) -> CaptureStats:
        """Frame counters so far (see `CaptureStats`)."""
        skipped = self._reader.skipped if isinstance(self._reader, _FolderReader) else 0
        return CaptureStats(read=self._read, delivered=self._slot.taken, dropped=self._slot.dropped,
                            skipped=skipped, reconnects=self._reconnects)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader thread, wait for it (up to `timeout` s) and release the source. Safe to call twice."""
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("capture: reader thread of %r did not stop within %.1f s (blocked in the driver); "
                            "it will exit on its own", str(self.source), timeout)

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Capture({self.kind}: {str(self.source)!r}, drop_frames={self.drop_frames})"

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        last_ts = -1
        try:
            while not self._stop.is_set():
                ok, image, pos_ms = self._reader.read()
                if not ok:
                    if self.live and not self._stop.is_set():
                        if self.options.reconnect and self._reconnect():
                            continue
                        if not self.options.reconnect:
                            self._error = CaptureError(f"{self.kind} source {str(self.source)!r} stopped "
                                                       "delivering frames" + self._read_timeout_note())
                    break
                if pos_ms is not None and pos_ms > 0:
                    ts = int(round(pos_ms))
                elif self.kind in ("file", "folder") and self.fps:
                    ts = int(round(self._read * 1000.0 / self.fps))
                elif self.kind in ("folder", "image"):
                    ts = self._read
                else:
                    ts = int((time.monotonic() - self._t0) * 1000)
                self._fail_streak = 0
                ts = max(ts, last_ts + 1)
                last_ts = ts
                path = self._reader.current if isinstance(self._reader, _FolderReader) else None
                frame = Frame(image=image, index=self._read, timestamp_ms=ts, path=path)
                self._read += 1
                if self.drop_frames:
                    self._slot.put(frame)
                else:
                    while not self._slot.put_wait(frame, timeout=0.1):
                        if self._stop.is_set() or self._slot.closed:
                            return
        except Exception as exc:  # a driver error must not vanish silently with the thread
            log.exception("capture: reader of %r failed", str(self.source))
            self._error = CaptureError(f"reading {self.kind} source {str(self.source)!r} failed: {exc}")
        finally:
            self._reader.release()
            self._slot.close()

    def _read_timeout_note(self) -> str:
        return (f" (none within CaptureOptions.read_timeout={self.options.read_timeout:g} s)"
                if self.kind == "url" else "")

    def _reconnect(self) -> bool:
        """Reopen a live source with exponential backoff. False if stopped or out of attempts (error recorded).

        The backoff grows with every failure since the last frame read, so a source that opens but then delivers
        nothing is not hammered either.
        """
        assert isinstance(self._reader, _VideoReader)
        opts = self.options
        self._reader.release()
        while not self._stop.is_set():
            if opts.max_reconnect_attempts and self._fail_streak >= opts.max_reconnect_attempts:
                self._error = CaptureError(f"lost {self.kind} source {str(self.source)!r}: gave up after "
                                           f"{self._fail_streak} reconnection attempts")
                return False
            delay = min(max(opts.reconnect_delay, 0.0) * (2 ** self._fail_streak), opts.max_reconnect_delay)
            self._fail_streak += 1
            log.warning("capture: %s source %r stopped delivering frames; reconnecting in %.1f s (attempt %d)",
                        self.kind, str(self.source), delay, self._fail_streak)
            if self._stop.wait(delay):
                return False
            try:
                self._reader.open()
            except CaptureError as exc:
                log.warning("capture: reconnect failed: %s", exc)
                continue
            self._reconnects += 1
            log.info("capture: reconnected to %r", str(self.source))
            return True
        return False


class PushedFrames:
    """A frame source the application feeds itself with `push(image, timestamp_ms)`: the frames of one video (it is
    tracked), the newest one wins (a frame not yet taken when the next arrives is dropped). Iterating it waits for
    frames until `close()`. Stream mode (`g2d_edge.video.FrameStream`) runs `VideoLoop` over one."""

    kind = "pushed"
    live = True
    is_video = True
    fps: Optional[float] = None
    source = "pushed frames"

    def __init__(self) -> None:
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._lock = threading.Lock()  # frames enter the slot in timestamp order
        self._last_ts: Optional[int] = None

    def push(self, image: np.ndarray, timestamp_ms: int) -> bool:
        """Hand over a BGR frame (copied) taken at `timestamp_ms`, which must increase from call to call. True if
        an older frame not yet taken was dropped for it. ClosedError after `close()`."""
        image = check_bgr_frame(image).copy()
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, (int, np.integer)):
            raise InputError(f"timestamp_ms must be a whole number of milliseconds, got {timestamp_ms!r}")
        ts = int(timestamp_ms)
        with self._lock:
            if self._slot.closed:
                raise ClosedError("this stream was closed; create a new one to recognise more frames")
            if self._last_ts is not None and ts <= self._last_ts:
                raise InputError(f"stream timestamps must increase: got {ts} ms after {self._last_ts} ms")
            self._last_ts = ts
            return self._slot.put(Frame(image, self._slot.put_count, ts))

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next frame, waiting up to `timeout` seconds (None: until one is pushed or `close()`); None when
        closed (and no frame is left) or on timeout."""
        return self._slot.get(timeout)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self._slot.get()
            if frame is None:  # closed and empty
                return
            yield frame

    @property
    def stats(self) -> CaptureStats:
        """Frames pushed (`read`), taken by the loop, and dropped for a newer one."""
        return CaptureStats(read=self._slot.put_count, delivered=self._slot.taken, dropped=self._slot.dropped,
                            skipped=0, reconnects=0)

    @property
    def ended(self) -> bool:
        return self._slot.closed

    def close(self) -> None:
        """No more frames: a frame already pushed is still delivered, then the iteration ends. Safe to call twice."""
        self._slot.close()
