"""Generated test frames for the detection benchmark: real photos of the shared people, half of them with a synthetic
mask, pasted at a known face size onto a textured background of a 1080p or 4K frame, with the true face boxes.

A face's size is the width of its Face Mesh box (cheek to cheek) on the source photo, scaled with the photo. Only
photos in which Face Mesh finds the face and no detector finds a second one are used, so every true face is known.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.masks.facemesh import create_face_mesh, mesh_landmarks
from g2d_edge.io import list_people
from g2d_edge.masks import MaskOptions, MaskSynthesizer

#: Frame sizes by name: (height, width).
RESOLUTIONS = {"1080p": (1080, 1920), "4K": (2160, 3840)}


@dataclass
class SourceFace:
    """A photo to paste: BGR image (masked or clean) and its face box (x1, y1, x2, y2) in the photo's pixels."""

    image: np.ndarray
    box: np.ndarray
    masked: bool

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


@dataclass
class GeneratedFrame:
    """A frame, the true boxes (N, 4) of the faces in it, all `face_size` px wide, and which of them are masked."""

    image: np.ndarray
    boxes: np.ndarray
    masked: np.ndarray
    face_size: int


def _single_face(photo: np.ndarray, box: np.ndarray, detectors: Sequence[FaceDetector]) -> bool:
    """No detector finds a face whose centre lies outside the Face Mesh box (no second face in the photo)."""
    for det in detectors:
        for face in det.detect(photo):
            cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
            if not (box[0] <= cx <= box[2] and box[1] <= cy <= box[3]):
                return False
    return True


def load_source_faces(data: Path, count: int, seed: int) -> List[SourceFace]:
    """One photo each of up to `count` people of `data` (<identity>/<photo>.jpg), every other one masked."""
    rng = np.random.default_rng(seed)
    synth = MaskSynthesizer(MaskOptions())
    mesh = create_face_mesh()
    checks = [FaceDetector(DetectorOptions(model=m, min_confidence=0.5, min_face_size=0, pad_retry=0))
              for m in ("yunet", "full")]
    faces: List[SourceFace] = []
    try:
        for _, paths in list_people(data):
            if len(faces) >= count:
                break
            for path in paths[:3]:
                photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
                points = mesh_landmarks(mesh, photo) if photo is not None else None
                if points is None:
                    continue
                box = np.array([*points.min(0), *points.max(0)], np.float32)
                if not _single_face(photo, box, checks):
                    continue
                masked = len(faces) % 2 == 1
                if masked:
                    photo = synth.synth(photo, rng, mesh=points)[0]
                faces.append(SourceFace(photo, box, masked))
                break
    finally:
        for det in checks:
            det.close()
        mesh.close()
    return faces


def background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A textured, face-free background: coloured noise at three scales around a random base colour."""
    out = np.empty((h, w, 3), np.float32)
    out[:] = rng.uniform(50, 200, 3)
    for cells, amplitude in ((6, 60.0), (48, 25.0), (320, 10.0)):
        rows = max(2, round(cells * h / w))
        small = rng.normal(0.0, 1.0, (rows, cells, 3)).astype(np.float32)
        out += amplitude * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, photo: np.ndarray, x: int, y: int) -> None:
    """Paste `photo` with its top-left corner at (x, y), clipped to the frame."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + photo.shape[1], w), min(y + photo.shape[0], h)
    frame[y0:y1, x0:x1] = photo[y0 - y:y1 - y, x0 - x:x1 - x]


def compose_frame(faces: Sequence[SourceFace], resolution: Tuple[int, int], face_size: int, max_faces: int,
                  rng: np.random.Generator) -> GeneratedFrame:
    """As many faces as fit (at most `max_faces`), `face_size` px wide, at random cells of a grid on a background.

    A single photo larger than the frame is cropped around its face, which is centred."""
    h, w = resolution
    scales = [face_size / f.width for f in faces]
    side = max(math.ceil(max(f.image.shape[:2]) * s) for f, s in zip(faces, scales))
    cell = side + max(4, side // 20)
    grid = [(r, c) for r in range(h // cell) for c in range(w // cell)]
    n = max(1, min(max_faces, len(grid)))
    frame = background(h, w, rng)
    cells = rng.choice(len(grid), n, replace=False) if grid else [0]
    chosen = rng.choice(len(faces), n, replace=len(faces) < n)
    boxes, masked = [], []
    for cell_index, face_index in zip(cells, chosen):
        face, scale = faces[face_index], scales[face_index]
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        photo = cv2.resize(face.image, None, fx=scale, fy=scale, interpolation=interp)
        box = face.box * scale
        ph, pw = photo.shape[:2]
        if grid:
            r, c = grid[cell_index]
            x = c * cell + int(rng.integers(0, cell - pw + 1))
            y = r * cell + int(rng.integers(0, cell - ph + 1))
        elif ph <= h and pw <= w:
            x, y = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
        else:
            x = round(w / 2 - (box[0] + box[2]) / 2)
            y = round(h / 2 - (box[1] + box[3]) / 2)
        _paste(frame, photo, x, y)
        boxes.append(box + np.array([x, y, x, y], np.float32))
        masked.append(face.masked)
    return GeneratedFrame(frame, np.array(boxes, np.float32).reshape(-1, 4), np.array(masked, bool), face_size)


def match_faces(found: np.ndarray, truth: np.ndarray) -> Tuple[np.ndarray, int]:
    """(which true faces were found (N,) bool, false positives): a detection finds a true face when its centre lies
    inside the true box and its width is within 0.5x-2x of it; each true face and each detection is used once."""
    if len(found) == 0 or len(truth) == 0:
        return np.zeros(len(truth), bool), len(found)
    centres = (found[:, :2] + found[:, 2:]) / 2
    inside = ((centres[:, None, 0] >= truth[None, :, 0]) & (centres[:, None, 0] <= truth[None, :, 2])
              & (centres[:, None, 1] >= truth[None, :, 1]) & (centres[:, None, 1] <= truth[None, :, 3]))
    ratio = (found[:, None, 2] - found[:, None, 0]) / np.maximum(truth[None, :, 2] - truth[None, :, 0], 1e-6)
    ok = inside & (ratio >= 0.5) & (ratio <= 2.0)
    used_truth = np.zeros(len(truth), bool)
    for i in range(len(found)):
        candidates = np.flatnonzero(ok[i] & ~used_truth)
        if candidates.size:
            used_truth[candidates[0]] = True
    return used_truth, len(found) - int(used_truth.sum())
