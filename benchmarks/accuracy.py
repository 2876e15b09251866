"""Masked face recognition on people never trained on: the shipped G2D models and their peers in one run.

For every photo of the evaluation people (by default the validation identities recorded in the first model's sidecar)
a synthetic mask is drawn on the *raw photo* (Face Mesh landmarks of the clean photo, a seed different from
training). Recognisers (see `benchmarks/peers.py`):

- each g2d model (`--model`, default: the shipped ones) runs the SDK's own front end on the clean and on the masked
  photo: the SDK's default detector on that photo itself -> shared 112x112 aligner -> ONNX Runtime;
- OpenCV's SFace gets the very same crops (the same front end);
- dlib gets its best case for pairs (landmarks of the clean photo) and its own front end for the round trip.

**Pairs.** Genuine/impostor pairs are generated from the folder (balanced, seeded): clean-clean, masked-clean (masked
probe vs clean reference) and masked-masked. A face that cannot be found counts as a *failed* pair (a genuine pair
rejected, an impostor accepted), never a skipped one. 10-fold accuracy, ROC AUC, TAR@FAR.

**SDK round trip.** Three of every four people are enrolled with one clean photo each (their first); every other
photo of theirs is a probe, clean and masked, and the fourth person's photos are unknown probes. The g2d models run
through `g2d_edge.Recognizer` itself (`enroll`, then `identify`, largest face). Rank-1: the best gallery match is
the right person (known probes). Open-set accuracy at each recogniser's own threshold (the SDK's for the g2d models:
since issue 19 derived for this gallery's size from the sidecar's open-set calibration at the default target FPIR,
each face at the threshold of its mask flag; OpenCV's 0.363 for SFace, face_recognition's 0.6 for dlib): a known probe is named correctly, an unknown one is left unnamed.
A probe without a detected face is wrong.

**Masked templates** (`--masked-templates N...`): the first model's round trip again with N synthetic masked templates
per enrolment photo (`RecognizerOptions(masked_templates=N)`), scored twice from the same identify calls: "tagged" is
the SDK as it ships (the templates are tagged masked, and the mask flag of each probe picks the templates it is
compared with: a clean face its clean templates, a masked face all; `g2d_edge.gallery.protocol.MASKED_SEARCH_RULE`),
"untagged" compares every probe with every template (the gallery search without flags, as before the tags).

**Latency** per face (CPU, batch 1, one thread) of each recogniser, and the SDK's face preparation.

    python benchmarks/accuracy.py                                   # shipped models + peers
    python benchmarks/accuracy.py --model runs/a.onnx=ablation --json out.json
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._timing import interleaved_median_seconds, median_seconds  # noqa: E402
from benchmarks.peers import (DLIB_DISTANCE_THRESHOLD, SFACE_COSINE_THRESHOLD, DlibPeer, PhotoEmbeddings,  # noqa: E402
                              embed_rows, sface_as_shipped)
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.align import align_face  # noqa: E402
from g2d_edge.backends import BackendOptions, load_backend  # noqa: E402
from g2d_edge.detectors import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.recognizer import Recognizer, RecognizerOptions  # noqa: E402
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for  # noqa: E402
from train.eval import VerificationResult, evaluate_verification, generate_pairs, list_identity_images  # noqa: E402
from g2d_edge.masks import MaskOptions, MaskSynthesizer  # noqa: E402
from g2d_edge.masks.facemesh import create_face_mesh, mesh_landmarks  # noqa: E402
from train.openset_data import trained_on  # noqa: E402
from train.sface import DEFAULT_SFACE_ONNX, SFace  # noqa: E402

log = logging.getLogger("benchmarks.accuracy")

DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-train"
MODELS_DIR = REPO / "g2d_edge" / "models"
DEFAULT_MODELS = (MODELS_DIR / "g2d-edge-m.onnx", MODELS_DIR / "g2d-edge-s.onnx")
#: The detector whose face on the clean photo decides whether a photo gets a mask (and places it when Face Mesh
#: finds no face): BlazeFace short range, as for every published figure, whatever the SDK's default detector is.
MASK_PLACEMENT = DetectorOptions(model="short")
CONDITIONS = ("unmasked-unmasked", "masked-unmasked", "masked-masked")
PROBES = ("clean", "masked")


@dataclass
class AccuracyConfig:
    """What the benchmark runs on. `models`: (label, .onnx path) pairs; the first one's sidecar names the people."""

    data: Path = DEFAULT_DATA
    models: List[Tuple[str, Path]] = field(default_factory=lambda: [(p.stem, p) for p in DEFAULT_MODELS])
    identities: List[str] = field(default_factory=list)  # empty: the first model's validation identities
    pairs: int = 6000
    mask_seed: int = 904_117  # differs from every training seed
    fars: Tuple[float, ...] = (1e-2, 1e-3)
    folds: int = 10
    sface: Optional[Path] = DEFAULT_SFACE_ONNX  # None: no SFace peer
    dlib: bool = True
    round_trip: bool = True
    unknown_every: int = 4  # every n-th person is not enrolled (open set)
    masked_templates: Tuple[int, ...] = ()  # extra round trips of the first model with N masked templates per photo
    latency_repeats: int = 200
    limit_per_identity: int = 0


