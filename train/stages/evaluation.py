"""`g2d-train eval` and the threshold calibration after the classifier stage.

Embeds faces with a trained network (clean, and with masks synthesised under a seed kept apart from training),
scores verification pairs in three conditions (unmasked-unmasked, masked-unmasked, masked-masked) with the metrics
of `train.evaluate`, and measures closed-set identification. Pairs come from:

* a prepared cache (default: the held-out identities of the hold-out source, as recorded in the checkpoint),
* an image folder `root/<identity>/<image>` (generated pairs, on-the-fly detection + alignment), or
* an LFW `pairs.txt` over an image folder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from .. import evaluate as ev
from ..config import EvalConfig, TrainConfig
from ..data import (DataError, compute_holdout, item_rng, load_aligned_cache,
                    make_mask_synthesizer, row_identities)
from ..model import G2DModel, Preprocess
from ..prepare import AlignedCache

log = logging.getLogger(__name__)


@torch.no_grad()
def embed_faces(model: G2DModel, faces: np.ndarray, device: Union[str, torch.device] = "cpu",
                batch_size: int = 128) -> Tuple[np.ndarray, np.ndarray]:
    """(embeddings (N, D), logits (N, C)) float32 of aligned uint8 BGR faces (N, 112, 112, 3); model in eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    pre = Preprocess().to(device)
    embs, logits = [], []
    try:
        for s in range(0, len(faces), batch_size):
            x = pre(torch.from_numpy(np.ascontiguousarray(faces[s:s + batch_size])).to(device))
            e, lg = model(x)
            embs.append(e.float().cpu().numpy())
            logits.append(lg.float().cpu().numpy())
    finally:
        model.train(was_training)
    dim = model.config.embedding_dim
    if not embs:
        return np.zeros((0, dim), np.float32), np.zeros((0, model.config.num_classes), np.float32)
    return np.concatenate(embs), np.concatenate(logits)


def mask_faces(faces: np.ndarray, seed: int, options: Dict[str, Any], mesh: Optional[np.ndarray] = None,
               keypoints: Optional[np.ndarray] = None, ids: Optional[Sequence[int]] = None) -> np.ndarray:
    """A masked copy of every face; face i's mask depends only on (seed, ids[i]) (ids default: 0..N-1)."""
    synth = make_mask_synthesizer(options)
    out = np.empty_like(faces)
    ids = range(len(faces)) if ids is None else ids
    for i, key in enumerate(ids):
        m = None if mesh is None or not np.isfinite(mesh[i]).all() else mesh[i]
        k = None if keypoints is None or not np.isfinite(keypoints[i]).all() else keypoints[i]
        out[i], _ = synth.synth(faces[i], item_rng(seed, 0, 0, int(key)), mesh=m, keypoints=k)
    return out


@dataclass
class EvalReport:
    """Results of one evaluation: verification per condition, identification, and how they were obtained."""

    verification: Dict[str, ev.VerificationResult] = field(default_factory=dict)
    identification: Dict[str, ev.IdentificationResult] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    #: (clean embeddings, masked embeddings, pairs) behind `verification` (kept in memory, not written)
    scored: Optional[Tuple[np.ndarray, np.ndarray, ev.IndexPairs]] = None

    def table(self) -> str:
        """Markdown tables of the results."""
        text = ev.format_table(self.verification) if self.verification else ""
        if self.identification:
            text += "\n| Identification | Probes | Identities | Top-1 |\n|---|---|---|---|\n"
            for name, r in self.identification.items():
                text += f"| {name} | {r.n_probes} | {r.n_identities} | {r.top1:.4f} |\n"
        return text

    def write_json(self, path: Union[str, Path]) -> Path:
        """`{"results": {"verification": ..., "identification": ...}, "meta": ...}` via `write_results_json`."""
        return ev.write_results_json(path, {"verification": self.verification,
                                            "identification": self.identification}, self.meta)


