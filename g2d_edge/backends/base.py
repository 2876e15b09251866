"""The inference-backend protocol and the input checks every backend shares.

A backend runs the exported graph: a batch of aligned 112x112 faces (uint8, NHWC, BGR, exactly as
`g2d_edge.align.align_face` makes them) in, L2-normalised embeddings and classifier logits out. Pre-processing
(colour conversion, scaling) lives inside the graph, so every backend takes the same raw crops.

Backends subclass `BaseBackend`, which validates the batch, returns empty outputs for an empty batch, splits batches
larger than `max_batch` into chunks and renormalises the embeddings (reduced-precision engines drift off the unit
sphere by ~1e-3). A subclass implements only `_run(faces)` for one chunk of at most `max_batch` faces.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

import numpy as np

from ..errors import BackendUnavailableError, G2DError, InputError, ModelError
from ..files import regular_file_problem
from ..shipped import SHIPPED_MODELS
from ..sidecar import InputSpec, ModelSidecar, sidecar_path_for
from ..vectors import l2_normalise

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


@runtime_checkable
class Backend(Protocol):
    """What the SDK needs from an inference runtime.

    name: "tensorrt" | "onnxruntime" | "torch".
    sidecar: the model's metadata (embedding space, threshold, class names ...).
    max_batch: the largest batch one call to the runtime takes; `infer` splits larger batches itself.
    """

    name: str
    sidecar: ModelSidecar
    max_batch: int

    def infer(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(N, 112, 112, 3) uint8 BGR -> (embeddings (N, D) float32 unit-norm, logits (N, C) float32)."""
        ...

    def warmup(self) -> None:
        """Run the model once or twice so that the first real call is not slowed by lazy initialisation."""
        ...


def check_faces(faces: np.ndarray, spec: Optional[InputSpec] = None) -> np.ndarray:
    """Validate a batch of aligned faces and return it C-contiguous.

    Raises InputError (saying what to do) for a non-array, a wrong dtype or a shape other than (N, H, W, C)
    of the model's input spec (112x112x3 by default). A single face (H, W, C) is *not* promoted silently: the caller
    must say `faces[None]`, so that a batch of one and a mistake cannot be confused.
    """
    spec = spec or InputSpec()
    expected = (spec.height, spec.width, spec.channels)
    if not isinstance(faces, np.ndarray):
        raise InputError(f"faces must be a numpy array of shape (N, {spec.height}, {spec.width}, {spec.channels}), "
                         f"got {type(faces).__name__}")
    if faces.dtype != np.dtype(spec.dtype):
        raise InputError(f"faces must be {spec.dtype} {spec.color} crops (as g2d_edge.align.align_face returns), got "
                         f"dtype {faces.dtype}; do not normalise them yourself, the model does it")
    if faces.ndim == 3 and faces.shape == expected:
        raise InputError(f"faces must be a batch (N, {spec.height}, {spec.width}, {spec.channels}); got a single "
                         "face: pass faces[None]")
    if faces.ndim != 4 or faces.shape[1:] != expected:
        raise InputError(f"faces must have shape (N, {spec.height}, {spec.width}, {spec.channels}) ({spec.layout}, "
                         f"{spec.color}, aligned with g2d_edge.align.align_face), got {faces.shape}")
    return np.ascontiguousarray(faces)


#: Training checkpoints: the runtime does not run them (see TORCH_ELSEWHERE).
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
TORCH_ELSEWHERE = ("training checkpoints run on the development-only torch backend, which lives with the export "
                   "tools because it needs torch and the training code: `from export.torch_backend import "
                   "TorchBackend; Recognizer(model=TorchBackend('checkpoint.pt'))` (pip install g2d-edge[train]); "
                   "or export the checkpoint with `g2d-export onnx`")