@dataclass
class EvalPhotos:
    """The evaluation photos: raw clean image, its masked version (None: no face in the clean photo, so no mask),
    the mask-placement detector's box on the clean photo (`MASK_PLACEMENT`), identity label."""

    paths: List[Path]
    labels: np.ndarray
    names: List[str]
    clean: List[np.ndarray]
    masked: List[Optional[np.ndarray]]
    boxes: List[Optional[np.ndarray]]


@dataclass
class FrontEnd:
    """The SDK's front end on every photo: aligned crops of the clean and of the masked photo, and which exist."""

    clean: np.ndarray
    masked: np.ndarray
    ok_clean: np.ndarray
    ok_masked: np.ndarray


@dataclass
class RoundTrip:
    """SDK round trip of one recogniser, per probe kind ("clean", "masked")."""

    threshold: str  # the match rule, e.g. "cosine >= 0.363"
    rank1: Dict[str, int]
    open_set: Dict[str, int]
    known: int
    unknown: int
    enrolled: int
    flagged: Dict[str, int] = field(default_factory=dict)  # probes the mask flag called masked, per kind (SDK only)

    def to_dict(self) -> Dict:
        total = self.known + self.unknown
        return {"threshold": self.threshold, "enrolled": self.enrolled, "known_probes": self.known,
                "unknown_probes": self.unknown, "rank1": self.rank1, "open_set_correct": self.open_set,
                "flagged_masked": self.flagged,
                "rank1_rate": {k: v / max(1, self.known) for k, v in self.rank1.items()},
                "open_set_accuracy": {k: v / max(1, total) for k, v in self.open_set.items()}}


# ------------------------------------------------------------------------------------------------------ photos
def resolve_identities(cfg: AccuracyConfig, sidecar: ModelSidecar) -> List[str]:
    """The people to evaluate: given explicitly, or the validation people the model was never trained on."""
    if cfg.identities:
        return list(cfg.identities)
    ids = sidecar.data_summary.get("val_identities") or []
    if not ids:
        raise SystemExit("the model's sidecar records no validation identities; pass --identities-file "
                         "(people the model was NOT trained on)")
    return [str(i) for i in ids]


def check_never_trained_on(cfg: AccuracyConfig, identities: Sequence[str]) -> None:
    """Every g2d model must have held out every evaluation person (their sidecars record their validation people; a
    model whose sidecar records none, one trained elsewhere, is evaluated on the people given)."""
    for label, path in cfg.models:
        sidecar = ModelSidecar.load(sidecar_path_for(path))
        seen = trained_on(sidecar, identities) if sidecar.data_summary.get("val_identities") else []
        if seen:
            raise SystemExit(f"{label} was trained on {len(seen)} of the evaluation people; "
                             "compare models that share a hold-out, or pass --identities-file")


def select_photos(cfg: AccuracyConfig, identities: Sequence[str]) -> Tuple[List[Path], np.ndarray, List[str]]:
    """Photos of the evaluation people with labels (into the returned identity names)."""
    paths, labels, names = list_identity_images(cfg.data)
    wanted = set(identities)
    missing = wanted - set(names)
    if missing:
        raise SystemExit(f"{len(missing)} evaluation identities are not folders of {cfg.data}: {sorted(missing)[:5]}")
    keep, taken = [], {}
    for i, lab in enumerate(labels):
        if names[lab] in wanted and (not cfg.limit_per_identity or taken.get(lab, 0) < cfg.limit_per_identity):
            taken[lab] = taken.get(lab, 0) + 1
            keep.append(i)
    return [paths[i] for i in keep], labels[keep], names


