"""BlazeFace keypoints for faces found by another detector: the shipped models were trained on crops aligned from
BlazeFace's keypoints, so a face found by YuNet is aligned best from BlazeFace's keypoints on that face.

Each face is cut out as a square of `CROP_FACTOR` times its box (about the framing of the training photos), BlazeFace
short range runs on that crop, and its 6 keypoints replace the detector's when it finds the same face there (its box
centre inside the face's box); otherwise the detector's own keypoints stay. The box and score stay the detector's.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .base import Detection
from .blazeface import BlazeFaceDetector

#: Side of the crop around a face, as a multiple of the longer side of its box.
CROP_FACTOR = 1.6
#: BlazeFace's score threshold on the crop (it is known to hold a face).
REFINE_CONFIDENCE = 0.3


def square_crop(image: np.ndarray, box: np.ndarray, factor: float) -> Tuple[np.ndarray, int, int]:
    """(crop, x0, y0): a square of `factor` times the box's longer side centred on it, zero-padded where it leaves
    the image; (x0, y0) is its top-left corner in image pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(1, int(round(factor * max(x2 - x1, y2 - y1))))
    x0 = int(round((x1 + x2 - side) / 2))
    y0 = int(round((y1 + y2 - side) / 2))
    crop = np.zeros((side, side, 3), np.uint8)
    h, w = image.shape[:2]
    ax, ay, bx, by = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if ax < bx and ay < by:
        crop[ay - y0:by - y0, ax - x0:bx - x0] = image[ay:by, ax:bx]
    return crop, x0, y0


class BlazeFaceKeypoints:
    """Replaces the keypoints of detections by BlazeFace's on a loose crop around each face. Not thread-safe."""

    def __init__(self) -> None:
        self._blazeface = BlazeFaceDetector("short", REFINE_CONFIDENCE)

    def refine(self, image: np.ndarray, detections: Sequence[Detection]) -> List[Detection]:
        """The detections with BlazeFace keypoints where BlazeFace finds the same face."""
        return [self._refine_one(image, det) for det in detections]

    def _refine_one(self, image: np.ndarray, det: Detection) -> Detection:
        crop, x0, y0 = square_crop(image, det.box, CROP_FACTOR)
        if crop.shape[0] < 8:
            return det
        best: Optional[Detection] = None
        x1, y1, x2, y2 = det.box
        for face in self._blazeface.detect(crop):
            cx, cy = (face.box[0] + face.box[2]) / 2 + x0, (face.box[1] + face.box[3]) / 2 + y0
            if x1 <= cx <= x2 and y1 <= cy <= y2 and (best is None or face.score > best.score):
                best = face
        if best is None:
            return det
        keypoints = (best.keypoints + np.array([x0, y0], np.float32)).astype(np.float32)
        return Detection(box=det.box, keypoints=keypoints, score=det.score)

    def close(self) -> None:
        self._blazeface.close()