def _verify(model: G2DModel, faces: np.ndarray, masked: np.ndarray, labels: np.ndarray, ecfg: EvalConfig,
            device: torch.device, report: EvalReport) -> Tuple[np.ndarray, np.ndarray, ev.IndexPairs]:
    clean_emb, _ = embed_faces(model, faces, device, ecfg.batch_size)
    masked_emb, _ = embed_faces(model, masked, device, ecfg.batch_size)
    pairs = ev.generate_pairs(labels, ecfg.pairs, seed=ecfg.mask_seed, n_folds=ecfg.folds)
    report.verification.update(ev.evaluate_conditions(clean_emb, masked_emb, pairs, fars=ecfg.far,
                                                      n_folds=ecfg.folds, seed=ecfg.mask_seed))
    report.meta["pairs"] = len(pairs)
    return clean_emb, masked_emb, pairs


def choose_threshold(clean_emb: np.ndarray, masked_emb: np.ndarray, pairs: ev.IndexPairs, far: float = 0.0
                     ) -> Tuple[float, Optional[float]]:
    """The default "same person" threshold for the SDK, from held-out pairs.

    The SDK compares a live face (masked or not) with clean enrolment photos, so the unmasked-unmasked and the
    masked-unmasked scores are pooled. far > 0: the threshold of that false-accept rate; else the best-accuracy one.
    Returns (threshold, far or None).
    """
    scores = ev.condition_scores(clean_emb, masked_emb, pairs)
    s = np.concatenate([scores[ev.CONDITION_CLEAN], scores[ev.CONDITION_MIXED]])
    same = np.concatenate([pairs.same, pairs.same]).astype(bool)
    keep = np.isfinite(s)
    s, same = s[keep], same[keep]
    if far > 0:
        try:
            return float(ev.threshold_at_far(s[~same], far)), float(far)
        except ValueError as exc:
            log.warning("threshold at FAR %g not resolvable (%s); using the best-accuracy threshold", far, exc)
    return float(ev.best_threshold(s, same)[0]), None


def _class_index(class_names: Sequence[str], source: str) -> Dict[str, int]:
    index = {}
    for k, name in enumerate(class_names):
        plain = name.split("/", 1)[1] if name.startswith(source + "/") else name
        index[plain] = k
    return index


