"""Face detectors behind one protocol (`FrameDetector`), and `create_frame_detector`, which builds one by name.

    "yunet"  OpenCV's YuNet (shipped in the package), 5 keypoints, runs at the frame's own size
    "short"  MediaPipe BlazeFace short range (faces within ~2 m), 6 keypoints, 128 px input
    "full"   MediaPipe BlazeFace full range (up to ~5 m), 6 keypoints, 192 px input

`g2d_edge.detect.FaceDetector` puts one of them behind the frame checks, the every-scale mode and the filters.
"""
from __future__ import annotations

from typing import Optional

from ..errors import InputError
from .base import KEYPOINT_NAMES_5, KEYPOINT_NAMES_6, Detection, FrameDetector
from .blazeface import BLAZEFACE_MODELS, BlazeFaceDetector
from .yunet import SHIPPED_YUNET, YuNetDetector

#: Detector names `DetectorOptions.model` accepts.
DETECTOR_MODELS = ("yunet",) + tuple(BLAZEFACE_MODELS)

__all__ = ["BlazeFaceDetector", "DETECTOR_MODELS", "Detection", "FrameDetector", "KEYPOINT_NAMES_5",
           "KEYPOINT_NAMES_6", "SHIPPED_YUNET", "YuNetDetector", "create_frame_detector", "default_confidence"]


def default_confidence(model: str) -> float:
    """The score threshold a detector uses when none is given."""
    return YuNetDetector.default_confidence if model == "yunet" else BlazeFaceDetector.default_confidence


def create_frame_detector(model: str, min_confidence: Optional[float] = None) -> FrameDetector:
    """The detector named `model` (see DETECTOR_MODELS), dropping faces scored below `min_confidence` (None: its
    default)."""
    if model not in DETECTOR_MODELS:
        raise InputError(f"DetectorOptions.model must be one of {', '.join(DETECTOR_MODELS)}, got {model!r}")
    confidence = default_confidence(model) if min_confidence is None else float(min_confidence)
    if model == "yunet":
        return YuNetDetector(confidence)
    return BlazeFaceDetector(model, confidence)
