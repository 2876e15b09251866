"""The detectors by name: `DETECTOR_MODELS`, each one's default score threshold, and `create_frame_detector`."""
from __future__ import annotations

from typing import Optional

from ..errors import InputError
from .base import FrameDetector
from .blazeface import BLAZEFACE_MODELS, BlazeFaceDetector
from .yunet import YuNetDetector

#: Detector names `DetectorOptions.model` accepts.
DETECTOR_MODELS = ("yunet",) + tuple(BLAZEFACE_MODELS)


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
