"""Export tools: a trained G2D network -> ONNX graph (+ sidecar) -> TensorRT engines.

    from export import export_onnx, build_engine, TrtBuildOptions
    export_onnx("runs/x/classifier/final.pt", "g2d-edge-s.onnx")
    build_engine("g2d-edge-s.onnx", options=TrtBuildOptions(precision="fp16"))
    write_triton_repository("g2d-edge-s.onnx", "model_repository/")

Names are resolved lazily: `export.onnx` needs torch (training extras). The TensorRT engine builder lives in the
runtime (`g2d_edge.backends.engine_build`: engines are built on the target box, without torch); its names are
re-exported here.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "export_onnx": "export.onnx", "ParityOptions": "export.onnx", "ParityReport": "export.onnx",
    "verify_parity": "export.onnx", "build_sidecar": "export.onnx",
    "build_engine": "g2d_edge.backends.engine_build", "build_engine_if_missing": "g2d_edge.backends.engine_build",
    "TrtBuildOptions": "g2d_edge.backends.engine_build", "engine_cache_path": "g2d_edge.backends.engine_cache",
    "write_triton_repository": "export.triton", "TritonRepoOptions": "export.triton",
    "ExportError": "g2d_edge.errors", "ParityError": "g2d_edge.errors", "EngineBuildError": "g2d_edge.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
