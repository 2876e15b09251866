"""Issue 22, "every bad input is a G2DError": wrong-type and wrong-value options used to escape as TypeError,
ValueError or OpenCV errors (14 of 18 in the battery), some only when a frame was processed. Now each is an InputError
when the options are made, naming the field; and a seeded fuzz feeds odd values to every field of every public
options class and to the free option-like arguments (`Gallery`, `read_image`)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from g2d_edge import Recognizer, RecognizerOptions
from g2d_edge.backends import BackendOptions, OrtOptions
from g2d_edge.detectors import DetectorOptions
from g2d_edge.draw import DrawOptions
from g2d_edge.errors import G2DError, InputError
from g2d_edge.gallery import Gallery
from g2d_edge.io import read_image
from g2d_edge.video import CaptureOptions
from g2d_edge.video.loop import VideoOptions
from g2d_edge.video.tracking import TrackingOptions
from runtime_helpers import options_classes

NAN = float("nan")
CLASSES = options_classes()
#: The battery's 18 wrong-type / wrong-value options: (what is made, the field its message must name).
BATTERY = [
    (lambda: RecognizerOptions(top_k="3"), "top_k"),
    (lambda: DetectorOptions(max_faces=2.5), "max_faces"),
    (lambda: DetectorOptions(min_face_size=NAN), "min_face_size"),
    (lambda: DetectorOptions(min_input_side=100000), "min_input_side"),
    (lambda: TrackingOptions(recognise_every="5"), "recognise_every"),
    (lambda: Gallery(embedding_dim="abc"), "embedding_dim"),
    (lambda: RecognizerOptions(threshold="0.5"), "threshold"),
    (lambda: RecognizerOptions(min_face_size=2.5), "min_face_size"),
    (lambda: RecognizerOptions(mask_flag="no"), "mask_flag"),
    (lambda: DetectorOptions(min_confidence="high"), "min_confidence"),
    (lambda: DetectorOptions(every_scale="yes"), "every_scale"),
    (lambda: DetectorOptions(nms_iou=NAN), "nms_iou"),
    (lambda: DetectorOptions(max_input_side=10 ** 9), "max_input_side"),
    (lambda: TrackingOptions(better_face_ratio=NAN), "better_face_ratio"),
    (lambda: TrackingOptions(vote_window=2.5), "vote_window"),
    (lambda: CaptureOptions(width="640"), "width"),
    (lambda: VideoOptions(show="no"), "show"),
    (lambda: DrawOptions(thickness="2"), "thickness"),
]


@pytest.mark.parametrize("make,field", BATTERY, ids=[f for _, f in BATTERY])
def test_the_battery_of_bad_options_gives_input_errors_naming_the_field(make, field):
    with pytest.raises(InputError, match=field):
        make()


def test_options_are_refused_before_a_model_is_opened(tiny_onnx_model):
    with pytest.raises(InputError, match="options must be a RecognizerOptions"):
        Recognizer(tiny_onnx_model, options={"top_k": 3})
    with pytest.raises(InputError, match="OrtOptions.intra_op_threads"):
        RecognizerOptions(backend_options=BackendOptions(onnxruntime=OrtOptions(intra_op_threads="2")))
    with pytest.raises(InputError, match="unknown backend option"):
        BackendOptions.of(batch_size=4)
    with pytest.raises(InputError, match="RecognizerOptions.backend_options"):
        RecognizerOptions(backend_options={"intra_op_threads": 1})


ODD = [None, True, False, -1, 0, 1, 2.5, 10 ** 12, NAN, float("inf"), "", "x", "3", "\x00", [], (), {}, [1, "a"],
       (1.0, NAN), np.int64(-5), np.float32(NAN), b"x"]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fuzzed_options_are_made_or_refused_with_an_input_error(cls):
    rng = np.random.default_rng(22)
    fields = [f.name for f in dataclasses.fields(cls)]
    made = refused = 0
    for _ in range(150):
        chosen = rng.choice(fields, size=int(rng.integers(1, min(4, len(fields)) + 1)), replace=False)
        kwargs = {str(name): ODD[int(rng.integers(len(ODD)))] for name in chosen}
        try:
            options = cls(**kwargs)
        except InputError as exc:
            refused += 1
            assert f"{cls.__name__}." in str(exc)
        else:
            made += 1
            assert dataclasses.replace(options) == options  # a made options object is valid as it stands
    assert refused > 0


def test_free_option_like_arguments_are_input_errors(tmp_path):
    photo = tmp_path / "p.png"
    import cv2

    cv2.imwrite(str(photo), np.zeros((20, 20, 3), np.uint8))
    for bad in (0, -1, 2.5, "5", NAN, True, None):
        with pytest.raises(InputError, match="max_pixels"):
            read_image(photo, max_pixels=bad)
    for kwargs in ({"threshold": 75}, {"threshold": NAN}, {"embedding_space": ""}, {"lock_timeout": "x"},
                   {"use_faiss": "yes"}):
        with pytest.raises(G2DError):
            Gallery(**kwargs)
