"""The faces open-set calibration and `benchmarks/openset.py` are measured on, embedded through the SDK's front end.

- **Held-out people**: the CelebA people no model was trained on (`data.val_identities: 100, split_seed: 0`, the
  same `train.data.split_identities` hold-out as training and `benchmarks/accuracy.py`), every photo clean and with a
  synthetic mask drawn on the raw photo (Face Mesh, seed `MASK_SEED`, never used in training).
- **Training people** (the stranger cohort's larger part, `train.calibrate`): the other 119 CelebA people, whom the
  shipped models were trained on but who are enrolled in no gallery here, every photo clean and masked the same way.
- **Distractors**: the unlabelled `faces-pool` (80 px web faces of mostly different people), upscaled 2x (bicubic)
  before detection as `../shared/README.md` advises; one template each (some faces got a synthetic mask too,
  `POOL_PROBES`, but pool faces are not used as stranger probes: see `train.calibrate`). The pool was the
  unlabelled distillation pool of the shipped models (no identities, but its faces were seen in training).

Both are split once, by person and by file, into a **calibration part** and a **test part** (`halves`, seeded;
people 50 + 50, pool `POOL_CALIBRATION` + the rest, so that the test part has enough faces for 10,000-identity
galleries), so that a calibration built on one part is measured on the other. Each photo goes through the SDK's
default detector (largest face) and the shared 112x112 aligner; crops are cached under `runs/openset/` (git-ignored),
keyed by the people they hold, and embeddings by model file too, so a rerun only computes what is missing.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from g2d_edge.align import align_face
from g2d_edge.detectors.detect import DetectorOptions, FaceDetector
from g2d_edge.masks.facemesh import create_face_mesh, mesh_landmarks
from g2d_edge.masks import MaskOptions, MaskSynthesizer
from g2d_edge.sidecar import ModelSidecar
from train.data import split_identities
from train.prepare import list_images

log = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_PEOPLE = SHARED / "data" / "celeba-train"
DEFAULT_POOL = SHARED / "data" / "faces-pool"
CACHE_DIR = Path("runs") / "openset"
#: The identity hold-out of every shipped model (train/configs: data.val_identities, data.split_seed).
VAL_IDENTITIES, SPLIT_SEED = 100, 0
#: Seed of the synthetic masks drawn here (training and benchmarks/accuracy.py use others).
MASK_SEED = 1_901_019
#: Seed of the calibration / test halves.
HALF_SEED = 19
#: Pool photos left out: every pool face that scores above 0.6 (g2d-edge-m, clean) with a photo of one of the 100
#: held-out people, each the same person by eye (or a close likeness): 9484_0_0 of 7286 (above 0.5 with 30 of their
#: 30 photos), 8923_0_0 of 7301 (0.89, above 0.5 with 7 of 14), aflw_0658-image66444 of 7425 (0.73, 10 of 10),
#: 1070_0_0 of 7228 (0.65, 8 of 29), _-20_1068_0 of 7439 (0.69 with one photo). Left in, a stranger's own pool
#: photo named them in the large galleries (10,000 identities: 2.6 % of clean strangers named for a 1 % target).
POOL_EXCLUDED = ("9484_0_0.jpg", "8923_0_0.jpg", "aflw_0658-image66444.jpg", "1070_0_0.jpg", "_-20_1068_0.jpg")
#: Pool faces in the calibration part (the test part gets the others).
POOL_CALIBRATION = 3000
#: Pool faces given a synthetic mask when the crops were made, per part (calibration, test); mirror images are made
#: of the test faces past these.
POOL_PROBES = (1000, 600)
POOL_UPSCALE = 2.0


@dataclass
class Crops:
    """Aligned 112x112 crops of a photo set, clean and masked (`ok_*`: a face was found)."""

    clean: np.ndarray
    masked: np.ndarray
    ok_clean: np.ndarray
    ok_masked: np.ndarray


@dataclass
class FaceSet:
    """Embeddings of one model on one photo set; NaN rows where no face was found. `labels`: person index per photo
    (pool: its own index), `people`: their names, `files`: the photo files (relative)."""

    clean: np.ndarray
    masked: np.ndarray
    labels: np.ndarray
    people: List[str]
    files: List[str]


def held_out_people(root: Path = DEFAULT_PEOPLE) -> List[str]:
    """The `VAL_IDENTITIES` CelebA people held out of every shipped model, from the project's own split."""
    return _shipped_split(root)[1]


def training_people(root: Path = DEFAULT_PEOPLE) -> List[str]:
    """The CelebA people every shipped model was trained on (the rest of the same split)."""
    return _shipped_split(root)[0]


