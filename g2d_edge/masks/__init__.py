"""Synthetic face masks drawn on faces from facial landmarks (training augmentation, masked benchmarks and masked
templates at enrolment; numpy + OpenCV, no torch).

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

Modules: `options.py` (MaskOptions, MaskDraw), `geometry.py` (landmarks, face frame, outlines, canonical face),
`render.py` (drawing), `synth.py` (MaskSynthesizer, apply_random_mask), `facemesh.py` (MediaPipe Face Mesh
landmarks), `templates.py` (MaskedViews: synthetic masked templates at enrolment), `flag.py` (MaskFlag: does a face
wear a mask?).
"""
from __future__ import annotations

from .flag import MaskFlag
from .geometry import CANONICAL_MESH_112
from .options import STYLES, TEXTURES, MaskDraw, MaskOptions
from .synth import MaskSynthesizer, apply_random_mask
from .templates import MaskedViews

__all__ = ["STYLES", "TEXTURES", "MaskOptions", "MaskDraw", "MaskSynthesizer", "apply_random_mask", "CANONICAL_MESH_112",
           "MaskFlag", "MaskedViews"]
