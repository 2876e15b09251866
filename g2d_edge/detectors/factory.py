"""The detectors by name: `DETECTOR_MODELS`, `YUNET_RUNTIMES`, each one's default score threshold, and
`create_frame_detector`."""
from __future__ import annotations

import logging
from typing import Optional

from ..errors import InputError
from .base import FrameDetector
from .blazeface import BLAZEFACE_MODELS, BlazeFaceDetector
from .yunet import YuNetDetector
from .yunet_runtime import YuNetRuntimeDetector

log = logging.getLogger(__name__)

#: Detector names `DetectorOptions.model` accepts.
DETECTOR_MODELS = ("yunet",) + tuple(BLAZEFACE_MODELS)
#: What runs YuNet (`DetectorOptions.runtime`). "auto" is ONNX Runtime: at the same outputs it ran YuNet about twice
#: as fast as OpenCV's DNN module at every frame size and as fast as OpenVINO or faster up to 1080p, on one thread
#: (README "Face detection"); it is always installed, and it uses a CUDA GPU where onnxruntime-gpu is installed.
YUNET_RUNTIMES = ("auto", "onnxruntime", "openvino", "opencv")


def default_confidence(model: str) -> float:
    """The score threshold a detector uses when none is given."""
    return YuNetDetector.default_confidence if model == "yunet" else BlazeFaceDetector.default_confidence


def create_frame_detector(model: str, min_confidence: Optional[float] = None, runtime: str = "auto",
                          threads: int = 0) -> FrameDetector:
    """The detector named `model` (see DETECTOR_MODELS), dropping faces scored below `min_confidence` (None: its
    default). YuNet runs on `runtime` (see YUNET_RUNTIMES) with `threads` (0: the runtime's default); BlazeFace
    always runs in MediaPipe."""
    if model not in DETECTOR_MODELS:
        raise InputError(f"DetectorOptions.model must be one of {', '.join(DETECTOR_MODELS)}, got {model!r}")
    if runtime not in YUNET_RUNTIMES:
        raise InputError(f"DetectorOptions.runtime must be one of {', '.join(YUNET_RUNTIMES)}, got {runtime!r}")
    confidence = default_confidence(model) if min_confidence is None else float(min_confidence)
    if model != "yunet":
        return BlazeFaceDetector(model, confidence)
    if runtime == "opencv":
        return YuNetDetector(confidence)
    if runtime == "auto":
        log.info("yunet runtime auto -> onnxruntime")
    return YuNetRuntimeDetector("onnxruntime" if runtime == "auto" else runtime, confidence, threads)
