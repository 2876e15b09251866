"""The greedy G2D stages, in training order: inpaint -> encoder -> reformer -> classifier.

Each stage is a `Stage` run by the one loop in `train.stages.loop.run_stage`; it starts from the previous stage's
`<run_dir>/<previous>/final.pt` and writes `<run_dir>/<stage>/{last,final}.pt` and `metrics.csv`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Type

from ..config import ConfigError, TrainConfig
from .classifier import ClassifierStage
from .common import FINAL, LAST, METRICS, Stage, StageOrderError, StageResult, is_finished, read_metrics, stage_dir
from .encoder import EncoderStage
from .inpaint import InpaintStage
from .loop import run_stage
from .reformer import ReformerStage

STAGES: Dict[str, Type[Stage]] = {
    "inpaint": InpaintStage,
    "encoder": EncoderStage,
    "reformer": ReformerStage,
    "classifier": ClassifierStage,
}

__all__ = ["STAGES", "Stage", "StageResult", "StageOrderError", "get_stage", "run_named", "run_all", "run_stage",
           "is_finished", "stage_dir", "read_metrics", "FINAL", "LAST", "METRICS"]


def get_stage(name: str, cfg: TrainConfig) -> Stage:
    """The stage called `name`, configured by `cfg`."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    return STAGES[name](cfg)


def run_named(name: str, cfg: TrainConfig, run_dir: Optional[Path] = None, force: bool = False,
              stop_after: Optional[int] = None) -> StageResult:
    """Run one stage in `run_dir` (default: `cfg.run_dir`)."""
    return run_stage(get_stage(name, cfg), Path(run_dir or cfg.run_dir), force=force, stop_after=stop_after)


def run_all(cfg: TrainConfig, run_dir: Optional[Path] = None, force: bool = False,
            stop_after: Optional[int] = None) -> List[StageResult]:
    """Every stage in order; finished ones are skipped (all are retrained with `force`).

    Stops early (returning what ran) when a stage is left unfinished by `stop_after`.
    """
    results = []
    for name in STAGES:
        result = run_named(name, cfg, run_dir, force=force, stop_after=stop_after)
        results.append(result)
        if not result.finished:
            break
    return results
