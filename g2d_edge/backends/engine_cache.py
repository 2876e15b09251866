"""The TensorRT engine cache, in one place: where the engine built from an ONNX model for this GPU / TensorRT /
precision is kept, where its timing and INT8 calibration caches go, and `find_cached_engine`, the one lookup that
`load_backend` and `build_engine_if_missing` use.

An engine is cached next to its ONNX model, e.g. `g2d-edge-s.fp16.nvidia-jetson-orin-nano.trt10.3.0.engine` (its
sidecar replaces `.engine` by `.json`), or in the user cache (`$G2D_EDGE_CACHE`, else `~/.cache/g2d-edge/engines`)
when the model's folder is read-only (the shipped model inside site-packages). A cached engine counts only when its
sidecar records the sha256 of the current ONNX file, so a re-exported model is rebuilt.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

from ..errors import InputError, ModelError
from ..sidecar import ModelSidecar, sidecar_path_for
from .base import PathLike, file_sha256, user_cache_dir, writable_dir
from .tensorrt_env import PRECISIONS, GpuInfo, current_gpu, import_tensorrt, slug, tensorrt_available, trt_release

log = logging.getLogger(__name__)

#: Sub-folder of the user cache that holds engines (and their timing / calibration caches).
CACHE_FOLDER = "engines"


def engine_cache_path(onnx_path: PathLike, gpu_name: str, trt_version: str, precision: str) -> Path:
    """Where the engine built from `onnx_path` for this GPU / TensorRT / precision is cached: next to the model,
    e.g. `g2d-edge-s.fp16.nvidia-jetson-orin-nano.trt10.3.0.engine` (its sidecar replaces `.engine` by `.json`)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = Path(onnx_path)
    release = ".".join(str(n) for n in trt_release(trt_version)) or slug(trt_version)
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.{slug(gpu_name)}.trt{release}.engine")


def engine_cache_candidates(onnx_path: PathLike, gpu_name: str, trt_version: str, precision: str) -> List[Path]:
    """Where a cached engine may be: next to the model, then in the user cache (used when the model's folder is
    read-only, e.g. the shipped model inside site-packages)."""
    primary = engine_cache_path(onnx_path, gpu_name, trt_version, precision)
    return [primary, user_cache_dir() / CACHE_FOLDER / primary.name]


def default_engine_path(onnx_path: PathLike, precision: str, device: int = 0) -> Path:
    """The engine path `build_engine` uses when none is given: the cache name `load_backend` looks for, next to the
    model."""
    trt, _ = import_tensorrt()
    return engine_cache_path(onnx_path, current_gpu(device).name, trt.__version__, precision)


def new_engine_path(onnx_path: PathLike, precision: str, device: int = 0) -> Path:
    """Where a newly built cached engine goes: next to the model when that folder is writable, else the user cache."""
    primary = default_engine_path(onnx_path, precision, device)
    return writable_dir(primary.parent, CACHE_FOLDER) / primary.name


def default_timing_cache(onnx_path: Path, gpu: GpuInfo, trt_version: str) -> Path:
    """The file of layer timings kept for builds from `onnx_path` on this GPU and TensorRT release."""
    release = ".".join(str(n) for n in trt_release(trt_version))
    folder = writable_dir(Path(onnx_path).parent, CACHE_FOLDER)
    return folder / f"{Path(onnx_path).stem}.{slug(gpu.name)}.trt{release}.trtcache"


def default_calib_cache(onnx_path: Path) -> Path:
    """The INT8 calibration cache of `onnx_path`, named after the ONNX's hash (a re-exported model is recalibrated)."""
    folder = writable_dir(Path(onnx_path).parent, CACHE_FOLDER)
    return folder / f"{Path(onnx_path).stem}.{file_sha256(onnx_path)[:12]}.int8.calib"


def find_cached_engine(onnx_path: PathLike, precision: str = "fp16", device: int = 0) -> Optional[Path]:
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
            engine = ModelSidecar.load(sidecar_path_for(path)).engine or {}
        except ModelError:
            continue
        onnx_sha = onnx_sha or file_sha256(onnx_path)
        if engine.get("onnx_sha256") == onnx_sha:
            return path
        log.info("cached engine %s was built from another version of %s; ignoring it", path, Path(onnx_path).name)
    return None