def evaluate_cache(model: G2DModel, meta: Dict[str, Any], cfg: TrainConfig, cache: AlignedCache,
                   device: torch.device, held_out: Optional[Sequence[str]] = None, source: str = "") -> EvalReport:
    """Verification on the identities `held_out` of `cache` (all labelled rows when None) and identification:

    * "heldout-templates-masked" / "-clean": one clean photo per held-out person enrols, the other photos, masked /
      clean, are identified against those templates;
    * "classifier-masked" / "-clean": the classifier's top-1 on photos of the training identities (with the
      evaluation masks: people seen in training, masks not), when the model has a classifier.
    """
    ecfg = cfg.eval
    mask_opts = {**cfg.data.masks, **ecfg.mask}
    report = EvalReport(meta={"source": source, "mask_seed": ecfg.mask_seed, "mask_options": mask_opts,
                              "checkpoint_stage": meta.get("stage"), "config_hash": meta.get("config_hash")})
    idents = row_identities(cache)
    labelled = cache.labels >= 0
    if held_out is None:
        eval_rows = np.flatnonzero(labelled)
    else:
        eval_rows = np.flatnonzero(np.isin(idents, list(held_out)))
    if eval_rows.size == 0:
        raise DataError("no photos of the evaluation identities in the cache")
    faces = cache.images[eval_rows]
    masked = mask_faces(faces, ecfg.mask_seed, mask_opts, cache.mesh[eval_rows], cache.keypoints[eval_rows],
                        ids=eval_rows)
    labels = cache.labels[eval_rows]
    report.meta.update(identities=int(np.unique(labels).size), photos=int(eval_rows.size))
    clean_emb, masked_emb, pairs = _verify(model, faces, masked, labels, ecfg, device, report)
    try:
        gallery, probe = ev.split_gallery_probe(labels, n_gallery=1, seed=ecfg.mask_seed)
        for name, emb in (("masked", masked_emb), ("clean", clean_emb)):
            report.identification[f"heldout-templates-{name}"] = ev.identify(
                clean_emb[gallery], labels[gallery], emb[probe], labels[probe])
    except ValueError as exc:
        log.warning("template identification skipped: %s", exc)
    class_names = list(meta.get("class_names") or [])
    if model.classifier is not None and class_names:
        index = _class_index(class_names, source)
        train_rows = np.flatnonzero(labelled & np.isin(idents, list(index)))
        if train_rows.size:
            if train_rows.size > ecfg.pairs:
                train_rows = np.sort(np.random.default_rng(ecfg.mask_seed).choice(train_rows, ecfg.pairs, False))
            truth = np.array([index[n] for n in idents[train_rows]], np.int64)
            tfaces = cache.images[train_rows]
            tmasked = mask_faces(tfaces, ecfg.mask_seed + 1, mask_opts, cache.mesh[train_rows],
                                 cache.keypoints[train_rows], ids=train_rows)
            for name, batch in (("masked", tmasked), ("clean", tfaces)):
                _, logits = embed_faces(model, batch, device, ecfg.batch_size)
                report.identification[f"classifier-{name}"] = ev.IdentificationResult(
                    top1=ev.top1_accuracy(logits, truth), n_probes=int(truth.size), n_identities=len(class_names))
    report.scored = (clean_emb, masked_emb, pairs)
    return report


