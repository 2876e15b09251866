"""Training data: datasets of aligned faces with synthetic masks, identity hold-out, multi-source assembly.

Every dataset item is a dict of numpy arrays (the default collate turns them into tensors):
    clean   (112, 112, 3) uint8 BGR  the aligned face (after flip / colour jitter)
    masked  (112, 112, 3) uint8 BGR  the same face with a synthetic mask (== clean when this item is not masked)
    region  (112, 112)    uint8      1 where the mask covers the face, 0 elsewhere (all 0 when not masked)
    label   int64                    class index for the classifier (-1: unlabelled)
    source  int64, index int64       which source and which row of it the item came from
    teacher (D,) float32             the teacher's embedding of the clean face, L2-normalised (stage data with a
                                     teacher cache only)

Randomness (mask on/off, mask style, flip, jitter) comes from a generator seeded by (seed, epoch, source, row), so
an epoch's items are identical however many workers load them, and a resumed run sees the same data.
Float conversion is *not* done here: the training loop applies `train.model.Preprocess` on the batch, the same
module the exported graph starts with.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler, default_collate

from g2d_edge.align import align_face, estimate_alignment, transform_points
from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.errors import G2DError, check_fields, option
from g2d_edge.vectors import l2_normalise

from .prepare import MESH_POINTS, AlignedCache, list_images

log = logging.getLogger(__name__)


class DataError(G2DError, ValueError):
    """Training data cannot be assembled as configured (missing file, bad hold-out, no rows left)."""


# ---------------------------------------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class AugmentOptions:
    """Per-item augmentation.

    mask_prob: probability that an item is masked. flip: random horizontal flip (images + region together, after
    masking). color_jitter: strength j of a random brightness/contrast change (factors in [1-j, 1+j]) applied to the
    face before masking (0 disables). mask: `g2d_edge.masks.MaskOptions` fields.
    """

    mask_prob: float = option(1.0, low=0.0, high=1.0)
    flip: bool = True
    color_jitter: float = option(0.0, low=0.0, below=1.0)
    mask: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)


def make_mask_synthesizer(options: Dict[str, Any]):
    """A `g2d_edge.masks.MaskSynthesizer` from MaskOptions fields (lists accepted for tuples); DataError if invalid."""
    from g2d_edge.masks import MaskOptions, MaskSynthesizer

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        return MaskSynthesizer(MaskOptions(**fields))
    except (TypeError, ValueError) as exc:
        raise DataError(f"invalid mask options {options}: {exc}") from exc


class FaceAugmenter:
    """Mask + flip + jitter of one aligned face (picklable: DataLoader workers get a copy)."""

    def __init__(self, options: AugmentOptions) -> None:
        self.options = options
        self.synthesizer = make_mask_synthesizer(dict(options.mask))

    def __call__(self, clean: np.ndarray, rng: np.random.Generator, mesh: Optional[np.ndarray] = None,
                 keypoints: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clean, masked, region) for one aligned BGR face; landmarks are in the aligned frame (mesh may be NaN)."""
        opts = self.options
        # draw every random decision up front so that the sequence does not depend on which branch runs
        do_mask = rng.random() < opts.mask_prob
        do_flip = opts.flip and rng.random() < 0.5
        gain, bias = 1.0, 0.0
        if opts.color_jitter > 0:
            gain = 1.0 + rng.uniform(-opts.color_jitter, opts.color_jitter)
            bias = 127.5 * rng.uniform(-opts.color_jitter, opts.color_jitter) * 0.5
            clean = np.clip(clean.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        mask_rng = np.random.default_rng(rng.integers(2 ** 63))
        if do_mask:
            mesh_arg = mesh if mesh is not None and np.isfinite(mesh).all() else None
            masked, region = self.synthesizer.synth(clean, mask_rng, mesh=mesh_arg, keypoints=keypoints)
            region = region.astype(np.uint8)
        else:
            masked = clean
            region = np.zeros(clean.shape[:2], np.uint8)
        if do_flip:
            clean, masked, region = clean[:, ::-1], masked[:, ::-1], region[:, ::-1]
        return np.ascontiguousarray(clean), np.ascontiguousarray(masked), np.ascontiguousarray(region)


def item_rng(seed: int, epoch: int, source: int, index: int) -> np.random.Generator:
    """The generator of one item in one epoch (independent of worker count and order)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(source), int(index)])


# ---------------------------------------------------------------------------------------------- datasets

class AlignedFaceDataset(Dataset):
    """Rows of a prepared `AlignedCache` as training items (see the module docstring).

    rows: which cache rows to use (default: all). labels: per-cache-row class index for the classifier (default:
    -1 everywhere). teacher: (N, D) teacher cache row-aligned with the cache; items of NaN teacher rows must be
    excluded through `rows` (see `finite_teacher_rows`).
    """

    def __init__(self, cache: AlignedCache, augment: AugmentOptions, rows: Optional[Sequence[int]] = None,
                 labels: Optional[np.ndarray] = None, teacher: Optional[np.ndarray] = None, seed: int = 0,
                 source_index: int = 0) -> None:
        self.cache = cache
        self.rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.labels = np.full(len(cache), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        if teacher is not None and teacher.shape[0] != len(cache):
            raise DataError(f"teacher cache has {teacher.shape[0]} rows, the aligned cache {len(cache)}")
        self.teacher = teacher
        self.augment = FaceAugmenter(augment)
        self.seed = seed
        self.source_index = source_index
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random masks / flips the items get."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, i: int) -> Dict[str, Any]:
        row = int(self.rows[i])
        rng = item_rng(self.seed, self.epoch, self.source_index, row)
        clean, masked, region = self.augment(self.cache.images[row], rng, self.cache.mesh[row],
                                             self.cache.keypoints[row])
        item = {"clean": clean, "masked": masked, "region": region, "label": np.int64(self.labels[row]),
                "source": np.int64(self.source_index), "index": np.int64(row)}
        if self.teacher is not None:
            item["teacher"] = self.teacher[row].astype(np.float32)
        return item


class FaceAligner:
    """Read a photo, detect the largest face and align it like `prepare` does, never raising on bad files.

    The MediaPipe detector is not picklable: it is built on first use in each process (and rebuilt after a fork).
    """

    def __init__(self, options: Optional[DetectorOptions] = None) -> None:
        self.options = options or DetectorOptions(min_face_size=10)
        self._detector: Optional[FaceDetector] = None
        self._pid = -1

    def __getstate__(self) -> Dict[str, Any]:
        return {"options": self.options, "_detector": None, "_pid": -1}

    @property
    def detector(self) -> FaceDetector:
        """This process's face detector."""
        if self._detector is None or self._pid != os.getpid():
            self._detector = FaceDetector(self.options)
            self._pid = os.getpid()
        return self._detector

    def __call__(self, path: Union[str, Path]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], str]:
        """(aligned crop, keypoints in the aligned frame, "") or (None, None, reason)."""
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
        if image is None:
            return None, None, "unreadable image"
        try:
            faces = self.detector.detect(image)
        except ValueError as exc:  # InputError: e.g. an image too small to hold a face
            return None, None, str(exc)
        if not faces:
            return None, None, "no face found"
        matrix = estimate_alignment(faces[0].keypoints)
        crop = align_face(image, faces[0].keypoints)
        return crop, transform_points(faces[0].keypoints, matrix).astype(np.float32), ""


