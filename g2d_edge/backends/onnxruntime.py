"""ONNX Runtime backend: runs the exported `.onnx` graph with the best execution provider installed.

Provider preference: TensorRT EP > CUDA EP > CPU EP, among those `onnxruntime.get_available_providers()` lists
(`onnxruntime-gpu` brings the first two). The TensorRT EP builds its engine on first use and caches it (and its timing
cache) in `OrtOptions.cache_dir`, by default a folder next to the model (or the user cache when that is read-only).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BackendUnavailableError, ModelError, check_fields, option
from ..sidecar import ModelSidecar
from .base import BaseBackend, PathLike, check_graph_against_sidecar, check_model_path, load_sidecar, writable_dir

log = logging.getLogger(__name__)

#: Execution providers in the order we prefer them.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_SHORT_NAMES = {"tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
                "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


@dataclass(frozen=True)
class OrtOptions:
    """How the ONNX Runtime session is made.

    providers: execution providers to use, in order ("tensorrt", "cuda", "cpu" or ORT's full names); None picks
        the best available (TensorRT > CUDA > CPU). A requested provider that is not installed raises
        BackendUnavailableError.
    intra_op_threads: threads inside one operator (0 = ONNX Runtime's default, one per physical core).
    inter_op_threads: threads across operators (0 = default).
    max_batch: faces per session call; larger batches are split (bounds memory, not speed).
    device: GPU index for the CUDA / TensorRT providers.
    trt_fp16: let the TensorRT provider use FP16 kernels.
    trt_max_batch / trt_opt_batch: the TensorRT provider's optimisation profile for the batch axis.
    cache_dir: where the TensorRT provider keeps its engine and timing caches (None: next to the model).
    spin_wait: let idle intra-op threads spin after a call. Off by default: on a camera box the CPU is shared with
        detection and matching right after inference, and spinning threads slow those down.
    """

    providers: Optional[Sequence[str]] = option(None, non_empty=True)
    intra_op_threads: int = option(0, low=0, high=1024)
    inter_op_threads: int = option(0, low=0, high=1024)
    max_batch: int = option(64, low=1, high=65536)
    device: int = option(0, low=0, high=1024)
    trt_fp16: bool = True
    trt_max_batch: int = option(32, low=1, high=65536)
    trt_opt_batch: int = option(8, low=1, high=65536)
    cache_dir: Optional[Path] = None
    spin_wait: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency
        raise BackendUnavailableError("onnxruntime backend needs the `onnxruntime` package: pip install onnxruntime "
                                      "(or onnxruntime-gpu on a CUDA machine)") from exc
    return ort


def available_providers() -> List[str]:
    """ONNX Runtime execution providers installed here, in our order of preference (CPU always last)."""
    try:
        ort = _import_ort()
    except BackendUnavailableError:
        return []
    have = set(ort.get_available_providers())
    return [p for p in PROVIDER_PREFERENCE if p in have]


def resolve_providers(requested: Optional[Sequence[str]]) -> List[str]:
    """Full provider names to use: the requested ones (checked to be installed) or the best available."""
    available = available_providers()
    if requested is None:
        return available
    out = []
    for name in requested:
        full = _SHORT_NAMES.get(str(name).lower(), str(name))
        if full not in available:
            hint = ("pip install onnxruntime-gpu (and CUDA/TensorRT libraries) on an NVIDIA machine"
                    if full != "CPUExecutionProvider" else "reinstall onnxruntime")
            raise BackendUnavailableError(f"ONNX Runtime provider {full} is not available here (available: "
                                          f"{', '.join(available) or 'none'}); {hint}")
        out.append(full)
    if not out:
        raise BackendUnavailableError("no ONNX Runtime execution provider requested")
    return out


class OnnxRuntimeBackend(BaseBackend):
    """Runs an exported `.onnx` model (with its `.json` sidecar) in ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, model_path: PathLike, options: Optional[OrtOptions] = None,
                 sidecar: Optional[ModelSidecar] = None) -> None:
        self.options = options or OrtOptions()
        self.model_path = check_model_path(model_path, (".onnx",))
        super().__init__(sidecar or load_sidecar(self.model_path), self.options.max_batch)
        ort = _import_ort()
        providers = resolve_providers(self.options.providers)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only: provider fall-backs are logged by us
        if self.options.intra_op_threads > 0:
            so.intra_op_num_threads = int(self.options.intra_op_threads)
        if not self.options.spin_wait:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if self.options.inter_op_threads > 0:
            so.inter_op_num_threads = int(self.options.inter_op_threads)
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=so,
                                                 providers=[(p, self._provider_options(p)) for p in providers])
        except Exception as exc:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, InvalidGraph ...)
            raise ModelError(f"ONNX Runtime cannot load {self.model_path} ({type(exc).__name__}: "
                             f"{str(exc).strip()[:300]}); the file is corrupt or truncated: export it again with "
                             "`g2d-export onnx` or copy it again") from exc
        self.providers: List[str] = list(self._session.get_providers())
        if providers[0] not in self.providers:
            log.warning("ONNX Runtime could not start %s (missing CUDA/TensorRT libraries?); running on %s",
                        providers[0], self.providers[0])
        self._check_io()
        log.info("onnxruntime backend: %s on %s", self.model_path.name, ", ".join(self.providers))

    @property
    def provider(self) -> str:
        """The execution provider that runs (most of) the graph."""
        return self.providers[0]

    def _provider_options(self, provider: str) -> Dict[str, Any]:
        opts = self.options
        if provider == "CUDAExecutionProvider":
            return {"device_id": opts.device}
        if provider == "TensorrtExecutionProvider":
            cache = writable_dir(Path(opts.cache_dir) if opts.cache_dir else
                                 self.model_path.parent / f"{self.model_path.stem}.ort-trt-cache", "ort-trt")
            name = self.sidecar.input.name
            shape = "x{}x{}x{}".format(self.sidecar.input.height, self.sidecar.input.width, self.sidecar.input.channels)
            max_b = max(1, opts.trt_max_batch)
            return {
                "device_id": opts.device,
                "trt_fp16_enable": bool(opts.trt_fp16),
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache),
                "trt_profile_min_shapes": f"{name}:1{shape}",
                "trt_profile_opt_shapes": f"{name}:{min(max(1, opts.trt_opt_batch), max_b)}{shape}",
                "trt_profile_max_shapes": f"{name}:{max_b}{shape}",
            }
        return {}

    def _check_io(self) -> None:
        inputs = self._session.get_inputs()
        outputs = {o.name: (o.shape[-1] if o.shape else None) for o in self._session.get_outputs()}
        check_graph_against_sidecar(
            self.model_path, self.sidecar, [(i.name, i.type[len("tensor("):-1]) for i in inputs],
            list(inputs[0].shape)[1:] if len(inputs) == 1 else [], outputs,
            self._session.get_modelmeta().custom_metadata_map.get("embedding_space", ""))
        if self.max_batch > 1 and self.provider == "TensorrtExecutionProvider":
            self.max_batch = min(self.max_batch, max(1, self.options.trt_max_batch))

    def _run(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        if self._session is None:
            raise ModelError(f"the onnxruntime backend for {self.model_path} was closed; load the model again")
        emb, logits = self._session.run(list(self.sidecar.outputs[:2]), {self.sidecar.input.name: faces})
        return emb, logits

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]
