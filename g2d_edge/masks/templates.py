"""Synthetic masked templates at enrolment: the enrolment photo's face, wearing masks drawn by `g2d_edge.masks`.

For each clean enrolment photo, `MaskedViews` draws `count` masks on the raw photo (Face Mesh landmarks of the photo,
every mask style; deterministic per person and photo), detects the masked face as a camera would and aligns it (from
the clean face's keypoints when the masked one is not found). `RecognizerOptions(masked_templates=N)` adds their
embeddings as extra templates of the person, tagged masked (a clean face is not compared with them). It is off by
default: with the shipped g2d-edge-m they do not help masked probes (README, "Masked faces").
"""
from __future__ import annotations

import zlib
from typing import Any, List, Optional

import numpy as np

from ..align import align_face
from ..detectors.base import Detection
from ..detectors.detect import FaceDetector
from .facemesh import create_face_mesh, mesh_landmarks
from .options import MaskOptions
from .synth import MaskSynthesizer


class MaskedViews:
    """Aligned crops of an enrolment face wearing `count` synthetic masks. Not thread-safe (one Face Mesh graph)."""

    def __init__(self, detector: FaceDetector, count: int, seed: int = 0) -> None:
        self.detector = detector
        self.count = int(count)
        self.seed = int(seed)
        self._synth = MaskSynthesizer(MaskOptions())
        self._mesh: Optional[Any] = None

    def __call__(self, frame: np.ndarray, face: Detection, key: str) -> List[np.ndarray]:
        """`count` aligned masked crops of `face` (the largest face of `frame`); `key` (e.g. "name/photo index")
        makes the masks deterministic."""
        if self.count <= 0:
            return []
        if self._mesh is None:
            self._mesh = create_face_mesh()
        landmarks = mesh_landmarks(self._mesh, frame)
        crops = []
        for k in range(self.count):
            rng = np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8")), k])
            masked, _ = self._synth.synth(frame, rng, mesh=landmarks, keypoints=face.keypoints)
            found = self.detector.detect(masked)
            crops.append(align_face(masked, (found[0] if found else face).keypoints))
        return crops

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
