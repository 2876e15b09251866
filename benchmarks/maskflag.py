"""The per-face `masked` flag on real photos: real masked faces (held-out part), clean faces of held-out people,
synthetic masks; every classifier given, through the same faces, in one run.

- **real masked**: the HELD-OUT part of `../shared/data/rmfd-real/` (real-world photos of people wearing masks, RMFD,
  Wang et al., IEEE T-BIOM 2023), split by crawl-batch folder once and for all in `benchmarks/data/rmfd-split.json`
  (`train.realmasks`; `g2d-train maskflag` trains on the other part): the largest face the SDK's detector finds in
  each photo should be flagged masked. Reported twice: every such face, and without the faces a by-eye review of all
  of them found not to be a masked face (`benchmarks/data/rmfd-review.json`: unmasked bystanders, faces on posters,
  ears the detector took for faces).
- **real unmasked**: those reviewed unmasked faces of the held-out part: should be flagged clean (a small set).
- **clean**: every photo of the people held out of training (the shipped model's sidecar names them), as they
  are: should be flagged clean.
- **synthetic masked**: the same photos with a mask drawn on the raw photo (the accuracy benchmark's masks, a seed
  never used in training): should be flagged masked.

Each photo goes through the SDK's own front end (detection on that photo, shared aligner). Photos without a
detected face are counted and left out of the flag accuracy (detection is `benchmarks/detection.py`'s subject).
Also: ms per face of each classifier (CPU, batch 1, one thread).

    python benchmarks/maskflag.py [--flag-model A.onnx --flag-model B.onnx] [--json results.json]
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._timing import median_seconds  # noqa: E402
from benchmarks.accuracy import AccuracyConfig, load_photos, resolve_identities  # noqa: E402
from g2d_edge.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.masks import MaskFlag  # noqa: E402
from g2d_edge.backends.loader import SHIPPED_MODEL  # noqa: E402
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for  # noqa: E402
from train.realmasks import DEFAULT_REAL, DEFAULT_REVIEW, DEFAULT_SPLIT, LargestFace  # noqa: E402
from train.realmasks import RealSplit, largest_faces, load_split, read_part, split_reviewed  # noqa: E402

log = logging.getLogger("benchmarks.maskflag")

def flag_rate(flag: MaskFlag, faces: Sequence[LargestFace], want_masked: bool) -> Dict[str, float]:
    """Share of found faces flagged as `want_masked`, with the counts."""
    found = [face[0] for face in faces if face is not None]
    scores = flag.scores(np.stack(found)) if found else np.zeros(0, np.float32)
    right = int((flag.is_masked(scores) == want_masked).sum())
    return {"photos": len(faces), "faces": len(found), "correct": right, "accuracy": right / max(1, len(found)),
            "mean_score": float(scores.mean()) if len(scores) else float("nan")}


def _classifier_rows(flag: MaskFlag, held_faces: Sequence[LargestFace], held_masked: Sequence[LargestFace],
                     held_unmasked: Sequence[LargestFace], clean_faces: Sequence[LargestFace],
                     synthetic_faces: Sequence[LargestFace]) -> Dict[str, Dict[str, float]]:
    return {
        "real masked (rmfd-real held-out part), every largest face": flag_rate(flag, held_faces, True),
        f"real masked (rmfd-real held-out part), reviewed: {len(held_unmasked)} not masked left out":
            flag_rate(flag, held_masked, True),
        "real unmasked (those left out)": flag_rate(flag, held_unmasked, False),
        "clean (held-out CelebA)": flag_rate(flag, clean_faces, False),
        "synthetic masked (held-out CelebA)": flag_rate(flag, synthetic_faces, True),
    }


FaceSets = Dict[str, List[LargestFace]]  # "held_out", "clean", "synthetic" -> faces


def detect_all(real: Path, split: RealSplit) -> Tuple[List[str], FaceSets]:
    """(held-out photo names, faces): the front end on the held-out real photos and the held-out CelebA photos."""
    identities = resolve_identities(AccuracyConfig(), ModelSidecar.load(sidecar_path_for(SHIPPED_MODEL)))
    photos = load_photos(AccuracyConfig(), identities)
    names, images = read_part(real, split.held_out)
    return names, {"held_out": largest_faces(images), "clean": largest_faces(photos.clean),
                   "synthetic": largest_faces(photos.masked)}


def save_faces(path: Path, names: Sequence[str], faces: FaceSets) -> None:
    """The detected faces as .npz (crops, boxes, found per photo), so that classifiers can be compared later on the
    very same crops."""
    arrays: Dict[str, np.ndarray] = {"names": np.asarray(list(names))}
    for key, rows in faces.items():
        arrays[f"{key}_found"] = np.asarray([f is not None for f in rows])
        arrays[f"{key}_crops"] = np.stack([f[0] if f is not None else np.zeros((112, 112, 3), np.uint8)
                                           for f in rows])
        arrays[f"{key}_boxes"] = np.stack([np.asarray(f[1], np.float64) if f is not None else np.zeros(4)
                                           for f in rows])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_faces(path: Path) -> Tuple[List[str], FaceSets]:
    with np.load(path) as data:
        faces = {key: [(c, b) if ok else None for ok, c, b in zip(data[f"{key}_found"], data[f"{key}_crops"],
                                                                  data[f"{key}_boxes"])]
                 for key in ("held_out", "clean", "synthetic")}
        return [str(n) for n in data["names"]], faces


def run(real: Path, flag_models: Sequence[Optional[Path]] = (None,), json_path: Optional[Path] = None,
        review: Path = DEFAULT_REVIEW, split_path: Path = DEFAULT_SPLIT, faces_cache: Optional[Path] = None) -> Dict:
    flags = [MaskFlag(path) for path in flag_models]
    split = load_split(split_path)
    if faces_cache is not None and faces_cache.is_file():
        names, faces = load_faces(faces_cache)
        if sorted({n.split("/")[0] for n in names}) != sorted(split.held_out):
            raise SystemExit(f"{faces_cache} holds other photos than the held-out part; delete it")
    else:
        names, faces = detect_all(real, split)
        if faces_cache is not None:
            save_faces(faces_cache, names, faces)
    held_faces, clean_faces, synthetic_faces = faces["held_out"], faces["clean"], faces["synthetic"]
    held_masked, held_unmasked = split_reviewed(names, held_faces, review)
    crop = next(face[0] for face in clean_faces if face is not None)
    lines = [f"Machine: {machine_line()}",
             f"Real photos: held-out folders {', '.join(split.held_out)} of {real} ({len(names)} photos; "
             f"training folders {', '.join(split.train)})"]
    classifiers: Dict[str, Dict] = {}
    for flag in flags:
        label = _label(flag.path)
        results = _classifier_rows(flag, held_faces, held_masked, held_unmasked, clean_faces, synthetic_faces)
        latency_ms = median_seconds(lambda: flag.scores(crop[None]), 10, 300) * 1000
        classifiers[label] = {"threshold": flag.threshold, "results": results, "ms_per_face": latency_ms}
        lines += ["", f"Mask classifier: {label}, threshold {flag.threshold:.2f}, {latency_ms:.3f} ms per face "
                  "(CPU, batch 1, one thread)", "",
                  "| photos | with a face | flagged right | accuracy | mean mask_score |", "|---|---|---|---|---|"]
        for name, r in results.items():
            lines.append(f"| {name} | {r['faces']}/{r['photos']} | {r['correct']} | {r['accuracy']:.4f} | "
                         f"{r['mean_score']:.3f} |")
    if json_path:
        doc = {"machine": machine_info(), "split": {"file": str(split_path.name), "held_out": list(split.held_out),
                                                    "train": list(split.train), "photos": len(names)},
               "classifiers": classifiers}
        atomic_write_text(json_path, json.dumps(doc, indent=2) + "\n")
    return {"text": "\n".join(lines), "classifiers": classifiers}


def _label(path: Path) -> str:
    """The classifier's path relative to the repository where it lies inside it."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of real photos of masked people")
    p.add_argument("--review", type=Path, default=DEFAULT_REVIEW,
                   help="by-eye review of the real photos' largest faces (which are not masked faces)")
    p.add_argument("--split", type=Path, default=DEFAULT_SPLIT,
                   help="the fixed train / held-out split of the real photos by folder (only held-out is measured)")
    p.add_argument("--flag-model", type=Path, action="append",
                   help="mask classifier .onnx (default: the shipped one); repeat to compare several in one run")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--faces-cache", type=Path,
                   help="keep the detected faces in this .npz and reuse them (compare classifiers on the same crops)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(run(args.real, args.flag_model or [None], args.json, args.review, args.split, args.faces_cache)["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