def load_photos(cfg: AccuracyConfig, identities: Sequence[str],
                detector_options: DetectorOptions = MASK_PLACEMENT) -> EvalPhotos:
    """Read every photo and draw a synthetic mask on it (seeded per photo)."""
    paths, labels, names = select_photos(cfg, identities)
    synth = MaskSynthesizer(MaskOptions())
    mesh = create_face_mesh()
    clean, masked, boxes = [], [], []
    with FaceDetector(detector_options) as detector:
        for i, path in enumerate(tqdm(paths, desc="read + mask", mininterval=5)):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f"unreadable photo {path}")
            faces = detector.detect(image)
            clean.append(image)
            if not faces:  # no face in the clean photo: no mask either; every pair with it fails
                masked.append(None)
                boxes.append(None)
                continue
            rng = np.random.default_rng([cfg.mask_seed, i])
            masked.append(synth.synth(image, rng, mesh=mesh_landmarks(mesh, image), keypoints=faces[0].keypoints)[0])
            boxes.append(faces[0].box)
    return EvalPhotos(paths, labels, names, clean, masked, boxes)


def sdk_front_end(photos: EvalPhotos, detector_options: Optional[DetectorOptions] = None) -> FrontEnd:
    """Detection (the SDK's default detector unless `detector_options` says otherwise) + the shared aligner on each
    photo itself (largest face), as `Recognizer` does."""
    n = len(photos.paths)
    out = FrontEnd(np.zeros((n, 112, 112, 3), np.uint8), np.zeros((n, 112, 112, 3), np.uint8),
                   np.zeros(n, bool), np.zeros(n, bool))
    with FaceDetector(detector_options or DetectorOptions()) as detector:
        for i in range(n):
            for image, crops, ok in ((photos.clean[i], out.clean, out.ok_clean),
                                     (photos.masked[i], out.masked, out.ok_masked)):
                faces = detector.detect(image) if image is not None else []
                if faces:
                    crops[i], ok[i] = align_face(image, faces[0].keypoints), True
    return out


# ------------------------------------------------------------------------------------------------------ pairs
def score_pairs(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, metric: str) -> np.ndarray:
    """Scores of pairs (higher = more alike): cosine, or negative L2 distance (dlib's own metric)."""
    x, y = a[ia], b[ib]
    if metric == "cosine":
        return np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return -np.linalg.norm(x - y, axis=1)


def fail_pairs(scores: np.ndarray, same: np.ndarray) -> np.ndarray:
    """A pair with no score (no face found) is a failed pair: a genuine pair rejected, an impostor accepted."""
    scores = scores.copy()
    bad = ~np.isfinite(scores)
    if bad.any():
        finite = scores[~bad]
        lo, hi = (finite.min() - 1.0, finite.max() + 1.0) if finite.size else (-1.0, 1.0)
        scores[bad & same] = lo
        scores[bad & ~same] = hi
    return scores


def evaluate(emb: PhotoEmbeddings, pairs, metric: str, cfg: AccuracyConfig) -> Dict[str, VerificationResult]:
    sides = {"unmasked-unmasked": (emb.clean, emb.clean), "masked-unmasked": (emb.masked, emb.clean),
             "masked-masked": (emb.masked, emb.masked)}
    out = {}
    for cond, (a, b) in sides.items():
        s = fail_pairs(score_pairs(a, b, pairs.a, pairs.b, metric), pairs.same)
        out[cond] = evaluate_verification(s, pairs.same, folds=pairs.folds, fars=cfg.fars, n_folds=cfg.folds)
    return out


# ------------------------------------------------------------------------------------------------- round trip
@dataclass
class GallerySplit:
    """Who is enrolled with which photo, and which photos are probes (known people) or unknowns."""

    enrol: Dict[int, int]  # label -> photo index
    known: np.ndarray  # photo indices of enrolled people, enrolment photos excluded
    unknown: np.ndarray  # photo indices of people not enrolled


