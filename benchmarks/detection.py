#!/usr/bin/env python3
"""The detector front end, measured: every detector and mode of `g2d_edge.detectors.detect` in one run.

For each configuration (YuNet, BlazeFace short and full range; one pass and the every-scale mode):

- **Real masked photos**: share of the `../shared/data/rmfd-real` photos (real people wearing masks, portraits and
  crowds, <= 256 px) in which at least one face is found, and ms per photo. Counted twice: any face (the detector's
  own reach, `min_face_size=0`) and with the SDK's default 20 px minimum (in a sixth of these small photos the
  largest face is narrower than 20 px).
- **Generated frames**: real photos of the shared CelebA people, every other one with a synthetic mask, pasted at a
  known face size (Face Mesh box width, cheek to cheek) onto textured 1080p and 4K frames (see
  `benchmarks/_frames.py`). Recall per face size, of the clean photos (the issue's frames) and of the masked ones,
  false positives per 100 frames, and the smallest face found reliably (recall >= 95 % at that size and at every
  larger size tested).
- **Masked-pair verification through each front end**: the held-out CelebA people (the model sidecar's
  validation identities) with synthetic masks drawn on the raw photos, exactly as `benchmarks/accuracy.py` draws
  them; each photo, clean and masked, is detected on its own (as a user's camera would see it), aligned from that
  detector's keypoints and embedded by the model (default: the `Recognizer`'s shipped model). 10-fold accuracy of
  clean–clean, masked–clean and masked–masked pairs; a face not found fails its pairs.
- **ms per frame** (median) of 1080p frames holding 1, 4, 16 and 30 faces of 64 px, and of a 4K frame with 16; the
  configurations take turns call by call, so that a change in the machine's load hits them alike.

The last column of the summary checks issue 11's bar for a default front end: a face found in >= 95 % of the
rmfd-real photos, >= 95 % of the (clean) faces of 24 px and larger in 1080p frames, <= 1 false positive per 100
1080p frames, and masked-pair accuracy no worse than today's front end (BlazeFace short range, one pass).

    python benchmarks/detection.py                                        # all configurations, Markdown
    python benchmarks/detection.py --json benchmarks/results/detection-cpu.json
    python benchmarks/detection.py --configs yunet:every,short:one --model g2d_edge/models/g2d-edge-m.onnx
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import accuracy  # noqa: E402
from benchmarks._frames import RESOLUTIONS, SourceFace, compose_frame, load_source_faces, match_faces  # noqa: E402
from benchmarks._timing import interleaved_median_seconds  # noqa: E402
from benchmarks.peers import PhotoEmbeddings, embed_rows  # noqa: E402
from g2d_edge.files import atomic_write_text  # noqa: E402
from g2d_edge.backends import load_backend  # noqa: E402
from g2d_edge.detectors import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.io import list_images  # noqa: E402
from g2d_edge.machine import machine_info, machine_line  # noqa: E402
from g2d_edge.backends.loader import SHIPPED_MODEL  # noqa: E402
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for  # noqa: E402
from train.eval import generate_pairs  # noqa: E402

log = logging.getLogger("benchmarks.detection")

DEFAULT_RMFD = REPO.parent / "shared" / "data" / "rmfd-real"
#: Configurations by name: "<model>:one" is one pass, "<model>:every" the every-scale mode; a third part
#: ":detector" aligns YuNet's faces from its own keypoints instead of BlazeFace's (`DetectorOptions.keypoints`).
DEFAULT_CONFIGS = ("short:one", "short:every", "full:one", "full:every", "yunet:one", "yunet:every",
                   "yunet:every:detector")
#: Today's front end, the baseline of the masked-pair bar.
BASELINE = "short:one"
SIZES = {"1080p": (16, 20, 24, 32, 48, 64, 96, 128, 192, 288, 400, 540),
         "4K": (16, 24, 32, 48, 64, 96, 128, 192, 288, 400, 576, 800, 1080)}
#: The bar of issue 11 for the default front end.
BAR = {"rmfd_rate": 0.95, "recall_from_px": 24, "recall": 0.95, "fp_per_100_frames": 1.0}


@dataclass
class DetectionConfig:
    """What the benchmark runs on."""

    configs: Sequence[str] = DEFAULT_CONFIGS
    model: Path = SHIPPED_MODEL
    data: Path = accuracy.DEFAULT_DATA
    rmfd: Path = DEFAULT_RMFD
    rmfd_limit: int = 0  # 0: every photo
    source_faces: int = 200
    frames_per_size: Dict[str, int] = field(default_factory=lambda: {"1080p": 10, "4K": 4})
    sizes: Dict[str, Tuple[int, ...]] = field(default_factory=lambda: dict(SIZES))
    max_faces: int = 30
    timing_cases: Tuple[Tuple[str, int], ...] = (("1080p", 1), ("1080p", 4), ("1080p", 16), ("1080p", 30), ("4K", 16))
    timing_face_size: int = 64
    timing_frames: int = 2
    timing_repeats: int = 5
    identities: List[str] = field(default_factory=list)  # empty: the model's validation identities
    pairs: int = 6000
    limit_per_identity: int = 0
    folds: int = 10
    seed: int = 11
    note: str = ""


def detector_options(spec: str) -> DetectorOptions:
    """"yunet:one" -> one pass of YuNet; "short:every" -> BlazeFace short range in the every-scale mode;
    "yunet:every:detector" -> YuNet's own keypoints; "default" -> `DetectorOptions()`."""
    if spec == "default":
        return DetectorOptions()
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[1] not in ("one", "every") or parts[2:] not in ([], ["detector"]):
        raise SystemExit(f"unknown configuration {spec!r}: use default or <model>:one|every[:detector]")
    return DetectorOptions(model=parts[0], every_scale=parts[1] == "every",
                           keypoints="detector" if parts[2:] else DetectorOptions.keypoints)


