"""`g2d` command line: a thin skin over the Python API.

    g2d enroll NAME PHOTO... --gallery people.npz      # Recognizer.enroll + Gallery.save
    g2d enroll --folder people/ --gallery people.npz   # one sub-folder of photos per person
    g2d enroll NAME PHOTO... --masked-templates 3 ...  # + synthetic masked templates (--masked: masked photos)
    g2d identify SOURCE --gallery people.npz           # VideoLoop: Capture -> Recognizer.identify -> annotate
    g2d verify A.jpg B.jpg                             # Recognizer.verify
    g2d calibrate PEOPLE_DIR -o my-camera.json         # open-set thresholds from your photos, into a model copy
    g2d gallery list|remove|rename ... --gallery G     # Gallery (no model needed)
    g2d gallery export DEST --gallery SRC              # copy a gallery: file <-> database (milvus://...)
    g2d gallery import SRC --gallery DEST
    g2d serve --gallery people.npz --source clip.mp4   # HTTP API + web page (g2d_edge.serve; extra [serve])
    g2d checks                                         # versions, backends, GPU, video back ends, model checksums

`identify` takes whatever `Capture` takes: an image, a folder of images, a video file, a camera index, an RTSP/HTTP
URL or a GStreamer pipeline; `--show` opens a window, `--output out.mp4` writes the annotated video, `--json` prints
one JSON line per frame, `--csv` one CSV row per face. Faces of a video or a camera are tracked (`VideoLoop`
decides, from the opened `Capture`). `enroll --folder` and `identify FOLDER` draw a progress bar on stderr when it is a
terminal (tqdm, in the [serve] and [train] extras).

--gallery takes a gallery file or folder, or a database URL (milvus://host:19530/collection,
milvus-lite://path.db/collection; README "Scaling out").

Every command takes --json for machine-readable output. Exit status (`g2d_edge.cli.support`, shared with g2d-train
and g2d-export): 1 for an error the user can fix (G2DError, one line on stderr), 2 for bad usage, 130 for Ctrl-C,
141 when stdout is closed early (`| head -1`: quietly, as a tool ended by SIGPIPE), 143 for SIGTERM (after the same
clean-up as Ctrl-C: an `--output` video keeps the frames written so far). `g2d verify` answers in its status too:
0 the same person, 3 (`EXIT_DIFFERENT`) different people, 1 an error (no face, unreadable photo).
Names and paths are printed with control characters escaped (`g2d_edge.text.printable`), so nothing read from a
gallery or typed as an argument can inject terminal escapes or extra lines.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..backends.loader import BACKEND_NAMES
from ..errors import GalleryError
from ..imagesize import DEFAULT_MAX_IMAGE_PIXELS
from ..text import printable
from ..video.loop import VIDEO_CODECS
from .support import progress, run_command, say

log = logging.getLogger("g2d_edge.cli")

#: Exit status of `g2d verify` for "different people" (0: the same person; 1: an error; 2: bad usage).
EXIT_DIFFERENT = 3


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model file (.onnx or .engine); default: the shipped model")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKEND_NAMES,
                   help="inference backend (default auto: TensorRT for an engine or a cached one, else ONNX "
                        "Runtime on a GPU, else OpenVINO when installed, else ONNX Runtime)")
    p.add_argument("--url", help="Triton server (grpc://host:8001 or http://host:8000) that runs the model; --model "
                                 "then only names its sidecar (README 'Scaling out')")
    p.add_argument("--model-name", help="model name on the Triton server (default: the sidecar's name)")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine threshold for 'same person', set by hand (default: the gallery's, else the one that "
                        "keeps --target-fpir for this gallery's size, else the model's)")
    p.add_argument("--target-fpir", type=float, default=0.01,
                   help="share of strangers that may be given a name (default 0.01); the threshold is derived from "
                        "it for the gallery's size from the model's open-set calibration")


def _whole_number(low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`, if given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            limits = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {limits}, got {value}")
        return value
    return parse


_positive_int = _whole_number(1)


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_IMAGE_PIXELS,
                   help=f"refuse images larger than this many pixels, read from the header before decoding "
                        f"(default {DEFAULT_MAX_IMAGE_PIXELS})")


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def _calibrate_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="recalibrate the open-set thresholds on your own camera's photos; writes a "
                       "copy of the model (never the model itself)")
    p.add_argument("people", help="PEOPLE_DIR: one sub-folder of photos per person (2 people at least; more is better)")
    p.add_argument("-o", "--output", required=True, help="the copy's sidecar (.json); the model is copied beside it "
                                                         "under the same name (use it with --model)")
    p.add_argument("--no-masks", action="store_true", help="do not draw synthetic masks on the photos (keeps the "
                                                            "model's calibration for masked faces)")
    p.add_argument("--model", default=None, help="model to calibrate (default: the shipped model)")
    _image_args(p)
    _common_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="g2d", description="Masked-face recognition on the edge (g2d-edge).")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"g2d-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("enroll", help="add people to a gallery from photos",
                       usage="%(prog)s (NAME PHOTO... | --folder PEOPLE_DIR) --gallery GALLERY [options]")
    p.add_argument("name", nargs="?", help="the person's name")
    p.add_argument("images", nargs="*", help="photos of the person (one face each; the largest face is used)")
    p.add_argument("--folder", help="enrol everyone of PEOPLE_DIR: one sub-folder of photos per person, named after "
                                    "the person")
    p.add_argument("--gallery", required=True, help="gallery file (.npz), directory or database URL "
                                                     "(milvus://host:19530/collection); created if missing")
    p.add_argument("--skip-failed", action="store_true", help="skip photos without a face instead of failing "
                                                              "(always on with --folder, which also skips a person "
                                                              "without a usable photo; one line sums up what was "
                                                              "skipped and why)")
    p.add_argument("--masked", action="store_true",
                   help="the photos show the person wearing a mask: tag their templates masked (the person must "
                        "already have a clean template)")
    p.add_argument("--masked-templates", type=_whole_number(0, 16), default=0, metavar="N",
                   help="also add N synthetic masked templates (tagged masked) per clean photo (0-16, default 0)")
    _image_args(p)
    _model_args(p)
    _common_args(p)

    p = sub.add_parser("identify", help="name every face of an image, folder, video, camera or stream")
    p.add_argument("source", help="an image, a folder of images, a video file, a camera index (0), an RTSP/HTTP URL "
                                  "or a GStreamer pipeline")
    p.add_argument("--gallery", required=True, help="gallery made with `g2d enroll`")
    p.add_argument("--top-k", type=int, default=1, help="candidates listed per face (default 1)")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q or Esc stops)")
    p.add_argument("--output", help=f"write the annotated frames as a video ({', '.join(VIDEO_CODECS)})")
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    p.add_argument("--csv", action="store_true", help="print CSV on stdout: a header, then one row per face (a row "
                                                      "with no face for a frame or photo without one)")
    _image_args(p)
    _model_args(p)
    _common_args(p)

    p = sub.add_parser("verify", help="are the faces of two images the same person?",
                       epilog="exit status: 0 the same person, 3 different people, 1 an error (no face, unreadable "
                              "photo), 2 bad usage")
    p.add_argument("image_a")
    p.add_argument("image_b")
    _image_args(p)
    _model_args(p)
    _common_args(p)

    _calibrate_parser(sub)
    _service_parsers(sub)
    g = sub.add_parser("gallery", help="list or edit a gallery")
    gsub = g.add_subparsers(dest="action", metavar="ACTION")
    gsub.required = True
    p = gsub.add_parser("list", help="enrolled people and their template counts")
    p.add_argument("--gallery", required=True)
    _common_args(p)
    p = gsub.add_parser("remove", help="remove a person")
    p.add_argument("name")
    p.add_argument("--gallery", required=True)
    _common_args(p)
    p = gsub.add_parser("rename", help="rename a person")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--gallery", required=True)
    _common_args(p)
    for action, other, help_text in (("export", "destination", "copy the --gallery into another gallery"),
                                     ("import", "source", "copy another gallery into the --gallery")):
        p = gsub.add_parser(action, help=f"{help_text} (file <-> database)")
        p.add_argument(other, help=f"the {other}: a gallery file or a database URL (milvus://host:19530/collection)")
        p.add_argument("--gallery", required=True)
        p.add_argument("--replace", action="store_true",
                       help="replace people enrolled in both (default: refuse and copy nothing)")
        _common_args(p)
    return parser


def _service_parsers(sub: Any) -> None:
    """`g2d serve` and `g2d checks`."""
    from ..serve.command import add_arguments as serve_arguments  # no [serve] extra needed for the arguments

    p = sub.add_parser("serve", help="HTTP API and web page: identify, verify, enrol, live view of sources "
                                     "(pip install g2d-edge[serve])")
    serve_arguments(p, _positive_int)
    _image_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    p = sub.add_parser("checks", help="versions, backends, GPU, video back ends and model checksums (for bug reports)")
    _common_args(p)


def _recognizer(args: argparse.Namespace, gallery: Any = None) -> Any:
    from ..backends.loader import BackendOptions
    from ..recognizer import Recognizer, RecognizerOptions

    triton = {key: getattr(args, key, None) for key in ("url", "model_name") if getattr(args, key, None)}
    opts = RecognizerOptions(threshold=args.threshold, target_fpir=args.target_fpir, top_k=getattr(args, "top_k", 1),
                             max_image_pixels=args.max_pixels,
                             masked_templates=getattr(args, "masked_templates", 0),
                             backend_options=BackendOptions.of(**triton))
    return Recognizer(model=args.model, backend=args.backend, gallery=gallery, options=opts)


def _emit(args: argparse.Namespace, payload: Dict[str, Any], lines: List[str]) -> None:
    """Print `payload` as JSON (--json), else the text `lines`, each escaped into one printable line."""
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print("\n".join(printable(line) for line in lines))


def _enrolment(args: argparse.Namespace) -> Tuple[List[Tuple[str, List[str]]], List[Tuple[str, str]]]:
    """(name, photos) of everyone to enrol: the NAME and PHOTOs given, or one person per sub-folder of --folder;
    and (path, reason) of what --folder holds that is not a person with photos (stray files, empty folders)."""
    from ..io import scan_people

    if args.folder is not None:
        found, left_out = scan_people(args.folder)
        people = [(name, [str(p) for p in photos]) for name, photos in found]
        if not people:
            raise GalleryError(f"--folder {args.folder}: no sub-folder with photos in it; expected one sub-folder of "
                               "photos per person, named after the person")
        return people, [(str(path), reason) for path, reason in left_out]
    return [(args.name, list(args.images))], []


def _enrol_everyone(rec: Any, args: argparse.Namespace, people: List[Tuple[str, List[str]]]
                    ) -> Tuple[List[Any], List[Tuple[str, str]]]:
    """Enrol each person; with --folder a person without a usable photo is skipped (name, reason), not the end."""
    from ..errors import ImageReadError, InputError, NoFaceError

    folder = args.folder is not None
    results, failed = [], []
    with progress(len(people), "enrolling", unit="person") as bar:
        for name, photos in people:
            try:
                results.append(rec.enroll(name, photos, skip_failed=args.skip_failed or folder, masked=args.masked))
            except (NoFaceError, ImageReadError, InputError) as exc:
                if not folder:
                    raise
                failed.append((name, str(exc)))
            if bar is not None:
                bar.update(1)
    if not results:
        raise GalleryError(f"--folder {args.folder}: no one could be enrolled ({failed[0][1]}"
                           + (f", and {len(failed) - 1} more" if len(failed) > 1 else "") + "); nothing was saved")
    return results, failed


def skipped_summary(failed: Sequence[Tuple[str, str]], left_out: Sequence[Tuple[str, str]],
                    photos: int) -> Optional[str]:
    """The one line that says what an enrolment skipped and why, or None when nothing was skipped."""
    parts = []
    if failed:
        parts.append(f"{len(failed)} person(s) without a usable photo ({', '.join(n for n, _ in failed)})")
    if photos:
        parts.append(f"{photos} photo(s) without a usable face (listed above)")
    for reason, label in (("no photos", "empty folder(s)"), ("not a person folder", "stray file(s) beside the "
                                                                                    "person folders"),
                          ("not an image file", "file(s) that are not images")):
        paths = [Path(p).name for p, why in left_out if why == reason]
        if paths:
            parts.append(f"{len(paths)} {label} ({', '.join(paths[:5])}{', ...' if len(paths) > 5 else ''})")
    return f"skipped {'; '.join(parts)}" if parts else None


def cmd_enroll(args: argparse.Namespace) -> int:
    from ..gallery.file import open_gallery

    people, left_out = _enrolment(args)
    with open_gallery(args.gallery) as gallery:
        rec = _recognizer(args, gallery)
        try:
            results, failed = _enrol_everyone(rec, args, people)
            path = rec.save_gallery()
        finally:
            rec.close()
        identities = len(gallery)
    enrolled = [{"name": r.name, "added": r.added, "masked": r.masked, "templates": r.templates,
                 "skipped": [{"image": i, "reason": why} for i, why in r.skipped]} for r in results]
    payload = ({**enrolled[0], "gallery": str(path), "identities": identities} if args.folder is None else
               {"enrolled": enrolled, "gallery": str(path), "identities": identities,
                "skipped_people": [{"name": n, "reason": why} for n, why in failed],
                "skipped_paths": [{"path": p, "reason": why} for p, why in left_out]})
    lines = []
    for r in results:
        added = f"{r.added} template(s) added, {r.masked} of them masked" if r.masked else f"{r.added} photo(s) added"
        lines.append(f"enrolled {r.name}: {added} ({r.templates} template(s) in total)")
        lines += [f"  skipped {image}: {reason}" for image, reason in r.skipped]
    lines.append(f"gallery {path} now holds {identities} people")
    summary = skipped_summary(failed, left_out, sum(len(r.skipped) for r in results))
    if summary:
        lines.append(summary)
    _emit(args, payload, lines)
    return 0


def _frame_lines(label: str, faces: Sequence[Any], threshold: float) -> List[str]:
    lines = [f"{label}: {len(faces)} face(s)"]
    for i, f in enumerate(faces):
        x1, y1, x2, y2 = (int(round(float(v))) for v in f.box)
        who = f.name if f.name is not None else "unknown"
        score = "n/a" if f.score is None else f"{f.score:.3f}"
        track = "" if f.track_id is None else f" track {f.track_id}"
        used = threshold if f.threshold is None else f.threshold
        fpir = "" if f.fpir is None else f" at FPIR {f.fpir:g}"
        lines.append(f"  #{i} {who} (score {score}, threshold {used:.3f}{fpir}){track} box {x1},{y1},{x2},{y2}")
    return lines


def cmd_identify(args: argparse.Namespace) -> int:
    from ..gallery.file import open_gallery
    from ..io import list_images
    from ..video.capture import Capture, CaptureOptions
    from ..video.loop import VideoLoop, VideoOptions, check_can_show

    options = VideoOptions(show=args.show, output=args.output, max_frames=args.max_frames or 0)
    check_can_show(options)
    # the source is opened first (a typo in the path fails before the model loads); the loop decides on tracking
    with Capture(args.source, CaptureOptions(max_image_pixels=args.max_pixels)) as capture, \
            open_gallery(args.gallery, create=False) as gallery:
        if gallery.is_empty():
            raise GalleryError(f"gallery {gallery.location} is empty: enrol people first with "
                               f"`g2d enroll NAME PHOTOS... --gallery {args.gallery}`")
        rec = _recognizer(args, gallery)
        photos = len(list_images(args.source)) if capture.kind == "folder" else 0
        try:
            with VideoLoop(rec, capture, options) as loop, progress(photos, "identifying", "photo") as bar:
                table = _csv_table() if args.csv else None
                for result in loop:
                    _print_frame(args, result, rec.decision(), bar, table)
                    if bar is not None:
                        bar.update(1)
        finally:
            rec.close()
    skipped = loop.capture_stats.skipped if loop.capture_stats is not None else 0
    if not args.json and not args.csv:
        print(f"{loop.frames} frame(s) in {loop.elapsed_s:.1f} s"
              + (f"; skipped {skipped} image(s) that cannot be read or hold no face (too small, too narrow; see the "
                 "warnings above)" if skipped else "")
              + (f"; wrote {printable(loop.written)}" if loop.written is not None else ""))
    return 0


def _print_frame(args: argparse.Namespace, result: Any, decision: Any, bar: Any = None,
                 table: Any = None) -> None:
    """One JSON line (--json), CSV rows (--csv) or a few text lines per frame, printed as soon as the frame is done;
    `decision`: the recogniser's `ThresholdDecision` (each face also carries its own threshold and FPIR)."""
    if table is not None:
        _csv_rows(table, result.record(args.source, decision.threshold))
        return
    if args.json:
        say(bar, json.dumps(result.record(args.source, decision.threshold, decision.to_dict())))
        return
    label = (str(result.path) if result.path is not None  # an image or a folder's photo; else a video's frame
             else f"frame {result.index} ({result.timestamp_ms / 1000:.2f} s)")
    say(bar, "\n".join(printable(line) for line in _frame_lines(label, result.faces, decision.threshold)))