def split_gallery(labels: np.ndarray, unknown_every: int) -> GallerySplit:
    people = sorted(set(int(v) for v in labels))
    unknown_people = set(people[unknown_every - 1::unknown_every]) if unknown_every else set()
    enrol = {p: int(np.flatnonzero(labels == p)[0]) for p in people if p not in unknown_people}
    rows = np.arange(len(labels))
    known = np.array([i for i in rows if int(labels[i]) in enrol and i != enrol[int(labels[i])]], np.int64)
    unknown = np.array([i for i in rows if int(labels[i]) in unknown_people], np.int64)
    return GallerySplit(enrol, known, unknown)


def score_round_trip(best: Dict[str, np.ndarray], named: Dict[str, np.ndarray], labels: np.ndarray,
                     split: GallerySplit, threshold: str) -> RoundTrip:
    """best[kind][i]: label of the best gallery match of photo i (-1: no face); named[kind][i]: whether that match
    passed the threshold."""
    rank1, open_set = {}, {}
    for kind in PROBES:
        right = best[kind][split.known] == labels[split.known]
        rank1[kind] = int(right.sum())
        open_set[kind] = int((right & named[kind][split.known]).sum()) + int((~named[kind][split.unknown]).sum())
    return RoundTrip(threshold, rank1, open_set, len(split.known), len(split.unknown), len(split.enrol))


#: The gallery search rules a round trip is scored with (see the module docstring).
SEARCH_RULES = ("tagged", "untagged")


def sdk_threshold_text(rec: Recognizer) -> str:
    """The round trip's match rule in words: the threshold the SDK named faces at, and why (since issue 19 it is
    derived for the gallery's size from the model's open-set calibration, per mask flag)."""
    clean, masked = rec.decision("clean"), rec.decision("masked")
    if clean.source != "open-set":
        return f"cosine >= {clean.threshold:.3f}"
    return (f"cosine >= {clean.threshold:.3f} clean / {masked.threshold:.3f} masked (target FPIR {clean.fpir:g}, "
            f"{clean.templates} templates)")


def round_trip_sdk(model: Path, photos: EvalPhotos, split: GallerySplit,
                   masked_templates: int = 0) -> Dict[str, RoundTrip]:
    """The g2d model through `g2d_edge.Recognizer`: enrol one clean photo per known person (plus `masked_templates`
    synthetic masked templates of it), identify every probe. Scored per search rule (`SEARCH_RULES`): "tagged" is
    `identify` itself; "untagged" searches the gallery again with the same face's embedding, without mask flags.
    Without masked templates every template is clean and the two are the same."""
    by_name = {photos.names[label]: label for label in split.enrol}
    best = {(r, k): np.full(len(photos.paths), -1, np.int64) for r in SEARCH_RULES for k in PROBES}
    named = {(r, k): np.zeros(len(photos.paths), bool) for r in SEARCH_RULES for k in PROBES}
    flagged = {k: 0 for k in PROBES}
    probes = np.concatenate([split.known, split.unknown])
    options = RecognizerOptions(masked_templates=masked_templates)
    with Recognizer(model=model, backend="onnxruntime", options=options) as rec:
        for label, i in split.enrol.items():
            rec.enroll(photos.names[label], photos.clean[i])
        for i in tqdm(probes, desc=f"round trip {model.stem} +{masked_templates}", mininterval=5):
            for kind, image in (("clean", photos.clean[i]), ("masked", photos.masked[i])):
                found = rec.identify(image) if image is not None else []
                if not found:
                    continue
                flagged[kind] += bool(found[0].masked)
                untagged = rec.gallery.search(found[0].embedding, top_k=1)[0]
                used = rec.threshold if found[0].threshold is None else found[0].threshold  # the face's own
                for rule, match in (("tagged", found[0].matches[0] if found[0].matches else None),
                                    ("untagged", untagged[0] if untagged else None)):
                    if match is not None:
                        best[rule, kind][i] = by_name[match.name]
                        named[rule, kind][i] = match.score >= used
        threshold = sdk_threshold_text(rec)
    out = {}
    for rule in SEARCH_RULES:
        trip = score_round_trip({k: best[rule, k] for k in PROBES}, {k: named[rule, k] for k in PROBES},
                                photos.labels, split, threshold)
        trip.flagged = dict(flagged)
        out[rule] = trip
    return out


