"""Inference backends behind one protocol, and `load_backend`, which picks one.

    from g2d_edge.backends import load_backend
    backend = load_backend("g2d-edge-s.onnx")          # best available runtime, logged
    emb, logits = backend.infer(aligned_faces)         # (N,112,112,3) uint8 BGR -> (N,512), (N,C)

Backends, one file each: "tensorrt" (`tensorrt.py`: a `.engine`, or an `.onnx` with a cached / freshly built
engine), "onnxruntime" (`onnxruntime.py`: an `.onnx`, TensorRT EP > CUDA EP > CPU EP), "openvino" (`openvino.py`:
an `.onnx` on an x86 CPU, the `[openvino]` extra; "auto" picks it on a CPU-only machine) and "triton" (`triton.py`: a
Triton Inference Server at `TritonOptions.url`; the local file only gives the sidecar). `BackendOptions` holds each
runtime's options in one object (`load_backend(model, options=...)`, `RecognizerOptions.backend_options`).
`loader.py` opens a model (one path check, one engine-cache lookup); `engine_cache.py` names and finds cached
TensorRT engines, `engine_build.py` builds them on the target box (with `faces.py` for INT8 calibration);
`tensorrt_env.py` is what TensorRT / GPU this machine has. Nothing heavy is imported until a backend is created.
The development-only PyTorch backend, which runs training checkpoints, lives with the export tools
(`export.torch_backend`): the runtime never imports torch.
"""
from __future__ import annotations

from .base import Backend, BaseBackend, check_faces
from .engine_cache import engine_cache_path, find_cached_engine
from .loader import BACKEND_NAMES, BackendOptions, available_backends, load_backend, open_model
from .onnxruntime import OnnxRuntimeBackend, OrtOptions
from .openvino import OpenVinoBackend, OpenVinoOptions
from .tensorrt import TensorRTBackend, TrtRuntimeOptions
from .triton import TritonBackend, TritonOptions

__all__ = ["Backend", "BaseBackend", "OnnxRuntimeBackend", "OrtOptions", "OpenVinoBackend", "OpenVinoOptions",
           "TensorRTBackend", "TrtRuntimeOptions",
           "load_backend", "open_model", "available_backends", "engine_cache_path", "find_cached_engine",
           "check_faces", "BACKEND_NAMES", "BackendOptions", "TritonBackend", "TritonOptions"]

