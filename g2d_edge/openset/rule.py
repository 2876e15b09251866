"""The open-set decision rule: the threshold a face is named at, for a target FPIR and the gallery at hand.

A stranger (a face of no one enrolled) is compared with every template of the gallery, so a threshold chosen for one
comparison names strangers more and more often as the gallery grows. The SDK therefore takes a target
**false-positive identification rate** (FPIR: the share of strangers given a name; `RecognizerOptions.target_fpir`,
1 % by default) and derives the cosine threshold for the gallery at hand from the model's open-set calibration
(`g2d_edge.sidecar.OpenSetCalibration`, in the model sidecar), re-deriving it whenever the gallery changes.

When the calibration carries a stranger cohort, the threshold is *measured* on the gallery at hand
(`g2d_edge.openset.cohort`: the cohort photos searched in the gallery); otherwise, and where the cohort cannot resolve
the target, `OpenSetRule` interpolates the calibration's table by gallery size (linearly in log gallery size and log
FPIR). A face is judged at the threshold of its mask flag's kind (the higher of the two when the flag is off).
`Thresholds` is what a `Recognizer` asks: a threshold set by hand, else the gallery's own, else the open-set rule's
for this gallery, else the model's one-comparison threshold (`ThresholdDecision` says which and why).

The gallery search faces are identified with is the calibration's `fusion` (`Thresholds.fusion`): "mean" for the
default model (an identity scores its fused template; the table then counts identities), "max" otherwise.

Measured in `benchmarks/openset.py` (README "Open-set identification"): the threshold measured on the gallery with
the cohort against the table by size and against one fixed threshold; fused templates against the best template
(with the cohort, fewer people missed in every g2d-edge-m cell of 3 or 5 templates per person); a best-to-second-best
margin and cohort normalisation of the score (neither better).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from ..errors import InputError, check_value
from ..gallery.file import Gallery
from ..sidecar import PROBE_KINDS, ModelSidecar, OpenSetCalibration
from .calibration import FPIR_RANGE
from .cohort import CohortThresholds

log = logging.getLogger(__name__)

#: The default target false-positive identification rate (share of strangers given a name).
DEFAULT_TARGET_FPIR = 0.01
#: How far past the impostor templates it measured a calibration is trusted (its tail model was checked at 10x).
REACH = 30


def check_fpir(value: object, what: str = "target_fpir") -> float:
    """A target FPIR (the share of strangers that may be given a name) as a float within the calibrated rates
    (`FPIR_RANGE`, the rule `RecognizerOptions.target_fpir` is checked by too); InputError naming `what` otherwise."""
    return check_value(what, value, float, **FPIR_RANGE)


@dataclass(frozen=True)
class ThresholdDecision:
    """The threshold a face is named at, and why.

    source: "manual" (set by hand: `Recognizer.threshold` / `RecognizerOptions.threshold`), "gallery" (the
        gallery's own `threshold`), "open-set" (derived for this gallery from the model's calibration at
        `target_fpir`) or "model" (the sidecar's one-comparison threshold: the model has no open-set calibration).
    fpir: the FPIR the decision was made at (the target, for "open-set"; None otherwise).
    identities / templates: the gallery size it was derived for. calibrated: False when the gallery is larger than
    the calibration reaches (the threshold is then extrapolated and the FPIR may be higher).
    method: for "open-set", how the threshold was found: "gallery cohort" (measured on this gallery with the
        calibration's stranger photos, `g2d_edge.openset.cohort`) or "size table" (the calibration's table by
        gallery size).
    search: how a face's score against an identity is made, the threshold is compared with: "max" (the identity's
        best template) or "mean" (its fused template; `g2d_edge.gallery.protocol.FUSIONS`).
    """

    threshold: float
    source: str
    fpir: Optional[float] = None
    identities: int = 0
    templates: int = 0
    kind: Optional[str] = None
    calibrated: bool = True
    method: str = ""
    search: str = "max"

    def describe(self) -> str:
        """One line: the threshold and why."""
        scored = "; identities scored by their fused templates" if self.search == "mean" else ""
        return self._why() + scored

    def _why(self) -> str:
        if self.source == "open-set":
            who = f" ({self.kind} faces)" if self.kind else ""
            extra = "" if self.calibrated else ", beyond the calibrated range"
            how = ("measured on this gallery with stranger photos" if self.method == "gallery cohort"
                   else "from the calibration table by gallery size")
            return (f"cosine >= {self.threshold:.3f}: target FPIR {self.fpir:g}{who} for a gallery of "
                    f"{self.identities} identities / {self.templates} templates, {how}{extra}")
        why = {"manual": "set by hand", "gallery": "the gallery's own threshold",
               "model": "the model's one-comparison threshold (no open-set calibration)"}[self.source]
        return f"cosine >= {self.threshold:.3f}: {why}"

    def to_dict(self) -> Dict[str, object]:
        return {"threshold": round(self.threshold, 4), "source": self.source, "fpir": self.fpir,
                "identities": self.identities, "templates": self.templates, "kind": self.kind,
                "calibrated": self.calibrated, "method": self.method, "search": self.search, "why": self.describe()}


class OpenSetRule:
    """Thresholds for a target FPIR from an `OpenSetCalibration`, for galleries of any size.

    `threshold(templates, kind)` interpolates the calibration table (log gallery size, log FPIR); a gallery larger
    than the table reaches is extrapolated along the table's last two sizes. A gallery past `max_templates` (the
    table's end, or `REACH` times the impostor templates the calibration measured, whichever is smaller) is warned
    about, once per size class.
    """

    def __init__(self, calibration: OpenSetCalibration, target_fpir: float = DEFAULT_TARGET_FPIR) -> None:
        self.calibration = calibration
        self.target_fpir = check_fpir(target_fpir)
        self._log_sizes = np.log(np.asarray(calibration.templates, np.float64))
        self._log_fpir = np.log(np.asarray(calibration.fpir, np.float64))
        if not self._log_fpir[0] <= math.log(self.target_fpir) <= self._log_fpir[-1]:
            raise InputError(f"target_fpir {self.target_fpir:g} is outside the calibrated rates "
                             f"{calibration.fpir[0]:g} to {calibration.fpir[-1]:g}")
        # the table's column at the target rate, per kind
        self._columns = {k: np.array([np.interp(math.log(self.target_fpir), self._log_fpir, row)
                                      for row in calibration.thresholds[k]]) for k in PROBE_KINDS}
        self._warned: set = set()

    @property
    def max_templates(self) -> int:
        """The largest gallery (in the table's `unit`) the calibration is trusted for."""
        return int(min(self.calibration.templates[-1], REACH * self.calibration.measured_templates))

    def threshold(self, templates: int, kind: Optional[str] = None) -> float:
        """The cosine threshold for a gallery of `templates` templates (identities, for a "mean" calibration: the
        table's `unit`) and a probe of `kind` ("clean", "masked"; None: the higher of the two)."""
        if kind is None:
            return max(self.threshold(templates, k) for k in PROBE_KINDS)
        if kind not in PROBE_KINDS:
            raise InputError(f"probe kind must be one of {PROBE_KINDS} or None, got {kind!r}")
        x = math.log(max(1, int(templates)))
        column = self._columns[kind]
        if x <= self._log_sizes[-1]:
            return float(np.interp(x, self._log_sizes, column))
        slope = (column[-1] - column[-2]) / (self._log_sizes[-1] - self._log_sizes[-2])
        return float(min(1.0, column[-1] + slope * (x - self._log_sizes[-1])))

    @property
    def unit(self) -> str:
        """What the table's gallery sizes count: "templates" ("max" search) or "identities" ("mean": one fused
        template each)."""
        return "identities" if self.calibration.fusion == "mean" else "templates"

    def decide(self, identities: int, templates: int, kind: Optional[str] = None) -> ThresholdDecision:
        """The decision for a gallery of this size (warns once when it is past the calibrated range)."""
        size = identities if self.unit == "identities" else templates
        calibrated = size <= self.max_templates
        if not calibrated:
            size_class = int(math.log10(max(1, size)))
            if size_class not in self._warned:
                self._warned.add(size_class)
                log.warning("the gallery holds %d %s, more than the open-set calibration reaches (%d, from %d "
                            "impostor templates measured): the threshold is extrapolated and strangers may be named "
                            "more often than the target FPIR %g; recalibrate (g2d calibrate) with more people",
                            size, self.unit, self.max_templates, self.calibration.measured_templates,
                            self.target_fpir)
        return ThresholdDecision(self.threshold(size, kind), "open-set", self.target_fpir, int(identities),
                                 int(templates), kind, calibrated, "size table")


class GallerySize:
    """A gallery's (identities, templates), for the open-set threshold: counted afresh for a gallery in memory,
    reused for `ttl_s` seconds for a database gallery (counting it is a query), and counted once for all the faces
    of a frame (`held`)."""

    def __init__(self, ttl_s: float = 2.0) -> None:
        self.ttl_s = float(ttl_s)
        self._cached: Optional[tuple] = None
        self._holding = False
        self._held: Optional[Tuple[int, int]] = None

    def reset(self) -> None:
        """Forget the cached size (the gallery changed, or another one is attached)."""
        self._cached = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Within the block the size is counted once (the faces of one frame share it)."""
        self._holding, self._held = True, None
        try:
            yield
        finally:
            self._holding, self._held = False, None

    def __call__(self, gallery: Any, fresh: bool) -> Tuple[int, int]:
        if self._holding and self._held is not None:
            return self._held
        if fresh:
            size = (len(gallery), int(gallery.num_templates))
        else:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self.ttl_s:
                self._cached = (now, len(gallery), int(gallery.num_templates))
            size = (self._cached[1], self._cached[2])
        if self._holding:
            self._held = size
        return size


def mate_level(calibration: OpenSetCalibration) -> float:
    """The median score from which a stranger cohort person who finds the same enrolled identity first is taken to
    be that person (`g2d_edge.openset.cohort.enrolled_people`): the size table's clean threshold at its lowest FPIR
    (0.01 %) for one template."""
    return OpenSetRule(calibration, calibration.fpir[0]).threshold(1, "clean")


def decide_threshold(manual: Optional[float], gallery_threshold: Optional[float], rule: Optional[OpenSetRule],
                     model_threshold: float, size: Callable[[], Tuple[int, int]],
                     kind: Optional[str] = None,
                     measure: Optional[Callable[[str, Tuple[int, int]], Optional[float]]] = None
                     ) -> ThresholdDecision:
    """The threshold for a face, by precedence: set by hand, the gallery's own, the open-set rule for the gallery's
    `size()` (identities, templates) — measured on the gallery by `measure(kind, size)` where it can, else from the
    table by size — the model's one-comparison threshold."""
    if manual is not None:
        return ThresholdDecision(float(manual), "manual")
    if gallery_threshold is not None:
        return ThresholdDecision(float(gallery_threshold), "gallery")
    if rule is None:
        return ThresholdDecision(float(model_threshold), "model")
    counts = size()
    measured = {k: measure(k, counts) for k in ((kind,) if kind else PROBE_KINDS)} if measure else {}
    if not measured or any(v is None for v in measured.values()):
        return rule.decide(counts[0], counts[1], kind)
    return ThresholdDecision(max(measured.values()), "open-set", rule.target_fpir, int(counts[0]), int(counts[1]),
                             kind, True, "gallery cohort")


class Thresholds:
    """The threshold a `Recognizer` names faces at (`decide`), by precedence: set by hand (`manual`), the gallery's
    own `threshold`, the open-set rule for this gallery at `target_fpir` (a model with an open-set calibration:
    measured on the gallery with the calibration's stranger cohort where it has one, else its table by gallery size),
    the model's one-comparison threshold. `size` counts the gallery (reset it when the gallery
    changes; hold it for the faces of one frame)."""

    def __init__(self, sidecar: ModelSidecar, manual: Optional[float], target_fpir: float) -> None:
        self.manual = manual  # checked by RecognizerOptions / the Recognizer.threshold setter
        self.rule = None if sidecar.open_set is None else OpenSetRule(sidecar.open_set, target_fpir)
        #: the gallery search faces are identified with: the one the model's calibration was made for
        self.fusion = "max" if sidecar.open_set is None else sidecar.open_set.fusion
        cohort = None if sidecar.open_set is None else sidecar.open_set.cohort
        self.cohort = None if cohort is None else CohortThresholds(cohort, target_fpir, mate_level(sidecar.open_set),
                                                                    self.fusion)
        self.model_threshold = float(sidecar.threshold)
        self.size = GallerySize()

    def close(self) -> None:
        """The gallery is about to close: a background measurement of it ends quietly (`CohortThresholds.close`)."""
        if self.cohort is not None:
            self.cohort.close()

    def decide(self, gallery: Any, kind: Optional[str] = None, one: bool = False) -> ThresholdDecision:
        """The decision for a face of `kind` ("clean", "masked"; None: the higher threshold of the two) against
        `gallery`; `one`: for one comparison (verify), i.e. a one-template gallery."""
        if one:
            return decide_threshold(self.manual, gallery.threshold, self.rule, self.model_threshold, lambda: (1, 1),
                                    kind)
        cohort = self.cohort
        measure = None if cohort is None else (lambda k, counts: cohort.threshold(gallery, k, counts))
        decision = decide_threshold(self.manual, gallery.threshold, self.rule, self.model_threshold,
                                    lambda: self.size(gallery, fresh=isinstance(gallery, Gallery)), kind, measure)
        return dataclasses.replace(decision, search=self.fusion)
