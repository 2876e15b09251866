"""Drawing results on frames, kept apart from the data (as supervision does): `annotate` returns a new image."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import cv2
import numpy as np

from .errors import check_fields, option
from .io import check_bgr_frame

Color = Tuple[int, int, int]


@dataclass(frozen=True)
class DrawOptions:
    """Colours (BGR), line thickness, text size and what to show."""

    known_color: Color = option((60, 200, 60), low=0, high=255)
    unknown_color: Color = option((40, 40, 230), low=0, high=255)
    text_color: Color = option((255, 255, 255), low=0, high=255)
    thickness: int = option(2, low=1, high=100)
    font_scale: float = option(0.5, above=0.0, high=100.0)
    show_score: bool = True
    show_keypoints: bool = False
    show_mask: bool = True  #: append "[mask]" to the label of a face flagged as masked
    unknown_label: str = "unknown"

    def __post_init__(self) -> None:
        check_fields(self)


def annotate(frame: np.ndarray, recognitions: Iterable, fps: Optional[float] = None,
             options: Optional[DrawOptions] = None) -> np.ndarray:
    """A copy of `frame` with a box, name and score per recognition (and the FPS in the corner if given).

    `recognitions` are `Recognition`s (anything with `box`, `name`, `score`, `keypoints` works; `masked` adds a
    "[mask]" tag).
    Known people are drawn in green, unknown faces in red. The input frame is not modified.
    """
    opts = options or DrawOptions()
    out = check_bgr_frame(frame).copy()
    for rec in recognitions:
        known = getattr(rec, "name", None) is not None
        color = opts.known_color if known else opts.unknown_color
        x1, y1, x2, y2 = (int(round(float(v))) for v in rec.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, opts.thickness, cv2.LINE_AA)
        label = rec.name if known else opts.unknown_label
        score = getattr(rec, "score", None)
        if opts.show_score and score is not None:
            label = f"{label} {score:.2f}"
        if opts.show_mask and getattr(rec, "masked", None):
            label = f"{label} [mask]"
        _label(out, label, (x1, y1), color, opts)
        if opts.show_keypoints:
            for x, y in np.asarray(rec.keypoints):
                cv2.circle(out, (int(round(x)), int(round(y))), 2, color, -1, cv2.LINE_AA)
    if fps is not None:
        _label(out, f"{fps:.1f} FPS", (4, 4), (30, 30, 30), opts, below=True)
    return out


def _label(image: np.ndarray, text: str, corner: Tuple[int, int], color: Color, opts: DrawOptions,
           below: bool = False) -> None:
    """A filled text box above (or below) `corner`, kept inside the image."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, opts.font_scale, 1)
    h, w = image.shape[:2]
    x = min(max(corner[0], 0), max(w - tw - 4, 0))
    y_top = corner[1] if below else corner[1] - th - base - 4
    if y_top < 0:
        y_top = corner[1] if not below else 0
    y_top = min(max(y_top, 0), max(h - th - base - 4, 0))
    cv2.rectangle(image, (x, y_top), (x + tw + 4, y_top + th + base + 4), color, -1)
    cv2.putText(image, text, (x + 2, y_top + th + 2), font, opts.font_scale, opts.text_color, 1, cv2.LINE_AA)
