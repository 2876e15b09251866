"""Opening a model: `open_model` (whatever `Recognizer(model=...)` takes) and `load_backend` (a model file -> the
backend that runs it).

One path check (`base.check_model_path`, which the backends use too), one engine-cache lookup
(`engine_cache.find_cached_engine`, at most once per load) and one message per failure. The runtime's backends are "tensorrt", "onnxruntime", "openvino" and "triton";
training checkpoints run on the development-only `TorchBackend` of the export tools (`export.torch_backend`), which
needs torch and is passed in as a ready backend object.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ..errors import BackendUnavailableError, G2DError, InputError, ModelError, check_fields, option
from ..shipped import DEFAULT_MODEL, SHIPPED_MODELS, shipped_model_path
from .base import TORCH_ELSEWHERE, Backend, check_model_path, load_sidecar
from .engine_cache import find_cached_engine
from .onnxruntime import OnnxRuntimeBackend, OrtOptions, available_providers
from .openvino import OpenVinoBackend, OpenVinoOptions, openvino_available
from .tensorrt import TensorRTBackend, TrtRuntimeOptions
from .tensorrt_env import ENGINE_SUFFIXES, PRECISIONS, tensorrt_available
from .triton import TritonBackend, TritonOptions, triton_available

log = logging.getLogger("g2d_edge.backends")

#: The backends of the runtime ("auto" picks one of them).
BACKEND_NAMES = ("tensorrt", "onnxruntime", "openvino", "triton")
_ALIASES = {"trt": "tensorrt", "ort": "onnxruntime", "onnx": "onnxruntime", "ov": "openvino"}
_OPTION_CLASSES = {"tensorrt": TrtRuntimeOptions, "onnxruntime": OrtOptions, "openvino": OpenVinoOptions,
                   "triton": TritonOptions}
#: What the runtime runs (a Triton backend reads only the model's sidecar).
MODEL_SUFFIXES = (".onnx",) + ENGINE_SUFFIXES
#: The model shipped inside the package, used when no model is named.
SHIPPED_MODEL = shipped_model_path(DEFAULT_MODEL)

ModelLike = Union[None, str, os.PathLike, Backend]


def available_backends() -> Dict[str, Optional[str]]:
    """{backend name: None if it can run here, else the reason it cannot}."""
    return {"tensorrt": tensorrt_available(), "onnxruntime": None if available_providers() else
            "onnxruntime is not installed: pip install onnxruntime", "openvino": openvino_available(),
            "triton": triton_available()}


def backend_name(backend: str) -> str:
    """The canonical name of `backend` ("auto" or one of BACKEND_NAMES; aliases such as "trt" accepted).

    Raises BackendUnavailableError for "torch" (see TORCH_ELSEWHERE), InputError for an unknown name.
    """
    name = str(backend).lower()
    name = _ALIASES.get(name, name)
    if name in ("torch", "pytorch"):
        raise BackendUnavailableError(f"the runtime has no torch backend: {TORCH_ELSEWHERE}")
    if name not in BACKEND_NAMES + ("auto",):
        raise InputError(f"backend must be 'auto' or one of {BACKEND_NAMES}, got {backend!r}")
    return name


@dataclass(frozen=True)
class BackendOptions:
    """How the model is opened: each runtime's own options, and the TensorRT engine build of an `.onnx`.

    onnxruntime / openvino / tensorrt: the options of that runtime (`OrtOptions`, `OpenVinoOptions`,
        `TrtRuntimeOptions`); those of the runtimes not chosen are ignored (the caller may not know which runtime
        backend "auto" picks).
    triton: where the model is served (`TritonOptions`); None: not served. With backend "auto", given options pick
        the Triton backend.
    build_engine: with TensorRT, build and cache an engine for an `.onnx` when none is cached for this GPU.
    precision: of that engine: "fp16" (default), "fp32" or "int8".
    calib_data: INT8 calibration faces for that build (a folder of photos or an .npz of aligned faces).

    `BackendOptions.of(intra_op_threads=1, url="grpc://host:8001", ...)` makes one from field names of the runtimes'
    options: each goes to every runtime that has a field of that name.
    """

    onnxruntime: OrtOptions = field(default_factory=OrtOptions)
    openvino: OpenVinoOptions = field(default_factory=OpenVinoOptions)
    tensorrt: TrtRuntimeOptions = field(default_factory=TrtRuntimeOptions)
    triton: Optional[TritonOptions] = None
    build_engine: bool = False
    precision: str = option("fp16", choices=PRECISIONS)
    calib_data: Optional[Path] = None

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def of(cls, **fields: Any) -> "BackendOptions":
        """Options from field names of `OrtOptions`, `OpenVinoOptions`, `TrtRuntimeOptions` and `TritonOptions`
        (`intra_op_threads` and `max_batch` mean the same to ONNX Runtime and OpenVINO; a field of `TritonOptions`
        makes `triton` options) and of this class. InputError for a name none of them has."""
        own = {f.name for f in dataclasses.fields(cls)} - set(_OPTION_CLASSES)
        known = {f.name for c in _OPTION_CLASSES.values() for f in dataclasses.fields(c)}
        unknown = sorted(set(fields) - known - own)
        if unknown:
            raise InputError(f"unknown backend option(s) {unknown}; valid: {sorted(known | own)}")
        parts: Dict[str, Any] = {k: v for k, v in fields.items() if k in own}
        for backend, option_class in _OPTION_CLASSES.items():
            mine = {f.name for f in dataclasses.fields(option_class)}
            given = {k: v for k, v in fields.items() if k in mine}
            if backend != "triton" or set(given) - {"max_batch"}:
                parts[backend] = option_class(**given)
        return cls(**parts)


def _cpu_runtime() -> str:
    """The runtime "auto" gives an `.onnx` that TensorRT does not run: "openvino" when it is installed and ONNX
    Runtime has no GPU provider here (OpenVINO is the faster CPU runtime for g2d-edge-m), else "onnxruntime"."""
    if any(p != "CPUExecutionProvider" for p in available_providers()):
        return "onnxruntime"
    return "openvino" if openvino_available() is None else "onnxruntime"


def _choose(path: Path, backend: str, precision: str, device: int, build: bool) -> Tuple[str, Optional[Path]]:
    """(backend to use, engine to run: the file itself, a cached engine, or None = build one) for a checked path.

    "auto": an engine -> TensorRT; an ONNX -> TensorRT when an engine for this GPU is cached (or `build`), else
    OpenVINO on a CPU-only machine where it is installed, else ONNX Runtime. The cache is looked up here, once.
    """
    is_engine = path.suffix.lower() in ENGINE_SUFFIXES
    if backend in ("onnxruntime", "openvino"):
        if is_engine:
            raise ModelError(f"the {backend} backend runs .onnx models, got {path}")
        reason = openvino_available() if backend == "openvino" else None
        if reason is not None:
            raise BackendUnavailableError(reason)
        return backend, None
    reason = tensorrt_available()
    if reason is not None:
        if backend == "tensorrt" or is_engine:
            raise BackendUnavailableError(reason)
        return _cpu_runtime(), None
    if is_engine:
        return "tensorrt", path
    engine = find_cached_engine(path, precision, device)
    if backend == "auto" and engine is None and not build:
        return _cpu_runtime(), None
    return "tensorrt", engine


def load_backend(model: Union[str, Path], backend: str = "auto", options: Optional[BackendOptions] = None) -> Backend:
    """Open the model file `model` with an inference backend.

    model: a `.engine` (TensorRT) or an `.onnx` (ONNX Runtime, or TensorRT through a cached engine); its `.json`
        sidecar must sit next to it.
    backend: "auto" | "tensorrt" | "onnxruntime" | "openvino" | "triton". "auto" picks by file type and what is
        installed, fastest first: an engine -> TensorRT; an ONNX -> TensorRT when an engine for this GPU is cached
        next to it (or `options.build_engine`), else ONNX Runtime with a GPU provider (TensorRT EP > CUDA EP), else
        OpenVINO when it is installed (`pip install g2d-edge[openvino]`), else ONNX Runtime on the CPU. The choice
        is logged. An
        explicitly requested backend that cannot run here raises BackendUnavailableError naming the missing
        package. "triton" (also picked by "auto" when `options.triton` is given) runs the model on a Triton server;
        `model` is then read only for its sidecar (an `.onnx`, `.engine` or the `.json` itself), which the served
        model must match.
    options: `BackendOptions` (each runtime's options, the engine build), already checked when it was made.
    """
    if options is not None and not isinstance(options, BackendOptions):
        raise InputError(f"backend options must be a BackendOptions (e.g. BackendOptions.of(intra_op_threads=1)), "
                         f"got {type(options).__name__}")
    opts = options or BackendOptions()
    path = Path(model)
    name = backend_name(backend)
    if name == "auto" and opts.triton is not None:
        name = "triton"
        log.info("backend auto -> triton at %s", opts.triton.url)
    if name == "triton":
        return TritonBackend(load_sidecar(path), opts.triton or TritonOptions())
    check_model_path(path, MODEL_SUFFIXES)
    chosen, engine = _choose(path, name, opts.precision, opts.tensorrt.device, opts.build_engine)
    if name == "auto":
        log.info("backend auto -> %s for %s", chosen, path.name)
    if chosen == "onnxruntime":
        return OnnxRuntimeBackend(path, opts.onnxruntime)
    if chosen == "openvino":
        sidecar = load_sidecar(path)  # a damaged sidecar is the user's to fix, whichever runtime runs the graph
        try:
            return OpenVinoBackend(path, opts.openvino, sidecar)
        except ModelError as exc:
            if name != "auto" or exc.__cause__ is None:  # only OpenVINO's own failure to run the graph falls back
                raise
            log.warning("OpenVINO cannot run %s (%s); backend auto -> onnxruntime instead", path.name, exc)
            return OnnxRuntimeBackend(path, opts.onnxruntime, sidecar)
    if engine is None:
        if not opts.build_engine:
            raise ModelError(f"no TensorRT engine for {path.name} on this GPU; build one with `g2d-export trt "
                             f"{path} --precision {opts.precision}` or pass BackendOptions(build_engine=True)")
        from .engine_build import build_cached_engine  # the builder: imported only when an engine is built

        engine = build_cached_engine(path, precision=opts.precision, max_batch=opts.tensorrt.max_batch or 32,
                                     calib_data=opts.calib_data, device=opts.tensorrt.device)
    return TensorRTBackend(engine, opts.tensorrt)


def _resolve_model(model: ModelLike) -> Path:
    """The model file named by `model`: None -> the default shipped model, a shipped model's name -> that model."""
    if model is None:
        return _installed(SHIPPED_MODEL)
    if isinstance(model, str) and model in SHIPPED_MODELS and not Path(model).exists():
        return _installed(shipped_model_path(model))
    return Path(model)


def open_model(model: ModelLike = None, backend: str = "auto", options: Optional[BackendOptions] = None) -> Backend:
    """Open a model: None -> the default shipped model; a shipped model's name ("g2d-edge-s", see
    `g2d_edge.shipped`) -> that model; a path -> `load_backend`; a ready backend object (anything with `.infer` and
    `.sidecar`, e.g. `export.torch_backend.TorchBackend`) is returned as is. `options`: `BackendOptions`.

    Raises:
        ModelError: the shipped model is missing, the file does not exist, or it is not a loadable model.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        if hasattr(model, "infer") and hasattr(model, "sidecar"):
            return model
        raise ModelError(f"model must be a path to an .onnx/.engine file or a backend object, "
                         f"got {type(model).__name__}")
    path = _resolve_model(model)
    try:
        return load_backend(path, backend, options)
    except G2DError:
        raise
    except Exception as exc:  # a runtime's own error for a bad file: say which file and what to do
        raise ModelError(f"cannot load model {path} with backend {backend!r}: {type(exc).__name__}: {exc}. "
                         "Is it a model exported by g2d-export (ONNX graph or TensorRT engine)?") from exc


def _installed(path: Path) -> Path:
    """`path` of a shipped model, or ModelError when this build does not carry it."""
    if not path.is_file():
        raise ModelError(
            f"the model shipped with g2d-edge ({path.name}) is not installed in this build "
            f"(looked in {path.parent}). Pass a model explicitly: Recognizer(model='path/to/model.onnx') "
            "or `--model path/to/model.onnx` on the g2d command line; export one with `g2d-export onnx` "
            "(its .json sidecar must sit next to it).")
    return path