# ------------------------------------------------------------------------------------------------- real photos
def load_rmfd(folder: Path, limit: int) -> List[np.ndarray]:
    paths = list_images(folder, recursive=True)
    if limit:
        paths = paths[:limit]
    if not paths:
        raise SystemExit(f"no photos under {folder} (pass --rmfd)")
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    return [im for im in images if im is not None]


def rmfd_rate(detector: FaceDetector, images: Sequence[np.ndarray], min_face_size: int) -> Dict[str, float]:
    """Share of photos with at least one face (any face, and one at least `min_face_size` wide; the detector must
    run with min_face_size=0), and mean ms per photo."""
    start = time.perf_counter()
    widths = [max((f.box[2] - f.box[0] for f in detector.detect(im)), default=-1.0) for im in images]
    seconds = time.perf_counter() - start
    any_face = sum(w >= 0 for w in widths)
    sized = sum(w >= min_face_size for w in widths)
    return {"photos": len(images), "with_face": any_face, "rate": any_face / len(images),
            "with_face_min_size": sized, "rate_min_size": sized / len(images), "min_face_size": min_face_size,
            "ms_per_photo": 1000 * seconds / len(images)}


# ---------------------------------------------------------------------------------------------- generated frames
def frame_seed(cfg: DetectionConfig, resolution: str, size: int, index: int) -> List[int]:
    return [cfg.seed, list(RESOLUTIONS).index(resolution), size, index]


def scale_recall(detector: FaceDetector, faces: Sequence[SourceFace], cfg: DetectionConfig) -> Dict[str, Dict]:
    """Recall per face size and false positives, per resolution (frames regenerated from their seeds)."""
    out: Dict[str, Dict] = {}
    for resolution, sizes in cfg.sizes.items():
        if not cfg.frames_per_size.get(resolution):
            continue
        by_size, frames, false_pos = {}, 0, 0
        for size in sizes:
            counts = {"clean": [0, 0], "masked": [0, 0]}  # faces, found
            for i in range(cfg.frames_per_size[resolution]):
                rng = np.random.default_rng(frame_seed(cfg, resolution, size, i))
                frame = compose_frame(faces, RESOLUTIONS[resolution], size, cfg.max_faces, rng)
                boxes = np.array([f.box for f in detector.detect(frame.image)], np.float32).reshape(-1, 4)
                hit, fp = match_faces(boxes, frame.boxes)
                for kind, rows in (("clean", ~frame.masked), ("masked", frame.masked)):
                    counts[kind][0] += int(rows.sum())
                    counts[kind][1] += int(hit[rows].sum())
                false_pos, frames = false_pos + fp, frames + 1
            by_size[size] = {kind: {"faces": n, "found": k, "recall": k / max(n, 1)} for kind, (n, k) in counts.items()}
        out[resolution] = summarise_sizes(by_size, frames, false_pos)
    return out


