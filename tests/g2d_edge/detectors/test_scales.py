"""The every-scale mode: small faces in a 1080p frame (which the old front end misses) and a face filling the frame,
on real photos; and its parts (views, merging, cut faces, BlazeFace keypoints for YuNet's faces) on known boxes."""
from typing import List

import numpy as np
import pytest

from g2d_edge.detectors import DetectorOptions, FaceDetector
from g2d_edge.detectors import Detection
from g2d_edge.detectors.refine import BlazeFaceKeypoints, square_crop
from g2d_edge.detectors.scales import (PYRAMID_MAX_FACE, View, detect_in_view, detect_views, merge_detections,
                                       pyramid_views, tile_views)
from runtime_helpers import faces_in_cells, place_in_frame, read


@pytest.fixture(scope="module")
def photos(celeba_people) -> List[np.ndarray]:
    return [read(p) for ps in celeba_people.values() for p in ps[:3]]


# ---------------------------------------------------------------------------------------------- real photos
@pytest.fixture(scope="module")
def small_faces(photos):
    """12 real people, 64 px photos (faces ~30 px wide) spread over a 1920x1080 frame."""
    return place_in_frame(photos, (1080, 1920), cell=64)


def test_old_front_end_misses_small_faces_in_1080p(small_faces):
    frame, cells = small_faces
    with FaceDetector(DetectorOptions(model="short")) as det:  # the front end before issue 11
        assert faces_in_cells(det.detect(frame), cells) <= 2


@pytest.mark.parametrize("options", [DetectorOptions(), DetectorOptions(model="short", every_scale=True)],
                         ids=["default (yunet every-scale)", "blazeface-short every-scale"])
def test_every_scale_finds_small_faces_in_1080p(small_faces, options):
    frame, cells = small_faces
    with FaceDetector(options) as det:
        faces = det.detect(frame)
    assert faces_in_cells(faces, cells) >= len(cells) - 1, f"{det.name} found {len(faces)} faces"
    assert len(faces) <= len(cells) + 1  # no duplicates from the overlapping passes
    for face in faces:  # about the face's width (~30 px), or the cell's at a coarser scale
        assert 15 <= face.box[2] - face.box[0] <= 100


@pytest.mark.parametrize("options", [DetectorOptions(), DetectorOptions(model="short")],
                         ids=["default (yunet every-scale)", "blazeface-short"])
def test_a_face_filling_a_1080p_frame_is_found_once(photos, options):
    frame, cells = place_in_frame(photos[:1], (1080, 1920), cell=1000, margin=40)
    with FaceDetector(options) as det:
        faces = det.detect(frame)
    assert len(faces) == 1 and faces_in_cells(faces, cells) == 1
    assert 300 <= faces[0].box[2] - faces[0].box[0] <= 800


def test_yunet_faces_carry_blazeface_keypoints(photos):
    """The default front end aligns YuNet's faces from BlazeFace's keypoints (the crops the shipped model was
    trained on): they match BlazeFace's own on the same photo."""
    with FaceDetector(DetectorOptions(min_face_size=10)) as det, \
            FaceDetector(DetectorOptions(model="short", min_face_size=10)) as blazeface:
        for image in photos[:4]:
            mine, theirs = det.detect(image)[0], blazeface.detect(image)[0]
            assert mine.keypoints.shape == (6, 2)
            assert np.abs(mine.keypoints[:4] - theirs.keypoints[:4]).max() < 4.0
    refine = BlazeFaceKeypoints()
    try:
        blank = np.full((200, 200, 3), 90, np.uint8)
        own = Detection(np.array([50, 50, 120, 130], np.float32), np.full((5, 2), 80, np.float32), 0.9)
        assert refine.refine(blank, [own])[0] is own  # nothing found there: the detector's keypoints stay
    finally:
        refine.close()


# -------------------------------------------------------------------------------------------- views and merging
class FixedBoxes:
    """A stand-in detector that returns given boxes (in the pixels of the image it is handed)."""

    name = "fixed"
    input_side = None
    default_confidence = 0.5

    def __init__(self, boxes):
        self.boxes = boxes
        self.seen = []

    def detect(self, image):
        self.seen.append(image.shape[:2])
        return [Detection(np.array(b, np.float32), np.zeros((5, 2), np.float32), s) for b, s in self.boxes]

    def close(self):
        pass


def test_tiles_cover_the_frame_with_overlap_then_the_whole_frame():
    h, w = 1080, 1920
    views = tile_views(h, w, 128, 0.25)
    assert views[-1] == View(0, 0, w, h)
    covered = np.zeros((h, w), np.int32)
    sides = sorted({v.x1 - v.x0 for v in views[:-1]})
    assert sides == [128, 256, 512]  # doubled while two tiles fit in the longer side
    for v in views[:-1]:
        assert v.tile and v.scale == 1.0 and 0 <= v.x0 < v.x1 <= w and 0 <= v.y0 < v.y1 <= h
        if v.x1 - v.x0 == 128:
            covered[v.y0:v.y1, v.x0:v.x1] += 1
    assert covered.min() >= 1
    row = sorted(v.x0 for v in views if v.x1 - v.x0 == 128 and v.y0 == 0)
    assert max(np.diff(row)) <= 128 * 0.75 + 1  # neighbours overlap by at least a quarter


