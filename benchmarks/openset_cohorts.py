"""Which stranger cohort sets the open-set threshold best: a few people's photos, or many people's.

The SDK measures each gallery's threshold with the stranger cohort shipped in the model's calibration
(`g2d_edge.openset.cohort`). A cohort is a sample of strangers, and this script measures how far a threshold set by
one sample holds for another: the galleries, probes and folds of `benchmarks/openset.py` (g2d-edge-m, its fused
search, 1-5 templates, 10 to 10,000 identities, clean and masked probes, the mask flag choosing the threshold), each
threshold decided through the SDK itself (a real `Gallery`, `CohortThresholds` with the enrolled-after-all rule).

Cohorts compared (each evaluated only on people it does not hold):
- **calibration people**: the held-out calibration people's photos (the cohort shipped before this script);
- **test people**: the other held-out people's photos (evaluated on the calibration people: the two groups swapped);
- **training people**: up to 8 photos of each of the people the model was trained on (`train.calibrate`);
- **calibration + training people**: the cohort `g2d-train calibrate` ships (`train.calibrate.stranger_cohort`).

Each cohort is scored on a group of held-out people it does not hold, 50 of the 100 ("test": the benchmark's test
part; "calibration": the other half), by the FPIR the SDK reaches (target 1 %) and its FNIR's gap to the best
threshold found afterwards on the same probes.

**Cost**: the SDK searches the whole cohort in the gallery (clean and masked photos) whenever the gallery changes;
the time of one such measurement is taken for the shipped cohort and the previous one, on a file `Gallery` and on a
`MilvusGallery` (FLAT) served by a Milvus Lite server process, each holding test-part pool faces as identities
(`--cost-sizes`), median of `COST_REPEATS`.

    python benchmarks/openset_cohorts.py --json benchmarks/results/openset-cohorts-cpu.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import openset as ob  # noqa: E402
from benchmarks.gallery import milvus_lite_server  # noqa: E402
from g2d_edge.gallery.file import Gallery  # noqa: E402
from g2d_edge.gallery.milvus import MilvusGallery, MilvusGalleryOptions  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.openset import DEFAULT_TARGET_FPIR, CohortThresholds, OpenSetRule  # noqa: E402
from g2d_edge.openset.rule import mate_level  # noqa: E402
from g2d_edge.sidecar import PROBE_KINDS, ModelSidecar, StrangerCohort, sidecar_path_for  # noqa: E402
from train import openset_data as od  # noqa: E402
from train.calibrate import people_rows, stranger_cohort, training_rows  # noqa: E402

log = logging.getLogger("benchmarks.openset_cohorts")

MODEL = ob.MODELS_DIR / "g2d-edge-m.onnx"
#: The cohorts scored on each group of held-out people (none holds a person of the group it is scored on).
SCORED = {"test": ("calibration people", "training people", "calibration + training people"),
          "calibration": ("test people", "training people")}
#: The cohorts whose measurement is timed: the one shipped now and the one shipped before.
TIMED = ("calibration + training people", "calibration people")
COST_SIZES = (1000, 10000)
COST_REPEATS = 3


def people_cohort(sets: Dict[str, od.FaceSet], who: Sequence[int]) -> StrangerCohort:
    """A cohort of every usable photo of the held-out people `who`, clean and masked."""
    people = sets["people"]
    embeddings, groups = {}, {}
    for kind in PROBE_KINDS:
        rows = people_rows(sets, kind, who)
        embeddings[kind], groups[kind] = getattr(people, kind)[rows], np.unique(people.labels[rows],
                                                                                return_inverse=True)[1]
    return StrangerCohort.of(embeddings, len(who), groups)


def training_cohort(sets: Dict[str, od.FaceSet]) -> StrangerCohort:
    """The training people's part of the shipped cohort alone (`train.calibrate.training_rows`)."""
    training = sets["training"]
    rows = {k: training_rows(sets, k) for k in PROBE_KINDS}
    return StrangerCohort.of({k: getattr(training, k)[r] for k, r in rows.items()}, len(training.people),
                             {k: training.labels[r] for k, r in rows.items()})


def cohorts(sets: Dict[str, od.FaceSet]) -> Dict[str, StrangerCohort]:
    calibration, test = od.halves(len(sets["people"].people))
    return {"calibration people": people_cohort(sets, calibration), "test people": people_cohort(sets, test),
            "training people": training_cohort(sets), "calibration + training people": stranger_cohort(sets)}


