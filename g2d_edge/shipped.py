"""The models shipped inside the package, selectable by name: ``Recognizer(model="g2d-edge-s")``.

Each is an exported ONNX graph with its JSON sidecar in ``g2d_edge/models/``; ``Recognizer()`` uses
:data:`DEFAULT_MODEL`. See MODEL_CARD.md for how each was trained and what it measures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from .errors import InputError

MODELS_DIR = Path(__file__).resolve().parent / "models"

#: name -> what it is for (the file is ``models/<name>.onnx``)
SHIPPED_MODELS: Dict[str, str] = {
    "g2d-edge-m": "the accurate default: SFace's pretrained backbone made mask-robust by the G2D stages (128-d)",
    "g2d-edge-s": "the small one: 10x faster on a CPU, much less accurate (512-d, trained from scratch)",
}
DEFAULT_MODEL = "g2d-edge-m"


def shipped_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of the shipped model called ``name`` (it may be missing from a stripped build: check ``is_file()``)."""
    if name not in SHIPPED_MODELS:
        raise InputError(f"no shipped model is called {name!r}; the shipped models are {', '.join(SHIPPED_MODELS)}")
    return MODELS_DIR / f"{name}.onnx"
