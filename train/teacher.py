"""Teachers for relation distillation and their embedding caches.

A teacher maps faces to identity embeddings. The reformer stage never runs a teacher itself: it reads a *teacher
cache*, an (N, D) float32 array row-aligned with a prepared `AlignedCache` (NaN rows: the teacher failed on that
photo). Build it once with `build_teacher_cache` (`g2d-train teacher`).

Teachers:
- `DlibTeacher`: dlib's ResNet face recogniser (128-d, CC0 weights from `face_recognition_models`), optional extra
  `[teacher]`. It wants its own 150x150 "face chip" of the *clean* photo, so it works on the raw photo with the
  detector box recorded by `prepare`, not on our 112x112 crop.
- `OnnxTeacher`: any ONNX model mapping aligned 112x112 faces to embeddings.
- `train.sface.SFace`: OpenCV Zoo's SFace (128-d, Apache-2.0) on the aligned crop of the clean photo, from the team's
  shared copy (`sface`) or another file (`sface:<path>`).
- `RandomConvTeacher`: a fixed random conv net, deterministic, for tests only.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Protocol, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from g2d_edge.errors import ModelError
from g2d_edge.files import atomic_write

from .prepare import AlignedCache

log = logging.getLogger(__name__)


class Teacher(Protocol):
    """A face recogniser on aligned 112x112 BGR uint8 faces."""

    name: str
    dim: int

    def __call__(self, faces: np.ndarray) -> np.ndarray:  # (N,112,112,3) uint8 -> (N, dim) float32
        ...


class RandomConvTeacher:
    """A fixed random convolutional feature extractor (for tests): deterministic under `seed`, no training."""

    def __init__(self, dim: int = 128, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.name = f"random-conv-{dim}-{seed}"
        self.dim = dim
        self._filters = rng.standard_normal((16, 3, 5, 5)).astype(np.float32)
        self._proj = rng.standard_normal((16 * 7 * 7, dim)).astype(np.float32) / np.sqrt(16 * 7 * 7)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        out = np.empty((len(faces), self.dim), np.float32)
        for i, face in enumerate(faces):
            img = face.astype(np.float32) / 127.5 - 1.0
            maps = []
            for f in self._filters:
                resp = sum(cv2.filter2D(img[:, :, c], -1, f[c]) for c in range(3))
                maps.append(cv2.resize(np.maximum(resp, 0), (7, 7), interpolation=cv2.INTER_AREA))
            out[i] = np.stack(maps).reshape(-1) @ self._proj
        return out


class OnnxTeacher:
    """Any ONNX face recogniser taking aligned faces; its first output is the embedding.

    input_layout: "NHWC-BGR-uint8" (like g2d-edge's own graphs, e.g. `g2d_edge/models/g2d-edge-m.onnx`) or
    "NCHW-RGB-float" (insightface/ArcFace style: (x - 127.5) / 127.5); None (default) reads it from the graph's
    input type: uint8 is g2d-edge's layout, anything else ArcFace's.
    """

    LAYOUTS = ("NHWC-BGR-uint8", "NCHW-RGB-float")

    def __init__(self, path: Path, input_layout: Optional[str] = None, batch_size: int = 32) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"teacher ONNX model not found: {path}")
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.name = f"onnx:{path.name}"
        if input_layout is None:
            uint8 = self.session.get_inputs()[0].type == "tensor(uint8)"
            input_layout = "NHWC-BGR-uint8" if uint8 else "NCHW-RGB-float"
        if input_layout not in self.LAYOUTS:
            raise ModelError(f"teacher input_layout must be one of {self.LAYOUTS}, got {input_layout!r}")
        self.layout = input_layout
        self.batch_size = batch_size

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        outs = []
        for start in range(0, len(faces), self.batch_size):
            batch = np.asarray(faces[start:start + self.batch_size])
            if self.layout == "NCHW-RGB-float":
                batch = ((batch[..., ::-1].astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
            outs.append(self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0])
        return np.concatenate(outs).astype(np.float32)


class DlibTeacher:
    """dlib's ResNet face descriptor (128-d, not unit-norm) on its own 150x150 chip of the raw photo.

    Landmarks come from dlib's 5-point shape predictor inside the given face box (from our MediaPipe detector), so
    the teacher sees the face the way dlib's own pipeline would.
    """

    name = "dlib-resnet-v1"
    dim = 128

    def __init__(self, chip_size: int = 150, chip_padding: float = 0.25) -> None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise ModelError("the dlib teacher needs the [teacher] extra: "
                             "pip install 'g2d-edge[teacher]' (dlib-bin, face-recognition-models)") from exc
        self._dlib = dlib
        self.shape_predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.chip_size = chip_size
        self.chip_padding = chip_padding

    def shape(self, rgb: np.ndarray, box: Sequence[float]):
        """dlib's 5-point landmarks inside `box` (x1, y1, x2, y2) of an RGB image."""
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        return self.shape_predictor(rgb, self._dlib.rectangle(x1, y1, x2, y2))

    def chip(self, rgb: np.ndarray, shape) -> np.ndarray:
        """dlib's aligned face chip (RGB, chip_size x chip_size)."""
        return self._dlib.get_face_chip(rgb, shape, self.chip_size, self.chip_padding)

    def embed_chip(self, chip_rgb: np.ndarray) -> np.ndarray:
        return np.asarray(self.encoder.compute_face_descriptor(np.ascontiguousarray(chip_rgb)), np.float32)

    def embed_photo(self, bgr: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """Descriptor of the face in `box` of a BGR photo."""
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        return self.embed_chip(self.chip(rgb, self.shape(rgb, box)))


def _dlib_rows(root: Path, cache: AlignedCache, rows: Sequence[int], desc: str) -> np.ndarray:
    teacher = DlibTeacher()
    out = np.full((len(rows), teacher.dim), np.nan, np.float32)
    failed = 0
    for j, i in enumerate(tqdm(rows, desc=desc, mininterval=5)):
        image = cv2.imread(str(root / str(cache.paths[i])), cv2.IMREAD_COLOR)
        if image is None:
            failed += 1
            continue
        out[j] = teacher.embed_photo(image, cache.boxes[i])
    if failed:
        log.warning("dlib teacher: %d photos could not be read; their rows are NaN", failed)
    return out


def _dlib_worker(args: Tuple[str, str, Sequence[int], int]) -> np.ndarray:
    root, cache_path, rows, part = args
    return _dlib_rows(Path(root), AlignedCache.load(Path(cache_path)), rows, f"dlib teacher [{part}]")


def crop_teacher(name: str) -> Teacher:
    """A teacher that runs on the aligned crops: "sface", "sface:<path>", "onnx:<path>" or "random"."""
    if name == "random":
        return RandomConvTeacher()
    if name == "sface" or name.startswith("sface:"):
        from .sface import DEFAULT_SFACE_ONNX, SFace

        return SFace(Path(name[6:]) if name.startswith("sface:") else DEFAULT_SFACE_ONNX)
    if name.startswith("onnx:"):
        return OnnxTeacher(Path(name[5:]))
    raise ValueError(f"unknown teacher {name!r}: use 'dlib', 'sface', 'sface:<path>', 'onnx:<path>' or 'random'")


def build_teacher_cache(cache_path: Path, out: Path, teacher: str = "dlib", root: Optional[Path] = None,
                        workers: int = 1, batch_size: int = 64) -> np.ndarray:
    """Compute the teacher's embedding of every clean face of a prepared cache and save (N, D) float32 to `out`.

    teacher: "dlib" (needs `root`, the raw folder the cache was prepared from, default: the cache's own record),
        "sface" / "sface:<path>" (OpenCV's SFace on the aligned crops), "onnx:<path>" (any ONNX recogniser on the
        aligned crops) or "random" (tests).
    """
    cache_path, out = Path(cache_path), Path(out)
    cache = AlignedCache.load(cache_path)
    if teacher == "dlib":
        root = Path(root or cache.summary["root"])
        if not root.is_dir():
            raise FileNotFoundError(f"raw photo folder of the cache not found: {root}; pass --root")
        rows = list(range(len(cache)))
        if workers > 1:
            import multiprocessing as mp_proc

            parts = [rows[k::workers] for k in range(workers)]
            with mp_proc.get_context("spawn").Pool(workers) as pool:
                chunks = pool.map(_dlib_worker, [(str(root), str(cache_path), p, k) for k, p in enumerate(parts)])
            emb = np.empty((len(rows), DlibTeacher.dim), np.float32)
            for part, chunk in zip(parts, chunks):
                emb[part] = chunk
        else:
            emb = _dlib_rows(root, cache, rows, "dlib teacher")
    else:
        model = crop_teacher(teacher)
        chunks = [model(cache.images[s:s + batch_size])
                  for s in tqdm(range(0, len(cache), batch_size), desc=f"teacher {model.name}")]
        emb = np.concatenate(chunks).astype(np.float32)
    atomic_write(out, lambda fh: np.save(fh, emb))
    log.info("teacher cache %s: %d rows x %d, %d failed", out, emb.shape[0], emb.shape[1],
             int(np.isnan(emb[:, 0]).sum()))
    return emb


def load_teacher_cache(path: Path, expected_rows: Optional[int] = None) -> np.ndarray:
    """Load an (N, D) teacher cache; checks it matches the prepared cache's row count when given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher cache not found: {path}; build it with `g2d-train teacher`")
    emb = np.load(path, allow_pickle=False)
    if emb.ndim != 2:
        raise ValueError(f"teacher cache {path} must be 2-D (N, D), got shape {emb.shape}")
    if expected_rows is not None and emb.shape[0] != expected_rows:
        raise ValueError(f"teacher cache {path} has {emb.shape[0]} rows but the prepared cache has {expected_rows}: "
                         "rebuild it with `g2d-train teacher` after `prepare`")
    return emb.astype(np.float32, copy=False)
