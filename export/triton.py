"""`g2d-export triton`: an exported ONNX model -> a Triton Inference Server model repository.

    model_repository/
      g2d-edge-s/                   ONNX Runtime variant (platform onnxruntime_onnx)
        config.pbtxt
        1/model.onnx                the fused graph, byte for byte
        1/model.json                its sidecar (the SDK's convention: the sidecar sits next to the model file)
      g2d-edge-s-trt/               TensorRT plan variant, only where TensorRT and a GPU are present
        config.pbtxt
        1/model.plan                built by `g2d_edge.backends.engine_build.build_engine` (parity-checked against ONNX Runtime)
        1/model.json                the engine's sidecar (TensorRT version, GPU, precision)

This is the layout the NGC `tritonserver` container loads as is (`--model-repository=/models`). Each `config.pbtxt`
names the graph's tensors (`faces` uint8 [112,112,3] in; `embedding` float32 [D] and `logits` float32 [C] out, D and
C from the sidecar), sets `max_batch_size`, dynamic batching and the instance group, and declares which embedding
space the model serves in `parameters` (`g2d_embedding_space`, `g2d_embedding_dim`, `g2d_model`,
`g2d_weights_sha256`). `TritonBackend` (g2d_edge/backends/triton.py) reads those parameters through the server's
model-config API and refuses a served model whose embedding space or tensors differ from the sidecar on the edge box.

Needs only ONNX Runtime (to check the graph against its sidecar), and TensorRT + pycuda for the plan variant; no torch.
"""
from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from g2d_edge.backends.tensorrt_env import PRECISIONS
from g2d_edge.errors import ExportError, InputError, ModelError, check_fields, option
from g2d_edge.files import atomic_copy, atomic_write_text
from g2d_edge.sidecar import ModelSidecar

__all__ = ["TritonRepoOptions", "TritonModelEntry", "write_triton_repository", "model_config_text",
           "SIDECAR_PARAMETERS", "TENSORRT_SUFFIX"]

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
#: Model-config parameters that say which model is served (read back by g2d_edge.backends.triton).
SIDECAR_PARAMETERS = ("g2d_embedding_space", "g2d_embedding_dim", "g2d_model", "g2d_weights_sha256")
#: The TensorRT variant is served as `<name><TENSORRT_SUFFIX>`.
TENSORRT_SUFFIX = "-trt"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_TRITON_TYPES = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32"}


@dataclass(frozen=True)
class TritonRepoOptions:
    """What the repository serves and how.

    model_name: the Triton model name (default: the sidecar's name); the TensorRT variant is `<name>-trt`.
    version: the version folder to write (Triton serves the newest version by default; add version 2 to roll out).
    max_batch_size: largest batch Triton hands to one model execution (and the TensorRT profile's max batch).
    dynamic_batching: let Triton merge the requests of several cameras into one execution.
    max_queue_delay_us: how long a request may wait for others to join its batch (dynamic batching only).
    preferred_batch_sizes: batch sizes the batcher aims for (empty: as large as the queue allows).
    instances: model instances (executions that run in parallel) per device.
    device: "gpu" or "cpu": instance kind of the ONNX Runtime variant (the TensorRT variant is always GPU).
    tensorrt: "auto" (write the plan variant when TensorRT and a GPU are present), "yes" (fail without them), "no".
    precision: TensorRT precision of the plan ("fp32", "fp16"; "int8" needs calib_data).
    calib_data: INT8 calibration faces (folder of photos or .npz/.npy of aligned faces).
    force: overwrite an existing version folder.
    """

    model_name: Optional[str] = None
    version: int = option(1, low=1, high=2 ** 31 - 1)  # Triton ignores version folder 0
    max_batch_size: int = option(32, low=1, high=65536)
    dynamic_batching: bool = True
    max_queue_delay_us: int = option(1000, low=0, high=10 ** 9)
    preferred_batch_sizes: Tuple[int, ...] = option((), low=1, high=65536)
    instances: int = option(1, low=1, high=1024)
    device: str = option("gpu", choices=("gpu", "cpu"))
    tensorrt: str = option("auto", choices=("auto", "yes", "no"))
    precision: str = option("fp16", choices=PRECISIONS)
    calib_data: Optional[Path] = None
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.model_name is not None and not _NAME_RE.match(self.model_name):
            raise InputError(f"TritonRepoOptions.model_name: Triton model names may use letters, digits, '_', '.' "
                             f"and '-' only, got {self.model_name!r}")
        if any(b > self.max_batch_size for b in self.preferred_batch_sizes):
            raise InputError(f"TritonRepoOptions.preferred_batch_sizes: preferred batch sizes must lie in "
                             f"1..{self.max_batch_size} (max_batch_size), got {list(self.preferred_batch_sizes)}")