class ImageFolderDataset(Dataset):
    """Raw photos `root/<identity>/<image>` (or any images under `root` when unlabelled), detected and aligned on
    the fly. For when no prepared cache exists: slower than `AlignedFaceDataset` and without mesh landmarks (masks
    are placed from the detector keypoints).

    Photos that cannot be read or hold no face are not fatal: the item comes back as `{"skipped": path, "reason":
    ...}` with a warning, and `collate_faces` drops it and counts it in the batch's "skipped" list.
    """

    def __init__(self, root: Union[str, Path], augment: AugmentOptions, labelled: bool = True,
                 identities: Optional[Sequence[str]] = None, seed: int = 0, source_index: int = 0,
                 detector: Optional[DetectorOptions] = None) -> None:
        self.root = Path(root)
        items = list_images(self.root, labelled)
        if identities is not None:
            keep = set(identities)
            items = [(p, ident) for p, ident in items if ident in keep]
        if not items:
            raise DataError(f"no images under {self.root}" + (" for the selected identities" if identities else ""))
        self.paths = [p for p, _ in items]
        self.identities = sorted({ident for _, ident in items}) if labelled else []
        index = {name: k for k, name in enumerate(self.identities)}
        self.labels = np.array([index.get(ident, -1) for _, ident in items], np.int64)
        self.augment = FaceAugmenter(augment)
        self.seed = seed
        self.source_index = source_index
        self.aligner = FaceAligner(detector)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random masks / flips the items get."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def relabel(self, mapping: Dict[int, int]) -> None:
        """Map this folder's identity indices to class indices (identities not in `mapping` become -1)."""
        self.labels = np.array([mapping.get(int(v), -1) for v in self.labels], np.int64)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        crop, keypoints, reason = self.aligner(self.paths[i])
        if crop is None:
            log.warning("skipping %s: %s", self.paths[i], reason)
            return {"skipped": str(self.paths[i]), "reason": reason}
        rng = item_rng(self.seed, self.epoch, self.source_index, i)
        mesh = np.full((MESH_POINTS, 2), np.nan, np.float32)
        clean, masked, region = self.augment(crop, rng, mesh, keypoints)
        return {"clean": clean, "masked": masked, "region": region, "label": np.int64(self.labels[i]),
                "source": np.int64(self.source_index), "index": np.int64(i)}


