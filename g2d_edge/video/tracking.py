"""Track, then recognise: faces keep a track id between video frames, and a track is recognised only when needed.

ByteTrack (Zhang et al., ECCV 2022) from `supervision` (MIT) associates each frame's detections with the tracks of the
previous frames. `supervision` 0.30 is the last release that carries it and runs beside `mediapipe==0.10.21`
(its successor, the `trackers` package, needs numpy >= 2 and `opencv-python`, which mediapipe 0.10.21 excludes), so
it is pinned; its deprecation notice is silenced here.

A track is recognised (aligned, embedded, searched) when it is new, every `recognise_every` frames, and whenever
its face becomes clearly better than the best view recognised so far (`better_face_ratio` x the quality, quality =
box area x detector score). In between, the track's identity is reused. A track's identity is a vote over its
last `vote_window` recognitions (each votes for its name, weighted by its score; unknown counts as a name), so one
bad frame does not flip a name.

Detection is scheduled too (the idea behind DeepStream's `interval`): the full detection pass (every scale, the
whole frame) runs on every `detect_every`-th frame; on the frames in between the detector looks only near the faces
being followed (`FaceDetector.find_near`: a crop around each face's predicted box, scaled so the face is ~80 px),
which keeps their boxes and keypoints as accurate as a full pass at a fraction of its cost. A face that enters is
found at the next full pass: at most `detect_every - 1` frames after it appears (and it is named in that frame).
Still images always get the full pass.

The tracker has two sides, so that `VideoLoop` can overlap them on two threads (`VideoOptions.overlap`): where the
faces are (`associate`: ByteTrack, the expected boxes, the detection schedule; frame t+1 may be associated while
frame t is still being recognised) and what they are (`settle`, `needs_recognition`, `record`: the recognition
bookkeeping, frame by frame in order). `update` is both at once. Each side is used by one thread at a time; the
results are the same as in one thread, frame for frame.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Deque, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from ..detectors.base import Detection
from ..errors import InputError, check_fields, option

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingOptions:
    """How faces are tracked between frames and how often a track is recognised again.

    recognise_every: frames between two recognitions of the same track (1: every frame).
    better_face_ratio: recognise again as soon as a face's quality exceeds this multiple of the best recognised one.
    vote_window: how many of a track's latest recognitions vote for its identity.
    max_lost_frames: frames a track survives without a detection (ByteTrack's lost-track buffer).
    min_match_iou: ByteTrack's matching threshold (1 - IoU cost); lower keeps tracks through faster motion.
    activation_score: detector score from which a detection can start a new track.
    frame_rate: the video's frame rate (ByteTrack scales its buffer with it).
    detect_every: run the full detection pass on every this-many-th frame, and between them only look near the
        faces being followed (1: the full pass on every frame). A new face waits at most `detect_every - 1` frames
        for a full pass: 4 frames (133 ms at 30 FPS) with the default 5.
    """

    recognise_every: int = option(20, low=1, high=100_000)
    better_face_ratio: float = option(1.5, above=1.0, high=1000.0)
    vote_window: int = option(5, low=1, high=1000)
    max_lost_frames: int = option(30, low=1, high=100_000)
    min_match_iou: float = option(0.8, low=0.0, high=1.0)
    activation_score: float = option(0.25, low=0.0, high=1.0)
    frame_rate: int = option(30, low=1, high=1000)
    detect_every: int = option(5, low=1, high=10_000)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class Vote:
    """One recognition of a track: the best gallery name (None: unknown) and its score."""

    name: Optional[str]
    score: Optional[float]


@dataclass
class TrackState:
    """What is known about one track."""

    last_recognised: int = -(10 ** 9)
    best_quality: float = 0.0
    votes: Deque[Vote] = field(default_factory=deque)
    embedding: Optional[np.ndarray] = None
    mask_score: Optional[float] = None
    matches: tuple = ()

    def identity(self) -> Vote:
        """The vote's winner: the name with the largest summed score (unknown counts as a name), with its mean
        score."""
        if not self.votes:
            return Vote(None, None)
        weight: Counter = Counter()
        for v in self.votes:
            weight[v.name] += max(float(v.score or 0.0), 1e-6)
        name = max(weight, key=lambda n: (weight[n], n is not None))
        scores = [v.score for v in self.votes if v.name == name and v.score is not None]
        return Vote(name, float(np.mean(scores)) if scores else None)


def face_quality(detection: Detection) -> float:
    """Box area x detector score: a bigger, surer face is a better view to recognise."""
    x1, y1, x2, y2 = (float(v) for v in detection.box)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1) * float(detection.score)


@dataclass(frozen=True)
class Association:
    """One frame's detections associated with the tracks (`FaceTracker.associate`): the frame's index, each
    detection's track id (None: not (yet) tracked) and the tracks ByteTrack still keeps after this frame."""

    frame_index: int
    track_ids: Tuple[Optional[int], ...]
    alive: FrozenSet[int]


class FaceTracker:
    """ByteTrack over face detections, with per-track recognition bookkeeping. One instance per video stream."""

    def __init__(self, options: Optional[TrackingOptions] = None) -> None:
        self.options = options or TrackingOptions()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "ByteTrack was deprecated since v0.28.0": see above
            import supervision as sv

            self._sv = sv
            self._tracker = sv.ByteTrack(track_activation_threshold=self.options.activation_score,
                                         lost_track_buffer=self.options.max_lost_frames,
                                         minimum_matching_threshold=self.options.min_match_iou,
                                         frame_rate=self.options.frame_rate, minimum_consecutive_frames=1)
        self.states: Dict[int, TrackState] = {}
        #: the last frame associated (`associate`)
        self.frame_index = -1
        #: the last frame settled (`settle`): the frame whose faces `needs_recognition` and `record` are about
        self.recognition_index = -1
        #: where faces were last seen: track id -> (box, its motion per frame, frame index); plus the boxes of the
        #: last frame's faces that have no track yet (ByteTrack confirms a new track on its second frame)
        self._seen: Dict[int, Tuple[np.ndarray, np.ndarray, int]] = {}
        self._untracked: List[np.ndarray] = []

    def full_pass_due(self) -> bool:
        """Whether the next frame needs the full detection pass (every `detect_every`-th frame, the first one
        included); else `expected_boxes()` tells where to look."""
        return (self.frame_index + 1) % self.options.detect_every == 0

    def expected_boxes(self) -> List[np.ndarray]:
        """Where the faces followed are expected in the next frame: each track seen in the last `detect_every`
        frames at its last box moved on by its motion per frame, and the last frame's untracked faces."""
        boxes = [box + motion * (self.frame_index + 1 - last) for box, motion, last in self._seen.values()]
        return boxes + list(self._untracked)

    def update(self, detections: Sequence[Detection]) -> List[Optional[int]]:
        """Advance one frame; the track id of each detection (None: not (yet) tracked, e.g. a low score).
        `associate` then `settle`."""
        association = self.associate(detections)
        self.settle(association)
        return list(association.track_ids)

    def associate(self, detections: Sequence[Detection]) -> Association:
        """Associate the next frame's detections with the tracks (ByteTrack) and remember where the faces are; the
        recognition bookkeeping waits for `settle` with the answer."""
        self.frame_index += 1
        ids: List[Optional[int]] = [None] * len(detections)
        if detections:
            boxes = np.array([d.box for d in detections], dtype=np.float32).reshape(-1, 4)
            scores = np.array([d.score for d in detections], dtype=np.float32)
            found = self._sv.Detections(xyxy=boxes, confidence=scores, data={"index": np.arange(len(detections))})
        else:
            found = self._sv.Detections.empty()
        tracked = self._tracker.update_with_detections(found)
        if len(tracked):
            for index, track_id in zip(tracked.data["index"], tracked.tracker_id):
                ids[int(index)] = int(track_id)
        self._remember(detections, ids)
        alive = frozenset(t.external_track_id for t in self._tracker.tracked_tracks + self._tracker.lost_tracks)
        return Association(self.frame_index, tuple(ids), alive)

    def settle(self, association: Association) -> None:
        """Make `association`'s frame the one recognised now (frames in order): drop the state of tracks ByteTrack
        no longer keeps (gone for longer than its lost-track buffer)."""
        if association.frame_index != self.recognition_index + 1:
            raise InputError(f"FaceTracker.settle: frame {association.frame_index} after frame "
                             f"{self.recognition_index}; settle every associated frame once, in order")
        self.recognition_index = association.frame_index
        for track_id in [t for t in self.states if t not in association.alive]:
            del self.states[track_id]

    def _remember(self, detections: Sequence[Detection], ids: List[Optional[int]]) -> None:
        """Update where faces were seen (for `expected_boxes`)."""
        for det, track_id in zip(detections, ids):
            if track_id is None:
                continue
            box = np.asarray(det.box, np.float32)
            old = self._seen.get(track_id)
            motion = (box - old[0]) / (self.frame_index - old[2]) if old is not None else np.zeros(4, np.float32)
            self._seen[track_id] = (box, motion, self.frame_index)
        self._untracked = [np.asarray(d.box, np.float32) for d, t in zip(detections, ids) if t is None]
        horizon = self.frame_index - self.options.detect_every
        self._seen = {t: seen for t, seen in self._seen.items() if seen[2] > horizon}

    def needs_recognition(self, track_id: Optional[int], detection: Detection) -> bool:
        """Whether this face must be recognised in this frame (else the track's identity is reused)."""
        if track_id is None or track_id not in self.states:
            return True
        state = self.states[track_id]
        if self.recognition_index - state.last_recognised >= self.options.recognise_every:
            return True
        return face_quality(detection) > self.options.better_face_ratio * state.best_quality

    def record(self, track_id: Optional[int], detection: Detection, vote: Vote, embedding: np.ndarray,
               mask_score: Optional[float], matches: tuple) -> Vote:
        """Add a recognition of `track_id` made in this frame; returns the track's identity after the vote."""
        if track_id is None:
            return vote
        state = self.states.setdefault(track_id, TrackState(votes=deque(maxlen=self.options.vote_window)))
        state.last_recognised = self.recognition_index
        state.best_quality = max(state.best_quality, face_quality(detection))
        state.votes.append(vote)
        state.embedding, state.mask_score, state.matches = embedding, mask_score, matches
        return state.identity()
