"""Camera-like generated video for the pipeline benchmark: real CelebA faces, masked and clean, of realistic sizes
(24-300 px wide), moving across a textured background, leaving at one side and entering again at the other.

Faces move in horizontal lanes (one lane per row of the grid the faces are spread over), all faces of a lane at the
lane's speed, so they never cover one another; a face crop is the photo around the face (the face box widened by
`CROP_MARGIN` on every side). Frames are made on demand from the frame index (`Scene.frame(t)`), with the true face
boxes (`Scene.truth(t)`), so a 4K video costs no memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from benchmarks._frames import background
from g2d_edge.io import list_people
from g2d_edge.masks import MaskOptions, MaskSynthesizer
from g2d_edge.masks.facemesh import create_face_mesh, mesh_landmarks

#: Frame sizes by name: (height, width).
RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920), "4K": (2160, 3840)}
#: Face widths (px) in the scene, and the smallest that counts as a face to be found.
MIN_FACE, MAX_FACE = 24, 300
#: Share of the face width the pasted crop reaches beyond the face box on every side.
CROP_MARGIN = 0.35


def paste(frame: np.ndarray, photo: np.ndarray, x: int, y: int) -> None:
    """Paste `photo` with its top-left corner at (x, y), clipped to the frame (nothing when wholly outside)."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + photo.shape[1], w), min(y + photo.shape[0], h)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = photo[y0 - y:y1 - y, x0 - x:x1 - x]


@dataclass
class Person:
    """One person: the scene photo's face crop (BGR, masked or clean), its face box in the crop, and the photos left
    for enrolment."""

    name: str
    crop: np.ndarray
    box: np.ndarray
    masked: bool
    enrol: List[Path]


def load_people(data: Path, count: int, seed: int = 0) -> List[Person]:
    """`count` people with a face Face Mesh finds on their first usable photo and two more photos to enrol; every
    other one wears a synthetic mask in the scene."""
    rng = np.random.default_rng(seed)
    synth = MaskSynthesizer(MaskOptions())
    mesh = create_face_mesh()
    people: List[Person] = []
    try:
        for name, paths in list_people(data):
            if len(people) >= count:
                break
            if len(paths) < 3:
                continue
            photo = cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)
            points = mesh_landmarks(mesh, photo) if photo is not None else None
            if points is None:
                continue
            masked = len(people) % 2 == 1
            if masked:
                photo = synth.synth(photo, rng, mesh=points)[0]
            x1, y1 = points.min(0)
            x2, y2 = points.max(0)
            pad = CROP_MARGIN * (x2 - x1)
            cx0, cy0 = max(0, int(x1 - pad)), max(0, int(y1 - pad))
            cx1, cy1 = min(photo.shape[1], int(x2 + pad)), min(photo.shape[0], int(y2 + pad))
            crop = photo[cy0:cy1, cx0:cx1].copy()
            people.append(Person(name, crop, np.array([x1 - cx0, y1 - cy0, x2 - cx0, y2 - cy0], np.float32), masked,
                                 list(paths[1:3])))
    finally:
        mesh.close()
    if len(people) < count:
        raise SystemExit(f"pipeline benchmark: only {len(people)} usable people in {data}, {count} needed")
    return people


@dataclass
class Walker:
    """A face crossing its lane: scaled crop, face box in it, lane top (y), start offset, speed (px per frame)."""

    person: int
    crop: np.ndarray
    box: np.ndarray
    y: int
    offset: float
    speed: float


class Scene:
    """`n` of `people` (person i at index i) walking across a `resolution` frame."""

    def __init__(self, people: List[Person], n: int, resolution: Tuple[int, int], seed: int = 0,
                 speed: float = 1.0) -> None:
        self.h, self.w = resolution
        rng = np.random.default_rng(seed + 1000 * n + self.w)
        self.base = background(self.h, self.w, rng)
        rows = max(1, round(math.sqrt(n)))
        per_row = math.ceil(n / rows)
        lane = self.h // rows
        largest = min(MAX_FACE, int(lane / (1 + 2 * CROP_MARGIN) * 0.95))
        self.walkers: List[Walker] = []
        for i in range(n):
            row, slot = divmod(i, per_row)
            width = float(np.exp(rng.uniform(np.log(MIN_FACE * 1.25), np.log(max(largest, MIN_FACE * 2)))))
            person = people[i]
            scale = width / float(person.box[2] - person.box[0])
            crop = cv2.resize(person.crop, None, fx=scale, fy=scale,
                              interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            y = row * lane + int(rng.integers(0, max(1, lane - crop.shape[0])))
            lane_speed = speed * (self.w / 1920) * rng.uniform(3.0, 12.0)
            biggest = int(largest * (1 + 2 * CROP_MARGIN))  # every face is in view at first, spread along its lane
            start = crop.shape[1] + (slot + rng.uniform(0.0, 0.3)) * (self.w - biggest) / per_row
            self.walkers.append(Walker(i, crop, person.box * scale, y, start,
                                       lane_speed if row % 2 == 0 else -lane_speed))
        self.period = self.w + 2 * largest * (1 + 2 * CROP_MARGIN)

    def _x(self, walker: Walker, t: int) -> int:
        """Left edge of the walker's crop in frame t (it wraps round: leaves at one side, enters at the other)."""
        return int((walker.offset + walker.speed * t) % self.period - walker.crop.shape[1])

    def frame(self, t: int) -> np.ndarray:
        image = self.base.copy()
        for walker in self.walkers:
            paste(image, walker.crop, self._x(walker, t), walker.y)
        return image

    def truth(self, t: int, min_face: float = MIN_FACE) -> Tuple[np.ndarray, np.ndarray]:
        """(boxes (N, 4) of every face fully inside frame t and at least `min_face` wide, the person index of each)."""
        boxes, who = [], []
        for walker in self.walkers:
            box = walker.box + np.array([self._x(walker, t), walker.y] * 2, np.float32)
            if box[0] >= 0 and box[1] >= 0 and box[2] <= self.w and box[3] <= self.h and box[2] - box[0] >= min_face:
                boxes.append(box)
                who.append(walker.person)
        return np.array(boxes, np.float32).reshape(-1, 4), np.array(who, int)
