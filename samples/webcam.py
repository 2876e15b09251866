#!/usr/bin/env python3
"""Live masked-face recognition from a camera, video file, stream URL or image folder: the API in a few lines.

    python samples/webcam.py --enroll people/                 # webcam 0, one sub-folder of photos per person
    python samples/webcam.py --source rtsp://cam/stream --enroll people/ --model my.onnx
    python samples/webcam.py --source clip.mp4 --enroll people/ --headless --output annotated.mp4

The loop itself (Capture -> identify -> annotate -> window / video file) is `g2d_edge.video.VideoLoop`, which is also
`g2d identify SOURCE --show`. Press q or Esc to quit the window; without a screen use --headless.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from g2d_edge import G2DError, Recognition, Recognizer, RecognizerOptions
from g2d_edge.video.capture import jetson_csi_pipeline
from g2d_edge.detectors import DetectorOptions
from g2d_edge.io import list_people
from g2d_edge.video import VideoLoop, VideoOptions
from g2d_edge.video.loop import has_display


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="0", help="camera index, video, URL, image folder, GStreamer pipeline, or "
                                                 "'csi' for a Jetson CSI camera (default: 0)")
    p.add_argument("--enroll", type=Path, help="folder with one sub-folder of photos per person")
    p.add_argument("--gallery", type=Path, help="gallery file to load (and to save after --enroll)")
    p.add_argument("--model", help="model file (.onnx / .engine); default: the shipped model")
    p.add_argument("--detector", choices=("yunet", "short", "full"), default="yunet")
    p.add_argument("--headless", action="store_true", help="no window (for machines without a screen)")
    p.add_argument("--output", type=Path, help="write the annotated video here (.mp4 or .avi)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    p.add_argument("--masked-templates", type=int, default=0, metavar="N",
                   help="also enrol N synthetic masked templates per photo (RecognizerOptions.masked_templates)")
    return p.parse_args()


def describe(face: Recognition) -> str:
    """One face as "name [mask] #track" (the mask tag when it is flagged, the track id in video)."""
    return (f"{face.name or 'unknown'}{' [mask]' if face.masked else ''}"
            + (f" #{face.track_id}" if face.track_id is not None else ""))


def run(args: argparse.Namespace) -> None:
    if not args.headless and not has_display():
        raise G2DError("no display found (DISPLAY is not set); run with --headless [--output out.mp4]")
    source = jetson_csi_pipeline() if args.source == "csi" else args.source
    options = RecognizerOptions(detector=DetectorOptions(model=args.detector), masked_templates=args.masked_templates)
    with Recognizer(model=args.model, gallery=args.gallery, options=options) as rec:
        for name, photos in list_people(args.enroll) if args.enroll else []:
            result = rec.enroll(name, photos, skip_failed=True)
            print(f"enrolled {result.name}: {result.added} template(s) ({result.masked} of them synthetic masked), "
                  f"{len(result.skipped)} photo(s) skipped")
        if args.enroll and args.gallery:
            rec.save_gallery()
        with VideoLoop(rec, source, VideoOptions(show=not args.headless, output=args.output,
                                                 max_frames=args.max_frames)) as loop:
            for frame in loop:
                if args.headless:
                    print(f"frame {frame.index}: {', '.join(describe(f) for f in frame.faces) or 'no face'}")
    print(f"{loop.frames} frames in {loop.elapsed_s:.1f} s ({loop.frames / max(loop.elapsed_s, 1e-6):.1f} FPS)"
          + (f"; wrote {loop.written}" if loop.written else ""))


if __name__ == "__main__":
    try:
        run(parse_args())
    except G2DError as exc:
        sys.exit(f"webcam: error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
