"""What TensorRT and which GPU this machine has: the imports, the GPU description and the TensorRT logger that the
TensorRT backend (`tensorrt.py`), the engine cache (`engine_cache.py`) and the engine builder (`engine_build.py`)
share. Nothing here imports `tensorrt` or `pycuda` at module level.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from ..errors import BackendUnavailableError

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


def trt_release(version: str) -> Tuple[int, ...]:
    """The major.minor.patch part of a TensorRT version string ("10.3.0.26" -> (10, 3, 0))."""
    nums = [int(p) for p in re.findall(r"\d+", str(version))[:3]]
    return tuple(nums)


def slug(text: str) -> str:
    """`text` as a lower-case file-name part ("NVIDIA Jetson Orin Nano" -> "nvidia-jetson-orin-nano")."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "gpu"


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
