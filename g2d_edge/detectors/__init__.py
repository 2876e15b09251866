"""Face detectors behind one protocol (`FrameDetector`), and `create_frame_detector`, which builds one by name.

    "yunet"  OpenCV's YuNet (shipped in the package), 5 keypoints, runs at the frame's own size; through ONNX Runtime
             (`yunet_runtime.py`, the default), OpenVINO, or OpenCV's DNN module (`yunet.py`): see YUNET_RUNTIMES
    "short"  MediaPipe BlazeFace short range (faces within ~2 m), 6 keypoints, 128 px input
    "full"   MediaPipe BlazeFace full range (up to ~5 m), 6 keypoints, 192 px input

`FaceDetector` (`detect.py`, with `DetectorOptions`) puts one of them behind the frame check (`g2d_edge.io`), the
every-scale mode and the filters.
"""
from __future__ import annotations

from .base import KEYPOINT_NAMES_5, KEYPOINT_NAMES_6, Detection, FrameDetector
from .blazeface import BlazeFaceDetector
from .detect import DetectorOptions, FaceDetector
from .factory import DETECTOR_MODELS, YUNET_RUNTIMES, create_frame_detector, default_confidence
from .yunet import SHIPPED_YUNET, YuNetDetector
from .yunet_runtime import YuNetRuntimeDetector

__all__ = ["BlazeFaceDetector", "DETECTOR_MODELS", "Detection", "DetectorOptions", "FaceDetector", "FrameDetector",
           "KEYPOINT_NAMES_5", "KEYPOINT_NAMES_6", "SHIPPED_YUNET", "YUNET_RUNTIMES", "YuNetDetector",
           "YuNetRuntimeDetector", "create_frame_detector", "default_confidence"]
