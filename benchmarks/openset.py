"""Open-set identification (the NIST FRVT 1:N way): strangers given a name (FPIR) and enrolled people missed (FNIR)
in galleries of 10 to 10,000 identities, for g2d-edge-m, g2d-edge-s and OpenCV SFace in one run.

**Data** (`train/openset_data.py`): the 100 CelebA people held out of training and the unlabelled faces-pool, every
photo through the SDK's front end (default detector, shared aligner), clean and with a synthetic mask; split into a
calibration part and a test part. Only the **test part** is used here; the calibration each model is judged with
was built on the other part (`g2d-train calibrate`, the one in its sidecar; SFace's is built the same way here); its
stranger cohort also holds photos of the people the models were trained on (`train.calibrate.stranger_cohort`), none
of whom is a test person.

**Galleries** (test part): 25 of the 50 test people are enrolled with their first 1, 3 or 5 clean photos (the
other 25 are strangers; then the roles swap), for 10 seeded random halvings (20 folds, `SPLITS`), plus faces-pool
distractors (one template each) up to 100, 1,000 or 10,000 identities; the 10-identity galleries enrol the first 10
of the 25 (the other 15 are neither enrolled nor probes). The test part holds 5,840 distractor faces (5,837 with a
face found); the 10,000 gallery adds the mirror images (left-right flipped aligned crops) of 4,138 of them,
near-duplicates of faces already there, so it is not as hard as 10,000 distinct people would be.
**Probes**: every other photo of the enrolled people (mated) and every photo of the strangers (non-mated), each clean
and masked; faces-pool faces are not probes (the pool holds a few faces of the same person, `train/calibrate.py`). A
probe without a detected face is a miss (mated) and names no one (non-mated).

**Intervals**: the SDK default's FPIR, FNIR and FNIR gap to the best threshold get 95 % intervals over the test
people (each person drawn again with all their probes, `people_intervals`): 50 people are a small sample of strangers.
With several models, each after the first is compared with the first on the same draws of people (`paired`): the
difference of their best-threshold FNIR at FPIR 1 % in each cell of their own searches, with its 95 % interval.
**Scores**: FNIR at FPIR 1 % and 0.1 % at the best threshold for that gallery found on the test data itself (what
calibration can at most reach), and at the **SDK's defaults**: the threshold `g2d_edge.openset` decides for the
gallery at the default target FPIR 1 % (measured on each fold's gallery, a real `Gallery`, with the calibration's
stranger cohort: `g2d_edge.openset.cohort`), by each probe's mask flag (the shipped classifier), measured FPIR and
FNIR; for contrast the calibration's table by gallery size alone (`size_table`, the rule before the cohort) and the
old gallery-blind threshold (the sidecar's one-comparison threshold, OpenCV's 0.363 for SFace).
Both gallery searches are scored, each at the best threshold and at SDK-style defaults with a calibration made for
it by the same tool (`train.calibrate.calibrate_sets`): "max" (an identity scores its best template) and "mean" (its
fused template, the renormalised mean; calibrated with stranger probes against mean templates of 1-5 photos of the
other calibration people and the pool; its table counts identities). The "SDK default" columns and the DET plot are
each model's own search, its calibration's `fusion` (g2d-edge-m: mean; g2d-edge-s: max; SFace: mean, as the default
model); the other search is reported beside it.

    python benchmarks/openset.py --json benchmarks/results/openset-cpu.json --plot benchmarks/results/openset-det.png
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.peers import SFACE_COSINE_THRESHOLD  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.masks.flag import MaskFlag  # noqa: E402
from g2d_edge.gallery.file import Gallery  # noqa: E402
from g2d_edge.gallery.protocol import fused_templates  # noqa: E402
from g2d_edge.openset import DEFAULT_TARGET_FPIR, CohortThresholds, OpenSetRule  # noqa: E402
from g2d_edge.openset.rule import decide_threshold, mate_level  # noqa: E402
from g2d_edge.sidecar import PROBE_KINDS, ModelSidecar, sidecar_path_for  # noqa: E402
from train import openset_data as od  # noqa: E402
from train.calibrate import calibrate_sets  # noqa: E402
from train.sface import DEFAULT_SFACE_ONNX  # noqa: E402

log = logging.getLogger("benchmarks.openset")

MODELS_DIR = REPO / "g2d_edge" / "models"
GALLERY_SIZES = (10, 100, 1000, 10000)
TEMPLATES = (1, 3, 5)
FPIRS = (0.01, 0.001)
#: Decision rules compared at the best threshold: an identity's best template ("max") or its fused template ("mean"),
#: both also at the SDK's defaults with a calibration made for them; the margin between the best and the second-best
#: identity ("margin"), the best score normalised by the probe's scores against an impostor cohort, the
#: calibration part's pool faces ("cohort", Z-norm on the probe), and the average of an identity's fused-template and
#: best-template scores ("mean+max", the "mean plus best" fusion).
FUSIONS = ("max", "mean", "margin", "cohort", "mean+max")
#: The thresholds of a rule no calibration is made for (only its best threshold is reported).
UNDECIDED = {False: np.inf, True: np.inf}
DISTRACTOR_SEED = 5
#: The SDK default's figures get 95 % intervals over the test people, drawn again this many times (seeded).
RESAMPLES = 1000
RESAMPLE_SEED = 13
#: The test people are halved at random this many times (enrolled / strangers, then the roles swap): 20 galleries
#: per cell, so that no single look-alike pair of people decides a figure.
SPLITS = 10
SPLIT_SEED = 7


@dataclass
class Probes:
    """Probe embeddings of one kind with who they are (-1: a stranger of the pool) and their mask flag."""

    emb: np.ndarray  # (P, D), NaN rows: no face
    person: np.ndarray  # person index (into the held-out people) or -1
    flagged: np.ndarray  # mask flag says masked


def mask_flags(crops: od.Crops) -> Dict[str, np.ndarray]:
    """The shipped mask flag on every crop (False where no face)."""
    flag = MaskFlag()
    out = {}
    for kind in PROBE_KINDS:
        faces, ok = getattr(crops, kind), getattr(crops, f"ok_{kind}")
        flags = np.zeros(len(faces), bool)
        if ok.any():
            flags[ok] = flag.is_masked(flag.scores(faces[ok]))
        out[kind] = flags
    return out


def distractor_rows(sets: Dict[str, od.FaceSet], count: int) -> np.ndarray:
    """`count` distractor templates of the test part: distinct faces first (seeded order), then mirror images."""
    pool, mirror = sets["pool"], sets["mirror"]
    parts = od.pool_parts(pool.files)
    order = np.random.default_rng(DISTRACTOR_SEED).permutation(parts["test"])
    distinct = order[np.isfinite(pool.clean[order]).all(axis=1)]
    mirrored = order[np.isin(order, parts["mirrored"]) & np.isfinite(mirror.clean[order]).all(axis=1)]
    templates = np.concatenate([pool.clean[distinct], mirror.clean[mirrored]])
    if count > len(templates):
        raise SystemExit(f"the test part has {len(templates)} distractor templates, {count} asked for")
    return templates[:count]


def identity_scores(probes: np.ndarray, gallery: List[np.ndarray], fusion: str) -> np.ndarray:
    """(P, N) score of each probe against each identity (rows of NaN probes are -inf); `fusion` "max", "mean" or
    "mean+max" (the average of the two)."""
    if fusion == "mean+max":
        return 0.5 * (identity_scores(probes, gallery, "mean") + identity_scores(probes, gallery, "max"))
    templates = np.concatenate(gallery)
    starts = np.cumsum([0] + [len(t) for t in gallery[:-1]])
    if fusion == "mean":  # one fused template per identity, as the galleries make it
        templates, starts = fused_templates(templates, starts), np.arange(len(gallery))
    sims = np.nan_to_num(probes, nan=0.0) @ templates.T
    out = np.maximum.reduceat(sims, starts, axis=1)
    out[~np.isfinite(probes).all(axis=1)] = -np.inf
    return out


@dataclass
class Trial:
    """Top identity and score of every mated and non-mated probe of one gallery, with each probe's SDK threshold
    (measured on the gallery with the calibration's stranger cohort) and the size table's (the rule without it)."""

    mated_score: np.ndarray
    mated_right: np.ndarray
    mated_threshold: np.ndarray
    stranger_score: np.ndarray
    stranger_threshold: np.ndarray
    mated_alt: np.ndarray  # the thresholds of the calibration's table by gallery size (comparison)
    stranger_alt: np.ndarray
    mated_person: np.ndarray  # who each probe shows (a test person's label): the unit the intervals resample
    stranger_person: np.ndarray


@dataclass
class Rules:
    """The open-set rule of one gallery fusion: the calibration's table by size and its stranger cohort."""

    table: OpenSetRule
    cohort: Optional[CohortThresholds]


def sdk_thresholds(gallery: List[np.ndarray], rules: Rules, fusion: str) -> Tuple[Dict[bool, float], Dict[bool, float]]:
    """({masked flag: threshold} the SDK decides for this gallery, the same from the size table alone), through the
    SDK itself: a `Gallery` holding the templates, searched with `fusion` ("max" or "mean") by the cohort, and
    `decide_threshold` as `Thresholds` calls it."""
    counts = (len(gallery), sum(len(t) for t in gallery))
    table = {f: rules.table.decide(*counts, "masked" if f else "clean").threshold for f in (False, True)}
    if rules.cohort is None:
        return table, table
    g = Gallery()
    g.add_many({f"id{i}": t for i, t in enumerate(gallery)})
    measure = lambda kind, n: rules.cohort.threshold(g, kind, n)  # noqa: E731
    sdk = {f: decide_threshold(None, None, rules.table, 0.0, lambda: counts, "masked" if f else "clean",
                               measure).threshold for f in (False, True)}
    return sdk, table


def fold_gallery(people: od.FaceSet, enrolled: Sequence[int], k: int, size: int, distractors: np.ndarray
                 ) -> Tuple[List[np.ndarray], List[int], List[int]]:
    """(templates per identity, mated probe rows, their identity slot): the first `k` usable clean photos of each
    enrolled person (the first `size` of them where the fold enrols more), then distractors (one template each) up to
    `size` identities."""
    enrolled = enrolled[:size]
    gallery, probe_rows, probe_owner = [], [], []
    for slot, person in enumerate(enrolled):
        rows = np.flatnonzero(people.labels == person)
        usable = [r for r in rows if np.isfinite(people.clean[r]).all()]
        gallery.append(people.clean[usable[:k]])
        rest = [r for r in rows if r not in set(usable[:k])]
        probe_rows += rest
        probe_owner += [slot] * len(rest)
    gallery += [d[None] for d in distractors[:size - len(enrolled)]]
    return gallery, probe_rows, probe_owner


def run_fold(sets, flags, enrolled: Sequence[int], strangers: Sequence[int], size: int, k: int, kind: str,
             fusion: str, rules: Rules, distractors: np.ndarray, cohort: Dict[str, np.ndarray],
             thresholds: Tuple[Dict[bool, float], Dict[bool, float]]) -> Trial:
    people = sets["people"]
    gallery, probe_rows, probe_owner = fold_gallery(people, enrolled, k, size, distractors)
    emb = getattr(people, kind)
    stranger_rows = np.flatnonzero(np.isin(people.labels, list(strangers)))
    template_fusion = fusion if fusion in ("mean", "mean+max") else "max"
    mated = identity_scores(emb[probe_rows], gallery, template_fusion)
    strangers_scores = identity_scores(emb[stranger_rows], gallery, template_fusion)
    best = np.argmax(mated, axis=1)
    mated_t, stranger_t = [[np.array([t[bool(f)] for f in flags[kind][rows]]) for t in thresholds]
                           for rows in (probe_rows, stranger_rows)]
    return Trial(decision_score(mated, fusion, cohort[kind][np.array(probe_rows)]), best == np.array(probe_owner),
                 mated_t[0], decision_score(strangers_scores, fusion, cohort[kind][stranger_rows]), stranger_t[0],
                 mated_t[1], stranger_t[1], people.labels[np.array(probe_rows, dtype=np.int64)],
                 people.labels[stranger_rows])


def decision_score(scores: np.ndarray, fusion: str, cohort: np.ndarray) -> np.ndarray:
    """The score each probe's best identity is judged by (see `FUSIONS`); `cohort`: (P, 2) mean and deviation of each
    probe's scores against the impostor cohort."""
    top = np.sort(scores, axis=1)[:, ::-1]
    if fusion == "margin":
        return top[:, 0] - top[:, 1]
    if fusion == "cohort":
        return (top[:, 0] - cohort[:, 0]) / cohort[:, 1]
    return top[:, 0]


def cohort_stats(sets: Dict[str, od.FaceSet]) -> Dict[str, np.ndarray]:
    """{kind: (rows, 2)} mean and deviation of each people photo's scores against the calibration part's pool."""
    pool = sets["pool"]
    rows = od.pool_parts(pool.files)["calibration"]
    cohort = pool.clean[rows[np.isfinite(pool.clean[rows]).all(axis=1)]]
    out = {}
    for kind in PROBE_KINDS:
        sims = np.nan_to_num(getattr(sets["people"], kind)) @ cohort.T
        out[kind] = np.stack([sims.mean(axis=1), np.maximum(sims.std(axis=1), 1e-6)], axis=1)
    return out


def merge(trials: Sequence[Trial]) -> Trial:
    return Trial(*[np.concatenate([getattr(t, f) for t in trials]) for f in Trial.__dataclass_fields__])


def score(trial: Trial, old_threshold: float) -> Dict:
    """FNIR at the best thresholds for each FPIR, and FPIR/FNIR at the SDK's and at the old threshold."""
    strangers = np.sort(trial.stranger_score[np.isfinite(trial.stranger_score)])[::-1]
    n_strangers = len(trial.stranger_score)
    out: Dict = {"mated_probes": int(len(trial.mated_score)), "nonmated_probes": int(n_strangers)}
    ceiling = float(strangers[0]) + 1.0 if len(strangers) else 2.0  # above every stranger (scores need not be cosines)

    def fnir(threshold) -> float:
        return float(np.mean(~(trial.mated_right & (trial.mated_score >= threshold))))

    for f in FPIRS:
        allowed = int(np.floor(f * n_strangers))  # strangers that may score at or above the threshold
        t = float(np.nextafter(strangers[allowed], ceiling)) if allowed < len(strangers) else -np.inf
        out[f"fnir_at_fpir_{f:g}"] = fnir(t)
        out[f"threshold_at_fpir_{f:g}"] = t
    out["sdk"] = {"fpir": float(np.mean(trial.stranger_score >= trial.stranger_threshold)),
                  "fnir": fnir(trial.mated_threshold),
                  "threshold_mean": float(np.mean(trial.stranger_threshold))}
    out["size_table"] = {"fpir": float(np.mean(trial.stranger_score >= trial.stranger_alt)),
                         "fnir": fnir(trial.mated_alt)}
    out["old_threshold"] = {"threshold": old_threshold, "fpir": float(np.mean(trial.stranger_score >= old_threshold)),
                            "fnir": fnir(old_threshold)}
    return out


def people_intervals(trial: Trial, target: float = DEFAULT_TARGET_FPIR, resamples: int = RESAMPLES,
                     seed: int = RESAMPLE_SEED) -> Dict[str, List[float]]:
    """95 % intervals of the SDK default's FPIR, its FNIR, and its FNIR's gap to the best threshold's at `target`,
    over the test people drawn again with replacement (`resamples` times, seeded): one person's photos are not
    independent of each other, so a person, not a photo, is the unit drawn, with all their probes in every fold."""
    _, w_strangers, w_mated = _people_weights(trial, resamples, seed)
    named = trial.stranger_score >= trial.stranger_threshold
    missed = ~(trial.mated_right & (trial.mated_score >= trial.mated_threshold))
    fpir = (w_strangers * named).sum(axis=1) / w_strangers.sum(axis=1)
    fnir = (w_mated * missed).sum(axis=1) / w_mated.sum(axis=1)
    gap = fnir - _weighted_best_fnir(trial, w_strangers, w_mated, target)
    return {k: [round(float(v), 4) for v in np.percentile(x, [2.5, 97.5])]
            for k, x in (("fpir_ci95", fpir), ("fnir_ci95", fnir), ("gap_to_best_ci95", gap))}


def _people_weights(trial: Trial, resamples: int, seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the test people, weights of the stranger probes, of the mated probes): per row, how often each test person
    was drawn."""
    people = np.unique(np.concatenate([trial.mated_person, trial.stranger_person]))
    draws = np.random.default_rng(seed).integers(0, len(people), (resamples, len(people)))
    weight = np.stack([np.bincount(d, minlength=len(people)) for d in draws]).astype(np.float64)
    return (people, weight[:, np.searchsorted(people, trial.stranger_person)],
            weight[:, np.searchsorted(people, trial.mated_person)])


def best_fnir_draws(trial: Trial, target: float = DEFAULT_TARGET_FPIR, resamples: int = RESAMPLES,
                    seed: int = RESAMPLE_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """(the test people, the best threshold's FNIR at `target` for each of `people_intervals`' draws of them): two
    models scored on the same people get the same draws, so their differences pair up."""
    people, w_strangers, w_mated = _people_weights(trial, resamples, seed)
    return people, _weighted_best_fnir(trial, w_strangers, w_mated, target)


def paired(draws: Dict[str, Dict]) -> Dict:
    """{model: {size: {templates: {kind: {"difference", "ci95"}}}}}: each model after the first against the first,
    cell by cell (each in its own search): its best-threshold FNIR at FPIR 1 % minus the first's, with the 95 %
    interval over the same draws of test people."""
    base, *others = list(draws)
    out: Dict = {}
    for label in others:
        for (size, k, kind), (point, people, values) in draws[label].items():
            base_point, base_people, base_values = draws[base][(size, k, kind)]
            if not np.array_equal(people, base_people):
                raise SystemExit(f"{label} and {base} were scored on different test people; no paired comparison")
            low, high = np.percentile(values - base_values, [2.5, 97.5])
            out.setdefault(label, {}).setdefault(str(size), {}).setdefault(str(k), {})[kind] = {
                "difference": round(point - base_point, 4), "ci95": [round(float(low), 4), round(float(high), 4)]}
    return out


def _weighted_best_fnir(trial: Trial, w_strangers: np.ndarray, w_mated: np.ndarray, target: float) -> np.ndarray:
    """Per row of weights: the FNIR at the threshold that names at most `target` of the (weighted) strangers, found
    on those strangers (as `score` finds it unweighted)."""
    order = np.argsort(-trial.stranger_score, kind="stable")
    ranked = trial.stranger_score[order]
    cumulative = np.cumsum(w_strangers[:, order], axis=1)
    allowed = (cumulative <= target * cumulative[:, -1:]).sum(axis=1)  # top strangers that may be named
    ceiling = float(ranked[np.isfinite(ranked)].max()) + 1.0 if np.isfinite(ranked).any() else 2.0
    padded = np.concatenate([ranked, [-np.inf]])
    threshold = np.where(allowed < len(ranked), np.nextafter(padded[allowed], ceiling), -np.inf)
    missed = ~(trial.mated_right[None] & (trial.mated_score[None] >= threshold[:, None]))
    return (w_mated * missed).sum(axis=1) / w_mated.sum(axis=1)


def det_curve(trial: Trial) -> Tuple[List[float], List[float]]:
    """(FPIR, FNIR) at every threshold a stranger's score sets."""
    ts = np.unique(np.concatenate([trial.stranger_score[np.isfinite(trial.stranger_score)], [1.0]]))
    fpir = [float(np.mean(trial.stranger_score >= t)) for t in ts]
    fnir = [float(np.mean(~(trial.mated_right & (trial.mated_score >= t)))) for t in ts]
    return fpir, fnir


# ------------------------------------------------------------------------------------------------------ run
def model_list(models: Sequence[Tuple[str, Path]], sface: Optional[Path]) -> List[Tuple[str, Path]]:
    return list(models) + ([("sface", sface)] if sface is not None else [])


def sdk_search(label: str, path: Path) -> str:
    """The gallery search the SDK identifies with for this model: its calibration's fusion (SFace: "mean", the
    default model's, so that the peer is judged by the same rule)."""
    if label == "sface":
        return "mean"
    calibration = ModelSidecar.load(sidecar_path_for(path)).open_set
    return "max" if calibration is None else calibration.fusion


def rules_for(label: str, path: Path, sets: Dict[str, od.FaceSet]) -> Tuple[Dict[str, Rules], float, str]:
    """({gallery fusion: the model's open-set rule at the default target FPIR}, its old one-comparison threshold,
    where the calibration comes from). The sidecar's calibration serves its own fusion; the other fusion's (and
    SFace's) is built in this run by the same tool (train/calibrate.py)."""
    sidecar = None if label == "sface" else ModelSidecar.load(sidecar_path_for(path))
    space = "sface" if sidecar is None else sidecar.embedding_space
    shipped = None if sidecar is None else sidecar.open_set
    rules = {}
    for fusion in ("max", "mean"):
        calibration = shipped if shipped is not None and shipped.fusion == fusion else \
            calibrate_sets(sets, space, fusion=fusion)
        cohort = None if calibration.cohort is None else \
            CohortThresholds(calibration.cohort, DEFAULT_TARGET_FPIR, mate_level(calibration), fusion)
        rules[fusion] = Rules(OpenSetRule(calibration, DEFAULT_TARGET_FPIR), cohort)
    where = ("the model sidecar's open_set (fusion " + shipped.fusion + "); the other fusion's built in this run"
             if shipped is not None else "built in this run (train/calibrate.py)")
    old = SFACE_COSINE_THRESHOLD if sidecar is None else float(sidecar.threshold)
    return rules, old, where


def evaluate_model(sets, flags, rules: Dict[str, Rules], old: float, folds, sizes, curves: Dict,
                   search: str, draws: Dict) -> Dict:
    """Every cell of one model, for every decision rule of `FUSIONS`; DET curves and the best FNIR's draws of test
    people (`best_fnir_draws`, into `draws`) for its own `search`."""
    distractors = distractor_rows(sets, max(sizes))
    cohort = cohort_stats(sets)
    out: Dict = {}
    for fusion in FUSIONS:
        rule = rules["mean" if fusion == "mean" else "max"]
        for size in sizes:
            for k in TEMPLATES:
                galleries = [fold_gallery(sets["people"], enrolled, k, size, distractors)[0] for enrolled, _ in folds]
                thresholds = [sdk_thresholds(g, rule, "mean" if fusion == "mean" else "max") if fusion in rules
                              else (UNDECIDED, UNDECIDED) for g in galleries]
                for kind in PROBE_KINDS:
                    trial = merge([run_fold(sets, flags, enrolled, strangers, size, k, kind, fusion, rule,
                                            distractors, cohort, t)
                                   for (enrolled, strangers), t in zip(folds, thresholds)])
                    cell = score(trial, old)
                    if fusion not in rules:  # calibrations are made for the two gallery fusions only
                        for key in ("sdk", "old_threshold", "size_table"):
                            cell.pop(key)
                    out.setdefault(fusion, {}).setdefault(str(size), {}).setdefault(str(k), {})[kind] = cell
                    if fusion == search:
                        cell["sdk"].update(people_intervals(trial))
                        draws[(size, k, kind)] = (cell["fnir_at_fpir_0.01"], *best_fnir_draws(trial))
                    if fusion == search and k in (1, 5):
                        curves[(size, k, kind)] = det_curve(trial)
    return out


def stranger_folds(test: Sequence[int], splits: int = SPLITS,
                   seed: int = SPLIT_SEED) -> List[Tuple[List[int], List[int]]]:
    """(enrolled, strangers) per fold: `splits` seeded random halvings of the test people, each used both ways."""
    rng = np.random.default_rng(seed)
    folds = []
    for _ in range(splits):
        order = [int(test[i]) for i in rng.permutation(len(test))]
        half = len(order) // 2
        folds += [(order[:half], order[half:]), (order[half:], order[:half])]
    return folds


def refuse_trained_on(models: Sequence[Tuple[str, Path]], people: Sequence[str]) -> None:
    """SystemExit when a g2d model was trained on any held-out person (calibration or test part)."""
    for label, path in models:
        seen = od.trained_on(ModelSidecar.load(sidecar_path_for(path)), people)
        if seen:
            raise SystemExit(f"{label} was trained on {len(seen)} of the {len(people)} held-out people; leave it out "
                             "(--model for each model that holds them all out) or retrain it with their hold-out")


def run(models: Sequence[Tuple[str, Path]], sface: Optional[Path], sizes: Sequence[int] = GALLERY_SIZES) -> Dict:
    refuse_trained_on(models, od.held_out_people())  # before any crop or embedding work
    p_crops, _, people, _ = od.people_crops()
    q_crops, pool_files = od.pool_crops()
    flags = mask_flags(p_crops)
    test = [int(i) for i in od.halves(len(people))[1]]
    folds = stranger_folds(test)
    results, curves, meta_models, draws = {}, {}, {}, {}
    for label, path in model_list(models, sface):
        embed, dim = od.model_embedder(label, path)
        sets = od.embeddings(label, path, embed, dim, mirrored=True)
        rules, old, where = rules_for(label, path, sets)
        search = sdk_search(label, path)
        curves[label], draws[label] = {}, {}
        results[label] = evaluate_model(sets, flags, rules, old, folds, sizes, curves[label], search, draws[label])
        meta_models[label] = {"file": path.name, "calibration": where, "old_threshold": old, "search": search,
                              "calibration_source": {f: r.table.calibration.source for f, r in rules.items()},
                              "size_table_threshold_at_1000": {
                                  f: {k: round(r.table.threshold(1000, k), 4) for k in PROBE_KINDS}
                                  for f, r in rules.items()}}
        log.info("%s done", label)
    parts = od.pool_parts(pool_files)
    meta = {"machine": machine_info(gpu=False), "load_average_at_start": os.getloadavg()[0], "models": meta_models,
            "target_fpir": DEFAULT_TARGET_FPIR, "test_people": len(test), "enrolled_per_fold": len(folds[0][0]),
            "folds": len(folds),
            "gallery_sizes": list(sizes), "templates": list(TEMPLATES),
            "distractors": {"distinct_faces": int(q_crops.ok_clean[parts["test"]].sum()),
                            "note": "faces-pool test part (one template each, distinct first, in a seeded order); "
                                    "past them, mirror images of the same faces (near-duplicates)"},
            "mask_seed": od.MASK_SEED}
    return {"meta": meta, "results": results, "paired": paired(draws), "curves": curves}


# ------------------------------------------------------------------------------------------------------ report
def _pair(cell: Dict, key: str, sub: Optional[str] = None) -> str:
    values = [cell[k][sub][key] if sub else cell[k][key] for k in PROBE_KINDS]
    return " / ".join(f"{v:.3f}" for v in values)


def report(out: Dict) -> str:
    meta = out["meta"]
    d, largest = meta["distractors"], max(meta["gallery_sizes"])
    lines = [f"Machine: {machine_line(meta['machine'])}; load average {meta['load_average_at_start']:.1f} at the start "
             "(2 cores shared with other jobs)",
             f"Test part: {meta['test_people']} held-out people ({meta['enrolled_per_fold']} enrolled, at most the "
             f"gallery's size; the other half strangers, {meta['folds']} folds: random halvings, both ways), "
             f"{d['distinct_faces']} distinct distractor faces (the {largest:,} gallery: "
             f"{max(0, largest - meta['enrolled_per_fold'] - d['distinct_faces'])} mirror images added). "
             "Each cell: clean / masked probes.", ""]
    for label, per in out["results"].items():
        m = meta["models"][label]
        search = m["search"]
        other = "max" if search == "mean" else "mean"
        lines += [f"### {label} (the SDK's search: {search}; calibration: {m['calibration']}; old threshold "
                  f"{m['old_threshold']:.3f})", "",
                  "| identities | templates | FNIR @ FPIR 1 % | FNIR @ FPIR 0.1 % | SDK default: FPIR "
                  "| SDK default: FNIR | size table alone: FPIR ; FNIR | old threshold: FPIR "
                  f"| FNIR @ FPIR 1 %: {other} | margin | cohort norm | mean+max "
                  f"| {other}, SDK-style threshold: FPIR ; FNIR |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for size, by_k in per[search].items():
            for k, cell in by_k.items():
                others = " | ".join(_pair(per[f][size][k], "fnir_at_fpir_0.01")
                                    for f in (other, "margin", "cohort", "mean+max"))
                alt = per[other][size][k]
                lines.append(f"| {int(size):,} | {k} | {_pair(cell, 'fnir_at_fpir_0.01')} | "
                             f"{_pair(cell, 'fnir_at_fpir_0.001')} | {_pair(cell, 'fpir', 'sdk')} | "
                             f"{_pair(cell, 'fnir', 'sdk')} | {_pair(cell, 'fpir', 'size_table')} ; "
                             f"{_pair(cell, 'fnir', 'size_table')} | "
                             f"{_pair(cell, 'fpir', 'old_threshold')} | "
                             f"{others} | {_pair(alt, 'fpir', 'sdk')} ; {_pair(alt, 'fnir', 'sdk')} |")
        lines += ["", intervals_table(per[search]), ""]
    base = next(iter(out["results"]))
    for label, per_size in out["paired"].items():
        lines += [f"### {label} minus {base}: best-threshold FNIR @ FPIR 1 %, paired over the same draws of test "
                  "people", "", "| identities | templates | clean [95 % interval] | masked [95 % interval] |",
                  "|---|---|---|---|"]
        lines += [f"| {int(size):,} | {k} | " + " | ".join(f"{c['difference']:+.3f} [{c['ci95'][0]:+.3f}, "
                                                         f"{c['ci95'][1]:+.3f}]" for c in cells.values()) + " |"
                  for size, by_k in per_size.items() for k, cells in by_k.items()]
        lines.append("")
    return "\n".join(lines)


def intervals_table(per_search: Dict) -> str:
    """The SDK default's 95 % intervals over the test people (`people_intervals`), clean / masked."""
    def span(cell: Dict, key: str) -> str:
        return " / ".join("[{:.3f}, {:.3f}]".format(*cell[k]["sdk"][key]) for k in PROBE_KINDS)

    rows = ["| identities | templates | SDK default FPIR, 95 % interval | FNIR, 95 % interval | FNIR minus the best "
            "threshold's, 95 % interval |", "|---|---|---|---|---|"]
    for size, by_k in per_search.items():
        for k, cell in by_k.items():
            rows.append(f"| {int(size):,} | {k} | {span(cell, 'fpir_ci95')} | {span(cell, 'fnir_ci95')} | "
                        f"{span(cell, 'gap_to_best_ci95')} |")
    return "\n".join(rows)


def plot(out: Dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = out["meta"]["gallery_sizes"]
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4.2), sharey=True)
    colours = {"g2d-edge-m": "tab:blue", "g2d-edge-s": "tab:orange", "sface": "tab:green"}
    for ax, size in zip(np.atleast_1d(axes), sizes):
        for label, curves in out["curves"].items():
            for kind, style in (("clean", "-"), ("masked", "--")):
                fpir, fnir = curves[(size, 5, kind)]
                ax.plot(np.maximum(fpir, 1e-4), fnir, style, color=colours.get(label), label=f"{label} {kind}")
                sdk = out["results"][label][out["meta"]["models"][label]["search"]][str(size)]["5"][kind]["sdk"]
                ax.plot([max(sdk["fpir"], 1.1e-3)], [sdk["fnir"]], "o" if kind == "clean" else "s",
                        color=colours.get(label))
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(0, 0.6)
        ax.axvline(0.01, color="grey", lw=0.5)
        ax.set_title(f"{size:,} identities, 5 templates")
        ax.set_xlabel("FPIR (strangers named)")
        ax.grid(True, which="both", lw=0.3)
    np.atleast_1d(axes)[0].set_ylabel("FNIR (enrolled people missed)")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("Open-set DET, held-out people (test part), each model with the SDK's search; markers: the SDK's "
                 "default (target FPIR 1 %; circle clean, square masked; an FPIR of 0 is drawn at the left edge)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _model_arg(value: str) -> Tuple[str, Path]:
    path, _, label = value.partition("=")
    return (label or Path(path).stem), Path(path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=_model_arg, action="append", metavar="PATH[=LABEL]",
                   help="exported .onnx with its sidecar; repeat for several (default: the shipped models)")
    p.add_argument("--sface", type=Path, default=DEFAULT_SFACE_ONNX, help="OpenCV SFace ONNX (the peer)")
    p.add_argument("--no-sface", action="store_true")
    p.add_argument("--sizes", type=int, nargs="+", default=list(GALLERY_SIZES), help="gallery sizes (identities)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--plot", type=Path, help="write the DET plot (PNG) here (needs matplotlib: g2d-edge[benchmark])")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = args.model or [(n, MODELS_DIR / f"{n}.onnx") for n in ("g2d-edge-m", "g2d-edge-s")]
    out = run(models, None if args.no_sface else args.sface, args.sizes)
    text = report(out)
    print(text)
    if args.json:
        payload = {k: v for k, v in out.items() if k != "curves"}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    if args.plot:
        plot(out, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
