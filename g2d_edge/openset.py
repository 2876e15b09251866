"""Open-set identification: a threshold that keeps strangers strangers at every gallery size.

A stranger (a face of no one enrolled) is compared with every template of the gallery, so a threshold chosen for one
comparison names strangers more and more often as the gallery grows. The SDK therefore takes a target
**false-positive identification rate** (FPIR: the share of strangers given a name; `RecognizerOptions.target_fpir`,
1 % by default) and derives the cosine threshold for the gallery at hand from the model's open-set calibration
(`g2d_edge.sidecar.OpenSetCalibration`, in the model sidecar), re-deriving it whenever the gallery changes.

**The model.** For a probe p let q_p(t) be the share of random faces' templates scoring above t against it. A
gallery of M templates of people other than p names p at threshold t with probability 1 - (1 - q_p(t))^M, so

    FPIR_M(t) = mean over strangers p of [1 - (1 - q_p(t))^M].

`build_calibration` measures q_p on calibration probes against impostor templates (one face each): empirically up to
the probe's `tail_count`-th best impostor score, and beyond it with the decay of a normal law with the probe's own
mean and deviation of impostor scores, which carries the table past the number of impostors measured
(`OpenSetCalibration.measured_templates`). Checked with g2d-edge-m: calibrated on 1,000 faces-pool distractors and
measured on 3,000, the thresholds for FPIR 5 % and 2 % gave 5.1-5.8 % and 2.2-2.7 % (from 300 distractors, 10x
short: 3.9-6.1 % and 2.2-2.7 %); an exponential tail fitted to the excesses overstated the FPIR of the larger gallery
several-fold (0.0-0.7 % measured for a 2-5 % target). Several impostor populations can be given per probe (e.g. people
of the probes' own photo domain and a large web pool); the heavier tail counts at each threshold. Only true strangers
calibrate it: faces-pool photos are not probes, since the pool holds a few faces of the same person (348 of its 8,837
faces have another face above cosine 0.7 with g2d-edge-m). It tabulates the threshold for each gallery size and FPIR;
`OpenSetRule` interpolates that table (linearly in log size and log FPIR). Several templates of one person count as
several templates: as their scores against a stranger are correlated, that tends to overstate the FPIR, not to
understate it. Probes wearing a mask have their own table; a face is looked up in the table of its mask flag (both
tables' higher threshold when the flag is off).

Measured in `benchmarks/openset.py` (README "Open-set identification"): per-size calibration against one fixed
threshold; the gallery's own fusion (an identity scores its best template) against one mean template per identity
(better at the best threshold, not yet the gallery's search), a best-to-second-best margin and cohort normalisation
of the score (neither better).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError
from .sidecar import PROBE_KINDS, OpenSetCalibration

log = logging.getLogger(__name__)

#: The default target false-positive identification rate (share of strangers given a name).
DEFAULT_TARGET_FPIR = 0.01
#: Gallery sizes (templates) the calibration tables are built for.
TEMPLATE_GRID = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 50000,
                 100000)
#: Target FPIRs the tables are built for (a target between two is interpolated; outside, refused).
FPIR_GRID = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2)
#: Impostor scores above which each probe's tail is modelled (peaks over threshold).
TAIL_COUNT = 50
#: How far past the impostor templates it measured a calibration is trusted (its tail model was checked at 10x).
REACH = 30
_SCORE_GRID = np.linspace(-0.2, 1.0, 1201)


def check_fpir(value: object, what: str = "target_fpir") -> float:
    """A target FPIR as a float within the calibrated rates; InputError naming `what` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not FPIR_GRID[0] <= float(value) <= FPIR_GRID[-1]:
        raise InputError(f"{what} is the share of strangers that may be given a name, from {FPIR_GRID[0]:g} to "
                         f"{FPIR_GRID[-1]:g} (0.01: one in a hundred), got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------------ calibration
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _tail_log_survival(scores: np.ndarray, tail_count: int, tail: str = "gaussian") -> np.ndarray:
    """log(1 - q_p(t)) on `_SCORE_GRID` for one probe's impostor scores: empirical up to its `tail_count`-th best
    score u, beyond it a tail anchored there: "gaussian" (the decay of a normal law with the scores' mean and
    deviation; the default, chosen by measurement, see the module docstring) or "exponential" (fitted to the excesses
    over u: much heavier, so it overstates the FPIR of large galleries several-fold)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    n = s.size
    k = min(tail_count, n - 1)
    above = n - np.searchsorted(s[::-1], _SCORE_GRID, side="right")  # count > t
    q = above / n
    if k >= 2:
        u = s[k]
        beyond = _SCORE_GRID > u
        if tail == "exponential":
            beta = max(float(np.mean(s[:k] - u)), 1e-4)
            q[beyond] = (k / n) * np.exp(-(_SCORE_GRID[beyond] - u) / beta)
        else:
            mu, sigma = float(s.mean()), max(float(s.std()), 1e-4)
            z = (np.concatenate([[u], _SCORE_GRID[beyond]]) - mu) / (sigma * math.sqrt(2.0))
            sf = _ERFC(z).astype(np.float64)
            q[beyond] = (k / n) * sf[1:] / max(sf[0], 1e-300)
    return np.log1p(-np.minimum(q, 1.0 - 1e-12))


def _probe_log_survival(scores: Any, tail_count: int, tail: str) -> np.ndarray:
    """`_tail_log_survival` of one probe; with several impostor populations (a tuple of score arrays, e.g. people
    from the camera's own domain and a large web pool) the heavier one at each threshold."""
    if isinstance(scores, tuple):
        return np.min([_tail_log_survival(s, tail_count, tail) for s in scores], axis=0)
    return _tail_log_survival(scores, tail_count, tail)


def fpir_curves(probe_scores: Sequence[Any], templates: Sequence[int],
                tail_count: int = TAIL_COUNT, tail: str = "gaussian") -> np.ndarray:
    """(len(templates), len(_SCORE_GRID)) FPIR of galleries of each size at each threshold of `_SCORE_GRID`, from
    each stranger probe's scores against single distractor templates (an array, or a tuple of arrays: one per
    impostor population, the heavier tail counts)."""
    if not len(probe_scores):
        raise InputError("no stranger probes to calibrate on")
    logs = np.stack([_probe_log_survival(s, tail_count, tail) for s in probe_scores])  # (P, grid)
    return np.stack([np.mean(-np.expm1(m * logs), axis=0) for m in templates])


def _threshold_at(curve: np.ndarray, fpir: float) -> float:
    """The smallest grid threshold whose FPIR is at most `fpir` (linear between grid points); curve falls with t."""
    below = np.flatnonzero(curve <= fpir)
    if not below.size:
        return float(_SCORE_GRID[-1])
    i = int(below[0])
    if i == 0:
        return float(_SCORE_GRID[0])
    f0, f1 = curve[i - 1], curve[i]
    w = 0.0 if f0 == f1 else (f0 - fpir) / (f0 - f1)
    return float(_SCORE_GRID[i - 1] + w * (_SCORE_GRID[i] - _SCORE_GRID[i - 1]))


def threshold_table(probe_scores: Sequence[Any], templates: Sequence[int] = TEMPLATE_GRID,
                    fpir: Sequence[float] = FPIR_GRID, tail_count: int = TAIL_COUNT,
                    tail: str = "gaussian") -> List[List[float]]:
    """thresholds[i][j]: the cosine at which galleries of `templates[i]` templates name `fpir[j]` of strangers."""
    curves = fpir_curves(probe_scores, templates, tail_count, tail)
    table = np.array([[_threshold_at(c, f) for f in fpir] for c in curves])
    table = np.maximum.accumulate(table, axis=0)  # monotone in size despite interpolation noise
    table = np.minimum.accumulate(table, axis=1)
    return [[round(float(v), 6) for v in row] for row in table]


def build_calibration(probe_scores: Dict[str, Sequence[Any]], measured_templates: int, embedding_space: str,
                      source: str, tail_count: int = TAIL_COUNT, tail: str = "gaussian") -> OpenSetCalibration:
    """An `OpenSetCalibration` from stranger probes' scores against single distractor templates, per probe kind
    ("clean", "masked"): `probe_scores[kind][p]` holds probe p's cosines with every distractor."""
    missing = [k for k in PROBE_KINDS if not len(probe_scores.get(k, ()))]
    if missing:
        raise InputError(f"no {' or '.join(missing)} stranger probes to calibrate on")
    tables = {k: threshold_table(probe_scores[k], tail_count=tail_count, tail=tail) for k in PROBE_KINDS}
    return OpenSetCalibration(templates=list(TEMPLATE_GRID), fpir=list(FPIR_GRID), thresholds=tables,
                              measured_templates=int(measured_templates), embedding_space=embedding_space,
                              probes={k: len(probe_scores[k]) for k in PROBE_KINDS}, source=source)


def impostor_scores(probes: np.ndarray, distractors: np.ndarray, exclude: Optional[np.ndarray] = None
                    ) -> List[np.ndarray]:
    """Each probe's cosines with every distractor (rows L2-normalised here); `exclude[p]`: a distractor row that is
    the probe itself (-1: none), left out."""
    a = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    b = distractors / np.linalg.norm(distractors, axis=1, keepdims=True)
    out = []
    for start in range(0, len(a), 512):
        block = a[start:start + 512] @ b.T
        for r, row in enumerate(block):
            p = start + r
            out.append(np.delete(row, exclude[p]) if exclude is not None and exclude[p] >= 0 else row)
    return out


# ------------------------------------------------------------------------------------------------ decision
@dataclass(frozen=True)
class ThresholdDecision:
    """The threshold a face is named at, and why.

    source: "manual" (set by hand: `Recognizer.threshold` / `RecognizerOptions.threshold`), "gallery" (the
        gallery's own `threshold`), "open-set" (derived for this gallery from the model's calibration at
        `target_fpir`) or "model" (the sidecar's one-comparison threshold: the model has no open-set calibration).
    fpir: the FPIR the decision was made at (the target, for "open-set"; None otherwise).
    identities / templates: the gallery size it was derived for. calibrated: False when the gallery is larger than
    the calibration reaches (the threshold is then extrapolated and the FPIR may be higher).
    """

    threshold: float
    source: str
    fpir: Optional[float] = None
    identities: int = 0
    templates: int = 0
    kind: Optional[str] = None
    calibrated: bool = True

    def describe(self) -> str:
        """One line: the threshold and why."""
        if self.source == "open-set":
            who = f" ({self.kind} faces)" if self.kind else ""
            extra = "" if self.calibrated else ", beyond the calibrated range"
            return (f"cosine >= {self.threshold:.3f}: target FPIR {self.fpir:g}{who} for a gallery of "
                    f"{self.identities} identities / {self.templates} templates{extra}")
        why = {"manual": "set by hand", "gallery": "the gallery's own threshold",
               "model": "the model's one-comparison threshold (no open-set calibration)"}[self.source]
        return f"cosine >= {self.threshold:.3f}: {why}"

    def to_dict(self) -> Dict[str, object]:
        return {"threshold": round(self.threshold, 4), "source": self.source, "fpir": self.fpir,
                "identities": self.identities, "templates": self.templates, "kind": self.kind,
                "calibrated": self.calibrated, "why": self.describe()}


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
        """The largest gallery (templates) the calibration is trusted for."""
        return int(min(self.calibration.templates[-1], REACH * self.calibration.measured_templates))

    def threshold(self, templates: int, kind: Optional[str] = None) -> float:
        """The cosine threshold for a gallery of `templates` templates and a probe of `kind` ("clean", "masked";
        None: the higher of the two)."""
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

    def decide(self, identities: int, templates: int, kind: Optional[str] = None) -> ThresholdDecision:
        """The decision for a gallery of this size (warns once when it is past the calibrated range)."""
        calibrated = templates <= self.max_templates
        if not calibrated:
            size_class = int(math.log10(max(1, templates)))
            if size_class not in self._warned:
                self._warned.add(size_class)
                log.warning("the gallery holds %d templates, more than the open-set calibration reaches (%d, from "
                            "%d impostor templates measured): the threshold is extrapolated and strangers may be named "
                            "more often than the target FPIR %g; recalibrate (g2d calibrate) with more people",
                            templates, self.max_templates, self.calibration.measured_templates, self.target_fpir)
        return ThresholdDecision(self.threshold(templates, kind), "open-set", self.target_fpir, int(identities),
                                 int(templates), kind, calibrated)


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


def decide_threshold(manual: Optional[float], gallery_threshold: Optional[float], rule: Optional[OpenSetRule],
                     model_threshold: float, size: Callable[[], Tuple[int, int]],
                     kind: Optional[str] = None) -> ThresholdDecision:
    """The threshold for a face, by precedence: set by hand, the gallery's own, the open-set rule for the gallery's
    `size()` (identities, templates), the model's one-comparison threshold."""
    if manual is not None:
        return ThresholdDecision(float(manual), "manual")
    if gallery_threshold is not None:
        return ThresholdDecision(float(gallery_threshold), "gallery")
    if rule is None:
        return ThresholdDecision(float(model_threshold), "model")
    identities, templates = size()
    return rule.decide(identities, templates, kind)
