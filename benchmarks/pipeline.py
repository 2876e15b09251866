#!/usr/bin/env python3
"""Camera-realistic pipeline benchmark: the default `Recognizer` on generated 720p / 1080p / 4K video.

Each configuration is a video of 1, 4 or 16 real CelebA faces (../shared/data/celeba-train), every other one with a
synthetic mask, 24-300 px wide, moving across a textured background, leaving at one side and entering at the other
(`benchmarks/_scene.py`). The video runs through the SDK's own `VideoLoop` (one `FaceTracker` per video), once per
`--detect-every` value (`TrackingOptions.detect_every`: 1 = the full detection pass on every frame) and per `--modes`
value: "sequential" (`VideoOptions(overlap=False)`: everything on one thread) and "overlapped" (the default
`VideoOptions(overlap=True)`: frame t+1 located on a worker thread while frame t is recognised), and per `--threads`
value (the runtimes' threads: `DetectorOptions.threads` and the model's `intra_op_threads`; 0 = one per core).
The frames are made in memory before the clock runs and handed to the loop in order, every one (`MemoryFrames`: a
video file whose decoding is already done; a real `Capture` decodes on its own reader thread). The gallery holds
every person of the scenes, enrolled from two other photos of theirs.

Reported per configuration: FPS (frames / wall time of the loop), ms per stage (`Recognizer.last_timings`; in the
overlapped mode detection runs beside the other stages, so they add up to more than ms/frame), faces embedded per
frame, RECALL (faces found / faces present, a face being present when it is wholly in the frame and at least 24 px
wide), NAMED (faces present that carry their own name), and the latency from a face's entry (or the first frame)
until it is first named: mean and worst, in frames.
`--upscale` compares values of `DetectorOptions.upscale` (the finest pyramid level: 1.5 enlarges a 1080p frame to
2880 px for faces too small for YuNet at their own size; 1 starts at full resolution).
`--min-face-size` sets `DetectorOptions.min_face_size` (the pyramid then leaves out levels it does not need) and
counts recall over faces at least that wide.
`--stills N` adds N different 1080p photos with 16 faces through `VideoLoop` as independent stills (a folder of
photos: no tracker, the full pass and every face embedded on each; "stills" in the detect_every column), per mode.
`--photo` adds a single 1080p photo with 16 faces identified as a still (`Recognizer.identify`: the full pass, no
tracker, every face embedded in one batch), per `--threads` value.

    python benchmarks/pipeline.py                                  # 1080p with 1, 4, 16 faces; N = 1 and 5; 40 frames
    python benchmarks/pipeline.py --configs "1080p:1,4,16 4K:16" --frames 120 --photo --out results.json
    python benchmarks/pipeline.py --configs 720p:4 --detect-every 1,3,10 --modes overlapped --threads 1,0 --json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from benchmarks._scene import MIN_FACE, RESOLUTIONS, Scene, load_people  # noqa: E402
from g2d_edge import Gallery, Recognizer, RecognizerOptions  # noqa: E402
from g2d_edge.detectors import DetectorOptions  # noqa: E402
from g2d_edge.errors import G2DError  # noqa: E402
from g2d_edge.backends.loader import BackendOptions  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.video import CaptureStats, Frame, TrackingOptions, VideoLoop, VideoOptions  # noqa: E402
from g2d_edge.video.capture import PushedFrames  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("G2D_SHARED_DATA", REPO.parent / "shared")) / "data" / "celeba-train"
STAGES = ("detection", "tracking", "alignment", "inference", "matching")
MODES = {"sequential": False, "overlapped": True}
#: Frames of the scene between two of `--stills`' photos (each photo shows the faces elsewhere).
STILL_STEP = 23


@dataclass
class Row:
    """One configuration's figures."""

    resolution: str
    faces: int
    detect_every: int
    mode: str
    threads: int
    frames: int
    fps: float
    ms_per_frame: float
    stage_ms: Dict[str, float]
    embedded_per_frame: float
    present_per_frame: float
    recall: float
    named: float
    entries: int
    latency_mean_frames: Optional[float]
    latency_max_frames: Optional[int]
    never_named: int
    fps_runs: List[float]
    upscale: float


def parse_configs(text: str) -> List[Tuple[str, int]]:
    """"1080p:1,4,16 4K:16" -> [("1080p", 1), ("1080p", 4), ("1080p", 16), ("4K", 16)]."""
    out = []
    for group in text.replace(";", " ").split():
        res, _, faces = group.partition(":")
        if res not in RESOLUTIONS or not faces:
            raise ValueError(f"bad configuration {group!r}: RESOLUTION:FACES,... with RESOLUTION one of "
                             f"{', '.join(RESOLUTIONS)}")
        out += [(res, int(n)) for n in faces.split(",") if n.strip()]
    return out


