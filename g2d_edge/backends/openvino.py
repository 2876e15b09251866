"""OpenVINO backend: runs the exported `.onnx` graph with Intel's OpenVINO runtime on an x86 CPU (`pip install
g2d-edge[openvino]`; PyPI `openvino`, Apache-2.0).

OpenVINO reads the ONNX file itself (no conversion step, no cache). The model is compiled twice: once for a batch of
exactly one face (the common case on a camera, where OpenVINO's dynamic-shape kernels cost more than the network for
a small model) and once with a dynamic batch axis for everything else. Inference runs in float32
(`INFERENCE_PRECISION_HINT`), so its embeddings match ONNX Runtime's (cosine >= 0.9999, tested) also on CPUs with
bf16 or fp16 units, where OpenVINO would otherwise pick the lower precision.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import BackendUnavailableError, ModelError, check_fields, option
from ..sidecar import ModelSidecar
from .base import BaseBackend, PathLike, check_graph_against_sidecar, check_model_path, load_sidecar

log = logging.getLogger(__name__)

#: OpenVINO inference precisions `OpenVinoOptions.inference_precision` accepts.
PRECISIONS = ("f32", "bf16", "f16")
#: OpenVINO element type names -> the sidecar's dtype names.
_OV_TYPES = {"u8": "uint8", "f32": "float32", "f16": "float16"}


@dataclass(frozen=True)
class OpenVinoOptions:
    """How the OpenVINO model is compiled.

    intra_op_threads: threads for one inference (0 = OpenVINO's default, one per physical core): the same option
        name as ONNX Runtime's (`OrtOptions.intra_op_threads`), so one `BackendOptions.of(intra_op_threads=1)`
        works for either.
    max_batch: faces per inference call; larger batches are split (bounds memory, not speed).
    openvino_device: the OpenVINO device ("CPU"; "GPU" for an Intel GPU with its driver installed). Not `device`,
        which is the GPU index of the CUDA / TensorRT backends.
    inference_precision: "f32" (default: the same embeddings as ONNX Runtime), or "bf16" / "f16" on hardware that
        has them (faster there; the embeddings then differ slightly).
    """

    intra_op_threads: int = option(0, low=0, high=1024)
    max_batch: int = option(64, low=1, high=65536)
    openvino_device: str = option("CPU", non_empty=True)
    inference_precision: str = option("f32", choices=PRECISIONS)

    def __post_init__(self) -> None:
        check_fields(self)

    def compile_config(self) -> Dict[str, Any]:
        """The OpenVINO compile properties these options stand for."""
        # no pinning: OpenVINO's inference thread pinned to a core that detection, tracking or another process also
        # uses waited for it (g2d-edge-s at batch 1: 3.5 ms pinned, 1.4 ms not, on a loaded 2-core machine)
        config: Dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
                                  "INFERENCE_PRECISION_HINT": self.inference_precision}
        if self.intra_op_threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(self.intra_op_threads)
        return config


def import_openvino() -> Any:
    """The `openvino` module, or BackendUnavailableError saying how to install it."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailableError("the openvino backend needs the `openvino` package: pip install "
                                      "g2d-edge[openvino] (or pip install openvino)") from exc
    return openvino


def openvino_available() -> Optional[str]:
    """None when OpenVINO can run here (installed, with a CPU device), else why not."""
    try:
        ov = import_openvino()
    except BackendUnavailableError as exc:
        return str(exc)
    try:
        devices = ov.Core().available_devices
    except Exception as exc:  # a broken install: its own RuntimeError
        return f"OpenVINO is installed but cannot start ({type(exc).__name__}: {exc}); reinstall openvino"
    if "CPU" not in devices:
        return f"OpenVINO has no CPU device here (devices: {', '.join(devices) or 'none'})"
    return None


class OpenVinoBackend(BaseBackend):
    """Runs an exported `.onnx` model (with its `.json` sidecar) in OpenVINO."""

    name = "openvino"

    def __init__(self, model_path: PathLike, options: Optional[OpenVinoOptions] = None,
                 sidecar: Optional[ModelSidecar] = None) -> None:
        self.options = options or OpenVinoOptions()
        self.model_path = check_model_path(model_path, (".onnx",))
        super().__init__(sidecar or load_sidecar(self.model_path), self.options.max_batch)
        ov = import_openvino()
        core = ov.Core()
        spec = self.sidecar.input
        try:
            model = core.read_model(str(self.model_path))
            self._check_io(model)
            config = self.options.compile_config()
            dynamic = core.compile_model(model, self.options.openvino_device, config)
            model.reshape({spec.name: [1, spec.height, spec.width, spec.channels]})
            single = core.compile_model(model, self.options.openvino_device, config)
        except (ModelError, BackendUnavailableError):
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError with its own message
            raise ModelError(f"OpenVINO cannot load {self.model_path} ({type(exc).__name__}: "
                             f"{str(exc).strip()[:300]}); the file is corrupt or truncated, or the device "
                             f"{self.options.openvino_device!r} is not available: export it again with "
                             "`g2d-export onnx`, or use backend='onnxruntime'") from exc
        self._compiled = {1: (single, single.create_infer_request()), 0: (dynamic, dynamic.create_infer_request())}
        self._lock = threading.Lock()  # an infer request serves one call at a time (ONNX Runtime's session is shared)
        log.info("openvino backend: %s on %s (%s, %s threads)", self.model_path.name, self.options.openvino_device,
                 self.options.inference_precision, self.options.intra_op_threads or "default")

    def _check_io(self, model: Any) -> None:
        """ModelError unless the graph takes the sidecar's input and gives its outputs."""
        inputs = [(p.get_any_name(), _OV_TYPES.get(p.get_element_type().get_type_name(), "?")) for p in model.inputs]
        shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()][1:] \
            if len(model.inputs) == 1 else []
        outputs = {}
        for port in model.outputs:
            last = port.get_partial_shape()[-1] if port.get_partial_shape().rank.get_length() else None
            for name in port.get_names():
                outputs[name] = last.get_length() if last is not None and last.is_static else None
        key = ["framework", "embedding_space"]  # where OpenVINO keeps the ONNX graph's metadata
        stamped = str(model.get_rt_info(key).astype(str)) if model.has_rt_info(key) else ""
        check_graph_against_sidecar(self.model_path, self.sidecar, inputs, shape, outputs, stamped)

    def _run(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        if not self._compiled:
            raise ModelError(f"the openvino backend for {self.model_path} was closed; load the model again")
        compiled, request = self._compiled[1 if len(faces) == 1 else 0]
        emb_name, logits_name = self.sidecar.outputs[:2]
        with self._lock:
            results = request.infer({0: faces})
            return results[compiled.output(emb_name)], results[compiled.output(logits_name)]

    def close(self) -> None:
        self._compiled = {}
