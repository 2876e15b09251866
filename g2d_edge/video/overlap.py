"""Both cores for one video: `VideoLoop`'s overlapped mode (`VideoOptions(overlap=True)`) locates frame t+1 on a
worker thread while the caller's thread recognises frame t.

Stage A (the worker, `LocateAhead`): take the next frame from the source and `Recognizer.locate` it: the detector
(the full pass or the local one near the tracks, `TrackingOptions.detect_every`) and the tracker's association
(`FaceTracker.associate`). Stage B (the thread iterating the loop): `Recognizer.recognise`: BlazeFace keypoints,
alignment, the model, the mask flag, the gallery, the track vote, then the annotation and the output. The frames are
decoded before both, on the source's own reader thread (`Capture`).

Stage A needs nothing from stage B: where to look in frame t+1 depends only on the faces found in frame t (their
tracks' boxes), never on their names, so the results are those of the sequential loop, frame for frame (same faces,
track ids and names; tested). The two stages meet in a queue of one located frame: at most three frames are held at
once (one being located, one waiting, one being recognised), and stage A reads ahead of the caller by at most two
frames. A failure in stage A reaches the caller as the same exception, after the frames located before it; closing
the loop (or leaving its `for`, or Ctrl-C in it) stops the worker and joins it.

The runtimes release the GIL in their heavy calls (ONNX Runtime, OpenVINO, OpenCV, numpy), so the two stages run on
both cores; what stays in Python (ByteTrack's association, the vote, YuNet's decoding) takes turns. It pays where
the stages are of similar cost and the runtimes do not already use every core: on the 2-core development machine,
with one runtime thread per stage, a folder of 1080p photos with 16 faces went 1.39x faster than sequential on one
thread, but no faster than sequential with the runtimes' default threads (one per core), which is why it is off by
default; on video with tracking, recognition is a small share of a frame (5-18 %), so there is little to overlap
(README, "Both cores": `benchmarks/results/pipeline-overlap-cpu*.json`).
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Iterator, Optional, Tuple, Union

from ..errors import G2DError
from .capture import Capture, Frame, PushedFrames
from .tracking import FaceTracker

log = logging.getLogger(__name__)

#: Seconds between two looks at the stop flag while a stage waits for the other (or for the source).
POLL_S = 0.1
#: Seconds `LocateAhead.close` waits for the worker to finish the frame it is locating.
JOIN_TIMEOUT_S = 30.0

_END = object()


class _Failed:
    """What stage A raised, carried to the caller."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class LocateAhead:
    """Stage A of the overlapped loop on its own thread: frames of `source` located by `recognizer.locate(image,
    tracker)`, handed over in order as (frame, located) by iterating this object.

    limit: locate at most this many frames (0: until the source ends). Use `close()` (the loop does) to stop and
    join the worker; the source stays the caller's.
    """

    def __init__(self, recognizer: Any, source: Union[Capture, PushedFrames], tracker: Optional[FaceTracker],
                 limit: int = 0) -> None:
        self._recognizer = recognizer
        self._source = source
        self._tracker = tracker
        self._limit = limit
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="g2d-locate", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the worker thread is still running."""
        return self._thread.is_alive()

    def __iter__(self) -> Iterator[Tuple[Frame, Any]]:
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if self._thread.is_alive() or not self._queue.empty():
                    continue
                if self._stop.is_set():
                    return
                raise G2DError("the video loop's locating thread ended without a word; run with "
                               "VideoOptions(overlap=False) and report the problem") from None
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    def close(self) -> None:
        """Stop the worker and wait for it (it finishes the frame it is locating). Safe to call twice."""
        self._stop.set()
        try:
            while True:  # make room, so that a worker waiting to hand a frame over sees the stop
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("video loop: the locating thread did not stop within %.0f s; it will exit on its own",
                            JOIN_TIMEOUT_S)

    def _run(self) -> None:
        located = 0
        try:
            while not self._stop.is_set() and not (self._limit and located >= self._limit):
                frame = self._source.read(timeout=POLL_S)
                if frame is None:
                    if self._source.ended:
                        break
                    continue
                item = (frame, self._recognizer.locate(frame.image, self._tracker))
                if not self._hand_over(item):
                    return
                located += 1
        except BaseException as exc:  # the caller's to see, as raised
            self._hand_over(_Failed(exc))
            return
        self._hand_over(_END)

    def _hand_over(self, item: Any) -> bool:
        """Put `item` in the queue once there is room; False when stopped first."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False
