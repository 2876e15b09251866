"""Embedding vectors: the one L2 normalisation of the runtime, the training evaluation and the benchmarks."""
from __future__ import annotations

from typing import Any

import numpy as np


def l2_normalise(x: Any, eps: float = 1e-12, dtype: Any = np.float32) -> np.ndarray:
    """Rows of `x` (N, D) scaled to unit length, computed in `dtype` (float32 by default; the evaluation metrics use
    float64). A row shorter than `eps` is divided by `eps` (a zero row stays zero); NaN rows stay NaN."""
    x = np.asarray(x, dtype=dtype)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)
