"""Soak: run the default recognizer with tracking over a long synthetic video and watch memory, threads and file
descriptors (issue 22: "a soak of at least 10,000 frames shows RSS, threads and file descriptors flat after
warm-up").

    python benchmarks/soak.py                      # 10,000 frames, default model and detector, tracking on
    python benchmarks/soak.py --frames 500 --json  # a short run, JSON on stdout

The scene: real photos of a few people (enrolled first, from other photos of theirs) slide across a textured
640x360 background; one after another leaves the frame and comes back later, so tracks are made, kept and dropped
all run long. Every `--sample-every` frames the process's resident memory (VmRSS), thread count (/proc/self/task)
and open file descriptors (/proc/self/fd) are recorded. After `--warmup` frames, a leak shows as a slope: the
figures report first, last, min, max and a least-squares slope per 1,000 frames. Linux only (/proc).
Results: `benchmarks/results/soak-cpu.json`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from g2d_edge import Recognizer  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.io import list_people, read_image  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.video import FaceTracker  # noqa: E402

log = logging.getLogger("soak")
DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-train"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "soak-cpu.json"
FRAME_SIZE = (360, 640)  # height, width
FACE_PX = 120


def process_figures() -> Dict[str, float]:
    """Resident memory (MB), threads and open file descriptors of this process, from /proc."""
    rss_kb = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
                break
    return {"rss_mb": rss_kb / 1024.0, "threads": len(os.listdir("/proc/self/task")),
            "fds": len(os.listdir("/proc/self/fd"))}


def load_people(data: Path, count: int) -> List[Tuple[str, List[Path]]]:
    """The first `count` people of `data` with at least two photos (one to enrol, one to show)."""
    people = [(name, photos) for name, photos in list_people(data) if len(photos) >= 2][:count]
    if len(people) < count:
        raise SystemExit(f"soak: need {count} people with 2 photos each in {data}, found {len(people)}")
    return people


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(40, 200, (FRAME_SIZE[0] // 8, FRAME_SIZE[1] // 8, 3), dtype=np.uint8)
    return cv2.resize(noise, (FRAME_SIZE[1], FRAME_SIZE[0]), interpolation=cv2.INTER_LINEAR)


def scene_frame(base: np.ndarray, faces: Sequence[np.ndarray], index: int) -> np.ndarray:
    """Frame `index`: face k slides right and left on its own lane; every 300 frames face (index // 300) % n is
    away for 100 frames (a track ends, and a new one starts when it returns)."""
    frame = base.copy()
    n = len(faces)
    away = (index // 300) % n if index % 300 < 100 else -1
    span = FRAME_SIZE[1] - FACE_PX
    for k, face in enumerate(faces):
        if k == away:
            continue
        phase = (index * 3 + k * 97) % (2 * span)
        x = phase if phase < span else 2 * span - phase
        y = 20 + (k % 2) * (FRAME_SIZE[0] - FACE_PX - 40)
        x = int(x) if k < 2 else int(span - x)
        frame[y:y + FACE_PX, x:x + FACE_PX] = face
    return frame


def slope_per_1000(frames: Sequence[int], values: Sequence[float]) -> float:
    if len(frames) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(frames, float), np.asarray(values, float), 1)[0] * 1000.0)


def summarise(samples: List[Dict[str, float]], warmup: int) -> Dict[str, Dict[str, float]]:
    after = [s for s in samples if s["frame"] >= warmup] or samples
    frames = [int(s["frame"]) for s in after]
    out = {}
    for key in ("rss_mb", "threads", "fds"):
        values = [s[key] for s in after]
        out[key] = {"first": values[0], "last": values[-1], "min": min(values), "max": max(values),
                    "slope_per_1000_frames": round(slope_per_1000(frames, values), 3)}
    return out


def run(data: Path, frames: int, people: int, sample_every: int, warmup: int,
        model: Optional[str] = None) -> Dict[str, Any]:
    chosen = load_people(data, people)
    faces = [cv2.resize(read_image(photos[1]), (FACE_PX, FACE_PX)) for _, photos in chosen]
    base = background()
    samples: List[Dict[str, float]] = []
    found = named = 0
    tracker = FaceTracker()  # one video: its faces are tracked
    with Recognizer(model=model) as rec:
        for name, photos in chosen:
            rec.enroll(name, photos[:1], skip_failed=True)
        start = time.perf_counter()
        for i in range(frames):
            result = rec.identify(scene_frame(base, faces, i), tracker)
            found += len(result)
            named += sum(r.name is not None for r in result)
            if i % sample_every == 0 or i == frames - 1:
                samples.append({"frame": i, "elapsed_s": round(time.perf_counter() - start, 2), **process_figures()})
                log.info("frame %d: %s", i, samples[-1])
        elapsed = time.perf_counter() - start
        model_name = rec.sidecar.name if hasattr(rec, "sidecar") else str(model)
    return {"benchmark": "soak", "machine": machine_info(gpu=False), "model": model_name, "tracking": True,
            "frames": frames, "frame_size": list(FRAME_SIZE), "people": people, "warmup_frames": warmup,
            "seconds": round(elapsed, 1), "ms_per_frame": round(1000 * elapsed / frames, 2),
            "faces_per_frame": round(found / frames, 3), "named_share": round(named / max(found, 1), 3),
            "after_warmup": summarise(samples, warmup), "samples": samples}


def format_text(result: Dict[str, Any]) -> str:
    lines = [f"soak: {result['frames']} frames of {result['frame_size'][1]}x{result['frame_size'][0]}, model "
             f"{result['model']}, tracking on, {result['ms_per_frame']} ms per frame, "
             f"{result['faces_per_frame']} faces per frame ({100 * result['named_share']:.1f} % named)",
             f"after {result['warmup_frames']} warm-up frames: first / last / min / max, slope per 1,000 frames"]
    for key, label in (("rss_mb", "RSS MB"), ("threads", "threads"), ("fds", "file descriptors")):
        s = result["after_warmup"][key]
        lines.append(f"  {label}: {s['first']:.1f} / {s['last']:.1f} / {s['min']:.1f} / {s['max']:.1f}, "
                     f"{s['slope_per_1000_frames']:+.3f}")
    lines.append(f"machine: {machine_line(result['machine'])}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="<person>/<photo>.jpg folders (real photos)")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--people", type=int, default=4)
    p.add_argument("--sample-every", type=int, default=250)
    p.add_argument("--warmup", type=int, default=1000, help="frames left out of the flatness figures")
    p.add_argument("--model", help="model file (default: the shipped default model)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", type=Path, help=f"write the JSON here (e.g. {DEFAULT_JSON.relative_to(REPO)})")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args.data, args.frames, args.people, args.sample_every, args.warmup, args.model)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