def _shipped_split(root: Path) -> Tuple[List[str], List[str]]:
    names = sorted({ident for _, ident in list_images(root, True)})
    return split_identities(names, VAL_IDENTITIES, SPLIT_SEED)


def trained_on(sidecar: ModelSidecar, people: Sequence[str]) -> List[str]:
    """Those of `people` the model was trained on: not in its sidecar's held-out people (`val_identities`; a sidecar
    that records none held out nobody). A model measured or calibrated on people it was trained on looks better than
    it is."""
    held_out = {str(i) for i in sidecar.data_summary.get("val_identities") or []}
    return sorted(set(str(p) for p in people) - held_out)


def halves(count: int, calibration: Optional[int] = None, seed: int = HALF_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """(calibration, test) indices, seeded: `calibration` of them (default: half) and the others."""
    order = np.random.default_rng(seed).permutation(count)
    cut = count // 2 if calibration is None else int(calibration)
    return np.sort(order[:cut]), np.sort(order[cut:])


def _detect_align(detector: FaceDetector, image: Optional[np.ndarray]) -> Optional[np.ndarray]:
    faces = detector.detect(image) if image is not None else []
    return align_face(image, faces[0].keypoints) if faces else None


def _crop_set(images: Sequence[Callable[[], np.ndarray]], mask_rows: np.ndarray, seed_key: int) -> Crops:
    """Detect + align every image (read lazily), and a synthetic mask on the rows in `mask_rows`."""
    n = len(images)
    out = Crops(np.zeros((n, 112, 112, 3), np.uint8), np.zeros((n, 112, 112, 3), np.uint8), np.zeros(n, bool),
                np.zeros(n, bool))
    synth, mesh = MaskSynthesizer(MaskOptions()), create_face_mesh()
    wanted = set(int(i) for i in mask_rows)
    with FaceDetector(DetectorOptions()) as detector:
        for i, read in enumerate(images):
            image = read()
            faces = detector.detect(image)
            if not faces:
                continue
            out.clean[i], out.ok_clean[i] = align_face(image, faces[0].keypoints), True
            if i in wanted:
                rng = np.random.default_rng([MASK_SEED, seed_key, i])
                masked = synth.synth(image, rng, mesh=mesh_landmarks(mesh, image), keypoints=faces[0].keypoints)[0]
                crop = _detect_align(detector, masked)
                if crop is not None:
                    out.masked[i], out.ok_masked[i] = crop, True
            if i % 500 == 0:
                log.info("front end: %d / %d photos", i, n)
    mesh.close()
    return out


def _read(path: Path, scale: float = 1.0) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"unreadable photo {path}")
        return image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return read


def _cached_crops(path: Path, make: Callable[[], Crops]) -> Crops:
    if path.is_file():
        with np.load(path) as z:
            return Crops(z["clean"], z["masked"], z["ok_clean"], z["ok_masked"])
    crops = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, clean=crops.clean, masked=crops.masked, ok_clean=crops.ok_clean, ok_masked=crops.ok_masked)
    return crops


def _pool_files(root: Path) -> List[Path]:
    return sorted(p for p, _ in list_images(root, False))


def pool_parts(files: Sequence[str]) -> Dict[str, np.ndarray]:
    """Pool rows of each part: "calibration" and "test" (distractors; `POOL_EXCLUDED` left out), and "mirrored" (the
    test rows whose mirror image is embedded too: those past the first `POOL_PROBES[1]`)."""
    cal, test = halves(len(files), POOL_CALIBRATION)
    keep = np.array([f not in POOL_EXCLUDED for f in files])
    mirrored = test[POOL_PROBES[1]:]
    return {"calibration": cal[keep[cal]], "test": test[keep[test]], "mirrored": mirrored[keep[mirrored]]}


def pool_mask_rows(count: int) -> np.ndarray:
    """Pool rows that got a synthetic mask when the crops were made: the first `POOL_PROBES` of each part (they are
    not used as probes, see `train.calibrate`)."""
    cal, test = halves(count, POOL_CALIBRATION)
    return np.concatenate([cal[:POOL_PROBES[0]], test[:POOL_PROBES[1]]])


def people_crops(root: Path = DEFAULT_PEOPLE, cache_dir: Path = CACHE_DIR, training: bool = False
                 ) -> Tuple[Crops, np.ndarray, List[str], List[str]]:
    """Crops of every photo of the held-out people (`training`: of the training people instead): (crops, labels,
    people, files)."""
    people = training_people(root) if training else held_out_people(root)
    wanted = set(people)
    items = [(p, ident) for p, ident in list_images(root, True) if ident in wanted]
    labels = np.array([people.index(ident) for _, ident in items], np.int64)
    files = [str(p.relative_to(root)) for p, _ in items]
    name, seed_key = ("crops-training", 2) if training else ("crops-people", 0)
    crops = _cached_crops(cache_dir / f"{name}-{_names_key(people)}.npz",
                          lambda: _crop_set([_read(p) for p, _ in items], np.arange(len(items)), seed_key))
    return crops, labels, people, files


