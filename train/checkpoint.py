"""Stage checkpoints: one file per stage and epoch, atomic writes, bit-exact reloads.

Layout of a run directory (`<run_dir>/<stage>/`):
    last.pt      written after every epoch (resume point; optimizer, scheduler and AMP scaler state included)
    final.pt     written once the stage has finished (the next stage starts from it; its presence marks the stage done)
    metrics.csv  one row per `log_every` steps and one per epoch (see `train.stages.common`)

A checkpoint is a `torch.save`d dict:
    format, format_version, stage, epoch (completed epochs), step (optimizer steps so far), finished,
    model_config (asdict of `ModelConfig`), state {module name -> state_dict} ("model": the G2DModel,
    "decoder": the inpainting decoder while it exists), optimizer, scheduler, scaler (or None), meta (JSON-able:
    config_hash, train_config, data_summary, class_names, threshold, ...), versions (torch, python).
It loads with `torch.load(weights_only=True)`: nothing but tensors and plain Python containers.
"""
from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from g2d_edge.errors import InputError, ModelError
from g2d_edge.files import atomic_write

from .model import G2DModel, ModelConfig, build_model

log = logging.getLogger(__name__)

FORMAT = "g2d-edge-checkpoint"
FORMAT_VERSION = 1

PathLike = Union[str, Path]


def _json_safe(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """Meta must survive a JSON round trip (no numpy, no tensors) so that weights_only loading works."""
    try:
        return json.loads(json.dumps(dict(meta), default=_json_default))
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint meta must be JSON-serialisable: {exc}") from exc


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def save_checkpoint(path: PathLike, *, stage: str, model_config: ModelConfig, state: Mapping[str, Mapping],
                    optimizer: Optional[torch.optim.Optimizer] = None, scheduler: Optional[Any] = None,
                    epoch: int, step: int, meta: Mapping[str, Any], scaler: Optional[Any] = None,
                    finished: bool = False) -> Path:
    """Write a stage checkpoint atomically (temporary file + `os.replace`) and return its path.

    state: module name -> state_dict ("model" for the G2DModel, "decoder" for the inpainting decoder).
    optimizer / scheduler / scaler: saved by their `state_dict()` so that a run can resume exactly.
    epoch: number of completed epochs; step: optimizer steps so far; finished: the stage is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stage": stage,
        "epoch": int(epoch),
        "step": int(step),
        "finished": bool(finished),
        "model_config": model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config),
        "state": {name: {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in sd.items()}
                  for name, sd in state.items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "meta": _json_safe({**meta, "stage": stage}),
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))
    log.debug("saved %s checkpoint (epoch %d, step %d) -> %s", stage, epoch, step, path)
    return path


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`.

    Raises ModelError when it does not exist or is not a readable g2d-edge checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}; pass a checkpoint written by g2d-train")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises a zoo of exception types for truncated / foreign files
        raise ModelError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); it may be truncated or "
                         "not a g2d-edge checkpoint; delete it and re-run the stage") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{path} is not a g2d-edge checkpoint (no '{FORMAT}' header); pass one written by g2d-train")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"checkpoint {path} has format version {ckpt['format_version']}; this code reads up to "
                         f"{FORMAT_VERSION}: upgrade g2d-edge")
    return ckpt


def model_config_of(ckpt: Mapping[str, Any]) -> ModelConfig:
    """The `ModelConfig` stored in a loaded checkpoint."""
    return ModelConfig.from_dict(ckpt["model_config"])


def build_model_from(ckpt: Mapping[str, Any]) -> G2DModel:
    """A G2DModel built from a loaded checkpoint's config, with its "model" weights (strict), in train mode."""
    model = build_model(model_config_of(ckpt))
    state = ckpt["state"].get("model")
    if state is None:
        raise ModelError(f"{ckpt.get('stage')} checkpoint holds no 'model' weights; pass a stage checkpoint of "
                         "g2d-train")
    model.load_state_dict(state, strict=True)
    return model


def load_model(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Tuple[G2DModel, Dict[str, Any]]:
    """The network of a checkpoint, in eval mode, and its meta.

    meta holds (at least) "stage", "config_hash", "train_config", "data_summary", "trained_on", "class_names"
    (classifier stage), "threshold" (when calibrated on held-out identities) and "epoch"/"step".
    """
    ckpt = load_checkpoint(path, map_location)
    model = build_model_from(ckpt).to(map_location)
    model.eval()
    meta = dict(ckpt.get("meta") or {})
    meta.setdefault("stage", ckpt["stage"])
    meta.setdefault("class_names", [])
    meta.update({"epoch": ckpt["epoch"], "step": ckpt["step"], "finished": ckpt["finished"],
                 "checkpoint": str(Path(path))})
    return model, meta
