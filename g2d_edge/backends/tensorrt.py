"""TensorRT backend: runs a serialized engine (`.engine`, built by `g2d-export trt`) through pycuda.

An engine only runs on the GPU model and TensorRT version it was built with. Its sidecar (`<engine>.json`) records
both; they are compared with the running machine *before* deserialising, so a mismatch is a `ModelError` that says
how to rebuild, never a crash inside TensorRT. Engines cached by `build_engine=True` are named by
`engine_cache_path(onnx, gpu, trt_version, precision)` and live next to the ONNX model.

Buffers (page-locked host, device) are allocated once for the profile's largest batch and reused; copies and
execution are asynchronous on one CUDA stream, synchronised once per call. One backend object runs one batch at a
time (a lock serialises concurrent callers; create one backend per thread for parallelism).

Nothing here imports `tensorrt` or `pycuda` at module level.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import BackendUnavailableError, ModelError
from ..sidecar import ModelSidecar
from .base import BaseBackend, PathLike, check_model_file, load_sidecar, user_cache_dir

log = logging.getLogger(__name__)

TRT_INSTALL_HINT = ("tensorrt backend needs the `tensorrt` and `pycuda` packages and an NVIDIA GPU: "
                    "pip install g2d-edge[tensorrt]")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for or run on."""

    name: str
    compute_capability: str  # "major.minor", e.g. "8.7" (Jetson Orin), "9.0" (H100)


@dataclass
class TrtRuntimeOptions:
    """How an engine is loaded.

    device: CUDA device index.
    max_batch: cap on the batch per engine call (0 = the engine profile's maximum); smaller caps save host memory.
    strict_gpu: refuse an engine built on a GPU with another name even when the compute capability matches
        (TensorRT would run it with a warning and possibly lower speed). Set False to allow it.
    """

    device: int = 0
    max_batch: int = 0
    strict_gpu: bool = True


def import_tensorrt() -> Tuple[Any, Any]:
    """(tensorrt, pycuda.driver), or BackendUnavailableError naming what is missing."""
    missing = []
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
        missing.append("tensorrt")
    try:
        import pycuda.driver as cuda
    except ImportError:
        cuda = None
        missing.append("pycuda")
    if missing:
        raise BackendUnavailableError(f"{TRT_INSTALL_HINT} (missing here: {', '.join(missing)})")
    return trt, cuda


def tensorrt_available() -> Optional[str]:
    """None when the TensorRT backend can run here, else the reason it cannot (package or GPU missing)."""
    try:
        _, cuda = import_tensorrt()
        cuda.init()
        if cuda.Device.count() < 1:
            return f"no NVIDIA GPU found; {TRT_INSTALL_HINT}"
    except BackendUnavailableError as exc:
        return str(exc)
    except Exception as exc:  # pycuda raises its own RuntimeError/LogicError when there is no driver or device
        return f"CUDA is not usable here ({exc}); {TRT_INSTALL_HINT}"
    return None