def summarise_sizes(by_size: Dict[int, Dict], frames: int, false_pos: int) -> Dict:
    """False positives per 100 frames and, for clean and masked faces: recall pooled over the faces from BAR's size
    up, and the smallest size from which every size tested reaches BAR's recall (None: not even the largest)."""
    sizes = sorted(by_size)
    out = {"frames": frames, "false_positives": false_pos, "fp_per_100_frames": 100 * false_pos / max(frames, 1),
           "by_size": by_size}
    for kind in ("clean", "masked"):
        reliable = None
        for size in reversed(sizes):
            if by_size[size][kind]["faces"] and by_size[size][kind]["recall"] < BAR["recall"]:
                break
            reliable = size
        big = [by_size[s][kind] for s in sizes if s >= BAR["recall_from_px"]]
        out[kind] = {"recall_from_24px": sum(b["found"] for b in big) / max(1, sum(b["faces"] for b in big)),
                     "smallest_reliable_px": reliable}
    return out


# -------------------------------------------------------------------------------------------------- verification
@dataclass
class VerificationSet:
    """The held-out photos (clean and masked), their pairs and the model that embeds them."""

    photos: accuracy.EvalPhotos
    pairs: object
    backend: object
    acc_cfg: accuracy.AccuracyConfig


def verification_set(cfg: DetectionConfig) -> VerificationSet:
    acc_cfg = accuracy.AccuracyConfig(data=cfg.data, models=[(Path(cfg.model).stem, Path(cfg.model))],
                                      identities=list(cfg.identities), pairs=cfg.pairs, folds=cfg.folds,
                                      limit_per_identity=cfg.limit_per_identity)
    identities = accuracy.resolve_identities(acc_cfg, ModelSidecar.load(sidecar_path_for(Path(cfg.model))))
    photos = accuracy.load_photos(acc_cfg, identities)
    pairs = generate_pairs(photos.labels, acc_cfg.pairs, seed=acc_cfg.mask_seed, n_folds=acc_cfg.folds)
    backend = load_backend(Path(cfg.model), backend="onnxruntime")
    return VerificationSet(photos, pairs, backend, acc_cfg)


def masked_pairs(options: DetectorOptions, vset: VerificationSet) -> Dict:
    """Verification accuracy of the model on crops made by this front end (a face not found fails its pairs)."""
    crops = accuracy.sdk_front_end(vset.photos, options)
    dim = vset.backend.sidecar.embedding_dim
    embed = lambda faces: vset.backend.infer(faces)[0]  # noqa: E731
    emb = PhotoEmbeddings(embed_rows(embed, crops.clean, crops.ok_clean, dim),
                          embed_rows(embed, crops.masked, crops.ok_masked, dim))
    results = accuracy.evaluate(emb, vset.pairs, "cosine", vset.acc_cfg)
    return {"no_face": {"clean": int((~crops.ok_clean).sum()), "masked": int((~crops.ok_masked).sum())},
            "results": {cond: r.to_dict() for cond, r in results.items()}}


# -------------------------------------------------------------------------------------------------------- timing
def frame_times(specs: Sequence[str], faces: Sequence[SourceFace], cfg: DetectionConfig) -> Dict[str, Dict]:
    """Per configuration: median ms per frame and faces found, for each (resolution, faces per frame) of
    `timing_cases`. The configurations take turns call by call (`interleaved_median_seconds`), so that a change in
    the machine's load hits them alike."""
    detectors = {}
    try:
        for spec in specs:
            detectors[spec] = FaceDetector(detector_options(spec))
        out: Dict[str, Dict] = {spec: {} for spec in specs}
        for resolution, count in cfg.timing_cases:
            ms: Dict[str, List[float]] = {spec: [] for spec in specs}
            found: Dict[str, List[int]] = {spec: [] for spec in specs}
            for i in range(cfg.timing_frames):
                rng = np.random.default_rng([cfg.seed, 99, count, i])
                image = compose_frame(faces, RESOLUTIONS[resolution], cfg.timing_face_size, count, rng).image
                for spec, det in detectors.items():
                    found[spec].append(len(det.detect(image)))  # also the untimed warm-up
                calls = {spec: (lambda d=det: d.detect(image)) for spec, det in detectors.items()}
                for spec, seconds in interleaved_median_seconds(calls, 0, cfg.timing_repeats).items():
                    ms[spec].append(1000 * seconds)
            for spec in specs:
                out[spec].setdefault(resolution, {})[count] = {"ms": float(np.mean(ms[spec])),
                                                               "found": float(np.mean(found[spec])), "faces": count}
        return out
    finally:
        for det in detectors.values():
            det.close()