def check_model_path(path: PathLike, suffixes: Iterable[str]) -> Path:
    """The one check of a model path (the loader's and each backend's): a regular, non-empty file ending in one of
    `suffixes`. Returns it as a Path; ModelError (or BackendUnavailableError for a training checkpoint) naming the
    file and what to do."""
    path = Path(path)
    suffixes = tuple(suffixes)
    kinds = " or ".join(suffixes)
    problem = regular_file_problem(path)
    suffix = path.suffix.lower()
    if problem == "a directory":
        raise ModelError(f"{path} is a directory; pass the model file ({kinds}) inside it")
    if problem == "not found":
        raise ModelError(f"model file not found: {path}; export one with `g2d-export onnx` (and `g2d-export trt` for "
                         f"a TensorRT engine), pass the path of an existing model, or name a shipped model: "
                         f"{', '.join(SHIPPED_MODELS)}")
    if suffix in CHECKPOINT_SUFFIXES:
        raise BackendUnavailableError(f"{path} is a training checkpoint: {TORCH_ELSEWHERE}")
    if suffix not in suffixes:
        raise ModelError(f"don't know how to run {path} here: expected a file ending in {kinds} (export one with "
                         "`g2d-export onnx` / `g2d-export trt`)")
    if problem is not None:
        raise ModelError(f"model {path} is {problem}; pass the model file ({kinds})")
    if path.stat().st_size == 0:
        raise ModelError(f"model {path} is empty (an interrupted copy or export?); export or copy it again")
    return path


