"""Evaluation, in one place: metrics, pairs, scores per condition, reports (pure numpy, importable without torch),
and the `g2d-train eval` runner and the threshold calibration (torch: import them from their modules).

* `metrics.py`: verification (k-fold accuracy, ROC / AUC, TAR@FAR, best threshold) and identification metrics;
* `pairs.py`: LFW pairs files and generated pairs (from labels or an image folder);
* `scores.py`: cosine scores of pairs in the three conditions unmasked-unmasked, masked-unmasked, masked-masked;
* `report.py`: Markdown tables, strict JSON, `EvalReport`;
* `runner.py`: `run_eval` (the `g2d-train eval` command: embed faces with a checkpoint and score them);
* `threshold.py`: `calibrate_threshold` (the default "same person" threshold, after the classifier stage).
"""
from __future__ import annotations

from .metrics import (DEFAULT_FARS, DEFAULT_FOLDS, IdentificationResult, TarAtFar, VerificationResult, accuracy_at,
                      assign_folds, best_threshold, build_templates, evaluate_verification, far_key, identify,
                      kfold_accuracy, l2_normalize, roc_auc, roc_curve, split_gallery_probe, tar_at_far,
                      threshold_at_far, top1_accuracy)
from .pairs import (IndexPairs, PathPairs, generate_folder_pairs, generate_pairs, lfw_image_path,
                    list_identity_images, load_lfw_pairs, parse_lfw_pairs)
from .report import EvalReport, format_table, read_results_json, write_results_json
from .scores import (CONDITION_CLEAN, CONDITION_MASKED, CONDITION_MIXED, CONDITIONS, condition_scores,
                     cosine_scores, evaluate_conditions, pair_scores)

__all__ = [
    "DEFAULT_FARS", "DEFAULT_FOLDS", "IdentificationResult", "TarAtFar", "VerificationResult", "accuracy_at",
    "assign_folds", "best_threshold", "build_templates", "evaluate_verification", "far_key", "identify",
    "kfold_accuracy", "l2_normalize", "roc_auc", "roc_curve", "split_gallery_probe", "tar_at_far", "threshold_at_far",
    "top1_accuracy", "IndexPairs", "PathPairs", "generate_folder_pairs", "generate_pairs", "lfw_image_path",
    "list_identity_images", "load_lfw_pairs", "parse_lfw_pairs", "EvalReport", "format_table", "read_results_json",
    "write_results_json", "CONDITION_CLEAN", "CONDITION_MASKED", "CONDITION_MIXED", "CONDITIONS", "condition_scores",
    "cosine_scores", "evaluate_conditions", "pair_scores",
]
