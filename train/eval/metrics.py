"""Face-verification and identification metrics (pure numpy).

Conventions used everywhere in `train.eval`:

- A *score* is a similarity (cosine of two embeddings): higher means "more likely the same person".
- A pair is **accepted** (predicted "same person") when ``score >= threshold``.
- ``same`` is a boolean array: True for a genuine pair (same identity), False for an impostor pair.

Metrics
    * 10-fold accuracy (LFW protocol): for each fold, the best threshold is chosen on the other folds and the
      accuracy is measured on the held-out fold; the mean and the (population, ``ddof=0``) standard deviation
      over folds are reported.
    * ROC curve and its AUC (trapezoid rule; tied scores are grouped, so a genuine/impostor tie counts 1/2).
    * TAR@FAR: the threshold for a target FAR is the smallest value ``t`` such that the fraction of impostor
      scores ``>= t`` is ``<= FAR`` (see `threshold_at_far`); TAR is the fraction of genuine scores ``>= t``.
      A FAR below ``1 / n_impostor`` cannot be resolved by the data: it is reported as NaN with
      ``far_resolved[key] = False`` instead of a made-up number.
    * Best threshold on all pairs (`best_threshold`).
    * Closed-set top-1 identification (`identify`, `top1_accuracy`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from g2d_edge.errors import InputError
from g2d_edge.vectors import l2_normalise

log = logging.getLogger(__name__)

DEFAULT_FARS: Tuple[float, ...] = (1e-2, 1e-3, 1e-4)
DEFAULT_FOLDS = 10


# ----------------------------------------------------------------------------------------------------------------
# Result objects
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class VerificationResult:
    """Verification metrics of one set of scored pairs.

    ``tar_at_far``, ``far_thresholds`` and ``far_resolved`` are keyed by `far_key` (e.g. ``"0.001"``).
    Unresolvable FARs (too few impostor pairs) have NaN TAR and threshold and ``far_resolved[key] is False``.
    """

    accuracy: float  # mean k-fold accuracy
    accuracy_std: float  # population std of the per-fold accuracies
    auc: float  # ROC AUC
    best_threshold: float  # threshold maximising accuracy on all pairs
    tar_at_far: Dict[str, float]
    n_genuine: int
    n_impostor: int
    best_accuracy: float = float("nan")  # accuracy on all pairs at best_threshold (optimistic; not cross-validated)
    far_thresholds: Dict[str, float] = field(default_factory=dict)
    far_resolved: Dict[str, bool] = field(default_factory=dict)
    n_folds: int = 0

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become ``None``)."""
        return json_safe(asdict(self))


@dataclass
class IdentificationResult:
    """Closed-set top-1 identification accuracy."""

    top1: float
    n_probes: int
    n_identities: int

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return json_safe(asdict(self))


@dataclass(frozen=True)
class TarAtFar:
    """TAR at one target FAR, with the threshold that realises it and the FAR actually measured there."""

    far: float
    tar: float  # NaN when not resolved
    threshold: float  # NaN when not resolved
    measured_far: float  # fraction of impostors >= threshold (NaN when not resolved)
    resolved: bool


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------
def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of similarities, got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values; drop those pairs before evaluating")
    return arr


def _as_same(same: Any, n: int) -> np.ndarray:
    arr = np.asarray(same)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"same must be a 1-D array with one entry per score ({n}), got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise InputError("same must hold booleans or 0/1 (1 = same person)")
        arr = arr.astype(bool)
    return arr


def _scores_and_labels(scores: Any, same: Any, need_both: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores)
    y = _as_same(same, s.shape[0])
    if s.size == 0:
        raise InputError("no pairs to evaluate")
    if need_both and (y.all() or not y.any()):
        raise InputError(
            f"need both genuine and impostor pairs, got {int(y.sum())} genuine and {int((~y).sum())} impostor"
        )
    return s, y


def far_key(far: float) -> str:
    """The dict key used for a FAR in results and tables, e.g. ``far_key(1e-3) == "0.001"``."""
    return format(float(far), "g")


# ----------------------------------------------------------------------------------------------------------------
# Threshold and accuracy
# ----------------------------------------------------------------------------------------------------------------
def _midpoint(lower: float, upper: float) -> float:
    mid = lower + (upper - lower) / 2.0
    return upper if mid <= lower else mid


