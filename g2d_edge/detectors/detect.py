"""Face detection: YuNet (OpenCV, shipped in the package) or MediaPipe BlazeFace (short / full range), chosen by
`DetectorOptions.model`, in one pass over the frame or in the every-scale mode (`DetectorOptions.every_scale`).

    from g2d_edge.detectors import FaceDetector, DetectorOptions
    with FaceDetector() as det:                       # YuNet, every scale: small faces in 4K crowds to close-ups
        for face in det.detect(frame):                # Detection: box, keypoints, score; largest face first
            ...
    FaceDetector(DetectorOptions(model="short"))      # BlazeFace short range, one pass: the fastest (the old default)

Every detector returns the same `Detection` (box, 5 or 6 keypoints, score) in frame pixels, so the shared aligner
and everything after it do not depend on the choice. The detectors themselves are this package's other modules.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ..errors import G2DError, InputError, check_fields, option
from ..io import check_bgr_frame
from .base import Detection, FrameDetector
from .factory import DETECTOR_MODELS, YUNET_RUNTIMES, create_frame_detector
from .scales import detect_views, fit_scale, local_views, pyramid_views, single_view, tile_views

log = logging.getLogger(__name__)

#: Where the keypoints of a face come from (`DetectorOptions.keypoints`).
KEYPOINT_SOURCES = ("blazeface", "detector")

#: Every-scale tile side (frame pixels) of the finest tiles when `DetectorOptions.tile_size` is 0, per BlazeFace model.
DEFAULT_TILE_SIZE = {"short": 128, "full": 256}
#: Largest side (pixels) a `DetectorOptions` size may name: twice a 4K frame's.
MAX_SIDE = 8192

__all__ = ["DEFAULT_TILE_SIZE", "DetectorOptions", "FaceDetector", "KEYPOINT_SOURCES"]


@dataclass(frozen=True)
class DetectorOptions:
    """How faces are found.

    model: "yunet" (OpenCV YuNet, the default: masked, small and many faces, 5 keypoints), "short" (MediaPipe
        BlazeFace short range, faces within ~2 m, 6 keypoints; the fastest) or "full" (BlazeFace full range, ~5 m).
    every_scale: find faces of every size, from small faces in 1080p / 4K crowds to a face filling the frame, in
        several passes merged by non-maximum suppression. YuNet: the frame at full resolution (a small frame
        upscaled to 1.5 x `min_input_side`, a very large one downscaled to 2 x `max_input_side`) and halved copies
        of it, down to `min_input_side` (a third more work than one full-resolution pass). BlazeFace: overlapping
        tiles of `tile_size`, 2x, 4x ... plus the whole frame (296 passes over a 1080p frame for "short"). False: one
        pass over the whole frame. None (default): the detector's own default, on for YuNet and off for BlazeFace
        (so `model="short"` alone keeps the old front end and its speed).
    min_confidence: detections scored below this are dropped; None uses the detector's own default (YuNet 0.7,
        BlazeFace 0.5). Scores of different detectors are not comparable.
    min_face_size: faces whose box is narrower than this many pixels are dropped. YuNet every-scale: it also sizes
        the pyramid; a level that would only add faces narrower than this is left out (64 or more: no pass at full
        resolution, a quarter of the pixels; 128 or more on 4K: none at half resolution either).
    max_faces: keep at most this many faces (largest first); 0 keeps all.
    pad_retry: when nothing is found, retry once on the frame padded by this fraction of its size on each side
        (helps tight crops where the face fills the whole frame); 0 disables the retry.
    upscale: YuNet every-scale: a frame of camera size (longer side at least 1.5 x `min_input_side`) starts the
        pyramid enlarged by this factor, at most to 2 x `max_input_side` (a 1080p frame at 2880 px; a 4K frame stays
        at full resolution), because YuNet often misses faces of 24-40 px at their own size: measured on the
        1080p video of `benchmarks/pipeline.py`, full passes found 89 % of the faces at least 24 px wide at 1 and
        98 % at 1.5, for about 2.5 x the detection time per full pass (README "Pipeline"). 1: start at full
        resolution (the front end before this option; faster, misses more small faces).
    min_input_side: YuNet: a frame whose longer side is shorter than this is upscaled to it first (faces in small
        photos); 0 never upscales.
    max_input_side: YuNet in one pass (`every_scale=False`): a frame whose longer side is longer than this is
        downscaled to it first (a 4K frame is detected at 1920 px, so its smallest faces are lost); 0 never
        downscales. The every-scale mode starts at full resolution up to twice this (3840 px: a 4K frame at full
        resolution, a 24-megapixel photo at 3840 px).
    tile_size: BlazeFace in the every-scale mode: side of the finest tiles in frame pixels (0: 128 for "short", 256
        for "full"); the smallest faces found are about a fifth ("short") or an eighth ("full") of it.
    tile_overlap: BlazeFace in the every-scale mode: overlap of neighbouring tiles, as a fraction of their side.
    nms_iou: faces found at several scales or in several tiles overlapping by more than this IoU are merged.
    runtime: what runs YuNet: "auto" (the default: ONNX Runtime), "onnxruntime" (the shipped model's weights folded
        to float32 at load time; on a CUDA GPU where onnxruntime-gpu is installed), "openvino" (needs the
        [openvino] extra) or "opencv" (`cv2.FaceDetectorYN`, the front end before this option). All give the same
        faces (boxes and keypoints within 0.001 px on the benchmark's frames; tested on real photos); ONNX Runtime
        was about twice as fast as OpenCV on the development machine (README "Face detection"). BlazeFace always
        runs in MediaPipe.
    threads: CPU threads for YuNet on ONNX Runtime / OpenVINO (0: the runtime's default, one per core); OpenCV's
        threads are set process-wide with `cv2.setNumThreads`.
    keypoints: which keypoints a face found by YuNet carries (and is aligned from): "blazeface" (the default:
        BlazeFace short range re-run on a loose crop around each face gives its 6 keypoints, as in the crops the
        shipped models were trained on; YuNet's own are kept where BlazeFace does not find the face there; about
        2 ms per face) or "detector" (YuNet's own 5 keypoints: no extra cost, but a model trained on BlazeFace-
        aligned crops loses accuracy on them). BlazeFace's own detections always carry their own keypoints.
    """

    model: str = option("yunet", choices=DETECTOR_MODELS)
    every_scale: Optional[bool] = None
    min_confidence: Optional[float] = option(None, low=0.0, high=1.0)
    min_face_size: int = option(20, low=0, high=MAX_SIDE)
    max_faces: int = option(0, low=0, high=100_000)
    pad_retry: float = option(0.25, low=0.0, high=2.0)
    upscale: float = option(1.25, low=1.0, high=4.0)
    min_input_side: int = option(512, low=0, high=MAX_SIDE)
    max_input_side: int = option(1920, low=0, high=MAX_SIDE)
    tile_size: int = option(0, low=0, high=MAX_SIDE)
    tile_overlap: float = option(0.25, low=0.0, below=0.9)
    nms_iou: float = option(0.3, above=0.0, high=1.0)
    runtime: str = option("auto", choices=YUNET_RUNTIMES)
    threads: int = option(0, low=0, high=1024)
    keypoints: str = option("blazeface", choices=KEYPOINT_SOURCES)

    def __post_init__(self) -> None:
        check_fields(self)
        if 0 < self.max_input_side < self.min_input_side:
            raise InputError(f"DetectorOptions.max_input_side ({self.max_input_side}) is below min_input_side "
                             f"({self.min_input_side}); raise max_input_side or lower min_input_side")
        if 0 < self.tile_size < 32:
            raise InputError(f"DetectorOptions.tile_size must be 0 (the default) or at least 32 px, got "
                             f"{self.tile_size}")


def retry_padding(height: int, width: int, pad_retry: float) -> int:
    """The border (px, each side) of `DetectorOptions.pad_retry`'s second pass: `pad_retry` of the longer side,
    but at most of twice the shorter side, so that a long narrow frame does not grow by its length on every side."""
    return int(round(pad_retry * min(max(height, width), 2 * min(height, width))))


class FaceDetector:
    """The detector chosen by `DetectorOptions`, returning `Detection`s in frame pixels, largest face first.

    Not thread-safe: use one detector per thread.

    Raises:
        InputError: an option has an invalid value.
        ModelError: the YuNet model cannot be loaded (missing file, OpenCV too old).
    """

    def __init__(self, options: Optional[DetectorOptions] = None) -> None:
        self.options = options or DetectorOptions()
        from .blazeface import BlazeFaceDetector
        from .refine import BlazeFaceKeypoints

        self._detector: FrameDetector = create_frame_detector(self.options)
        every = self.options.every_scale
        #: whether this detector runs in the every-scale mode (`DetectorOptions.every_scale`, None resolved)
        self.every_scale: bool = bool(self._detector.input_side is None if every is None else every)
        self._keypoints: Optional[BlazeFaceKeypoints] = None
        if self.options.keypoints == "blazeface" and not isinstance(self._detector, BlazeFaceDetector):
            try:
                self._keypoints = BlazeFaceKeypoints()
            except BaseException:
                self._detector.close()
                raise

    @property
    def name(self) -> str:
        """The detector and mode, e.g. "yunet every-scale + blazeface keypoints" or "blazeface-short"."""
        return (self._detector.name + (" every-scale" if self.every_scale else "")
                + (" + blazeface keypoints" if self._keypoints is not None else ""))

    def close(self) -> None:
        self._detector.close()
        if self._keypoints is not None:
            self._keypoints.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, frame: np.ndarray) -> List[Detection]:
        """Find faces in a BGR uint8 frame (largest first), with the keypoints to align them from."""
        return self.refine_keypoints(frame, self.find(frame))

    def refine_keypoints(self, frame: np.ndarray, faces: Sequence[Detection]) -> List[Detection]:
        """`faces` (from `find` on this frame) with the keypoints `DetectorOptions.keypoints` asks for: BlazeFace's,
        or the detector's own (then unchanged). Costs ~2 ms a face with BlazeFace keypoints: a video loop that tracks
        faces refines only those it is about to align."""
        return self._keypoints.refine(frame, faces) if self._keypoints is not None else list(faces)

    def find(self, frame: np.ndarray) -> List[Detection]:
        """The faces in a BGR uint8 frame (largest first) with the detector's own keypoints (see `detect`)."""
        frame = check_bgr_frame(frame)
        opts = self.options
        try:
            faces = self._detect_once(frame)
            if not faces and opts.pad_retry > 0:
                pad = retry_padding(frame.shape[0], frame.shape[1], opts.pad_retry)
                padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
                faces = [_shift(f, -pad) for f in self._detect_once(padded)]
        except cv2.error as exc:  # "Insufficient memory" and other failures inside OpenCV
            raise _opencv_failure(frame, exc) from None
        return self._keep(faces)

    def find_near(self, frame: np.ndarray, boxes: Sequence[np.ndarray]) -> List[Detection]:
        """The faces near `boxes` (where tracked faces are expected), found in one small crop around each box scaled
        so the face is ~80 px (`scales.local_views`): a video's cheap detection between two full passes
        (`TrackingOptions.detect_every`). Faces elsewhere are not looked for. Largest first."""
        frame = check_bgr_frame(frame)
        views = local_views(frame.shape[0], frame.shape[1], boxes)
        try:
            faces = detect_views(self._detector, frame, views, self.options.nms_iou) if views else []
        except cv2.error as exc:
            raise _opencv_failure(frame, exc) from None
        return self._keep(faces)

    def _keep(self, faces: List[Detection]) -> List[Detection]:
        """Faces at least `min_face_size` wide, largest first, at most `max_faces`."""
        opts = self.options
        faces = [f for f in faces if f.box[2] - f.box[0] >= opts.min_face_size]
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        if opts.max_faces > 0:
            faces = faces[:opts.max_faces]
        return faces

    def _detect_once(self, frame: np.ndarray) -> List[Detection]:
        """Faces found in the views this detector and mode call for, merged."""
        h, w = frame.shape[:2]
        opts = self.options
        if self._detector.input_side is None:  # runs at any size: resize the whole frame
            if self.every_scale:
                views = pyramid_views(h, w, opts.min_input_side * 3 // 2, opts.min_input_side,
                                      2 * opts.max_input_side, min_face=opts.min_face_size, upscale=opts.upscale)
            else:
                views = single_view(h, w, fit_scale(h, w, opts.min_input_side, opts.max_input_side))
        elif self.every_scale:
            views = tile_views(h, w, opts.tile_size or DEFAULT_TILE_SIZE[opts.model], opts.tile_overlap)
        else:
            views = single_view(h, w)
        return detect_views(self._detector, frame, views, opts.nms_iou)


def _opencv_failure(frame: np.ndarray, exc: Exception) -> G2DError:
    """"Insufficient memory" and other failures inside OpenCV, said with what to do."""
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return G2DError(f"face detection failed on a {frame.shape[1]}x{frame.shape[0]} frame: OpenCV: {message}; if it "
                    "ran out of memory, give a smaller frame or smaller DetectorOptions sizes (min_input_side, "
                    "max_input_side, tile_size)")


def _shift(det: Detection, offset: int) -> Detection:
    """The detection moved by `offset` pixels along both axes."""
    return Detection(box=(det.box + offset).astype(np.float32), keypoints=(det.keypoints + offset).astype(np.float32),
                     score=det.score)
