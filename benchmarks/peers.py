"""The recognisers a user would pick instead of g2d-edge, as `benchmarks/accuracy.py` runs them.

- **OpenCV SFace** (`../shared/models/opencv-zoo/`, Apache-2.0): what `cv2.FaceRecognizerSF` runs. It is given the
  SDK's own front end (MediaPipe detection + the shared aligner on each photo), so it sees exactly the crops the
  g2d models see; its match threshold is OpenCV's documented cosine 0.363.
- **dlib's ResNet** (the `[teacher]` extra, what `face_recognition` runs): for pairs its best case (5-point
  landmarks of the *clean* photo cut its 150x150 chip from the clean and the masked photo); for the round trip its
  own front end on each photo itself, as `face_recognition` does (HOG detector, upsampled once, largest face), with
  `face_recognition`'s default tolerance, an L2 distance of 0.6.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

log = logging.getLogger("benchmarks.peers")

#: OpenCV's documented threshold for SFace: cosine similarity >= 0.363 is the same person.
SFACE_COSINE_THRESHOLD = 0.363
#: face_recognition's default tolerance: an L2 distance below 0.6 is the same person.
DLIB_DISTANCE_THRESHOLD = 0.6


@dataclass
class PhotoEmbeddings:
    """Embeddings of every evaluation photo, clean and masked, for one recogniser (NaN rows: no face found)."""

    clean: np.ndarray
    masked: np.ndarray


def embed_rows(embed: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, ok: np.ndarray, dim: int) -> np.ndarray:
    """``embed`` on the crops whose face was found; NaN rows for the others."""
    out = np.full((len(crops), dim), np.nan, np.float32)
    if ok.any():
        out[ok] = embed(crops[ok])
    return out


class DlibPeer:
    """dlib's face recogniser with its 5-point landmarks and, for its own front end, its HOG detector."""

    dim = 128

    def __init__(self) -> None:
        import dlib

        from train.teacher import DlibTeacher

        self.teacher = DlibTeacher()
        self.detector = dlib.get_frontal_face_detector()

    def best_case(self, clean: Sequence[np.ndarray], masked: Sequence[Optional[np.ndarray]],
                  boxes: Sequence[Optional[np.ndarray]]) -> PhotoEmbeddings:
        """Landmarks from the clean photo (inside MediaPipe's box) cut the chip from the clean and the masked photo."""
        out = PhotoEmbeddings(np.full((len(clean), self.dim), np.nan, np.float32),
                              np.full((len(clean), self.dim), np.nan, np.float32))
        for i, (image, masked_image, box) in enumerate(zip(clean, masked, boxes)):
            if box is None or masked_image is None:
                continue
            rgb, rgb_masked = image[:, :, ::-1].copy(), masked_image[:, :, ::-1].copy()
            shape = self.teacher.shape(rgb, box)
            out.clean[i] = self.teacher.embed_chip(self.teacher.chip(rgb, shape))
            out.masked[i] = self.teacher.embed_chip(self.teacher.chip(rgb_masked, shape))
        return out

    def own_front_end(self, image: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """face_recognition's pipeline on a BGR photo: HOG detection (upsampled once), largest face, 5 landmarks,
        chip, descriptor; None when no face is found."""
        if image is None:
            return None
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rects = self.detector(rgb, 1)
        if not rects:
            return None
        rect = max(rects, key=lambda r: r.width() * r.height())
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        return self.teacher.embed_photo(image, box)

    def own_front_end_all(self, images: Sequence[Optional[np.ndarray]]) -> np.ndarray:
        rows = [self.own_front_end(image) for image in images]
        return np.stack([r if r is not None else np.full(self.dim, np.nan, np.float32) for r in rows])


def sface_as_shipped(path: Path, threads: int = 1):
    """SFace exactly as the shared file is (int8 block-quantised weights, batch 1), with the one fix ONNX Runtime
    needs (the weights listed as graph inputs dropped): the speed a user of the file gets."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    inputs = [i for i in model.graph.input if i.name == "data"]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def embed_one(face: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(face[None, :, :, ::-1].transpose(0, 3, 1, 2).astype(np.float32))
        return session.run(None, {"data": x})[0]

    return embed_one