class FaceSources(ConcatDataset):
    """Several face datasets as one (a `ConcatDataset` whose `set_epoch` reaches every part)."""

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of every part."""
        for ds in self.datasets:
            ds.set_epoch(epoch)


def collate_faces(batch: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Default-collate the usable items; skipped ones (unreadable / faceless photos) are listed under "skipped"."""
    good = [b for b in batch if "skipped" not in b]
    skipped = [b["skipped"] for b in batch if "skipped" in b]
    out: Dict[str, Any] = default_collate(good) if good else {}
    out["skipped"] = skipped
    return out


class EpochShuffleSampler(Sampler[int]):
    """A random permutation per epoch, seeded by (seed, epoch): reproducible, and resumable at any epoch."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


# ---------------------------------------------------------------------------------------------- identity hold-out

def split_identities(identities: Sequence[str], val: Union[int, Sequence[str]], seed: int = 0
                     ) -> Tuple[List[str], List[str]]:
    """Split people (never photos) into (train, held-out) identity names, deterministically under `seed`.

    val: a count (drawn at random under `seed` from the sorted names) or an explicit list of names.
    """
    names = sorted({str(n) for n in identities})
    if isinstance(val, (int, np.integer)) and not isinstance(val, bool):
        count = int(val)
        if count < 0 or count >= len(names):
            raise DataError(f"cannot hold out {count} of {len(names)} identities: keep at least one for training")
        order = np.random.default_rng(seed).permutation(len(names))
        held = sorted(names[k] for k in order[:count])
    else:
        held = sorted({str(n) for n in val})
        unknown = [n for n in held if n not in names]
        if unknown:
            raise DataError(f"held-out identities not found in the data: {unknown[:10]}"
                            + (f" (+{len(unknown) - 10} more)" if len(unknown) > 10 else ""))
        if len(held) >= len(names):
            raise DataError("every identity is held out: keep at least one for training")
    held_set = set(held)
    return [n for n in names if n not in held_set], held


def finite_teacher_rows(teacher: np.ndarray) -> np.ndarray:
    """Boolean mask of teacher rows that hold a usable embedding (no NaN / inf)."""
    return np.isfinite(teacher).all(axis=1)


# ---------------------------------------------------------------------------------------------- loading with caching

_CACHE: Dict[Tuple[str, float], AlignedCache] = {}


def load_aligned_cache(path: Union[str, Path]) -> AlignedCache:
    """`AlignedCache.load` with an in-process memo (the `all` command loads each cache once, not once per stage)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prepared cache not found: {path}; run `g2d-train prepare` first")
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        log.info("loading prepared cache %s", path)
        _CACHE[key] = AlignedCache.load(path)
    return _CACHE[key]


