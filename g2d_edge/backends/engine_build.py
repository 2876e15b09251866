"""Building TensorRT engines on the target box: ONNX graph -> engine (FP32, FP16 or INT8) + engine sidecar.

An engine is specific to one GPU and TensorRT release, so it is built where it runs: by `g2d-export trt`, or by the
runtime itself (`load_backend(model, options=BackendOptions(build_engine=True))`). Needs `tensorrt` + `pycuda` and
an NVIDIA GPU, not torch.

* Optimisation profile on the batch axis: min 1, opt `opt_batch`, max `max_batch`.
* Timing cache: layer timings are stored in a file (per GPU and TensorRT release) and reused by later builds.
* INT8: implicit quantisation with an `IInt8EntropyCalibrator2` fed with aligned faces (a folder of photos, detected
  and aligned by the SDK's own pipeline, or an .npz cache from `g2d-train prepare`); the calibration cache is saved
  and reused (its name carries the ONNX's hash, so a re-exported model is recalibrated). FP16 is enabled alongside
  INT8 for layers that do not quantise.
* The new engine is checked against ONNX Runtime (CPU, FP32) on real or synthetic faces before it is written:
  embedding cosine >= 0.9999 (fp32), 0.999 (fp16), 0.98 (int8); otherwise `ParityError`.
* Sidecar `<engine>.json`: the ONNX sidecar plus `engine` = {tensorrt, gpu, compute_capability, precision,
  min/opt/max batch, onnx, onnx_sha256, parity ...}; the runtime compares it with the machine before loading.

TensorRT 8.6 and 10.x are supported (named-tensor API). TensorRT 11 removed the FP16/INT8 builder flags (strongly
typed networks only): there only FP32 engines are built here.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ..align import ALIGNED_SIZE
from ..errors import EngineBuildError, InputError, ModelError, ParityError, check_fields, option
from ..files import atomic_write_bytes
from ..sidecar import ModelSidecar, sidecar_path_for
from .base import PathLike, file_sha256
from .engine_cache import (default_calib_cache, default_engine_path, default_timing_cache, find_cached_engine,
                           new_engine_path)
from .faces import DEFAULT_FACE_CACHE, load_cached_faces, load_calibration_faces, synthetic_faces
from .tensorrt_env import PRECISIONS, GpuInfo, current_gpu, import_tensorrt, trt_logger, trt_release

__all__ = ["TrtBuildOptions", "build_engine", "build_engine_if_missing", "build_cached_engine", "verify_engine",
           "make_calibrator", "PARITY_MIN_COSINE"]

log = logging.getLogger(__name__)

#: Smallest acceptable embedding cosine between an engine and ONNX Runtime FP32, per precision.
PARITY_MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}
#: Log the INT8 calibration progress every this many batches.
CALIBRATION_LOG_EVERY = 10


@dataclass(frozen=True)
class TrtBuildOptions:
    """How an engine is built.

    precision: "fp32" | "fp16" | "int8" (INT8 needs `calib_data` or an existing calibration cache).
    min_batch / opt_batch / max_batch: the optimisation profile of the batch axis (kernels are tuned for opt).
    workspace_mib: builder scratch memory limit.
    timing_cache: file of layer timings (default: next to the ONNX, per GPU and TensorRT release).
    calib_data: folder of face photos, or .npz/.npy of aligned faces, for INT8 calibration.
    calib_cache: calibration cache file (default: next to the ONNX, named after the ONNX's hash).
    calib_batch / calib_max_faces: calibration batch size and number of faces used.
    optimization_level: TensorRT builder optimisation level 0..5 (None = TensorRT's default, 3).
    device: CUDA device index.
    verify / min_cosine: compare the engine with ONNX Runtime before writing it; None = PARITY_MIN_COSINE[precision].
    verify_faces: .npz of aligned faces for that check (default: calibration faces, the CelebA cache, or synthetic).
    """

    precision: str = option("fp16", choices=PRECISIONS)
    min_batch: int = option(1, low=1, high=65536)
    opt_batch: int = option(8, low=1, high=65536)
    max_batch: int = option(32, low=1, high=65536)
    workspace_mib: int = option(1024, low=1, high=1 << 20)
    timing_cache: Optional[Path] = None
    calib_data: Optional[Path] = None
    calib_cache: Optional[Path] = None
    calib_batch: int = option(16, low=1, high=65536)
    calib_max_faces: int = option(512, low=1, high=10_000_000)
    optimization_level: Optional[int] = option(None, low=0, high=5)
    device: int = option(0, low=0, high=1024)
    verify: bool = True
    min_cosine: Optional[float] = option(None, low=-1.0, high=1.0)
    verify_faces: Optional[Path] = None

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise InputError(f"TrtBuildOptions.opt_batch: need min_batch <= opt_batch <= max_batch, got "
                             f"{self.min_batch}, {self.opt_batch}, {self.max_batch}")
        if self.calib_max_faces < self.calib_batch:
            raise InputError(f"TrtBuildOptions.calib_max_faces ({self.calib_max_faces}) must be at least "
                             f"calib_batch ({self.calib_batch})")


@dataclass(frozen=True)
class _BuildPlan:
    """Where one build reads and writes, resolved once: the engine, its timing and calibration caches, the GPU."""

    onnx: Path
    engine: Path
    timing_cache: Path
    calib_cache: Path
    gpu: GpuInfo


# --------------------------------------------------------------------------------------------------- calibrator
def make_calibrator(trt: Any, cuda: Any, faces: Optional[np.ndarray], batch: int, cache_path: Path):
    """An IInt8EntropyCalibrator2 feeding `faces` (uint8 (N,112,112,3)) in batches of `batch`; it reads the cache at
    `cache_path` when present (then TensorRT asks for no batch) and writes it after calibrating."""

    class FaceCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.faces = faces
            self.batch = int(batch)
            self.index = 0
            self.cache_path = Path(cache_path)
            self.device = None
            if faces is not None:
                self.device = cuda.mem_alloc(self.batch * ALIGNED_SIZE * ALIGNED_SIZE * 3)
                self.total = len(faces) // self.batch

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names, *args):  # TensorRT passes the input names
            if self.faces is None or self.index + self.batch > len(self.faces):
                return None
            chunk = np.ascontiguousarray(self.faces[self.index:self.index + self.batch])
            cuda.memcpy_htod(self.device, chunk)
            self.index += self.batch
            done = self.index // self.batch
            if done % CALIBRATION_LOG_EVERY == 0 or done == self.total:
                log.info("INT8 calibration: batch %d of %d", done, self.total)
            return [int(self.device)]

        def read_calibration_cache(self):
            if self.cache_path.is_file():
                log.info("INT8: reusing calibration cache %s", self.cache_path)
                return self.cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(self.cache_path, bytes(cache))
            log.info("INT8: calibration cache written to %s", self.cache_path)

        def free(self) -> None:
            if self.device is not None:
                self.device.free()
                self.device = None

    return FaceCalibrator()


# ------------------------------------------------------------------------------------------------------- build
def _network_flags(trt: Any) -> int:
    """Explicit batch: a flag before TensorRT 10, the only mode (flag deprecated) from 10 on."""
    if trt_release(trt.__version__)[0] < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def _parse_onnx(trt: Any, network: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, trt_logger())
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {' | '.join(errors) or 'no details'}; "
                               "re-export it with `g2d-export onnx` (opset 17) and check the TensorRT version")


def _shape(batch: int):
    return (batch, ALIGNED_SIZE, ALIGNED_SIZE, 3)


def _plan(trt: Any, onnx_path: Path, engine_path: Optional[PathLike], options: TrtBuildOptions) -> _BuildPlan:
    """Check that this TensorRT can build `options.precision` and resolve the paths of the build."""
    gpu = current_gpu(options.device)
    if options.precision != "fp32" and not hasattr(trt.BuilderFlag, "FP16"):
        raise EngineBuildError(f"TensorRT {trt.__version__} has no FP16/INT8 builder flags (strongly typed networks "
                               "only); build --precision fp32, or install TensorRT 10: pip install 'tensorrt>=10,<11'")
    engine = Path(engine_path) if engine_path else default_engine_path(onnx_path, options.precision, options.device)
    if engine.suffix != ".engine":
        raise EngineBuildError(f"engine path must end in .engine, got {engine}")
    engine.parent.mkdir(parents=True, exist_ok=True)
    timing = (Path(options.timing_cache) if options.timing_cache
              else default_timing_cache(onnx_path, gpu, trt.__version__))
    calib = Path(options.calib_cache) if options.calib_cache else default_calib_cache(onnx_path)
    return _BuildPlan(onnx=onnx_path, engine=engine, timing_cache=timing, calib_cache=calib, gpu=gpu)


def _calibration_faces(options: TrtBuildOptions, calib_cache: Path) -> Optional[np.ndarray]:
    """INT8 calibration faces (None: not INT8, or calibrated from the existing cache)."""
    if options.precision != "int8":
        return None
    if options.calib_data is None:
        if not calib_cache.is_file():
            raise EngineBuildError("INT8 needs calibration faces: pass --calib FOLDER|NPZ (about 500 aligned faces "
                                   f"of the deployment population), or an existing calibration cache ({calib_cache})")
        return None
    faces = load_calibration_faces(options.calib_data, options.calib_max_faces)
    if len(faces) < options.calib_batch:
        raise EngineBuildError(f"only {len(faces)} calibration faces in {options.calib_data}, fewer "
                               f"than one batch of {options.calib_batch}")
    log.info("INT8: %d calibration faces from %s", len(faces), options.calib_data)
    return faces


def _configure(trt: Any, cuda: Any, builder: Any, network: Any, plan: _BuildPlan, options: TrtBuildOptions,
               calib_faces: Optional[np.ndarray]):
    """The builder config (workspace, profile, precision flags, calibrator, timing cache) and the calibrator."""
    name = network.get_input(0).name
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mib) << 20)
    if options.optimization_level is not None:
        config.builder_optimization_level = int(options.optimization_level)
    profile = builder.create_optimization_profile()
    profile.set_shape(name, _shape(options.min_batch), _shape(options.opt_batch), _shape(options.max_batch))
    config.add_optimization_profile(profile)
    calibrator = None
    if options.precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):
            log.warning("%s has no fast FP16; the fp16 engine may not be faster than fp32", plan.gpu.name)
        config.set_flag(trt.BuilderFlag.FP16)
    if options.precision == "int8":
        if not getattr(builder, "platform_has_fast_int8", True):
            log.warning("%s has no fast INT8; the int8 engine may not be faster", plan.gpu.name)
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = make_calibrator(trt, cuda, calib_faces, options.calib_batch, plan.calib_cache)
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        cb = _shape(options.calib_batch)
        calib_profile.set_shape(name, cb, cb, cb)
        config.set_calibration_profile(calib_profile)
    timing = config.create_timing_cache(plan.timing_cache.read_bytes() if plan.timing_cache.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    return config, calibrator


def _serialize(trt: Any, cuda: Any, plan: _BuildPlan, options: TrtBuildOptions,
               calib_faces: Optional[np.ndarray]) -> bytes:
    """Parse the ONNX and build the serialized engine on the plan's GPU; saves the timing cache."""
    ctx = cuda.Device(options.device).retain_primary_context()
    ctx.push()
    calibrator = None
    try:
        logger = trt_logger()
        logger.errors = []
        builder = trt.Builder(logger)
        network = builder.create_network(_network_flags(trt))
        _parse_onnx(trt, network, plan.onnx)
        config, calibrator = _configure(trt, cuda, builder, network, plan, options, calib_faces)
        log.info("building %s engine from %s (batch %d..%d, opt %d) on %s, TensorRT %s", options.precision,
                 plan.onnx.name, options.min_batch, options.max_batch, options.opt_batch, plan.gpu.name,
                 trt.__version__)
        start = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildError(f"TensorRT failed to build the {options.precision} engine: "
                                   f"{' | '.join(logger.errors[-5:]) or 'see the log above'}")
        log.info("engine built in %.1f s", time.perf_counter() - start)
        atomic_write_bytes(plan.timing_cache, bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)
    finally:
        if calibrator is not None:
            calibrator.free()
        ctx.pop()
        ctx.detach()


def _engine_info(trt: Any, plan: _BuildPlan, options: TrtBuildOptions,
                 calib_faces: Optional[np.ndarray]) -> Dict[str, Any]:
    """The sidecar's `engine` section: what the engine was built from, on what, and how."""
    calibration = None
    if options.precision == "int8":
        calibration = {"source": str(options.calib_data) if options.calib_data else f"cache {plan.calib_cache.name}",
                       "faces": 0 if calib_faces is None else int(len(calib_faces))}
    return {
        "tensorrt": trt.__version__, "gpu": plan.gpu.name, "compute_capability": plan.gpu.compute_capability,
        "precision": options.precision, "min_batch": options.min_batch, "opt_batch": options.opt_batch,
        "max_batch": options.max_batch, "onnx": plan.onnx.name, "onnx_sha256": file_sha256(plan.onnx),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "workspace_mib": options.workspace_mib,
        "calibration": calibration,
    }


def _verification_faces(options: TrtBuildOptions, calib_faces: Optional[np.ndarray], count: int = 32) -> np.ndarray:
    if options.verify_faces is not None:
        return load_calibration_faces(options.verify_faces, count)
    if calib_faces is not None and len(calib_faces):
        return calib_faces[:count]
    try:
        return load_cached_faces(DEFAULT_FACE_CACHE, count)
    except (InputError, OSError):
        return synthetic_faces(count, np.random.default_rng(0))


def _check_parity(candidate: Path, plan: _BuildPlan, sidecar: ModelSidecar, options: TrtBuildOptions,
                  calib_faces: Optional[np.ndarray]) -> Dict[str, Any]:
    """Compare the engine at `candidate` with ONNX Runtime; the parity record, or ParityError when it disagrees."""
    report = verify_engine(candidate, plan.onnx, _verification_faces(options, calib_faces), sidecar, options.device)
    threshold = options.min_cosine if options.min_cosine is not None else PARITY_MIN_COSINE[options.precision]
    log.info("engine vs ONNX Runtime: cosine min %.5f mean %.5f, max |dlogits| %.3g on %d faces",
             report["min_cosine"], report["mean_cosine"], report["max_abs_logits_diff"], report["num_faces"])
    if report["min_cosine"] < threshold:
        raise ParityError(f"the {options.precision} engine disagrees with the ONNX model (embedding cosine "
                          f"{report['min_cosine']:.5f} < {threshold}); nothing was written. "
                          + ("Calibrate with more, deployment-like faces (--calib) or use fp16."
                             if options.precision == "int8" else "Try --precision fp32."), report)
    return {"reference": "onnxruntime-cpu-fp32", **report, "threshold": threshold}


def _write_engine(engine_bytes: bytes, plan: _BuildPlan, sidecar: ModelSidecar, options: TrtBuildOptions,
                  calib_faces: Optional[np.ndarray]) -> ModelSidecar:
    """Verify the engine (from a scratch file beside the target) and only then write it and its sidecar atomically.
    Returns the sidecar written (its `engine` section with the parity record when verified)."""
    if options.verify:
        scratch = plan.engine.with_name(f".{plan.engine.stem}.{os.getpid()}.verify.engine")
        try:
            scratch.write_bytes(engine_bytes)
            parity = _check_parity(scratch, plan, sidecar, options, calib_faces)
        finally:
            scratch.unlink(missing_ok=True)
        sidecar = replace(sidecar, engine={**sidecar.engine, "parity": parity})
    atomic_write_bytes(plan.engine, engine_bytes)
    sidecar.save(sidecar_path_for(plan.engine))
    log.info("wrote %s (%.1f MB) + %s", plan.engine, plan.engine.stat().st_size / 1e6,
             sidecar_path_for(plan.engine).name)
    return sidecar


def build_engine(onnx_path: PathLike, engine_path: Optional[PathLike] = None,
                 options: Optional[TrtBuildOptions] = None) -> ModelSidecar:
    """Build a TensorRT engine from an exported ONNX model; writes the engine and its sidecar, returns the sidecar.

    engine_path: default `default_engine_path(onnx, precision)` (the cache name that `load_backend` finds).
    Raises EngineBuildError (parse/build failure, bad calibration data), ParityError (engine disagrees
    with ONNX Runtime), ModelError (missing ONNX or sidecar), BackendUnavailableError (no TensorRT/pycuda/GPU).
    """
    options = options or TrtBuildOptions()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"ONNX model not found: {onnx_path}; export one with `g2d-export onnx`")
    onnx_sidecar = ModelSidecar.load(sidecar_path_for(onnx_path))
    trt, cuda = import_tensorrt()
    plan = _plan(trt, onnx_path, engine_path, options)
    calib_faces = _calibration_faces(options, plan.calib_cache)
    engine_bytes = _serialize(trt, cuda, plan, options, calib_faces)
    sidecar = replace(onnx_sidecar, engine=_engine_info(trt, plan, options, calib_faces))
    return _write_engine(engine_bytes, plan, sidecar, options, calib_faces)


def verify_engine(engine_path: PathLike, onnx_path: PathLike, faces: np.ndarray,
                  sidecar: Optional[ModelSidecar] = None, device: int = 0) -> Dict[str, float]:
    """Embedding cosine / logit difference between an engine and its ONNX model in ONNX Runtime (CPU, FP32)."""
    from .onnxruntime import OnnxRuntimeBackend, OrtOptions
    from .tensorrt import TensorRTBackend, TrtRuntimeOptions

    reference = OnnxRuntimeBackend(onnx_path, OrtOptions(providers=["cpu"]))
    engine = TensorRTBackend(engine_path, TrtRuntimeOptions(device=device), sidecar=sidecar)
    try:
        ref_emb, ref_logits = reference.infer(faces)
        emb, logits = engine.infer(faces)
    finally:
        engine.close()
        reference.close()
    cos = (ref_emb * emb).sum(1)
    diff = float(np.abs(ref_logits - logits).max()) if logits.size else 0.0
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "max_abs_logits_diff": diff,
            "num_faces": int(len(faces))}