def match(found: List[Any], truth: np.ndarray) -> List[Optional[Any]]:
    """For each true box, the recognition found on it (its box centre inside and width 0.5x-2x), each used once."""
    used = set()
    out: List[Optional[Any]] = []
    for box in truth:
        hit = None
        for i, face in enumerate(found):
            cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
            ratio = (face.box[2] - face.box[0]) / max(box[2] - box[0], 1e-6)
            if i not in used and box[0] <= cx <= box[2] and box[1] <= cy <= box[3] and 0.5 <= ratio <= 2.0:
                hit = face
                used.add(i)
                break
        out.append(hit)
    return out


class Entries:
    """Latency from a face's entry (or the video's first frame) to the first frame that names it right."""

    def __init__(self) -> None:
        self.waiting: Dict[int, int] = {}  # person -> frame of entry
        self.present: set = set()
        self.latencies: List[int] = []
        self.never = 0

    def update(self, t: int, who: np.ndarray, named_right: List[bool]) -> None:
        now = set(int(p) for p in who)
        for person in now - self.present:
            self.waiting[person] = t
        for person in self.present - now:  # left before it was named
            if self.waiting.pop(person, None) is not None:
                self.never += 1
        for person, ok in zip(who, named_right):
            if ok and int(person) in self.waiting:
                self.latencies.append(t - self.waiting.pop(int(person)))
        self.present = now


class MemoryFrames(PushedFrames):
    """Frames made before the clock runs, delivered to `VideoLoop` in order, every one, like a video file's `Capture`
    whose decoding is already done (a stand-in for a source; nothing else of `PushedFrames` is used)."""

    fps = 30.0

    def __init__(self, images: List[np.ndarray]) -> None:
        super().__init__()
        self._frames = [Frame(image, i, int(i * 1000 / self.fps)) for i, image in enumerate(images)]
        self._next = 0

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        if self._next >= len(self._frames):
            return None
        self._next += 1
        return self._frames[self._next - 1]

    def __iter__(self) -> Iterator[Frame]:
        while not self.ended:
            yield self.read()

    @property
    def ended(self) -> bool:
        return self._next >= len(self._frames)

    @property
    def stats(self) -> CaptureStats:
        return CaptureStats(read=len(self._frames), delivered=self._next, dropped=0, skipped=0, reconnects=0)


def run_video(rec: Recognizer, scene: Scene, names: List[str], detect_every: int, images: List[np.ndarray],
              overlap: bool, min_face: float, times: Optional[List[int]] = None) -> Dict[str, Any]:
    """The video `images` of `scene` through `VideoLoop` (`overlap`: `VideoOptions.overlap`). `detect_every` 0:
    the images are independent stills of the scene at `times` (no tracker, the full pass on each)."""
    options = VideoOptions(overlap=overlap, track=detect_every > 0,
                           tracking=TrackingOptions(detect_every=max(1, detect_every)))
    times = times if times is not None else list(range(len(images)))
    stage = {s: 0.0 for s in STAGES}
    embedded = present = found = named = 0
    entries = Entries()
    t0 = time.perf_counter()
    with VideoLoop(rec, MemoryFrames(images), options) as loop:
        for result in loop:
            for key, seconds in rec.last_timings.items():
                stage[key] = stage.get(key, 0.0) + seconds
            embedded += rec.last_faces_embedded
            t = times[result.index]
            truth, who = scene.truth(t, min_face)
            hits = match(result.faces, truth)
            right = [h is not None and h.name == names[p] for h, p in zip(hits, who)]
            present += len(truth)
            found += sum(h is not None for h in hits)
            named += sum(right)
            entries.update(t, who, right)
    busy = time.perf_counter() - t0
    frames = len(images)
    entries.never += len(entries.waiting)  # in view at the end, never named
    lat = entries.latencies
    return {"frames": frames, "fps": frames / max(busy, 1e-9), "ms_per_frame": 1000 * busy / frames,
            "stage_ms": {k: round(1000 * v / frames, 2) for k, v in stage.items()},
            "embedded_per_frame": embedded / frames, "present_per_frame": present / frames,
            "recall": found / max(present, 1), "named": named / max(present, 1), "entries": len(lat) + entries.never,
            "latency_mean_frames": float(np.mean(lat)) if lat else None,
            "latency_max_frames": int(max(lat)) if lat else None, "never_named": entries.never}