def round_trip_embeddings(emb: PhotoEmbeddings, labels: np.ndarray, split: GallerySplit, metric: str,
                          threshold: float) -> RoundTrip:
    """A peer's round trip from its embeddings: nearest enrolled template, named when its score (cosine, or
    negative L2 distance) reaches ``threshold``."""
    enrolled = np.array(sorted(split.enrol))
    gallery = np.stack([emb.clean[split.enrol[p]] for p in enrolled])
    best = {k: np.full(len(labels), -1, np.int64) for k in PROBES}
    named = {k: np.zeros(len(labels), bool) for k in PROBES}
    probes = np.concatenate([split.known, split.unknown])
    for kind, rows in (("clean", emb.clean), ("masked", emb.masked)):
        for i in probes:
            if not np.isfinite(rows[i]).all():
                continue
            scores = score_pairs(np.repeat(rows[i:i + 1], len(gallery), 0), gallery, np.arange(len(gallery)),
                                 np.arange(len(gallery)), metric)
            scores = np.where(np.isfinite(scores), scores, -np.inf)
            j = int(np.argmax(scores))
            best[kind][i], named[kind][i] = enrolled[j], scores[j] >= threshold
    rule = f"cosine >= {threshold:.3f}" if metric == "cosine" else f"L2 distance <= {-threshold:.2f}"
    return score_round_trip(best, named, labels, split, rule)


# ------------------------------------------------------------------------------------------------------ latency
def _median_ms(fn, repeats: int, warmup: int = 5) -> float:
    return median_seconds(fn, warmup, repeats) * 1000