def build_cached_engine(onnx_path: PathLike, precision: str = "fp16", max_batch: int = 32,
                        calib_data: Optional[PathLike] = None, device: int = 0,
                        options: Optional[TrtBuildOptions] = None) -> Path:
    """Build the cached engine of `onnx_path` for this GPU / TensorRT / precision (next to the model, or in the user
    cache when that folder is read-only) and return its path. Does not look for an existing one: see
    `build_engine_if_missing`."""
    onnx_path = Path(onnx_path)
    base = options or TrtBuildOptions()
    options = replace(base, precision=precision, max_batch=int(max_batch), opt_batch=min(base.opt_batch,
                      int(max_batch)), min_batch=1, device=device,
                      calib_data=Path(calib_data) if calib_data else base.calib_data)
    target = new_engine_path(onnx_path, precision, device)
    log.info("no cached %s engine for %s on %s: building %s (takes a few minutes once)", precision, onnx_path.name,
             current_gpu(device).name, target)
    build_engine(onnx_path, target, options)
    return target


def build_engine_if_missing(onnx_path: PathLike, precision: str = "fp16", max_batch: int = 32,
                            calib_data: Optional[PathLike] = None, device: int = 0,
                            options: Optional[TrtBuildOptions] = None) -> Path:
    """The engine for `onnx_path` on this GPU / TensorRT / precision: the cached one if it exists and matches the
    current ONNX (`find_cached_engine`), else a freshly built one (`build_cached_engine`)."""
    cached = find_cached_engine(onnx_path, precision, device)
    if cached is not None:
        return cached
    return build_cached_engine(onnx_path, precision, max_batch, calib_data, device, options)
