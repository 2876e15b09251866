"""The JSON sidecar that travels with every exported model (ONNX graph or TensorRT engine).

One definition, written by `export/` and read by `g2d_edge`. A gallery records the sidecar's `embedding_space`
so that embeddings from different models are never compared.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .errors import ModelError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class InputSpec:
    """What the graph takes: a batch of aligned faces, uint8, NHWC, BGR; pre-processing lives inside the graph."""

    name: str = "faces"
    height: int = 112
    width: int = 112
    channels: int = 3
    dtype: str = "uint8"
    layout: str = "NHWC"
    color: str = "BGR"


@dataclass(frozen=True)
class ModelSidecar:
    """Metadata of an exported model.

    embedding_space: a stable id of the embedding geometry (hash of the weights of encoder + reformer);
        galleries store it and refuse another model's.
    threshold: default cosine-similarity threshold for "same person", chosen on validation people.
    threshold_far: the false-accept rate that threshold was chosen at (None if not calibrated).
    class_names: identity names of the classifier's logits (closed-set use), may be empty.
    engine: for TensorRT engines, {"tensorrt": version, "gpu": name, "compute_capability": "8.7",
        "precision": "fp16", "max_batch": 32}; None for ONNX.
    """

    name: str
    embedding_dim: int
    num_classes: int
    embedding_space: str
    weights_sha256: str
    threshold: float = 0.5
    threshold_far: Optional[float] = None
    input: InputSpec = field(default_factory=InputSpec)
    outputs: List[str] = field(default_factory=lambda: ["embedding", "logits"])
    class_names: List[str] = field(default_factory=list)
    config: Dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    data_summary: Dict[str, Any] = field(default_factory=dict)
    versions: Dict[str, str] = field(default_factory=dict)
    trained_on: str = ""
    engine: Optional[Dict[str, Any]] = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def save(self, path: Union[str, Path]) -> Path:
        """Write as pretty JSON (atomically: a temp file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelSidecar":
        if not isinstance(data, dict):
            raise ModelError("model sidecar must be a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise ModelError(f"model sidecar has schema version {version}, this g2d-edge reads up to "
                             f"{SCHEMA_VERSION}: upgrade g2d-edge")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if isinstance(kwargs.get("input"), dict):
            kwargs["input"] = InputSpec(**{k: v for k, v in kwargs["input"].items()
                                           if k in {f.name for f in fields(InputSpec)}})
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ModelError(f"model sidecar is missing fields ({exc}); re-export the model with g2d-export onnx") \
                from exc

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ModelSidecar":
        """Read a sidecar JSON file; raises ModelError with a hint when it is missing or malformed."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model sidecar not found: {path}; every model needs its .json next to it "
                             "(g2d-export writes both)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"model sidecar {path} is not valid JSON ({exc}); re-export the model") from exc
        return cls.from_dict(data)


def sidecar_path_for(model_path: Union[str, Path]) -> Path:
    """The sidecar that belongs to a model file: `model.onnx` -> `model.json`, `model.fp16.engine` -> `model.fp16.json`."""
    p = Path(model_path)
    return p.with_suffix(".json")