def best_threshold(scores: Any, same: Any) -> Tuple[float, float]:
    """The threshold that maximises accuracy on these pairs, and that accuracy.

    Candidates are every distinct score ``v`` (accept ``score >= v``) plus "reject all". Among equally good
    candidates the lowest is taken. The returned threshold is the midpoint between the chosen ``v`` and the next
    lower distinct score (so it classifies these pairs exactly as ``v`` does while leaving a margin on both
    sides); when ``v`` is the lowest score it is ``v`` itself, and "reject all" returns the float just above the
    highest score. Pairs of only one kind are allowed here.
    """
    s, y = _scores_and_labels(scores, same, need_both=False)
    cand = np.unique(s)
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    tp = pos.size - np.searchsorted(pos, cand, side="left")
    tn = np.searchsorted(neg, cand, side="left")
    correct = np.append(tp + tn, neg.size)  # last entry: reject everything
    k = int(np.argmax(correct))
    acc = float(correct[k]) / s.size
    if k == cand.size:
        return float(np.nextafter(cand[-1], np.inf)), acc
    if k == 0:
        return float(cand[0]), acc
    return _midpoint(float(cand[k - 1]), float(cand[k])), acc


def accuracy_at(scores: Any, same: Any, threshold: float) -> float:
    """Fraction of pairs classified correctly when ``score >= threshold`` means "same person"."""
    s, y = _scores_and_labels(scores, same, need_both=False)
    return float(np.mean((s >= threshold) == y))


def assign_folds(same: Any, n_folds: int = DEFAULT_FOLDS, seed: int = 0) -> np.ndarray:
    """Deterministic stratified folds: genuine and impostor pairs are each shuffled and dealt round-robin.

    Every fold gets the same number of genuine (and of impostor) pairs, give or take one. Returns an int64 array
    of fold ids in ``[0, n_folds)``.
    """
    if n_folds < 1:
        raise InputError(f"n_folds must be >= 1, got {n_folds}")
    y = _as_same(same, len(np.asarray(same)))
    rng = np.random.default_rng(seed)
    folds = np.empty(y.shape[0], dtype=np.int64)
    for kind in (True, False):
        idx = np.flatnonzero(y == kind)
        idx = idx[rng.permutation(idx.size)]
        folds[idx] = np.arange(idx.size) % n_folds
    return folds


def kfold_accuracy(
    scores: Any, same: Any, folds: Optional[Any] = None, n_folds: int = DEFAULT_FOLDS, seed: int = 0
) -> Tuple[float, float, np.ndarray]:
    """LFW-protocol k-fold accuracy: returns ``(mean, std, per_fold_accuracies)``.

    For each fold the threshold is `best_threshold` of the other folds; accuracy is measured on the held-out
    fold. ``folds`` gives each pair's fold id (e.g. from an LFW file); when omitted, `assign_folds` deals
    ``min(n_folds, n_pairs)`` stratified folds under ``seed``. The std is the population std (``ddof=0``).
    """
    s, y = _scores_and_labels(scores, same, need_both=False)
    if folds is None:
        folds = assign_folds(y, min(n_folds, s.size), seed)
    f = np.asarray(folds)
    if f.shape != s.shape:
        raise InputError(f"folds must have one entry per pair ({s.size}), got shape {f.shape}")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise InputError(f"k-fold accuracy needs at least 2 folds, got {fold_ids.size}; pass more pairs or folds")
    accs = np.empty(fold_ids.size, dtype=np.float64)
    for i, fold in enumerate(fold_ids):
        test = f == fold
        thr, _ = best_threshold(s[~test], y[~test])
        accs[i] = np.mean((s[test] >= thr) == y[test])
    return float(accs.mean()), float(accs.std()), accs


