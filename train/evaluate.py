"""Evaluation metrics and pairs, kept importable here: they live in `train.eval` (metrics, pairs, scores, reports;
the `g2d-train eval` runner and the threshold calibration are `train.eval.runner` / `train.eval.threshold`)."""
from __future__ import annotations

from g2d_edge.io import IMAGE_SUFFIXES  # noqa: F401 - was defined here

from .eval import *  # noqa: F401,F403 - the names this module used to define
from .eval import __all__  # noqa: F401
