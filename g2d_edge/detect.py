"""Face detection with MediaPipe BlazeFace (short and full range), offline from the mediapipe wheel."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional

import cv2
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

#: Names of MediaPipe's 6 face-detector keypoints, in the order `Detection.keypoints` holds them.
KEYPOINT_NAMES = ("eye_left_in_image", "eye_right_in_image", "nose_tip", "mouth_center", "ear_left_in_image",
                  "ear_right_in_image")


@dataclass(frozen=True)
class DetectorOptions:
    """How faces are found.

    model: "short" (BlazeFace short range, faces within ~2 m, the default) or "full" (full range, up to ~5 m).
    min_confidence: detections below this score are dropped.
    min_face_size: faces whose box is narrower than this many pixels are dropped.
    max_faces: keep at most this many faces (largest first); 0 keeps all.
    pad_retry: when nothing is found, retry once on the frame padded by this fraction of its size on each side
        (helps tight crops where the face fills the whole frame); 0 disables the retry.
    """

    model: str = "short"
    min_confidence: float = 0.5
    min_face_size: int = 20
    max_faces: int = 0
    pad_retry: float = 0.25


@dataclass(frozen=True)
class Detection:
    """One face: box (x1, y1, x2, y2) and 6 keypoints (see KEYPOINT_NAMES) in frame pixels, and the detector score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def check_bgr_frame(frame: np.ndarray) -> np.ndarray:
    """Return `frame` if it is a valid HxWx3 uint8 BGR image, else raise InputError saying what is wrong."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"expected a BGR image as a numpy array (as cv2.imread gives), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"expected a uint8 BGR image, got dtype {frame.dtype}; convert with frame.astype(np.uint8)")
    if frame.ndim == 2:
        raise InputError("expected a colour BGR image (H, W, 3), got a grayscale (H, W) array; "
                         "use cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"expected a BGR image of shape (H, W, 3), got {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise InputError(f"image is too small to hold a face: {frame.shape[1]}x{frame.shape[0]} px")
    return frame


class FaceDetector:
    """MediaPipe BlazeFace wrapper returning `Detection`s in frame pixels, largest face first.

    Not thread-safe: use one detector per thread.
    """

    def __init__(self, options: Optional[DetectorOptions] = None) -> None:
        self.options = options or DetectorOptions()
        if self.options.model not in ("short", "full"):
            raise InputError(f"DetectorOptions.model must be 'short' or 'full', got {self.options.model!r}")
        import mediapipe as mp  # imported here: mediapipe is slow to import and only needed once a detector exists

        self._mp = mp.solutions.face_detection.FaceDetection(
            model_selection=0 if self.options.model == "short" else 1,
            min_detection_confidence=float(self.options.min_confidence),
        )

    def close(self) -> None:
        self._mp.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, frame: np.ndarray) -> List[Detection]:
        """Find faces in a BGR uint8 frame."""
        frame = check_bgr_frame(frame)
        faces = self._detect_once(frame, 0)
        if not faces and self.options.pad_retry > 0:
            pad = int(round(max(frame.shape[:2]) * self.options.pad_retry))
            padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            faces = self._detect_once(padded, pad)
        opts = self.options
        faces = [f for f in faces if f.box[2] - f.box[0] >= opts.min_face_size]
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return faces[: opts.max_faces] if opts.max_faces > 0 else faces

    def _detect_once(self, frame: np.ndarray, offset: int) -> List[Detection]:
        h, w = frame.shape[:2]
        result = self._mp.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        out: List[Detection] = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = np.array([rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h])
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints])
            out.append(Detection(box=(box - offset).astype(np.float32), keypoints=(kps - offset).astype(np.float32),
                                 score=float(det.score[0])))
        return out
