"""The shared aligner: known keypoints -> known crop."""
import cv2
import numpy as np
import pytest

from g2d_edge.align import (ALIGNED_SIZE, ARCFACE_TEMPLATE_4, ARCFACE_TEMPLATE_5, align_face, estimate_alignment,
                            similarity_transform, transform_points)
from g2d_edge.errors import InputError


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([scale * rot, [[tx], [ty]]])


def test_similarity_transform_recovers_a_known_transform():
    src = np.random.default_rng(0).uniform(0, 200, (5, 2))
    m = _similarity(1.7, 23.0, 12.0, -40.0)
    dst = transform_points(src, m)
    np.testing.assert_allclose(similarity_transform(src, dst), m, atol=1e-9)


def test_template_keypoints_give_the_identity_transform():
    np.testing.assert_allclose(estimate_alignment(ARCFACE_TEMPLATE_5), np.hstack([np.eye(2), np.zeros((2, 1))]),
                               atol=1e-9)


def test_known_keypoints_give_known_crop():
    # Draw a face-like pattern on the template, move it by a known similarity into a larger frame, align it back.
    crop = np.zeros((ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
    crop[:] = (40, 80, 120)
    for x, y in ARCFACE_TEMPLATE_5:
        cv2.circle(crop, (int(round(x)), int(round(y))), 5, (255, 255, 255), -1, cv2.LINE_AA)
    forward = _similarity(2.0, -15.0, 150.0, 60.0)
    frame = cv2.warpAffine(crop, forward, (400, 400), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    keypoints = transform_points(ARCFACE_TEMPLATE_5, forward)
    aligned = align_face(frame, keypoints)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    inner = (slice(8, 104), slice(8, 104))  # borders differ by interpolation only
    assert np.abs(aligned[inner].astype(int) - crop[inner].astype(int)).mean() < 3.0


def test_mediapipe_six_points_map_eyes_nose_mouth_centre():
    six = np.vstack([ARCFACE_TEMPLATE_4, [[10.0, 60.0], [102.0, 60.0]]])  # ears far out must not matter
    m = estimate_alignment(six)
    np.testing.assert_allclose(transform_points(ARCFACE_TEMPLATE_4, m), ARCFACE_TEMPLATE_4, atol=1e-6)


def test_swapped_eyes_are_reordered():
    swapped = ARCFACE_TEMPLATE_5[[1, 0, 2, 4, 3]]
    np.testing.assert_allclose(estimate_alignment(swapped)[:, :2], np.eye(2), atol=1e-9)


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.zeros((5, 3)), np.full((5, 2), np.nan), np.zeros((5, 2))])
def test_bad_keypoints_raise_input_error(bad):
    with pytest.raises(InputError):
        align_face(np.zeros((50, 50, 3), np.uint8), bad)


def test_bad_image_raises_input_error():
    with pytest.raises(InputError):
        align_face(np.zeros((50, 50), np.uint8), ARCFACE_TEMPLATE_5)
