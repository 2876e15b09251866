#!/usr/bin/env python3
"""Live masked-face recognition from a camera, video file, stream URL or image folder.

    python samples/webcam.py --enroll people/                 # webcam 0, one sub-folder of photos per person
    python samples/webcam.py --source rtsp://cam/stream --enroll people/ --model my.onnx
    python samples/webcam.py --source clip.mp4 --enroll people/ --headless --output annotated.mp4

Boxes, names, scores and the frame rate are drawn on every frame (`g2d_edge.draw.annotate`). Press q or Esc to quit
the window. On a machine without a screen use --headless (with --output to save the annotated video).
Live sources hand out the newest frame only (no lag builds up); files and folders are processed frame by frame.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import cv2

from g2d_edge import (Capture, DetectorOptions, G2DError, Recognizer, RecognizerOptions, annotate,
                      jetson_csi_pipeline)
from g2d_edge.io import list_images


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="0",
                   help="camera index, video file, URL, image folder, GStreamer pipeline, or 'csi' for a Jetson "
                        "CSI camera (default: 0)")
    p.add_argument("--enroll", type=Path, help="folder with one sub-folder of photos per person")
    p.add_argument("--gallery", type=Path, help="gallery file to load (and to save after --enroll)")
    p.add_argument("--model", help="model file (.onnx / .engine); default: the shipped model")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime or tensorrt")
    p.add_argument("--detector", choices=("yunet", "short", "full"), default="yunet",
                   help="yunet (default: masked, small and many faces, every scale) or the faster MediaPipe "
                        "BlazeFace, short range (faces within ~2 m) or full range (up to ~5 m)")
    p.add_argument("--threshold", type=float, help="cosine threshold (default: the model's)")
    p.add_argument("--headless", action="store_true", help="no window (for machines without a screen)")
    p.add_argument("--output", type=Path, help="write the annotated video here (.mp4 or .avi)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def enroll_folder(rec: Recognizer, root: Path) -> None:
    people = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    if not people:
        raise G2DError(f"--enroll {root}: expected one sub-folder of photos per person")
    for person in people:
        result = rec.enroll(person.name, list_images(person), skip_failed=True)
        print(f"enrolled {result.name}: {result.added} photo(s), {len(result.skipped)} skipped")


def open_writer(path: Path, fps: float, size: tuple) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise G2DError(f"cannot write video {path}; use a .mp4 or .avi file name")
    return writer


def run(args: argparse.Namespace) -> int:
    if not args.headless and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                       or os.environ.get("WAYLAND_DISPLAY")):
        raise G2DError("no display found (DISPLAY is not set); run with --headless [--output out.mp4]")
    source = jetson_csi_pipeline() if args.source == "csi" else args.source
    options = RecognizerOptions(detector=DetectorOptions(model=args.detector), threshold=args.threshold)
    rec = Recognizer(model=args.model, backend=args.backend, gallery=args.gallery, options=options)
    if args.enroll:
        enroll_folder(rec, args.enroll)
        if args.gallery:
            rec.save_gallery()
    if len(rec.gallery) == 0:
        print("warning: the gallery is empty, every face will be 'unknown' (use --enroll DIR)", file=sys.stderr)
    writer = None
    frames, fps, t_prev, t_start = 0, None, time.perf_counter(), time.perf_counter()
    with Capture(source) as cap:
        try:
            for frame in cap:
                faces = rec.identify(frame.image)
                now = time.perf_counter()
                inst = 1.0 / max(now - t_prev, 1e-6)
                fps = inst if fps is None else 0.9 * fps + 0.1 * inst
                t_prev = now
                shown = annotate(frame.image, faces, fps=fps)
                if args.output is not None:
                    if writer is None:
                        writer = open_writer(args.output, cap.fps or 25.0, (shown.shape[1], shown.shape[0]))
                    writer.write(shown)
                if args.headless:
                    names = ", ".join(f"{f.name or 'unknown'} {f.score:.2f}" if f.score is not None
                                      else "unknown" for f in faces)
                    logging.info("frame %d: %s", frame.index, names or "no face")
                else:
                    try:
                        cv2.imshow("g2d-edge", shown)
                    except cv2.error:
                        raise G2DError("cannot open a window here (no display?); run with --headless "
                                       "[--output out.mp4]") from None
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
                frames += 1
                if args.max_frames and frames >= args.max_frames:
                    break
        finally:
            if writer is not None:
                writer.release()
            if not args.headless:
                cv2.destroyAllWindows()
            rec.close()
        stats = cap.stats
    elapsed = time.perf_counter() - t_start
    print(f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-6):.1f} FPS); "
          f"source frames read {stats.read}, dropped {stats.dropped}"
          + (f"; wrote {args.output}" if writer is not None else ""))
    return 0


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except G2DError as exc:
        print(f"webcam: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
