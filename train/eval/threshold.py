"""The default "same person" threshold of a trained model, calibrated on held-out identities after the classifier
stage (and written into the checkpoint, then the exported sidecar)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..config import TrainConfig
from ..data import compute_holdout, load_aligned_cache
from ..model import G2DModel
from .metrics import best_threshold, threshold_at_far
from .pairs import IndexPairs
from .runner import evaluate_cache
from .scores import CONDITION_CLEAN, CONDITION_MIXED, condition_scores

log = logging.getLogger(__name__)


def choose_threshold(clean_emb: np.ndarray, masked_emb: np.ndarray, pairs: IndexPairs, far: float = 0.0
                     ) -> Tuple[float, Optional[float]]:
    """The default "same person" threshold for the SDK, from held-out pairs.

    The SDK compares a live face (masked or not) with clean enrolment photos, so the unmasked-unmasked and the
    masked-unmasked scores are pooled. far > 0: the threshold of that false-accept rate; else the best-accuracy one.
    Returns (threshold, far or None).
    """
    scores = condition_scores(clean_emb, masked_emb, pairs)
    s = np.concatenate([scores[CONDITION_CLEAN], scores[CONDITION_MIXED]])
    same = np.concatenate([pairs.same, pairs.same]).astype(bool)
    keep = np.isfinite(s)
    s, same = s[keep], same[keep]
    if far > 0:
        try:
            return float(threshold_at_far(s[~same], far)), float(far)
        except ValueError as exc:
            log.warning("threshold at FAR %g not resolvable (%s); using the best-accuracy threshold", far, exc)
    return float(best_threshold(s, same)[0]), None


def calibrate_threshold(model: G2DModel, meta: Dict[str, Any], cfg: TrainConfig, device: torch.device
                        ) -> Dict[str, Any]:
    """Threshold + validation metrics on the held-out identities (empty dict when nothing is held out)."""
    holdout = compute_holdout(cfg.data)
    if not holdout.held_out:
        log.info("no held-out identities: the default threshold is not calibrated (set data.val_identities)")
        return {}
    src = cfg.data.source(holdout.source)
    if not (src.cache and Path(src.cache).is_file()):
        log.warning("held-out source %s has no prepared cache: threshold not calibrated", holdout.source)
        return {}
    try:
        report = evaluate_cache(model, meta, cfg, load_aligned_cache(src.cache), device, holdout.held_out,
                                holdout.source)
    except ValueError as exc:
        log.warning("threshold not calibrated: %s", exc)
        return {}
    clean_emb, masked_emb, pairs = report.scored
    threshold, far = choose_threshold(clean_emb, masked_emb, pairs, cfg.eval.threshold_far)
    validation = {k: {"accuracy": v.accuracy, "auc": v.auc, "best_threshold": v.best_threshold}
                  for k, v in report.verification.items()}
    validation.update({k: {"top1": v.top1} for k, v in report.identification.items()})
    log.info("held-out validation (%d people): %s; threshold %.4f", len(holdout.held_out),
             ", ".join(f"{k} acc {v['accuracy']:.4f}" for k, v in validation.items() if "accuracy" in v), threshold)
    return {"threshold": threshold, "threshold_far": far, "validation": validation}
