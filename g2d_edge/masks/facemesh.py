"""MediaPipe Face Mesh on single photos: the 468 landmarks that mask synthesis (`g2d_edge.masks`) draws masks from,
used by the runtime (masked templates at enrolment), `train.prepare` and the benchmarks alike."""
from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np

#: Landmarks of the Face Mesh model without iris refinement.
MESH_POINTS = 468


def create_face_mesh() -> Any:
    """MediaPipe Face Mesh for single photos (the 468-point model ships in the mediapipe wheel)."""
    import mediapipe as mp  # slow to import: only when a mesh is made

    return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                           min_detection_confidence=0.3)


def mesh_landmarks(face_mesh: Any, image: np.ndarray) -> Optional[np.ndarray]:
    """The 468 Face Mesh landmarks of the first face in a BGR photo, in its pixels ((468, 2) float64), or None."""
    result = face_mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not result.multi_face_landmarks:
        return None
    h, w = image.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in result.multi_face_landmarks[0].landmark[:MESH_POINTS]])
