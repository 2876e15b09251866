#!/usr/bin/env python3
"""YuNet through each runtime, at the same outputs: OpenCV's DNN module (`cv2.FaceDetectorYN`), ONNX Runtime and
OpenVINO (the shipped model's weights folded to float32; `DetectorOptions.runtime`).

Frames: real photos of the shared CelebA people, every other one with a synthetic mask, pasted with 64 px faces onto
textured frames (`benchmarks/_frames.py`) of 640x360, 960x540, 1920x1080 and 3840x2160 with up to 16 faces. For
each frame size:

- **one pass**: YuNet once over the whole frame (the detector alone; the frame padded to a multiple of 64 px), median
  ms per frame;
- **every-scale**: the SDK's default front end (`FaceDetector()`: the image pyramid, YuNet's own keypoints, so the
  time is YuNet's) on each runtime, median ms per frame;
- **agreement** with OpenCV: faces found by each runtime, and the largest box-corner and keypoint difference (px)
  of the matched faces.

The runtimes take turns call by call (`interleaved_median_seconds`), so that a change in the machine's load hits
them alike; each runs on `--threads` threads (OpenCV's through `cv2.setNumThreads`).

    python benchmarks/yunet_runtimes.py --threads 1 --json benchmarks/results/yunet-runtimes-cpu.json
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._frames import compose_frame, load_source_faces  # noqa: E402
from benchmarks._timing import interleaved_median_seconds  # noqa: E402
from g2d_edge.detectors import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.detectors import Detection, YuNetDetector, YuNetRuntimeDetector  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402

log = logging.getLogger("benchmarks.yunet_runtimes")

DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-train"
SIZES = {"360p": (360, 640), "540p": (540, 960), "1080p": (1080, 1920), "4K": (2160, 3840)}


def runtimes_here() -> List[str]:
    """The runtimes that can run YuNet here, OpenCV first (the reference)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return ["opencv", "onnxruntime"]
    return ["opencv", "onnxruntime", "openvino"]


def one_pass_detector(runtime: str, threads: int):
    return YuNetDetector() if runtime == "opencv" else YuNetRuntimeDetector(runtime, threads=threads)


def agreement(ref: Sequence[Detection], got: Sequence[Detection]) -> Dict[str, float]:
    """Faces found, faces of `ref` without a counterpart (box IoU >= 0.5) in `got`, and the largest box-corner and
    keypoint difference (px) of the matched faces."""
    missed, box_px, kps_px = 0, 0.0, 0.0
    for face in ref:
        if not got:
            missed += 1
            continue
        boxes = np.stack([g.box for g in got])
        ix = np.clip(np.minimum(face.box[2], boxes[:, 2]) - np.maximum(face.box[0], boxes[:, 0]), 0, None)
        iy = np.clip(np.minimum(face.box[3], boxes[:, 3]) - np.maximum(face.box[1], boxes[:, 1]), 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = ix * iy / (area(face.box) + area(boxes) - ix * iy)
        best = int(np.argmax(iou))
        if iou[best] < 0.5:
            missed += 1
            continue
        box_px = max(box_px, float(np.abs(got[best].box - face.box).max()))
        kps_px = max(kps_px, float(np.abs(got[best].keypoints - face.keypoints).max()))
    return {"found": len(got), "missed": missed, "max_box_px": box_px, "max_keypoint_px": kps_px}


def measure_size(image: np.ndarray, runtimes: Sequence[str], threads: int, repeats: int) -> Dict[str, Dict]:
    """{runtime: {one_pass_ms, every_scale_ms, one_pass agreement, every_scale agreement}} for one frame."""
    one = {rt: one_pass_detector(rt, threads) for rt in runtimes}
    every = {rt: FaceDetector(DetectorOptions(runtime=rt, threads=threads, keypoints="detector")) for rt in runtimes}
    try:
        ref_one, ref_every = one["opencv"].detect(image), every["opencv"].detect(image)
        out = {rt: {"one_pass": agreement(ref_one, one[rt].detect(image)),
                    "every_scale": agreement(ref_every, every[rt].detect(image))} for rt in runtimes}
        for mode, dets in (("one_pass", one), ("every_scale", every)):
            calls = {rt: (lambda d=det: d.detect(image)) for rt, det in dets.items()}
            for rt, seconds in interleaved_median_seconds(calls, 1, repeats).items():
                out[rt][f"{mode}_ms"] = 1000 * seconds
        return out
    finally:
        for det in list(one.values()) + list(every.values()):
            det.close()


def run(data: Path, sizes: Sequence[str], faces_per_frame: int, threads: int, repeats: int, seed: int = 5) -> Dict:
    cv2.setNumThreads(threads if threads > 0 else cv2.getNumberOfCPUs())
    runtimes = runtimes_here()
    faces = load_source_faces(data, 24, seed)
    if not faces:
        raise SystemExit(f"no usable photos in {data}")
    results = {}
    for name in sizes:
        frame = compose_frame(faces, SIZES[name], 64, faces_per_frame, np.random.default_rng([seed, 1]))
        log.info("%s: %d faces", name, len(frame.boxes))
        results[name] = {"faces": len(frame.boxes), "runtimes": measure_size(frame.image, runtimes, threads, repeats)}
    return {"machine": machine_info(gpu=False), "opencv": cv2.__version__, "threads": threads, "repeats": repeats,
            "runtimes": runtimes, "sizes": results}


def report(result: Dict) -> str:
    runtimes = result["runtimes"]
    lines = [f"YuNet per runtime on {machine_line(result['machine'])}; OpenCV {result['opencv']}, "
             f"{result['threads'] or 'default'} thread(s), median of {result['repeats']} calls taken in turns", "",
             "| frame (faces) | mode | " + " | ".join(f"{rt} ms" for rt in runtimes) + " | "
             + " | ".join(f"{rt} vs opencv" for rt in runtimes[1:]) + " | faces found (max px diff box / kps) |",
             "|---|---|" + "---|" * (2 * len(runtimes) - 1) + "---|"]
    for name, per in result["sizes"].items():
        for mode in ("one_pass", "every_scale"):
            r = per["runtimes"]
            ms = [r[rt][f"{mode}_ms"] for rt in runtimes]
            found = ", ".join(f"{rt} {r[rt][mode]['found']} ({r[rt][mode]['max_box_px']:.3f} / "
                              f"{r[rt][mode]['max_keypoint_px']:.3f})" for rt in runtimes)
            lines.append(f"| {name} ({per['faces']}) | {mode.replace('_', '-')} | "
                         + " | ".join(f"{m:.1f}" for m in ms) + " | "
                         + " | ".join(f"{ms[0] / m:.2f}x" for m in ms[1:]) + f" | {found} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled photos <identity>/<photo>.jpg")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--faces", type=int, default=16, help="faces per frame (as many as fit)")
    p.add_argument("--threads", type=int, default=1, help="threads per runtime (0: each runtime's default)")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per runtime, taken in turns")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = run(args.data, args.sizes, args.faces, args.threads, max(1, args.repeats))
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