def compare_modes(rec: Recognizer, scene: Scene, names: List[str], every: int, images: List[np.ndarray],
                  args: argparse.Namespace, threads: int, min_face: float) -> List[Row]:
    """One row per mode of `args.modes`: each mode run `args.repeats` times, the modes taking turns (so that a
    load that comes and goes hits each alike), after one untimed pass over the first frames (the runtimes meet the
    frame and crop sizes once); the row is the run of median FPS, with every run's FPS in `fps_runs`."""
    times = [STILL_STEP * i for i in range(len(images))] if every == 0 else None
    run_video(rec, scene, names, every, images[:30], False, min_face, times)  # untimed warm-up
    runs: Dict[str, List[Dict[str, Any]]] = {mode: [] for mode in args.modes}
    for _ in range(args.repeats):
        for mode in args.modes:
            runs[mode].append(run_video(rec, scene, names, every, images, MODES[mode], min_face, times))
    rows = []
    for mode, done in runs.items():
        fps = [r["fps"] for r in done]
        median = sorted(done, key=lambda r: r["fps"])[len(done) // 2]
        rows.append(Row(resolution=scene_name(scene), faces=len(scene.walkers), detect_every=every, mode=mode,
                        threads=threads, upscale=rec.detector.options.upscale, fps_runs=[round(f, 2) for f in fps],
                        **median))
        print(f"{rows[-1].resolution} {rows[-1].faces} faces detect_every={every} {mode} threads={threads}: "
              f"{median['fps']:.1f} FPS (runs: {', '.join(f'{f:.1f}' for f in fps)})", file=sys.stderr)
    return rows


def scene_name(scene: Scene) -> str:
    """"1080p" for a 1920x1080 scene (the `RESOLUTIONS` key)."""
    return next(name for name, size in RESOLUTIONS.items() if size == (scene.h, scene.w))


def run_photo(rec: Recognizer, scene: Scene, names: List[str], repeats: int, min_face: float,
              threads: int) -> Dict[str, Any]:
    """A still: the scene's first frame identified `repeats` times without a tracker (the full pass)."""
    image = scene.frame(0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = rec.identify(image)
        times.append(1000 * (time.perf_counter() - t0))
    truth, who = scene.truth(0, min_face)
    hits = match(faces, truth)
    return {"resolution": f"{scene.w}x{scene.h}", "threads": threads, "upscale": rec.detector.options.upscale,
            "faces_present": len(truth),
            "found": sum(h is not None for h in hits),
            "named": sum(h is not None and h.name == names[p] for h, p in zip(hits, who)),
            "ms_median": round(float(np.median(times)), 1), "ms_all": [round(x, 1) for x in times],
            "stage_ms": {k: round(1000 * v, 2) for k, v in rec.last_timings.items()}}


def markdown(rows: List[Row], photos: List[Dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| frame | faces | detect_every | mode | threads | upscale | FPS | ms/frame | detection | tracking | "
             "alignment | inference | matching | embedded/frame | recall | named | "
             "entry → named (frames, mean / worst) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        s = r.stage_ms
        latency = ("–" if r.latency_mean_frames is None
                   else f"{r.latency_mean_frames:.1f} / {r.latency_max_frames}")
        if r.never_named:
            latency += f" ({r.never_named} of {r.entries} never named)"
        lines.append(f"| {r.resolution} | {r.faces} | {r.detect_every or 'stills'} | {r.mode} | "
                     f"{r.threads or 'per core'} | {r.upscale:g} | "
                     f"{r.fps:.1f} | {r.ms_per_frame:.1f} | "
                     + " | ".join(f"{s.get(k, 0.0):.1f}" for k in STAGES)
                     + f" | {r.embedded_per_frame:.2f} | {100 * r.recall:.1f} % | {100 * r.named:.1f} % | {latency} |")
    for photo in photos:
        lines += ["", f"Still photo {photo['resolution']} with {photo['faces_present']} faces (full pass, no "
                      f"tracker), threads {photo['threads'] or 'per core'}, upscale {photo['upscale']:g}: "
                      f"{photo['ms_median']} ms (median of "
                      f"{len(photo['ms_all'])}), {photo['found']} found, {photo['named']} named."]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="g2d-edge camera-realistic pipeline benchmark")
    p.add_argument("--model", default=None, help="model file or shipped model name; default: the shipped default")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="real photos, one sub-folder per person")
    p.add_argument("--configs", default="1080p:1,4,16",
                   help=f"RESOLUTION:FACES,... groups, space separated; resolutions {', '.join(RESOLUTIONS)}")
    p.add_argument("--detect-every", default="1,5", help="TrackingOptions.detect_every values to compare")
    p.add_argument("--frames", type=int, default=40, help="frames per video (longer runs: 120 or more)")
    p.add_argument("--speed", type=float, default=1.0, help="faces' speed factor (1: 3-12 px per frame at 1080p)")
    p.add_argument("--backend", default="auto", help="the recogniser's backend (default auto, as Recognizer())")
    p.add_argument("--modes", default="sequential,overlapped",
                   help="VideoLoop modes to compare: sequential (VideoOptions.overlap=False), overlapped (True)")
    p.add_argument("--threads", default="0",
                   help="runtime threads of the recogniser and YuNet to compare, e.g. 0,1 (0: one per core)")
    p.add_argument("--upscale", default=str(DetectorOptions().upscale),
                   help="DetectorOptions.upscale values to compare, e.g. 1,1.5 (the pyramid's finest level; default: "
                        "the SDK's own)")
    p.add_argument("--min-face-size", type=int, default=None,
                   help="DetectorOptions.min_face_size (default: its own, 20); recall then counts faces at least "
                        "this wide (and >= 24 px)")
    p.add_argument("--photo", action="store_true", help="also a single 1080p photo with 16 faces")
    p.add_argument("--photo-repeats", type=int, default=3)
    p.add_argument("--stills", type=int, default=0,
                   help="also this many different 1080p photos with 16 faces through VideoLoop as stills (no "
                        "tracker; detect_every 0 in the report), per mode")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per video and mode, the modes taking turns; the run of median FPS is reported")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = p.parse_args(argv)
    try:
        args.configs = parse_configs(args.configs)
        args.detect_every = [int(x) for x in args.detect_every.split(",") if x.strip()]
        args.threads = [int(x) for x in args.threads.split(",") if x.strip()]
        args.upscale = [float(x) for x in args.upscale.split(",") if x.strip()]
    except ValueError as exc:
        p.error(str(exc))
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - set(MODES):
        p.error(f"--modes: one or more of {', '.join(MODES)}")
    if args.frames < 1 or not args.configs or not args.detect_every or min(args.detect_every) < 1:
        p.error("--frames, --configs and --detect-every need positive values")
    if args.repeats < 1:
        p.error("--repeats must be 1 or more")
    if not args.threads or min(args.threads) < 0:
        p.error("--threads: whole numbers, 0 or more")
    if not args.upscale or min(args.upscale) < 1.0:
        p.error("--upscale: factors of 1 or more")
    return args


def run(args: argparse.Namespace) -> Dict[str, Any]:
    needed = max([n for _, n in args.configs] + ([16] if args.photo or args.stills else []))
    people = load_people(args.data, needed)
    names = [p.name for p in people]
    min_face = max(MIN_FACE, args.min_face_size or 0)
    rows: List[Row] = []
    photos: List[Dict[str, Any]] = []
    gallery = Gallery()
    with Recognizer(model=args.model, backend=args.backend, gallery=gallery) as enrolling:
        for person in people:  # with the default detector: a larger min_face_size would drop these photos' faces
            enrolling.enroll(person.name, person.enrol, skip_failed=True)
    for threads, upscale in [(t, u) for u in args.upscale for t in args.threads]:
        backend_options = BackendOptions.of(intra_op_threads=threads) if threads else BackendOptions()
        options = RecognizerOptions(detector=DetectorOptions(threads=threads, upscale=upscale),
                                    min_face_size=args.min_face_size, backend_options=backend_options)
        with Recognizer(model=args.model, backend=args.backend, gallery=gallery, options=options) as rec:
            rec.identify(Scene(people, 1, RESOLUTIONS["720p"]).frame(0))  # warm-up
            for res, n in args.configs:
                scene = Scene(people, n, RESOLUTIONS[res], speed=args.speed)
                images = [scene.frame(t) for t in range(args.frames)]
                for every in args.detect_every:
                    rows += compare_modes(rec, scene, names, every, images, args, threads, min_face)
                del images
            if args.stills:
                scene = Scene(people, 16, RESOLUTIONS["1080p"], speed=args.speed)
                images = [scene.frame(STILL_STEP * i) for i in range(args.stills)]
                rows += compare_modes(rec, scene, names, 0, images, args, threads, min_face)
                del images
            if args.photo:
                photos.append(run_photo(rec, Scene(people, 16, RESOLUTIONS["1080p"]), names, args.photo_repeats,
                                        min_face, threads))
            model = f"{rec.sidecar.name} on {rec.backend.name}"
            detector = rec.detector.name
    load = os.getloadavg()
    return {"benchmark": "pipeline", "machine": machine_info(gpu=False), "load_average": [round(x, 2) for x in load],
            "model": model, "detector": detector, "threads": args.threads, "upscale": args.upscale,
            "modes": args.modes,
            "frames": args.frames, "min_face_size": args.min_face_size, "recall_counts_faces_from_px": min_face,
            "rows": [asdict(r) for r in rows], "photos": photos}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"pipeline benchmark: photo folder not found: {args.data} (pass --data)", file=sys.stderr)
        return 1
    try:
        report = run(args)
    except G2DError as exc:
        print(f"pipeline benchmark: error: {exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        header = (f"{report['model']}, {report['detector']}, {machine_line(report['machine'])}, load average "
                  f"{' / '.join(map(str, report['load_average']))} at the end; {report['frames']} frames per video")
        rows = [Row(**r) for r in report["rows"]]
        print(markdown(rows, report["photos"], header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
