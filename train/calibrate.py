"""`g2d-train calibrate`: the open-set calibration of a model, written into its sidecar.

The calibration (`g2d_edge.sidecar.OpenSetCalibration`, built by `g2d_edge.openset.build_calibration`) is measured
on the *calibration part* of `train.openset_data` only: stranger probes are the photos of 50 of the 100 held-out
CelebA people, each clean and with a synthetic mask; impostor templates are the other calibration people's photos and
the 3,000 calibration faces of the pool, one template each (the heavier tail of the two counts,
`calibration_probes`). The stranger cohort the SDK measures each gallery with (`stranger_cohort`) holds the same
probes and photos of the 119 training people, who are strangers to every gallery too: groups of held-out people
differ from each other as strangers (`benchmarks/openset_cohorts.py`). The test part (the other 50 people, the other
5,840 pool faces) is left to `benchmarks/openset.py`.

    g2d-train calibrate --model g2d_edge/models/g2d-edge-m.onnx     # rewrites g2d-edge-m.json's open_set
    g2d-train calibrate --model runs/x.onnx --dry-run               # print the table, write nothing
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from g2d_edge.openset import build_calibration, impostor_scores
from g2d_edge.openset.calibration import mean_templates
from g2d_edge.sidecar import PROBE_KINDS, ModelSidecar, OpenSetCalibration, StrangerCohort, sidecar_path_for
from train import openset_data as od
from train.data import DataError

log = logging.getLogger(__name__)

#: Photos of each training person in the stranger cohort (119 people: about 950 photos per kind beside the
#: calibration people's). Measured in benchmarks/openset_cohorts.py: the training people's cohort misses the target
#: on held-out strangers by less than a cohort of one group of held-out people does on another.
COHORT_TRAINING_PHOTOS = 8
COHORT_SEED = 23

def calibration_probes(sets: Dict[str, od.FaceSet], same_domain: bool = True, fusion: str = "max"
                       ) -> Tuple[Dict[str, List[np.ndarray]], int, Dict[str, int]]:
    """({kind: each calibration probe's scores against the two impostor populations}, pool distractor count, probes
    per kind) from one model's embeddings (`train.openset_data.embeddings`).

    Probes are the calibration people's photos (clean, masked); each is scored against (1) the clean photos of the
    other calibration people (the probes' own domain: CelebA people score higher against each other than against the
    pool) and (2) the calibration part of the pool (many more faces: the far tail); the calibration takes the heavier
    tail of the two at each threshold (`g2d_edge.openset.fpir_curves`). Pool faces are not probes: the pool holds a
    few faces of the same person, so a pool face is no sure stranger to the rest of the pool. `same_domain=False`:
    the pool alone (for comparison in `benchmarks/openset.py`). `fusion="mean"`: the other people's photos are fused
    into mean templates (`mean_templates`), as a gallery searching one mean template per identity holds them (pool
    faces are one photo each, their own mean)."""
    people, pool = sets["people"], sets["pool"]
    cal_people = od.halves(len(people.people))[0]
    rows = od.pool_parts(pool.files)["calibration"]
    distractors = pool.clean[rows[np.isfinite(pool.clean[rows]).all(axis=1)]]
    person_rows = np.flatnonzero(np.isin(people.labels, cal_people) & np.isfinite(people.clean).all(axis=1))
    own, own_who = people.clean[person_rows], people.labels[person_rows]
    if fusion == "mean":
        own, own_who = mean_templates(own, own_who)
    scores: Dict[str, List[np.ndarray]] = {}
    counts: Dict[str, int] = {}
    for kind in PROBE_KINDS:
        rows = calibration_rows(sets, kind)
        probes = getattr(people, kind)[rows]
        same_domain_scores = [row[own_who != who] for row, who in zip(impostor_scores(probes, own),
                                                                       people.labels[rows])]
        pool_scores = impostor_scores(probes, distractors)
        scores[kind] = [(a, b) for a, b in zip(same_domain_scores, pool_scores)] if same_domain else pool_scores
        counts[kind] = len(probes)
    return scores, len(distractors), counts


def calibration_rows(sets: Dict[str, od.FaceSet], kind: str) -> np.ndarray:
    """The rows of the calibration people's photos of `kind` ("clean", "masked") with a face: the stranger probes."""
    return people_rows(sets, kind, od.halves(len(sets["people"].people))[0])


def people_rows(sets: Dict[str, od.FaceSet], kind: str, who: Sequence[int]) -> np.ndarray:
    """The rows of the photos of `kind` with a face of the held-out people `who` (labels)."""
    people = sets["people"]
    return np.flatnonzero(np.isin(people.labels, who) & np.isfinite(getattr(people, kind)).all(axis=1))


def training_rows(sets: Dict[str, od.FaceSet], kind: str, per_person: int = COHORT_TRAINING_PHOTOS,
                  seed: int = COHORT_SEED) -> np.ndarray:
    """Rows of the training people's photos of `kind` with a face in the stranger cohort: at most `per_person` of
    each person, drawn under `seed`, so that people with many photos do not outweigh the others."""
    training = sets["training"]
    usable = np.isfinite(getattr(training, kind)).all(axis=1)
    rng = np.random.default_rng(seed)
    rows = []
    for who in np.unique(training.labels):
        own = np.flatnonzero((training.labels == who) & usable)
        rows.append(own if len(own) <= per_person else np.sort(rng.choice(own, per_person, replace=False)))
    return np.concatenate(rows) if rows else np.zeros(0, np.int64)


def stranger_cohort(sets: Dict[str, od.FaceSet]) -> StrangerCohort:
    """The stranger cohort shipped with the calibration: the calibration people's photos (the stranger probes) and
    `COHORT_TRAINING_PHOTOS` photos of each training person, clean and masked, each row labelled with its person
    (calibration people first, then the training people) for the SDK's enrolled-after-all rule."""
    people, training = sets["people"], sets["training"]
    cal_count = len(od.halves(len(people.people))[0])
    embeddings, groups = {}, {}
    for kind in PROBE_KINDS:
        own, extra = calibration_rows(sets, kind), training_rows(sets, kind)
        cal_index = np.unique(people.labels[own], return_inverse=True)[1]
        embeddings[kind] = np.concatenate([getattr(people, kind)[own], getattr(training, kind)[extra]])
        groups[kind] = np.concatenate([cal_index, cal_count + training.labels[extra]])
    return StrangerCohort.of(embeddings, cal_count + len(training.people), groups)


def calibrate_sets(sets: Dict[str, od.FaceSet], embedding_space: str, same_domain: bool = True,
                   fusion: str = "max", with_cohort: bool = True) -> OpenSetCalibration:
    """The open-set calibration of one model's embeddings (calibration part only), for the gallery search `fusion`
    ("max": an identity scores its best template; "mean": its one mean template); `with_cohort`: with the stranger
    probes' and training people's embeddings as its cohort (`stranger_cohort`; else the SDK uses the table by
    size)."""
    scores, distractors, counts = calibration_probes(sets, same_domain, fusion)
    people = len(od.halves(len(sets["people"].people))[0])
    cohort = stranger_cohort(sets) if with_cohort else None
    source = (f"stranger probes: {counts['clean']} photos of {people} held-out CelebA people (calibration part), "
              f"clean, and {counts['masked']} of them with a synthetic mask; impostor templates: the other people's "
              f"{'mean templates of 1-5 photos' if fusion == 'mean' else 'photos'} and {distractors} faces-pool faces "
              "(the heavier tail of the two); SDK front end (default detector, shared aligner); train/calibrate.py; "
              + (f"cohort: the same stranger probes' embeddings and up to {COHORT_TRAINING_PHOTOS} photos of each of "
                 f"the {len(sets['training'].people)} training people, clean and masked" if with_cohort
                 else "no cohort"))
    return build_calibration(scores, distractors, embedding_space, source, fusion=fusion, cohort=cohort)


def calibrate_model(model: Path, write: bool = True, cohort: bool = True, fusion: str = "mean") -> OpenSetCalibration:
    """Calibrate a g2d model (.onnx with its sidecar) and, when `write`, store the calibration in its sidecar (the
    .onnx is not touched). `cohort=False`: without the stranger cohort (the SDK then uses the table by size).
    `fusion`: the gallery search the model's Recognizer will use (`g2d_edge.sidecar.OpenSetCalibration.fusion`)."""
    sidecar_file = sidecar_path_for(model)
    sidecar = ModelSidecar.load(sidecar_file)
    people = od.held_out_people()
    seen = od.trained_on(sidecar, people)
    if seen:
        raise DataError(f"{model} was trained on {len(seen)} of the {len(people)} held-out people the calibration "
                        f"and its test use (e.g. {', '.join(seen[:3])}): its table would be too lax. Retrain it with "
                        f"data.val_identities {od.VAL_IDENTITIES} and split_seed {od.SPLIT_SEED} (train/configs)")
    embed, dim = od.model_embedder(sidecar.name or model.stem, model)
    sets = od.embeddings(sidecar.name or model.stem, model, embed, dim)
    calibration = calibrate_sets(sets, sidecar.embedding_space, fusion=fusion, with_cohort=cohort)
    if write:
        dataclasses.replace(sidecar, open_set=calibration).save(sidecar_file)
        log.info("open-set calibration written to %s", sidecar_file)
    return calibration


def table_text(calibration: OpenSetCalibration, fpirs: Tuple[float, ...] = (0.001, 0.01)) -> str:
    """The calibrated thresholds at a few gallery sizes, as a small text table."""
    from g2d_edge.openset import OpenSetRule

    rules = [OpenSetRule(calibration, f) for f in fpirs]
    lines = [f"{rules[0].unit} | " + " | ".join(f"{k} @ FPIR {f:g}" for f in fpirs for k in PROBE_KINDS)]
    for m in (1, 10, 100, 1000, 10000, 100000):
        lines.append(f"{m} | " + " | ".join(f"{r.threshold(m, k):.3f}" for r in rules for k in PROBE_KINDS))
    return "\n".join(lines)
