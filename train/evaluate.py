"""Face-verification and identification metrics, and the pairs they are measured on (pure numpy).

Conventions used everywhere in this module:

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

Pairs
    * LFW ``pairs.txt`` files (`parse_lfw_pairs`, `load_lfw_pairs`) and generated pairs from labels
      (`generate_pairs`) or from an image folder ``root/<identity>/<image>`` (`generate_folder_pairs`).

Conditions
    * `evaluate_conditions` scores the same pairs unmasked–unmasked, masked–unmasked (masked image a, clean
      image b) and masked–masked.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from g2d_edge.errors import InputError
from g2d_edge.files import atomic_write_bytes
from g2d_edge.io import IMAGE_SUFFIXES, list_people
from g2d_edge.vectors import l2_normalise

log = logging.getLogger(__name__)

DEFAULT_FARS: Tuple[float, ...] = (1e-2, 1e-3, 1e-4)
DEFAULT_FOLDS = 10

CONDITION_CLEAN = "unmasked-unmasked"
CONDITION_MIXED = "masked-unmasked"
CONDITION_MASKED = "masked-masked"
CONDITIONS: Tuple[str, ...] = (CONDITION_CLEAN, CONDITION_MIXED, CONDITION_MASKED)

PathLike = Union[str, Path]


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
        return _json_safe(asdict(self))


@dataclass
class IdentificationResult:
    """Closed-set top-1 identification accuracy."""

    top1: float
    n_probes: int
    n_identities: int

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return _json_safe(asdict(self))


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
# Pairs
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexPairs:
    """Pairs of row indices into an embedding array: ``a[i]`` vs ``b[i]``, genuine when ``same[i]``.

    ``folds`` (optional) gives each pair's fold id for k-fold accuracy.
    """

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        n = np.asarray(self.a).shape
        if len(n) != 1 or np.asarray(self.b).shape != n or np.asarray(self.same).shape != n:
            raise InputError("IndexPairs.a, .b and .same must be 1-D arrays of the same length")
        if self.folds is not None and np.asarray(self.folds).shape != n:
            raise InputError("IndexPairs.folds must have one entry per pair")

    def __len__(self) -> int:
        return int(np.asarray(self.a).shape[0])


@dataclass
class PathPairs:
    """Image pairs as ``(path_a, path_b, same)`` tuples, with optional fold ids (one per pair)."""

    pairs: List[Tuple[Path, Path, bool]]
    folds: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Tuple[Path, Path, bool]]:
        return iter(self.pairs)

    def __getitem__(self, i: int) -> Tuple[Path, Path, bool]:
        return self.pairs[i]

    @property
    def same(self) -> np.ndarray:
        """Boolean array, True for genuine pairs."""
        return np.array([p[2] for p in self.pairs], dtype=bool)

    def to_index_pairs(self) -> Tuple[List[Path], IndexPairs]:
        """The distinct images (in first-seen order) and the pairs as indices into that list.

        Embed each listed image once, then score with `pair_scores` / `evaluate_conditions`.
        """
        index: Dict[Path, int] = {}
        for path_a, path_b, _ in self.pairs:
            index.setdefault(path_a, len(index))
            index.setdefault(path_b, len(index))
        a = np.array([index[p[0]] for p in self.pairs], dtype=np.int64)
        b = np.array([index[p[1]] for p in self.pairs], dtype=np.int64)
        return list(index), IndexPairs(a=a, b=b, same=self.same, folds=self.folds)


def lfw_image_path(root: PathLike, name: str, number: int, suffix: str = ".jpg") -> Path:
    """LFW's image path ``<root>/<name>/<name>_<%04d><suffix>``."""
    return Path(root) / name / f"{name}_{int(number):04d}{suffix}"


def _parse_lfw_header(tokens: List[str]) -> Optional[Tuple[int, int]]:
    """``(n_sets, n_per_class)`` from a header line, or None when the line is a pair line."""
    if not tokens or not all(t.isdigit() for t in tokens):
        return None
    if len(tokens) == 1:
        return 1, int(tokens[0])
    if len(tokens) == 2:
        return int(tokens[0]), int(tokens[1])
    raise InputError(f"LFW pairs header must be 'N' or 'SETS N', got {' '.join(tokens)!r}")


