#!/usr/bin/env python3
"""End-to-end pipeline benchmark: frames per second and time per stage at 1, 4 and 16 faces per frame.

Stages: capture (time the loop waits on the threaded `Capture` for the next frame: JPEG frames read from a folder,
decoded ahead on the reader thread, as a camera would deliver them), detection (the SDK's default front end unless
`--detector` / `--scale-mode` say otherwise: YuNet in the every-scale mode with BlazeFace keypoints), tracking,
alignment, inference (all faces of a frame in one backend call, and the mask flag) and matching (cosine top-1 over a
gallery).

`--video`: the frames form a video (the same faces drifting across the frame) and every row is run twice, with
tracking off (every face recognised in every frame) and on (`identify(frame, tracker)`: a track is recognised
when new, every `recognise_every` frames, or when its face gets clearly better); `embedded` is the faces embedded per
frame.

Test frames are built from real photos: N face photos of different people from ../shared/data/celeba-train tiled into
one frame (1x1, 2x2, 4x4). The photos the detector is most confident about are used, so that the N faces are really
found; the table reports how many faces were found per frame. The gallery holds those people plus random filler
identities (`--gallery-size`).

    python benchmarks/pipeline.py                          # shipped model, CPU (+ GPU when present), Markdown
    python benchmarks/pipeline.py --model m.onnx --json    # JSON on stdout
    python benchmarks/pipeline.py --backends cpu --faces 1,4 --frames 30
    python benchmarks/pipeline.py --detector short --scale-mode one      # the previous front end (BlazeFace, 1 pass)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from g2d_edge import machine as _machine  # noqa: E402
from g2d_edge import Capture, Recognizer, RecognizerOptions  # noqa: E402
from g2d_edge.detectors import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.video import CaptureOptions, FaceTracker  # noqa: E402
from g2d_edge.errors import G2DError  # noqa: E402
from g2d_edge.io import list_people  # noqa: E402
from g2d_edge.backends.loader import SHIPPED_MODEL  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-train"
STAGES = ("capture", "detection", "tracking", "alignment", "inference", "matching")


@dataclass
class Row:
    """One line of the result table."""

    config: str
    backend: str
    device: str
    tracking: str
    faces_per_frame: int
    faces_found: float
    embedded: float
    frames: int
    fps: float
    capture_ms: float
    detection_ms: float
    tracking_ms: float
    alignment_ms: float
    inference_ms: float
    matching_ms: float
    total_ms: float


def machine_info() -> Dict[str, Any]:
    """The machine (`g2d_edge.machine`: CPU model, core counts, GPU with its memory as the driver names it) and the
    library versions, in this benchmark's table format."""
    shared = _machine.machine_info(gpu=False)
    versions = {"python": shared["python"], "numpy": np.__version__, "opencv": cv2.__version__}
    for mod in ("onnxruntime", "mediapipe", "tensorrt"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            pass
    return {"cpu": shared["cpu"], "cores": int(shared["logical_cores"]), "usable_cores": int(shared["cores"]),
            "gpu": _machine.gpu_name(memory=True) or None, "os": shared["os"], "versions": versions}


#: --scale-mode -> DetectorOptions.every_scale
SCALE_MODES = {"default": None, "every": True, "one": False}


def detector_options(args: argparse.Namespace) -> DetectorOptions:
    """The front end the benchmark runs: `--detector` in `--scale-mode`, other options at the SDK's defaults."""
    return DetectorOptions(model=args.detector, every_scale=SCALE_MODES[args.scale_mode])


def gpu_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def pick_photos(data: Path, count: int, detector: FaceDetector) -> List[np.ndarray]:
    """One photo each of up to `count` people, those the detector finds most confidently, best first."""
    scored: List[Tuple[float, np.ndarray]] = []
    for _, paths in list_people(data)[: max(count * 3, count + 8)]:
        for path in paths[:2]:
            image = cv2.imread(str(path))
            found = detector.detect(image) if image is not None else []
            if len(found) == 1:
                scored.append((found[0].score, image))
                break
    scored.sort(key=lambda s: -s[0])
    if len(scored) < count:
        raise SystemExit(f"only {len(scored)} usable photos in {data}; need {count}")
    return [im for _, im in scored[:count]]


def tile(photos: Sequence[np.ndarray], cell: int) -> np.ndarray:
    """Photos side by side in a square grid (ceil(sqrt(N)) per row), each resized to cell x cell."""
    side = int(np.ceil(np.sqrt(len(photos))))
    frame = np.zeros((side * cell, side * cell, 3), np.uint8)
    for i, photo in enumerate(photos):
        r, c = divmod(i, side)
        frame[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = cv2.resize(photo, (cell, cell))
    return frame


def build_frames(photos: List[np.ndarray], n_faces: int, distinct: int, cell: int) -> List[np.ndarray]:
    """`distinct` frames of `n_faces` tiled photos, rotating through the photo list."""
    frames = []
    for k in range(distinct):
        chosen = [photos[(k * n_faces + i) % len(photos)] for i in range(n_faces)]
        frames.append(tile(chosen, cell))
    return frames


def video_frames(frame: np.ndarray, count: int, drift: int = 24) -> List[np.ndarray]:
    """`count` frames of a video: `frame` on a larger canvas, drifting back and forth by up to `drift` pixels."""
    h, w = frame.shape[:2]
    out = []
    for t in range(count):
        dx = int(round(drift * (1 + np.sin(2 * np.pi * t / 50)) / 2))
        dy = int(round(drift * (1 + np.cos(2 * np.pi * t / 70)) / 2))
        canvas = np.full((h + drift, w + drift, 3), 64, np.uint8)
        canvas[dy:dy + h, dx:dx + w] = frame
        out.append(canvas)
    return out


def fill_gallery(rec: Recognizer, frames: List[np.ndarray], size: int, seed: int = 0) -> None:
    """The people in the frames (one template per face found) plus random filler identities up to `size`."""
    gallery = rec.gallery
    gallery.clear()
    for fi, frame in enumerate(frames):
        for j, face in enumerate(rec.identify(frame)):
            gallery.add(f"person-{fi}-{j}", face.embedding)
    rng = np.random.default_rng(seed)
    missing = max(0, size - len(gallery))
    if missing:
        filler = rng.standard_normal((missing * 3, rec.embedding_dim)).astype(np.float32)
        for i in range(missing):
            gallery.add(f"filler-{i}", filler[i * 3:(i + 1) * 3])


def run_config(config: str, args: argparse.Namespace, photos: List[np.ndarray]) -> List[Row]:
    """The rows of one backend configuration (twice, tracking off and on, in video mode)."""
    return [row for track in ((False, True) if args.video else (None,)) for row in run_tracking(config, args, photos,
                                                                                                track)]


def run_tracking(config: str, args: argparse.Namespace, photos: List[np.ndarray], track: Optional[bool]) -> List[Row]:
    if config == "cpu":
        backend, options = "onnxruntime", {"providers": ["cpu"], "intra_op_threads": args.threads}
    else:
        backend, options = args.gpu_backend, {}
    rec = Recognizer(model=args.model, backend=backend, **options,
                     options=RecognizerOptions(detector=detector_options(args)))
    device = getattr(rec.backend, "provider", None) or rec.backend.name
    label = {None: "-", False: "off", True: "on"}[track]
    rows = []
    try:
        for n_faces in args.faces:
            frames = build_frames(photos, n_faces, 1 if args.video else args.distinct, args.cell)
            if args.video:
                frames = video_frames(frames[0], args.frames + args.warmup)
            fill_gallery(rec, frames[:1] if args.video else frames, args.gallery_size)
            with tempfile.TemporaryDirectory(prefix="g2d-bench-") as tmp:
                for i in range(args.frames + args.warmup):
                    cv2.imwrite(str(Path(tmp) / f"{i:06d}.jpg"), frames[i % len(frames)],
                                [cv2.IMWRITE_JPEG_QUALITY, 90])
                rows.append(measure(rec, Path(tmp), args, config, device, n_faces, label))
    finally:
        rec.close()
    return rows


def measure(rec: Recognizer, folder: Path, args: argparse.Namespace, config: str, device: str,
            n_faces: int, tracking: str) -> Row:
    totals = {s: 0.0 for s in STAGES}
    found = embedded = done = 0
    tracker = FaceTracker() if tracking == "on" else None  # one video per row
    with Capture(folder, CaptureOptions(drop_frames=False)) as cap:
        for _ in range(args.warmup):
            frame = cap.read(timeout=30)
            if frame is None:
                raise SystemExit("capture ended during warm-up")
            rec.identify(frame.image, tracker)
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            frame = cap.read(timeout=30)
            t1 = time.perf_counter()
            if frame is None:
                break
            faces = rec.identify(frame.image, tracker)
            totals["capture"] += t1 - t0
            for stage, seconds in rec.last_timings.items():
                totals[stage] += seconds
            found += len(faces)
            embedded += rec.last_faces_embedded
            done += 1
        wall = time.perf_counter() - start
    per = {s: 1000.0 * totals[s] / max(done, 1) for s in STAGES}
    return Row(config=config, backend=rec.backend.name, device=device, tracking=tracking, faces_per_frame=n_faces,
               faces_found=found / max(done, 1), embedded=embedded / max(done, 1), frames=done,
               fps=done / max(wall, 1e-9), capture_ms=per["capture"], detection_ms=per["detection"],
               tracking_ms=per["tracking"], alignment_ms=per["alignment"],
               inference_ms=per["inference"], matching_ms=per["matching"], total_ms=1000.0 * wall / max(done, 1))


def markdown(rows: List[Row], machine: Dict[str, Any], args: argparse.Namespace, model_name: str) -> str:
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ", no GPU"
    lines = [f"### g2d-edge pipeline: {model_name}", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable){gpu}; "
             f"{machine['os']}; onnxruntime {machine['versions'].get('onnxruntime', '?')}, "
             f"mediapipe {machine['versions'].get('mediapipe', '?')}.",
             f"Detector: {args.detector_name}; gallery of {args.gallery_size} identities; ONNX Runtime CPU "
             f"threads: {args.threads or 'default'}; "
             f"{args.frames} frames per row; times are means per frame in ms.", "",
             "| config | runs on | tracking | faces/frame | found | embedded | FPS | capture | detection | tracking | "
             "alignment | inference | matching | total |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.config} | {r.device} | {r.tracking} | {r.faces_per_frame} | {r.faces_found:.1f} | "
                     f"{r.embedded:.1f} | {r.fps:.1f} | {r.capture_ms:.2f} | {r.detection_ms:.2f} | "
                     f"{r.tracking_ms:.2f} | {r.alignment_ms:.2f} | {r.inference_ms:.2f} | {r.matching_ms:.2f} | "
                     f"{r.total_ms:.2f} |")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="g2d-edge end-to-end pipeline benchmark")
    p.add_argument("--model", default=None, help="model file (.onnx / .engine); default: the shipped model")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of real photos, one sub-folder per person")
    p.add_argument("--faces", default="1,4,16", help="faces per frame, comma separated (default 1,4,16)")
    p.add_argument("--backends", default=None,
                   help="comma separated: cpu (ONNX Runtime CPU) and/or gpu; default: cpu, plus gpu when present")
    p.add_argument("--gpu-backend", default="auto", help="backend for the gpu config: auto, tensorrt, onnxruntime")
    p.add_argument("--threads", type=int, default=0,
                   help="ONNX Runtime CPU threads (0: its default, one per core). On small CPUs 1 can be faster "
                        "overall: idle ORT threads keep spinning and slow the detector and the matching")
    p.add_argument("--detector", choices=("yunet", "short", "full"), default=DetectorOptions.model,
                   help="face detector: yunet (the SDK default), short or full (BlazeFace short / full range)")
    p.add_argument("--scale-mode", choices=tuple(SCALE_MODES), default="default",
                   help="every-scale mode: default (the detector's own: on for YuNet, off for BlazeFace), every or "
                        "one (one pass)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per row")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames per row")
    p.add_argument("--distinct", type=int, default=4, help="different frames per row (cycled)")
    p.add_argument("--cell", type=int, default=144, help="pixels per tiled photo")
    p.add_argument("--gallery-size", type=int, default=1000, help="identities in the gallery")
    p.add_argument("--video", action="store_true",
                   help="frames form a video; each row runs with tracking off and on")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = p.parse_args(argv)
    try:
        args.faces = [int(x) for x in args.faces.split(",") if x.strip()]
    except ValueError:
        p.error("--faces takes comma-separated integers, e.g. 1,4,16")
    if args.backends is None:
        suffix = Path(args.model).suffix.lower() if args.model else ".onnx"
        args.backends = (["gpu"] if suffix == ".engine" else ["cpu"] + (["gpu"] if gpu_available() else []))
    else:
        args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        bad = [b for b in args.backends if b not in ("cpu", "gpu")]
        if bad:
            p.error(f"--backends takes cpu and/or gpu, got {bad}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"pipeline benchmark: photo folder not found: {args.data} (pass --data)", file=sys.stderr)
        return 1
    try:
        with FaceDetector(detector_options(args)) as detector:
            args.detector_name = detector.name
            photos = pick_photos(args.data, max(args.faces) * args.distinct, detector)
        rows: List[Row] = []
        for config in args.backends:
            rows += run_config(config, args, photos)
        model_name = f"shipped model {SHIPPED_MODEL.stem}" if args.model is None else Path(args.model).name
    except G2DError as exc:
        print(f"pipeline benchmark: error: {exc}", file=sys.stderr)
        return 1
    machine = machine_info()
    if args.json:
        print(json.dumps({"model": model_name, "machine": machine, "detector": args.detector_name,
                          "threads": args.threads, "gallery_size": args.gallery_size,
                          "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(markdown(rows, machine, args, model_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
