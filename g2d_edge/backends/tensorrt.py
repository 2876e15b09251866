"""TensorRT backend: runs a serialized engine (`.engine`, built by `g2d-export trt`) through pycuda.

An engine only runs on the GPU model and TensorRT version it was built with. Its sidecar (`<engine>.json`) records
both; they are compared with the running machine *before* deserialising, so a mismatch is a `ModelError` that says
how to rebuild, never a crash inside TensorRT. Engines cached by `BackendOptions.build_engine` are named and found by
`g2d_edge.backends.engine_cache`; they are built by `g2d_edge.backends.engine_build`.

Buffers (page-locked host, device) are allocated once for the profile's largest batch and reused; copies and
execution are asynchronous on one CUDA stream, synchronised once per call. One backend object runs one batch at a
time (a lock serialises concurrent callers; create one backend per thread for parallelism).

Nothing here imports `tensorrt` or `pycuda` at module level.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import ModelError, check_fields, option
from ..sidecar import ModelSidecar
from .base import BaseBackend, PathLike, check_model_path, load_sidecar
from .tensorrt_env import ENGINE_SUFFIXES, GpuInfo, current_gpu, import_tensorrt, trt_logger, trt_release

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrtRuntimeOptions:
    """How an engine is loaded.

    device: CUDA device index.
    max_batch: cap on the batch per engine call (0 = the engine profile's maximum); smaller caps save host memory.
    strict_gpu: refuse an engine built on a GPU with another name even when the compute capability matches
        (TensorRT would run it with a warning and possibly lower speed). Set False to allow it.
    """

    device: int = option(0, low=0, high=1024)
    max_batch: int = option(0, low=0, high=65536)
    strict_gpu: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


def rebuild_hint(engine: Optional[Dict[str, Any]]) -> str:
    """The command that rebuilds an engine on this machine."""
    engine = engine or {}
    onnx = engine.get("onnx") or "<model>.onnx"
    parts = [f"g2d-export trt {onnx}", f"--precision {engine.get('precision', 'fp16')}"]
    if engine.get("max_batch"):
        parts.append(f"--max-batch {engine['max_batch']}")
    return ("rebuild it on this machine: " + " ".join(parts) +
            " (or load the .onnx with BackendOptions(build_engine=True), which builds and caches an engine for this "
            "GPU)")


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
    if trt_release(built_trt) != trt_release(trt_version):
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
        self.engine_path = check_model_path(engine_path, ENGINE_SUFFIXES)
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
