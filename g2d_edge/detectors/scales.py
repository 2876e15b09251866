"""Which parts of a frame a detector sees, at what size, and how the faces found in them are merged.

A `View` is a window of the frame and the scale it is resized by before detection. One pass (the default) is one
view of the whole frame. The every-scale mode adds views so that small faces in large frames and faces that fill the
frame are both found:

- a detector that runs at the image's own size (YuNet) gets an image pyramid: the whole frame at full resolution
  (small faces; a small frame is upscaled first), then halved again and again (large faces); each level but the
  coarsest leaves the faces that are large at its scale to the coarser levels;
- a detector with a fixed square input (BlazeFace, 128 / 192 px) gets overlapping square tiles, `tile` px and then
  twice, four times ... as large, plus the whole frame: each tile is shrunk to the network input, so a face has to
  be a good part of some tile to be found.

Faces found in several views are merged by non-maximum suppression; a face cut by a tile's inner edge is dropped
(the overlap or a larger tile holds it whole).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .base import Detection, FrameDetector

#: Share of a tile's side within which a face touching an inner tile edge counts as cut.
_EDGE_MARGIN = 0.02
#: A face whose box lies mostly (this share of its area) inside a larger one is a part of the same face.
_CONTAINED = 0.75
#: Pyramid levels other than the coarsest keep faces up to this wide at their own scale: YuNet returns shifted
#: duplicate boxes for faces over ~250 px, and a face this wide at one level is half as wide at the next one.
PYRAMID_MAX_FACE = 192
#: The smallest face (px at a level's own scale) a pyramid level is trusted to find: YuNet's smallest anchors are
#: 10-16 px, but leaving out 1080p's full-resolution level lost faces: recall of the faces >= 32 px fell to 75-80 %
#: with 16 here (min face 32), of those >= 48 px to 89-91 % with 24 (min face 48) (benchmarks/pipeline.py);
#: `pyramid_views` leaves out the finer levels that only add faces below `min_face`.
PYRAMID_SMALLEST_FACE = 32


@dataclass(frozen=True)
class View:
    """A window (x0, y0)-(x1, y1) of the frame, resized by `scale` before detection; `tile`: not the whole frame;
    `max_face`: faces wider than this (frame pixels) are left to another view (0: no limit)."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float = 1.0
    tile: bool = False
    max_face: float = 0.0


def fit_scale(h: int, w: int, min_side: int, max_side: int) -> float:
    """Scale that brings the frame's longer side into [min_side, max_side] (0 leaves that end open); 1 if inside."""
    longer = max(h, w)
    if min_side > 0 and longer < min_side:
        return min_side / longer
    if max_side > 0 and longer > max_side:
        return max_side / longer
    return 1.0


def single_view(h: int, w: int, scale: float = 1.0) -> List[View]:
    """The whole frame once."""
    return [View(0, 0, w, h, scale)]


def pyramid_views(h: int, w: int, finest: int, coarsest: int, largest: int = 0, min_face: float = 0.0,
                  upscale: float = 1.0) -> List[View]:
    """The whole frame at full resolution (upscaled first if its longer side is below `finest`, downscaled if above
    `largest` > 0), then halved again and again until its longer side is at most `coarsest`. Every level but the
    coarsest leaves faces wider than PYRAMID_MAX_FACE (at its scale) to the coarser levels.

    `upscale` > 1: a frame at least `finest` long starts enlarged by this factor (at most to `largest`), so that
    faces too small for the detector at their own size are found on the finest level.

    Sized by need: a fine level is left out while the next coarser one still shows a face `min_face` px wide (in
    frame pixels) at least PYRAMID_SMALLEST_FACE px wide, since it finds those faces there at a quarter of the cost
    (with `min_face` 20, the default `min_face_size`, nothing is left out)."""
    scales = [fit_scale(h, w, finest, largest)]
    if upscale > 1.0 and scales[0] == 1.0:
        scales[0] = min(upscale, largest / max(h, w)) if largest > 0 else upscale
        scales[0] = max(scales[0], 1.0)
    while max(h, w) * scales[-1] > coarsest:
        scales.append(scales[-1] / 2)
    while len(scales) > 1 and min_face * scales[1] >= PYRAMID_SMALLEST_FACE:
        scales.pop(0)
    return [View(0, 0, w, h, s, max_face=PYRAMID_MAX_FACE / s if i + 1 < len(scales) else 0.0)
            for i, s in enumerate(scales)]


def _starts(length: int, window: int, stride: int) -> List[int]:
    """Window starts covering [0, length): evenly spread, first at 0, last ending at `length`."""
    if window >= length:
        return [0]
    n = math.ceil((length - window) / stride) + 1
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


def tile_views(h: int, w: int, tile: int, overlap: float) -> List[View]:
    """Square tiles of `tile`, 2 * `tile`, 4 * `tile` ... px (while two of them fit in the frame's longer side),
    overlapping by `overlap` of their side, then the whole frame."""
    views: List[View] = []
    side = tile
    while 2 * side <= max(h, w):
        tw, th = min(side, w), min(side, h)
        stride = max(1, int(side * (1 - overlap)))
        for y in _starts(h, th, stride):
            for x in _starts(w, tw, stride):
                views.append(View(x, y, x + tw, y + th, 1.0, tile=True))
        side *= 2
    return views + single_view(h, w)


