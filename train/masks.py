"""Synthetic face masks, kept importable here for the training code: they live in the runtime, `g2d_edge.masks`
(numpy + OpenCV + Face Mesh, no torch; the SDK uses them for masked templates at enrolment), so that training and
the SDK draw masks with the same functions."""
from __future__ import annotations

from g2d_edge.facemesh import MESH_POINTS
from g2d_edge.masks import (CANONICAL_MESH_112, STYLES, TEXTURES, MaskDraw, MaskOptions, MaskSynthesizer,
                            apply_random_mask)

__all__ = ["STYLES", "TEXTURES", "MaskOptions", "MaskDraw", "MaskSynthesizer", "apply_random_mask",
           "CANONICAL_MESH_112", "MESH_POINTS"]
