"""Open-set identification (issue 19): strangers stay strangers at every gallery size.

    from g2d_edge.openset import OpenSetRule
    rule = OpenSetRule(rec.sidecar.open_set, target_fpir=0.01)
    rule.threshold(templates=500, kind="masked")   # the cosine that names 1 % of masked strangers in that gallery

Modules: `rule.py` (the decision rule: `OpenSetRule`, `ThresholdDecision`, `Thresholds`, what a `Recognizer` asks),
`cohort.py` (the threshold measured on the gallery at hand with the calibration's stranger photos: `CohortThresholds`),
`calibration.py` (the calibration tables from stranger probes' impostor scores: `build_calibration`, used by
`g2d-train calibrate`), `recalibrate.py` (`g2d calibrate`: a calibration from your own camera's photos, into a copy of
the model). The calibration itself is stored in the model sidecar (`g2d_edge.sidecar.OpenSetCalibration`).
"""
from __future__ import annotations

from .cohort import CohortThresholds, threshold_from_best
from .calibration import FPIR_GRID, TEMPLATE_GRID, build_calibration, fpir_curves, impostor_scores, threshold_table
from .recalibrate import FolderCalibration, calibrate_folder
from .rule import DEFAULT_TARGET_FPIR, OpenSetRule, ThresholdDecision, Thresholds, check_fpir

__all__ = ["CohortThresholds", "DEFAULT_TARGET_FPIR", "FPIR_GRID", "FolderCalibration", "OpenSetRule", "TEMPLATE_GRID",
           "ThresholdDecision", "Thresholds", "build_calibration", "calibrate_folder", "check_fpir", "fpir_curves",
           "impostor_scores", "threshold_from_best", "threshold_table"]
