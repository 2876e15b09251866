"""What every face detector returns (`Detection`) and the protocol a detector implements (`FrameDetector`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Protocol

import numpy as np

#: Names of BlazeFace's 6 keypoints, in the order `Detection.keypoints` holds them.
KEYPOINT_NAMES_6 = ("eye_left_in_image", "eye_right_in_image", "nose_tip", "mouth_center", "ear_left_in_image",
                    "ear_right_in_image")
#: Names of YuNet's 5 keypoints, in the order `Detection.keypoints` holds them (image-left first on an upright face).
KEYPOINT_NAMES_5 = ("eye_left_in_image", "eye_right_in_image", "nose_tip", "mouth_left_in_image",
                    "mouth_right_in_image")


@dataclass(frozen=True)
class Detection:
    """One face: box (x1, y1, x2, y2) and keypoints in frame pixels, and the detector score.

    keypoints: (6, 2) from BlazeFace (see KEYPOINT_NAMES_6) or (5, 2) from YuNet (see KEYPOINT_NAMES_5); the
    shared aligner (`g2d_edge.align`) takes either.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


class FrameDetector(Protocol):
    """One face detector network: finds faces in a whole BGR image in one pass.

    `input_side` is the side of the square network input every image is resized to (BlazeFace), or None when the
    network runs at the image's own size (YuNet): it tells the every-scale mode whether to cut tiles or to resize
    the whole frame. `default_confidence` is the score threshold used when `DetectorOptions.min_confidence` is None.
    """

    name: str
    input_side: Optional[int]
    default_confidence: float

    def detect(self, image: np.ndarray) -> List[Detection]:
        """Faces in an HxWx3 uint8 BGR image, in its pixels, unfiltered and unsorted."""
        ...

    def close(self) -> None:
        """Release the network."""
        ...