CSV_COLUMNS = ("source", "frame", "timestamp_ms", "image", "face", "name", "score", "masked", "track_id", "x1", "y1",
               "x2", "y2", "threshold")


def _csv_table() -> Any:
    table = csv.writer(sys.stdout, lineterminator="\n")
    table.writerow(CSV_COLUMNS)
    return table


def _csv_rows(table: Any, record: Dict[str, Any]) -> None:
    """The rows of one frame's JSON record (`FrameResult.record`): one per face, or one with no face."""
    head = [printable(record["source"]), record["frame"], record["timestamp_ms"],
            "" if record["image"] is None else printable(record["image"])]
    for i, face in enumerate(record["faces"] or [None]):
        if face is None:
            table.writerow(head + [""] * 9 + [record["threshold"]])
            continue
        table.writerow(head + [i, face["name"] or "", face["score"], face["masked"], face["track_id"],
                               *face["box"], record["threshold"]])
    sys.stdout.flush()


def cmd_verify(args: argparse.Namespace) -> int:
    rec = _recognizer(args)
    try:
        same, score = rec.verify(args.image_a, args.image_b)
        threshold = rec.verify_threshold
    finally:
        rec.close()
    payload = {"image_a": args.image_a, "image_b": args.image_b, "same": bool(same), "score": score,
               "threshold": threshold}
    _emit(args, payload, [f"{'same person' if same else 'different people'} "
                          f"(score {score:.3f}, threshold {threshold:.3f})"])
    return 0 if same else EXIT_DIFFERENT


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..openset import OpenSetRule, calibrate_folder
    from ..openset.cohort import MIN_NAMED
    from ..sidecar import PROBE_KINDS

    done = calibrate_folder(args.people, args.output, model=args.model, masks=not args.no_masks,
                            max_image_pixels=args.max_pixels, backend="onnxruntime")
    rule = OpenSetRule(done.calibration, 0.01)
    sizes = {m: round(rule.threshold(m, "clean"), 4) for m in (1, 10, 100, 1000, 10000)}
    cohort = {k: int(done.calibration.cohort.embeddings(k).shape[0]) for k in PROBE_KINDS}
    lowest = MIN_NAMED / min(cohort.values())
    payload = {"sidecar": str(done.sidecar), "model": str(done.model), "people": done.people, "photos": done.photos,
               "masked_probes": done.masked_probes, "skipped": done.skipped, "clean_threshold_at_fpir_0.01": sizes,
               "cohort_photos": cohort, "cohort_lowest_fpir": round(lowest, 6)}
    lines = [f"calibrated on {done.photos} photo(s) of {done.people} people ({done.skipped} skipped); wrote "
             f"{done.sidecar} and {done.model}",
             "size table, clean faces, FPIR 0.01: " + ", ".join(f"{m} templates -> {t:.3f}" for m, t in sizes.items()),
             f"stranger cohort: {cohort['clean']} clean / {cohort['masked']} masked photos: a gallery's threshold is "
             f"measured with them for a target FPIR of {lowest:.2g} or more (lower: the size table)",
             f"use it with --model {done.model}"]
    _emit(args, payload, lines)
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from ..gallery.file import open_gallery

    if args.action in ("export", "import"):
        return _copy_gallery(args)
    with open_gallery(args.gallery, create=False) as gallery:
        return _edit_gallery(args, gallery)