@dataclass(frozen=True)
class TritonModelEntry:
    """One model written into the repository."""

    name: str
    platform: str
    version: int
    folder: Path
    files: Tuple[Path, ...]


def _pb_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor(name: str, dtype: str, dims: List[int]) -> str:
    return (f"  {{\n    name: {_pb_string(name)}\n    data_type: {_TRITON_TYPES[dtype]}\n"
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}")


def model_config_text(sidecar: ModelSidecar, name: str, platform: str, options: TritonRepoOptions,
                      kind: str) -> str:
    """The `config.pbtxt` (protobuf text format of Triton's ModelConfig) for one variant of the model."""
    spec = sidecar.input
    outputs = [_tensor(sidecar.outputs[0], "float32", [int(sidecar.embedding_dim)])]
    if int(sidecar.num_classes) > 0:  # Triton has no zero-sized dims; a model without classifier serves no logits
        outputs.append(_tensor(sidecar.outputs[1], "float32", [int(sidecar.num_classes)]))
    lines = [f"name: {_pb_string(name)}", f"platform: {_pb_string(platform)}",
             f"max_batch_size: {options.max_batch_size}",
             "input [\n" + _tensor(spec.name, spec.dtype, [spec.height, spec.width, spec.channels]) + "\n]",
             "output [\n" + ",\n".join(outputs) + "\n]"]
    if options.dynamic_batching:
        batcher = [f"  max_queue_delay_microseconds: {options.max_queue_delay_us}"]
        if options.preferred_batch_sizes:
            batcher.insert(0, f"  preferred_batch_size: [ {', '.join(str(b) for b in options.preferred_batch_sizes)} ]")
        lines.append("dynamic_batching {\n" + "\n".join(batcher) + "\n}")
    lines.append(f"instance_group [\n  {{\n    count: {options.instances}\n    kind: {kind}\n  }}\n]")
    params = {"g2d_embedding_space": sidecar.embedding_space, "g2d_embedding_dim": str(sidecar.embedding_dim),
              "g2d_model": sidecar.name, "g2d_weights_sha256": sidecar.weights_sha256}
    for key, value in params.items():
        lines.append(f"parameters {{\n  key: {_pb_string(key)}\n  value: {{ string_value: {_pb_string(value)} }}\n}}")
    return "\n".join(lines) + "\n"


def _check_graph(onnx_path: Path) -> ModelSidecar:
    """The graph's sidecar, once ONNX Runtime has checked that the graph's tensors match it and that its batch axis
    is dynamic (Triton's batching needs one)."""
    import onnxruntime as ort

    from g2d_edge.backends.onnxruntime import OnnxRuntimeBackend, OrtOptions

    backend = OnnxRuntimeBackend(onnx_path, OrtOptions(providers=["cpu"], intra_op_threads=1))  # tensors vs sidecar
    backend.close()
    batch = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[0]
    if isinstance(batch, int):
        raise ExportError(f"{onnx_path} has a fixed batch of {batch}; Triton's batching needs a dynamic batch axis: "
                          "re-export it with `g2d-export onnx`")
    return backend.sidecar