# ----------------------------------------------------------------------------------------------------------------
# ROC, AUC and TAR@FAR
# ----------------------------------------------------------------------------------------------------------------
def roc_curve(scores: Any, same: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)``, thresholds decreasing from ``+inf``.

    Point ``i`` is the operating point of accepting ``score >= thresholds[i]``; tied scores form one point, so a
    run of ties appears as one diagonal step. Starts at (0, 0) and ends at (1, 1).
    """
    s, y = _scores_and_labels(scores, same)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.append(np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1)
    tps = np.cumsum(y_sorted)[last_of_group]
    fps = (last_of_group + 1) - tps
    tpr = np.concatenate(([0.0], tps / y.sum()))
    fpr = np.concatenate(([0.0], fps / (~y).sum()))
    thresholds = np.concatenate(([np.inf], s_sorted[last_of_group]))
    return fpr, tpr, thresholds


def roc_auc(scores: Any, same: Any) -> float:
    """Area under the ROC curve (trapezoid rule; a genuine/impostor tie counts 1/2)."""
    fpr, tpr, _ = roc_curve(scores, same)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _check_far(far: float) -> float:
    far = float(far)
    if not 0.0 < far < 1.0:
        raise InputError(f"FAR must lie strictly between 0 and 1, got {far}")
    return far


def _allowed_false_accepts(far: float, n_impostor: int) -> int:
    # The small epsilon keeps e.g. 1e-3 * 1000 == 0.99999... from losing its one allowed false accept.
    return int(math.floor(far * n_impostor + 1e-9))


def _threshold_above_rank(impostor_desc: np.ndarray, m: int) -> float:
    # impostor_desc[m] is the (m+1)-th largest impostor score: accepting it (or anything tied with it) would let
    # at least m+1 impostors through; every value strictly above it lets at most m through.
    return float(np.nextafter(impostor_desc[m], np.inf))


def threshold_at_far(impostor_scores: Any, far: float) -> float:
    """The smallest threshold ``t`` with ``mean(impostor_scores >= t) <= far``.

    With ``m = floor(far * n)`` false accepts allowed among ``n`` impostor scores, this is the float just above
    the ``(m+1)``-th largest impostor score. Used to choose the SDK's default threshold from held-out impostor
    pairs.

    Raises:
        InputError: when ``far`` is not in (0, 1), or when there are fewer than ``1 / far`` impostor scores (the
            FAR cannot be resolved: collect more impostor pairs or ask for a larger FAR).
    """
    far = _check_far(far)
    imp = _as_scores(impostor_scores, "impostor_scores")
    m = _allowed_false_accepts(far, imp.size)
    if m < 1:
        raise InputError(
            f"FAR {far:g} needs at least {math.ceil(1 / far - 1e-9)} impostor pairs to be resolved, got {imp.size}; "
            "add impostor pairs or choose a larger FAR"
        )
    return _threshold_above_rank(np.sort(imp)[::-1], m)


def tar_at_far(genuine_scores: Any, impostor_scores: Any, far: float) -> TarAtFar:
    """TAR at the threshold of `threshold_at_far`; NaN with ``resolved=False`` when the FAR is unresolvable."""
    far = _check_far(far)
    gen = _as_scores(genuine_scores, "genuine_scores")
    imp = _as_scores(impostor_scores, "impostor_scores")
    if gen.size == 0:
        raise InputError("tar_at_far needs at least one genuine score")
    if _allowed_false_accepts(far, imp.size) < 1:
        nan = float("nan")
        return TarAtFar(far=far, tar=nan, threshold=nan, measured_far=nan, resolved=False)
    thr = threshold_at_far(imp, far)
    return TarAtFar(
        far=far,
        tar=float(np.mean(gen >= thr)),
        threshold=thr,
        measured_far=float(np.mean(imp >= thr)),
        resolved=True,
    )


# ----------------------------------------------------------------------------------------------------------------
# All verification metrics at once
# ----------------------------------------------------------------------------------------------------------------
def evaluate_verification(
    scores: Any,
    same: Any,
    folds: Optional[Any] = None,
    fars: Sequence[float] = DEFAULT_FARS,
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> VerificationResult:
    """Every verification metric of scored pairs (see the module docstring for the definitions)."""
    s, y = _scores_and_labels(scores, same)
    mean_acc, std_acc, per_fold = kfold_accuracy(s, y, folds=folds, n_folds=n_folds, seed=seed)
    thr, best_acc = best_threshold(s, y)
    tars = [tar_at_far(s[y], s[~y], far) for far in fars]
    unresolved = [far_key(t.far) for t in tars if not t.resolved]
    if unresolved:
        log.warning(
            "TAR@FAR not resolved for FAR %s: only %d impostor pairs (reported as NaN)",
            ", ".join(unresolved),
            int((~y).sum()),
        )
    return VerificationResult(
        accuracy=mean_acc,
        accuracy_std=std_acc,
        auc=roc_auc(s, y),
        best_threshold=thr,
        tar_at_far={far_key(t.far): t.tar for t in tars},
        n_genuine=int(y.sum()),
        n_impostor=int((~y).sum()),
        best_accuracy=best_acc,
        far_thresholds={far_key(t.far): t.threshold for t in tars},
        far_resolved={far_key(t.far): t.resolved for t in tars},
        n_folds=int(per_fold.size),
    )


# ----------------------------------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------------------------------
def as_embeddings(emb: Any, name: str) -> np.ndarray:
    arr = np.asarray(emb, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D (N, D) embedding array, got shape {arr.shape}")
    return arr


def l2_normalize(emb: Any, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (float64); zero rows stay zero, NaN rows stay NaN."""
    return l2_normalise(as_embeddings(emb, "embeddings"), eps, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------------------
# Identification
# ----------------------------------------------------------------------------------------------------------------
def top1_accuracy(logits: Any, labels: Any) -> float:
    """Closed-set top-1 accuracy: fraction of rows whose arg-max logit equals the label."""
    lg = np.asarray(logits)
    lb = np.asarray(labels)
    if lg.ndim != 2 or lb.ndim != 1 or lg.shape[0] != lb.shape[0] or lg.shape[0] == 0:
        raise InputError(f"need logits (N, C) and labels (N,) with N > 0, got {lg.shape} and {lb.shape}")
    return float(np.mean(np.argmax(lg, axis=1) == lb))


def build_templates(embeddings: Any, labels: Any) -> Tuple[np.ndarray, np.ndarray]:
    """One unit-norm template per identity (mean of its unit-norm embeddings): ``(templates (K, D), ids (K,))``."""
    emb = l2_normalize(embeddings)
    lab = np.asarray(labels)
    if lab.shape != (emb.shape[0],):
        raise InputError(f"labels must have one entry per embedding ({emb.shape[0]}), got shape {lab.shape}")
    ids, inverse = np.unique(lab, return_inverse=True)
    sums = np.zeros((ids.size, emb.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, emb)
    return l2_normalize(sums), ids


def identify(
    gallery_emb: Any, gallery_labels: Any, probe_emb: Any, probe_labels: Any
) -> IdentificationResult:
    """Closed-set identification: each probe takes the label of its most similar (cosine) gallery template.

    Raises:
        InputError: when a probe's identity has no gallery image (this is a closed-set measure).
    """
    templates, ids = build_templates(gallery_emb, gallery_labels)
    probes = l2_normalize(probe_emb)
    truth = np.asarray(probe_labels)
    if truth.shape != (probes.shape[0],) or truth.size == 0:
        raise InputError(f"need probe labels (N,) for N > 0 probes, got shape {truth.shape}")
    missing = np.setdiff1d(truth, ids)
    if missing.size:
        raise InputError(f"probe identities missing from the gallery: {missing[:5].tolist()} (closed-set evaluation)")
    predicted = ids[np.argmax(probes @ templates.T, axis=1)]
    return IdentificationResult(
        top1=float(np.mean(predicted == truth)), n_probes=int(truth.size), n_identities=int(ids.size)
    )


def split_gallery_probe(labels: Any, n_gallery: int = 1, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Row indices ``(gallery, probe)``: ``n_gallery`` random images per identity enrol, the rest probe.

    Identities with ``n_gallery`` images or fewer have no probe and are left out of both sets.
    """
    if n_gallery < 1:
        raise InputError(f"n_gallery must be >= 1, got {n_gallery}")
    lab = np.asarray(labels)
    rng = np.random.default_rng(seed)
    gallery: List[np.ndarray] = []
    probe: List[np.ndarray] = []
    for ident in np.unique(lab):
        rows = np.flatnonzero(lab == ident)
        if rows.size <= n_gallery:
            continue
        rows = rows[rng.permutation(rows.size)]
        gallery.append(np.sort(rows[:n_gallery]))
        probe.append(np.sort(rows[n_gallery:]))
    if not gallery:
        raise InputError(f"no identity has more than {n_gallery} image(s); nothing to probe")
    return np.concatenate(gallery), np.concatenate(probe)


# ----------------------------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "to_dict"):
        return json_safe(value.to_dict())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