def _parse_lfw_line(tokens: List[str], root: Path, suffix: str, line_no: int) -> Tuple[Path, Path, bool]:
    try:
        if len(tokens) == 3:
            name, n1, n2 = tokens
            return lfw_image_path(root, name, int(n1), suffix), lfw_image_path(root, name, int(n2), suffix), True
        if len(tokens) == 4:
            name1, n1, name2, n2 = tokens
            return lfw_image_path(root, name1, int(n1), suffix), lfw_image_path(root, name2, int(n2), suffix), False
    except ValueError:
        pass
    raise InputError(
        f"line {line_no} of the LFW pairs file is not 'name n1 n2' or 'name1 n1 name2 n2': {' '.join(tokens)!r}"
    )


def _lfw_folds(pairs: List[Tuple[Path, Path, bool]], n_sets: int, n_per: int) -> np.ndarray:
    expected = n_sets * 2 * n_per
    if len(pairs) != expected:
        raise InputError(
            f"LFW pairs header announces {n_sets} set(s) of {n_per} same + {n_per} different pairs "
            f"({expected} lines), but the file has {len(pairs)} pair lines"
        )
    folds = np.arange(expected, dtype=np.int64) // (2 * n_per)
    same = np.array([p[2] for p in pairs], dtype=bool)
    for fold in range(n_sets):
        block = same[folds == fold]
        if not (block[:n_per].all() and not block[n_per:].any()):
            raise InputError(
                f"LFW pairs set {fold + 1} must list {n_per} same-person lines then {n_per} different-person lines"
            )
    return folds