def score_cohort(sets, flags, table: OpenSetRule, level: float, cohort: StrangerCohort,
                 folds: List[Tuple[List[int], List[int]]], sizes: Sequence[int]) -> Dict:
    """{size: {templates: {kind: FPIR, FNIR and gap to the best threshold}}} of one cohort on `folds`."""
    rule = ob.Rules(table, CohortThresholds(cohort, DEFAULT_TARGET_FPIR, level, "mean"))
    distractors = ob.distractor_rows(sets, max(sizes))
    stats = ob.cohort_stats(sets)
    out: Dict = {}
    for size in sizes:
        for k in ob.TEMPLATES:
            galleries = [ob.fold_gallery(sets["people"], enrolled, k, size, distractors)[0] for enrolled, _ in folds]
            thresholds = [ob.sdk_thresholds(g, rule, "mean") for g in galleries]
            for kind in PROBE_KINDS:
                trial = ob.merge([ob.run_fold(sets, flags, enrolled, strangers, size, k, kind, "mean", rule,
                                              distractors, stats, t)
                                  for (enrolled, strangers), t in zip(folds, thresholds)])
                cell = ob.score(trial, 0.0)
                out.setdefault(str(size), {}).setdefault(str(k), {})[kind] = {
                    "fpir": cell["sdk"]["fpir"], "fnir": cell["sdk"]["fnir"], "best_fnir": cell["fnir_at_fpir_0.01"],
                    "gap": cell["sdk"]["fnir"] - cell["fnir_at_fpir_0.01"],
                    "threshold_mean": cell["sdk"]["threshold_mean"], "best_threshold": cell["threshold_at_fpir_0.01"]}
    return out


def summary(cells: Dict) -> Dict:
    """Counts over every cell: FPIR at or under 1 % and 1.5 %, gap at or under 1 point; the worst FPIR, the mean gap."""
    rows = [c for by_k in cells.values() for by_kind in by_k.values() for c in by_kind.values()]
    fpir, gap = np.array([r["fpir"] for r in rows]), np.array([r["gap"] for r in rows])
    return {"cells": len(rows), "fpir_at_most_1pct": int((fpir <= 0.01).sum()),
            "fpir_at_most_1.5pct": int((fpir <= 0.015).sum()), "gap_at_most_1pt": int((gap <= 0.01).sum()),
            "worst_fpir": float(fpir.max()), "mean_gap": float(gap.mean())}


def measurement_seconds(gallery, cohort: StrangerCohort, level: float) -> float:
    """Median seconds of one measurement of the gallery (clean and masked thresholds), each with a fresh cache; a
    database gallery is measured in the background, so its measurement is waited for."""
    counts = (len(gallery), gallery.num_templates)
    times = []
    for _ in range(COST_REPEATS):
        thresholds = CohortThresholds(cohort, DEFAULT_TARGET_FPIR, level, "mean")
        start = time.perf_counter()
        for kind in PROBE_KINDS:
            thresholds.threshold(gallery, kind, counts)
            if not thresholds.wait_for_refresh(3600):
                raise RuntimeError("the cohort measurement did not end within an hour")
        times.append(time.perf_counter() - start)
        if any(thresholds.usable(kind) and thresholds.threshold(gallery, kind, counts) is None for kind in PROBE_KINDS):
            raise RuntimeError("the cohort did not measure the gallery (the size table answered)")
    return statistics.median(times)


def measurement_cost(sets: Dict[str, od.FaceSet], made: Dict[str, StrangerCohort], level: float,
                     sizes: Sequence[int]) -> Dict:
    """{gallery kind: {identities: {cohort: seconds}}} of one measurement, for the `TIMED` cohorts."""
    faces = ob.distractor_rows(sets, max(sizes))
    out: Dict = {"file": {}, "milvus-lite-flat": {}}
    options = MilvusGalleryOptions(timeout_s=3600, flush_writes=True)
    with tempfile.TemporaryDirectory() as folder, milvus_lite_server(Path(folder) / "milvus") as server:
        for size in sizes:
            content = {f"id{i}": faces[i][None] for i in range(size)}
            file_gallery = Gallery()
            file_gallery.add_many(content)
            with MilvusGallery(f"{server}/cohort_cost_{size}", options) as db:
                db.bind("g2d-edge-m", faces.shape[1], "benchmark")
                db.add_many(content)
                for engine, gallery in (("file", file_gallery), ("milvus-lite-flat", db)):
                    out[engine][str(size)] = {name: measurement_seconds(gallery, made[name], level) for name in TIMED}
                    log.info("measurement cost, %s, %d identities: %s", engine, size, out[engine][str(size)])
    return out


