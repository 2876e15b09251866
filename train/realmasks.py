"""Real masked photos (`../shared/data/rmfd-real`, RMFD, Wang et al., IEEE T-BIOM 2023) for the mask flag: a fixed
split by crawl batch into a training part and a held-out part, and the faces of a part as the SDK sees them.

The folders of rmfd-real are crawl batches, not identities; photos of one batch may show the same scene or the same
people, so the split is by folder, never by photo. `choose_split` walks the folders in a seeded order and puts each
into the held-out part while that part stays at or under `held_out_share` of the photos; the rest is the training part.
The result is recorded in `benchmarks/data/rmfd-split.json` and read from there (`load_split`), so the split stays
fixed even if the rule or the folder changes: `g2d-train maskflag` trains on the training part only, and
`benchmarks/maskflag.py` measures on the held-out part only.

A photo's face is the largest face the SDK's default detector (`DetectorOptions()`) finds in it, aligned by the shared
aligner, exactly as the benchmark and the recogniser see it. The by-eye review (`benchmarks/data/rmfd-review.json`)
names the largest faces that are not masked faces (bystanders, ears, a poster): in the training part they are used as
clean examples, never as masked ones. No torch here: the benchmark imports this module.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "rmfd-real"
DEFAULT_SPLIT = REPO / "benchmarks" / "data" / "rmfd-split.json"
DEFAULT_REVIEW = REPO / "benchmarks" / "data" / "rmfd-review.json"
#: a reviewed face is the largest face found now if their boxes overlap this much
SAME_FACE_IOU = 0.5

LargestFace = Optional[Tuple[np.ndarray, np.ndarray]]  # (aligned crop, box x1 y1 x2 y2), None: no face


@dataclass(frozen=True)
class RealSplit:
    """Crawl-batch folders of rmfd-real: `train` (may be used to train) and `held_out` (benchmark only)."""

    train: Tuple[str, ...]
    held_out: Tuple[str, ...]
    seed: int
    held_out_share: float

    def __post_init__(self) -> None:
        if not self.train or not self.held_out:
            raise ValueError("a real-photo split needs folders on both sides")
        both = set(self.train) & set(self.held_out)
        if both:
            raise ValueError(f"folders on both sides of the real-photo split: {sorted(both)}")

    def part(self, name: str) -> Tuple[str, ...]:
        if name not in ("train", "held_out"):
            raise ValueError(f"part must be 'train' or 'held_out', got {name!r}")
        return self.train if name == "train" else self.held_out


def folder_counts(root: Path) -> Dict[str, int]:
    """Photos per crawl-batch folder of `root`."""
    from g2d_edge.io import list_images

    return {d.name: len(list_images(d, recursive=True)) for d in sorted(Path(root).iterdir()) if d.is_dir()}


def choose_split(counts: Mapping[str, int], seed: int = 0, held_out_share: float = 0.5) -> RealSplit:
    """Folders in a seeded order; each goes to the held-out part while that part stays <= `held_out_share` of the
    photos, the others to the training part."""
    names = sorted(counts)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    limit = held_out_share * sum(counts.values())
    held: List[str] = []
    n = 0
    for name in order:
        if n + counts[name] <= limit:
            held.append(name)
            n += counts[name]
    return RealSplit(tuple(sorted(set(names) - set(held))), tuple(sorted(held)), seed, held_out_share)


def write_split(split: RealSplit, counts: Mapping[str, int], path: Path) -> None:
    from g2d_edge.files import atomic_write_text

    doc = {"about": "Fixed split of ../shared/data/rmfd-real (RMFD, Wang et al., IEEE T-BIOM 2023) by crawl-batch "
                    "folder, made once by train.realmasks.choose_split (folders in a seeded order, each held out "
                    "while the held-out part stays <= held_out_share of the photos). `g2d-train maskflag` trains on "
                    "`train` only; benchmarks/maskflag.py measures on `held_out` only. Do not change it.",
           "seed": split.seed, "held_out_share": split.held_out_share,
           "train": list(split.train), "held_out": list(split.held_out),
           "photos": {"train": sum(counts[f] for f in split.train),
                      "held_out": sum(counts[f] for f in split.held_out)}}
    atomic_write_text(Path(path), json.dumps(doc, indent=1) + "\n")


def load_split(path: Path = DEFAULT_SPLIT) -> RealSplit:
    doc = json.loads(Path(path).read_text())
    return RealSplit(tuple(doc["train"]), tuple(doc["held_out"]), int(doc["seed"]), float(doc["held_out_share"]))


def read_part(root: Path, folders: Sequence[str]) -> Tuple[List[str], List[Optional[np.ndarray]]]:
    """(paths relative to `root` in POSIX form, images) of every photo in the given folders of `root`."""
    import cv2

    from g2d_edge.io import list_images

    paths = [p for folder in folders for p in list_images(Path(root) / folder, recursive=True)]
    if not paths:
        raise FileNotFoundError(f"no photos in folders {list(folders)} of {root}")
    return [p.relative_to(root).as_posix() for p in paths], [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


def largest_faces(images: Sequence[Optional[np.ndarray]]) -> List[LargestFace]:
    """The SDK's front end on each image: the largest detected face, aligned, with its box."""
    from tqdm import tqdm

    from g2d_edge.align import align_face
    from g2d_edge.detectors import DetectorOptions, FaceDetector

    out: List[LargestFace] = []
    with FaceDetector(DetectorOptions()) as detector:
        for image in tqdm(images, desc="detect + align", mininterval=10):
            faces = detector.detect(image) if image is not None else []
            out.append((align_face(image, faces[0].keypoints), faces[0].box) if faces else None)
    return out


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2), as the detector's merging measures it."""
    from g2d_edge.detectors.scales import box_overlaps

    return float(box_overlaps(np.asarray(a, np.float64), np.asarray([b], np.float64))[0][0])


