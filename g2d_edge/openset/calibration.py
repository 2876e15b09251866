"""The open-set calibration: how often a gallery of M templates names a stranger at each threshold, tabulated per
gallery size and target FPIR into an `OpenSetCalibration` (`g2d_edge.sidecar`) that `g2d_edge.openset.rule` reads.

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
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..sidecar import PROBE_KINDS, OpenSetCalibration, StrangerCohort

#: Gallery sizes (templates) the calibration tables are built for.
TEMPLATE_GRID = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 50000,
                 100000)
#: Target FPIRs the tables are built for (a target between two is interpolated; outside, refused).
FPIR_GRID = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2)
#: The one rule for a target FPIR (`option(**FPIR_RANGE)`, `g2d_edge.openset.rule.check_fpir`): within the tables.
FPIR_RANGE = {"low": FPIR_GRID[0], "high": FPIR_GRID[-1]}
#: Impostor scores above which each probe's tail is modelled (peaks over threshold).
TAIL_COUNT = 50
_SCORE_GRID = np.linspace(-0.2, 1.0, 1201)
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def erfc(x: Any) -> np.ndarray:
    """The complementary error function of every element of `x`, as float64 (the normal tails of the calibration
    and of `g2d_edge.openset.cohort`)."""
    return _ERFC(np.asarray(x, dtype=np.float64)).astype(np.float64)


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
            sf = erfc(z)
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
                      source: str, tail_count: int = TAIL_COUNT, tail: str = "gaussian",
                      fusion: str = "max", cohort: Optional[StrangerCohort] = None) -> OpenSetCalibration:
    """An `OpenSetCalibration` from stranger probes' scores against single distractor templates, per probe kind
    ("clean", "masked"): `probe_scores[kind][p]` holds probe p's cosines with every distractor. `fusion`: the gallery
    search it is for ("max": the distractors are templates, the table is per template; "mean": they are the fused
    templates of identities, the table is per identity). `cohort`: the stranger probes' embeddings, stored so that
    the SDK measures the threshold on the gallery at hand (`g2d_edge.openset.cohort`)."""
    missing = [k for k in PROBE_KINDS if not len(probe_scores.get(k, ()))]
    if missing:
        raise InputError(f"no {' or '.join(missing)} stranger probes to calibrate on")
    tables = {k: threshold_table(probe_scores[k], tail_count=tail_count, tail=tail) for k in PROBE_KINDS}
    return OpenSetCalibration(templates=list(TEMPLATE_GRID), fpir=list(FPIR_GRID), thresholds=tables,
                              measured_templates=int(measured_templates), embedding_space=embedding_space,
                              probes={k: len(probe_scores[k]) for k in PROBE_KINDS}, fusion=fusion, source=source,
                              cohort=cohort)


#: The "mean" calibration (one fused template per identity, `g2d_edge.sidecar.OpenSetCalibration.fusion`): stranger
#: probes are scored against mean templates of this many photos of each other calibration person (a gallery's people
#: hold one to several templates), `MEAN_DRAWS` random draws of each size (seeded).
MEAN_TEMPLATE_COUNTS = (1, 2, 3, 5)
MEAN_DRAWS = 4
MEAN_SEED = 21


def mean_templates(emb: np.ndarray, who: np.ndarray, counts: Tuple[int, ...] = MEAN_TEMPLATE_COUNTS,
                   draws: int = MEAN_DRAWS, seed: int = MEAN_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """(templates, their person) : renormalised means of `counts` random photos of each person (`draws` draws each;
    one when all photos are drawn), the fused templates a "mean" gallery holds."""
    rng = np.random.default_rng(seed)
    out, owners = [], []
    for person in np.unique(who):
        rows = emb[who == person]
        for k in counts:
            for _ in range(0 if k > len(rows) else 1 if k == len(rows) else draws):
                m = rows[rng.choice(len(rows), k, replace=False)].mean(axis=0)
                out.append(m / np.linalg.norm(m))
                owners.append(person)
    return np.stack(out).astype(np.float32), np.array(owners)


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