def _version_dir(repository: Path, name: str, options: TritonRepoOptions) -> Path:
    folder = repository / name / str(options.version)
    if folder.exists():
        if not options.force:
            raise ExportError(f"{folder} already exists; pass --version {options.version + 1} to add a version, or "
                              "--force to overwrite it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _write_config(folder: Path, text: str) -> Path:
    return atomic_write_text(folder / "config.pbtxt", text)


def _write_onnx_variant(onnx_path: Path, sidecar: ModelSidecar, repository: Path, name: str,
                        options: TritonRepoOptions) -> TritonModelEntry:
    folder = _version_dir(repository, name, options)
    atomic_copy(onnx_path, folder / "model.onnx")
    sidecar.save(folder / "model.json")
    kind = "KIND_GPU" if options.device == "gpu" else "KIND_CPU"
    config = _write_config(folder.parent, model_config_text(sidecar, name, "onnxruntime_onnx", options, kind))
    return TritonModelEntry(name, "onnxruntime_onnx", options.version, folder.parent,
                            (config, folder / "model.onnx", folder / "model.json"))


def tensorrt_skip_reason(options: TritonRepoOptions) -> Optional[str]:
    """None when the plan variant is to be built, else why not (raises when it was required but cannot be)."""
    if options.tensorrt == "no":
        return "not requested (--tensorrt no)"
    from g2d_edge.backends.tensorrt_env import tensorrt_available

    reason = tensorrt_available()
    if reason and options.tensorrt == "yes":
        from g2d_edge.errors import BackendUnavailableError

        raise BackendUnavailableError(f"--tensorrt yes, but TensorRT cannot build here: {reason}")
    return reason


def _write_tensorrt_variant(onnx_path: Path, repository: Path, name: str,
                            options: TritonRepoOptions) -> TritonModelEntry:
    from g2d_edge.backends.engine_build import TrtBuildOptions, build_engine

    trt_name = name + TENSORRT_SUFFIX
    folder = _version_dir(repository, trt_name, options)
    build = TrtBuildOptions(precision=options.precision, max_batch=options.max_batch_size,
                            opt_batch=min(8, options.max_batch_size), calib_data=options.calib_data)
    try:  # build_engine names engines *.engine; Triton's TensorRT backend loads model.plan
        engine_sidecar = build_engine(onnx_path, folder / "model.engine", build)
        (folder / "model.engine").replace(folder / "model.plan")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    config = _write_config(folder.parent, model_config_text(engine_sidecar, trt_name, "tensorrt_plan", options,
                                                            "KIND_GPU"))
    return TritonModelEntry(trt_name, "tensorrt_plan", options.version, folder.parent,
                            (config, folder / "model.plan", folder / "model.json"))


def write_triton_repository(onnx_path: PathLike, repository: PathLike,
                            options: Optional[TritonRepoOptions] = None) -> Dict[str, object]:
    """Write (or add to) a Triton model repository for an exported ONNX model (with its `.json` sidecar).

    Returns {"repository": path, "models": [TritonModelEntry ...], "skipped": {variant: reason}}.
    Raises ModelError (missing ONNX or sidecar, graph and sidecar disagree), ExportError (the version exists),
    BackendUnavailableError (`tensorrt="yes"` without TensorRT) and the TensorRT build errors; bad options are
    InputError when the options are made.
    """
    options = options or TritonRepoOptions()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file() or onnx_path.suffix.lower() != ".onnx":
        raise ModelError(f"{onnx_path} is not an exported .onnx model; export one with `g2d-export onnx`")
    sidecar = _check_graph(onnx_path)
    name = options.model_name or sidecar.name
    if not _NAME_RE.match(name):
        raise ExportError(f"the sidecar's name {name!r} is not a valid Triton model name; pass --name")
    reason = tensorrt_skip_reason(options)  # before writing anything: `tensorrt="yes"` without TensorRT fails here
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    models = [_write_onnx_variant(onnx_path, sidecar, repository, name, options)]
    skipped: Dict[str, str] = {}
    if reason is None:
        models.append(_write_tensorrt_variant(onnx_path, repository, name, options))
    else:
        skipped["tensorrt_plan"] = reason
        log.info("no TensorRT plan variant: %s", reason)
    log.info("Triton repository %s: %s (version %d)", repository, ", ".join(m.name for m in models), options.version)
    return {"repository": repository, "models": models, "skipped": skipped}