def _aligned_folder_faces(paths: Sequence[Path], cfg: TrainConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(faces, keypoints, ok) for image files, detected + aligned like `prepare` does; failures are counted."""
    from ..data import FaceAligner, detector_options

    aligner = FaceAligner(detector_options(cfg.data))
    faces = np.zeros((len(paths), 112, 112, 3), np.uint8)
    kps = np.full((len(paths), 6, 2), np.nan, np.float32)
    ok = np.zeros(len(paths), bool)
    for i in tqdm(range(len(paths)), desc="eval: detect + align", disable=None, mininterval=2):
        crop, k, reason = aligner(paths[i])
        if crop is None:
            log.warning("eval: skipping %s: %s", paths[i], reason)
            continue
        faces[i], kps[i], ok[i] = crop, k, True
    return faces, kps, ok


def evaluate_pairs(model: G2DModel, meta: Dict[str, Any], cfg: TrainConfig, pairs: ev.PathPairs,
                   device: torch.device) -> EvalReport:
    """Verification of image-file pairs (generated from a folder or read from an LFW pairs.txt)."""
    ecfg = cfg.eval
    mask_opts = {**cfg.data.masks, **ecfg.mask}
    paths, index_pairs = pairs.to_index_pairs()
    faces, kps, ok = _aligned_folder_faces(paths, cfg)
    masked = mask_faces(faces, ecfg.mask_seed, mask_opts, keypoints=kps)
    clean_emb, _ = embed_faces(model, faces, device, ecfg.batch_size)
    masked_emb, _ = embed_faces(model, masked, device, ecfg.batch_size)
    clean_emb[~ok] = np.nan
    masked_emb[~ok] = np.nan
    report = EvalReport(meta={"images": len(paths), "unusable_images": int((~ok).sum()), "pairs": len(index_pairs),
                              "mask_seed": ecfg.mask_seed, "mask_options": mask_opts,
                              "checkpoint_stage": meta.get("stage"), "config_hash": meta.get("config_hash")})
    report.verification.update(ev.evaluate_conditions(clean_emb, masked_emb, index_pairs, fars=ecfg.far,
                                                      n_folds=ecfg.folds, seed=ecfg.mask_seed))
    return report


def calibrate_threshold(model: G2DModel, meta: Dict[str, Any], cfg: TrainConfig, device: torch.device
                        ) -> Dict[str, Any]:
    """Threshold + validation metrics on the held-out identities (empty dict when nothing is held out)."""
    holdout = compute_holdout(cfg.data)
    if not holdout.held_out:
        log.info("no held-out identities: the default threshold is not calibrated (set data.val_identities)")
        return {}
    src = cfg.data.source(holdout.source)
    if not (src.cache and Path(src.cache).is_file()):
        log.warning("held-out source %s has no prepared cache: threshold not calibrated", holdout.source)
        return {}
    try:
        report = evaluate_cache(model, meta, cfg, load_aligned_cache(src.cache), device, holdout.held_out,
                                holdout.source)
    except ValueError as exc:
        log.warning("threshold not calibrated: %s", exc)
        return {}
    clean_emb, masked_emb, pairs = report.scored
    threshold, far = choose_threshold(clean_emb, masked_emb, pairs, cfg.eval.threshold_far)
    validation = {k: {"accuracy": v.accuracy, "auc": v.auc, "best_threshold": v.best_threshold}
                  for k, v in report.verification.items()}
    validation.update({k: {"top1": v.top1} for k, v in report.identification.items()})
    log.info("held-out validation (%d people): %s; threshold %.4f", len(holdout.held_out),
             ", ".join(f"{k} acc {v['accuracy']:.4f}" for k, v in validation.items() if "accuracy" in v), threshold)
    return {"threshold": threshold, "threshold_far": far, "validation": validation}


def run_eval(cfg: TrainConfig, checkpoint: Path, device: Union[str, torch.device] = "cpu",
             cache: Optional[Path] = None, all_identities: bool = False, folder: Optional[Path] = None,
             pairs_file: Optional[Path] = None) -> EvalReport:
    """Evaluate a checkpoint (see the module docstring for the three pair sources).

    cache: a prepared cache to evaluate (default: the config's hold-out source); its held-out identities are used
    (those recorded in the checkpoint) unless `all_identities`. folder: an image folder for generated pairs, or the
    image root of `pairs_file` (LFW pairs.txt).
    """
    from ..checkpoint import load_model

    model, meta = load_model(checkpoint, map_location=device)
    device = torch.device(device)
    if pairs_file is not None or folder is not None:
        if folder is None:
            raise DataError("LFW pairs need the image folder they refer to (--images)")
        if pairs_file is not None:
            pairs = ev.load_lfw_pairs(pairs_file, folder)
        else:
            pairs = ev.generate_folder_pairs(folder, cfg.eval.pairs, seed=cfg.eval.mask_seed, n_folds=cfg.eval.folds)
        report = evaluate_pairs(model, meta, cfg, pairs, device)
        report.meta.update(mode="lfw-pairs" if pairs_file else "folder", folder=str(folder),
                           pairs_file=str(pairs_file) if pairs_file else None)
    else:
        source = cfg.data.holdout_source or ""
        if cache is None:
            if not source:
                raise DataError("nothing to evaluate: give --cache, --images or configure data.sources")
            src = cfg.data.source(source)
            cache = Path(src.cache)
        held: Optional[List[str]] = None
        if not all_identities:
            held = list((meta.get("held_out") or {}).get("identities") or meta.get("val_identities") or [])
            if not held:
                raise DataError(f"{checkpoint} records no held-out identities (data.val_identities was 0): "
                                "evaluating on training people would be meaningless; pass --all-identities to "
                                "evaluate every identity of the cache anyway")
        report = evaluate_cache(model, meta, cfg, load_aligned_cache(cache), device, held, source)
        report.meta.update(mode="cache", cache=str(cache), held_out_only=not all_identities)
    report.meta["checkpoint"] = str(checkpoint)
    return report