#: Local detection around a tracked face (`local_views`): the crop is scaled so the face is about this wide ...
LOCAL_FACE_PX = 80
#: ... and reaches this share of the face's width beyond its predicted box on every side (the motion it absorbs).
LOCAL_MARGIN = 0.6


def local_views(h: int, w: int, boxes: Sequence[np.ndarray]) -> List[View]:
    """One view per expected face box: the box widened by LOCAL_MARGIN of its width on every side (clipped to the
    frame), scaled so the face is about LOCAL_FACE_PX wide (at most 4x up, 8x down): a small, cheap detector input
    that keeps a tracked face's box and keypoints as accurate as a full pass gives them."""
    views = []
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1, 8.0)
        pad = LOCAL_MARGIN * side
        x0, y0 = max(0, int(x1 - pad)), max(0, int(y1 - pad))
        xe, ye = min(w, int(math.ceil(x2 + pad))), min(h, int(math.ceil(y2 + pad)))
        if xe - x0 < 8 or ye - y0 < 8:
            continue
        views.append(View(x0, y0, xe, ye, min(4.0, max(0.125, LOCAL_FACE_PX / side)), tile=True))
    return views


def _cut_by_inner_edge(det: Detection, view: View, frame_h: int, frame_w: int) -> bool:
    """True when the face touches an edge of the tile that is not an edge of the frame."""
    margin = _EDGE_MARGIN * max(view.x1 - view.x0, view.y1 - view.y0)
    x1, y1, x2, y2 = det.box
    return bool((view.x0 > 0 and x1 <= view.x0 + margin) or (view.y0 > 0 and y1 <= view.y0 + margin)
                or (view.x1 < frame_w and x2 >= view.x1 - margin) or (view.y1 < frame_h and y2 >= view.y1 - margin))


def detect_in_view(detector: FrameDetector, frame: np.ndarray, view: View) -> List[Detection]:
    """Faces the detector finds in one view, in frame pixels."""
    image = frame[view.y0:view.y1, view.x0:view.x1]
    if view.scale != 1.0:
        size = (max(1, round(image.shape[1] * view.scale)), max(1, round(image.shape[0] * view.scale)))
        interp = cv2.INTER_AREA if view.scale < 1.0 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interp)
    sx = (view.x1 - view.x0) / image.shape[1]
    sy = (view.y1 - view.y0) / image.shape[0]
    scale = np.array([sx, sy], np.float32)
    offset = np.array([view.x0, view.y0], np.float32)
    out = []
    for det in detector.detect(image):
        box = (det.box.reshape(2, 2) * scale + offset).reshape(4)
        out.append(Detection(box=box.astype(np.float32), keypoints=(det.keypoints * scale + offset).astype(np.float32),
                             score=det.score))
    return out


def detect_views(detector: FrameDetector, frame: np.ndarray, views: Sequence[View], nms_iou: float) -> List[Detection]:
    """Faces found in every view, cut faces of tiles dropped, merged by `merge_detections`."""
    h, w = frame.shape[:2]
    found: List[Detection] = []
    for view in views:
        dets = detect_in_view(detector, frame, view)
        if view.max_face > 0:
            dets = [d for d in dets if d.box[2] - d.box[0] <= view.max_face]
        if view.tile:
            dets = [d for d in dets if not _cut_by_inner_edge(d, view, h, w)]
        found += dets
    return merge_detections(found, nms_iou)


def box_overlaps(box: np.ndarray, others: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(IoU, share of each other box's area inside `box`) of one box against (N, 4) boxes."""
    ix = np.maximum(0, np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]))
    iy = np.maximum(0, np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]))
    inter = ix * iy
    area = max((box[2] - box[0]) * (box[3] - box[1]), 0.0)
    others_area = np.maximum(others[:, 2] - others[:, 0], 0) * np.maximum(others[:, 3] - others[:, 1], 0)
    return inter / np.maximum(area + others_area - inter, 1e-9), inter / np.maximum(others_area, 1e-9)


def merge_detections(detections: Sequence[Detection], iou: float) -> List[Detection]:
    """Non-maximum suppression, strongest first (a face overlapping a kept one by IoU > `iou` is dropped), then a
    face lying mostly inside a larger kept one (a part of the same face, found at another scale) is dropped.
    Strongest first."""
    if len(detections) < 2:
        return list(detections)
    order = sorted(detections, key=lambda d: -d.score)
    boxes = np.stack([d.box for d in order]).astype(np.float64)
    alive = np.ones(len(order), bool)
    for i in range(len(order)):
        if alive[i] and i + 1 < len(order):
            overlap, _ = box_overlaps(boxes[i], boxes[i + 1:])
            alive[i + 1:] &= overlap <= iou
    kept = np.flatnonzero(alive)
    area = (boxes[kept, 2] - boxes[kept, 0]) * (boxes[kept, 3] - boxes[kept, 1])
    by_size = kept[np.argsort(-area, kind="stable")]
    for k, i in enumerate(by_size):
        if alive[i] and k + 1 < len(by_size):
            _, inside = box_overlaps(boxes[i], boxes[by_size[k + 1:]])
            alive[by_size[k + 1:][inside > _CONTAINED]] = False
    return [order[i] for i in np.flatnonzero(alive)]