def _edit_gallery(args: argparse.Namespace, gallery: Any) -> int:
    if args.action == "list":
        people = [{"name": i.name, "templates": i.templates, "masked": i.masked} for i in gallery.identities()]
        payload = {"gallery": gallery.location, "embedding_space": gallery.embedding_space,
                   "model_name": gallery.model_name, "threshold": gallery.threshold, "identities": people}
        masked = sum(p["masked"] for p in people)
        lines = [f"{gallery.location}: {len(people)} people, {sum(p['templates'] for p in people)} templates"
                 + (f" ({masked} masked)" if masked else "")]
        lines += [f"  {p['name']}  ({p['templates']} templates" + (f", {p['masked']} masked)" if p["masked"] else ")")
                  for p in people]
        _emit(args, payload, lines)
        return 0
    if args.action == "remove":
        removed = gallery.remove(args.name)
        gallery.save()
        _emit(args, {"removed": args.name, "templates": removed, "identities": len(gallery)},
              [f"removed {args.name} ({removed} templates); {len(gallery)} people left"])
        return 0
    gallery.rename(args.old, args.new)
    gallery.save()
    _emit(args, {"renamed": args.old, "to": args.new}, [f"renamed {args.old} to {args.new}"])
    return 0


def _copy_gallery(args: argparse.Namespace) -> int:
    """`gallery export DEST --gallery SRC` and `gallery import SRC --gallery DEST`: copy_gallery between any two
    galleries (file or database); the source must exist, the destination is created if missing."""
    from ..gallery.file import open_gallery
    from ..gallery.protocol import copy_gallery

    source, destination = ((args.gallery, args.destination) if args.action == "export"
                           else (args.source, args.gallery))
    with open_gallery(source, create=False) as src, open_gallery(destination) as dst:
        result = copy_gallery(src, dst, replace=args.replace)
        payload = {"source": src.location, "destination": dst.location, "identities": result.identities,
                   "templates": result.templates, "replaced": result.replaced}
        line = (f"copied {result.identities} people ({result.templates} templates) from {src.location} to "
                f"{dst.location}" + (f"; {result.replaced} replaced" if result.replaced else ""))
    _emit(args, payload, [line])
    return 0


