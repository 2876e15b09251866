"""Video: frame sources, the latest-frame slot, face tracking, the loop that ties them to a Recognizer, stream mode.

    from g2d_edge.video import VideoLoop, VideoOptions
    with Recognizer(gallery="people.g2d") as rec, VideoLoop(rec, "people.mp4", VideoOptions(output="out.mp4")) as loop:
        for result in loop:                     # a FrameResult per frame: identify -> annotate -> write
            print(result.index, [face.name for face in result.faces])

One engine: `VideoLoop` decides once whether a source is a video (tracked) or stills (`Capture.is_video`), and stream
mode (`FrameStream`: the application pushes frames) is that loop over `PushedFrames`. Modules: `capture.py` (Capture:
camera, video file, URL, GStreamer pipeline, folder, image; PushedFrames), `slot.py` (LatestSlot: the newest frame
wins), `tracking.py` (FaceTracker: ByteTrack and the identity vote), `loop.py` (VideoLoop), `stream.py` (FrameStream).
The per-frame result, `FrameResult`, lives in `g2d_edge.results` with the other results.
"""
from __future__ import annotations

from .capture import Capture, CaptureOptions, CaptureStats, Frame, PushedFrames
from .loop import VideoLoop, VideoOptions
from .stream import FrameStream
from .tracking import FaceTracker, TrackingOptions

__all__ = ["Capture", "CaptureOptions", "CaptureStats", "FaceTracker", "Frame", "FrameStream", "PushedFrames",
           "TrackingOptions", "VideoLoop", "VideoOptions"]
