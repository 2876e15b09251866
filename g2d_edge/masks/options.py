"""What a synthetic mask looks like: `MaskOptions` (how often each choice is made) and `MaskDraw` (the choices made
for one mask)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import InputError, check_fields, option

STYLES = ("surgical", "n95", "kn95", "cloth")
TEXTURES = ("stripes", "checks", "dots", "noise")


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

    styles: Tuple[str, ...] = option(STYLES, choices=STYLES, non_empty=True)
    style_probs: Tuple[float, ...] = option((0.3, 0.2, 0.2, 0.3), low=0.0, high=1e6, non_empty=True)
    nose_uncovered_prob: float = option(0.2, low=0.0, high=1.0)
    nose_top_range: Tuple[float, float] = option((0.2, 0.55), low=-10.0, high=10.0)
    below_nose_range: Tuple[float, float] = option((0.15, 0.6), low=-10.0, high=10.0)
    chin_range: Tuple[float, float] = option((-0.08, 0.25), low=-10.0, high=10.0)
    margin_range: Tuple[float, float] = option((0.0, 0.1), low=-10.0, high=10.0)
    texture_prob: float = option(0.75, low=0.0, high=1.0)
    textures: Tuple[str, ...] = option(TEXTURES, choices=TEXTURES)
    strap_prob: float = option(0.7, low=0.0, high=1.0)
    valve_prob: float = option(0.3, low=0.0, high=1.0)
    shading_range: Tuple[float, float] = option((0.1, 0.3), low=-10.0, high=10.0)
    photo_light_range: Tuple[float, float] = option((0.2, 0.6), low=-10.0, high=10.0)
    noise_range: Tuple[float, float] = option((1.0, 4.0), low=0.0, high=255.0)
    colour_jitter: float = option(10.0, low=0.0, high=255.0)
    protect_eyes: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        if len(self.styles) != len(self.style_probs):
            raise InputError(f"MaskOptions.style_probs must have one weight per style, got {self.styles!r} and "
                             f"{self.style_probs!r}")
        if sum(self.style_probs) <= 0:
            raise InputError(f"MaskOptions.style_probs must have a positive sum, got {self.style_probs!r}")
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