def pool_crops(root: Path = DEFAULT_POOL, cache_dir: Path = CACHE_DIR) -> Tuple[Crops, List[str]]:
    """Crops of every faces-pool photo (upscaled 2x first): (crops, files)."""
    paths = _pool_files(root)
    crops = _cached_crops(cache_dir / "crops-pool.npz",
                          lambda: _crop_set([_read(p, POOL_UPSCALE) for p in paths], pool_mask_rows(len(paths)), 1))
    return crops, [p.name for p in paths]


def _names_key(names: Sequence[str]) -> str:
    """The cache key of a set of people: a crop cache made for other people (another hold-out) is not reused."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]


def _model_key(label: str, path: Optional[Path]) -> str:
    """The cache key of a model's embeddings: its file's hash (a copy of a model shares its embeddings)."""
    if path is not None and path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return label


def _embed_crops(embed: Callable[[np.ndarray], np.ndarray], crops: Crops, dim: int) -> Tuple[np.ndarray, np.ndarray]:
    out = []
    for faces, ok in ((crops.clean, crops.ok_clean), (crops.masked, crops.ok_masked)):
        rows = np.full((len(faces), dim), np.nan, np.float32)
        idx = np.flatnonzero(ok)
        for start in range(0, len(idx), 256):
            part = idx[start:start + 256]
            emb = np.asarray(embed(faces[part]), np.float32)
            rows[part] = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        out.append(rows)
    return out[0], out[1]


def embeddings(label: str, path: Optional[Path], embed: Callable[[np.ndarray], np.ndarray], dim: int,
               people_root: Path = DEFAULT_PEOPLE, pool_root: Path = DEFAULT_POOL,
               cache_dir: Path = CACHE_DIR, mirrored: bool = False, training: bool = True) -> Dict[str, FaceSet]:
    """{"people": held-out people, "pool": faces-pool, "training": the training people (when `training`), "mirror":
    the pool's crops mirrored left-right (when `mirrored`)} embedded by one model (L2-normalised), cached in
    `cache_dir` under the model's label and file hash and the photo set's files."""
    key = _model_key(label, path)
    out: Dict[str, FaceSet] = {}
    p_crops, labels, people, files = people_crops(people_root, cache_dir)
    q_crops, pool_files = pool_crops(pool_root, cache_dir)
    sets = [("people", p_crops, labels, people, files),
            ("pool", q_crops, np.arange(len(pool_files)), pool_files, pool_files)]
    if training:
        t_crops, t_labels, t_people, t_files = people_crops(people_root, cache_dir, training=True)
        sets.append(("training", t_crops, t_labels, t_people, t_files))
    if mirrored:  # the test distractors mirrored (clean only): more distractor templates for large galleries
        rows = np.zeros(len(pool_files), bool)
        rows[halves(len(pool_files), POOL_CALIBRATION)[1][POOL_PROBES[1]:]] = True
        flip = Crops(q_crops.clean[:, :, ::-1], q_crops.masked, q_crops.ok_clean & rows, np.zeros_like(rows))
        sets.append(("mirror", flip, np.arange(len(pool_files)), pool_files, pool_files))
    for name, crops, lab, who, fls in sets:
        file = cache_dir / f"emb-{name}-{key}-{_names_key(fls)}.npz"
        if file.is_file():
            with np.load(file) as z:
                clean, masked = z["clean"], z["masked"]
        else:
            log.info("embedding %s with %s (%d photos)", name, label, len(fls))
            clean, masked = _embed_crops(embed, Crops(np.ascontiguousarray(crops.clean),
                                                      np.ascontiguousarray(crops.masked), crops.ok_clean,
                                                      crops.ok_masked), dim)
            np.savez(file, clean=clean, masked=masked)
        out[name] = FaceSet(clean, masked, lab, list(who), list(fls))
    return out


def model_embedder(label: str, path: Path) -> Tuple[Callable[[np.ndarray], np.ndarray], int]:
    """(embed, dim) of a g2d model (.onnx + sidecar) on ONNX Runtime, or of SFace (label "sface")."""
    if label == "sface":
        from train.sface import SFace

        sface = SFace(path)
        return sface, sface.dim
    from g2d_edge.backends import load_backend

    backend = load_backend(path, backend="onnxruntime")
    return (lambda faces: backend.infer(faces)[0]), int(backend.sidecar.embedding_dim)
