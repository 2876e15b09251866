"""The per-face `masked` flag on real photos: real masked faces, clean faces of held-out people, synthetic masks.

- **real masked**: `../shared/data/rmfd-real/` (real-world photos of people wearing masks, RMFD, Wang et al. 2023):
  the largest face the SDK's detector finds in each photo should be flagged masked. Reported twice: every such
  face, and without the faces a by-eye review of all of them found not to be a masked face
  (`benchmarks/data/rmfd-review.json`: unmasked bystanders, faces on posters, ears the detector took for faces).
- **real unmasked**: those reviewed unmasked faces: should be flagged clean (a small set).
- **clean**: every photo of the people held out of training (the shipped model's sidecar names them), as they
  are: should be flagged clean.
- **synthetic masked**: the same photos with a mask drawn on the raw photo (the accuracy benchmark's masks, a seed
  never used in training): should be flagged masked.

Each photo goes through the SDK's own front end (detection on that photo, shared aligner). Photos without a
detected face are counted and left out of the flag accuracy (detection is `benchmarks/detection.py`'s subject).
Also: ms per face of the classifier (CPU, batch 1, one thread).

    python benchmarks/maskflag.py [--json benchmarks/results/maskflag-cpu.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._timing import median_seconds  # noqa: E402
from benchmarks.accuracy import AccuracyConfig, load_photos, resolve_identities  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.align import align_face  # noqa: E402
from g2d_edge.detectors import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.detectors.scales import box_overlaps  # noqa: E402
from g2d_edge.io import list_images  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.masks import MaskFlag  # noqa: E402
from g2d_edge.backends.loader import SHIPPED_MODEL  # noqa: E402
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for  # noqa: E402

log = logging.getLogger("benchmarks.maskflag")

DEFAULT_REAL = REPO.parent / "shared" / "data" / "rmfd-real"
DEFAULT_REVIEW = REPO / "benchmarks" / "data" / "rmfd-review.json"
#: a reviewed face is the largest face found now if their boxes overlap this much
SAME_FACE_IOU = 0.5

LargestFace = Optional[Tuple[np.ndarray, np.ndarray]]  # (aligned crop, box x1 y1 x2 y2), None: no face


def largest_faces(images: Sequence[Optional[np.ndarray]]) -> List[LargestFace]:
    """The SDK's front end on each image: the largest detected face, aligned, with its box."""
    out: List[LargestFace] = []
    with FaceDetector(DetectorOptions()) as detector:
        for image in tqdm(images, desc="detect + align", mininterval=10):
            faces = detector.detect(image) if image is not None else []
            out.append((align_face(image, faces[0].keypoints), faces[0].box) if faces else None)
    return out


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2), as the detector's merging measures it."""
    return float(box_overlaps(np.asarray(a, np.float64), np.asarray([b], np.float64))[0][0])


def split_reviewed(photos: Sequence[str], faces: Sequence[LargestFace],
                   review: Path) -> Tuple[List[LargestFace], List[LargestFace]]:
    """(masked, unmasked): the photos' largest faces, the ones the by-eye review found not to be a masked face moved
    to the second list (only where the face found now is the face reviewed)."""
    reviewed = {e["photo"]: e["box"] for e in json.loads(review.read_text())["not_masked"]}
    masked: List[LargestFace] = []
    unmasked: List[LargestFace] = []
    for photo, face in zip(photos, faces):
        box = reviewed.get(photo)
        same = face is not None and box is not None and iou(face[1], box) >= SAME_FACE_IOU
        (unmasked if same else masked).append(face)
    return masked, unmasked


def flag_rate(flag: MaskFlag, faces: Sequence[LargestFace], want_masked: bool) -> Dict[str, float]:
    """Share of found faces flagged as `want_masked`, with the counts."""
    found = [face[0] for face in faces if face is not None]
    scores = flag.scores(np.stack(found)) if found else np.zeros(0, np.float32)
    right = int((flag.is_masked(scores) == want_masked).sum())
    return {"photos": len(faces), "faces": len(found), "correct": right, "accuracy": right / max(1, len(found)),
            "mean_score": float(scores.mean()) if len(scores) else float("nan")}


def read_folder(root: Path) -> Tuple[List[str], List[Optional[np.ndarray]]]:
    """(paths relative to `root` in POSIX form, images) of every photo under `root`."""
    paths = list_images(root, recursive=True)
    if not paths:
        raise SystemExit(f"no photos under {root}")
    return [p.relative_to(root).as_posix() for p in paths], [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


def run(real: Path, model_flag: Optional[Path] = None, json_path: Optional[Path] = None,
        review: Path = DEFAULT_REVIEW) -> Dict:
    flag = MaskFlag(model_flag)
    identities = resolve_identities(AccuracyConfig(), ModelSidecar.load(sidecar_path_for(SHIPPED_MODEL)))
    photos = load_photos(AccuracyConfig(), identities)
    names, images = read_folder(real)
    real_faces = largest_faces(images)
    real_masked, real_unmasked = split_reviewed(names, real_faces, review)
    clean_faces = largest_faces(photos.clean)
    results = {
        "real masked (rmfd-real), every largest face": flag_rate(flag, real_faces, True),
        f"real masked (rmfd-real), reviewed: {len(real_unmasked)} not masked left out": flag_rate(flag, real_masked,
                                                                                              True),
        "real unmasked (those left out)": flag_rate(flag, real_unmasked, False),
        "clean (held-out CelebA)": flag_rate(flag, clean_faces, False),
        "synthetic masked (held-out CelebA)": flag_rate(flag, largest_faces(photos.masked), True),
    }
    crop = next(face[0] for face in clean_faces if face is not None)
    latency_ms = median_seconds(lambda: flag.scores(crop[None]), 10, 300) * 1000
    lines = [f"Machine: {machine_line()}", f"Mask classifier: {flag.path.name}, threshold {flag.threshold:.2f}", "",
             "| photos | with a face | flagged right | accuracy | mean mask_score |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['faces']}/{r['photos']} | {r['correct']} | {r['accuracy']:.4f} | "
                     f"{r['mean_score']:.3f} |")
    lines.append(f"\nClassifier: {latency_ms:.3f} ms per face (CPU, batch 1, one thread)")
    text = "\n".join(lines)
    if json_path:
        atomic_write_text(json_path, json.dumps({"machine": machine_info(), "threshold": flag.threshold,
                                               "results": results, "ms_per_face": latency_ms}, indent=2) + "\n")
    return {"text": text, "results": results, "ms_per_face": latency_ms}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of real photos of masked people")
    p.add_argument("--review", type=Path, default=DEFAULT_REVIEW,
                   help="by-eye review of the real photos' largest faces (which are not masked faces)")
    p.add_argument("--flag-model", type=Path, help="mask classifier .onnx (default: the shipped one)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(run(args.real, args.flag_model, args.json, args.review)["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
