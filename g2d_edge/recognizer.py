"""`Recognizer`: detect -> align -> embed -> match, for photos and video frames.

    rec = Recognizer()                                  # the model shipped in the package
    rec.enroll("alice", ["alice1.jpg", "alice2.jpg"])   # several templates per person
    for r in rec.identify(frame):                       # frame: HxWx3 uint8 BGR, as OpenCV gives it
        print(r.name, r.score, r.box)

Every face of a frame is embedded in one backend call. `identify(frame)` treats the frame as an independent photo;
`identify(frame, tracker)` as the next frame of the video `tracker` follows (`g2d_edge.video.FaceTracker`: faces keep
a track id and are recognised only when needed). Whether a source is a video is decided in one place, the video loop
(`g2d_edge.video.VideoLoop`, which also runs stream mode, `g2d_edge.video.FrameStream`); it calls `identify` with its
tracker. `identify` is two stages, `locate` (find the faces; with a tracker, associate them with its tracks) and
`recognise` (align, embed, match, vote), which `VideoLoop` may run on two threads at once, frame t+1 located while
frame t is recognised (`VideoOptions.overlap`). After `close()` every method that needs the detector or the model
raises `ClosedError`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .align import ALIGNED_SIZE, align_face
from .backends.base import check_faces
from .backends.loader import BackendOptions, ModelLike, open_model
from .detectors.base import Detection
from .detectors.detect import MAX_SIDE, DetectorOptions, FaceDetector
from .errors import ClosedError, ImageReadError, InputError, NoFaceError, check_fields, option
from .gallery.file import Gallery, open_gallery
from .gallery.protocol import THRESHOLD_RANGE, GalleryBase, check_identity_name, check_threshold
from .imagesize import DEFAULT_MAX_IMAGE_PIXELS, PIXEL_LIMIT
from .io import ImageLike, check_bgr_frame, describe, load_image
from .masks.flag import MaskFlag
from .openset.calibration import FPIR_RANGE
from .openset.rule import DEFAULT_TARGET_FPIR, ThresholdDecision, Thresholds
from .results import EnrollResult, Recognition, VerifyResult
from .sidecar import ModelSidecar
from .video.tracking import Association, FaceTracker, Vote

log = logging.getLogger(__name__)

_CLOSED_MESSAGE = ("this Recognizer was closed (close() or the end of its `with` block); create a new Recognizer "
                   "to go on")


@dataclass(frozen=True)
class RecognizerOptions:
    """How a `Recognizer` behaves.

    detector: face-detector options (model "yunet"/"short"/"full", every_scale, min_confidence, max_faces, ...).
    threshold: cosine similarity from which a face is given a name, set by hand; None (the default) uses the
        gallery's own threshold if it has one, else the threshold that keeps `target_fpir` for the gallery at hand
        (the model's open-set calibration, `g2d_edge.openset`), else the model sidecar's one-comparison threshold.
    target_fpir: the share of strangers (faces of no one enrolled) that may be given a name; the threshold is
        derived from it for the current gallery size and re-derived when the gallery changes.
    top_k: how many candidate identities each `Recognition.matches` lists.
    min_face_size: smallest face (box width in pixels) to recognise; None keeps `detector.min_face_size`.
        Tiny faces give unreliable embeddings.
    warmup: run one dummy batch through the backend at start-up (first-call latency out of the way).
    max_image_pixels: image files (enrol, verify) whose header claims more pixels than this are refused with
        ImageReadError before they are decoded (decompression bombs); see `g2d_edge.io.DEFAULT_MAX_IMAGE_PIXELS`.
    mask_flag: fill `Recognition.masked` / `mask_score` with the shipped mask classifier (`g2d_edge.masks.flag`,
        well under 1 ms per face on a CPU).
    masked_templates: `enroll` adds this many synthetic masked templates per clean enrolment photo
        (`g2d_edge.masks.templates`), tagged masked in the gallery; with `mask_flag` on, `identify` compares a clean
        face with clean templates only and a masked face with all (`g2d_edge.gallery.protocol.MASKED_SEARCH_RULE`).
        0 by default: with the shipped model they did not help masked faces (README, "Masked faces").
    backend_options: how the model is opened (`g2d_edge.backends.BackendOptions`: each runtime's options, e.g.
        `BackendOptions.of(intra_op_threads=1)` or `BackendOptions.of(url="grpc://gpu-server:8001")` for Triton).

    Every option is checked when the options are made (InputError naming the field); `Recognizer` does not check
    them again.
    """

    detector: DetectorOptions = field(default_factory=DetectorOptions)
    threshold: Optional[float] = option(None, **THRESHOLD_RANGE)
    target_fpir: float = option(DEFAULT_TARGET_FPIR, **FPIR_RANGE)
    top_k: int = option(1, low=1, high=1000)
    min_face_size: Optional[int] = option(None, low=0, high=MAX_SIDE)
    warmup: bool = True
    max_image_pixels: int = option(DEFAULT_MAX_IMAGE_PIXELS, **PIXEL_LIMIT)
    mask_flag: bool = True
    masked_templates: int = option(0, low=0, high=16)
    backend_options: BackendOptions = field(default_factory=BackendOptions)

    def __post_init__(self) -> None:
        check_fields(self)


GalleryLike = Union[None, GalleryBase, str, os.PathLike]


@dataclass(frozen=True, eq=False)
class LocatedFrame:
    """A frame after `Recognizer.locate`, ready for `Recognizer.recognise`: its faces (the detector's own keypoints),
    their association with the tracker's tracks (None for a still), and the seconds spent finding ("detection") and
    associating ("tracking") them."""

    frame: np.ndarray
    detections: Tuple[Detection, ...]
    association: Optional[Association]
    timings: Dict[str, float]


class Recognizer:
    """Face recognition on BGR frames: detection (YuNet or MediaPipe BlazeFace, see `DetectorOptions`), alignment
    (shared 112x112 aligner), embedding (ONNX Runtime / TensorRT backend), and gallery matching.

    Args:
        model: path to an exported model (.onnx or .engine, sidecar .json beside it), None for the default shipped
            model, a shipped model's name ("g2d-edge-m", "g2d-edge-s"), or a ready backend object.
        backend: "auto" (by file suffix and what is installed), "onnxruntime", "tensorrt", ...
            "triton" (`TritonOptions` in `RecognizerOptions.backend_options`): the model runs on a Triton server and
            `model` only names the sidecar it must match (see `g2d_edge.backends.triton`).
        gallery: a `Gallery`, a gallery path (loaded if it exists, else created empty and saved there by
            `save_gallery()`), a database gallery (`MilvusGallery`) or its URL (`milvus://host:19530/collection`,
            `milvus-lite://path.db/collection`; README "Scaling out"), or None for a new in-memory gallery. A
            gallery made with another model is refused (GalleryError). A gallery opened here from a path or URL is
            closed by `close()`.
        options: `RecognizerOptions` (its `backend_options` say how the model is opened).

    Its methods may be called from several threads: the frame detector (`locate`) is used by one at a time, the
    rest (keypoints, model, mask flag, gallery: `recognise`) by one at a time, so one thread may locate a frame while
    another recognises the one before.
    `close()` (or the `with` block's end) releases the detector; using the recognizer afterwards raises
    ClosedError.
    """

    def __init__(self, model: ModelLike = None, backend: str = "auto", gallery: GalleryLike = None,
                 options: Optional[RecognizerOptions] = None) -> None:
        if options is not None and not isinstance(options, RecognizerOptions):
            raise InputError(f"options must be a RecognizerOptions, got {type(options).__name__}")
        self.options = options or RecognizerOptions()
        self.backend = open_model(model, backend, self.options.backend_options)
        self.sidecar: ModelSidecar = self.backend.sidecar
        #: how the threshold is chosen (`g2d_edge.openset.rule`; `thresholds.rule`: the open-set rule, if calibrated)
        self.thresholds = Thresholds(self.sidecar, self.options.threshold, self.options.target_fpir)
        det_opts = self.options.detector
        if self.options.min_face_size is not None:
            det_opts = dataclasses.replace(det_opts, min_face_size=self.options.min_face_size)
        self.mask_flag: Optional[MaskFlag] = MaskFlag() if self.options.mask_flag else None
        self._masked: Optional[Any] = None  # MaskedViews, made on the first enrolment with masked templates
        self.detector = FaceDetector(det_opts)
        try:
            self._gallery = self._attach(gallery)
        except BaseException:
            self.detector.close()
            raise
        self._find_lock = threading.Lock()  # the frame detector (`locate`): taken before `_lock` when both are held
        self._lock = threading.RLock()  # keypoints, backend, mask flag, gallery (`recognise`)
        self._warned_empty = False
        #: seconds spent per stage by the last identify call: detection, tracking, alignment, inference, matching
        self.last_timings: Dict[str, float] = {}
        #: faces the last identify call embedded (with tracking, only the tracks that needed recognition)
        self.last_faces_embedded = 0
        self._closed = False  # the detector is released (set under both locks)
        if self.options.warmup:
            self.backend.warmup()
        log.info("recognizer ready: model %s (%s backend), gallery %r, threshold %.3f", self.sidecar.name,
                 getattr(self.backend, "name", "?"), self._gallery, self.threshold)

    # ------------------------------------------------------------------ properties
    @property
    def gallery(self) -> GalleryBase:
        """The gallery faces are matched against. Assigning a Gallery or a path attaches it (model check included)."""
        return self._gallery

    @gallery.setter
    def gallery(self, value: GalleryLike) -> None:
        self._gallery = self._attach(value)
        self._warned_empty = False
        self.thresholds.size.reset()

    @property
    def threshold(self) -> float:
        """Cosine from which a face gets a name (`RecognizerOptions.threshold`); `decision()` says which and why."""
        return self.decision().threshold

    def decision(self, kind: Optional[str] = None) -> ThresholdDecision:
        """The threshold in use and why (`g2d_edge.openset.ThresholdDecision`: source, target FPIR, gallery size),
        for a face of `kind` ("clean" or "masked", as the mask flag says; None: the higher threshold of the two)."""
        return self.thresholds.decide(self._gallery, kind)

    @threshold.setter
    def threshold(self, value: Optional[float]) -> None:
        self.thresholds.manual = check_threshold(value, "Recognizer.threshold")

    @property
    def verify_threshold(self) -> float:
        """The cosine `verify` judges one comparison at: `threshold` for a one-template gallery."""
        return self.thresholds.decide(self._gallery, one=True).threshold

    @property
    def embedding_dim(self) -> int:
        return int(self.sidecar.embedding_dim)

    # ------------------------------------------------------------------ core API
    def embed(self, aligned_faces: np.ndarray) -> np.ndarray:
        """Embeddings of aligned 112x112 BGR uint8 faces: (N,112,112,3) -> (N, D), or one (112,112,3) -> (D,).

        The answer has the question's shape: one face gives one embedding, a batch (of one, too) a batch. The
        backends' `check_faces` takes batches only (nothing there would undo a promotion); the faces are checked there,
        once, after a single face is made a batch of one here.
        """
        single = isinstance(aligned_faces, np.ndarray) and aligned_faces.ndim == 3
        faces = check_faces(aligned_faces[None] if single else aligned_faces)
        self._check_open()
        emb = self._infer(faces)
        return emb[0] if single else emb

    def detect(self, frame: np.ndarray) -> List[Detection]:
        """Faces in a BGR frame (largest first), without recognition."""
        with self._find_lock, self._lock:
            self._check_open()
            return self.detector.detect(frame)

    def identify(self, frame: np.ndarray, tracker: Optional[FaceTracker] = None) -> List[Recognition]:
        """Recognise every face in one BGR uint8 frame (largest face first).

        Faces whose best gallery score is below `threshold` (and all faces, when the gallery is empty) get
        `name=None`. Per-stage times of this call are left in `last_timings`.
        tracker: None for an independent photo; a `FaceTracker` for the next frame of the video it follows (faces
        get its track ids, a track is recognised only when needed and named by its vote). `VideoLoop` passes one.
        `recognise(locate(frame, tracker), tracker)`.
        """
        return self.recognise(self.locate(frame, tracker), tracker)

    def locate(self, frame: np.ndarray, tracker: Optional[FaceTracker] = None) -> LocatedFrame:
        """The first stage of `identify`: the faces of a BGR uint8 frame, found by the full detection pass (a still,
        or a frame the tracker's schedule gives one) or near the faces followed, and associated with the tracks of
        `tracker` (`FaceTracker.associate`). Pass the answer to `recognise`, frames in the order they were located;
        the next frame may be located before this one is recognised."""
        frame = check_bgr_frame(frame)
        with self._find_lock:
            self._check_open()
            t0 = time.perf_counter()
            if tracker is None or tracker.full_pass_due():
                detections = self.detector.find(frame)  # the full pass: every scale, the whole frame
            else:  # between full passes (TrackingOptions.detect_every): only near the faces followed
                detections = self.detector.find_near(frame, tracker.expected_boxes())
            t1 = time.perf_counter()
            association = tracker.associate(detections) if tracker is not None else None
        return LocatedFrame(frame, tuple(detections), association,
                            {"detection": t1 - t0, "tracking": time.perf_counter() - t1})

    def recognise(self, located: LocatedFrame, tracker: Optional[FaceTracker] = None) -> List[Recognition]:
        """The second stage of `identify`: align, embed and match the faces `locate` found (with `tracker`, the one
        it was located with: only the tracks that need it, named by their vote). Per-stage times of both stages are
        left in `last_timings`."""
        if (tracker is None) != (located.association is None):
            raise InputError("recognise: pass the tracker the frame was located with (None for a still)")
        with self._lock:
            self._check_open()
            recognitions, timings = self._analyse(located, tracker)
        self.last_timings = timings
        return recognitions

    def enroll(self, name: str, images: Union[ImageLike, Sequence[ImageLike]], *,
               skip_failed: bool = False, masked: bool = False) -> EnrollResult:
        """Add a person to the gallery from one or more photos (paths or BGR arrays) or frames.

        The largest face of each image is detected, aligned and embedded (all in one backend call); each becomes
        one template of `name`, and each clean photo `options.masked_templates` synthetic masked templates (tagged
        masked). `masked=True`: the photos show the person wearing a mask; their templates are tagged masked (no
        synthetic masks are drawn on them), and the person must already have a clean template (InputError
        otherwise). An image that cannot be read or has no face raises ImageReadError / NoFaceError naming it,
        unless `skip_failed=True` (then it is skipped, logged and listed in `EnrollResult.skipped`).
        The gallery is changed in memory; call `save_gallery()` (or `gallery.save()`) to persist it.
        """
        name = check_identity_name(name)  # before any work: a bad name fails fast
        if not isinstance(masked, (bool, np.bool_)):
            raise InputError(f"masked must be True (the photos show a masked face) or False, got {masked!r}")
        items = _as_image_list(images)
        if not items:
            raise InputError(f"no images given to enrol {name!r}")
        faces: List[np.ndarray] = []
        tags: List[bool] = []
        skipped: List[Tuple[str, str]] = []
        for i, item in enumerate(items):
            label = describe(item, i)
            try:
                frame, face = self._largest_face(item, label)
            except (ImageReadError, NoFaceError, InputError) as exc:
                if not skip_failed:
                    raise
                log.warning("enrol %s: skipping %s", name, exc)
                skipped.append((label, str(exc)))
                continue
            faces.append(align_face(frame, face.keypoints))
            views = [] if masked else self._masked_views(frame, face, f"{name}/{i}")
            faces += views
            tags += [bool(masked)] + [True] * len(views)
        if not faces:
            raise NoFaceError(f"none of the {len(items)} image(s) given for {name!r} has a usable face; "
                              "use photos where the face is clearly visible")
        embeddings = self._infer(np.stack(faces))
        total = self._gallery.add(name, embeddings, masked=tags)
        self.thresholds.size.reset()
        log.info("enrolled %s: %d template(s) added (%d masked), %d skipped", name, len(faces), sum(tags),
                 len(skipped))
        return EnrollResult(name=name, added=len(faces), templates=total, skipped=tuple(skipped), masked=sum(tags))

    def _masked_views(self, frame: np.ndarray, face: Detection, key: str) -> List[np.ndarray]:
        """`options.masked_templates` synthetic masked crops of an enrolment face (none by default)."""
        if self.options.masked_templates <= 0:
            return []
        with self._find_lock, self._lock:  # MaskedViews runs the whole detector
            self._check_open()
            if self._masked is None:
                from .masks.templates import MaskedViews  # lazy: Face Mesh is built on first use

                self._masked = MaskedViews(self.detector, self.options.masked_templates)
            return self._masked(frame, face, key)

    def verify(self, image_a: ImageLike, image_b: ImageLike) -> VerifyResult:
        """Are the (largest) faces of two images the same person? Returns `(same, score)`, score = cosine similarity,
        judged at the threshold of a one-template gallery. NoFaceError / ImageReadError name the image at fault."""
        faces = [self._largest_aligned_face(img, describe(img, i)) for i, img in enumerate((image_a, image_b))]
        emb = self._infer(np.stack(faces))
        score = float(np.dot(emb[0], emb[1]))
        return VerifyResult(same=score >= self.verify_threshold, score=score)

    def save_gallery(self, path: Optional[Union[str, os.PathLike]] = None) -> Path:
        """Save the gallery (atomically) to `path` or to where it was loaded from."""
        return self._gallery.save(path)

    def close(self) -> None:
        """Release the detector (and a gallery opened here). Safe to call twice. Afterwards `identify`, `enroll`,
        `verify`, `detect` and `embed` raise ClosedError."""
        with self._find_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            self.thresholds.close()
            self.detector.close()
            if self._masked is not None:
                self._masked.close()
            if self._opened_gallery is not None:
                self._opened_gallery.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _attach(self, gallery: GalleryLike) -> GalleryBase:
        opened = isinstance(gallery, (str, os.PathLike))
        if gallery is None:
            gallery = Gallery()
        elif opened:
            gallery = open_gallery(gallery)
        elif not isinstance(gallery, GalleryBase):
            raise InputError(f"gallery must be a Gallery, a path, a gallery URL or None, got {type(gallery).__name__}")
        try:
            gallery.bind(self.sidecar.embedding_space, int(self.sidecar.embedding_dim), self.sidecar.name)
        except BaseException:
            if opened:
                gallery.close()
            raise
        old = getattr(self, "_opened_gallery", None)
        if old is not None:
            old.close()
        self._opened_gallery = gallery if opened else None  # closed by close(), or when another one is attached
        return gallery

    def _check_open(self) -> None:
        """ClosedError once close() was called."""
        if self._closed:
            raise ClosedError(_CLOSED_MESSAGE)

    def _infer(self, faces: np.ndarray) -> np.ndarray:
        if faces.shape[0] == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        with self._lock:
            if self._closed:
                raise ClosedError(_CLOSED_MESSAGE)
            emb, _ = self.backend.infer(np.ascontiguousarray(faces))
        return np.asarray(emb, dtype=np.float32)

    def _largest_aligned_face(self, image: ImageLike, label: str) -> np.ndarray:
        frame, face = self._largest_face(image, label)
        return align_face(frame, face.keypoints)

    def _largest_face(self, image: ImageLike, label: str) -> Tuple[np.ndarray, Detection]:
        """(the image as a BGR frame, its largest face); ImageReadError / NoFaceError naming `label`."""
        self._check_open()
        try:
            frame = load_image(image, self.options.max_image_pixels)
        except InputError as exc:
            raise InputError(f"{label}: {exc}") from exc
        with self._find_lock, self._lock:
            self._check_open()
            detections = self.detector.detect(frame)
        if not detections:
            raise NoFaceError(f"no face found in {label}; use a photo where the face is clearly visible "
                              "and at least ~24 px wide (~64 px wearing a mask)")
        return frame, detections[0]

    def _analyse(self, located: LocatedFrame, tracker: Optional[FaceTracker]
                 ) -> Tuple[List[Recognition], Dict[str, float]]:
        t1 = time.perf_counter()
        frame, detections = located.frame, list(located.detections)
        if located.association is not None:
            tracker.settle(located.association)
            track_ids: List[Optional[int]] = list(located.association.track_ids)
        else:
            track_ids = [None] * len(detections)
        todo = [i for i, (det, tid) in enumerate(zip(detections, track_ids))
                if tracker is None or tracker.needs_recognition(tid, det)]
        self.last_faces_embedded = len(todo)
        t2 = time.perf_counter()
        # keypoints to align from (BlazeFace's on YuNet's faces) only for the faces recognised in this frame
        for i, det in zip(todo, self.detector.refine_keypoints(frame, [detections[i] for i in todo])):
            detections[i] = det
        aligned = (np.stack([align_face(frame, detections[i].keypoints) for i in todo]) if todo
                   else np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), dtype=np.uint8))
        t3 = time.perf_counter()
        embeddings = self._infer(aligned)
        embeddings.setflags(write=False)
        mask_scores = self.mask_flag.scores(aligned) if self.mask_flag is not None else [None] * len(aligned)
        flags = None if self.mask_flag is None else self.mask_flag.is_masked(mask_scores)
        t4 = time.perf_counter()
        candidates = self._gallery.search(embeddings, top_k=self.options.top_k, masked=flags,
                                          fusion=self.thresholds.fusion) if todo else []
        if todo and not any(candidates) and not self._warned_empty:  # only an empty gallery matches no one
            log.warning("the gallery is empty: every face is reported as unknown (name=None); "
                        "enrol people with Recognizer.enroll or `g2d enroll`")
            self._warned_empty = True
        fresh = dict(zip(todo, zip(embeddings, candidates, mask_scores)))
        with self.thresholds.size.held():  # the gallery is counted once per frame for the open-set threshold
            results = [self._recognition(det, tid, fresh.get(i), tracker)
                       for i, (det, tid) in enumerate(zip(detections, track_ids))]
        t5 = time.perf_counter()
        return results, {"detection": located.timings["detection"],
                         "tracking": located.timings["tracking"] + t2 - t1, "alignment": t3 - t2,
                         "inference": t4 - t3, "matching": t5 - t4}

    def _recognition(self, det: Detection, track_id: Optional[int], fresh: Optional[tuple],
                     tracker: Optional[FaceTracker]) -> Recognition:
        """The record of one face: recognised in this frame (`fresh` = (embedding, matches, mask score)), or its
        track's identity reused; with tracking, name and score are the track's vote (see `g2d_edge.video.tracking`)."""
        decision: Optional[ThresholdDecision] = None
        if fresh is not None:
            embedding, matches, mask_score = fresh
            best = matches[0] if matches else None
            decision = self.decision(None if mask_score is None else
                                     "masked" if self.mask_flag.is_masked(mask_score) else "clean")
            vote = Vote(best.name if best is not None and best.score >= decision.threshold else None,
                        best.score if best is not None else None)
            if tracker is not None:
                vote = tracker.record(track_id, det, vote, embedding, mask_score, tuple(matches))
            matches = tuple(matches)
        else:
            state = tracker.states[track_id]
            vote, embedding, mask_score, matches = state.identity(), state.embedding, state.mask_score, state.matches
        box = np.array(det.box, dtype=np.float32)
        kps = np.array(det.keypoints, dtype=np.float32)
        box.setflags(write=False)
        kps.setflags(write=False)
        return Recognition(box=box, keypoints=kps, det_score=float(det.score), embedding=embedding, name=vote.name,
                           score=vote.score, matches=matches, track_id=track_id,
                           threshold=None if decision is None else decision.threshold,
                           fpir=None if decision is None else decision.fpir,
                           masked=None if mask_score is None else bool(self.mask_flag.is_masked(mask_score)),
                           mask_score=None if mask_score is None else float(mask_score))


def _as_image_list(images: Union[ImageLike, Sequence[ImageLike]]) -> List[ImageLike]:
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        return [images]
    try:
        return list(images)
    except TypeError:
        raise InputError(f"images must be a path, a BGR array or a list of them, got {type(images).__name__}") \
            from None