def measure_latency(cfg: AccuracyConfig, crop: np.ndarray, photo: np.ndarray, box: np.ndarray,
                    dlib: Optional[DlibPeer]) -> Dict[str, float]:
    """Per-face CPU latency at batch 1 on one thread of each recogniser (the ONNX models taking turns call by call,
    so that a change in the machine's load hits them alike), and the SDK's detection + alignment."""
    calls: Dict[str, Callable[[], object]] = {}
    for label, path in cfg.models:
        backend = load_backend(path, backend="onnxruntime", options=BackendOptions.of(intra_op_threads=1))
        calls[label] = lambda backend=backend: backend.infer(crop[None])
    if cfg.sface is not None:
        shipped, plain = sface_as_shipped(cfg.sface, threads=1), SFace(cfg.sface, threads=1)
        calls["sface"] = lambda: shipped(crop)
        calls["sface_float"] = lambda: plain(crop[None])
    timed = interleaved_median_seconds(calls, 5, cfg.latency_repeats)
    out = {f"{name}_embed_ms": seconds * 1000 for name, seconds in timed.items()}
    with FaceDetector(DetectorOptions()) as det:
        out["sdk_detect_align_ms"] = _median_ms(lambda: align_face(photo, det.detect(photo)[0].keypoints),
                                                cfg.latency_repeats)
    if dlib is not None:
        rgb = photo[:, :, ::-1].copy()
        chip = dlib.teacher.chip(rgb, dlib.teacher.shape(rgb, box))
        reps = max(10, cfg.latency_repeats // 10)
        out["dlib_embed_ms"] = _median_ms(lambda: dlib.teacher.embed_chip(chip), reps, warmup=2)
        out["dlib_front_end_ms"] = _median_ms(lambda: dlib.detector(rgb, 1), reps, warmup=2)
    return out


# ------------------------------------------------------------------------------------------------------ report
def _pct(v: float) -> str:
    return f"{v:.4f}"


def report(results: Dict[str, Dict[str, VerificationResult]], trips: Dict[str, RoundTrip],
           latency: Dict[str, float], meta: Dict) -> str:
    lines = [f"Machine: {machine_line()}",
             f"People: {meta['identities']} | photos: {meta['photos']} | pairs: {meta['pairs']} "
             f"({meta['pairs'] // 2} genuine) | mask seed {meta['mask_seed']}",
             f"Faces not found by the SDK front end (count as failed): {meta['failures']}", "",
             "| recogniser | clean–clean | masked–clean | masked–masked |", "|---|---|---|---|"]
    for name, per_cond in results.items():
        cells = " | ".join(f"{per_cond[c].accuracy:.4f} ± {per_cond[c].accuracy_std:.4f}" for c in CONDITIONS)
        lines.append(f"| {name} | {cells} |")
    fars = [k for k in next(iter(next(iter(results.values())).values())).tar_at_far]
    lines += ["", "| recogniser | pairs | ROC AUC | " + " | ".join(f"TAR@FAR={f}" for f in fars) + " |",
              "|" + "---|" * (3 + len(fars))]
    for name, per_cond in results.items():
        for cond, r in per_cond.items():
            tars = " | ".join(f"{r.tar_at_far[f]:.4f}" if np.isfinite(r.tar_at_far[f]) else "n/a" for f in fars)
            lines.append(f"| {name} | {cond} | {r.auc:.4f} | {tars} |")
    if trips:
        t0 = next(iter(trips.values()))
        lines += ["", f"SDK round trip: {t0.enrolled} people enrolled with one clean photo, {t0.known} probes of them "
                      f"and {t0.unknown} of {meta['identities'] - t0.enrolled} people not enrolled, each clean and "
                      "masked.", "",
                  "| recogniser | match rule | rank-1 clean | rank-1 masked | open-set acc. clean | open-set acc. masked |",
                  "|---|---|---|---|---|---|"]
        for name, t in trips.items():
            total = t.known + t.unknown
            lines.append(f"| {name} | {t.threshold} | {t.rank1['clean']}/{t.known} | {t.rank1['masked']}/{t.known} "
                         f"| {t.open_set['clean'] / total:.4f} | {t.open_set['masked'] / total:.4f} |")
        flags = [(name, t.flagged) for name, t in trips.items() if t.flagged]
        if flags:
            name, flagged = flags[0]
            lines += ["", f"Mask flag on the probes ({name}): {flagged['clean']} clean and {flagged['masked']} masked "
                          f"probe(s) flagged masked, of {t0.known + t0.unknown} each (a probe without a face is not "
                          "counted)"]
    names = {"sface": "OpenCV SFace (the shared file: int8 weights, dequantised at run time)",
             "sface_float": "OpenCV SFace (the same graph with float32 weights)", "dlib": "dlib ResNet"}
    lines += ["", "| recogniser | embed ms/face (CPU, batch 1, 1 thread) |", "|---|---|"]
    lines += [f"| {names.get(key[:-len('_embed_ms')], key[:-len('_embed_ms')])} | {value:.2f} |"
              for key, value in latency.items() if key.endswith("_embed_ms")]
    lines.append(f"\nSDK face preparation (default detector + alignment): {latency['sdk_detect_align_ms']:.2f} ms"
                 + (f"; dlib's HOG detection: {latency['dlib_front_end_ms']:.2f} ms" if "dlib_front_end_ms" in latency
                    else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ run
def run(cfg: AccuracyConfig, json_path: Optional[Path] = None) -> Dict:
    for label, path in cfg.models:
        if not path.is_file():
            raise SystemExit(f"model {label} not found: {path} (train and export one, or pass --model)")
    identities = resolve_identities(cfg, ModelSidecar.load(sidecar_path_for(cfg.models[0][1])))
    check_never_trained_on(cfg, identities)
    photos = load_photos(cfg, identities)
    pairs = generate_pairs(photos.labels, cfg.pairs, seed=cfg.mask_seed, n_folds=cfg.folds)
    crops = sdk_front_end(photos)
    embeddings: Dict[str, Tuple[PhotoEmbeddings, str]] = {}
    for label, path in cfg.models:
        backend = load_backend(path, backend="onnxruntime")
        dim = backend.sidecar.embedding_dim
        embed = lambda faces: backend.infer(faces)[0]  # noqa: E731
        embeddings[label] = (PhotoEmbeddings(embed_rows(embed, crops.clean, crops.ok_clean, dim),
                                             embed_rows(embed, crops.masked, crops.ok_masked, dim)), "cosine")
    if cfg.sface is not None:
        sface = SFace(cfg.sface)
        embeddings["OpenCV SFace"] = (PhotoEmbeddings(embed_rows(sface, crops.clean, crops.ok_clean, sface.dim),
                                                      embed_rows(sface, crops.masked, crops.ok_masked, sface.dim)),
                                      "cosine")
    dlib = DlibPeer() if cfg.dlib else None
    if dlib is not None:
        embeddings["dlib ResNet (clean-photo landmarks)"] = (dlib.best_case(photos.clean, photos.masked, photos.boxes),
                                                             "neg_l2")
    results = {name: evaluate(emb, pairs, metric, cfg) for name, (emb, metric) in embeddings.items()}

    trips: Dict[str, RoundTrip] = {}
    if cfg.round_trip:
        split = split_gallery(photos.labels, cfg.unknown_every)
        for label, path in cfg.models:
            trips[label] = round_trip_sdk(path, photos, split)["tagged"]
        for count in cfg.masked_templates:  # the first model again, with synthetic masked templates at enrolment
            label, path = cfg.models[0]
            for rule, trip in round_trip_sdk(path, photos, split, count).items():
                trips[f"{label} + {count} masked templates, {rule}"] = trip
        if cfg.sface is not None:
            trips["OpenCV SFace"] = round_trip_embeddings(embeddings["OpenCV SFace"][0], photos.labels, split,
                                                          "cosine", SFACE_COSINE_THRESHOLD)
        if dlib is not None:
            own = PhotoEmbeddings(dlib.own_front_end_all(photos.clean), dlib.own_front_end_all(photos.masked))
            trips["dlib ResNet (HOG front end)"] = round_trip_embeddings(own, photos.labels, split, "neg_l2",
                                                                          -DLIB_DISTANCE_THRESHOLD)
    sample = int(np.flatnonzero(crops.ok_clean & np.array([b is not None for b in photos.boxes]))[0])
    latency = measure_latency(cfg, crops.clean[sample], photos.clean[sample], photos.boxes[sample], dlib)
    failures = {"clean_no_face": int((~crops.ok_clean).sum()), "masked_no_face": int((~crops.ok_masked).sum())}
    meta = {"models": {label: str(path.name) for label, path in cfg.models}, "identities": len(identities),
            "photos": len(photos.paths), "pairs": len(pairs.same), "mask_seed": cfg.mask_seed, "failures": failures,
            "machine": machine_info(), "data": str(cfg.data)}
    text = report(results, trips, latency, meta)
    if json_path:
        payload = {"meta": meta, "latency_ms": latency,
                   "results": {k: {c: r.to_dict() for c, r in v.items()} for k, v in results.items()},
                   "round_trip": {k: t.to_dict() for k, t in trips.items()}}
        atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    return {"text": text, "results": results, "round_trip": trips, "latency": latency, "meta": meta}


def _model_arg(value: str) -> Tuple[str, Path]:
    path, _, label = value.partition("=")
    return (label or Path(path).stem), Path(path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="image folder <identity>/<photo> (raw photos)")
    p.add_argument("--model", type=_model_arg, action="append", metavar="PATH[=LABEL]",
                   help="exported .onnx with its .json sidecar; repeat for several (default: the shipped models)")
    p.add_argument("--identities-file", type=Path, help="one identity per line (default: the model's val people)")
    p.add_argument("--pairs", type=int, default=6000)
    p.add_argument("--mask-seed", type=int, default=AccuracyConfig.mask_seed)
    p.add_argument("--limit-per-identity", type=int, default=0)
    p.add_argument("--sface", type=Path, default=DEFAULT_SFACE_ONNX, help="OpenCV SFace ONNX (the peer)")
    p.add_argument("--no-sface", action="store_true", help="skip the SFace peer")
    p.add_argument("--no-dlib", action="store_true", help="skip the dlib peer")
    p.add_argument("--no-round-trip", action="store_true", help="skip the SDK round trip")
    p.add_argument("--masked-templates", type=int, nargs="*", default=[], metavar="N",
                   help="also run the first model's round trip with N synthetic masked templates per enrolment photo "
                        "(scored with tagged and untagged gallery search)")
    p.add_argument("--json", type=Path, help="write results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ids = args.identities_file.read_text().split() if args.identities_file else []
    cfg = AccuracyConfig(data=args.data, identities=ids, pairs=args.pairs, mask_seed=args.mask_seed,
                         sface=None if args.no_sface else args.sface, dlib=not args.no_dlib,
                         round_trip=not args.no_round_trip, limit_per_identity=args.limit_per_identity,
                         masked_templates=tuple(args.masked_templates))
    if args.model:
        cfg.models = list(args.model)
    print(run(cfg, args.json)["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
