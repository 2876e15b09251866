"""MediaPipe BlazeFace (short and full range), offline from the mediapipe wheel: 6 keypoints per face."""
from __future__ import annotations

from typing import List

import cv2
import numpy as np

from ..errors import InputError
from .base import Detection

#: BlazeFace models by `DetectorOptions.model` name: (mediapipe model_selection, network input side in pixels).
BLAZEFACE_MODELS = {"short": (0, 128), "full": (1, 192)}


class BlazeFaceDetector:
    """BlazeFace short range (faces within ~2 m of the camera) or full range (up to ~5 m).

    The whole image is resized to the network's square input (128 or 192 px), so a face must be a sizeable part
    of the image to be found; the every-scale mode feeds it tiles instead. Not thread-safe.
    """

    default_confidence = 0.5

    def __init__(self, model: str = "short", min_confidence: float = 0.5) -> None:
        if model not in BLAZEFACE_MODELS:
            raise InputError(f"BlazeFace model must be one of {sorted(BLAZEFACE_MODELS)}, got {model!r}")
        import mediapipe as mp  # imported here: mediapipe is slow to import and only needed once a detector exists

        selection, self.input_side = BLAZEFACE_MODELS[model]
        self.name = f"blazeface-{model}"
        self._mp = mp.solutions.face_detection.FaceDetection(model_selection=selection,
                                                             min_detection_confidence=float(min_confidence))

    def detect(self, image: np.ndarray) -> List[Detection]:
        """Faces in a BGR uint8 image, in its pixels (boxes may reach past its border)."""
        h, w = image.shape[:2]
        result = self._mp.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        out: List[Detection] = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = np.array([rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h],
                           np.float32)
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], np.float32)
            out.append(Detection(box=box, keypoints=kps, score=float(det.score[0])))
        return out

    def close(self) -> None:
        self._mp.close()