def test_pyramid_levels():
    levels = pyramid_views(1080, 1920, 768, 512, 3840)
    assert [v.scale for v in levels] == [1.0, 0.5, 0.25]
    assert [v.max_face for v in levels] == [192.0, 384.0, 0.0]  # large faces are left to the coarser levels
    assert [round(v.scale, 3) for v in pyramid_views(144, 144, 768, 512)] == [5.333, 2.667]  # upscaled photo
    big = pyramid_views(4000, 6000, 768, 512, 3840)
    assert big[0].scale == pytest.approx(0.64) and all(v.tile is False for v in big)


def test_pyramid_sized_by_need():
    """Levels that only add faces narrower than `min_face` are left out (a 1080p frame with min_face 64 or more is
    not searched at full resolution); the default min_face_size (20) keeps every level."""
    assert [v.scale for v in pyramid_views(1080, 1920, 768, 512, 3840, min_face=20)] == [1.0, 0.5, 0.25]
    assert [v.scale for v in pyramid_views(1080, 1920, 768, 512, 3840, min_face=63)] == [1.0, 0.5, 0.25]
    assert [v.scale for v in pyramid_views(1080, 1920, 768, 512, 3840, min_face=64)] == [0.5, 0.25]
    assert [v.scale for v in pyramid_views(1080, 1920, 768, 512, 3840, min_face=200)] == [0.25]
    four_k = pyramid_views(2160, 3840, 768, 512, 3840, min_face=128)
    assert [v.scale for v in four_k] == [0.25, 0.125]
    assert four_k[0].max_face == PYRAMID_MAX_FACE / 0.25 and four_k[-1].max_face == 0.0


def test_the_finest_level_of_a_camera_frame_is_enlarged_by_upscale():
    """DetectorOptions.upscale: a camera frame starts enlarged (1080p at 2880 px), at most to `largest` (a 4K frame
    stays at full resolution); a small photo already enlarged to `finest` is not enlarged again."""
    levels = pyramid_views(1080, 1920, 768, 512, 3840, min_face=20, upscale=1.5)
    assert [v.scale for v in levels] == [1.5, 0.75, 0.375, 0.1875]
    assert [v.max_face for v in levels[:2]] == [128.0, 256.0] and levels[-1].max_face == 0.0
    assert [v.scale for v in pyramid_views(2160, 3840, 768, 512, 3840, upscale=1.5)] == [1.0, 0.5, 0.25, 0.125]
    assert [v.scale for v in pyramid_views(1440, 2560, 768, 512, 3840, upscale=1.5)][0] == 1.5
    assert [v.scale for v in pyramid_views(1440, 2560, 768, 512, 3000, upscale=1.5)][0] == pytest.approx(3000 / 2560)
    small = pyramid_views(144, 144, 768, 512, upscale=1.5)
    assert [round(v.scale, 3) for v in small] == [5.333, 2.667]
    # sized by need still: with min_face 64 the enlarged level adds nothing the 0.75 level does not find
    assert [v.scale for v in pyramid_views(1080, 1920, 768, 512, 3840, min_face=64, upscale=1.5)] == [0.75, 0.375,
                                                                                                        0.1875]


def test_view_results_come_back_in_frame_pixels():
    det = FixedBoxes([((10, 20, 30, 40), 0.9)])
    frame = np.zeros((400, 600, 3), np.uint8)
    (face,) = detect_in_view(det, frame, View(100, 50, 300, 250, scale=0.5))
    assert det.seen == [(100, 100)]
    np.testing.assert_allclose(face.box, [120, 90, 160, 130])
    np.testing.assert_allclose(face.keypoints, np.tile([100, 50], (5, 1)))


def test_faces_cut_by_an_inner_tile_edge_are_dropped():
    frame = np.zeros((256, 512, 3), np.uint8)
    det = FixedBoxes([((200, 10, 256, 60), 0.9), ((40, 40, 90, 90), 0.8)])  # the first touches x = 256
    faces = detect_views(det, frame, [View(0, 0, 256, 256, tile=True)], 0.3)
    np.testing.assert_allclose([f.box for f in faces], [[40, 40, 90, 90]])
    faces = detect_views(det, frame, [View(0, 0, 256, 256)], 0.3)  # not a tile: nothing is cut
    assert len(faces) == 2


def test_merge_keeps_the_strongest_of_overlapping_and_nested_faces():
    def d(box, score):
        return Detection(np.array(box, np.float32), np.zeros((5, 2), np.float32), score)

    faces = [d((0, 0, 100, 100), 0.8), d((5, 5, 105, 105), 0.9), d((20, 20, 60, 60), 0.95),
             d((300, 300, 340, 340), 0.7)]
    kept = merge_detections(faces, 0.3)
    # 0.8 overlaps the stronger 0.9 by IoU 0.82: dropped; 0.95 lies inside the larger 0.9 (a part of that face, found
    # at another scale): dropped although it scores higher; the face far away stays
    assert [f.score for f in kept] == [0.9, 0.7]
    assert merge_detections(faces[:1], 0.3) == faces[:1]


def test_square_crop_pads_outside_the_image():
    image = np.full((50, 80, 3), 200, np.uint8)
    crop, x0, y0 = square_crop(image, np.array([60, 10, 80, 40], np.float32), 2.0)
    assert crop.shape == (60, 60, 3) and (x0, y0) == (40, -5)
    assert crop[:5].max() == 0 and crop[:, 40:].max() == 0 and crop[10, 10].tolist() == [200, 200, 200]
