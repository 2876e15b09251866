"""`g2d-export onnx`: a trained G2D network -> one ONNX graph + its JSON sidecar, verified against PyTorch.

The graph is `train.model.InferenceModel` (Preprocess + encoder + reformer + classifier):

    faces      uint8  (N, 112, 112, 3)  aligned BGR crops, N dynamic
    embedding  float32 (N, D)            L2-normalised
    logits     float32 (N, C)            classifier outputs ((N, 0) for a model without classifier)

Steps: trace with the TorchScript exporter (opset 17 by default), simplify with onnxslim, stamp metadata
(embedding space, name), run the ONNX checker, then run the graph in ONNX Runtime (CPU) on random batches, synthetic
face-like crops and real aligned faces (the prepared CelebA cache when present) and compare with PyTorch:
every embedding must have cosine >= 0.9999 with PyTorch's and the largest |logit difference| must stay below
1e-3 x max(1, max |logit|). On failure `ParityError` is raised and nothing is written.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import platform
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
import torch
from torch import nn

from g2d_edge.backends.faces import DEFAULT_FACE_CACHE, load_cached_faces, synthetic_faces
from g2d_edge.errors import ExportError, InputError, ModelError, ParityError, check_fields, option
from g2d_edge.files import atomic_write_bytes
from g2d_edge.sidecar import InputSpec, ModelSidecar, sidecar_path_for
from train.model import G2DModel, InferenceModel


log = logging.getLogger(__name__)

PathLike = Union[str, Path]
DEFAULT_OPSET = 17
INPUT_NAME = "faces"
OUTPUT_NAMES = ("embedding", "logits")
DEFAULT_THRESHOLD = 0.5

@dataclass(frozen=True)
class ParityOptions:
    """How the exported graph is checked against PyTorch.

    min_cosine: smallest acceptable cosine between an ONNX Runtime embedding and PyTorch's.
    max_logits_error: largest acceptable |logit difference| relative to max(1, max |PyTorch logit|).
    real_faces: an AlignedCache .npz whose first faces are used as real inputs (skipped when missing; None = never).
    num_real / num_synthetic / num_random: faces of each kind; random batches also test batch sizes 1 and odd.
    seed: for the random and synthetic faces.
    """

    min_cosine: float = option(0.9999, low=-1.0, high=1.0)
    max_logits_error: float = option(1e-3, low=0.0)
    real_faces: Optional[Path] = DEFAULT_FACE_CACHE
    num_real: int = option(16, low=0, high=100_000)
    num_synthetic: int = option(8, low=0, high=100_000)
    num_random: int = option(5, low=0, high=1000)
    seed: int = option(0, low=0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class ParityReport:
    """Outcome of a PyTorch vs ONNX Runtime comparison."""

    min_cosine: float
    mean_cosine: float
    max_abs_logits_diff: float
    max_abs_logit: float
    num_faces: int
    batches: List[str] = field(default_factory=list)
    passed: bool = False
    failures: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.num_faces} faces in batches [{', '.join(self.batches)}]: cosine min {self.min_cosine:.6f} "
                f"mean {self.mean_cosine:.6f}, max |dlogits| {self.max_abs_logits_diff:.3g} "
                f"(max |logit| {self.max_abs_logit:.3g}) -> {'PASS' if self.passed else 'FAIL'}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------- model + meta
def resolve_model(model_or_checkpoint: Union[G2DModel, PathLike],
                  meta: Optional[Mapping[str, Any]] = None) -> Tuple[G2DModel, Dict[str, Any]]:
    """(CPU eval-mode copy of the network, merged meta). A path is loaded with `train.checkpoint.load_model`; explicit
    `meta` entries override the checkpoint's."""
    if isinstance(model_or_checkpoint, (str, Path)):
        from train.checkpoint import load_model

        path = Path(model_or_checkpoint)
        try:
            model, ckpt_meta = load_model(path)
        except ModelError as exc:
            raise ExportError(f"cannot export {path}: {exc}") from exc
        ckpt_meta.pop("name", None)  # the model is named after its output file unless `meta` says otherwise
        merged = {**ckpt_meta, **dict(meta or {})}
    elif isinstance(model_or_checkpoint, nn.Module):
        model, merged = model_or_checkpoint, dict(meta or {})
    else:
        raise ExportError(f"export needs a G2DModel or a checkpoint path, got {type(model_or_checkpoint).__name__}")
    if not hasattr(model, "config") or not hasattr(model, "reformer"):
        raise ExportError("the model to export must be a train.model.G2DModel (encoder, reformer, config)")
    model = copy.deepcopy(model).cpu().eval()
    return model, merged


