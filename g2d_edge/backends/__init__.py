"""Inference backends behind one protocol, and `load_backend`, which picks one.

    from g2d_edge.backends import load_backend
    backend = load_backend("g2d-edge-s.onnx")          # best available runtime, logged
    emb, logits = backend.infer(aligned_faces)         # (N,112,112,3) uint8 BGR -> (N,512), (N,C)

Backends: "tensorrt" (a `.engine`, or an `.onnx` with a cached / freshly built engine), "onnxruntime" (an `.onnx`,
TensorRT EP > CUDA EP > CPU EP), "triton" (a Triton Inference Server at `url=`; the local file only gives the sidecar)
and "torch" (a training checkpoint, development only). Nothing heavy is imported until a backend is created.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..errors import BackendUnavailableError, InputError, ModelError
from ..sidecar import ModelSidecar
from .base import Backend, BaseBackend, check_faces, file_sha256, l2_normalise, load_sidecar
from .onnxruntime import OnnxRuntimeBackend, OrtOptions, available_providers
from .tensorrt import (ENGINE_SUFFIXES, TensorRTBackend, TrtRuntimeOptions, current_gpu, engine_cache_candidates,
                       engine_cache_path, import_tensorrt, tensorrt_available)
from .torch import CHECKPOINT_SUFFIXES, TorchBackend, TorchOptions, torch_available
from .triton import TritonBackend, TritonOptions, triton_available

__all__ = ["Backend", "BaseBackend", "OnnxRuntimeBackend", "OrtOptions", "TensorRTBackend", "TrtRuntimeOptions",
           "TorchBackend", "TorchOptions", "load_backend", "available_backends", "engine_cache_path",
           "find_cached_engine", "check_faces", "l2_normalise", "BACKEND_NAMES", "TritonBackend", "TritonOptions"]

log = logging.getLogger(__name__)

BACKEND_NAMES = ("tensorrt", "onnxruntime", "torch", "triton")
_ALIASES = {"trt": "tensorrt", "ort": "onnxruntime", "onnx": "onnxruntime", "pytorch": "torch"}
_OPTION_CLASSES = {"tensorrt": TrtRuntimeOptions, "onnxruntime": OrtOptions, "torch": TorchOptions,
                   "triton": TritonOptions}
#: load_backend options that are not fields of a backend's options dataclass.
_LOADER_OPTIONS = ("build_engine", "precision", "calib_data")


def available_backends() -> Dict[str, Optional[str]]:
    """{backend name: None if it can run here, else the reason it cannot}."""
    return {"tensorrt": tensorrt_available(), "onnxruntime": None if available_providers() else
            "onnxruntime is not installed: pip install onnxruntime", "torch": torch_available(),
            "triton": triton_available()}


def find_cached_engine(onnx_path: Union[str, Path], precision: str = "fp16", device: int = 0) -> Optional[Path]:
    """The cached engine for `onnx_path` on this GPU / TensorRT / precision (next to the model, else in the user
    cache), if one exists and was built from the current ONNX file (its sidecar records the ONNX's sha256); None
    otherwise, also when TensorRT is unavailable."""
    if tensorrt_available() is not None:
        return None
    trt, _ = import_tensorrt()
    gpu = current_gpu(device)
    onnx_sha = None
    for path in engine_cache_candidates(onnx_path, gpu.name, trt.__version__, precision):
        if not path.is_file():
            continue
        try:
            engine = ModelSidecar.load(path.with_suffix(".json")).engine or {}
        except ModelError:
            continue
        onnx_sha = onnx_sha or file_sha256(onnx_path)
        if engine.get("onnx_sha256") == onnx_sha:
            return path
        log.info("cached engine %s was built from another version of %s; ignoring it", path, Path(onnx_path).name)
    return None


def _split_options(backend: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """The options that belong to `backend`; options of other backends are ignored (the caller may not know which
    backend "auto" picks), unknown ones raise InputError."""
    known = {f.name for cls in _OPTION_CLASSES.values() for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown backend option(s) {unknown}; valid: {sorted(known | set(_LOADER_OPTIONS))}")
    own = {f.name for f in dataclasses.fields(_OPTION_CLASSES[backend])}
    ignored = sorted(set(options) - own)
    if ignored:
        log.debug("%s backend ignores options %s", backend, ignored)
    return {k: v for k, v in options.items() if k in own}


def load_backend(model: Union[str, Path], backend: str = "auto", **options: Any) -> Backend:
    """Open `model` with an inference backend.

    model: a `.engine` (TensorRT), an `.onnx` (ONNX Runtime, or TensorRT through a cached engine) or a training
        checkpoint `.pt` (PyTorch, development only); its `.json` sidecar must sit next to it (not for checkpoints).
    backend: "auto" | "tensorrt" | "onnxruntime" | "torch". "auto" picks by file type and what is installed, fastest
        first: an engine -> TensorRT; an ONNX -> TensorRT when an engine for this GPU is cached next to it (or
        `build_engine=True`), else ONNX Runtime (TensorRT EP > CUDA EP > CPU EP); a checkpoint -> torch. The choice
        is logged. An explicitly requested backend that cannot run here raises BackendUnavailableError naming the
        missing package. "triton" (also picked by "auto" when a `url` is given) runs the model on a Triton server
        (`url`, `model_name` ...: fields of `TritonOptions`); `model` is then read only for its sidecar (an `.onnx`,
        `.engine` or the `.json` itself), which the served model must match.
    options: fields of `TrtRuntimeOptions`, `OrtOptions` or `TorchOptions` (those of other backends are ignored),
        plus `build_engine` (build and cache a TensorRT engine for an `.onnx` when none is cached), `precision`
        ("fp16" default, "fp32", "int8") of that engine, and `calib_data` (INT8 calibration faces: folder or .npz).
    """
    path = Path(model)
    build_engine = bool(options.pop("build_engine", False))
    precision = str(options.pop("precision", "fp16"))
    calib_data = options.pop("calib_data", None)
    backend = _ALIASES.get(str(backend).lower(), str(backend).lower())
    if backend not in BACKEND_NAMES + ("auto",):
        raise InputError(f"backend must be 'auto' or one of {BACKEND_NAMES}, got {backend!r}")
    if backend == "auto" and options.get("url"):
        backend = "triton"
        log.info("backend auto -> triton at %s", options["url"])
    if backend == "triton":
        return TritonBackend(load_sidecar(path), TritonOptions(**_split_options("triton", options)))
    suffix = path.suffix.lower()
    if suffix not in ENGINE_SUFFIXES + (".onnx",) + CHECKPOINT_SUFFIXES:
        raise ModelError(f"don't know how to run {path}: expected a .onnx model, a TensorRT .engine or a training "
                         "checkpoint (.pt)")
    engine: Optional[Path] = path if suffix in ENGINE_SUFFIXES else None
    if backend == "auto":
        if suffix in ENGINE_SUFFIXES:
            backend = "tensorrt"
        elif suffix in CHECKPOINT_SUFFIXES:
            backend = "torch"
        else:
            backend = "onnxruntime"
            if tensorrt_available() is None:
                device = options.get("device", 0)
                engine = find_cached_engine(path, precision, device if isinstance(device, int) else 0)
                if engine is not None or build_engine:
                    backend = "tensorrt"
        log.info("backend auto -> %s for %s", backend, path.name)

    if backend == "tensorrt":
        reason = tensorrt_available()
        if reason:
            raise BackendUnavailableError(reason)
        opts = TrtRuntimeOptions(**_split_options("tensorrt", options))
        if engine is None:
            if suffix != ".onnx":
                raise ModelError(f"the tensorrt backend runs .engine files (or an .onnx with build_engine=True), "
                                 f"got {path}")
            engine = find_cached_engine(path, precision, opts.device)
            if engine is None:
                if not build_engine:
                    raise ModelError(f"no TensorRT engine for {path.name} on this GPU; build one with `g2d-export trt "
                                     f"{path} --precision {precision}` or pass build_engine=True")
                from export.tensorrt import build_engine_if_missing  # builder code, imported only when asked

                engine = build_engine_if_missing(path, precision=precision, max_batch=opts.max_batch or 32,
                                                 calib_data=calib_data, device=opts.device)
        return TensorRTBackend(engine, opts)
    if backend == "onnxruntime":
        if suffix != ".onnx":
            raise ModelError(f"the onnxruntime backend runs .onnx models, got {path}")
        return OnnxRuntimeBackend(path, OrtOptions(**_split_options("onnxruntime", options)))
    reason = torch_available()
    if reason:
        raise BackendUnavailableError(reason)
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ModelError(f"the torch backend runs training checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}), got {path}")
    return TorchBackend(path, TorchOptions(**_split_options("torch", options)))
