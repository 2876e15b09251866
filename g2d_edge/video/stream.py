"""Stream mode: the application pushes frames, one worker thread recognises the newest, results come back in order.

    with Recognizer(gallery="people.g2d") as rec, FrameStream(rec, callback=on_result) as stream:
        for image, ms in camera_frames():      # frames the application has (e.g. from its own camera SDK)
            stream.submit(image, ms)            # returns at once; the newest frame wins
        stream.wait_idle(5)

It is no second engine: `FrameStream` runs `VideoLoop` over `PushedFrames` on its thread (and, with
`VideoOptions(overlap=True)`, the loop's own locating thread beside it), so a stream is tracked like any video (one
`FaceTracker` per run) and can show or write its annotated frames (`VideoOptions`). The recognizer is used through
its public methods only (`identify`, or `locate` and `recognise`), and stays the caller's (close the stream before
the recognizer). When
frames arrive faster than they are recognised, a frame not yet taken is replaced by the newer one (`stats()`:
submitted, processed, dropped). Results (`g2d_edge.results.FrameResult`) reach `callback` on the worker thread in
frame order and are kept as `latest`. A frame whose recognition fails is logged and skipped, and the next frame
starts a new run (new track ids); a closed recognizer ends the stream.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from ..errors import ClosedError
from ..results import FrameResult
from .capture import PushedFrames
from .loop import VideoLoop, VideoOptions

log = logging.getLogger(__name__)


class FrameStream:
    """Recognise frames pushed with `submit(frame, timestamp_ms)` on one worker thread (started here).

    Args:
        recognizer: a `Recognizer` (or anything with its `identify(frame, tracker)`).
        callback: called with each `FrameResult` on the worker thread, in frame order.
        options: `VideoOptions` for the loop (tracking, showing or writing the annotated frames).
    """

    #: Seconds `close()` waits for the frame being processed (and its callback) to finish.
    JOIN_TIMEOUT_S = 30.0

    def __init__(self, recognizer: Any, callback: Optional[Callable[[FrameResult], None]] = None,
                 options: Optional[VideoOptions] = None) -> None:
        self.recognizer = recognizer
        self.options = options or VideoOptions()
        self._callback = callback
        self._frames = PushedFrames()
        self._done_cond = threading.Condition()
        self._finished = 0  # frames taken by the loop and done with (recognised or failed)
        self.processed = 0
        self.latest: Optional[FrameResult] = None
        self._thread = threading.Thread(target=self._run, name="g2d-stream", daemon=True)
        self._thread.start()

    def submit(self, frame: np.ndarray, timestamp_ms: int) -> None:
        """Hand a BGR frame (copied) to the worker without waiting; timestamps (ms) must increase. InputError for a
        bad frame or timestamp, ClosedError after `close()`. Safe to call from several threads."""
        if self._frames.push(frame, timestamp_ms):
            log.debug("stream: dropped an older pending frame for the one at %d ms", timestamp_ms)

    def stats(self) -> Dict[str, int]:
        """Frames submitted, processed (a result was given) and dropped (replaced by a newer one)."""
        counts = self._frames.stats
        return {"submitted": counts.read, "processed": self.processed, "dropped": counts.dropped}

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until every submitted frame is dropped or done with; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done_cond:
            while True:
                counts = self._frames.stats
                if self._finished + counts.dropped >= counts.read or not self._thread.is_alive():
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done_cond.wait(0.05 if remaining is None else min(0.05, remaining))

    def close(self) -> None:
        """Take no more frames, let the worker finish the frame it holds, and join it. Safe to call twice, also
        from the callback."""
        self._frames.close()
        if threading.current_thread() is self._thread:
            return
        self._thread.join(self.JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("stream: the worker did not stop within %.0f s (a result callback that does not return?)",
                        self.JOIN_TIMEOUT_S)

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            taken, published = self._frames.stats.delivered, self.processed
            try:
                with VideoLoop(self.recognizer, self._frames, self.options) as loop:
                    for result in loop:
                        self._publish(result)
                return  # the frames were closed
            except ClosedError:
                log.info("stream: the recognizer was closed; the stream ends")
                self._frames.close()
                self._count_done(self._unfinished(taken, published))
                return
            except Exception:  # keep the stream alive; the error is the caller's to see in the log
                if self._frames.stats.delivered == taken:  # the loop itself cannot run (e.g. its output)
                    log.exception("stream: the video loop cannot run; the stream ends")
                    self._frames.close()
                    return
                lost = self._unfinished(taken, published)
                log.exception("stream: recognising a frame failed; it is skipped%s",
                              f", with the {lost - 1} frame(s) read ahead of it" if lost > 1 else "")
                self._count_done(lost)

    def _unfinished(self, taken: int, published: int) -> int:
        """Frames the loop that just ended took but gave no result for: the failed one, and with
        `VideoOptions.overlap` those its worker had read ahead (at least 1)."""
        return max(1, self._frames.stats.delivered - taken - (self.processed - published))

    def _publish(self, result: FrameResult) -> None:
        self.latest = result
        self.processed += 1
        try:
            if self._callback is not None:
                self._callback(result)
        except Exception:
            log.exception("stream: the result callback failed on the frame at %d ms", result.timestamp_ms)
        finally:
            self._count_done()

    def _count_done(self, frames: int = 1) -> None:
        with self._done_cond:
            self._finished += frames
            self._done_cond.notify_all()
