"""Rendering a mask outline onto an image: anti-aliased fills in fixed point, style decorations, patterns, shading
(curvature, light direction, the photo's own lighting), sensor-like grain and compositing."""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import cv2
import numpy as np

from .geometry import FaceFrame, MaskShape, eye_zones
from .options import MaskDraw

_SHIFT = 4  # fixed-point bits for sub-pixel cv2 drawing
_ONE = 1 << _SHIFT


class _Canvas:
    """A bounding box of the image with the per-pixel face-frame coordinates and the layers being painted."""

    def __init__(self, face: FaceFrame, x0: int, y0: int, x1: int, y1: int) -> None:
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


def _bbox(face: FaceFrame, shape: MaskShape, size: Tuple[int, int]) -> Optional[Tuple[int, int, int, int]]:
    pts = face.to_xy(np.vstack([shape.outline] + shape.straps))
    h, w = size
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _fill_shape(canvas: _Canvas, shape: MaskShape) -> None:
    cv2.fillPoly(canvas.alpha, [canvas.fixed(shape.outline)], 255, cv2.LINE_AA, _SHIFT)
    for strap in shape.straps:
        cv2.polylines(canvas.strap_alpha, [canvas.fixed(strap)], False, 255, canvas.px(0.035), cv2.LINE_AA, _SHIFT)


def _clear_eyes(canvas: _Canvas, straps: bool) -> None:
    """Last guard: erase anything drawn over the eyes (the shapes already keep their edges under them)."""
    face = canvas.face
    zones = eye_zones(face, 1.0)
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


def _decorate(canvas: _Canvas, shape: MaskShape, d: MaskDraw) -> bool:
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


def _shading(canvas: _Canvas, shape: MaskShape, d: MaskDraw) -> np.ndarray:
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


def render_mask(image: np.ndarray, face: FaceFrame, shape: MaskShape, d: MaskDraw, rng: np.random.Generator,
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
