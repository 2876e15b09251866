"""The per-face mask flag: the shipped classifier tells real masked faces from clean ones, and Recognizer reports it."""
from __future__ import annotations


import numpy as np
import onnxruntime as ort
import pytest

from g2d_edge import Recognizer
from g2d_edge.io import read_image
from g2d_edge.align import align_face
from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.errors import InputError, ModelError
from g2d_edge.masks import MaskFlag
from g2d_edge.masks.flag import SHIPPED_MASK_FLAG
from g2d_edge.recognizer import RecognizerOptions
import shared_data

RMFD = shared_data.SHARED_DIR / "data" / "rmfd-real"


@pytest.fixture(scope="module")
def flag() -> MaskFlag:
    assert SHIPPED_MASK_FLAG.is_file(), f"the shipped mask classifier is missing: {SHIPPED_MASK_FLAG}"
    return MaskFlag()


def _aligned(paths) -> np.ndarray:
    crops = []
    with FaceDetector(DetectorOptions()) as det:
        for path in paths:
            image = read_image(path)
            faces = det.detect(image)
            if faces:
                crops.append(align_face(image, faces[0].keypoints))
    return np.stack(crops)


def test_real_masked_photos_are_flagged_masked(flag):
    if not RMFD.is_dir():
        pytest.skip(shared_data.missing("real masked photos", RMFD))
    photos = sorted(RMFD.rglob("*.jpg"))[::40][:20]  # a spread over the crawl batches
    crops = _aligned(photos)
    assert len(crops) >= 15
    assert flag.is_masked(flag.scores(crops)).mean() >= 0.8


def test_clean_photos_are_flagged_clean_and_masks_drawn_on_them_masked(flag, celeba_people):
    from g2d_edge.masks import MaskOptions, MaskSynthesizer

    photos = [p for ps in celeba_people.values() for p in ps[:3]]
    crops = _aligned(photos)
    assert flag.is_masked(flag.scores(crops)).mean() <= 0.2
    synth = MaskSynthesizer(MaskOptions())
    masked = np.stack([synth.synth(c, np.random.default_rng(i))[0] for i, c in enumerate(crops)])
    assert flag.is_masked(flag.scores(masked)).mean() >= 0.8


def test_bad_input_and_bad_files_are_clear_errors(flag, tmp_path, tiny_onnx_model):
    with pytest.raises(InputError, match="112, 112, 3"):
        flag.scores(np.zeros((2, 64, 64, 3), np.uint8))
    assert flag.scores(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0,)
    with pytest.raises(ModelError, match="not found"):
        MaskFlag(tmp_path / "missing.onnx")
    with pytest.raises(ModelError, match="not a g2d-edge mask classifier"):
        MaskFlag(tiny_onnx_model)  # a recogniser, not a mask classifier
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        MaskFlag(garbage)
    with pytest.raises(InputError, match="threshold"):
        MaskFlag(threshold=1.5)


def test_shipped_classifier_records_its_threshold():
    meta = ort.InferenceSession(str(SHIPPED_MASK_FLAG)).get_modelmeta().custom_metadata_map
    assert meta["kind"] == "g2d-mask-flag" and 0 < float(meta["threshold"]) < 1


def test_recognizer_reports_the_flag_and_can_turn_it_off(celeba_people):
    from g2d_edge.masks import MaskOptions, MaskSynthesizer

    photo = read_image(next(iter(celeba_people.values()))[0])
    with FaceDetector(DetectorOptions()) as det:
        face = det.detect(photo)[0]
    masked_photo, _ = MaskSynthesizer(MaskOptions()).synth(photo, np.random.default_rng(3), keypoints=face.keypoints)
    with Recognizer() as rec:
        (clean,) = rec.identify(photo)[:1]
        (masked,) = rec.identify(masked_photo)[:1]
    assert clean.masked is False and masked.masked is True
    assert 0 <= clean.mask_score < masked.mask_score <= 1
    assert clean.to_dict()["masked"] is False and "mask_score" in clean.to_dict()
    with Recognizer(options=RecognizerOptions(mask_flag=False)) as rec:
        (face,) = rec.identify(photo)[:1]
    assert face.masked is None and face.mask_score is None