def load_sidecar(model_path: PathLike) -> ModelSidecar:
    """The sidecar JSON next to a model file; ModelError with a hint when missing or malformed."""
    return ModelSidecar.load(sidecar_path_for(model_path))


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def user_cache_dir() -> Path:
    """Where g2d-edge caches built engines when the model's folder is read-only: $G2D_EDGE_CACHE, else
    $XDG_CACHE_HOME/g2d-edge, else ~/.cache/g2d-edge."""
    env = os.environ.get("G2D_EDGE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "g2d-edge"


def writable_dir(preferred: Path, fallback_name: str) -> Path:
    """`preferred` (created if needed) when it is writable, else `user_cache_dir() / fallback_name`."""
    preferred = Path(preferred)
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    fallback = user_cache_dir() / fallback_name
    fallback.mkdir(parents=True, exist_ok=True)
    log.info("%s is not writable; caching in %s instead", preferred, fallback)
    return fallback


def check_graph_against_sidecar(model_path: Path, sidecar: ModelSidecar, inputs: Sequence[Tuple[str, str]],
                                input_shape: Sequence[Any], outputs: Dict[str, Any], stamped_space: str) -> None:
    """ModelError unless a graph (as its runtime describes it) is the one its sidecar describes: one input of the
    sidecar's name and dtype (`inputs`: [(name, dtype)]) and per-face shape (`input_shape`: the dims after the batch,
    an int where static), the outputs the sidecar lists (`outputs`: {name: last dim, an int where static}), and the
    embedding space stamped in the graph's metadata (`stamped_space`, "" where none). One check for every runtime."""
    spec = sidecar.input
    if len(inputs) != 1 or inputs[0][0] != spec.name or inputs[0][1] != spec.dtype:
        got = ", ".join(f"{name}: {dtype}" for name, dtype in inputs)
        raise ModelError(f"{model_path} takes ({got}), expected one input '{spec.name}': {spec.dtype}; it was not "
                         "exported by g2d-export onnx, or its sidecar belongs to another model")
    wanted = (spec.height, spec.width, spec.channels) if spec.layout == "NHWC" else (spec.channels, spec.height,
                                                                                      spec.width)
    shape = list(input_shape)
    if len(shape) != 3 or any(isinstance(d, int) and d != w for d, w in zip(shape, wanted)):
        raise ModelError(f"{model_path} takes faces of shape {shape} ({spec.layout}), but its sidecar says "
                         f"{list(wanted)}; the sidecar was edited or belongs to another model: re-export")
    needed = 2 if sidecar.num_classes > 0 else 1
    if len(sidecar.outputs) < needed:
        raise ModelError(f"the sidecar of {model_path} lists the outputs {sidecar.outputs}, but a model with "
                         f"{sidecar.num_classes} classes has {needed} (embedding, logits); re-export")
    missing = [n for n in sidecar.outputs if n not in outputs]
    if missing:
        raise ModelError(f"{model_path} lacks the outputs {missing} its sidecar lists; re-export the model")
    dim = outputs[sidecar.outputs[0]]
    if isinstance(dim, int) and dim != sidecar.embedding_dim:
        raise ModelError(f"{model_path} gives {dim}-d embeddings but its sidecar says {sidecar.embedding_dim}; the "
                         "sidecar belongs to another model: re-export")
    if stamped_space and stamped_space != sidecar.embedding_space:
        raise ModelError(f"the sidecar next to {model_path} belongs to another model (embedding space "
                         f"{sidecar.embedding_space}, the graph says {stamped_space}); copy the model's own .json "
                         "next to it or re-export")


class BaseBackend:
    """Shared behaviour of the concrete backends: input checks, empty batches, chunking, renormalisation."""

    name: str = "base"

    def __init__(self, sidecar: ModelSidecar, max_batch: int) -> None:
        if max_batch < 1:
            raise InputError(f"max_batch must be >= 1, got {max_batch}")
        self.sidecar = sidecar
        self.max_batch = int(max_batch)

    @property
    def embedding_dim(self) -> int:
        return int(self.sidecar.embedding_dim)

    @property
    def num_classes(self) -> int:
        return int(self.sidecar.num_classes)

    def infer(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Embeddings and logits of a batch of aligned faces.

        faces: (N, 112, 112, 3) uint8 BGR (non-contiguous arrays are copied). N may be 0 (empty outputs) or larger
        than `max_batch` (the batch is run in chunks of `max_batch`, in order).
        Returns (embeddings (N, D) float32, each row unit-norm; logits (N, C) float32).
        """
        faces = check_faces(faces, self.sidecar.input)
        n = faces.shape[0]
        if n == 0:
            return (np.zeros((0, self.embedding_dim), np.float32), np.zeros((0, self.num_classes), np.float32))
        embs, logits = [], []
        for start in range(0, n, self.max_batch):
            chunk = faces[start:start + self.max_batch]
            e, lg = self._checked_outputs(*self._run(chunk), len(chunk))
            embs.append(e)
            logits.append(lg)
        emb = embs[0] if len(embs) == 1 else np.concatenate(embs)
        lg = logits[0] if len(logits) == 1 else np.concatenate(logits)
        return l2_normalise(emb), lg

    def _checked_outputs(self, e: Any, lg: Any, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """The outputs of one chunk of `n` faces as (n, D) and (n, C) float32; `_bad_output` for another shape or
        a NaN / infinite embedding (which would make every face silently unknown)."""
        try:
            emb = np.asarray(e, dtype=np.float32)
            logits = np.asarray(lg, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._bad_output(f"outputs that are not numbers ({exc})") from None
        if emb.size != n * self.embedding_dim:
            raise self._bad_output(f"embeddings of shape {emb.shape} for {n} face(s), not ({n}, "
                                   f"{self.embedding_dim}) as the sidecar says")
        if logits.size != n * self.num_classes:
            raise self._bad_output(f"logits of shape {logits.shape} for {n} face(s), not ({n}, {self.num_classes}) "
                                   "as the sidecar says")
        emb = emb.reshape(n, self.embedding_dim)
        if not np.all(np.isfinite(emb)):
            raise self._bad_output("embeddings holding NaN or infinity")
        return emb, logits.reshape(n, self.num_classes)

    def _bad_output(self, what: str) -> G2DError:
        """The error for outputs that cannot be embeddings of this model (`what` they are)."""
        return ModelError(f"the model ({self.sidecar.name}, {self.name} backend) returned {what}; the model file is "
                          "damaged or not the model its sidecar describes")

    def warmup(self) -> None:
        """Run a batch of 1 and, when allowed, a batch of `min(8, max_batch)` black faces."""
        spec = self.sidecar.input
        for n in sorted({1, min(8, self.max_batch)}):
            self._run(np.zeros((n, spec.height, spec.width, spec.channels), np.uint8))
        log.debug("%s backend warmed up", self.name)

    def _run(self, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        """Run one validated, contiguous chunk of 1..max_batch faces."""
        raise NotImplementedError

    def close(self) -> None:
        """Release runtime resources (GPU buffers, sessions). Safe to call twice."""

    def __enter__(self) -> "BaseBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.sidecar.name!r}, max_batch={self.max_batch})"
