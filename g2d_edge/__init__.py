"""g2d-edge: recognise people wearing face masks, on edge GPUs.

    from g2d_edge import Recognizer
    rec = Recognizer()                       # shipped model; Recognizer(model="my.onnx") for your own
    rec.enroll("alice", ["alice1.jpg", "alice2.jpg"])
    for face in rec.identify(frame):         # frame: BGR uint8, as cv2.imread / VideoCapture give it
        print(face.name, face.score, face.box)

The public face (`__all__`): `Recognizer`, `RecognizerOptions` and the `Recognition` it returns; `Gallery` and
`open_gallery` (a file path or a database URL such as `milvus://host:19530/people`); `Capture` (camera, video, URL,
folder, image), `VideoLoop` (Capture -> identify -> annotate -> show / write) and `annotate`; `G2DError`, the base of
every error the SDK raises on purpose. Everything else lives in its module: `g2d_edge.errors` (the G2DError
subclasses), `g2d_edge.detect` (FaceDetector, DetectorOptions), `g2d_edge.align`, `g2d_edge.capture`,
`g2d_edge.video`, `g2d_edge.draw`, `g2d_edge.io`, `g2d_edge.sidecar`, `g2d_edge.backends` ... The names this package
exported before (e.g. `from g2d_edge import DetectorOptions`) stay importable here, out of `__all__`; new code
imports them from their modules. Nothing here imports torch; ONNX Runtime / TensorRT load when a model is opened.
"""
from __future__ import annotations

from .align import ALIGNED_SIZE, align_face
from .capture import Capture, CaptureOptions, CaptureStats, Frame, jetson_csi_pipeline
from .detect import Detection, DetectorOptions, FaceDetector
from .draw import DrawOptions, annotate
from .errors import (BackendUnavailableError, CaptureError, ClosedError, G2DError, GalleryError,
                     GalleryUnavailableError, ImageReadError, InputError, ModelError, NoFaceError)
from .gallery import Gallery, GalleryBase, IdentityInfo, Match, open_gallery
from .io import read_image
from .recognizer import (EnrollResult, Recognition, Recognizer, RecognizerOptions, RunningMode, StreamResult,
                         VerifyResult)
from .sidecar import ModelSidecar
from .video import VideoLoop, VideoOptions


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

#: The public face: what a user needs to recognise people in photos, videos and streams.
__all__ = ["Recognizer", "RecognizerOptions", "Recognition", "Gallery", "open_gallery", "Capture", "VideoLoop",
           "annotate", "G2DError", "__version__"]

#: Exported by earlier versions and still importable from here (not in `__all__`): import them from their modules.
COMPATIBILITY_NAMES = (
    "ALIGNED_SIZE", "BackendUnavailableError", "CaptureError", "CaptureOptions", "CaptureStats", "ClosedError",
    "Detection", "DetectorOptions", "DrawOptions", "EnrollResult", "FaceDetector", "Frame", "GalleryBase",
    "GalleryError", "GalleryUnavailableError", "IdentityInfo", "ImageReadError", "InputError", "Match", "ModelError",
    "ModelSidecar", "NoFaceError", "RunningMode", "StreamResult", "VerifyResult", "VideoOptions", "align_face",
    "jetson_csi_pipeline", "read_image",
)
