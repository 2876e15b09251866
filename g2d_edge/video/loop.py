"""Run a `Recognizer` over any frame source: `Capture` -> identify -> annotate -> show / write, in one loop.

    rec = Recognizer(gallery="people.g2d")
    with VideoLoop(rec, "clip.mp4", VideoOptions(output="out.mp4")) as loop:
        for result in loop:                      # FrameResult: frame index, timestamp, faces
            print(result.index, [f.name for f in result.faces])

The source is anything `Capture` takes: an image, a folder of images, a video file, a camera index, an RTSP/HTTP URL
or a GStreamer pipeline (`jetson_csi_pipeline()`), an open `Capture`, or `PushedFrames` (stream mode,
`g2d_edge.video.FrameStream`). This loop is the one place that decides "video or stills": for a video
(`Capture.is_video`; `VideoOptions.track` overrides) it makes a `FaceTracker` per run and calls
`Recognizer.identify(frame, tracker)`, so faces keep a track id and are recognised only when needed
(`g2d_edge.video.tracking`); images and folders are independent photos. `VideoOptions(overlap=True)` runs the loop
on two threads (`g2d_edge.video.overlap`): frame t+1 is located (detection, track association) on a worker thread
while frame t is recognised on the caller's, with the same results as one thread. `g2d identify` and `g2d serve`
run this loop; `samples/webcam.py` shows it as a short API demo.

The annotated video is written while the frames arrive (it may be a live recording of any length), so unlike the
other files of the SDK it is not written atomically: an interrupted run (Ctrl-C, or SIGTERM to `g2d identify`)
leaves the frames written so far. The output may not be the source itself (also not through a symlink or a hard
link) nor an existing non-regular file (a device such as /dev/full, a FIFO): InputError before anything is read.
A video file that ends up empty after frames were written is a G2DError, never a silent "wrote".
"""
from __future__ import annotations

import logging
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple, Union

import cv2
import numpy as np

from ..draw import DrawOptions, annotate
from ..errors import G2DError, InputError, check_fields, option
from ..results import FrameResult
from ..text import printable
from .capture import Capture, CaptureOptions, CaptureStats, PushedFrames, SourceLike
from .overlap import LocateAhead
from .tracking import FaceTracker, TrackingOptions

log = logging.getLogger(__name__)

#: Containers the annotated video can be written as, with the codec used for each.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
#: Frame rate of the written video when the source does not tell (cameras, image folders).
DEFAULT_OUTPUT_FPS = 25.0
#: Keys that close the window (q, Esc).
QUIT_KEYS = (ord("q"), 27)


@dataclass(frozen=True)
class VideoOptions:
    """What the loop does with each frame besides recognising it.

    show: show the annotated frames in a window (q or Esc stops); needs a display.
    output: write the annotated frames as a video (.mp4, .avi or .mkv), at the source's frame rate.
    max_frames: stop after this many frames (0: at the end of the source).
    show_fps: draw the processing rate in the corner of the annotated frames.
    draw: how faces are drawn (`g2d_edge.draw.DrawOptions`).
    capture: how the source is read (`g2d_edge.video.capture.CaptureOptions`).
    window_name: title of the window.
    track: track faces between frames; None: for videos, cameras and streams, not for images and folders
        (`Capture.is_video`).
    tracking: the tracker's options (`g2d_edge.video.tracking.TrackingOptions`).
    overlap: run the loop on two threads (`g2d_edge.video.overlap`): a worker locates frame t+1 (the detector and
        the tracker's association) while the thread iterating the loop recognises frame t (keypoints, alignment,
        model, mask flag, gallery, vote) and annotates / shows / writes it; frames are decoded on the source's own
        reader thread either way. Same results as False, frame for frame; the worker reads up to two frames ahead.
        Each stage's runtime threads are the Recognizer's: `DetectorOptions.threads` for YuNet (stage A),
        `BackendOptions.of(intra_op_threads=...)` for the model (stage B), one for the mask flag. Off by default:
        on the 2-core development machine the runtimes' own threads (the default, one per core) already fill both
        cores in the heavy calls, and the overlapped loop ran at 0.79-1.07x the sequential loop's FPS on video and
        0.95x on a folder of photos (README, "Both cores"). Try it where the runtimes run on one thread each, or
        leave cores idle. Needs a `Recognizer` (an object with only `identify` runs sequentially).
    """

    show: bool = False
    output: Optional[Union[str, os.PathLike]] = None
    max_frames: int = option(0, low=0)
    show_fps: bool = True
    draw: DrawOptions = field(default_factory=DrawOptions)
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    window_name: str = "g2d-edge"
    track: Optional[bool] = None
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    overlap: bool = option(False)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.output is not None and Path(self.output).suffix.lower() not in VIDEO_CODECS:
            raise InputError(f"VideoOptions.output must be a video file ending in {', '.join(VIDEO_CODECS)}, "
                             f"got {str(self.output)!r}")