# -------------------------------------------------------------------------------------------------------- run
def measure_config(spec: str, cfg: DetectionConfig, rmfd: Sequence[np.ndarray], faces: Sequence[SourceFace],
                   vset: VerificationSet) -> Dict:
    """Everything but the frame timing (`frame_times`) for one configuration."""
    options = detector_options(spec)
    with FaceDetector(replace(options, min_face_size=0)) as detector:
        log.info("%s: rmfd-real", detector.name)
        real = rmfd_rate(detector, rmfd, options.min_face_size)
    with FaceDetector(options) as detector:
        name = detector.name
        log.info("%s: generated frames", name)
        scale = scale_recall(detector, faces, cfg)
    log.info("%s: masked pairs", name)
    pairs = masked_pairs(options, vset)
    return {"config": spec, "detector": name, "options": asdict(options), "rmfd": real, "generated": scale,
            "verification": pairs, "sdk_default": name == default_name()}


def default_name() -> str:
    """The name of the SDK's default front end (`FaceDetector(DetectorOptions())`)."""
    with FaceDetector(DetectorOptions()) as detector:
        return detector.name


def no_worse(mine: Dict, base: Dict, folds: int) -> bool:
    """Mean 10-fold accuracy not below the baseline's by more than the baseline's standard error (its fold standard
    deviation / sqrt(folds)): a smaller difference is within what another pair split would change."""
    return mine["accuracy"] >= base["accuracy"] - base["accuracy_std"] / np.sqrt(max(folds, 1))


def meets_bar(row: Dict, baseline: Optional[Dict], folds: int = 10) -> Dict[str, bool]:
    """Issue 11's bar for a default front end, item by item (masked pairs: see `no_worse`)."""
    gen = row["generated"].get("1080p")
    checks = {"rmfd": row["rmfd"]["rate"] >= BAR["rmfd_rate"]}
    if gen is not None:
        checks["recall_24px_1080p"] = gen["clean"]["recall_from_24px"] >= BAR["recall"]
        checks["fp_1080p"] = gen["fp_per_100_frames"] <= BAR["fp_per_100_frames"]
    if baseline is not None:
        mine, base = row["verification"]["results"], baseline["verification"]["results"]
        checks["masked_pairs"] = all(no_worse(mine[c], base[c], folds) for c in ("masked-unmasked", "masked-masked"))
    return checks


def run(cfg: DetectionConfig, json_path: Optional[Path] = None) -> Dict:
    rmfd = load_rmfd(cfg.rmfd, cfg.rmfd_limit)
    faces = load_source_faces(cfg.data, cfg.source_faces, cfg.seed)
    if not faces:
        raise SystemExit(f"no usable photos in {cfg.data}")
    vset = verification_set(cfg)
    rows = [measure_config(spec, cfg, rmfd, faces, vset) for spec in cfg.configs]
    log.info("timing every configuration, in turns")
    times = frame_times(cfg.configs, faces, cfg)
    for row in rows:
        row["ms_per_frame"] = times[row["config"]]
    baseline = next((r for r in rows if r["config"] == BASELINE), None)
    for row in rows:
        row["meets_issue_11_bar"] = meets_bar(row, baseline, cfg.folds)
    meta = {"machine": machine_info(gpu=False), "opencv": cv2.__version__, "model": Path(cfg.model).name,
            "rmfd_photos": len(rmfd), "source_faces": len(faces),
            "masked_source_faces": sum(f.masked for f in faces), "eval_photos": len(vset.photos.paths),
            "pairs": int(len(vset.pairs.same)), "bar": BAR, "baseline": BASELINE, "note": cfg.note,
            "settings": {k: v for k, v in asdict(cfg).items() if k not in ("identities",)}}
    out = {"meta": meta, "rows": rows}
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(out, indent=2, default=str) + "\n")
    out["text"] = report(out)
    return out


# -------------------------------------------------------------------------------------------------------- report
def _px(value: Optional[int]) -> str:
    return "none" if value is None else f"{value}"


def _summary_row(r: Dict) -> str:
    g, v, bar = r["generated"], r["verification"]["results"], r["meets_issue_11_bar"]
    ok = "yes" if all(bar.values()) else "no (" + ", ".join(k for k, val in bar.items() if not val) + ")"
    g1, g4 = g.get("1080p"), g.get("4K")
    nan = float("nan")
    name = r["detector"] + (" (default)" if r["sdk_default"] else "")
    reliable = " / ".join(f"{_px(x[kind]['smallest_reliable_px'])}" if x else "-"
                          for x in (g1, g4) for kind in ("clean", "masked"))
    recall = " / ".join(f"{g1[kind]['recall_from_24px'] if g1 else nan:.3f}" for kind in ("clean", "masked"))
    return (f"| {name} | {r['rmfd']['rate']:.3f} ({r['rmfd']['rate_min_size']:.3f}) | {recall}"
            f" | {g1['fp_per_100_frames'] if g1 else nan:.1f} / {g4['fp_per_100_frames'] if g4 else nan:.1f} | "
            f"{reliable} | {v['unmasked-unmasked']['accuracy']:.4f} | {v['masked-unmasked']['accuracy']:.4f} | "
            f"{v['masked-masked']['accuracy']:.4f} | "
            f"{r['ms_per_frame'].get('1080p', {}).get(16, {}).get('ms', nan):.1f} | {ok} |")


