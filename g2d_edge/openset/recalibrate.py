"""`g2d calibrate`: the open-set calibration (`g2d_edge.openset.calibration`) measured on your own camera's photos,
written into a COPY of the model (its sidecar with the new calibration, and the model file beside it); the model
itself and the models shipped in the package are never written.

    g2d calibrate people/ -o my-camera.json            # people/<person>/<photo>; then --model my-camera.onnx

Each photo (and, unless `masks=False`, the same photo with a synthetic mask, `g2d_edge.masks.templates`) is a
stranger probe against every photo of the other people, one template each; the photos' embeddings are also stored as
the calibration's stranger cohort, with which the SDK measures the threshold on the gallery at hand
(`g2d_edge.openset.cohort`).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..imagesize import DEFAULT_MAX_IMAGE_PIXELS
from ..sidecar import ModelSidecar, OpenSetCalibration, StrangerCohort
from .calibration import build_calibration, impostor_scores, mean_templates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderCalibration:
    """What `calibrate_folder` did: the calibration, the files written, and the photos it used."""

    calibration: OpenSetCalibration
    sidecar: Path
    model: Path
    people: int
    photos: int
    masked_probes: int
    skipped: int


def _folder_embeddings(rec: Any, people: Sequence[Tuple[str, Sequence[Path]]], masks: bool
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(clean embeddings, their person index, masked embeddings, their person index, photos skipped)."""
    from ..align import align_face
    from ..errors import G2DError
    from ..masks.templates import MaskedViews

    views = MaskedViews(rec.detector, 1, seed=19) if masks else None
    clean, clean_who, masked, masked_who, skipped = [], [], [], [], 0
    try:
        for who, (name, photos) in enumerate(people):
            for i, photo in enumerate(photos):
                try:
                    frame, face = rec._largest_face(photo, str(photo))
                except G2DError as exc:
                    log.warning("calibrate: skipping %s", exc)
                    skipped += 1
                    continue
                clean.append(align_face(frame, face.keypoints))
                clean_who.append(who)
                if views is not None:
                    masked += views(frame, face, f"{name}/{i}")
                    masked_who.append(who)
    finally:
        if views is not None:
            views.close()
    embed = lambda crops: rec.embed(np.stack(crops)) if crops else np.zeros((0, rec.embedding_dim))  # noqa: E731
    return embed(clean), np.array(clean_who), embed(masked), np.array(masked_who), skipped


def _folder_cohort(clean: Tuple[np.ndarray, np.ndarray], masked: Tuple[np.ndarray, np.ndarray], masks: bool,
                   sidecar: ModelSidecar, people: int) -> StrangerCohort:
    """The folder's photos as the stranger cohort (`g2d_edge.openset.cohort`); without masks, the model's masked
    cohort is kept where it has one (else the clean photos stand in for masked ones, as in the table)."""
    shipped = None if sidecar.open_set is None else sidecar.open_set.cohort
    if masks:
        return StrangerCohort.of({"clean": clean[0], "masked": masked[0]}, people,
                                 {"clean": clean[1], "masked": masked[1]})
    if shipped is None:
        return StrangerCohort.of({"clean": clean[0], "masked": clean[0]}, people,
                                 {"clean": clean[1], "masked": clean[1]})
    # the model's masked photos are of other people than the folder's: number them after the folder's
    kept = shipped.person_of("masked")
    return StrangerCohort.of({"clean": clean[0], "masked": shipped.embeddings("masked")}, people + int(kept.max()) + 1,
                             {"clean": clean[1], "masked": kept + people})


def _copy_paths(model: Path, output: Path) -> Tuple[Path, Path]:
    """(sidecar, model) paths of the copy; InputError when it would overwrite the source or a shipped model."""
    from ..shipped import MODELS_DIR

    out_model = output.with_suffix(model.suffix)
    out_sidecar = output.with_suffix(".json")
    for path in (out_model, out_sidecar):
        resolved = path.resolve()
        if resolved in (model.resolve(), model.with_suffix(".json").resolve()) \
                or resolved.parent == MODELS_DIR.resolve():
            raise InputError(f"-o {output}: the calibrated copy must not overwrite the model or a shipped model "
                             f"({path}); write it somewhere else, e.g. -o my-camera.json")
    return out_sidecar, out_model