def parse_lfw_pairs(text: str, root: PathLike, suffix: str = ".jpg") -> PathPairs:
    """Parse the text of an LFW ``pairs.txt``.

    Accepted forms: a ``"SETS N"`` header (e.g. ``"10 300"``: 10 folds, each N same-person lines then N
    different-person lines; fold ids come from the file), a ``"N"`` header (one set, e.g. ``pairsDevTrain.txt``),
    or no header (pair lines only). Without a multi-set header ``folds`` is None (assign them with
    `assign_folds`). Same-person lines are ``name n1 n2``, different-person lines ``name1 n1 name2 n2``.
    Blank lines and lines starting with ``#`` are ignored. Image paths: ``<root>/<name>/<name>_<%04d><suffix>``.
    """
    root = Path(root)
    header: Optional[Tuple[int, int]] = None
    pairs: List[Tuple[Path, Path, bool]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if not pairs and header is None:
            header = _parse_lfw_header(tokens)
            if header is not None:
                continue
        pairs.append(_parse_lfw_line(tokens, root, suffix, line_no))
    if not pairs:
        raise InputError("the LFW pairs file lists no pairs")
    if header is None:
        return PathPairs(pairs=pairs, folds=None)
    folds = _lfw_folds(pairs, *header)
    return PathPairs(pairs=pairs, folds=folds if header[0] > 1 else None)


def load_lfw_pairs(pairs_file: PathLike, root: PathLike, suffix: str = ".jpg") -> PathPairs:
    """Read and parse an LFW ``pairs.txt`` (see `parse_lfw_pairs`)."""
    path = Path(pairs_file)
    if not path.is_file():
        raise FileNotFoundError(f"LFW pairs file not found: {path}")
    return parse_lfw_pairs(path.read_text(encoding="utf-8"), root, suffix)


def _balanced_quota(capacity: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` over bins as evenly as their capacities allow (water-filling; remainder at random)."""
    quota = np.zeros(capacity.size, dtype=np.int64)
    remaining = total
    order = np.argsort(capacity, kind="stable")
    for pos, i in enumerate(order):
        share = remaining // (order.size - pos)
        quota[i] = min(int(capacity[i]), share)
        remaining -= quota[i]
    for i in rng.permutation(capacity.size):
        if remaining == 0:
            break
        if quota[i] < capacity[i]:
            quota[i] += 1
            remaining -= 1
    return quota


def _genuine_pairs(groups: List[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct genuine pairs spread evenly over identities; rows (a, b)."""
    capacity = np.array([g.size * (g.size - 1) // 2 for g in groups], dtype=np.int64)
    quota = _balanced_quota(capacity, n, rng)
    out = []
    for group, q in zip(groups, quota):
        if q == 0:
            continue
        iu, ju = np.triu_indices(group.size, k=1)
        pick = rng.choice(iu.size, size=int(q), replace=False)
        out.append(np.stack([group[iu[pick]], group[ju[pick]]], axis=1))
    pairs = np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)
    swap = rng.random(pairs.shape[0]) < 0.5  # random order inside a pair (a is the masked side in mixed pairs)
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs


def _impostor_pairs(groups: List[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct impostor pairs; identity a cycles over the shuffled identities, b is another one."""
    n_groups = len(groups)
    seen: set = set()
    out: List[Tuple[int, int]] = []
    cycle = rng.permutation(n_groups)
    draws = 0
    max_draws = 50 * n + 1000
    while len(out) < n:
        if draws > max_draws:
            raise InputError(f"could not draw {n} distinct impostor pairs; ask for fewer pairs")
        ga = cycle[draws % n_groups]
        gb = (ga + 1 + rng.integers(n_groups - 1)) % n_groups
        draws += 1
        a = int(groups[ga][rng.integers(groups[ga].size)])
        b = int(groups[gb][rng.integers(groups[gb].size)])
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _all_impostor_pairs(groups: List[np.ndarray]) -> np.ndarray:
    blocks = [
        np.stack(np.meshgrid(groups[g], groups[h], indexing="ij"), axis=-1).reshape(-1, 2)
        for g in range(len(groups))
        for h in range(g + 1, len(groups))
    ]
    return np.concatenate(blocks).astype(np.int64)


def _impostor_capacity(sizes: np.ndarray) -> int:
    total = int(sizes.sum())
    return (total * total - int(np.sum(sizes.astype(np.int64) ** 2))) // 2


def generate_pairs(
    labels: Any, n_pairs: int, seed: int = 0, n_folds: int = DEFAULT_FOLDS
) -> IndexPairs:
    """Balanced genuine/impostor pairs of row indices, deterministic under ``seed``.

    ``n_pairs // 2`` genuine and as many impostor pairs are drawn. Genuine pairs come only from identities with
    at least 2 images and are spread as evenly over those identities as their sizes allow; impostor pairs cycle
    over identities. No image is paired with itself and no unordered pair repeats. When fewer genuine (or
    impostor) pairs exist than asked for, both kinds are capped to the smaller count (with a warning), so the
    pairs stay balanced. Integer labels < 0 mark unlabelled images (as in `train.prepare.AlignedCache`) and are
    skipped. Folds are dealt by `assign_folds` after a shuffle, so each fold holds a balanced mix.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels must be 1-D, got shape {labels.shape}")
    if n_pairs < 2:
        raise InputError(f"n_pairs must be >= 2, got {n_pairs}")
    rows = np.arange(labels.size)
    if labels.dtype.kind in "iu":
        rows = rows[labels >= 0]
    uniq, inverse = np.unique(labels[rows], return_inverse=True)
    groups = [rows[inverse == k] for k in range(uniq.size)]
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    genuine_cap = int(np.sum(sizes * (sizes - 1) // 2))
    impostor_cap = _impostor_capacity(sizes)
    if genuine_cap == 0 or impostor_cap == 0:
        raise InputError(
            "generated pairs need at least one identity with 2+ images and at least 2 identities "
            f"(got {uniq.size} identities, {genuine_cap} possible genuine pairs)"
        )
    n_each = min(n_pairs // 2, genuine_cap, impostor_cap)
    if n_each < n_pairs // 2:
        log.warning(
            "asked for %d pairs per kind, only %d possible; generating %d + %d", n_pairs // 2, n_each, n_each, n_each
        )
    rng = np.random.default_rng(seed)
    gen = _genuine_pairs(groups, n_each, rng)
    if 2 * n_each > impostor_cap:  # few possible impostor pairs: enumerate them all (<= 2 * n_each), then choose
        all_imp = _all_impostor_pairs(groups)
        imp = all_imp[rng.choice(all_imp.shape[0], size=n_each, replace=False)]
    else:
        imp = _impostor_pairs(groups, n_each, rng)
    both = np.concatenate([gen, imp])
    same = np.concatenate([np.ones(n_each, dtype=bool), np.zeros(n_each, dtype=bool)])
    order = rng.permutation(same.size)
    both, same = both[order], same[order]
    folds = assign_folds(same, min(n_folds, same.size), seed=int(rng.integers(2**31)))
    return IndexPairs(a=both[:, 0].copy(), b=both[:, 1].copy(), same=same, folds=folds)


def list_identity_images(
    root: PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> Tuple[List[Path], np.ndarray, List[str]]:
    """Images of a folder ``root/<identity>/<image>``: ``(paths, labels, identity_names)``, sorted by name.

    ``labels[i]`` indexes ``identity_names``. Hidden files and other suffixes are skipped (`g2d_edge.io.list_people`,
    the one image-folder reader).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected root/<identity>/<image>)")
    people = list_people(root, suffixes)
    if not people:
        raise InputError(f"no images with suffix {sorted(s.lower() for s in suffixes)} under {root}/<identity>/")
    paths = [path for _, photos in people for path in photos]
    labels = [k for k, (_, photos) in enumerate(people) for _ in photos]
    return paths, np.array(labels, dtype=np.int64), [name for name, _ in people]


def generate_folder_pairs(
    root: PathLike,
    n_pairs: int,
    seed: int = 0,
    n_folds: int = DEFAULT_FOLDS,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> PathPairs:
    """Generated pairs (see `generate_pairs`) over the images of ``root/<identity>/<image>``."""
    paths, labels, _ = list_identity_images(root, suffixes)
    idx = generate_pairs(labels, n_pairs, seed=seed, n_folds=n_folds)
    pairs = [(paths[int(a)], paths[int(b)], bool(s)) for a, b, s in zip(idx.a, idx.b, idx.same)]
    return PathPairs(pairs=pairs, folds=idx.folds)


# ----------------------------------------------------------------------------------------------------------------
# Scores and conditions
# ----------------------------------------------------------------------------------------------------------------
def _as_embeddings(emb: Any, name: str) -> np.ndarray:
    arr = np.asarray(emb, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D (N, D) embedding array, got shape {arr.shape}")
    return arr


def l2_normalize(emb: Any, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (float64); zero rows stay zero, NaN rows stay NaN."""
    return l2_normalise(_as_embeddings(emb, "embeddings"), eps, dtype=np.float64)


def cosine_scores(emb_a: Any, emb_b: Any) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = l2_normalize(emb_a)
    b = l2_normalize(emb_b)
    if a.shape != b.shape:
        raise InputError(f"embedding arrays differ in shape: {a.shape} vs {b.shape}")
    return np.einsum("nd,nd->n", a, b)


def _check_indices(pairs: IndexPairs, n_rows: int) -> None:
    for side in (pairs.a, pairs.b):
        side = np.asarray(side)
        if side.size and (side.min() < 0 or side.max() >= n_rows):
            raise InputError(f"pair indices must lie in [0, {n_rows}), got [{side.min()}, {side.max()}]")


def pair_scores(emb_a_side: Any, pairs: IndexPairs, emb_b_side: Optional[Any] = None) -> np.ndarray:
    """Cosine score of every pair: rows ``pairs.a`` of ``emb_a_side`` vs rows ``pairs.b`` of ``emb_b_side``.

    ``emb_b_side`` defaults to ``emb_a_side``. NaN embeddings give NaN scores.
    """
    ea = _as_embeddings(emb_a_side, "embeddings")
    eb = ea if emb_b_side is None else _as_embeddings(emb_b_side, "embeddings")
    if ea.shape != eb.shape:
        raise InputError(f"embedding arrays differ in shape: {ea.shape} vs {eb.shape}")
    _check_indices(pairs, ea.shape[0])
    a = np.asarray(pairs.a, dtype=np.int64)
    b = np.asarray(pairs.b, dtype=np.int64)
    return cosine_scores(ea[a], eb[b])


def condition_scores(clean_emb: Any, masked_emb: Optional[Any], pairs: IndexPairs) -> Dict[str, np.ndarray]:
    """Scores of the pairs per condition; masked–unmasked uses the masked image a and the clean image b."""
    scores = {CONDITION_CLEAN: pair_scores(clean_emb, pairs)}
    if masked_emb is not None:
        scores[CONDITION_MIXED] = pair_scores(masked_emb, pairs, clean_emb)
        scores[CONDITION_MASKED] = pair_scores(masked_emb, pairs)
    return scores


def evaluate_conditions(
    clean_emb: Any,
    masked_emb: Optional[Any],
    pairs: IndexPairs,
    fars: Sequence[float] = DEFAULT_FARS,
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> Dict[str, VerificationResult]:
    """Verification results per condition: ``"unmasked-unmasked"``, ``"masked-unmasked"``, ``"masked-masked"``.

    ``clean_emb`` and ``masked_emb`` are (N, D) embeddings of the same N images without and with a mask (row i =
    image i); ``masked_emb=None`` evaluates the unmasked condition only. Pairs whose score is not finite in any
    condition (e.g. a NaN embedding from a failed teacher) are dropped from every condition, with a warning, so
    the conditions stay comparable.
    """
    scores = condition_scores(clean_emb, masked_emb, pairs)
    keep = np.logical_and.reduce([np.isfinite(s) for s in scores.values()])
    if not keep.all():
        log.warning("dropping %d of %d pairs with a non-finite score (NaN embedding)", int((~keep).sum()), keep.size)
    same = np.asarray(pairs.same, dtype=bool)[keep]
    folds = None if pairs.folds is None else np.asarray(pairs.folds)[keep]
    return {
        name: evaluate_verification(s[keep], same, folds=folds, fars=fars, n_folds=n_folds, seed=seed)
        for name, s in scores.items()
    }


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
# Reporting
# ----------------------------------------------------------------------------------------------------------------
def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def format_table(results: Mapping[str, VerificationResult]) -> str:
    """A Markdown table, one row per condition/model; unresolved TAR@FAR shows as ``n/a``."""
    keys: List[str] = []
    for res in results.values():
        keys.extend(k for k in res.tar_at_far if k not in keys)
    header = ["Condition", "Genuine", "Impostor", "Accuracy (k-fold)", "AUC", "Best thr."]
    header += [f"TAR@FAR={k}" for k in keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for name, res in results.items():
        row = [
            name,
            str(res.n_genuine),
            str(res.n_impostor),
            f"{_fmt(res.accuracy)} ± {_fmt(res.accuracy_std)}",
            _fmt(res.auc),
            _fmt(res.best_threshold),
        ]
        row += [_fmt(res.tar_at_far.get(k, float("nan"))) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "to_dict"):
        return _json_safe(value.to_dict())
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_results_json(path: PathLike, results: Mapping[str, Any], meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``{"results": ..., "meta": ...}`` as strict JSON (NaN -> null), atomically. Returns the path.

    ``results`` values may be `VerificationResult` / `IdentificationResult` (anything with ``to_dict``), or plain
    JSON-able values.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"results": _json_safe(results), "meta": _json_safe(dict(meta or {}))}
    atomic_write_bytes(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    return path


def read_results_json(path: PathLike) -> Dict[str, Any]:
    """Read a file written by `write_results_json` (``{"results": ..., "meta": ...}``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
