"""Synthetic face masks drawn on faces from facial landmarks (training augmentation and masked benchmarks).

A mask is built in a face-centred frame (origin between the eyes, x along the eye line, y towards the chin, unit =
the distance between the eye centres) from MediaPipe Face Mesh landmarks, mapped back to the image and drawn with
anti-aliased polygon fills:

* ``surgical``: pleated rectangle-ish mask, hems along the edges, ear loops;
* ``n95``: rounded cup with a flange, nose clip, optional exhalation valve, head straps;
* ``kn95``: folded mask, pointed over the nose and under the chin, centre seam, sealed border, ear loops;
* ``cloth``: contoured fabric mask in a random colour, plain or patterned (stripes, checks, dots, noise).

Every style is drawn with the nose covered (top edge on the nose bridge, at a random height) or uncovered (top edge
under the nose tip), with a random reach under the chin, soft shading (curvature, a light direction and the photo's
own low-frequency lighting) and sensor-like grain. Landmarks are pixels of whatever frame the image is in: the
112x112 aligned crop or a raw photo of any size. Without a usable mesh (None or NaN) the mask is placed from a
canonical mesh (median of real aligned faces) mapped through the 5-point ArcFace / 6-point MediaPipe detector
keypoints, or, with no landmarks at all, onto the image taken as an aligned crop.

`MaskSynthesizer.synth` returns the masked image and the binary region of every pixel the mask (or its straps)
touched; pixels outside the region are returned unchanged. Randomness comes only from the given
`np.random.Generator`, so a seed reproduces a mask exactly. About 0.7 ms per 112x112 face on one (busy) CPU core.
"""
from __future__ import annotations

import colorsys
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from g2d_edge.align import ALIGNED_SIZE, keypoints_to_template_points, similarity_transform
from g2d_edge.detect import check_bgr_frame
from g2d_edge.errors import InputError

log = logging.getLogger(__name__)

STYLES = ("surgical", "n95", "kn95", "cloth")
TEXTURES = ("stripes", "checks", "dots", "noise")
MESH_POINTS = 468

# ---------------------------------------------------------------------------------------------------------------
# Face Mesh landmarks used (image-left / image-right pairs are (subject's right, subject's left) on a frontal face).
EYE_L = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid
EYE_R = (263, 362, 386, 374)
BRIDGE = (168, 6, 197, 195, 5, 4, 1)  # between the eyes -> nose tip
SUBNASALE, UPPER_LIP = 2, 0
MOUTH = (13, 14)
SIDE_HIGH, SIDE_MID, SIDE_LOW = (234, 454), (93, 323), (132, 361)  # face oval at cheekbone / nose / mouth height
CHEEK_HIGH, CHEEK_LOW = (119, 348), (101, 330)  # below the eyes
NOSE_SIDE_HIGH, NOSE_SIDE_LOW = (47, 277), (142, 371)  # beside the nose
UNDER_NOSE = ((187, 411), (206, 426), (165, 391), (167, 393))  # cheek -> below the nostrils (nose-uncovered edge)
# Lower face oval, image-left / image-right, cheek -> chin: part of the canonical face below, so that the fallback's
# silhouette (the hull of the landmarks it knows) follows the jaw.
JAW_L = (93, 132, 58, 172, 136, 150, 149, 176, 148)
JAW_R = (323, 361, 288, 397, 365, 379, 378, 400, 377)
CHIN = 152

#: Median Face Mesh landmarks of real faces in the 112x112 ArcFace-aligned frame (4,120 CelebA photos prepared by
#: train.prepare), for the landmarks above: the fallback face when no mesh is available.
CANONICAL_MESH_112: Dict[int, Tuple[float, float]] = {
    0: (55.7, 84.6), 1: (55.4, 74.3), 2: (55.6, 77.3), 4: (55.3, 70.7), 5: (55.3, 65.8), 6: (55.3, 53.7),
    13: (55.7, 87.7), 14: (55.9, 90.3), 33: (30.4, 50.3), 47: (45.7, 60.7), 58: (22.2, 84.4), 93: (18.2, 66.8),
    101: (36.5, 64.6), 119: (37.3, 60.6), 132: (19.6, 75.4), 133: (45.9, 51.5), 136: (29.9, 97.6),
    142: (42.9, 66.7), 145: (38.4, 52.6), 148: (49.2, 111.5), 149: (39.4, 106.2), 150: (35.1, 102.6),
    152: (56.1, 112.2), 159: (37.2, 47.9), 165: (44.4, 80.2), 167: (51.0, 79.7), 168: (55.4, 49.2),
    172: (25.8, 92.0), 176: (43.9, 109.3), 187: (25.6, 75.7), 195: (55.3, 61.7), 197: (55.3, 57.8),
    206: (37.9, 77.4), 234: (17.6, 58.8), 263: (80.7, 49.9), 277: (65.4, 60.6), 288: (90.0, 84.0),
    323: (93.6, 66.3), 330: (74.6, 64.3), 348: (73.8, 60.3), 361: (92.5, 74.9), 362: (65.1, 51.4),
    365: (82.6, 97.4), 371: (68.2, 66.5), 374: (72.7, 52.4), 377: (63.2, 111.4), 378: (73.1, 106.1),
    379: (77.4, 102.5), 386: (73.8, 47.6), 391: (67.0, 80.1), 393: (60.3, 79.6), 397: (86.6, 91.7),
    400: (68.6, 109.1), 411: (86.0, 75.4), 426: (73.5, 77.2), 454: (94.1, 58.4),
}
#: Landmarks that lie on the outline of the lower face in at least 1 % of 2,060 real faces (frontal and turned
#: heads, CelebA): the convex hull of these (plus the landmarks above) is the silhouette the mask's sides follow.
SILHOUETTE = (
    3, 5, 6, 24, 31, 36, 45, 47, 48, 49, 50, 51, 58, 64, 93, 100, 101, 102, 110, 111, 114, 115, 116, 117, 118, 119,
    120, 121, 122, 123, 126, 128, 129, 131, 132, 134, 135, 136, 137, 138, 140, 142, 147, 148, 149, 150, 152, 169, 171,
    172, 174, 176, 177, 187, 192, 195, 196, 197, 198, 205, 209, 213, 214, 215, 217, 219, 220, 227, 228, 229, 230, 231,
    232, 233, 234, 236, 237, 248, 254, 261, 266, 275, 277, 278, 279, 280, 281, 288, 294, 323, 329, 330, 331, 339, 340,
    343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 355, 357, 358, 360, 361, 363, 364, 365, 366, 367, 369, 371, 376,
    377, 378, 379, 394, 396, 397, 399, 400, 401, 411, 412, 416, 419, 420, 425, 429, 433, 434, 435, 437, 439, 440, 447,
    448, 449, 450, 451, 452, 453, 454, 456,
)
_EYES = np.array(EYE_L + EYE_R)
USED_LANDMARKS = np.array(sorted(CANONICAL_MESH_112), dtype=np.int64)
_KNOWN = np.union1d(USED_LANDMARKS, np.array(SILHOUETTE))
_CANONICAL = np.array([CANONICAL_MESH_112[i] for i in USED_LANDMARKS.tolist()], dtype=np.float64)

