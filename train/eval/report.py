"""Reporting evaluation results: Markdown tables and strict JSON files, and `EvalReport`, what one evaluation run
produced."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from g2d_edge.files import atomic_write_bytes

from .metrics import IdentificationResult, VerificationResult, json_safe
from .pairs import IndexPairs

PathLike = Union[str, Path]


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


def write_results_json(path: PathLike, results: Mapping[str, Any], meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``{"results": ..., "meta": ...}`` as strict JSON (NaN -> null), atomically. Returns the path.

    ``results`` values may be `VerificationResult` / `IdentificationResult` (anything with ``to_dict``), or plain
    JSON-able values.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"results": json_safe(results), "meta": json_safe(dict(meta or {}))}
    atomic_write_bytes(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    return path


def read_results_json(path: PathLike) -> Dict[str, Any]:
    """Read a file written by `write_results_json` (``{"results": ..., "meta": ...}``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass
class EvalReport:
    """Results of one evaluation: verification per condition, identification, and how they were obtained."""

    verification: Dict[str, VerificationResult] = field(default_factory=dict)
    identification: Dict[str, IdentificationResult] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    #: (clean embeddings, masked embeddings, pairs) behind `verification` (kept in memory, not written)
    scored: Optional[Tuple[np.ndarray, np.ndarray, IndexPairs]] = None

    def table(self) -> str:
        """Markdown tables of the results."""
        text = format_table(self.verification) if self.verification else ""
        if self.identification:
            text += "\n| Identification | Probes | Identities | Top-1 |\n|---|---|---|---|\n"
            for name, r in self.identification.items():
                text += f"| {name} | {r.n_probes} | {r.n_identities} | {r.top1:.4f} |\n"
        return text

    def write_json(self, path: Union[str, Path]) -> Path:
        """`{"results": {"verification": ..., "identification": ...}, "meta": ...}` via `write_results_json`."""
        return write_results_json(path, {"verification": self.verification,
                                         "identification": self.identification}, self.meta)
