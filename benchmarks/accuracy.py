"""Masked face verification: the shipped G2D model and dlib's recogniser side by side, on people not trained on.

For every photo of the evaluation people (by default the validation identities recorded in the model's sidecar)
a synthetic mask is drawn on the *raw photo* (Face Mesh landmarks of the clean photo, a seed different from
training). Then:

- g2d-edge runs its own pipeline on the clean and on the masked photo: MediaPipe detection -> shared 112x112
  aligner -> ONNX Runtime. Detection runs on the masked photo itself, as a camera would see it.
- dlib gets its best case: its 5-point landmarks from the *clean* photo, used to cut its 150x150 chip from both
  the clean and the masked photo; its native score (negative L2 distance) is used.

Genuine/impostor pairs are generated from the folder (balanced, seeded); clean-clean, masked-clean (masked probe vs
clean reference) and masked-masked pairs are scored. A face that cannot be found counts as a *failed* pair (a
genuine pair rejected, an impostor pair accepted), never a skipped one. Reports 10-fold accuracy, ROC AUC,
TAR@FAR=1e-2/1e-3 and per-face CPU latency (batch 1, one thread) of each, as Markdown and JSON, with the machine.

    python benchmarks/accuracy.py                      # shipped model, its validation people
    python benchmarks/accuracy.py --model m.onnx --identities-file ids.txt --json out.json
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from benchmarks._timing import median_seconds  # noqa: E402
from g2d_edge.align import align_face  # noqa: E402
from g2d_edge.backends import load_backend  # noqa: E402
from g2d_edge.detect import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for  # noqa: E402
from train.evaluate import (VerificationResult, evaluate_verification, generate_pairs,  # noqa: E402
                            list_identity_images)
from train.masks import MaskOptions, MaskSynthesizer  # noqa: E402
from train.prepare import create_face_mesh, mesh_landmarks  # noqa: E402

log = logging.getLogger("benchmarks.accuracy")

DEFAULT_DATA = REPO.parent / "shared" / "data" / "celeba-train"
DEFAULT_MODEL = REPO / "g2d_edge" / "models" / "g2d-edge-s.onnx"
CONDITIONS = ("unmasked-unmasked", "masked-unmasked", "masked-masked")


@dataclass
class AccuracyConfig:
    """What the benchmark runs on."""

    data: Path = DEFAULT_DATA
    model: Path = DEFAULT_MODEL
    identities: List[str] = field(default_factory=list)  # empty: the model sidecar's validation identities
    pairs: int = 6000
    mask_seed: int = 904_117  # differs from every training seed
    fars: Tuple[float, ...] = (1e-2, 1e-3)
    folds: int = 10
    dlib: bool = True
    latency_repeats: int = 200
    limit_per_identity: int = 0


@dataclass
class PhotoEmbeddings:
    """Embeddings of every photo, clean and masked, for one recogniser (NaN rows: no face found)."""

    clean: np.ndarray
    masked: np.ndarray


def resolve_identities(cfg: AccuracyConfig, sidecar: ModelSidecar) -> List[str]:
    """The people to evaluate: given explicitly, or the validation people the model was never trained on."""
    if cfg.identities:
        return list(cfg.identities)
    ids = sidecar.data_summary.get("val_identities") or []
    if not ids:
        raise SystemExit("the model's sidecar records no validation identities; pass --identities-file "
                         "(people the model was NOT trained on)")
    return [str(i) for i in ids]


def prepare_photos(cfg: AccuracyConfig, identities: Sequence[str]):
    """Photos of the evaluation people with labels."""
    paths, labels, names = list_identity_images(cfg.data)
    wanted = set(identities)
    missing = wanted - set(names)
    if missing:
        raise SystemExit(f"{len(missing)} evaluation identities are not folders of {cfg.data}: {sorted(missing)[:5]}")
    keep = [i for i, lab in enumerate(labels) if names[lab] in wanted]
    if cfg.limit_per_identity:
        taken: Dict[int, int] = {}
        limited = []
        for i in keep:
            if taken.get(labels[i], 0) < cfg.limit_per_identity:
                taken[labels[i]] = taken.get(labels[i], 0) + 1
                limited.append(i)
        keep = limited
    return [paths[i] for i in keep], labels[keep]


def run_pipelines(cfg: AccuracyConfig, paths: Sequence[Path]):
    """Mask every photo and embed it with both recognisers.

    Returns (dlib teacher or None, g2d embeddings, dlib embeddings or None, failures, example images, one aligned crop).
    """
    backend = load_backend(cfg.model, backend="onnxruntime")
    synth = MaskSynthesizer(MaskOptions())
    mesh = create_face_mesh()
    teacher = None
    if cfg.dlib:
        from train.teacher import DlibTeacher

        teacher = DlibTeacher()
    n = len(paths)
    crops_clean = np.zeros((n, 112, 112, 3), np.uint8)
    crops_masked = np.zeros((n, 112, 112, 3), np.uint8)
    ok_clean = np.zeros(n, bool)
    ok_masked = np.zeros(n, bool)
    dlib_clean = np.full((n, 128), np.nan, np.float32)
    dlib_masked = np.full((n, 128), np.nan, np.float32)
    examples = []
    with FaceDetector(DetectorOptions()) as detector:
        for i, path in enumerate(tqdm(paths, desc="mask + detect + align", mininterval=5)):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("unreadable photo %s counts as failed", path)
                continue
            faces = detector.detect(image)
            if not faces:
                continue  # no clean face: every pair with this photo fails, for both recognisers
            face = faces[0]
            rng = np.random.default_rng([cfg.mask_seed, i])
            masked, _ = synth.synth(image, rng, mesh=mesh_landmarks(mesh, image), keypoints=face.keypoints)
            crops_clean[i], ok_clean[i] = align_face(image, face.keypoints), True
            masked_faces = detector.detect(masked)
            if masked_faces:
                crops_masked[i], ok_masked[i] = align_face(masked, masked_faces[0].keypoints), True
            if len(examples) < 8:
                examples.append(np.hstack([cv2.resize(image, (144, 144)), cv2.resize(masked, (144, 144))]))
            if teacher is not None:
                rgb, rgb_masked = image[:, :, ::-1].copy(), masked[:, :, ::-1].copy()
                shape = teacher.shape(rgb, face.box)  # dlib's best case: landmarks of the clean photo
                dlib_clean[i] = teacher.embed_chip(teacher.chip(rgb, shape))
                dlib_masked[i] = teacher.embed_chip(teacher.chip(rgb_masked, shape))
    emb_clean = _embed(backend, crops_clean, ok_clean)
    emb_masked = _embed(backend, crops_masked, ok_masked)
    g2d = PhotoEmbeddings(emb_clean, emb_masked)
    dl = PhotoEmbeddings(dlib_clean, dlib_masked) if teacher is not None else None
    failures = {"g2d_clean_no_face": int((~ok_clean).sum()), "g2d_masked_no_face": int((~ok_masked).sum())}
    return teacher, g2d, dl, failures, examples, crops_clean[ok_clean][:1]


def _embed(backend, crops: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.full((len(crops), backend.sidecar.embedding_dim), np.nan, np.float32)
    if ok.any():
        out[ok] = backend.infer(crops[ok])[0]
    return out


def score_pairs(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, metric: str) -> np.ndarray:
    """Scores of pairs (higher = more alike): cosine for g2d-edge, negative L2 distance for dlib (its own metric)."""
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


def _median_ms(fn, repeats: int, warmup: int = 5) -> float:
    return median_seconds(fn, warmup, repeats) * 1000


def measure_latency(cfg: AccuracyConfig, teacher, sample_crop: np.ndarray, sample_photo: Path) -> Dict[str, float]:
    """Per-face CPU latency at batch 1 on one thread: the recogniser alone, and with its face preparation."""
    backend = load_backend(cfg.model, backend="onnxruntime", intra_op_threads=1)
    out = {"g2d_embed_ms": _median_ms(lambda: backend.infer(sample_crop[:1]), cfg.latency_repeats)}
    image = cv2.imread(str(sample_photo))
    with FaceDetector(DetectorOptions()) as det:
        face = det.detect(image)[0]
        out["g2d_detect_align_ms"] = _median_ms(lambda: align_face(image, det.detect(image)[0].keypoints),
                                                cfg.latency_repeats)
    if teacher is not None:
        rgb = image[:, :, ::-1].copy()
        shape = teacher.shape(rgb, face.box)
        chip = teacher.chip(rgb, shape)
        reps = max(10, cfg.latency_repeats // 10)
        out["dlib_embed_ms"] = _median_ms(lambda: teacher.embed_chip(chip), reps, warmup=2)
        out["dlib_landmarks_chip_ms"] = _median_ms(lambda: teacher.chip(rgb, teacher.shape(rgb, face.box)), reps)
    return out


def report(results: Dict[str, Dict[str, VerificationResult]], latency: Dict[str, float], meta: Dict) -> str:
    lines = [f"Machine: {machine_line()}", f"Model: {meta['model']} | people: {meta['identities']} | photos: "
             f"{meta['photos']} | pairs: {meta['pairs']} ({meta['pairs'] // 2} genuine) | mask seed {meta['mask_seed']}",
             f"Faces not found by g2d-edge (count as failed pairs): {meta['failures']}", ""]
    fars = [k for k in next(iter(next(iter(results.values())).values())).tar_at_far]
    head = "| recogniser | pairs | 10-fold acc | ROC AUC | " + " | ".join(f"TAR@FAR={f}" for f in fars) + " |"
    lines += [head, "|" + "---|" * (4 + len(fars))]
    for name, per_cond in results.items():
        for cond, r in per_cond.items():
            tars = " | ".join(f"{r.tar_at_far[f]:.4f}" if np.isfinite(r.tar_at_far[f]) else "n/a" for f in fars)
            lines.append(f"| {name} | {cond} | {r.accuracy:.4f} ± {r.accuracy_std:.4f} | {r.auc:.4f} | {tars} |")
    lines += ["", "| recogniser | embed ms/face (CPU, batch 1, 1 thread) | face preparation ms |", "|---|---|---|",
              f"| g2d-edge (ONNX Runtime) | {latency['g2d_embed_ms']:.2f} | {latency['g2d_detect_align_ms']:.2f} "
              "(MediaPipe detect + align) |"]
    if "dlib_embed_ms" in latency:
        lines.append(f"| dlib ResNet | {latency['dlib_embed_ms']:.2f} | {latency['dlib_landmarks_chip_ms']:.2f} "
                     "(5-point landmarks + chip) |")
        lines.append(f"\nSpeed-up of the recogniser: {latency['dlib_embed_ms'] / latency['g2d_embed_ms']:.1f}x")
    return "\n".join(lines)


def run(cfg: AccuracyConfig, json_path: Optional[Path] = None, examples_path: Optional[Path] = None) -> Dict:
    if not cfg.model.is_file():
        raise SystemExit(f"model not found: {cfg.model} (train and export one, or pass --model)")
    sidecar = ModelSidecar.load(sidecar_path_for(cfg.model))
    identities = resolve_identities(cfg, sidecar)
    paths, labels = prepare_photos(cfg, identities)
    pairs = generate_pairs(labels, cfg.pairs, seed=cfg.mask_seed, n_folds=cfg.folds)
    teacher, g2d, dl, failures, examples, sample = run_pipelines(cfg, paths)
    results = {"g2d-edge": evaluate(g2d, pairs, "cosine", cfg)}
    if dl is not None:
        failures["dlib_no_face"] = int(np.isnan(dl.clean[:, 0]).sum())
        results["dlib"] = evaluate(dl, pairs, "neg_l2", cfg)
    latency = measure_latency(cfg, teacher, sample, paths[0])
    meta = {"model": str(cfg.model.name), "identities": len(identities), "photos": len(paths), "pairs": len(pairs.same),
            "mask_seed": cfg.mask_seed, "failures": failures, "machine": machine_info(), "data": str(cfg.data)}
    text = report(results, latency, meta)
    if json_path:
        payload = {"meta": meta, "latency_ms": latency,
                   "results": {k: {c: r.to_dict() for c, r in v.items()} for k, v in results.items()}}
        Path(json_path).write_text(json.dumps(payload, indent=2) + "\n")
    if examples_path and examples:
        cv2.imwrite(str(examples_path), np.vstack([np.hstack(examples[i:i + 4]) for i in range(0, len(examples) - 3, 4)]))
    return {"text": text, "results": results, "latency": latency, "meta": meta}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="image folder <identity>/<photo> (raw photos)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="exported .onnx with its .json sidecar")
    p.add_argument("--identities-file", type=Path, help="one identity per line (default: the model's val people)")
    p.add_argument("--pairs", type=int, default=6000)
    p.add_argument("--mask-seed", type=int, default=AccuracyConfig.mask_seed)
    p.add_argument("--limit-per-identity", type=int, default=0)
    p.add_argument("--no-dlib", action="store_true", help="skip the dlib baseline")
    p.add_argument("--json", type=Path, help="write results as JSON here")
    p.add_argument("--examples", type=Path, help="write a PNG of clean|masked example photos here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ids = args.identities_file.read_text().split() if args.identities_file else []
    cfg = AccuracyConfig(data=args.data, model=args.model, identities=ids, pairs=args.pairs, mask_seed=args.mask_seed,
                         dlib=not args.no_dlib, limit_per_identity=args.limit_per_identity)
    print(run(cfg, args.json, args.examples)["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