def calibrate_folder(people_dir: Union[str, Path], output: Union[str, Path], model: Any = None,
                     masks: bool = True, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                     **recognizer_kwargs: Any) -> FolderCalibration:
    """Recalibrate a model's open-set thresholds on your own camera's photos, into a COPY of the model.

    people_dir: one sub-folder of photos per person (at least 2 people; the more people and photos, the further the
    calibration reaches: each photo is a stranger probe against every photo of the other people). masks: also
    probe with a synthetic mask drawn on each photo (else the model's masked table is kept, or the clean one used).
    Writes `output` (.json sidecar) and the model beside it under the same name; never touches the source model.
    The copy keeps the model's gallery search (`OpenSetCalibration.fusion`): for "mean" the impostors are fused
    templates of 1-5 photos of each other person (`mean_templates`), as such a gallery holds them.
    """
    from ..backends.loader import _resolve_model
    from ..io import list_people
    from ..recognizer import Recognizer, RecognizerOptions
    from ..sidecar import sidecar_path_for

    source = _resolve_model(model)
    out_sidecar, out_model = _copy_paths(source, Path(output))
    people = list_people(people_dir)
    if len(people) < 2:
        raise InputError(f"{people_dir}: calibration needs photos of at least 2 people (one sub-folder each), "
                         f"found {len(people)}")
    options = RecognizerOptions(mask_flag=False, warmup=False, max_image_pixels=max_image_pixels)
    with Recognizer(model=source, options=options, **recognizer_kwargs) as rec:
        clean, clean_who, masked, masked_who, skipped = _folder_embeddings(rec, people, masks)
        sidecar = rec.sidecar
    fusion = "max" if sidecar.open_set is None else sidecar.open_set.fusion
    # the impostor templates as the model's search sees them: photos, or fused templates of 1-5 photos ("mean")
    impostors, impostor_who = (clean, clean_who) if fusion == "max" else mean_templates(clean, clean_who)
    scores: Dict[str, List[np.ndarray]] = {}
    for kind, emb, who in (("clean", clean, clean_who), ("masked", masked, masked_who)):
        scores[kind] = [row[impostor_who != w] for row, w in
                        zip(impostor_scores(emb, impostors) if len(emb) else [], who)]
    if not masks:
        scores["masked"] = scores["clean"]
    measured = int(min((len(s) for s in scores["clean"]), default=0))
    if measured < 2:
        raise InputError(f"{people_dir}: too few usable photos to calibrate ({len(clean)} with a face)")
    text = (f"g2d calibrate: {len(clean)} photos of {len(people)} people in {people_dir}"
            + (", each also with a synthetic mask" if masks else ""))
    calibration = build_calibration(scores, measured, sidecar.embedding_space, text, fusion=fusion,
                                    cohort=_folder_cohort((clean, clean_who), (masked, masked_who), masks, sidecar,
                                                          len(people)))
    if not masks and sidecar.open_set is not None:  # keep the shipped masked table
        calibration = dataclasses.replace(calibration, thresholds={**calibration.thresholds,
                                                                   "masked": sidecar.open_set.thresholds["masked"]})
    if measured < 200:
        log.warning("calibrated on %d impostor templates per photo only: thresholds for larger galleries rest on the "
                    "tail model; add people (or photos of other people) for a sounder calibration", measured)
    out_sidecar.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out_model)
    dataclasses.replace(sidecar, open_set=calibration).save(out_sidecar)
    if sidecar_path_for(out_model) != out_sidecar:
        raise InputError(f"{out_model} would not find its sidecar {out_sidecar}")  # pragma: no cover
    return FolderCalibration(calibration, out_sidecar, out_model, len(people), len(clean), len(masked), skipped)