# ---------------------------------------------------------------------------------------------- stage data assembly

@dataclass
class Holdout:
    """The identity split of the hold-out source: names of training and held-out people."""

    source: str = ""
    train: List[str] = field(default_factory=list)
    held_out: List[str] = field(default_factory=list)

    def to_meta(self) -> Dict[str, Any]:
        return {"source": self.source, "count": len(self.held_out), "identities": list(self.held_out)}


@dataclass
class StageData:
    """What a stage trains on.

    class_names: the classifier's classes (labelled training identities, "source/identity" when several labelled
        sources are combined), empty unless labels were asked for.
    teacher_mean: mean of the L2-normalised teacher rows used for training (None without a teacher).
    summary: JSON-able description (per source: kind, path, rows, identities, skipped rows).
    """

    dataset: FaceSources
    holdout: Holdout
    class_names: List[str]
    teacher_mean: Optional[np.ndarray]
    summary: Dict[str, Any]

    @property
    def trained_on(self) -> str:
        """One line saying which data the stage saw, for checkpoint meta and model cards."""
        parts = []
        for name, s in self.summary["sources"].items():
            who = f"{s['identities']} people" if s["labelled"] else "unlabelled"
            parts.append(f"{name}: {s['rows']} photos ({who})")
        return "; ".join(parts)


def _cache_identities(cache: AlignedCache) -> List[str]:
    present = np.unique(cache.labels[cache.labels >= 0])
    return [str(cache.identities[k]) for k in present]


def row_identities(cache: AlignedCache) -> np.ndarray:
    """Identity name of every cache row ("" for unlabelled rows)."""
    idents = np.asarray(cache.identities).astype(str)
    out = np.full(len(cache), "", dtype=idents.dtype if idents.size else "<U1")
    lab = np.asarray(cache.labels)
    if idents.size:
        out[lab >= 0] = idents[lab[lab >= 0]]
    return out


def _source_is_cached(src) -> bool:
    return bool(src.cache) and Path(src.cache).is_file()


def compute_holdout(data_cfg) -> Holdout:
    """The deterministic identity hold-out of `data_cfg` (a `train.config.DataConfig`)."""
    name = data_cfg.holdout_source
    val = data_cfg.val_identities
    if name is None or (isinstance(val, int) and val == 0) or (isinstance(val, list) and not val):
        return Holdout(source=name or "")
    src = data_cfg.source(name)
    if not src.labelled:
        raise DataError(f"the hold-out source {name!r} is unlabelled; set data.val_source to a labelled source")
    if _source_is_cached(src):
        identities = _cache_identities(load_aligned_cache(src.cache))
    elif src.root:
        identities = sorted({ident for _, ident in list_images(Path(src.root), True)})
    else:
        raise DataError(f"source {name!r}: prepared cache {src.cache} not found; run `g2d-train prepare`")
    train, held = split_identities(identities, val, data_cfg.split_seed)
    log.info("identity hold-out on %s: %d people held out, %d for training", name, len(held), len(train))
    return Holdout(source=name, train=train, held_out=held)


