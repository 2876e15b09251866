"""`g2d-train eval`: embed faces with a trained network and score them.

Faces are embedded clean and with masks synthesised under a seed kept apart from training; verification pairs are
scored in three conditions (unmasked-unmasked, masked-unmasked, masked-masked) with the metrics of
`train.eval.metrics`, and closed-set identification is measured. Pairs come from:

* a prepared cache (default: the held-out identities of the hold-out source, as recorded in the checkpoint),
* an image folder `root/<identity>/<image>` (generated pairs, on-the-fly detection + alignment), or
* an LFW `pairs.txt` over an image folder.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from ..config import EvalConfig, TrainConfig
from ..data import DataError, item_rng, load_aligned_cache, make_mask_synthesizer, row_identities
from ..model import G2DModel, Preprocess
from ..prepare import AlignedCache
from .metrics import IdentificationResult, identify, split_gallery_probe, top1_accuracy
from .pairs import IndexPairs, PathPairs, generate_folder_pairs, generate_pairs, load_lfw_pairs
from .report import EvalReport
from .scores import evaluate_conditions

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


def _verify(model: G2DModel, faces: np.ndarray, masked: np.ndarray, labels: np.ndarray, ecfg: EvalConfig,
            device: torch.device, report: EvalReport) -> Tuple[np.ndarray, np.ndarray, IndexPairs]:
    clean_emb, _ = embed_faces(model, faces, device, ecfg.batch_size)
    masked_emb, _ = embed_faces(model, masked, device, ecfg.batch_size)
    pairs = generate_pairs(labels, ecfg.pairs, seed=ecfg.mask_seed, n_folds=ecfg.folds)
    report.verification.update(evaluate_conditions(clean_emb, masked_emb, pairs, fars=ecfg.far,
                                                      n_folds=ecfg.folds, seed=ecfg.mask_seed))
    report.meta["pairs"] = len(pairs)
    return clean_emb, masked_emb, pairs


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
        gallery, probe = split_gallery_probe(labels, n_gallery=1, seed=ecfg.mask_seed)
        for name, emb in (("masked", masked_emb), ("clean", clean_emb)):
            report.identification[f"heldout-templates-{name}"] = identify(
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
                report.identification[f"classifier-{name}"] = IdentificationResult(
                    top1=top1_accuracy(logits, truth), n_probes=int(truth.size), n_identities=len(class_names))
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


def evaluate_pairs(model: G2DModel, meta: Dict[str, Any], cfg: TrainConfig, pairs: PathPairs,
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
    report.verification.update(evaluate_conditions(clean_emb, masked_emb, index_pairs, fars=ecfg.far,
                                                      n_folds=ecfg.folds, seed=ecfg.mask_seed))
    return report


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
            pairs = load_lfw_pairs(pairs_file, folder)
        else:
            pairs = generate_folder_pairs(folder, cfg.eval.pairs, seed=cfg.eval.mask_seed, n_folds=cfg.eval.folds)
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
