"""`g2d-train` (== `python -m train`): prepare data, build teacher caches, run the greedy stages, evaluate.

    g2d-train prepare    --config cfg.yaml                 # every source with a root -> its .npz cache
    g2d-train prepare    --root ../shared/data/faces-pool --out runs/data/pool.npz --unlabelled
    g2d-train teacher    --config cfg.yaml                 # every source with a teacher path -> its .npy cache
    g2d-train inpaint    --config cfg.yaml --run-dir runs/x [--set stages.inpaint.epochs=3] [--force]
    g2d-train encoder | reformer | classifier | all        # same options; finished stages are skipped
    g2d-train eval       --config cfg.yaml --run-dir runs/x [--checkpoint ...] [--images DIR [--pairs pairs.txt]]
    g2d-train calibrate  --model g2d_edge/models/g2d-edge-m.onnx  # open-set calibration into the model's sidecar

Multi-GPU: `torchrun --nproc_per_node N -m train reformer --config cfg.yaml` (same commands; rank 0 writes).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from g2d_edge.cli.support import run_command
from g2d_edge.errors import G2DError
from g2d_edge.gallery.protocol import FUSIONS

log = logging.getLogger("train.cli")

TRAIN_COMMANDS = ("inpaint", "encoder", "reformer", "classifier", "all")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="training config (.yaml or .toml); default: built-in defaults")
    p.add_argument("--run-dir", type=Path, help="where checkpoints and metrics go (overrides run_dir of the config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set stages.reformer.epochs=3 (repeatable; YAML values)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `g2d-train`."""
    parser = argparse.ArgumentParser(prog="g2d-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run `g2d-train <command> --help` for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    p = sub.add_parser("prepare", help="detect + align an image folder once into an .npz cache")
    _common(p)
    p.add_argument("--root", type=Path, help="image folder (<identity>/<image> when labelled); default: the "
                                             "config's sources")
    p.add_argument("--out", type=Path, help="output .npz (with --root)")
    p.add_argument("--unlabelled", action="store_true", help="the folder has no identity sub-folders")
    p.add_argument("--workers", type=int, help="processes (default: data.prepare_workers)")
    p.add_argument("--limit", type=int, default=0, help="only the first N images (quick tries)")
    p.add_argument("--force", action="store_true", help="rebuild caches that already exist")

    p = sub.add_parser("teacher", help="compute a teacher's embeddings of a prepared cache (.npy)")
    _common(p)
    p.add_argument("--cache", type=Path, help="prepared .npz; default: every config source with a teacher path")
    p.add_argument("--out", type=Path, help="output .npy (with --cache)")
    p.add_argument("--teacher", default="dlib", help="'dlib' (default), 'sface' (OpenCV SFace, the team's shared "
                   "copy), 'sface:<path>', 'onnx:<path>' or 'random' (tests)")
    p.add_argument("--root", type=Path, help="raw folder the cache was prepared from (dlib; default: recorded)")
    p.add_argument("--workers", type=int, default=1, help="processes for the dlib teacher")
    p.add_argument("--force", action="store_true", help="rebuild teacher caches that already exist")

    helps = {"inpaint": "stage 0: inpainting pretraining of encoder + decoder",
             "encoder": "stage 1: self-supervised finetuning of the encoder on masked faces",
             "reformer": "stage 2: relation distillation of the reformer from the teacher cache",
             "classifier": "stage 3: FC + softmax on the labelled training identities",
             "all": "every stage in order (finished ones are skipped)"}
    for name in TRAIN_COMMANDS:
        p = sub.add_parser(name, help=helps[name])
        _common(p)
        p.add_argument("--force", action="store_true", help="retrain from scratch even if finished / resumable")
        p.add_argument("--stop-after", type=int, metavar="EPOCHS",
                       help="leave once this many epochs are done (checkpointed; the next run resumes)")
        p.add_argument("--device", help="cpu | cuda | cuda:N | auto (overrides the config)")

    p = sub.add_parser("maskflag", help="train the mask flag (Recognition.masked) and export it to ONNX")
    _common(p)
    p.add_argument("-o", "--output", type=Path, default=Path("g2d_edge/models/mask-flag.onnx"),
                   help="ONNX file to write (default: the one shipped in the package)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threshold", type=float, default=0.3,
                   help="mask_score from which a face counts as masked (default: 0.3, the shipped classifier's)")
    p.add_argument("--threshold-from-train", action="store_true",
                   help="instead: the threshold with the best balanced accuracy on the training part (real training "
                        "faces against clean training faces; optimistic, the network learnt them)")
    p.add_argument("--real", type=Path, default=Path("../shared/data/rmfd-real"),
                   help="real masked photos (crawl-batch folders); only the split's training folders are used")
    p.add_argument("--real-split", type=Path, default=Path("benchmarks/data/rmfd-split.json"),
                   help="the fixed train / held-out split of --real by folder")
    p.add_argument("--real-review", type=Path, default=Path("benchmarks/data/rmfd-review.json"),
                   help="by-eye review of the real photos' largest faces (those not masked become clean examples)")
    p.add_argument("--no-real", action="store_true", help="train on synthetic masks only, as before")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a MaskFlagOptions field (e.g. print_prob=0.2, widths=16,32,64,96,128); repeatable")

    _add_calibrate(sub)

    p = sub.add_parser("eval", help="verification (clean/masked pairs) and identification of a checkpoint")
    _common(p)
    p.add_argument("--checkpoint", type=Path, help="default: <run-dir>/classifier/final.pt")
    p.add_argument("--cache", type=Path, help="prepared cache to evaluate (default: the hold-out source)")
    p.add_argument("--all-identities", action="store_true",
                   help="evaluate every identity of the cache, not only the held-out ones")
    p.add_argument("--images", type=Path, help="image folder <identity>/<image>: generated pairs (or LFW root)")
    p.add_argument("--pairs", type=Path, help="LFW pairs.txt over --images")
    p.add_argument("--out", type=Path, help="results JSON (default: <run-dir>/eval/<checkpoint stage>.json)")
    p.add_argument("--device", help="cpu | cuda | auto (default: the config's)")
    return parser


def _add_calibrate(sub: Any) -> None:
    """The `calibrate` sub-command's arguments."""
    p = sub.add_parser("calibrate", help="open-set calibration (threshold per gallery size and target FPIR) of an "
                       "exported model, written into its sidecar .json (train/calibrate.py)")
    p.add_argument("--model", type=Path, action="append", required=True,
                   help="exported .onnx whose sidecar gets the calibration (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the calibrated thresholds, write nothing")
    p.add_argument("--no-cohort", action="store_true", help="leave the stranger cohort out: the SDK then uses "
                   "the table by gallery size (g2d_edge.openset.cohort; chosen for g2d-edge-s, benchmarks/openset.py)")
    p.add_argument("--fusion", choices=FUSIONS, default="mean",
                   help="the gallery search the model's Recognizer will use and the calibration is made for: 'mean' "
                   "(an identity scores its fused template; g2d-edge-m) or 'max' (its best template; g2d-edge-s, "
                   "whose table missed the target with 'mean': benchmarks/openset.py)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _load_cfg(args: argparse.Namespace):
    from .config import load_config

    overrides = list(args.overrides)
    if getattr(args, "device", None):
        overrides.append(f"device={args.device}")
    cfg = load_config(args.config, overrides)
    if args.run_dir is not None:
        cfg.run_dir = str(args.run_dir)
    return cfg


def _setup_logging(verbose: bool, log_file: Optional[Path] = None) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)


def _sources_to_build(cfg, reads: str, writes: str, force: bool) -> Iterator:
    """The config's sources that set both `reads` and `writes` (the file built from it), one at a time; those whose
    `writes` file exists are skipped (with a log line) unless `force`. G2DError when no source sets both."""
    todo = [s for s in cfg.data.sources if getattr(s, reads) and getattr(s, writes)]
    if not todo:
        raise G2DError(f"no source in the config has both `{reads}` and `{writes}`; or pass --{reads} and --out")
    for src in todo:
        out = getattr(src, writes)
        if Path(out).is_file() and not force:
            log.info("source %s: %s exists (use --force to rebuild)", src.name, out)
            continue
        yield src


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare_folder
    from .data import detector_options

    cfg = _load_cfg(args)
    workers = args.workers or cfg.data.prepare_workers
    options = detector_options(cfg.data)
    if args.root is not None:
        if args.out is None:
            raise G2DError("prepare --root needs --out (the .npz to write)")
        prepare_folder(args.root, args.out, labelled=not args.unlabelled, workers=workers, options=options,
                       limit=args.limit)
        return 0
    for src in _sources_to_build(cfg, "root", "cache", args.force):
        prepare_folder(Path(src.root), Path(src.cache), labelled=src.labelled, workers=workers, options=options,
                       limit=args.limit)
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    from .teacher import build_teacher_cache

    cfg = _load_cfg(args)
    if args.cache is not None:
        if args.out is None:
            raise G2DError("teacher --cache needs --out (the .npy to write)")
        build_teacher_cache(args.cache, args.out, teacher=args.teacher, root=args.root, workers=args.workers)
        return 0
    for src in _sources_to_build(cfg, "cache", "teacher", args.force):
        build_teacher_cache(Path(src.cache), Path(src.teacher), teacher=args.teacher,
                            root=Path(src.root) if src.root else args.root, workers=args.workers)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import config_hash, save_config
    from .stages import run_all, run_named
    from .stages.common import setup_runtime

    cfg = _load_cfg(args)
    run_dir = Path(cfg.run_dir)
    rt = setup_runtime(cfg.device)
    if not rt.is_main:  # other DDP ranks only report problems
        logging.getLogger().setLevel(logging.WARNING)
    else:
        _setup_logging(args.verbose, run_dir / "train.log")
        save_config(cfg, run_dir / "config.yaml")
        log.info("run %s (config hash %s) in %s", cfg.name, config_hash(cfg)[:12], run_dir)
    if args.command == "all":
        results = run_all(cfg, run_dir, force=args.force, stop_after=args.stop_after)
    else:
        results = [run_named(args.command, cfg, run_dir, force=args.force, stop_after=args.stop_after)]
    for r in results:
        state = "skipped (already finished)" if r.skipped else ("finished" if r.finished else
                                                                f"stopped after epoch {r.epochs_done}")
        log.info("%s: %s -> %s", r.stage, state, r.checkpoint)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.runner import run_eval

    cfg = _load_cfg(args)
    run_dir = Path(cfg.run_dir)
    checkpoint = args.checkpoint or run_dir / "classifier" / "final.pt"
    device = cfg.device if cfg.device != "auto" else None
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    report = run_eval(cfg, checkpoint, device=device, cache=args.cache, all_identities=args.all_identities,
                      folder=args.images, pairs_file=args.pairs)
    out = args.out or run_dir / "eval" / f"{Path(checkpoint).parent.name}-{report.meta.get('mode')}.json"
    report.write_json(out)
    print(report.table())
    print(f"results written to {out}")
    return 0


def cmd_maskflag(args: argparse.Namespace) -> int:
    from .maskflag import (choose_threshold, export_mask_flag, mask_flag_options, train_mask_flag,
                           training_part_rates)

    cfg = _load_cfg(args)
    options = mask_flag_options(args.option, epochs=args.epochs)
    log.info("mask flag options: %s", options)
    real = None
    if not args.no_real:
        from .realmasks import load_split, real_training_faces

        real = real_training_faces(args.real, load_split(args.real_split), args.real_review)
    net = train_mask_flag(cfg, options, real)
    export_mask_flag(net, args.output, threshold=args.threshold)
    threshold = args.threshold
    if real is not None:
        rates = training_part_rates(net, real[0][real[1] == 1], _clean_training_faces(cfg, 1000))
        for t, (pos, neg) in rates.items():
            log.info("training part at threshold %.2f: real masked flagged masked %.4f, clean flagged clean %.4f",
                     t, pos, neg)
        if args.threshold_from_train:
            threshold = choose_threshold(rates)
    elif args.threshold_from_train:
        raise SystemExit("--threshold-from-train needs the real training faces (drop --no-real)")
    if threshold != args.threshold:
        log.info("mask flag threshold from the training part: %.2f", threshold)
        export_mask_flag(net, args.output, threshold=threshold)
    return 0


def _clean_training_faces(cfg, count: int):
    """Up to `count` clean aligned faces of the labelled training people (held-out people excluded), evenly spread."""
    import numpy as np

    from .data import AugmentOptions, build_stage_data

    names = [s.name for s in cfg.data.sources if s.labelled] or [cfg.data.sources[0].name]
    data = build_stage_data(cfg.data, names, AugmentOptions(mask_prob=0.0, flip=False), seed=0)
    picks = np.linspace(0, len(data.dataset) - 1, min(count, len(data.dataset))).astype(int)
    return np.stack([data.dataset[int(i)]["clean"] for i in picks])


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate_model, table_text

    for model in args.model:
        calibration = calibrate_model(model, write=not args.dry_run, cohort=not args.no_cohort, fusion=args.fusion)
        print(f"{model}: {calibration.source}\n{table_text(calibration)}")
    return 0


#: Commands other than the stages (`all`, `inpaint`, ... run `cmd_train`).
HANDLERS = {"prepare": cmd_prepare, "teacher": cmd_teacher, "eval": cmd_eval, "maskflag": cmd_maskflag,
            "calibrate": cmd_calibrate}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `g2d-train`; returns the exit status (`g2d_edge.cli.support`: 0 ok, 1 for errors the user can
    fix, 2 for bad usage, 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    handler = HANDLERS.get(args.command, cmd_train)
    # missing files and bad values in data and configs are the user's to fix, as G2DErrors are
    return run_command("g2d-train", lambda: handler(args), verbose=args.verbose,
                       errors=(G2DError, FileNotFoundError, ValueError),
                       interrupted="interrupted; re-run the same command to resume from the last finished epoch")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
