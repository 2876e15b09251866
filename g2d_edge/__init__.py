"""g2d-edge: recognise people wearing face masks, on edge GPUs.

    from g2d_edge import Recognizer
    rec = Recognizer()                       # shipped model; Recognizer(model="my.onnx") for your own
    rec.enroll("alice", ["alice1.jpg", "alice2.jpg"])
    for face in rec.identify(frame):         # frame: BGR uint8, as cv2.imread / VideoCapture give it
        print(face.name, face.score, face.box)

The public face (`__all__`): `Recognizer`, `RecognizerOptions` and the `Recognition` it returns; `Gallery` and
`open_gallery` (a file path or a database URL such as `milvus://host:19530/people`); `Capture` (camera, video, URL,
folder, image), `VideoLoop` (Capture -> identify -> annotate -> show / write) and `annotate`; `G2DError`, the base of
every error the SDK raises on purpose. Only these are importable from here; everything else is imported from its
one home: `g2d_edge.errors` (the G2DError subclasses), `g2d_edge.detectors` (FaceDetector, DetectorOptions),
`g2d_edge.gallery` (Match, GalleryBase, copy_gallery), `g2d_edge.video` (CaptureOptions, VideoOptions, tracking),
`g2d_edge.masks`, `g2d_edge.align`, `g2d_edge.draw`, `g2d_edge.io`, `g2d_edge.results`, `g2d_edge.sidecar`,
`g2d_edge.backends`, `g2d_edge.cli`. Nothing here imports torch; ONNX Runtime / TensorRT load when a model is opened.
"""
from __future__ import annotations

from .draw import annotate
from .errors import G2DError
from .gallery import Gallery, open_gallery
from .recognizer import Recognizer, RecognizerOptions
from .results import Recognition
from .video import Capture, VideoLoop


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

