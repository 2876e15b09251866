"""Video: frame sources, the latest-frame slot, face tracking, and the loop that ties them to a Recognizer.

    from g2d_edge.video import VideoLoop, VideoOptions
    with Recognizer(options=RecognizerOptions(track=True)) as rec, \
            VideoLoop(rec, "people.mp4", VideoOptions(output="out.mp4")) as loop:
        for result in loop:                     # a FrameResult per frame: identify -> annotate -> write
            print(result.index, [face.name for face in result.faces])

Modules: `capture.py` (Capture: camera, video file, URL, GStreamer pipeline, folder, image), `slot.py` (LatestSlot:
the newest frame wins), `tracking.py` (FaceTracker: ByteTrack and the identity vote), `loop.py` (VideoLoop).
"""
from __future__ import annotations

from .capture import Capture, CaptureOptions, CaptureStats, Frame
from .loop import FrameResult, VideoLoop, VideoOptions
from .tracking import FaceTracker, TrackingOptions

__all__ = ["Capture", "CaptureOptions", "CaptureStats", "FaceTracker", "Frame", "FrameResult", "TrackingOptions",
           "VideoLoop", "VideoOptions"]
