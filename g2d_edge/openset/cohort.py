"""The open-set threshold measured on the gallery at hand, with a stranger cohort shipped in the calibration.

A size table (`g2d_edge.openset.rule.OpenSetRule`) knows only how many templates a gallery holds, so it must assume
every template is as dangerous as the most dangerous impostors it was calibrated on: too strict for a gallery of faces
unlike the strangers, too lax for one of look-alikes. A calibration that carries a `StrangerCohort` (embeddings of
photos of people enrolled nowhere; `g2d-train calibrate`, `g2d calibrate`) lets the SDK measure instead: every cohort
photo is searched in the gallery exactly as a face from the camera is (`search`, top 1, as a clean or a masked face,
with the calibration's `fusion`), and the share of cohort photos whose best score reaches t is the FPIR of *this*
gallery at t. The threshold is where that share falls to the target FPIR. Each photo's best score is smoothed by a
Gaussian kernel (Silverman's bandwidth) so that the threshold moves continuously as the gallery changes. It only rises
as people are added (a photo's best score can only grow); with the "max" search it also only rises as templates are
added, while with "mean" a template added to a person moves that person's fused template and so the threshold either
way.

**A cohort person enrolled after all is no stranger.** When at least half the clean photos of a cohort person find
the same enrolled identity first, with a median score of at least `mate_level` (the size table's threshold at FPIR
0.01 % for one template: a score strangers almost never reach against one template), that person is taken to be
enrolled and all their photos are left out of this gallery's measurement (e.g. `g2d calibrate` run on the folder of
the very people then enrolled; or the benchmarks' round trip, which enrols held-out people the shipped cohort also
shows). A stranger's photos scatter over the gallery's identities; an enrolled person's find themselves. Without the
rule such a gallery's threshold would climb to 1 and nobody would be named.

The measurement is used where the cohort resolves the target: at least `MIN_NAMED` cohort photos may be named at it
(target FPIR x photos >= MIN_NAMED; g2d-edge-m's cohort holds about 1,700 photos per kind, so down to a target of
0.12 %); below that, and for an empty gallery, the size table answers. It is re-measured whenever a file gallery changes
(`Gallery.changes`); a database gallery is measured on a background thread (the size table answers until its first
measurement is done) and again when its counts change and at least every `REFRESH_S` seconds, while its last
measurement keeps answering (`CohortThresholds.threshold`).

Measured in `benchmarks/openset.py` (README "Open-set identification") against the size table on the same galleries.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..sidecar import PROBE_KINDS, StrangerCohort
from .calibration import erfc

log = logging.getLogger(__name__)

#: The fewest cohort photos the target FPIR must let be named for the cohort to set the threshold.
MIN_NAMED = 2.0
#: A gallery without a change counter (a database) is re-measured at least this often, in seconds.
REFRESH_S = 60.0
_BISECTIONS = 40


def _normal_sf(z: np.ndarray) -> np.ndarray:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * erfc(np.asarray(z, dtype=np.float64) / math.sqrt(2.0))


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


@dataclass(frozen=True)
class _Measurement:
    """The thresholds measured on one gallery (`state`: per kind, and the cohort's searches) in the state `key`
    (counts, change counter) at monotonic time `at`."""

    gallery: Any
    key: Any
    at: float
    state: Dict[Any, Any]


class CohortThresholds:
    """Thresholds at `target_fpir` measured on a gallery with a `StrangerCohort`, per probe kind, cached until the
    gallery changes; the cohort is searched with `fusion`, the search the faces are identified with.
    `threshold(gallery, kind, counts)` is None where the cohort does not resolve the target or the gallery is empty
    (the size table answers then)."""

    def __init__(self, cohort: StrangerCohort, target_fpir: float, mate_level: Optional[float] = None,
                 fusion: str = "max") -> None:
        self.cohort = cohort
        self.target_fpir = float(target_fpir)
        self.mate_level = mate_level
        self.fusion = fusion
        self.embeddings = {k: cohort.embeddings(k) for k in PROBE_KINDS}
        self.person = {k: cohort.person_of(k) for k in PROBE_KINDS}
        self.photos = {k: int(v.shape[0]) for k, v in self.embeddings.items()}
        #: per kind, the cohort photos left out of the last measurement as photos of enrolled people
        self.left_out: Dict[str, int] = {k: 0 for k in PROBE_KINDS}
        self._cached: Optional[_Measurement] = None
        self._refresher: Optional[threading.Thread] = None
        self._closing = False
        self._retry_at = -math.inf  # monotonic time before which a failed measurement is not tried again
        self._lock = threading.Lock()

    def usable(self, kind: str) -> bool:
        """Whether the cohort resolves the target FPIR for probes of `kind`."""
        return resolves(self.photos[kind], self.target_fpir)

    def threshold(self, gallery: Any, kind: str, counts: Tuple[int, int]) -> Optional[float]:
        """The measured threshold for a probe of `kind` against `gallery` holding `counts` (identities, templates);
        None: the size table answers.

        A file gallery (with a change counter) is measured here, after every change. A gallery without one (a
        database) is measured on a background thread, because its cohort search takes seconds
        (`benchmarks/openset_cohorts.py`) and would stall the faces waiting for a name: until its first measurement
        is done the size table answers (stricter than a measurement, as a rule), and afterwards the last measurement
        answers while the gallery is measured again (its counts changed, or `REFRESH_S` passed)."""
        if not self.usable(kind) or counts[1] == 0:
            return None
        changes = getattr(gallery, "changes", None)
        key = (counts, changes)
        now = time.monotonic()
        with self._lock:
            cached = self._cached
            same = cached is not None and cached.gallery is gallery  # one gallery at a time, by identity, not id()
            fresh = same and cached.key == key and (changes is not None or now - cached.at < REFRESH_S)
            if changes is None:
                return self._database_threshold(gallery, kind, key, fresh, same)
            if not fresh:
                cached = self._cached = _Measurement(gallery, key, now, {})
            if kind not in cached.state:
                cached.state[kind] = self._measure(gallery, kind, cached.state)
            return cached.state[kind]

    def wait_for_refresh(self, timeout_s: float) -> bool:
        """Wait until no background measurement runs (at most `timeout_s` seconds); whether none runs now."""
        thread = self._refresher
        if thread is not None:
            thread.join(timeout_s)
        return self._refresher is None or not self._refresher.is_alive()

    def close(self) -> None:
        """Say that the gallery is about to close (`Recognizer.close`): a background measurement it cuts short ends
        quietly instead of warning; no new one starts."""
        with self._lock:
            self._closing = True

    def _database_threshold(self, gallery: Any, kind: str, key: Any, fresh: bool, same: bool) -> Optional[float]:
        """`threshold` for a gallery without a change counter (lock held): the last measurement, or None while the
        first one runs; a measurement is started when none is fresh."""
        if not same:
            self._cached = _Measurement(gallery, None, -math.inf, {})
            log.info("open-set cohort: measuring the gallery in the background; the size table answers until then")
        assert self._cached is not None
        state = self._cached.state
        if not fresh:  # measure again every kind measured so far
            self._refresh_in_background(gallery, key, sorted({kind} | {k for k in PROBE_KINDS if k in state}), {})
        elif kind not in state:  # the same gallery state: add this kind to what is measured
            self._refresh_in_background(gallery, key, [kind], dict(state))
        return state.get(kind)

    def _refresh_in_background(self, gallery: Any, key: Any, kinds: List[str], base: Dict[Any, Any]) -> None:
        """Start measuring `gallery` for `kinds` on top of `base` (what is known of this gallery state), unless a
        measurement runs, the gallery is closing or the last one failed less than `REFRESH_S` ago (lock held)."""
        running = self._refresher is not None and self._refresher.is_alive()
        if self._closing or running or time.monotonic() < self._retry_at:
            return
        self._refresher = threading.Thread(target=self._refresh, args=(gallery, key, kinds, base), daemon=True,
                                           name="g2d-cohort-refresh")
        self._refresher.start()

    def _refresh(self, gallery: Any, key: Any, kinds: List[str], base: Dict[Any, Any]) -> None:
        state = dict(base)
        try:
            for kind in kinds:
                state[kind] = self._measure(gallery, kind, state)
        except Exception as exc:  # a thread's error would be lost: report it and keep the last threshold
            if self._closing:
                log.debug("open-set cohort: the gallery closed during a measurement (%s)", exc)
                return
            log.warning("open-set cohort: measuring the gallery failed (%s: %s); its last threshold (or the size "
                        "table) stays in use and the measurement is tried again in %.0f s", type(exc).__name__, exc,
                        REFRESH_S)
            with self._lock:
                self._retry_at = time.monotonic() + REFRESH_S
            return
        with self._lock:
            if self._cached is not None and self._cached.gallery is gallery:
                at = self._cached.at if base else time.monotonic()  # a kind added: the measurement's age stays
                self._cached = _Measurement(gallery, key, at, state)

    def _top1(self, gallery: Any, kind: str, state: Dict[Any, Any]) -> Tuple[List[Optional[str]], np.ndarray]:
        """(best identity, its score; None / -inf: no match) of every cohort photo of `kind`, searched once per
        gallery state as a face of that kind is searched."""
        if ("top1", kind) not in state:
            matches = gallery.search(self.embeddings[kind], top_k=1, masked=kind == "masked", fusion=self.fusion)
            state[("top1", kind)] = ([m[0].name if m else None for m in matches],
                                     np.array([m[0].score if m else -np.inf for m in matches], dtype=np.float64))
        return state[("top1", kind)]

    def _enrolled_people(self, gallery: Any, state: Dict[Any, Any]) -> np.ndarray:
        """The cohort people who are enrolled in `gallery` after all (`enrolled_people` on the clean photos)."""
        if self.mate_level is None:
            return np.zeros(0, dtype=np.int64)
        if "enrolled" not in state:
            names, best = self._top1(gallery, "clean", state)
            state["enrolled"] = enrolled_people(names, best, self.person["clean"], self.mate_level)
        return state["enrolled"]

    def _measure(self, gallery: Any, kind: str, state: Dict[Any, Any]) -> Optional[float]:
        strangers = ~np.isin(self.person[kind], self._enrolled_people(gallery, state))
        self.left_out[kind] = int((~strangers).sum())
        if self.left_out[kind]:
            log.info("open-set cohort: %d of %d %s stranger photos show people enrolled in the gallery after all "
                     "and are left out of the measurement", self.left_out[kind], strangers.size, kind)
        if not resolves(int(strangers.sum()), self.target_fpir):
            return None
        best = self._top1(gallery, kind, state)[1][strangers]
        if not np.isfinite(best).any():
            return None
        return threshold_from_best(best, self.target_fpir)


def enrolled_people(names: List[Optional[str]], best: np.ndarray, person: np.ndarray, level: float) -> np.ndarray:
    """The cohort people enrolled in the gallery after all: most of their photos find the same enrolled identity
    first, and those photos' median score reaches `level` (a score strangers almost never reach against one
    template). A stranger's photos scatter over the gallery's identities; an enrolled person's find themselves. Of
    two identities found by as many photos, the one with the higher median score is taken (the same answer in every
    process, whatever the order of a set of names)."""
    out = []
    for who in np.unique(person):
        rows = np.flatnonzero(person == who)
        by_name: Dict[str, List[int]] = {}
        for r in rows:
            if names[r] is not None:
                by_name.setdefault(names[r], []).append(int(r))
        if not by_name:
            continue
        same = max(by_name.values(), key=lambda found: (len(found), float(np.median(best[found]))))
        if 2 * len(same) >= len(rows) and float(np.median(best[same])) >= level:
            out.append(who)
    return np.array(out, dtype=np.int64)
