"""What a `Recognizer` returns: `Recognition` (one face), `VerifyResult`, `EnrollResult`, and `FrameResult` (the faces
of one video or stream frame, what `VideoLoop` and `FrameStream` give); plain immutable records, separate from the
drawing (`g2d_edge.draw`) and the JSON they turn into (`to_dict`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np

from .gallery.protocol import Match


@dataclass(frozen=True, eq=False)
class Recognition:
    """One face found in a frame (an immutable record, like insightface's `Face`).

    box: (4,) float32 x1, y1, x2, y2 in frame pixels. keypoints: the keypoints the face was aligned from, float32:
    (6, 2) BlazeFace keypoints (eyes, nose tip, mouth centre, ears; `g2d_edge.detectors.KEYPOINT_NAMES_6`; the default
    front end gives these for YuNet's faces too) or (5, 2) YuNet keypoints (eyes, nose tip, mouth corners;
    `KEYPOINT_NAMES_5`). det_score: detector confidence.
    embedding: (D,) float32 unit-norm face embedding. name: best gallery identity if its score reaches the
    threshold, else None (unknown). score: cosine similarity to the best gallery identity as the model's search
    scores identities (its calibration's fusion: the fused template for the default model, else the best template;
    reported even when below the threshold), None when the gallery is empty. matches: the `top_k` best (name, score)
    candidates.
    masked: whether the face wears a mask (`g2d_edge.masks.flag`); mask_score: the classifier's probability of it
    (both None when `RecognizerOptions.mask_flag` is off). track_id: the face's track in a video (None: not
    tracked; see `RecognizerOptions.track`). threshold: the cosine this face was named at; fpir: the false-positive
    identification rate (share of strangers named) that threshold was derived for from the gallery's size
    (`g2d_edge.openset`; None when the threshold was set by hand or the model has no open-set calibration); both None
    for a tracked face not recognised in this frame. Arrays are read-only.
    """

    box: np.ndarray
    keypoints: np.ndarray
    det_score: float
    embedding: np.ndarray
    name: Optional[str] = None
    score: Optional[float] = None
    matches: Tuple[Match, ...] = ()
    masked: Optional[bool] = None
    mask_score: Optional[float] = None
    track_id: Optional[int] = None
    threshold: Optional[float] = None
    fpir: Optional[float] = None

    @property
    def is_known(self) -> bool:
        """True when the face was matched to an enrolled identity."""
        return self.name is not None

    def to_dict(self, include_embedding: bool = False) -> Dict[str, Any]:
        """JSON-ready dict (boxes and keypoints as lists of floats)."""
        out: Dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
            "det_score": round(float(self.det_score), 4),
            "name": self.name,
            "score": None if self.score is None else round(float(self.score), 4),
            "matches": [{"name": m.name, "score": round(float(m.score), 4)} for m in self.matches],
            "masked": self.masked,
            "mask_score": None if self.mask_score is None else round(float(self.mask_score), 4),
            "track_id": self.track_id,
            "threshold": None if self.threshold is None else round(float(self.threshold), 4),
            "fpir": self.fpir,
        }
        if include_embedding:
            out["embedding"] = [float(v) for v in self.embedding]
        return out


class VerifyResult(NamedTuple):
    """Result of `Recognizer.verify`: unpacks as `(same, score)`."""

    same: bool
    score: float


@dataclass(frozen=True)
class EnrollResult:
    """What `Recognizer.enroll` did: templates added, the identity's template count now, images skipped (with why),
    and how many of the templates added are tagged masked."""

    name: str
    added: int
    templates: int
    skipped: Tuple[Tuple[str, str], ...] = ()
    masked: int = 0


@dataclass(frozen=True, eq=False)
class FrameResult:
    """The faces of one frame, the one per-frame result of the SDK (`VideoLoop`, stream mode's `FrameStream`,
    `g2d serve`): its index in the source, its timestamp (ms), the file it came from (image and folder sources),
    the frame itself (not annotated) and the processing rate so far (frames per second)."""

    index: int
    timestamp_ms: int
    faces: Tuple[Recognition, ...]
    image: np.ndarray
    path: Optional[Path] = None
    fps: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: frame index, timestamp, image file (or None) and every face (`Recognition.to_dict`)."""
        return {"frame": self.index, "timestamp_ms": self.timestamp_ms,
                "image": None if self.path is None else str(self.path), "faces": [f.to_dict() for f in self.faces]}

    def record(self, source: Any, threshold: float, decision: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The JSON record of this frame that `g2d identify --json` prints (one line per frame) and `g2d serve`'s
        `POST /identify` answers: the source, `to_dict()`, the threshold the names were given at and, when given,
        why (`decision`: `ThresholdDecision.to_dict()` of `g2d_edge.openset`)."""
        out = {"source": str(source), **self.to_dict(), "threshold": threshold}
        if decision is not None:
            out["decision"] = decision
        return out
