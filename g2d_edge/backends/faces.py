"""Aligned face batches for engine checks and INT8 calibration (numpy + OpenCV only, no torch): the TensorRT engine
builder (`g2d_edge.backends.engine_build`) needs them on the target box; `export.onnx` uses them for its parity check.

* `load_cached_faces(npz, count)`: the first `count` aligned crops of a prepared `AlignedCache` (.npz), read
  without loading the whole file.
* `synthetic_faces(n, rng)`: face-like 112x112 BGR images (skin-toned oval, eyes, brows, nose, mouth at the ArcFace
  template positions, random tones, poses and noise) for machines without real data.
* `load_calibration_faces(source, ...)`: INT8 calibration faces from an .npz cache or a folder of photos (detected
  and aligned by the SDK's own `g2d_edge.detectors.detect` + `g2d_edge.align`, so calibration sees deployment crops).
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import List, Optional, Union

import cv2
import numpy as np
from ..align import ALIGNED_SIZE, ARCFACE_TEMPLATE_5, align_face
from ..errors import InputError
from ..io import IMAGE_SUFFIXES, list_images

log = logging.getLogger(__name__)

#: The prepared CelebA cache of a source checkout (`g2d-train prepare`), used for real-face checks when present.
DEFAULT_FACE_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "celeba-train.npz"
#: Log the alignment progress of a photo folder every this many faces.
PROGRESS_EVERY = 100

PathLike = Union[str, Path]


def load_cached_faces(path: PathLike, count: int, start: int = 0) -> np.ndarray:
    """Rows `start : start + count` of the `images` array of an AlignedCache .npz, (n, 112, 112, 3) uint8.

    Reads only those rows (the cache is an uncompressed npz of ~150 MB). Raises InputError (missing file, not such
    a cache).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"aligned-face cache not found: {path}")
    with zipfile.ZipFile(path) as zf:
        if "images.npy" not in zf.namelist():
            raise InputError(f"{path} has no 'images' array; is it an AlignedCache from `g2d-train prepare`?")
        with zf.open("images.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise InputError(f"{path}: unsupported .npy format version {version}")
            if fortran or dtype != np.uint8 or len(shape) != 4 or tuple(shape[1:]) != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
                raise InputError(f"{path}: images are {dtype} {shape}, expected uint8 (N, 112, 112, 3)")
            start = max(0, min(int(start), shape[0]))
            count = max(0, min(int(count), shape[0] - start))
            row = ALIGNED_SIZE * ALIGNED_SIZE * 3
            if start:
                f.seek(f.tell() + start * row)
            data = f.read(count * row)
    return np.frombuffer(data, np.uint8).reshape(count, ALIGNED_SIZE, ALIGNED_SIZE, 3).copy()


def synthetic_faces(n: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """`n` face-like aligned crops (uint8 BGR), different per call of `rng`."""
    rng = rng if rng is not None else np.random.default_rng(0)
    out = np.empty((n, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
    for i in range(n):
        bg = rng.integers(20, 235, 3)
        img = np.empty((ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
        img[:] = bg
        skin = np.clip(np.array([90, 130, 180]) * rng.uniform(0.45, 1.3) + rng.normal(0, 12, 3), 0, 255)
        pts = ARCFACE_TEMPLATE_5 + rng.normal(0, 1.5, ARCFACE_TEMPLATE_5.shape)
        centre = (int(56 + rng.normal(0, 2)), int(62 + rng.normal(0, 2)))
        cv2.ellipse(img, centre, (int(rng.uniform(34, 44)), int(rng.uniform(46, 56))), float(rng.normal(0, 5)), 0, 360,
                    skin.tolist(), -1, cv2.LINE_AA)
        hair = rng.integers(0, 90, 3).tolist()
        cv2.ellipse(img, (centre[0], centre[1] - 40), (44, 20), 0, 180, 360, hair, -1, cv2.LINE_AA)
        dark = (skin * rng.uniform(0.2, 0.5)).tolist()
        for eye in pts[:2]:
            cv2.ellipse(img, tuple(int(v) for v in eye), (7, 3), 0, 0, 360, (235, 235, 235), -1, cv2.LINE_AA)
            cv2.circle(img, tuple(int(v) for v in eye), 3, dark, -1, cv2.LINE_AA)
            cv2.line(img, (int(eye[0]) - 8, int(eye[1]) - 9), (int(eye[0]) + 8, int(eye[1]) - 10), hair, 2,
                     cv2.LINE_AA)
        nose = pts[2]
        cv2.line(img, (int(nose[0]), int(nose[1]) - 16), (int(nose[0]) - 3, int(nose[1])), (skin * 0.75).tolist(), 2,
                 cv2.LINE_AA)
        lip = (np.array([90, 90, 170]) * rng.uniform(0.6, 1.1)).tolist()
        cv2.ellipse(img, tuple(int(v) for v in (pts[3] + pts[4]) / 2), (int(abs(pts[4, 0] - pts[3, 0]) / 2), 4), 0, 0,
                    360, lip, -1, cv2.LINE_AA)
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.2))
        noise = rng.normal(0, rng.uniform(2, 8), img.shape)
        out[i] = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.2) + noise, 0, 255).astype(np.uint8)
    return out


def align_folder(root: PathLike, max_faces: int, seed: int = 0, min_face_size: int = 10) -> np.ndarray:
    """Detect and align the largest face of up to `max_faces` photos under `root` (random order, seeded).

    Photos that cannot be read or hold no face are skipped (and counted in the log). Raises InputError when
    no face at all is found.
    """
    from ..detectors.detect import DetectorOptions, FaceDetector  # mediapipe is slow to import: only when needed

    files = list_images(root, recursive=True)
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    order = np.random.default_rng(seed).permutation(len(files))
    faces: List[np.ndarray] = []
    skipped = 0
    wanted = min(max_faces, len(files))
    with FaceDetector(DetectorOptions(min_face_size=min_face_size, max_faces=1)) as detector:
        for idx in order:
            if len(faces) >= max_faces:
                break
            image = cv2.imread(str(files[idx]), cv2.IMREAD_COLOR)
            found = detector.detect(image) if image is not None else []
            if not found:
                skipped += 1
                continue
            faces.append(align_face(image, found[0].keypoints))
            if len(faces) % PROGRESS_EVERY == 0:
                log.info("align calibration faces: %d of %d", len(faces), wanted)
    if skipped:
        log.info("calibration: skipped %d unreadable photos or photos without a face under %s", skipped, root)
    if not faces:
        raise InputError(f"no face found in the {len(files)} photos under {root}")
    return np.stack(faces)


def load_calibration_faces(source: PathLike, max_faces: int = 512, seed: int = 0) -> np.ndarray:
    """Aligned faces (N, 112, 112, 3) uint8 BGR for INT8 calibration.

    source: an AlignedCache `.npz` (a random, seeded subset of `max_faces` rows), a `.npy` array of aligned crops,
        or a folder of photos (detected and aligned here).
    """
    source = Path(source)
    if source.is_dir():
        return align_folder(source, max_faces, seed)
    if not source.is_file():
        raise InputError(f"calibration data not found: {source} (give a folder of face photos or an .npz "
                                "cache from `g2d-train prepare`)")
    if source.suffix.lower() == ".npz":
        with np.load(source, allow_pickle=False) as z:
            if "images" not in z.files:
                raise InputError(f"{source} has no 'images' array; is it an AlignedCache from `g2d-train prepare`?")
            images = z["images"]
    elif source.suffix.lower() == ".npy":
        images = np.load(source, allow_pickle=False)
    else:
        raise InputError(f"calibration data must be a folder, an .npz cache or an .npy array, got {source}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
        raise InputError(f"{source}: expected aligned uint8 faces (N, 112, 112, 3), got {images.dtype} {images.shape}")
    if len(images) > max_faces:
        rows = np.sort(np.random.default_rng(seed).choice(len(images), max_faces, replace=False))
        images = images[rows]
    return np.ascontiguousarray(images)
