"""The detectors by name: `DETECTOR_MODELS`, `YUNET_RUNTIMES`, each one's default score threshold, and
`create_frame_detector`."""
from __future__ import annotations

import logging
from typing import Any

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


def create_frame_detector(options: Any) -> FrameDetector:
    """The detector a `DetectorOptions` names (`model`, checked there against DETECTOR_MODELS), dropping faces scored
    below its `min_confidence` (None: the detector's default). YuNet runs on its `runtime` (see YUNET_RUNTIMES) with
    its `threads` (0: the runtime's default); BlazeFace always runs in MediaPipe."""
    model, runtime = options.model, options.runtime
    confidence = default_confidence(model) if options.min_confidence is None else float(options.min_confidence)
    if model != "yunet":
        return BlazeFaceDetector(model, confidence)
    if runtime == "opencv":
        return YuNetDetector(confidence)
    if runtime == "auto":
        log.info("yunet runtime auto -> onnxruntime")
    return YuNetRuntimeDetector("onnxruntime" if runtime == "auto" else runtime, confidence, options.threads)
