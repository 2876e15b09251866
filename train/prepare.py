"""`g2d-train prepare`: detect + align a raw image folder once and cache the 112x112 crops.

The cache is one `.npz` file (see `AlignedCache`) holding, per usable photo: the aligned clean crop (BGR uint8),
its identity label (-1 when the folder is unlabelled), MediaPipe's 6 detector keypoints and the 468 Face Mesh
landmarks mapped into the aligned frame (mask synthesis draws masks from them), the detector box in the raw
photo (the dlib teacher crops its own chip from it) and the alignment matrix. Unreadable photos and photos
without a face are skipped with a warning and counted in the cache's summary, never crash the run.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp_proc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from g2d_edge.align import align_face, estimate_alignment, transform_points
from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.masks.facemesh import MESH_POINTS, create_face_mesh, mesh_landmarks
from g2d_edge.files import atomic_write
from g2d_edge.io import IMAGE_SUFFIXES, list_people
from g2d_edge.io import list_images as list_image_files

log = logging.getLogger(__name__)



@dataclass
class PrepareSummary:
    root: str
    labelled: bool
    images_found: int = 0
    images_kept: int = 0
    unreadable: int = 0
    no_face: int = 0
    no_mesh: int = 0
    identities: int = 0
    skipped_files: List[str] = field(default_factory=list)


@dataclass
class AlignedCache:
    """Arrays of a prepared folder (all row-aligned, N photos)."""

    images: np.ndarray  # (N, 112, 112, 3) uint8 BGR, clean aligned faces
    labels: np.ndarray  # (N,) int64 index into `identities`, -1 when unlabelled
    identities: np.ndarray  # (M,) str, folder names
    paths: np.ndarray  # (N,) str, relative to the root
    keypoints: np.ndarray  # (N, 6, 2) float32, detector keypoints in the aligned frame
    mesh: np.ndarray  # (N, 468, 2) float32, Face Mesh landmarks in the aligned frame (NaN when none found)
    boxes: np.ndarray  # (N, 4) float32, detector box (x1, y1, x2, y2) in the raw photo
    matrices: np.ndarray  # (N, 2, 3) float32, raw photo -> aligned crop
    summary: Dict

    def save(self, path: Path) -> Path:
        arrays = {k: v for k, v in asdict(self).items() if k != "summary"}
        return atomic_write(path, lambda fh: np.savez(fh, summary=np.array(json.dumps(self.summary)), **arrays))

    @classmethod
    def load(cls, path: Path) -> "AlignedCache":
        with np.load(Path(path), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        summary = json.loads(str(data.pop("summary")))
        return cls(summary=summary, **data)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def has_mesh(self) -> np.ndarray:
        return np.isfinite(self.mesh[:, 0, 0])


def list_images(root: Path, labelled: bool) -> List[Tuple[Path, str]]:
    """(path, identity) pairs; identity is the sub-folder name when labelled, "" otherwise (then every image under
    `root`, recursively). Sorted, deterministic; read by `g2d_edge.io`'s one image-folder reader."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if labelled:
        return [(f, name) for name, photos in list_people(root) for f in photos]
    return [(f, "") for f in list_image_files(root, recursive=True)]


class _Worker:
    """Per-process detector + mesh (MediaPipe graphs are not picklable, so each worker builds its own)."""

    detector: Optional[FaceDetector] = None
    mesh = None

    @classmethod
    def init(cls, options: DetectorOptions) -> None:
        cls.detector = FaceDetector(options)
        cls.mesh = create_face_mesh()

    @classmethod
    def process(cls, path: Path):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            return "unreadable", None
        faces = cls.detector.detect(image)
        if not faces:
            return "no_face", None
        face = faces[0]
        matrix = estimate_alignment(face.keypoints)
        crop = align_face(image, face.keypoints)
        mesh_aligned = np.full((MESH_POINTS, 2), np.nan, np.float32)
        landmarks = mesh_landmarks(cls.mesh, image)
        if landmarks is not None:
            mesh_aligned = transform_points(landmarks, matrix).astype(np.float32)
        return "ok", (crop, transform_points(face.keypoints, matrix).astype(np.float32), mesh_aligned,
                      face.box.astype(np.float32), matrix.astype(np.float32))


def prepare_folder(root: Path, out: Path, labelled: bool = True, workers: int = 2,
                   options: Optional[DetectorOptions] = None, limit: int = 0) -> AlignedCache:
    """Detect, align and cache every photo under `root`; returns the cache (also written to `out`)."""
    options = options or DetectorOptions(min_face_size=10)
    items = list_images(root, labelled)
    if limit:
        items = items[:limit]
    summary = PrepareSummary(root=str(root), labelled=labelled, images_found=len(items))
    if not items:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    paths = [p for p, _ in items]
    if workers > 1:
        ctx = mp_proc.get_context("spawn")
        with ctx.Pool(workers, initializer=_Worker.init, initargs=(options,)) as pool:
            results = list(tqdm(pool.imap(_Worker.process, paths, chunksize=16), total=len(paths),
                                desc=f"prepare {Path(root).name}"))
    else:
        _Worker.init(options)
        results = [_Worker.process(p) for p in tqdm(paths, desc=f"prepare {Path(root).name}")]
    identities = sorted({ident for _, ident in items}) if labelled else []
    index = {name: i for i, name in enumerate(identities)}
    rows = []
    for (path, ident), (status, payload) in zip(items, results):
        if status != "ok":
            setattr(summary, status, getattr(summary, status) + 1)
            summary.skipped_files.append(f"{path.relative_to(root)} ({status})")
            log.warning("skipping %s: %s", path, "unreadable image" if status == "unreadable" else "no face found")
            continue
        rows.append((str(path.relative_to(root)), index.get(ident, -1), payload))
    if not rows:
        raise RuntimeError(f"no usable face in {root}: {summary.unreadable} unreadable, {summary.no_face} without face")
    summary.images_kept = len(rows)
    kept_ids = sorted({label for _, label, _ in rows if label >= 0})
    summary.identities = len(kept_ids)
    cache = AlignedCache(
        images=np.stack([r[2][0] for r in rows]),
        labels=np.array([r[1] for r in rows], np.int64),
        identities=np.array(identities, dtype=str),
        paths=np.array([r[0] for r in rows], dtype=str),
        keypoints=np.stack([r[2][1] for r in rows]),
        mesh=np.stack([r[2][2] for r in rows]),
        boxes=np.stack([r[2][3] for r in rows]),
        matrices=np.stack([r[2][4] for r in rows]),
        summary={},
    )
    summary.no_mesh = int((~cache.has_mesh).sum())
    cache.summary = asdict(summary)
    cache.save(out)
    log.info("prepared %s: kept %d of %d (%d unreadable, %d without face, %d without mesh) -> %s", root,
             summary.images_kept, summary.images_found, summary.unreadable, summary.no_face, summary.no_mesh, out)
    return cache