def split_reviewed(photos: Sequence[str], faces: Sequence[LargestFace],
                   review: Path = DEFAULT_REVIEW) -> Tuple[List[LargestFace], List[LargestFace]]:
    """(masked, unmasked): the photos' largest faces, the ones the by-eye review found not to be a masked face moved
    to the second list (only where the face found now is the face reviewed)."""
    reviewed = {e["photo"]: e["box"] for e in json.loads(Path(review).read_text())["not_masked"]}
    masked: List[LargestFace] = []
    unmasked: List[LargestFace] = []
    for photo, face in zip(photos, faces):
        box = reviewed.get(photo)
        same = face is not None and box is not None and iou(face[1], box) >= SAME_FACE_IOU
        (unmasked if same else masked).append(face)
    return masked, unmasked


def real_training_faces(root: Path = DEFAULT_REAL, split: Optional[RealSplit] = None,
                        review: Path = DEFAULT_REVIEW) -> Tuple[np.ndarray, np.ndarray]:
    """(aligned crops (N, 112, 112, 3) uint8 BGR, labels (N,) float32: 1 masked, 0 reviewed not masked) of the
    training part's photos; photos without a detected face are left out."""
    split = split or load_split()
    names, images = read_part(root, split.train)
    masked, unmasked = split_reviewed(names, largest_faces(images), review)
    pos = [f[0] for f in masked if f is not None]
    neg = [f[0] for f in unmasked if f is not None]
    log.info("real training faces (rmfd-real folders %s): %d masked, %d reviewed not masked, of %d photos",
             ",".join(split.train), len(pos), len(neg), len(names))
    crops = np.stack(pos + neg).astype(np.uint8)
    return crops, np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.float32)


def main() -> int:
    """Make the split file (once): python -m train.realmasks [ROOT] [OUT]."""
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REAL
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_SPLIT
    counts = folder_counts(root)
    split = choose_split(counts)
    write_split(split, counts, out)
    print(f"{out}: train {split.train}, held out {split.held_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
