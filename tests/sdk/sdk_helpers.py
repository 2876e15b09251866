"""Helpers shared by the SDK tests (real-photo frames, masks, videos)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def draw_mask(image: np.ndarray, keypoints: np.ndarray, color=(235, 200, 150)) -> np.ndarray:
    """A surgical-mask-like filled polygon over nose, mouth and chin, placed from the 6 detector keypoints."""
    eyes, nose, mouth = keypoints[:2], keypoints[2], keypoints[3]
    ear_l, ear_r = keypoints[4], keypoints[5]
    top_y = (eyes[:, 1].mean() + nose[1]) / 2
    chin_y = mouth[1] + (mouth[1] - nose[1]) * 2.0
    half = abs(ear_r[0] - ear_l[0]) * 0.2
    poly = np.array([[ear_l[0], top_y], [ear_r[0], top_y], [ear_r[0], mouth[1]], [mouth[0] + half, chin_y],
                     [mouth[0] - half, chin_y], [ear_l[0], mouth[1]]], np.int32)
    masked = image.copy()
    cv2.fillPoly(masked, [poly], color)
    return masked


def tile(images: List[np.ndarray], cell: int = 144) -> np.ndarray:
    """Images side by side in a square grid (the multi-face test frames)."""
    side = int(np.ceil(np.sqrt(len(images))))
    frame = np.zeros((side * cell, side * cell, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, side)
        frame[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = cv2.resize(im, (cell, cell))
    return frame


def write_video(path: Path, frames: List[np.ndarray], fps: float = 10.0) -> Path:
    """Write frames as an MJPG .avi (always available in OpenCV builds)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def numbered_frames(n: int, size=(96, 128)) -> List[np.ndarray]:
    """Frames whose mean brightness encodes their number (5 * i + 10, so at most 49 frames), robust to JPEG."""
    assert n <= 49
    return [np.full((size[0], size[1], 3), 10 + 5 * i, np.uint8) for i in range(n)]


def frame_number(image: np.ndarray) -> int:
    return int(round((float(image.mean()) - 10) / 5))
