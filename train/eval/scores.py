"""Scores of pairs and the three conditions they are evaluated in: `evaluate_conditions` scores the same pairs
unmasked-unmasked, masked-unmasked (masked image a, clean image b) and masked-masked."""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from g2d_edge.errors import InputError

from .metrics import DEFAULT_FARS, DEFAULT_FOLDS, VerificationResult, as_embeddings, evaluate_verification, l2_normalize
from .pairs import IndexPairs

log = logging.getLogger(__name__)

CONDITION_CLEAN = "unmasked-unmasked"
CONDITION_MIXED = "masked-unmasked"
CONDITION_MASKED = "masked-masked"
CONDITIONS: Tuple[str, ...] = (CONDITION_CLEAN, CONDITION_MIXED, CONDITION_MASKED)


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
    ea = as_embeddings(emb_a_side, "embeddings")
    eb = ea if emb_b_side is None else as_embeddings(emb_b_side, "embeddings")
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