# Mask colours (BGR) per style; cloth colours are drawn at random.
_PALETTES: Dict[str, Tuple[Tuple[int, int, int], ...]] = {
    "surgical": ((228, 196, 140), (236, 236, 233), (42, 42, 44), (200, 180, 238), (185, 210, 160), (206, 206, 200),
                 (225, 205, 120)),
    "n95": ((228, 228, 225), (214, 228, 236), (198, 200, 200), (48, 48, 50)),
    "kn95": ((236, 236, 236), (42, 42, 44), (192, 192, 190), (200, 185, 240), (230, 200, 150)),
}
_STRAP_COLOURS = ((60, 200, 235), (200, 130, 50), (232, 232, 232), (45, 140, 240), (90, 90, 90))
_SHIFT = 4  # fixed-point bits for sub-pixel cv2 drawing
_ONE = 1 << _SHIFT


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskOptions:
    """What masks look like and how often (all lengths in units of the distance between the eye centres).

    styles / style_probs: which styles to draw and their relative weights (normalised).
    nose_uncovered_prob: chance that the mask is worn under the nose (top edge below the nose tip).
    nose_top_range: where the top edge crosses the nose bridge when the nose is covered, as a fraction of the
        bridge from between the eyes (0, landmark 168) to the nose tip (1, landmark 1).
    below_nose_range: where the top edge runs when the nose is uncovered, as a fraction of the way from the
        base of the nose (landmark 2) to the top of the upper lip (landmark 0).
    chin_range: how far the bottom edge reaches below the chin (negative: stops above it).
    margin_range: how far the sides stand out beyond the face outline.
    texture_prob: chance that a cloth mask carries a pattern (else plain fabric); textures: patterns to pick from.
    strap_prob: chance of drawing ear loops / head straps beside the face.
    valve_prob: chance that an N95 has an exhalation valve.
    shading_range: strength of the curvature and light-direction shading.
    photo_light_range: exponent with which the photo's own (blurred) lighting modulates the mask (0 = ignore it).
    noise_range: standard deviation of the grain added to the mask, in grey levels.
    colour_jitter: standard deviation of the per-channel jitter around a palette colour, in grey levels.
    protect_eyes: never draw over the eyes (a small ellipse around each eye is kept clear).
    """

    styles: Tuple[str, ...] = STYLES
    style_probs: Tuple[float, ...] = (0.3, 0.2, 0.2, 0.3)
    nose_uncovered_prob: float = 0.2
    nose_top_range: Tuple[float, float] = (0.2, 0.55)
    below_nose_range: Tuple[float, float] = (0.15, 0.6)
    chin_range: Tuple[float, float] = (-0.08, 0.25)
    margin_range: Tuple[float, float] = (0.0, 0.1)
    texture_prob: float = 0.75
    textures: Tuple[str, ...] = TEXTURES
    strap_prob: float = 0.7
    valve_prob: float = 0.3
    shading_range: Tuple[float, float] = (0.1, 0.3)
    photo_light_range: Tuple[float, float] = (0.2, 0.6)
    noise_range: Tuple[float, float] = (1.0, 4.0)
    colour_jitter: float = 10.0
    protect_eyes: bool = True

    def __post_init__(self) -> None:
        if not self.styles or len(self.styles) != len(self.style_probs):
            raise InputError(f"MaskOptions.styles and style_probs must be non-empty and of equal length, got "
                             f"{self.styles!r} and {self.style_probs!r}")
        unknown = sorted(set(self.styles) - set(STYLES)) + sorted(set(self.textures) - set(TEXTURES))
        if unknown:
            raise InputError(f"MaskOptions: unknown style/texture {unknown}; styles are {STYLES}, textures {TEXTURES}")
        if min(self.style_probs) < 0 or sum(self.style_probs) <= 0:
            raise InputError(f"MaskOptions.style_probs must be >= 0 with a positive sum, got {self.style_probs!r}")
        for name in ("nose_uncovered_prob", "texture_prob", "strap_prob", "valve_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"MaskOptions.{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        for name in ("nose_top_range", "below_nose_range", "chin_range", "margin_range", "shading_range",
                     "photo_light_range", "noise_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise InputError(f"MaskOptions.{name} must be (low, high) with low <= high, got {(lo, hi)!r}")
        if self.texture_prob > 0 and not self.textures:
            raise InputError("MaskOptions.textures is empty but texture_prob > 0")


@dataclass(frozen=True)
class MaskDraw:
    """The random choices behind one mask (drawn by `MaskSynthesizer.sample`, rendered by `render`)."""

    style: str
    nose_covered: bool
    top: float  # nose_top_range or below_nose_range value
    cover: float  # 0..1: cheek line from just under the eyes (0) to lower (1)
    side: float  # 0..1: height of the side corners, high (0) to low (1)
    chin: float
    margin: float
    colour: Tuple[float, float, float]  # BGR
    colour2: Tuple[float, float, float]  # BGR, pattern colour
    texture: Optional[str]
    straps: bool
    strap_colour: Tuple[float, float, float]
    valve: bool
    shading: float
    light: float  # -1..1, light from the image-left (-1) or image-right (+1)
    photo_light: float
    noise: float


# ---------------------------------------------------------------------------------------------------------------
class _Face:
    """Landmarks in the face frame: origin between the eyes, u along the eye line, v towards the chin."""

    def __init__(self, points: np.ndarray) -> None:
        eyes = points[_EYES].reshape(2, 4, 2)
        self.eye_points = eyes
        eye_l, eye_r = eyes.sum(axis=1) * 0.25
        d = eye_r - eye_l
        self.scale = float(np.hypot(d[0], d[1]))
        ex = d / self.scale
        self.axes = np.array([ex, [-ex[1], ex[0]]])
        self.origin = (eye_l + eye_r) / 2.0
        known = points[_KNOWN]
        known_uv = self.to_uv(known)
        self.uv = np.full((MESH_POINTS, 2), np.nan)
        self.uv[_KNOWN] = known_uv
        # the landmarks whose outline is the face's silhouette (turned heads included); canonical faces have fewer
        self.cloud = known_uv[np.isfinite(known_uv[:, 0])]

    def to_uv(self, xy: np.ndarray) -> np.ndarray:
        return (xy - self.origin) @ self.axes.T / self.scale

    def to_xy(self, uv: np.ndarray) -> np.ndarray:
        return self.origin + (uv * self.scale) @ self.axes


@dataclass
class _Shape:
    """A mask outline and its decorations in face-frame coordinates."""

    outline: np.ndarray  # (K, 2) closed polygon
    top_chain: np.ndarray  # (T, 2) top edge, image-left -> image-right (hem lines)
    bottom_chain: np.ndarray  # (B, 2) bottom edge
    straps: List[np.ndarray]  # open polylines
    top_centre: np.ndarray  # (2,) where the top edge crosses the face's midline (KN95 seam, N95 nose clip)
    v_bottom: float

    @property
    def v_top(self) -> float:
        return float(self.top_centre[1])


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def _chaikin(poly: np.ndarray, iterations: int) -> np.ndarray:
    """Corner-cutting smoothing of an open polyline; the end points stay put."""
    for _ in range(iterations):
        mid = np.empty((2 * len(poly) - 2, 2))
        mid[0::2] = 0.75 * poly[:-1] + 0.25 * poly[1:]
        mid[1::2] = 0.25 * poly[:-1] + 0.75 * poly[1:]
        poly = np.concatenate([poly[:1], mid, poly[-1:]])
    return poly


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    return _BEZIER_W @ np.stack([p0, p1, p2])


_BEZIER_T = np.linspace(0.0, 1.0, 10)
_BEZIER_W = np.stack([(1 - _BEZIER_T) ** 2, 2 * (1 - _BEZIER_T) * _BEZIER_T, _BEZIER_T ** 2], axis=1)
# Top edge anchors with the nose covered: image-left corner, cheek, beside the nose | beside the nose, cheek, corner.
_TOP_HIGH = np.array([SIDE_HIGH[0], CHEEK_HIGH[0], NOSE_SIDE_HIGH[0], NOSE_SIDE_HIGH[1], CHEEK_HIGH[1], SIDE_HIGH[1]])
_TOP_LOW = np.array([SIDE_MID[0], CHEEK_LOW[0], NOSE_SIDE_LOW[0], NOSE_SIDE_LOW[1], CHEEK_LOW[1], SIDE_MID[1]])
_UNDER_NOSE = np.array([p[0] for p in UNDER_NOSE] + [p[1] for p in UNDER_NOSE[::-1]])
_BRIDGE = np.array(BRIDGE)
_THETA = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)  # N95 outline: index 12 = bottom, 36 = top
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)


# ---------------------------------------------------------------------------------------------------------------
def _top_chain(face: _Face, d: MaskDraw, sharp: bool) -> np.ndarray:
    """Top edge from the image-left side corner over (or under) the nose to the image-right corner."""
    uv = face.uv
    if d.nose_covered:
        at = d.top * (len(_BRIDGE) - 1)
        i = min(int(at), len(_BRIDGE) - 2)
        centre = _lerp(uv[_BRIDGE[i]], uv[_BRIDGE[i + 1]], at - i)
        weights = np.array([d.side, d.cover, d.cover, d.cover, d.cover, d.side])[:, None]
        sides = uv[_TOP_HIGH] + (uv[_TOP_LOW] - uv[_TOP_HIGH]) * weights
        if sharp:
            sides = sides[[0, 1, 4, 5]]
    else:
        centre = _lerp(uv[SUBNASALE], uv[UPPER_LIP], d.top)
        side = 0.4 + 0.6 * d.side
        corners = uv[list(SIDE_MID)] + (uv[list(SIDE_LOW)] - uv[list(SIDE_MID)]) * side
        corners[:, 1] = np.maximum(corners[:, 1], centre[1] - 0.18)  # worn low, it runs nearly level to the ears
        sides = np.concatenate([corners[:1], uv[_UNDER_NOSE] + (centre - uv[SUBNASALE]), corners[1:]])
    sides[0, 0] -= d.margin
    sides[-1, 0] += d.margin
    mid = len(sides) // 2
    chain = np.concatenate([sides[:mid], centre[None], sides[mid:]])
    # keep the edge heading outwards from the centre (on a turned head the far-side landmarks can zigzag)
    chain[:mid + 1, 0] = np.minimum.accumulate(chain[mid::-1, 0])[::-1]
    chain[mid:, 0] = np.maximum.accumulate(chain[mid:, 0])
    return chain if sharp else _chaikin(chain, 2)


def _lower_silhouette(face: _Face, top: np.ndarray) -> np.ndarray:
    """Outline of the face below the mask's side corners, image-left -> chin -> image-right (face frame).

    The convex hull of the landmarks rather than the Face Mesh oval: on a turned head the far half of the oval
    projects inside the visible cheek, while the hull follows the silhouette.
    """
    cloud = face.cloud
    low = cloud[cloud[:, 1] > min(top[0, 1], top[-1, 1])]
    fallback = np.stack([top[0], face.uv[CHIN], top[-1]])
    if len(low) < 3:
        return fallback
    hull = cv2.convexHull(low.astype(np.float32))[:, 0].astype(np.float64)
    i_l, i_r = int(np.argmin(hull[:, 0])), int(np.argmax(hull[:, 0]))
    n = len(hull)
    forward = np.roll(hull, -i_l, axis=0)[:(i_r - i_l) % n + 1]
    backward = np.roll(hull[::-1], i_l - n + 1, axis=0)[:(i_l - i_r) % n + 1]
    chain = forward if forward[:, 1].sum() / len(forward) > backward[:, 1].sum() / len(backward) else backward
    keep = np.where(chain[:, 0] < face.uv[CHIN, 0], chain[:, 1] > top[0, 1], chain[:, 1] > top[-1, 1])
    chain = chain[keep]
    return chain if len(chain) >= 2 else fallback


def _densify(poly: np.ndarray, step: float) -> np.ndarray:
    """Insert points so that no segment of the polyline is longer than `step`."""
    delta = np.diff(poly, axis=0)
    counts = np.maximum(np.ceil(np.hypot(delta[:, 0], delta[:, 1]) / step).astype(np.int64), 1)
    seg = np.repeat(np.arange(len(delta)), counts)
    frac = (np.arange(len(seg)) - np.repeat(np.cumsum(counts) - counts, counts) + 1) / np.repeat(counts, counts)
    return np.concatenate([poly[:1], poly[seg] + delta[seg] * frac[:, None]])


def _jaw_chain(face: _Face, d: MaskDraw, top: np.ndarray, apex: Optional[np.ndarray] = None) -> np.ndarray:
    """Bottom edge along the lower face outline (widened by the margin, reaching d.chin under the chin), left -> right.

    With `apex` (KN95) the edge runs in straight lines from the jaw at mouth height to that point under the chin.
    """
    uv = face.uv
    chain = _densify(_lower_silhouette(face, top), 0.12)
    mouth = (uv[MOUTH[0]] + uv[MOUTH[1]]) * 0.5
    out = chain - mouth
    out /= np.maximum(np.hypot(out[:, 0], out[:, 1]), 1e-6)[:, None]
    chain = chain + d.margin * out
    reach = np.clip((chain[:, 1] - mouth[1]) / max(uv[CHIN, 1] - mouth[1], 1e-6), 0.0, 1.0) ** 1.5
    chain[:, 1] += d.chin * reach
    if apex is None:
        return _chaikin(chain, 1)
    bottom = int(np.argmax(chain[:, 1]))
    for lo, hi in ((0, bottom), (bottom + 1, len(chain))):
        part = chain[lo:hi]
        if len(part) == 0:
            continue
        anchor = part[np.argmin(np.abs(part[:, 1] - (mouth[1] + 0.1)))]
        span = anchor[0] - apex[0]
        if abs(span) < 1e-6:
            continue
        line_v = apex[1] + (anchor[1] - apex[1]) * np.clip((part[:, 0] - apex[0]) / span, 0.0, 1.0)
        part[:, 1] = np.maximum(part[:, 1], line_v)
    chain[bottom] = apex
    return chain


def _ear_loops(face: _Face, top: np.ndarray, bottom: np.ndarray) -> List[np.ndarray]:
    """Loops from the top and bottom side corners of the mask round the ear (beside the face outline).

    A side seen at a grazing angle (a turned head, that half under 60 % as wide as the other) gets no loop: its ear
    is hidden behind the face.
    """
    centre = face.uv[CHIN, 0]
    mouth_v = (face.uv[MOUTH[0], 1] + face.uv[MOUTH[1], 1]) * 0.5 + 0.1
    widths = (centre - min(top[0, 0], bottom[:, 0].min()), max(top[-1, 0], bottom[:, 0].max()) - centre)
    loops = []
    for k, sign, end in ((0, -1.0, 0), (1, 1.0, -1)):
        if widths[k] < 0.6 * widths[1 - k]:
            continue
        half = bottom[bottom[:, 0] < centre] if k == 0 else bottom[bottom[:, 0] >= centre]
        if len(half) == 0:
            continue
        upper, lower = top[end], half[np.argmin(np.abs(half[:, 1] - mouth_v))]
        ear = face.uv[SIDE_HIGH[k]]
        reach = centre + sign * (widths[k] + 0.3)
        control = np.array([reach, ear[1] + 0.25])
        loops.append(_bezier(upper, control, lower))
    return loops


def _eye_zones(face: _Face, pad_px: float) -> np.ndarray:
    """(2, 4) per eye: centre u, centre v, half width, half height of the ellipse kept clear (face frame)."""
    eyes = face.eye_points  # (2 eyes, [outer, inner, upper, lower], 2) in pixels
    corner = eyes[:, 1] - eyes[:, 0]
    lids = eyes[:, 3] - eyes[:, 2]
    zones = np.empty((2, 4))
    zones[:, :2] = face.to_uv(eyes.sum(axis=1) * 0.25)
    zones[:, 2] = (np.hypot(corner[:, 0], corner[:, 1]) * 0.65 + pad_px) / face.scale
    zones[:, 3] = np.maximum(np.hypot(lids[:, 0], lids[:, 1]) * 1.1 / face.scale, 0.13) + pad_px / face.scale
    return zones


def _keep_below_eyes(face: _Face, edge: np.ndarray) -> np.ndarray:
    """Move points of a mask edge that would lie on (or above) an eye down to just under it."""
    edge = edge.copy()
    for cu, cv, a, b in _eye_zones(face, 2.0):
        du = (edge[:, 0] - cu) / a
        floor = cv + b * np.sqrt(np.maximum(1.0 - du * du, 0.0))
        low = (np.abs(du) < 1.0) & (edge[:, 1] < floor)
        edge[low, 1] = floor[low]
    return edge


def _chain_shape(face: _Face, d: MaskDraw) -> _Shape:
    """Surgical, KN95 and cloth outlines: a top edge and the jaw line closed into one polygon."""
    sharp = d.style == "kn95"
    top = _top_chain(face, d, sharp)
    apex = None
    if sharp:
        chin = face.uv[CHIN]
        apex = np.array([chin[0], chin[1] + max(d.chin, 0.0) + 0.15])
    centre = top[len(top) // 2].copy()
    bottom = _jaw_chain(face, d, top, apex)
    if sharp:
        top = _densify(top, 0.1)
    top = _keep_below_eyes(face, top)
    outline = np.vstack([top, bottom[::-1]])
    straps = _ear_loops(face, top, bottom) if d.straps else []
    return _Shape(outline, top, bottom, straps, centre, float(bottom[:, 1].max()))


def _cup_shape(face: _Face, d: MaskDraw) -> _Shape:
    """N95: an ellipse from the top edge centre to under the chin, as wide as most of the lower face."""
    uv = face.uv
    top = _top_chain(face, d, sharp=True)
    centre_top = top[len(top) // 2]
    v_bottom = uv[CHIN, 1] + max(d.chin, 0.02)
    v_mid = (centre_top[1] + v_bottom) / 2
    u_mid = (centre_top[0] + uv[CHIN, 0]) / 2
    half_h = (v_bottom - centre_top[1]) / 2
    jaw = _lower_silhouette(face, top)
    jaw_l, jaw_r = jaw[jaw[:, 0] < u_mid], jaw[jaw[:, 0] >= u_mid]
    width = 0.9 + 0.5 * d.margin
    half_l = (u_mid - (jaw_l[:, 0].min() if len(jaw_l) else u_mid - 1.0)) * width
    half_r = ((jaw_r[:, 0].max() if len(jaw_r) else u_mid + 1.0) - u_mid) * width
    # a superellipse: fuller shoulders than an ellipse, more so when pulled down under the nose
    upper = 2.2 if d.nose_covered else 3.0
    power = np.where(_SIN < 0, 2.0 / upper, 2.0 / 2.2)
    u = u_mid + np.where(_COS < 0, half_l, half_r) * np.sign(_COS) * np.abs(_COS) ** power
    v = v_mid + half_h * np.sign(_SIN) * np.abs(_SIN) ** power
    outline = _keep_below_eyes(face, np.stack([u, v], axis=1))
    straps = []
    if d.straps:
        for k, sign in ((0, -1.0), (1, 1.0)):
            half = half_l if sign < 0 else half_r
            for rise, angle in ((-0.55, -0.7), (0.45, 0.6)):
                n = upper if rise < 0 else 2.2
                start = np.array([u_mid + sign * half * (1 - abs(rise) ** n) ** (1 / n), v_mid + half_h * rise])
                end = start + 1.2 * np.array([sign * np.cos(angle), np.sin(angle)])
                straps.append(np.stack([start, end]))
    return _Shape(outline, outline[36:37], outline[12:13], straps, outline[36].copy(), float(v_bottom))


# ---------------------------------------------------------------------------------------------------------------
class _Canvas:
    """A bounding box of the image with the per-pixel face-frame coordinates and the layers being painted."""

    def __init__(self, face: _Face, x0: int, y0: int, x1: int, y1: int) -> None:
        self.face, self.x0, self.y0 = face, x0, y0
        self.h, self.w = y1 - y0, x1 - x0
        ax = (face.axes / face.scale).astype(np.float32)
        xs = np.arange(x0, x1, dtype=np.float32) - np.float32(face.origin[0])
        ys = np.arange(y0, y1, dtype=np.float32) - np.float32(face.origin[1])
        self.u = xs[None, :] * ax[0, 0] + ys[:, None] * ax[0, 1]
        self.v = xs[None, :] * ax[1, 0] + ys[:, None] * ax[1, 1]
        self.alpha = np.zeros((self.h, self.w), np.uint8)
        self.strap_alpha = np.zeros((self.h, self.w), np.uint8)
        self.detail = np.full((self.h, self.w), 128, np.uint8)  # multiplicative shading, 128 = 1.0

    def fixed(self, uv: np.ndarray) -> np.ndarray:
        xy = self.face.to_xy(uv) - (self.x0, self.y0)
        return np.round(xy * _ONE).astype(np.int32)

    def px(self, length: float) -> int:
        """A face-frame length in whole pixels (at least 1)."""
        return max(1, int(round(length * self.face.scale)))

    def line(self, uv: np.ndarray, value: int, width: float) -> None:
        """Draw an open polyline into the detail layer (value 128 = no change, lower = darker)."""
        cv2.polylines(self.detail, [self.fixed(uv)], False, int(value), self.px(width), cv2.LINE_AA, _SHIFT)


def _bbox(face: _Face, shape: _Shape, size: Tuple[int, int]) -> Optional[Tuple[int, int, int, int]]:
    pts = face.to_xy(np.vstack([shape.outline] + shape.straps))
    h, w = size
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _fill_shape(canvas: _Canvas, shape: _Shape) -> None:
    cv2.fillPoly(canvas.alpha, [canvas.fixed(shape.outline)], 255, cv2.LINE_AA, _SHIFT)
    for strap in shape.straps:
        cv2.polylines(canvas.strap_alpha, [canvas.fixed(strap)], False, 255, canvas.px(0.035), cv2.LINE_AA, _SHIFT)


def _clear_eyes(canvas: _Canvas, straps: bool) -> None:
    """Last guard: erase anything drawn over the eyes (the shapes already keep their edges under them)."""
    face = canvas.face
    zones = _eye_zones(face, 1.0)
    centres = face.to_xy(zones[:, :2]) - (canvas.x0, canvas.y0)
    axes_px = zones[:, 2:] * face.scale
    angle = float(np.degrees(np.arctan2(face.axes[0, 1], face.axes[0, 0])))
    layers = (canvas.alpha, canvas.strap_alpha) if straps else (canvas.alpha,)
    for k in range(2):
        if centres[k, 1] + axes_px[k].max() < 0:
            continue  # the mask box starts below this eye
        c = (int(round(centres[k, 0] * _ONE)), int(round(centres[k, 1] * _ONE)))
        axes = (int(round(axes_px[k, 0] * _ONE)), int(round(axes_px[k, 1] * _ONE)))
        for layer in layers:
            cv2.ellipse(layer, c, axes, angle, 0, 360, 0, -1, cv2.LINE_AA, _SHIFT)


# ---------------------------------------------------------------------------------------------------------------
def _band(x: np.ndarray, duty: float, px_per_period: float) -> np.ndarray:
    """Anti-aliased periodic band: 1 inside the first `duty` of every period of x, 0 elsewhere."""
    t = np.abs((x % 1.0) - duty / 2)
    t = np.minimum(t, 1.0 - t)
    return np.clip((duty / 2 - t) * px_per_period + 0.5, 0.0, 1.0)


def _pattern(kind: str, canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Pattern weight in [0, 1] (0 = base colour, 1 = second colour) over the canvas, in face-frame coordinates."""
    angle = rng.uniform(0.0, np.pi)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    a = canvas.u * c + canvas.v * s
    b = canvas.v * c - canvas.u * s
    period = rng.uniform(0.12, 0.35)
    ppp = period * canvas.face.scale
    if kind == "stripes":
        return _band(a / period, rng.uniform(0.25, 0.6), ppp)
    if kind == "checks":
        return 0.5 * (_band(a / period, 0.5, ppp) + _band(b / period, 0.5, ppp))
    if kind == "dots":
        fa = (a / period) % 1.0 - 0.5
        fb = (b / period + 0.5 * (np.floor(a / period) % 2)) % 1.0 - 0.5
        dist = np.sqrt(fa * fa + fb * fb) * ppp
        return np.clip(rng.uniform(0.15, 0.35) * ppp - dist + 0.5, 0.0, 1.0)
    cells = int(rng.integers(3, 9))
    grid = rng.random((cells, cells), dtype=np.float32)
    smooth = cv2.resize(grid, (canvas.w, canvas.h), interpolation=cv2.INTER_CUBIC)
    return np.clip((smooth - 0.5) * rng.uniform(1.5, 5.0) + 0.5, 0.0, 1.0)


#: Edge band (hem, sealed border, flange) per style: (width in eye distances, brightness factor).
_BORDERS = {"surgical": (0.08, 0.88), "kn95": (0.07, 0.92), "n95": (0.1, 1.07), "cloth": (0.04, 0.92)}


def _decorate(canvas: _Canvas, shape: _Shape, d: MaskDraw) -> bool:
    """Style-specific seams, nose clip and valve, drawn into the detail layer; True when anything was drawn."""
    centre_top = shape.top_centre
    if d.style == "kn95" or (d.style == "cloth" and d.texture is None):
        bottom = shape.bottom_chain[np.argmax(shape.bottom_chain[:, 1])]
        canvas.line(np.stack([centre_top, bottom]), 92 if d.style == "kn95" else 108, 0.03)
        return True
    if d.style != "n95":
        return False
    canvas.line(np.stack([centre_top + (-0.2, 0.1), centre_top + (0.2, 0.1)]), 100, 0.05)
    if d.valve:
        side = -1.0 if d.light > 0 else 1.0
        centre = canvas.face.to_xy(centre_top + (side * 0.42, 0.85)) - (canvas.x0, canvas.y0)
        c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
        r = int(round(0.2 * canvas.face.scale * _ONE))
        cv2.circle(canvas.detail, c, r, 96, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas.detail, c, r, 76, canvas.px(0.03), cv2.LINE_AA, _SHIFT)
    return True


@lru_cache(maxsize=64)
def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _border(alpha: np.ndarray, style: str, scale: float) -> np.ndarray:
    """Brightness factor of the band along the mask's edge (1 elsewhere); the frame's edge gets no band."""
    width, factor = _BORDERS[style]
    inner = cv2.erode(alpha, _disc(max(1, int(round(width * scale)))), borderType=cv2.BORDER_REPLICATE)
    band = cv2.subtract(alpha, inner).astype(np.float32)
    band *= np.float32((factor - 1.0) / 255.0)
    band += np.float32(1.0)
    return band


def _shading(canvas: _Canvas, shape: _Shape, d: MaskDraw) -> np.ndarray:
    """Curvature + light direction (+ pleats for surgical, a dome for N95, two lit halves for KN95)."""
    u_lo, u_hi = shape.outline[:, 0].min(), shape.outline[:, 0].max()
    un = (canvas.u - np.float32((u_lo + u_hi) / 2)) * np.float32(2.0 / max(u_hi - u_lo, 1e-3))
    vn = (canvas.v - np.float32(shape.v_top)) * np.float32(1.0 / max(shape.v_bottom - shape.v_top, 1e-3))
    k = np.float32(d.shading)
    shade = 1.0 + k * (np.float32(d.light) * un - un * un - np.float32(0.3) * vn)
    if d.style == "surgical":
        folds = (vn - np.float32(0.08) * un * un - np.float32(0.3)) * np.float32(3.0 / 0.5)
        saw = folds - np.floor(folds)
        edge = np.float32(min(0.5, 6.0 / max(canvas.face.scale * (shape.v_bottom - shape.v_top), 1e-3)))
        saw *= np.float32(1) - np.clip((saw - (np.float32(1) - edge)) / edge, 0, 1)  # anti-aliased fold line
        shade += np.where((folds > 0) & (folds < 3), (saw - np.float32(0.6)) * np.float32(0.16), np.float32(0))
    elif d.style == "n95":
        shade -= np.float32(0.6) * k * np.square(np.float32(2) * vn - np.float32(1))
    elif d.style == "kn95":
        seam = shape.top_centre[0]
        shade += np.where(canvas.u < seam, np.float32(-0.4), np.float32(0.4)) * k * np.float32(d.light)
    return shade


def _photo_light(image_box: np.ndarray, alpha: np.ndarray, scale: float, strength: float) -> np.ndarray:
    """The photo's own low-frequency lighting under the mask, about 1 on average (strength 0: exactly 1)."""
    grey = cv2.cvtColor(image_box, cv2.COLOR_BGR2GRAY)
    k = max(3, int(0.6 * scale) | 1)
    blur = cv2.blur(grey, (k, k)).astype(np.float32)
    ref = (cv2.mean(blur, mask=alpha)[0] if alpha.any() else float(blur.mean())) + 4.0
    blur *= np.float32(strength / ref)
    blur += np.float32(1.0 - strength + 4.0 * strength / ref)
    return np.clip(blur, 0.5, 1.6, out=blur)


def _grain(rng: np.random.Generator, h: int, w: int, std: float) -> np.ndarray:
    """Multiplicative sensor-like grain (a random window of a fixed noise table: cheap and seed-deterministic)."""
    table = _noise_table()
    if h > table.shape[0] or w > table.shape[1]:
        noise = rng.standard_normal((h, w), dtype=np.float32)
    else:
        y = int(rng.integers(table.shape[0] - h + 1))
        x = int(rng.integers(table.shape[1] - w + 1))
        noise = table[y:y + h, x:x + w]
    return noise * np.float32(std) + np.float32(1.0)


@lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    return np.random.default_rng(0x6D61736B).standard_normal((256, 256), dtype=np.float32)


def _colour_layer(d: MaskDraw, canvas: _Canvas, shade: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float32 mask colour: base colour (or pattern) times shading, built per channel (fast)."""
    if d.texture is None:
        return cv2.merge([shade * np.float32(c) for c in d.colour])
    weight = _pattern(d.texture, canvas, rng)
    planes = []
    for c1, c2 in zip(d.colour, d.colour2):
        plane = weight * np.float32(c2 - c1)
        plane += np.float32(c1)
        plane *= shade
        planes.append(plane)
    return cv2.merge(planes)


def _composite(result: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """result += (colour - result) * alpha / 255, in place (alpha 0 leaves a pixel exactly as it was)."""
    a = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR).astype(np.float32)
    a *= np.float32(1 / 255)
    colour -= result
    colour *= a
    result += colour


def _render(image: np.ndarray, face: _Face, shape: _Shape, d: MaskDraw, rng: np.random.Generator,
            protect_eyes: bool) -> Tuple[np.ndarray, np.ndarray]:
    out = image.copy()
    region = np.zeros(image.shape[:2], np.uint8)
    box = _bbox(face, shape, image.shape[:2])
    if box is None:
        return out, region
    x0, y0, x1, y1 = box
    canvas = _Canvas(face, x0, y0, x1, y1)
    _fill_shape(canvas, shape)
    if protect_eyes:
        _clear_eyes(canvas, bool(shape.straps))
    touched = cv2.bitwise_or(canvas.alpha, canvas.strap_alpha)
    if not touched.any():
        return out, region
    src = image[y0:y1, x0:x1]
    light = _photo_light(src, canvas.alpha, face.scale, d.photo_light)
    shade = _shading(canvas, shape, d)
    shade *= light
    shade *= _border(canvas.alpha, d.style, face.scale)
    if _decorate(canvas, shape, d):
        shade *= canvas.detail.astype(np.float32) * np.float32(1 / 128)
    shade *= _grain(rng, canvas.h, canvas.w, d.noise / max(sum(d.colour) / 3.0, 40.0))
    result = src.astype(np.float32)
    _composite(result, _colour_layer(d, canvas, shade, rng), canvas.alpha)
    if shape.straps:
        _composite(result, cv2.merge([light * np.float32(c) for c in d.strap_colour]), canvas.strap_alpha)
    out[y0:y1, x0:x1] = cv2.convertScaleAbs(result)
    region[y0:y1, x0:x1] = touched > 0
    return out, region


# ---------------------------------------------------------------------------------------------------------------
def _check_mesh(mesh: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """(468, 2) float64 mesh in frame pixels, or None when absent/NaN/degenerate; InputError on a wrong shape."""
    if mesh is None:
        return None
    try:
        arr = np.asarray(mesh, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"mesh must be a numeric (468, 2) array of Face Mesh landmarks, got {type(mesh)}") from exc
    if arr.ndim != 2 or arr.shape[0] not in (MESH_POINTS, 478) or arr.shape[1] not in (2, 3):
        raise InputError(f"mesh must be a (468, 2) array of Face Mesh landmarks in image pixels, got shape "
                         f"{arr.shape}; pass mesh=None to place the mask from keypoints")
    arr = arr[:MESH_POINTS, :2]
    if not np.isfinite(arr[USED_LANDMARKS]).all():
        return None
    eyes = (arr[list(EYE_R)].sum(axis=0) - arr[list(EYE_L)].sum(axis=0)) * 0.25
    if np.hypot(eyes[0], eyes[1]) < 1.0:
        log.debug("mesh is degenerate (eyes less than a pixel apart); using the fallback")
        return None
    return arr


def _fallback_points(shape: Tuple[int, ...], keypoints: Optional[np.ndarray]) -> np.ndarray:
    """Canonical landmarks mapped into the frame from keypoints, or onto the image taken as an aligned crop."""
    if keypoints is not None:
        src, template = keypoints_to_template_points(keypoints)
        matrix = similarity_transform(template, src)
    else:
        h, w = shape[:2]
        if h != w:
            raise InputError(f"no usable landmarks for a {w}x{h} image: pass mesh= (Face Mesh, image pixels) or "
                             "keypoints= (5 ArcFace or 6 MediaPipe points); without them the image must be a "
                             "square aligned face crop")
        matrix = np.array([[w / ALIGNED_SIZE, 0.0, 0.0], [0.0, h / ALIGNED_SIZE, 0.0]])
    points = np.full((MESH_POINTS, 2), np.nan)
    points[USED_LANDMARKS] = _CANONICAL @ matrix[:, :2].T + matrix[:, 2]
    return points


def _check_keypoints(keypoints: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if keypoints is None:
        return None
    try:
        kps = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"keypoints must be a numeric (5, 2) or (6, 2) array, got {type(keypoints)}") from exc
    if kps.ndim != 2 or kps.shape[1] != 2 or kps.shape[0] not in (5, 6):
        raise InputError(f"keypoints must be a (5, 2) ArcFace or (6, 2) MediaPipe array in image pixels, got "
                         f"shape {kps.shape}")
    return kps


class MaskSynthesizer:
    """Draws random synthetic masks on faces (see the module docstring for the styles).

    Thread-safe and picklable: it holds only its options; all randomness comes from the generator passed in.
    """

    def __init__(self, options: Optional[MaskOptions] = None) -> None:
        self.options = options or MaskOptions()
        probs = np.asarray(self.options.style_probs, dtype=np.float64)
        self._style_cdf = np.cumsum(probs / probs.sum())

    def sample(self, rng: np.random.Generator, style: Optional[str] = None,
               nose_covered: Optional[bool] = None) -> MaskDraw:
        """Draw the random choices of one mask; `style` / `nose_covered` force those choices."""
        o = self.options
        if style is None:
            style = o.styles[min(int(np.searchsorted(self._style_cdf, rng.random(), side="right")),
                                 len(o.styles) - 1)]
        elif style not in STYLES:
            raise InputError(f"unknown mask style {style!r}; choose one of {STYLES}")
        covered = bool(rng.random() >= o.nose_uncovered_prob) if nose_covered is None else bool(nose_covered)
        top_range = o.nose_top_range if covered else o.below_nose_range
        top = rng.uniform(*top_range)
        span = top_range[1] - top_range[0]
        cover = (top - top_range[0]) / span if span > 0 else 0.5
        cover = min(max(cover + float(rng.normal(0.0, 0.15)), 0.0), 1.0)
        colour, colour2 = self._colours(style, rng)
        texture = None
        if style == "cloth" and o.textures and rng.random() < o.texture_prob:
            texture = o.textures[int(rng.integers(len(o.textures)))]
        straps = bool(rng.random() < o.strap_prob)
        if style == "n95":
            strap_colour = tuple(float(c) for c in _STRAP_COLOURS[int(rng.integers(len(_STRAP_COLOURS)))])
        else:
            strap_colour = tuple(min(c * 0.9 + 20.0, 255.0) for c in colour)
        return MaskDraw(
            style=style, nose_covered=covered, top=float(top), cover=cover, side=float(rng.random()),
            chin=float(rng.uniform(*o.chin_range)), margin=float(rng.uniform(*o.margin_range)),
            colour=colour, colour2=colour2, texture=texture, straps=straps, strap_colour=strap_colour,
            valve=bool(style == "n95" and rng.random() < o.valve_prob),
            shading=float(rng.uniform(*o.shading_range)), light=float(rng.uniform(-1.0, 1.0)),
            photo_light=float(rng.uniform(*o.photo_light_range)), noise=float(rng.uniform(*o.noise_range)),
        )

    def _colours(self, style: str, rng: np.random.Generator) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        if style == "cloth":
            h = rng.random()
            first = colorsys.hsv_to_rgb(h, rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95))
            second = colorsys.hsv_to_rgb((h + rng.uniform(0.15, 0.85)) % 1.0, rng.uniform(0.0, 0.9),
                                         rng.uniform(0.2, 1.0))
            return tuple(255.0 * c for c in first[::-1]), tuple(255.0 * c for c in second[::-1])
        palette = _PALETTES[style]
        base = np.asarray(palette[int(rng.integers(len(palette)))], np.float64)
        jittered = tuple(min(max(float(c), 0.0), 255.0) for c in base + rng.normal(0.0, self.options.colour_jitter, 3))
        return jittered, jittered

    def render(self, image: np.ndarray, draw: MaskDraw, rng: np.random.Generator,
               mesh: Optional[np.ndarray] = None,
               keypoints: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Draw the mask described by `draw` on `image` (see `synth`); `rng` supplies the pattern and grain."""
        image = check_bgr_frame(image)
        _check_generator(rng)
        kps = _check_keypoints(keypoints)
        points = _check_mesh(mesh)
        if points is None:
            points = _fallback_points(image.shape, kps)
        face = _Face(points)
        shape = _cup_shape(face, draw) if draw.style == "n95" else _chain_shape(face, draw)
        return _render(image, face, shape, draw, rng, self.options.protect_eyes)

    def synth(self, image: np.ndarray, rng: np.random.Generator, mesh: Optional[np.ndarray] = None,
              keypoints: Optional[np.ndarray] = None, *, style: Optional[str] = None,
              nose_covered: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Put a random mask on the face in `image`.

        image: HxWx3 uint8 BGR (an aligned 112x112 crop or a raw photo of any size); it is not modified.
        rng: the only source of randomness (same generator state -> identical output).
        mesh: (468, 2) Face Mesh landmarks in this image's pixels (a (478, 2) refined mesh or x, y, z columns are
            accepted too). None or NaN: place the mask from `keypoints`, or, without them, take `image` as a
            square aligned crop and use the canonical face.
        keypoints: (5, 2) ArcFace-order or (6, 2) MediaPipe detector keypoints in this image's pixels.
        style / nose_covered: force the style (one of STYLES) / whether the nose is covered.
        Returns (masked image HxWx3 uint8, region HxW uint8 in {0, 1}: every pixel the mask or its straps changed;
        pixels outside it are identical to the input). Raises InputError on a bad image, generator or landmarks.
        """
        _check_generator(rng)
        return self.render(image, self.sample(rng, style, nose_covered), rng, mesh, keypoints)

    __call__ = synth


def _check_generator(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng)}")


_DEFAULT: Optional[MaskSynthesizer] = None


def apply_random_mask(image: np.ndarray, seed: Union[int, np.random.Generator, None],
                      mesh: Optional[np.ndarray] = None, keypoints: Optional[np.ndarray] = None,
                      options: Optional[MaskOptions] = None) -> Tuple[np.ndarray, np.ndarray]:
    """One random mask with default (or given) options; `seed` is an int or a Generator. See `MaskSynthesizer.synth`."""
    global _DEFAULT
    if options is not None:
        synth = MaskSynthesizer(options)
    else:
        if _DEFAULT is None:
            _DEFAULT = MaskSynthesizer()
        synth = _DEFAULT
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return synth.synth(image, rng, mesh=mesh, keypoints=keypoints)


__all__: Sequence[str] = ("STYLES", "TEXTURES", "MaskOptions", "MaskDraw", "MaskSynthesizer", "apply_random_mask",
                          "CANONICAL_MESH_112")