@dataclass(frozen=True)
class _Wanted:
    """What a stage asks of every source: augmentation and seed of its items, teacher rows, identity labels."""

    augment: AugmentOptions
    seed: int
    teacher: bool
    labels: bool


def _unit_teacher(src, name: str, cache: AlignedCache, keep: np.ndarray,
                  info: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
    """The source's teacher rows with unit length, and `keep` without the rows whose teacher failed (NaN)."""
    from .teacher import load_teacher_cache

    if not src.teacher:
        raise DataError(f"source {name!r} has no teacher cache (data.sources[].teacher); build one with "
                        "`g2d-train teacher` or leave the source out of this stage")
    try:
        teacher = load_teacher_cache(Path(src.teacher), expected_rows=len(cache))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(str(exc)) from exc
    finite = finite_teacher_rows(teacher)
    info["teacher_failed_rows"] = int((keep & ~finite).sum())
    keep = keep & finite
    teacher = teacher.copy()  # unit rows: the centring mean is taken on the sphere, as the loss expects
    teacher[finite] = l2_normalise(teacher[finite], dtype=teacher.dtype)
    return teacher, keep


def _class_labels(row_ident: np.ndarray, keep: np.ndarray, class_names: List[str], prefix: str) -> np.ndarray:
    """Class index per row (-1: not a training identity); the source's identities are appended to `class_names`."""
    used = sorted(set(row_ident[keep].tolist()) - {""})
    offset = len(class_names)
    class_names += [prefix + n for n in used]
    lookup = {n: offset + j for j, n in enumerate(used)}
    return np.array([lookup.get(n, -1) for n in row_ident], np.int64)


def _cached_source(src, name: str, index: int, excluded: Set[str], wanted: _Wanted, class_names: List[str],
                   prefix: str) -> Tuple[Dataset, Dict[str, Any], Optional[np.ndarray]]:
    """(dataset, summary, teacher rows used) of a source with a prepared cache."""
    cache = load_aligned_cache(src.cache)
    row_ident = row_identities(cache)
    is_held = np.isin(row_ident, sorted(excluded)) if excluded else np.zeros(len(cache), bool)
    keep = ~is_held
    if wanted.labels:
        keep &= cache.labels >= 0
    info: Dict[str, Any] = {"labelled": src.labelled, "kind": "cache", "path": str(src.cache),
                            "held_out_rows": int(is_held.sum())}
    teacher = None
    if wanted.teacher:
        teacher, keep = _unit_teacher(src, name, cache, keep, info)
    labels = _class_labels(row_ident, keep, class_names, prefix) if src.labelled and wanted.labels else None
    rows = np.flatnonzero(keep)
    dataset = AlignedFaceDataset(cache, wanted.augment, rows=rows, labels=labels, teacher=teacher, seed=wanted.seed,
                                 source_index=index)
    info["identities"] = len(set(row_ident[rows].tolist()) - {""})
    info["rows"] = int(len(rows))
    return dataset, info, None if teacher is None else teacher[rows]


def _folder_source(src, name: str, index: int, excluded: Set[str], wanted: _Wanted, class_names: List[str],
                   prefix: str, detector: DetectorOptions) -> Tuple[Dataset, Dict[str, Any]]:
    """(dataset, summary) of a source read from its image folder (no prepared cache: detected on the fly)."""
    if wanted.teacher:
        raise DataError(f"source {name!r} has no prepared cache ({src.cache or 'none set'}); distillation "
                        "needs `g2d-train prepare` and `g2d-train teacher` first")
    log.warning("source %s: no prepared cache, detecting and aligning %s on the fly (slow; run "
                "`g2d-train prepare` once instead)", name, src.root)
    keep_ids = None
    if excluded or wanted.labels:
        all_ids = sorted({i for _, i in list_images(Path(src.root), src.labelled)})
        keep_ids = [i for i in all_ids if i not in excluded]
    ds = ImageFolderDataset(src.root, wanted.augment, labelled=src.labelled, identities=keep_ids, seed=wanted.seed,
                            source_index=index, detector=detector)
    if src.labelled and wanted.labels:
        offset = len(class_names)
        class_names += [prefix + n for n in ds.identities]
        ds.relabel({j: offset + j for j in range(len(ds.identities))})
    else:
        ds.relabel({})
    info = {"labelled": src.labelled, "kind": "folder", "path": str(src.root), "identities": len(ds.identities),
            "rows": len(ds)}
    return ds, info


def _teacher_mean(teacher_rows: List[np.ndarray], summary: Dict[str, Any]) -> np.ndarray:
    """The mean of every source's (unit) teacher rows; the teachers must agree in dimension."""
    dims = {t.shape[1] for t in teacher_rows}
    if len(dims) != 1:
        raise DataError(f"teacher caches of the sources differ in dimension: {sorted(dims)}")
    stacked = np.concatenate(teacher_rows).astype(np.float64)
    summary["teacher_dim"] = int(dims.pop())
    return stacked.mean(axis=0).astype(np.float32)


def build_stage_data(data_cfg, source_names: Sequence[str], augment: AugmentOptions, seed: int,
                     need_teacher: bool = False, need_labels: bool = False) -> StageData:
    """Assemble the training set of a stage from the named sources of `data_cfg` (a `train.config.DataConfig`).

    The held-out identities of the hold-out source are excluded from every stage. need_teacher: items carry the
    teacher row; rows whose teacher failed (NaN) are skipped; every source must have a teacher cache.
    need_labels: only labelled rows are used and `class_names` / item labels index the training identities.
    """
    if not source_names:
        raise DataError("no data sources for this stage; add some under data.sources")
    holdout = compute_holdout(data_cfg)
    wanted = _Wanted(augment, seed, need_teacher, need_labels)
    parts: List[Dataset] = []
    summary: Dict[str, Any] = {"sources": {}, "held_out": holdout.to_meta()}
    class_names: List[str] = []
    teacher_rows: List[np.ndarray] = []
    labelled_names = [n for n in source_names if data_cfg.source(n).labelled]
    if need_labels and not labelled_names:
        raise DataError(f"this stage needs labelled data but sources {list(source_names)} are all unlabelled")
    for k, name in enumerate(source_names):
        src = data_cfg.source(name)
        if need_labels and not src.labelled:
            continue
        prefix = f"{name}/" if len(labelled_names) > 1 else ""
        excluded = set(holdout.held_out) if name == holdout.source else set()
        if _source_is_cached(src):
            part, info, teacher = _cached_source(src, name, k, excluded, wanted, class_names, prefix)
            if teacher is not None:
                teacher_rows.append(teacher)
        elif src.root:
            part, info = _folder_source(src, name, k, excluded, wanted, class_names, prefix,
                                        detector_options(data_cfg))
        else:
            raise DataError(f"source {name!r}: prepared cache {src.cache!r} not found and no image folder `root` "
                            "set; run `g2d-train prepare`")
        if info["rows"] == 0:
            raise DataError(f"source {name!r} has no usable rows for this stage")
        parts.append(part)
        summary["sources"][name] = info
    teacher_mean = _teacher_mean(teacher_rows, summary) if need_teacher else None
    dataset = FaceSources(parts)
    summary["total_rows"] = len(dataset)
    if need_labels:
        summary["num_classes"] = len(class_names)
    return StageData(dataset=dataset, holdout=holdout, class_names=class_names, teacher_mean=teacher_mean,
                     summary=summary)


def detector_options(data_cfg) -> DetectorOptions:
    """`DetectorOptions` from `data.detector` (defaults suited to face crops: min_face_size 10)."""
    opts = {"min_face_size": 10, **dict(data_cfg.detector)}
    try:
        return DetectorOptions(**opts)
    except TypeError as exc:
        raise DataError(f"invalid data.detector options {opts}: {exc}") from exc
