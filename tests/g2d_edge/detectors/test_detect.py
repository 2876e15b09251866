"""Face detection on real photographs with every detector (YuNet, BlazeFace short and full range), then alignment;
the options, the defaults and the model errors."""
import cv2
import numpy as np
import pytest

from g2d_edge.align import align_face, estimate_alignment, keypoints_to_template_points, transform_points
from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.detectors import YuNetDetector
from g2d_edge.errors import InputError, ModelError
from runtime_helpers import draw_mask, read
import shared_data

RMFD_DIR = shared_data.SHARED_DIR / "data" / "rmfd-real"

#: Detectors under test, with the number of keypoints their faces carry.
DETECTORS = {
    "yunet": (DetectorOptions(model="yunet", keypoints="detector", min_face_size=10), 5),
    "yunet+blazeface-keypoints": (DetectorOptions(model="yunet", min_face_size=10), 6),
    "short": (DetectorOptions(model="short", min_face_size=10), 6),
    "full": (DetectorOptions(model="full", min_face_size=10), 6),
}


@pytest.fixture(scope="module", params=list(DETECTORS))
def detector(request):
    options, n_keypoints = DETECTORS[request.param]
    with FaceDetector(options) as det:
        det.n_keypoints = n_keypoints
        yield det


def test_detects_and_aligns_real_faces(detector, celeba_people):
    photos = [p for ps in celeba_people.values() for p in ps[:3]]
    for path in photos:
        image = read(path)
        faces = detector.detect(image)
        assert faces, path
        face = faces[0]  # the largest: the person the loose crop is centred on
        x1, y1, x2, y2 = face.box
        assert -2 <= x1 < x2 <= image.shape[1] + 2 and -2 <= y1 < y2 <= image.shape[0] + 2
        assert 36 <= (x1 + x2) / 2 <= 108 and 30 <= (y1 + y2) / 2 <= 108, path
        assert face.score >= 0.5 and face.keypoints.shape == (detector.n_keypoints, 2)
        assert face.keypoints[0, 0] < face.keypoints[1, 0]  # the image-left eye comes first
        # after alignment the keypoints land near the template they are aligned to
        src, template = keypoints_to_template_points(face.keypoints)
        moved = transform_points(src, estimate_alignment(face.keypoints))
        assert np.abs(moved - template).max() < 12.0  # residual of a turned head
        assert align_face(image, face.keypoints).shape == (112, 112, 3)


def test_masked_face_is_still_detected(detector, celeba_people):
    if detector.options.model == "full":
        pytest.skip("BlazeFace full range misses many masked faces (113 of 787 in benchmarks/detection.py)")
    for photos in list(celeba_people.values())[:2]:
        image = read(photos[0])
        face = detector.detect(image)[0]
        found = detector.detect(draw_mask(image, face.keypoints))
        assert found, "a surgical-mask-like occlusion must not stop detection"
        # the eyes stay put (YuNet's own eye points move most: up to 10.4 px on these ~70 px faces)
        assert np.linalg.norm(found[0].keypoints[:2] - face.keypoints[:2], axis=1).max() < 12


def test_real_masked_photos(detector):
    """Real people wearing masks (rmfd-real, the first 30 photos): a face is found in nearly all of them (when
    written: YuNet 29, BlazeFace short 28, full 26); every face reported is a well-formed detection."""
    if not RMFD_DIR.is_dir():
        pytest.skip(shared_data.missing("real masked photos", RMFD_DIR))
    paths = sorted(RMFD_DIR.rglob("*.jpg"))[:30]
    found = 0
    for path in paths:
        faces = detector.detect(read(path))
        found += bool(faces)
        for face in faces:
            assert face.box.shape == (4,) and face.keypoints.shape in ((5, 2), (6, 2))
            assert face.box[2] - face.box[0] >= 10 and np.isfinite(face.keypoints).all()
    expected = 28 if detector.options.model == "yunet" else 24
    assert found >= expected, f"{detector.name}: a face in {found} of {len(paths)} real masked photos"


def test_no_face_gives_empty_list(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 40, (240, 320, 3), dtype=np.uint8)) == []


@pytest.mark.parametrize("model", ["yunet", "short"])
def test_min_face_size_and_max_faces_filter(model, celeba_people):
    image = read(next(iter(celeba_people.values()))[0])
    with FaceDetector(DetectorOptions(model=model, min_face_size=1000)) as det:
        assert det.detect(image) == []
    two = np.hstack([image, read(list(celeba_people.values())[1][0])])
    with FaceDetector(DetectorOptions(model=model)) as det:
        assert len(det.detect(two)) == 2
    with FaceDetector(DetectorOptions(model=model, max_faces=1)) as det:
        assert len(det.detect(two)) == 1


@pytest.mark.parametrize("bad", [np.zeros((100, 100), np.uint8), np.zeros((100, 100, 3), np.float32),
                                 np.zeros((100, 100, 4), np.uint8), "frame.jpg", np.zeros((4, 4, 3), np.uint8)])
def test_bad_frames_raise_input_error(detector, bad):
    with pytest.raises(InputError):
        detector.detect(bad)


def test_defaults_and_the_old_front_end():
    """The default is YuNet in the every-scale mode with BlazeFace keypoints; model="short" alone is the old
    front end (BlazeFace short range, one pass)."""
    with FaceDetector() as det:
        assert det.name == "yunet every-scale + blazeface keypoints" and det.every_scale
    with FaceDetector(DetectorOptions(model="short")) as det:
        assert det.name == "blazeface-short" and not det.every_scale
    with FaceDetector(DetectorOptions(model="full", every_scale=True)) as det:
        assert det.name == "blazeface-full every-scale"
    with FaceDetector(DetectorOptions(every_scale=False, keypoints="detector")) as det:
        assert det.name == "yunet"


@pytest.mark.parametrize("bad", [dict(model="medium"), dict(keypoints="dlib"), dict(every_scale="yes"),
                                 dict(min_confidence=1.5), dict(min_face_size=-1), dict(tile_size=8),
                                 dict(tile_overlap=0.95), dict(nms_iou=0.0), dict(max_input_side=400),
                                 dict(pad_retry=-0.1), dict(runtime="tflite"), dict(threads=-1)])
def test_invalid_options_raise_input_error(bad):
    with pytest.raises(InputError, match=next(iter(bad))):
        FaceDetector(DetectorOptions(**bad))


def test_yunet_model_errors_say_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="missing.*model='short'"):
        YuNetDetector(model_path=tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file" * 10)
    with pytest.raises(ModelError, match="cannot load the YuNet model"):
        YuNetDetector(model_path=corrupt)


def test_yunet_keypoints_and_input_sizes(celeba_people):
    """YuNet's own 5 keypoints (eyes, nose tip, mouth corners) sit where they should; images are padded to a
    multiple of 64 px, so photos of similar size share one planned network."""
    image = read(next(iter(celeba_people.values()))[0])
    yunet = YuNetDetector()
    try:
        face = yunet.detect(image)[0]
        eyes, nose, mouth = face.keypoints[:2], face.keypoints[2], face.keypoints[3:]
        assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()
        assert mouth[0, 0] < nose[0] < mouth[1, 0] and eyes[0, 0] < nose[0] < eyes[1, 0]
        yunet.detect(cv2.resize(image, (130, 140)))
        assert list(yunet._nets) == [(320, 320), (192, 192)]
    finally:
        yunet.close()