def _hash_state(state: Mapping[str, torch.Tensor], prefixes: Sequence[str] = ("",)) -> str:
    """sha256 over (name, dtype, shape, bytes) of the tensors whose names start with one of `prefixes`, sorted by
    name. BatchNorm's `num_batches_tracked` counters are skipped (they do not change the function)."""
    h = hashlib.sha256()
    for name in sorted(state):
        if name.endswith("num_batches_tracked") or not name.startswith(tuple(prefixes)):
            continue
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def weights_sha256(model: G2DModel) -> str:
    """sha256 of all weights (encoder, reformer, classifier)."""
    return _hash_state(model.state_dict())


def embedding_space_id(model: G2DModel) -> str:
    """Stable id of the embedding geometry: encoder + reformer weights (the classifier does not move embeddings)."""
    cfg = model.config
    digest = _hash_state(model.state_dict(), ("encoder.", "reformer."))
    return f"g2d-{cfg.encoder}-{cfg.embedding_dim}d-{digest[:16]}"


def export_versions(opset: int) -> Dict[str, str]:
    """Versions of the tools an export used."""
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "opset": str(opset),
                "python": platform.python_version(), "exporter": "torch.onnx (TorchScript)"}
    for mod in ("onnxruntime", "onnxslim"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    try:
        from importlib.metadata import PackageNotFoundError, version

        versions["g2d_edge"] = version("g2d-edge")
    except (ImportError, PackageNotFoundError):
        versions["g2d_edge"] = "source"
    return versions


def build_sidecar(model: G2DModel, meta: Mapping[str, Any], name: str, opset: int = DEFAULT_OPSET) -> ModelSidecar:
    """The sidecar describing `model` (in memory; the ONNX export saves it next to the graph)."""
    cfg = model.config
    num_classes = int(cfg.num_classes) if model.classifier is not None else 0
    class_names = [str(c) for c in (meta.get("class_names") or [])]
    if class_names and len(class_names) != num_classes:
        raise ExportError(f"the model has {num_classes} classes but meta lists {len(class_names)} class names; "
                          "export the classifier-stage checkpoint these names belong to")
    if num_classes and not class_names:
        log.warning("the model has %d classes but no class names; logits will be unnamed", num_classes)
    threshold = meta.get("threshold")
    if threshold is None:
        log.warning("no calibrated threshold in the checkpoint meta; the sidecar uses the default %.2f",
                    DEFAULT_THRESHOLD)
        threshold = DEFAULT_THRESHOLD
    cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else asdict(cfg)
    config_hash = str(meta.get("config_hash") or hashlib.sha256(
        json.dumps(cfg_dict, sort_keys=True).encode()).hexdigest()[:16])
    data_summary = json.loads(json.dumps(meta.get("data_summary") or {}, default=str))
    # the people never trained on: benchmarks/accuracy.py and the shipped-model test evaluate on them
    for key in ("val_identities", "validation"):
        if meta.get(key) is not None:
            data_summary[key] = json.loads(json.dumps(meta[key], default=str))
    return ModelSidecar(
        name=str(meta.get("name") or name),
        embedding_dim=int(cfg.embedding_dim),
        num_classes=num_classes,
        embedding_space=embedding_space_id(model),
        weights_sha256=weights_sha256(model),
        threshold=float(threshold),
        threshold_far=None if meta.get("threshold_far") is None else float(meta["threshold_far"]),
        input=InputSpec(name=INPUT_NAME),
        outputs=list(OUTPUT_NAMES),
        class_names=class_names,
        config=cfg_dict,
        config_hash=config_hash,
        data_summary=data_summary,
        versions=export_versions(opset),
        trained_on="; ".join(str(meta[k]) for k in ("trained_on", "machine") if meta.get(k)),
    )


# ----------------------------------------------------------------------------------------------------- the graph
def trace_to_onnx(graph: nn.Module, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """TorchScript-trace `graph` (uint8 faces -> embedding, logits) to an ONNX model with a dynamic batch axis."""
    dummy = torch.randint(0, 256, (2, 112, 112, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))  # leaves the global RNG alone
    buf = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation notice of the TorchScript exporter, tracer warnings
        try:
            torch.onnx.export(graph, (dummy,), buf, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed at opset {opset}: {type(exc).__name__}: {exc}") from exc
    return onnx.load_from_string(buf.getvalue())


def simplify_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constants and fuse patterns with onnxslim (the graph is returned unchanged if onnxslim is missing)."""
    try:
        import onnxslim
    except ImportError:
        log.warning("onnxslim is not installed; the graph is not simplified (pip install onnxslim)")
        return model
    before = len(model.graph.node)
    slim = onnxslim.slim(model)
    if slim is None:
        raise ExportError("onnxslim returned no model")
    log.info("onnxslim: %d -> %d nodes", before, len(slim.graph.node))
    return slim


def store_weights_fp16(model: onnx.ModelProto, min_elements: int = 1024) -> onnx.ModelProto:
    """Store every float32 initialiser of at least `min_elements` values as float16, followed by a Cast back to
    float32: the file is half the size, the arithmetic stays float32 (ONNX Runtime and TensorRT fold the Casts of
    constants when the session is built), and the values change by float16 rounding only (relative 5e-4), which the
    parity check must still accept. Returns `model`, changed in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        values = numpy_helper.to_array(init)
        if np.abs(values).max(initial=0.0) >= 65504.0:
            raise ExportError(f"weight {init.name} exceeds the float16 range; export without --weights fp16")
        name = init.name
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), f"{name}__fp16"))
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"{name}__to_fp32"))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    log.info("weights stored as float16: %d initialisers", len(casts))
    return model


