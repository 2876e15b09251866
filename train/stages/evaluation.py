"""Deprecated: evaluation has one home, `train.eval` (`train.eval.runner` for `g2d-train eval`, `train.eval.threshold`
for the calibration after the classifier stage). Kept importable, with a DeprecationWarning, for older scripts."""
from __future__ import annotations

import warnings

from ..eval.report import EvalReport  # noqa: F401
from ..eval.runner import embed_faces, evaluate_cache, evaluate_pairs, mask_faces, run_eval  # noqa: F401
from ..eval.threshold import calibrate_threshold, choose_threshold  # noqa: F401

warnings.warn("train.stages.evaluation moved to train.eval (train.eval.runner, train.eval.threshold)",
              DeprecationWarning, stacklevel=2)