def run(sizes: Sequence[int] = ob.GALLERY_SIZES, cost_sizes: Sequence[int] = COST_SIZES) -> Dict:
    p_crops, _, people, _ = od.people_crops()
    flags = ob.mask_flags(p_crops)
    embed, dim = od.model_embedder("g2d-edge-m", MODEL)
    sets = od.embeddings("g2d-edge-m", MODEL, embed, dim, mirrored=True)
    calibration = ModelSidecar.load(sidecar_path_for(MODEL)).open_set
    table, level = OpenSetRule(calibration, DEFAULT_TARGET_FPIR), mate_level(calibration)
    groups = dict(zip(("calibration", "test"), od.halves(len(people))))
    made = cohorts(sets)
    results: Dict = {}
    for group, names in SCORED.items():
        folds = ob.stranger_folds([int(i) for i in groups[group]])
        for name in names:
            cells = score_cohort(sets, flags, table, level, made[name], folds, sizes)
            results.setdefault(group, {})[name] = {"summary": summary(cells), "cells": cells,
                                                   "photos": {k: int(made[name].embeddings(k).shape[0])
                                                              for k in PROBE_KINDS}}
            log.info("%s on %s: %s", name, group, results[group][name]["summary"])
    cost = measurement_cost(sets, made, level, cost_sizes) if cost_sizes else {}
    meta = {"machine": machine_info(gpu=False), "load_average_at_start": os.getloadavg()[0], "model": MODEL.name,
            "search": "mean", "target_fpir": DEFAULT_TARGET_FPIR, "gallery_sizes": list(sizes),
            "templates": list(ob.TEMPLATES), "folds_per_group": 2 * ob.SPLITS,
            "people_per_group": {g: len(who) for g, who in groups.items()}}
    return {"meta": meta, "results": results, "measurement_seconds": cost}


def report(out: Dict) -> str:
    meta = out["meta"]
    lines = [f"Machine: {machine_line(meta['machine'])}; load average {meta['load_average_at_start']:.1f} at the start",
             f"{meta['model']}, fused search, target FPIR {meta['target_fpir']:.0%}; held-out people per group: "
             f"{meta['people_per_group']}, "
             f"{meta['folds_per_group']} folds; cells: {len(meta['gallery_sizes'])} sizes x "
             f"{len(meta['templates'])} template counts x clean / masked", "",
             "| scored on | cohort | photos (clean) | FPIR <= 1 % | FPIR <= 1.5 % | worst FPIR | gap <= 1 point "
             "| mean gap |", "|---|---|---|---|---|---|---|---|"]
    for group, per in out["results"].items():
        for name, r in per.items():
            s = r["summary"]
            lines.append(f"| {group} people | {name} | {r['photos']['clean']} | {s['fpir_at_most_1pct']} / "
                         f"{s['cells']} | {s['fpir_at_most_1.5pct']} / {s['cells']} | {s['worst_fpir']:.3f} | "
                         f"{s['gap_at_most_1pt']} / {s['cells']} | {s['mean_gap']:+.3f} |")
    if out["measurement_seconds"]:
        lines += ["", "One measurement of a gallery (clean and masked), median seconds:", "",
                  "| gallery | identities | " + " | ".join(TIMED) + " |", "|---|---|" + "---|" * len(TIMED)]
        for engine, by_size in out["measurement_seconds"].items():
            for size, per in by_size.items():
                lines.append(f"| {engine} | {int(size):,} | " + " | ".join(f"{per[n]:.3f}" for n in TIMED) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(ob.GALLERY_SIZES), help="gallery sizes (identities)")
    p.add_argument("--cost-sizes", type=int, nargs="*", default=list(COST_SIZES),
                   help="gallery sizes the measurement is timed at (none: no timing)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = run(args.sizes, args.cost_sizes)
    print(report(out))
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
