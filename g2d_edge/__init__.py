"""g2d-edge: recognise people wearing face masks, on edge GPUs.

    from g2d_edge import Recognizer
    rec = Recognizer()                       # shipped model; Recognizer(model="my.onnx") for your own
    rec.enroll("alice", ["alice1.jpg", "alice2.jpg"])
    for face in rec.identify(frame):         # frame: BGR uint8, as cv2.imread / VideoCapture give it
        print(face.name, face.score, face.box)

Public API: `Recognizer`, `RecognizerOptions`, `RunningMode`, `Recognition`, `VerifyResult`, `EnrollResult`,
`StreamResult`, `Gallery`, `GalleryBase` (the gallery protocol), `open_gallery` (a file path or a database URL such
as `milvus://host:19530/people`, see `g2d_edge.gallery_milvus`), `Match`, `FaceDetector`, `DetectorOptions`,
`Detection`, `align_face`, `Capture`, `CaptureOptions`, `Frame`, `jetson_csi_pipeline`, `annotate`, `read_image`,
`ModelSidecar` and the errors
(`G2DError` and subclasses). Nothing here imports torch; ONNX Runtime / TensorRT load when a model is opened.
"""
from __future__ import annotations

from .align import ALIGNED_SIZE, align_face
from .capture import Capture, CaptureOptions, CaptureStats, Frame, jetson_csi_pipeline
from .detect import Detection, DetectorOptions, FaceDetector
from .draw import DrawOptions, annotate
from .errors import (BackendUnavailableError, CaptureError, G2DError, GalleryError, GalleryUnavailableError,
                     ImageReadError, InputError, ModelError, NoFaceError)
from .gallery import Gallery, GalleryBase, IdentityInfo, Match, open_gallery
from .io import read_image
from .recognizer import (EnrollResult, Recognition, Recognizer, RecognizerOptions, RunningMode, StreamResult,
                         VerifyResult)
from .sidecar import ModelSidecar


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "0.1.0"
    try:
        return version("g2d-edge")
    except PackageNotFoundError:
        return "0.1.0"


__version__ = _version()

__all__ = [
    "ALIGNED_SIZE", "BackendUnavailableError", "Capture", "CaptureError", "CaptureOptions", "CaptureStats",
    "Detection", "DetectorOptions", "DrawOptions", "EnrollResult", "FaceDetector", "Frame", "G2DError", "Gallery",
    "GalleryBase", "GalleryError", "GalleryUnavailableError", "IdentityInfo", "ImageReadError", "InputError", "Match", "ModelError", "ModelSidecar",
    "NoFaceError", "Recognition", "Recognizer", "RecognizerOptions", "RunningMode", "StreamResult", "VerifyResult",
    "__version__", "align_face", "annotate", "jetson_csi_pipeline", "open_gallery", "read_image",
]
