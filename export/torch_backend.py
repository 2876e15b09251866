"""PyTorch backend, for development only: runs a training checkpoint eagerly (no export step).

Useful to compare an exported model against its source and as the baseline of `benchmarks/latency.py`. It lives
with the export tools, not in the runtime, because it needs torch and the training code (`pip install
g2d-edge[train]`); it implements the runtime's `Backend` protocol, so a `Recognizer` takes it as its model:

    from export.torch_backend import TorchBackend
    rec = Recognizer(model=TorchBackend("runs/edge/classifier/final.pt"))

`torch` and `train` are imported when a `TorchBackend` is created, so importing this module stays cheap.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from g2d_edge.backends import BaseBackend
from g2d_edge.backends.base import PathLike
from g2d_edge.errors import BackendUnavailableError, ModelError, check_fields, option

log = logging.getLogger(__name__)

TORCH_INSTALL_HINT = ("torch backend (development only) needs the `torch` package and the training code: "
                      "pip install g2d-edge[train]")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class TorchOptions:
    """device: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1" or a GPU index.
    max_batch: faces per forward pass (larger batches are split).
    threads: CPU threads for torch (0 = leave torch's setting alone)."""

    device: Union[str, int] = "auto"
    max_batch: int = option(64, low=1, high=65536)
    threads: int = option(0, low=0, high=1024)

    def __post_init__(self) -> None:
        check_fields(self)


def import_torch():
    """The torch module, or BackendUnavailableError."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(TORCH_INSTALL_HINT) from exc
    return torch


def torch_available() -> Optional[str]:
    """None when the torch backend can run here, else why not."""
    try:
        import_torch()
        import train.model  # noqa: F401
    except BackendUnavailableError as exc:
        return str(exc)
    except ImportError as exc:
        return f"{TORCH_INSTALL_HINT} ({exc})"
    return None


class TorchBackend(BaseBackend):
    """Eager PyTorch inference of a `G2DModel` through the same uint8-BGR-in graph that gets exported."""

    name = "torch"

    def __init__(self, checkpoint: Optional[PathLike] = None, options: Optional[TorchOptions] = None, *,
                 model: Any = None, meta: Optional[Dict[str, Any]] = None) -> None:
        """Load `checkpoint` (a `g2d-train` checkpoint) or wrap an in-memory `model` (a G2DModel) with `meta`."""
        self.options = options or TorchOptions()
        torch = import_torch()
        try:
            from train.model import InferenceModel

            from .onnx import build_sidecar
        except ImportError as exc:
            raise BackendUnavailableError(f"{TORCH_INSTALL_HINT} ({exc})") from exc
        if model is None:
            if checkpoint is None:
                raise ModelError("TorchBackend needs a checkpoint path or a model")
            model, meta = _load_checkpoint(Path(checkpoint))
            name = Path(checkpoint).stem
        else:
            name = getattr(model, "name", None) or "g2d-model"
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        meta = dict(meta or {})
        self.device = _resolve_device(torch, self.options.device)
        if self.options.threads > 0:
            torch.set_num_threads(int(self.options.threads))
        self._torch = torch
        self._graph = InferenceModel(model).to(self.device).eval()
        super().__init__(build_sidecar(model, meta, name=name), self.options.max_batch)
        log.info("torch backend: %s on %s", self.checkpoint or name, self.device)

    def _run(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            emb, logits = self._graph(torch.from_numpy(faces).to(self.device))
            return emb.float().cpu().numpy(), logits.float().cpu().numpy()

    def synchronize(self) -> None:
        """Wait for queued GPU work (for timing); a no-op on CPU."""
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)


def _resolve_device(torch, device: Union[str, int]):
    if isinstance(device, int):
        device = f"cuda:{device}"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"torch device {device!r} requested but this torch build sees no CUDA GPU")
    return dev


def _load_checkpoint(path: Path):
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}; pass a checkpoint written by g2d-train")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelError(f"{path} is not a training checkpoint (expected {', '.join(CHECKPOINT_SUFFIXES)})")
    try:
        from train.checkpoint import load_model
    except ImportError as exc:
        raise BackendUnavailableError(f"{TORCH_INSTALL_HINT} ({exc})") from exc
    try:
        return load_model(path)
    except (ModelError, KeyError, EOFError, OSError) as exc:
        raise ModelError(f"cannot load checkpoint {path} ({exc}); it is truncated or not a g2d-train checkpoint") \
            from exc