def report(out: Dict) -> str:
    meta, rows = out["meta"], out["rows"]
    lines = [f"Machine: {machine_line(meta['machine'])}; OpenCV {meta['opencv']}"
             + (f" ({meta['note']})" if meta["note"] else ""),
             f"rmfd-real photos: {meta['rmfd_photos']} | generated frames from {meta['source_faces']} photos "
             f"({meta['masked_source_faces']} masked) | masked pairs: model {meta['model']}, {meta['eval_photos']} "
             f"photos, {meta['pairs']} pairs", "",
             "| detector | rmfd-real: any face (≥ 20 px) | 1080p recall ≥ 24 px clean / masked | FP per 100 frames "
             "1080p / 4K | smallest reliable px 1080p clean / masked / 4K clean / masked | clean–clean | "
             "masked–clean | masked–masked | ms 1080p @16 | issue-11 bar |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_summary_row(r) for r in rows]
    for resolution in rows[0]["generated"]:
        by_size = rows[0]["generated"][resolution]["by_size"]
        sizes = list(by_size)
        counts = ", ".join(f"{by_size[s]['clean']['faces']}+{by_size[s]['masked']['faces']}" for s in sizes)
        lines += ["", f"Recall by face size, {resolution} frames, clean / masked faces (faces per size, clean+masked: "
                      f"{counts})", "",
                  "| detector | " + " | ".join(f"{s} px" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
        for r in rows:
            per = r["generated"][resolution]["by_size"]
            cells = " | ".join(" / ".join(f"{per[s][k]['recall']:.2f}" if per[s][k]["faces"] else "-"
                                          for k in ("clean", "masked")) for s in sizes)
            lines.append(f"| {r['detector']} | {cells} |")
    cases = [(res, n) for res, per in rows[0]["ms_per_frame"].items() for n in per]
    lines += ["", f"Detection ms per frame (median; faces found / faces in the frame, "
                  f"{meta['settings']['timing_face_size']} px faces)", "",
              "| detector | ms per rmfd photo | " + " | ".join(f"{res} @{n}" for res, n in cases) + " |",
              "|---|---|" + "---|" * len(cases)]
    for r in rows:
        cells = " | ".join(f"{r['ms_per_frame'][res][n]['ms']:.1f} ({r['ms_per_frame'][res][n]['found']:.1f}/{n})"
                           for res, n in cases)
        lines.append(f"| {r['detector']} | {r['rmfd']['ms_per_photo']:.1f} | {cells} |")
    nf = [f"{r['detector']} {r['verification']['no_face']['clean']}/{r['verification']['no_face']['masked']}"
          for r in rows]
    lines += ["", "Eval photos without a face found (clean/masked; they fail their pairs): " + ", ".join(nf)]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                   help="comma separated: default, or <model>:one|every[:detector] with model yunet, short or full "
                        "(one pass or every-scale; :detector aligns YuNet's faces from its own keypoints)")
    p.add_argument("--model", type=Path, default=SHIPPED_MODEL,
                   help="recognition model for the masked pairs (.onnx with sidecar; default: the shipped model)")
    p.add_argument("--data", type=Path, default=accuracy.DEFAULT_DATA, help="labelled photos <identity>/<photo>")
    p.add_argument("--rmfd", type=Path, default=DEFAULT_RMFD, help="real masked photos")
    p.add_argument("--identities-file", type=Path, help="one identity per line (default: the model's val people)")
    p.add_argument("--pairs", type=int, default=6000)
    p.add_argument("--frames-1080p", type=int, default=10, help="generated 1080p frames per face size")
    p.add_argument("--frames-4k", type=int, default=4, help="generated 4K frames per face size")
    p.add_argument("--timing-repeats", type=int, default=5)
    p.add_argument("--note", default="", help="a remark recorded with the results (e.g. machine under load)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = DetectionConfig(configs=[c.strip() for c in args.configs.split(",") if c.strip()], model=args.model,
                          data=args.data, rmfd=args.rmfd, pairs=args.pairs, timing_repeats=args.timing_repeats,
                          frames_per_size={"1080p": args.frames_1080p, "4K": args.frames_4k}, note=args.note,
                          identities=args.identities_file.read_text().split() if args.identities_file else [])
    for spec in cfg.configs:
        detector_options(spec)
    print(run(cfg, args.json)["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
