"""The per-face `masked` flag on real photos: real masked faces, clean faces of held-out people, synthetic masks.

- **real masked**: `../shared/data/rmfd-real/` (real-world photos of people wearing masks, RMFD, Wang et al. 2023):
  the largest face the SDK's detector finds in each photo should be flagged masked. (Crowd photos may hold an
  unmasked bystander; the largest face is almost always the masked subject.)
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
from typing import Dict, List, Optional, Sequence

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
from g2d_edge.detect import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.io import list_images  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.maskflag import MaskFlag  # noqa: E402
from g2d_edge.recognizer import SHIPPED_MODEL  # noqa: E402
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for  # noqa: E402

log = logging.getLogger("benchmarks.maskflag")

DEFAULT_REAL = REPO.parent / "shared" / "data" / "rmfd-real"


def aligned_largest_faces(images: Sequence[Optional[np.ndarray]]) -> List[Optional[np.ndarray]]:
    """The SDK's front end on each image: the largest detected face, aligned (None: no face or no image)."""
    out: List[Optional[np.ndarray]] = []
    with FaceDetector(DetectorOptions()) as detector:
        for image in tqdm(images, desc="detect + align", mininterval=10):
            faces = detector.detect(image) if image is not None else []
            out.append(align_face(image, faces[0].keypoints) if faces else None)
    return out


def flag_rate(flag: MaskFlag, crops: Sequence[Optional[np.ndarray]], want_masked: bool) -> Dict[str, float]:
    """Share of found faces flagged as `want_masked`, with the counts."""
    found = [c for c in crops if c is not None]
    scores = flag.scores(np.stack(found)) if found else np.zeros(0, np.float32)
    right = int((flag.is_masked(scores) == want_masked).sum())
    return {"photos": len(crops), "faces": len(found), "correct": right, "accuracy": right / max(1, len(found)),
            "mean_score": float(scores.mean()) if len(scores) else float("nan")}


def read_folder(root: Path) -> List[np.ndarray]:
    paths = list_images(root, recursive=True)
    if not paths:
        raise SystemExit(f"no photos under {root}")
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


def run(real: Path, model_flag: Optional[Path] = None, json_path: Optional[Path] = None) -> Dict:
    flag = MaskFlag(model_flag)
    identities = resolve_identities(AccuracyConfig(), ModelSidecar.load(sidecar_path_for(SHIPPED_MODEL)))
    photos = load_photos(AccuracyConfig(), identities)
    results = {
        "real masked (rmfd-real)": flag_rate(flag, aligned_largest_faces(read_folder(real)), True),
        "clean (held-out CelebA)": flag_rate(flag, aligned_largest_faces(photos.clean), False),
        "synthetic masked (held-out CelebA)": flag_rate(flag, aligned_largest_faces(photos.masked), True),
    }
    crop = next(c for c in aligned_largest_faces(photos.clean[:5]) if c is not None)
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
    p.add_argument("--flag-model", type=Path, help="mask classifier .onnx (default: the shipped one)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(run(args.real, args.flag_model, args.json)["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
