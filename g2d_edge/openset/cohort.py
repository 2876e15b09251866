"""The open-set threshold measured on the gallery at hand, with a stranger cohort shipped in the calibration.

A size table (`g2d_edge.openset.rule.OpenSetRule`) knows only how many templates a gallery holds, so it must assume
every template is as dangerous as the most dangerous impostors it was calibrated on: too strict for a gallery of faces
unlike the strangers, too lax for one of look-alikes. A calibration that carries a `StrangerCohort` (embeddings of
photos of people enrolled nowhere; `g2d-train calibrate`, `g2d calibrate`) lets the SDK measure instead: every cohort
photo is searched in the gallery exactly as a face from the camera is (`search`, top 1, as a clean or a masked face),
and the share of cohort photos whose best score reaches t is the FPIR of *this* gallery at t. The threshold is where
that share falls to the target FPIR. Each photo's best score is smoothed by a Gaussian kernel (Silverman's bandwidth)
so that the threshold moves continuously as the gallery changes; it only rises as templates are added (a photo's best
score can only grow).

The measurement is used where the cohort resolves the target: at least `MIN_NAMED` cohort photos may be named at it
(target FPIR x photos >= MIN_NAMED; the shipped cohorts hold 412 photos per kind, so down to a target of 0.5 %); below
that, and for an empty gallery, the size table answers. It is re-measured whenever a file gallery changes
(`Gallery.changes`); a database gallery is re-measured when its counts change and at least every `REFRESH_S` seconds.

Measured in `benchmarks/openset.py` (README "Open-set identification") against the size table on the same galleries.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..sidecar import PROBE_KINDS, StrangerCohort

#: The fewest cohort photos the target FPIR must let be named for the cohort to set the threshold.
MIN_NAMED = 2.0
#: A gallery without a change counter (a database) is re-measured at least this often, in seconds.
REFRESH_S = 60.0
_BISECTIONS = 40


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _normal_sf(z: np.ndarray) -> np.ndarray:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * _ERFC(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64)


def threshold_from_best(best: np.ndarray, target_fpir: float) -> float:
    """The cosine at which a share `target_fpir` of the cohort photos would be named, from each photo's best score
    against the gallery (-inf: no match), each smoothed by a Gaussian kernel of Silverman's bandwidth."""
    best = np.asarray(best, dtype=np.float64)
    scores = best[np.isfinite(best)]
    if scores.size == 0:
        return -1.0
    width = max(1.06 * float(scores.std()) * best.size ** -0.2, 1e-3)
    lo, hi = float(scores.min()) - 6 * width, float(scores.max()) + 6 * width
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if _normal_sf((mid - scores) / width).sum() / best.size > target_fpir:
            lo = mid
        else:
            hi = mid
    return float(min(max(hi, -1.0), 1.0))


def resolves(photos: int, target_fpir: float) -> bool:
    """Whether a cohort of `photos` photos can measure an FPIR as low as `target_fpir` (`MIN_NAMED`)."""
    return photos * target_fpir >= MIN_NAMED


class CohortThresholds:
    """Thresholds at `target_fpir` measured on a gallery with a `StrangerCohort`, per probe kind, cached until the
    gallery changes. `threshold(gallery, kind, counts)` is None where the cohort does not resolve the target or the
    gallery is empty (the size table answers then)."""

    def __init__(self, cohort: StrangerCohort, target_fpir: float) -> None:
        self.cohort = cohort
        self.target_fpir = float(target_fpir)
        self.embeddings = {k: cohort.embeddings(k) for k in PROBE_KINDS}
        self.photos = {k: int(v.shape[0]) for k, v in self.embeddings.items()}
        self._cache: Dict[int, Tuple[Any, float, Dict[str, Optional[float]]]] = {}
        self._lock = threading.Lock()

    def usable(self, kind: str) -> bool:
        """Whether the cohort resolves the target FPIR for probes of `kind`."""
        return resolves(self.photos[kind], self.target_fpir)

    def threshold(self, gallery: Any, kind: str, counts: Tuple[int, int]) -> Optional[float]:
        """The measured threshold for a probe of `kind` against `gallery` holding `counts` (identities, templates)."""
        if not self.usable(kind) or counts[1] == 0:
            return None
        changes = getattr(gallery, "changes", None)
        key = (counts, changes)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(id(gallery))
            fresh = cached is not None and cached[0] == key and (changes is not None or now - cached[1] < REFRESH_S)
            if not fresh:
                cached = (key, now, {})
                self._cache = {id(gallery): cached}  # one gallery at a time: a Recognizer holds one
            per_kind = cached[2]
            if kind not in per_kind:
                per_kind[kind] = self._measure(gallery, kind)
            return per_kind[kind]

    def _measure(self, gallery: Any, kind: str) -> Optional[float]:
        matches = gallery.search(self.embeddings[kind], top_k=1, masked=kind == "masked")
        best = np.array([m[0].score if m else -np.inf for m in matches], dtype=np.float64)
        if not np.isfinite(best).any():
            return None
        return threshold_from_best(best, self.target_fpir)
