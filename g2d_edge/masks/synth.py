"""`MaskSynthesizer`: draws the random choices of a mask (`sample`) and renders them (`render`); `synth` does both."""
from __future__ import annotations

import colorsys
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..io import check_bgr_frame
from ..errors import InputError
from .geometry import chain_shape, checked_keypoints, checked_mesh, cup_shape, fallback_points, FaceFrame
from .options import STYLES, MaskDraw, MaskOptions
from .render import render_mask

# Mask colours (BGR) per style; cloth colours are drawn at random.
_PALETTES: Dict[str, Tuple[Tuple[int, int, int], ...]] = {
    "surgical": ((228, 196, 140), (236, 236, 233), (42, 42, 44), (200, 180, 238), (185, 210, 160), (206, 206, 200),
                 (225, 205, 120)),
    "n95": ((228, 228, 225), (214, 228, 236), (198, 200, 200), (48, 48, 50)),
    "kn95": ((236, 236, 236), (42, 42, 44), (192, 192, 190), (200, 185, 240), (230, 200, 150)),
}
_STRAP_COLOURS = ((60, 200, 235), (200, 130, 50), (232, 232, 232), (45, 140, 240), (90, 90, 90))


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
        kps = checked_keypoints(keypoints)
        points = checked_mesh(mesh)
        if points is None:
            points = fallback_points(image.shape, kps)
        face = FaceFrame(points)
        shape = cup_shape(face, draw) if draw.style == "n95" else chain_shape(face, draw)
        return render_mask(image, face, shape, draw, rng, self.options.protect_eyes)

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
