"""MediaPipe detection on real photographs, then alignment."""
import cv2
import numpy as np
import pytest

from g2d_edge.align import ARCFACE_TEMPLATE_4, align_face, estimate_alignment, transform_points
from g2d_edge.detect import DetectorOptions, FaceDetector
from g2d_edge.errors import InputError


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectorOptions(min_face_size=10)) as det:
        yield det


def test_detects_and_aligns_real_faces(detector, celeba_people):
    photos = [p for ps in celeba_people.values() for p in ps[:3]]
    for path in photos:
        image = cv2.imread(str(path))
        faces = detector.detect(image)
        assert len(faces) == 1, path
        face = faces[0]
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= image.shape[1] + 2 and 0 <= y1 < y2 <= image.shape[0] + 2
        assert face.score > 0.5 and face.keypoints.shape == (6, 2)
        assert face.keypoints[0, 0] < face.keypoints[1, 0]  # the image-left eye comes first
        # after alignment the eyes, nose and mouth land near the template
        moved = transform_points(face.keypoints[:4], estimate_alignment(face.keypoints))
        assert np.abs(moved - ARCFACE_TEMPLATE_4).max() < 12.0  # residual of a turned head
        assert align_face(image, face.keypoints).shape == (112, 112, 3)


def test_masked_face_is_still_detected(detector, celeba_people):
    path = next(iter(celeba_people.values()))[0]
    image = cv2.imread(str(path))
    face = detector.detect(image)[0]
    eyes, nose, mouth, ear_l, ear_r = face.keypoints[:2], face.keypoints[2], face.keypoints[3], face.keypoints[4], \
        face.keypoints[5]
    chin_y = mouth[1] + (mouth[1] - nose[1]) * 2.0
    top_y = (eyes[:, 1].mean() + nose[1]) / 2
    poly = np.array([[ear_l[0], top_y], [ear_r[0], top_y], [ear_r[0], mouth[1]], [mouth[0] + 15, chin_y],
                     [mouth[0] - 15, chin_y], [ear_l[0], mouth[1]]], np.int32)
    masked = image.copy()
    cv2.fillPoly(masked, [poly], (235, 200, 150))
    found = detector.detect(masked)
    assert found, "a surgical-mask-like occlusion must not stop detection"
    assert np.linalg.norm(found[0].keypoints[:2] - eyes, axis=1).max() < 10


def test_no_face_gives_empty_list(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 40, (240, 320, 3), dtype=np.uint8)) == []


def test_min_face_size_filters(celeba_people):
    image = cv2.imread(str(next(iter(celeba_people.values()))[0]))
    with FaceDetector(DetectorOptions(min_face_size=1000)) as det:
        assert det.detect(image) == []


@pytest.mark.parametrize("bad", [np.zeros((100, 100), np.uint8), np.zeros((100, 100, 3), np.float32),
                                 np.zeros((100, 100, 4), np.uint8), "frame.jpg", np.zeros((4, 4, 3), np.uint8)])
def test_bad_frames_raise_input_error(detector, bad):
    with pytest.raises(InputError):
        detector.detect(bad)


def test_unknown_model_name():
    with pytest.raises(InputError):
        FaceDetector(DetectorOptions(model="medium"))