def check_can_show(options: VideoOptions) -> None:
    """G2DError when `options.show` asks for a window but there is no display."""
    if options.show and not has_display():
        raise G2DError("no display found (DISPLAY is not set), so no window can be shown; run without --show "
                       "(write the annotated video with --output out.mp4)")


def has_display() -> bool:
    """Whether a window can be opened (on Linux: DISPLAY or WAYLAND_DISPLAY is set)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class VideoLoop:
    """Recognise every frame of `source` with `recognizer`, showing and / or writing the annotated frames.

    Iterate it for a `FrameResult` per frame; use it as a context manager (or call `close()`) to release the source
    it opened, the window and the video file (a `Capture` or `PushedFrames` passed in stays the caller's, as does the
    recognizer). After the loop, `frames`, `elapsed_s`, `capture_stats`, `tracker` (None for stills) and `written`
    (the video file, once something was written) tell what happened.

    Raises (when iterated) CaptureError for a source that cannot be opened, G2DError when `show` is asked for but no
    window can be opened, or the video file cannot be written; with `VideoOptions.overlap`, an error of the worker
    thread is raised here as it was raised there, after the results of the frames before it.
    """

    def __init__(self, recognizer: Any, source: Union[SourceLike, Capture, PushedFrames],
                 options: Optional[VideoOptions] = None) -> None:
        self.recognizer = recognizer
        self.source = source
        self.options = options or VideoOptions()
        check_can_show(self.options)
        self.frames = 0
        self.elapsed_s = 0.0
        self.capture_stats: Optional[CaptureStats] = None
        self.written: Optional[Path] = None
        self._writer: Optional[cv2.VideoWriter] = None
        self._capture: Optional[Union[Capture, PushedFrames]] = None
        self._owns_capture = not isinstance(source, (Capture, PushedFrames))
        self.tracker: Optional[FaceTracker] = None
        self._stopped = False
        self._ahead: Optional[LocateAhead] = None

    def __iter__(self) -> Iterator[FrameResult]:
        options = self.options
        if options.output is not None:
            check_output_path(Path(options.output), getattr(self.source, "source", self.source))
        self._capture = Capture(self.source, options.capture) if self._owns_capture else self.source
        track = self._capture.is_video if options.track is None else options.track
        self.tracker = FaceTracker(options.tracking) if track else None  # a new run is a new scene
        start = last = time.perf_counter()
        fps: Optional[float] = None
        try:
            for frame, located in self._frames():
                faces = tuple(self.recognizer.identify(frame.image, self.tracker) if located is None
                              else self.recognizer.recognise(located, self.tracker))
                now = time.perf_counter()
                rate = 1.0 / max(now - last, 1e-6)
                fps, last = (rate if fps is None else 0.9 * fps + 0.1 * rate), now
                self.frames += 1
                self.elapsed_s = now - start
                if options.show or options.output is not None:
                    self._present(annotate(frame.image, faces, fps=fps if options.show_fps else None,
                                           options=options.draw))
                yield FrameResult(frame.index, frame.timestamp_ms, faces, frame.image, frame.path, fps)
                if self._stopped or (options.max_frames and self.frames >= options.max_frames):
                    break
            self._finish_output()
        finally:
            self._stop_ahead()
            self.capture_stats = self._capture.stats
            self.close()

    def _frames(self) -> Iterator[Tuple[Any, Any]]:
        """(frame, its `LocatedFrame`) from the worker when the loop overlaps, else (frame, None) from the source."""
        rec = self.recognizer
        if not (self.options.overlap and callable(getattr(rec, "locate", None))
                and callable(getattr(rec, "recognise", None))):
            return ((frame, None) for frame in self._capture)
        self._ahead = LocateAhead(rec, self._capture, self.tracker, self.options.max_frames)
        return iter(self._ahead)

    def _stop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def _present(self, shown: np.ndarray) -> None:
        """Write the annotated frame to the video and / or show it (q or Esc stops the loop)."""
        if self.options.output is not None:
            if self._writer is None:
                self._writer = _open_writer(Path(self.options.output), self._capture.fps or DEFAULT_OUTPUT_FPS,
                                            (shown.shape[1], shown.shape[0]))
                self.written = Path(self.options.output)
            self._writer.write(shown)
        if self.options.show:
            try:
                cv2.imshow(self.options.window_name, shown)
                key = cv2.waitKey(1) & 0xFF
            except cv2.error:
                raise G2DError("cannot open a window here (no display?); run without --show "
                               "(write the annotated video with --output out.mp4)") from None
            self._stopped = key in QUIT_KEYS

    def _finish_output(self) -> None:
        """Close the video file after a complete run and check that it holds data: OpenCV's writer reports no write
        error, so an output that swallowed the frames is found by its size."""
        if self._writer is None or self.written is None:
            return
        self._writer.release()
        self._writer = None
        try:
            size = self.written.stat().st_size
        except OSError as exc:
            size, why = 0, f" ({exc.strerror or exc})"
        else:
            why = ""
        if size == 0:
            raise G2DError(f"the video {self.written} was not written: {self.frames} frame(s) went to it but the file "
                           f"is empty{why} (disk full, or not a writable file); write it somewhere else")
        log.info("wrote %s (%d frames)", self.written, self.frames)

    def close(self) -> None:
        """Stop the worker thread (`VideoOptions.overlap`), release the source, the video file and the window. Safe to
        call twice."""
        self._stop_ahead()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            log.info("wrote %s (%d frames)", self.written, self.frames)
        if self._capture is not None and self._owns_capture:
            self._capture.close()
        if self.options.show:
            try:
                cv2.destroyWindow(self.options.window_name)
            except cv2.error:  # never opened
                pass

    def __enter__(self) -> "VideoLoop":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_output_path(output: Path, source: SourceLike) -> None:
    """InputError when the annotated video would be written over the source (the same file, also through a symlink
    or a hard link) or into something that is not a regular file (a device such as /dev/full, a FIFO, a folder)."""
    if isinstance(source, (str, os.PathLike)) and not isinstance(source, bool):
        src = Path(os.fspath(source)).expanduser()
        try:
            same = src.is_file() and output.exists() and os.path.samefile(src, output)
        except (OSError, ValueError):
            same = False
        if same:
            raise InputError(f"the output video {printable(output)} is the source itself: writing it would destroy "
                             "the video being read; choose another output file")
    try:
        mode = output.stat().st_mode
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot write the video {printable(output)}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise InputError(f"cannot write the video to {printable(output)}: it is {kind}; give a new .mp4/.avi/.mkv "
                         "file name")


def _open_writer(path: Path, fps: float, size: Tuple[int, int]) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[path.suffix.lower()]), float(fps), size)
    if not writer.isOpened():
        raise G2DError(f"cannot write the video {path} (this OpenCV build has no encoder for it, or the folder is "
                       "not writable); try a .avi file name")
    return writer