def stamp_metadata(model: onnx.ModelProto, sidecar: ModelSidecar) -> onnx.ModelProto:
    """Record the producer and the sidecar's identity (name, embedding space, weights hash) in the graph itself, so a
    sidecar that belongs to another graph can be detected at load time."""
    model.producer_name = "g2d-export"
    model.doc_string = (f"G2D masked-face recogniser {sidecar.name}: faces uint8 (N,112,112,3) BGR -> "
                        f"embedding (N,{sidecar.embedding_dim}) L2-normalised, logits (N,{sidecar.num_classes})")
    props = {"name": sidecar.name, "embedding_space": sidecar.embedding_space,
             "weights_sha256": sidecar.weights_sha256}
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def check_graph(model: onnx.ModelProto) -> None:
    """ONNX checker (full, with shape inference) + the I/O contract (names, dtypes, dynamic batch)."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported graph fails the ONNX checker: {exc}") from exc
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise ExportError(f"exported graph inputs are {[i.name for i in inputs]}, expected ['{INPUT_NAME}']")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        raise ExportError("exported graph input 'faces' is not uint8")
    if [o.name for o in model.graph.output] != list(OUTPUT_NAMES):
        raise ExportError(f"exported graph outputs are {[o.name for o in model.graph.output]}, "
                          f"expected {list(OUTPUT_NAMES)}")
    for value in list(inputs) + list(model.graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        if batch.HasField("dim_value"):
            raise ExportError(f"{value.name} has a fixed batch size {batch.dim_value}; the batch axis must be dynamic")


# ------------------------------------------------------------------------------------------------------- parity
def parity_batches(options: Optional[ParityOptions] = None) -> List[Tuple[str, np.ndarray]]:
    """Named uint8 batches for the parity check: random noise (batch 1 and an odd batch), synthetic faces and, when the
    cache exists, real aligned faces."""
    options = options or ParityOptions()
    rng = np.random.default_rng(options.seed)
    batches: List[Tuple[str, np.ndarray]] = [("random-1", rng.integers(0, 256, (1, 112, 112, 3), dtype=np.uint8))]
    if options.num_random > 1:
        batches.append((f"random-{options.num_random}",
                        rng.integers(0, 256, (options.num_random, 112, 112, 3), dtype=np.uint8)))
    if options.num_synthetic > 0:
        batches.append((f"synthetic-{options.num_synthetic}", synthetic_faces(options.num_synthetic, rng)))
    if options.real_faces is not None and options.num_real > 0:
        try:
            real = load_cached_faces(options.real_faces, options.num_real)
            batches.append((f"real-{len(real)}", real))
        except (InputError, OSError) as exc:
            log.info("no real faces for the parity check (%s); using synthetic ones only", exc)
    return batches


def _ort_session(onnx_model: Union[onnx.ModelProto, bytes, PathLike]):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if isinstance(onnx_model, onnx.ModelProto):
        onnx_model = onnx_model.SerializeToString()
    elif isinstance(onnx_model, Path):
        onnx_model = str(onnx_model)
    return ort.InferenceSession(onnx_model, sess_options=so, providers=["CPUExecutionProvider"])


def verify_parity(onnx_model: Union[onnx.ModelProto, bytes, PathLike], graph: nn.Module,
                  batches: Sequence[Tuple[str, np.ndarray]], min_cosine: float = 0.9999,
                  max_logits_error: float = 1e-3) -> ParityReport:
    """Run `onnx_model` in ONNX Runtime (CPU) and `graph` (an InferenceModel) in PyTorch on the same batches."""
    session = _ort_session(onnx_model)
    graph = graph.eval()
    cosines, logit_diffs, logit_max, names, failures = [], [0.0], [0.0], [], []
    for name, faces in batches:
        with torch.inference_mode():
            t_emb, t_logits = (t.float().numpy() for t in graph(torch.from_numpy(np.ascontiguousarray(faces))))
        o_emb, o_logits = session.run(list(OUTPUT_NAMES), {INPUT_NAME: faces})
        names.append(name)
        if o_emb.shape != t_emb.shape or o_logits.shape != t_logits.shape:
            failures.append(f"{name}: ONNX shapes {o_emb.shape}, {o_logits.shape} != PyTorch {t_emb.shape}, "
                            f"{t_logits.shape}")
            continue
        num = (o_emb * t_emb).sum(1)
        den = np.linalg.norm(o_emb, axis=1) * np.linalg.norm(t_emb, axis=1)
        cosines.append(num / np.maximum(den, 1e-12))
        if t_logits.size:
            logit_diffs.append(float(np.abs(o_logits - t_logits).max()))
            logit_max.append(float(np.abs(t_logits).max()))
    cos = np.concatenate(cosines) if cosines else np.zeros(1)
    report = ParityReport(min_cosine=float(cos.min()), mean_cosine=float(cos.mean()),
                          max_abs_logits_diff=max(logit_diffs), max_abs_logit=max(logit_max),
                          num_faces=int(sum(len(b) for _, b in batches)), batches=names, failures=failures)
    if report.min_cosine < min_cosine:
        failures.append(f"embedding cosine {report.min_cosine:.6f} < {min_cosine}")
    if report.max_abs_logits_diff > max_logits_error * max(1.0, report.max_abs_logit):
        failures.append(f"max |logit difference| {report.max_abs_logits_diff:.3g} > {max_logits_error:g} x "
                        f"max(1, {report.max_abs_logit:.3g})")
    report.passed = not failures
    return report


# ------------------------------------------------------------------------------------------------------- export
def export_onnx(model_or_checkpoint: Union[G2DModel, PathLike], out_path: PathLike, *,
                meta: Optional[Mapping[str, Any]] = None, opset: int = DEFAULT_OPSET,
                parity_inputs: Optional[Sequence[np.ndarray]] = None, parity: Optional[ParityOptions] = None,
                simplify: bool = True, weights: str = "fp32") -> ModelSidecar:
    """Export a G2D network to `out_path` (.onnx) plus its sidecar (`out_path` with `.json`), verified.

    model_or_checkpoint: a `g2d-train` checkpoint path, or an in-memory G2DModel (then `meta` supplies class names,
        threshold, data summary ...; for a checkpoint, `meta` overrides the checkpoint's).
    parity_inputs: uint8 (N, 112, 112, 3) batches to check with; default: random, synthetic and real faces
        (see ParityOptions). The check always runs.
    weights: "fp32", or "fp16" to store the weights as float16 in the file (half the size; see
        `store_weights_fp16`), e.g. to keep a large model small inside the wheel.
    Raises ParityError (nothing written) if ONNX Runtime disagrees with PyTorch, ExportError for other failures.
    Returns the sidecar that was written.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise ExportError(f"the output path must end in .onnx, got {out_path}")
    if weights not in ("fp32", "fp16"):
        raise ExportError(f"weights must be 'fp32' or 'fp16', got {weights!r}")
    parity = parity or ParityOptions()
    model, meta = resolve_model(model_or_checkpoint, meta)
    sidecar = build_sidecar(model, meta, name=out_path.stem, opset=opset)
    graph = InferenceModel(model).eval()

    onnx_model = trace_to_onnx(graph, opset)
    if simplify:
        onnx_model = simplify_graph(onnx_model)
    if weights == "fp16":
        onnx_model = store_weights_fp16(onnx_model)
    onnx_model = stamp_metadata(onnx_model, sidecar)
    check_graph(onnx_model)

    if parity_inputs is not None:
        batches = [(f"given-{i}-{len(b)}", np.ascontiguousarray(b, dtype=np.uint8)) for i, b in enumerate(parity_inputs)]
    else:
        batches = parity_batches(parity)
    # float16 weights move the logits by float16 rounding (~1e-3 relative): their check is 10x wider, embeddings
    # are held to the same cosine
    logits_error = parity.max_logits_error * (10.0 if weights == "fp16" else 1.0)
    report = verify_parity(onnx_model, graph, batches, parity.min_cosine, logits_error)
    log.info("parity PyTorch vs ONNX Runtime: %s", report.summary())
    if not report.passed:
        raise ParityError(f"the exported ONNX graph does not reproduce the PyTorch model ({'; '.join(report.failures)})"
                          f"; nothing was written to {out_path}. Try another --opset, or report the model config: "
                          "an operator is exported wrongly", report)

    atomic_write_bytes(out_path, onnx_model.SerializeToString())
    sidecar.save(sidecar_path_for(out_path))
    log.info("exported %s (%.2f MB, %s, %d classes) + %s", out_path, out_path.stat().st_size / 1e6,
             sidecar.embedding_space, sidecar.num_classes, sidecar_path_for(out_path).name)
    return sidecar
