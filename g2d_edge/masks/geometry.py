"""The geometry of a mask: the Face Mesh landmarks it is built from, the face-centred frame (origin between the eyes,
x along the eye line, y towards the chin, unit = the distance between the eye centres), the mask outlines per style
(`chain_shape`, `cup_shape`) and the canonical face used when no mesh is available (`fallback_points`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..align import ALIGNED_SIZE, keypoints_to_template_points, similarity_transform
from ..errors import InputError
from .facemesh import MESH_POINTS
from .options import MaskDraw

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------------------------------
class FaceFrame:
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
class MaskShape:
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
def _top_chain(face: FaceFrame, d: MaskDraw, sharp: bool) -> np.ndarray:
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


def _lower_silhouette(face: FaceFrame, top: np.ndarray) -> np.ndarray:
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


def _jaw_chain(face: FaceFrame, d: MaskDraw, top: np.ndarray, apex: Optional[np.ndarray] = None) -> np.ndarray:
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


def _ear_loops(face: FaceFrame, top: np.ndarray, bottom: np.ndarray) -> List[np.ndarray]:
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


def eye_zones(face: FaceFrame, pad_px: float) -> np.ndarray:
    """(2, 4) per eye: centre u, centre v, half width, half height of the ellipse kept clear (face frame)."""
    eyes = face.eye_points  # (2 eyes, [outer, inner, upper, lower], 2) in pixels
    corner = eyes[:, 1] - eyes[:, 0]
    lids = eyes[:, 3] - eyes[:, 2]
    zones = np.empty((2, 4))
    zones[:, :2] = face.to_uv(eyes.sum(axis=1) * 0.25)
    zones[:, 2] = (np.hypot(corner[:, 0], corner[:, 1]) * 0.65 + pad_px) / face.scale
    zones[:, 3] = np.maximum(np.hypot(lids[:, 0], lids[:, 1]) * 1.1 / face.scale, 0.13) + pad_px / face.scale
    return zones


def _keep_below_eyes(face: FaceFrame, edge: np.ndarray) -> np.ndarray:
    """Move points of a mask edge that would lie on (or above) an eye down to just under it."""
    edge = edge.copy()
    for cu, cv, a, b in eye_zones(face, 2.0):
        du = (edge[:, 0] - cu) / a
        floor = cv + b * np.sqrt(np.maximum(1.0 - du * du, 0.0))
        low = (np.abs(du) < 1.0) & (edge[:, 1] < floor)
        edge[low, 1] = floor[low]
    return edge


def chain_shape(face: FaceFrame, d: MaskDraw) -> MaskShape:
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
    return MaskShape(outline, top, bottom, straps, centre, float(bottom[:, 1].max()))


def cup_shape(face: FaceFrame, d: MaskDraw) -> MaskShape:
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
    return MaskShape(outline, outline[36:37], outline[12:13], straps, outline[36].copy(), float(v_bottom))


# ---------------------------------------------------------------------------------------------------------------
def checked_mesh(mesh: Optional[np.ndarray]) -> Optional[np.ndarray]:
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


def fallback_points(shape: Tuple[int, ...], keypoints: Optional[np.ndarray]) -> np.ndarray:
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


def checked_keypoints(keypoints: Optional[np.ndarray]) -> Optional[np.ndarray]:
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