def current_gpu(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device `device` (through pycuda)."""
    _, cuda = import_tensorrt()
    try:
        cuda.init()
        dev = cuda.Device(device)
        major, minor = dev.compute_capability()
        return GpuInfo(name=str(dev.name()), compute_capability=f"{major}.{minor}")
    except Exception as exc:
        raise BackendUnavailableError(f"cannot open CUDA device {device} ({exc}); {TRT_INSTALL_HINT}") from exc


def _release(version: str) -> Tuple[int, ...]:
    """The major.minor.patch part of a TensorRT version string ("10.3.0.26" -> (10, 3, 0))."""
    nums = [int(p) for p in re.findall(r"\d+", str(version))[:3]]
    return tuple(nums)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "gpu"


def engine_cache_path(onnx_path: PathLike, gpu_name: str, trt_version: str, precision: str) -> Path:
    """Where the engine built from `onnx_path` for this GPU / TensorRT / precision is cached: next to the model,
    e.g. `g2d-edge-s.fp16.nvidia-jetson-orin-nano.trt10.3.0.engine` (its sidecar replaces `.engine` by `.json`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = Path(onnx_path)
    release = ".".join(str(n) for n in _release(trt_version)) or _slug(trt_version)
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.{_slug(gpu_name)}.trt{release}.engine")


def engine_cache_candidates(onnx_path: PathLike, gpu_name: str, trt_version: str, precision: str) -> List[Path]:
    """Where a cached engine may be: next to the model, then in the user cache (used when the model's folder is
    read-only, e.g. the shipped model inside site-packages)."""
    primary = engine_cache_path(onnx_path, gpu_name, trt_version, precision)
    return [primary, user_cache_dir() / "engines" / primary.name]


def rebuild_hint(engine: Optional[Dict[str, Any]]) -> str:
    """The command that rebuilds an engine on this machine."""
    engine = engine or {}
    onnx = engine.get("onnx") or "<model>.onnx"
    parts = [f"g2d-export trt {onnx}", f"--precision {engine.get('precision', 'fp16')}"]
    if engine.get("max_batch"):
        parts.append(f"--max-batch {engine['max_batch']}")
    return ("rebuild it on this machine: " + " ".join(parts) +
            " (or load the .onnx with build_engine=True, which builds and caches an engine for this GPU)")


def check_engine_compat(engine: Optional[Dict[str, Any]], gpu: GpuInfo, trt_version: str,
                        strict_gpu: bool = True, engine_path: Optional[PathLike] = None) -> None:
    """Raise ModelError (with a rebuild hint) unless the engine described by a sidecar's `engine` section can run
    on `gpu` with TensorRT `trt_version`.

    TensorRT engines are tied to the TensorRT release (major.minor.patch) and to the GPU's compute capability; with
    `strict_gpu` the GPU's name must match too.
    """
    where = f"engine {engine_path}" if engine_path else "engine"
    if not engine:
        raise ModelError(f"the sidecar of {where} has no `engine` section (it is an ONNX model's sidecar, or the "
                         f"engine was not built by g2d-export); {rebuild_hint(None)}")
    problems = []
    built_trt = str(engine.get("tensorrt", ""))
    if _release(built_trt) != _release(trt_version):
        problems.append(f"built with TensorRT {built_trt or 'unknown'}, this machine has TensorRT {trt_version}")
    built_cc = str(engine.get("compute_capability", ""))
    built_gpu = str(engine.get("gpu", ""))
    if built_cc != gpu.compute_capability:
        problems.append(f"built for compute capability {built_cc or 'unknown'} ({built_gpu or 'unknown GPU'}), "
                        f"this GPU is {gpu.name} with compute capability {gpu.compute_capability}")
    elif strict_gpu and built_gpu != gpu.name:
        problems.append(f"built on a {built_gpu or 'unknown GPU'}, this GPU is a {gpu.name} (same compute "
                        "capability: TrtRuntimeOptions(strict_gpu=False) would try it anyway)")
    if problems:
        raise ModelError(f"TensorRT {where} does not match this machine: {'; '.join(problems)}; "
                         f"{rebuild_hint(engine)}")


_TRT_LOGGER = None


def trt_logger():
    """The process-wide TensorRT logger (TensorRT wants one), forwarding to Python logging and keeping the last
    errors so that they can be quoted in exceptions."""
    global _TRT_LOGGER
    if _TRT_LOGGER is None:
        trt, _ = import_tensorrt()

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: List[str] = []

            def log(self, severity, msg) -> None:  # noqa: A003 - TensorRT's interface
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    self.errors = (self.errors + [str(msg)])[-10:]
                    log.error("TensorRT: %s", msg)
                elif severity == trt.ILogger.Severity.WARNING:
                    log.warning("TensorRT: %s", msg)
                elif severity == trt.ILogger.Severity.INFO:
                    log.debug("TensorRT: %s", msg)

        _TRT_LOGGER = _Logger()
    return _TRT_LOGGER


@dataclass
class _Binding:
    name: str
    is_input: bool
    host: np.ndarray  # page-locked, (max_batch, ...)
    device: Any  # pycuda DeviceAllocation


class TensorRTBackend(BaseBackend):
    """Runs a TensorRT engine built by `g2d-export trt`; see the module docstring."""

    name = "tensorrt"

    def __init__(self, engine_path: PathLike, options: Optional[TrtRuntimeOptions] = None,
                 sidecar: Optional[ModelSidecar] = None) -> None:
        self.options = options or TrtRuntimeOptions()
        self.engine_path = check_model_file(engine_path, ENGINE_SUFFIXES, "TensorRT engine")
        sidecar = sidecar or load_sidecar(self.engine_path)
        trt, cuda = import_tensorrt()
        self._cuda = cuda
        self.gpu = current_gpu(self.options.device)
        check_engine_compat(sidecar.engine, self.gpu, trt.__version__, self.options.strict_gpu, self.engine_path)
        self._lock = threading.Lock()
        self.sidecar_outputs = list(sidecar.outputs[:2])
        self._ctx = cuda.Device(self.options.device).retain_primary_context()
        self._ctx.push()
        self._bindings: Dict[str, _Binding] = {}
        try:
            self._engine = self._deserialize(trt)
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise ModelError(f"TensorRT could not create an execution context for {self.engine_path} (out of GPU "
                                 "memory?); close other GPU programs or rebuild with a smaller --max-batch")
            max_batch = self._allocate(trt, cuda)
            self._stream = cuda.Stream()
        except Exception:
            for b in self._bindings.values():
                b.device.free()
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
            raise
        self._ctx.pop()
        super().__init__(sidecar, max_batch)
        log.info("tensorrt backend: %s (%s, %s, batch <= %d) on %s", self.engine_path.name,
                 (sidecar.engine or {}).get("precision", "?"), trt.__version__, self.max_batch, self.gpu.name)

    # -- loading -------------------------------------------------------------------------------------------------
    def _deserialize(self, trt):
        data = self.engine_path.read_bytes()
        logger = trt_logger()
        logger.errors = []
        runtime = trt.Runtime(logger)
        try:
            engine = runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # some TensorRT versions raise instead of returning None
            engine, reason = None, str(exc)
        else:
            reason = "; ".join(logger.errors[-3:])
        if engine is None:
            raise ModelError(f"TensorRT could not deserialize {self.engine_path} ({reason or 'no reason given'}): "
                             f"the file is truncated or corrupt, or was built elsewhere; "
                             f"{rebuild_hint(self._sidecar_engine())}")
        self._runtime = runtime  # keep alive as long as the engine
        return engine

    def _sidecar_engine(self) -> Optional[Dict[str, Any]]:
        try:
            return load_sidecar(self.engine_path).engine
        except ModelError:
            return None

    def _allocate(self, trt, cuda) -> int:
        """Allocate host/device buffers for the profile's largest batch; returns that batch size."""
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ModelError(f"{self.engine_path} has inputs {inputs}; a g2d-edge engine has exactly one ('faces'); "
                             f"{rebuild_hint(self._sidecar_engine())}")
        self._input = inputs[0]
        missing = [n for n in self.sidecar_outputs if n not in names]
        if missing:
            raise ModelError(f"{self.engine_path} has no output(s) {missing} (it has {names}); its sidecar belongs to "
                             f"another model, or it was not built from a g2d-export ONNX; "
                             f"{rebuild_hint(self._sidecar_engine())}")
        profile_max = int(engine.get_tensor_profile_shape(self._input, 0)[2][0])
        max_batch = profile_max if self.options.max_batch <= 0 else min(profile_max, self.options.max_batch)
        for name in names:
            shape = list(engine.get_tensor_shape(name))
            if shape and shape[0] == -1:
                shape[0] = max_batch
            if any(d < 0 for d in shape):
                raise ModelError(f"{self.engine_path}: tensor {name} has dynamic dimensions {shape} besides the batch; "
                                 "only the batch axis may be dynamic")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            host = cuda.pagelocked_empty(tuple(shape), dtype)
            device = cuda.mem_alloc(max(host.nbytes, 1))
            self._context.set_tensor_address(name, int(device))
            self._bindings[name] = _Binding(name, name == self._input, host, device)
        return max_batch

    # -- running -------------------------------------------------------------------------------------------------
    def _run(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        cuda = self._cuda
        n = faces.shape[0]
        with self._lock:
            if self._ctx is None:
                raise ModelError(f"the TensorRT backend for {self.engine_path} was closed; load the model again")
            inp = self._bindings[self._input]
            outputs = [self._bindings[name] for name in self.sidecar_outputs]
            self._ctx.push()
            try:
                np.copyto(inp.host[:n], faces)
                if not self._context.set_input_shape(self._input, faces.shape):
                    raise ModelError(f"the engine rejected a batch of shape {faces.shape} (profile max "
                                     f"{self.max_batch})")
                cuda.memcpy_htod_async(inp.device, inp.host[:n], self._stream)
                if not self._context.execute_async_v3(stream_handle=self._stream.handle):
                    raise ModelError(f"TensorRT failed to run {self.engine_path} "
                                     f"({'; '.join(trt_logger().errors[-3:]) or 'see the log'})")
                for out in outputs:
                    if out.host[:n].nbytes:  # a model without classifier has (N, 0) logits
                        cuda.memcpy_dtoh_async(out.host[:n], out.device, self._stream)
                self._stream.synchronize()
                return outputs[0].host[:n].copy(), outputs[1].host[:n].copy()
            finally:
                self._ctx.pop()

    def close(self) -> None:
        """Free the GPU buffers and the engine. Safe to call twice."""
        ctx = getattr(self, "_ctx", None)
        if ctx is None:
            return
        with self._lock:
            ctx.push()
            try:
                for b in self._bindings.values():
                    b.device.free()
                self._bindings = {}
                self._context = None
                self._engine = None
                self._runtime = None
                self._stream = None
            finally:
                ctx.pop()
                ctx.detach()
                self._ctx = None

    def __del__(self) -> None:  # pragma: no cover - GPU only
        try:
            self.close()
        except Exception:
            pass