def cmd_checks(args: argparse.Namespace) -> int:
    from .checks import report, report_lines

    data = report()
    _emit(args, data, report_lines(data))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serve.command import run

    return run(args)


COMMANDS = {"enroll": cmd_enroll, "identify": cmd_identify, "verify": cmd_verify, "gallery": cmd_gallery,
            "calibrate": cmd_calibrate, "serve": cmd_serve, "checks": cmd_checks}


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool) -> Iterator[None]:
    """Hide what native libraries (MediaPipe's TFLite / absl start-up chatter) write straight to file descriptor 2,
    while Python's own stderr (our logging and error line) still reaches the terminal."""
    if not enabled or sys.stderr is not sys.__stderr__:  # already redirected (tests, wrappers): leave it alone
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters, some IDEs)
        yield
        return
    old_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None) or "utf-8",
                           errors="backslashreplace")
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr.close()
        sys.stderr = old_stderr


def _check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Argument combinations argparse cannot express; a wrong one exits with status 2 as argparse does."""
    if args.command == "enroll":
        if args.folder is not None and (args.name is not None or args.images):
            parser.error("enroll: give either NAME PHOTO... or --folder PEOPLE_DIR, not both")
        if args.folder is None and (args.name is None or not args.images):
            parser.error("enroll: give NAME PHOTO... (the person's name and photos) or --folder PEOPLE_DIR")
    if args.command == "identify" and args.csv and args.json:
        parser.error("identify: give --json or --csv, not both")
    if args.command == "identify" and args.output is not None \
            and Path(args.output).suffix.lower() not in VIDEO_CODECS:
        parser.error(f"identify: --output must be a video file ending in {', '.join(VIDEO_CODECS)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `g2d` console script and `python -m g2d_edge`. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level  # a caller's logging (main() called in-process)
    with _quiet_native_stderr(enabled=not args.verbose):
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
        if not args.verbose:  # pymilvus logs every failed request itself; our one error line says it all
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        try:
            return run_command("g2d", lambda: COMMANDS[args.command](args), handle_sigterm=True)
        finally:
            for handler in root.handlers[:]:  # ours (bound to this call's stderr) go, the caller's come back
                root.removeHandler(handler)
                handler.close()
            for handler in saved_handlers:
                root.addHandler(handler)
            root.setLevel(saved_level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
