"""benchmarks/maskflag.py: the by-eye review of the real masked photos still names the faces the detector finds, and
reviewed faces are left out only where they are the face found."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED_DIR

RMFD = SHARED_DIR / "data" / "rmfd-real"


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/maskflag.py", "g2d_maskflag_bench")


def test_box_iou(bench):
    assert bench.iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert bench.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert bench.iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0


def test_a_reviewed_face_is_left_out_only_when_it_is_the_face_found(bench, tmp_path):
    review = tmp_path / "review.json"
    review.write_text(json.dumps({"not_masked": [{"photo": "a/1.jpg", "box": [0, 0, 10, 10], "seen": "ear"},
                                                 {"photo": "a/2.jpg", "box": [0, 0, 10, 10], "seen": "ear"}]}))
    crop = np.zeros((112, 112, 3), np.uint8)
    faces = [(crop, np.array([1, 1, 10, 10.0])),   # the reviewed face: left out
             (crop, np.array([50, 50, 60, 60.0])),  # another face than the one reviewed: stays
             (crop, np.array([0, 0, 10, 10.0])),    # not reviewed: stays
             None]                                  # no face: stays (flag_rate skips it)
    masked, unmasked = bench.split_reviewed(["a/1.jpg", "a/2.jpg", "a/3.jpg", "a/4.jpg"], faces, review)
    assert [f is faces[0] for f in unmasked] == [True] and len(masked) == 3


def test_the_shipped_review_names_the_faces_the_default_detector_finds(bench):
    """If detection changes, the review must be redone: every reviewed face must still be the largest face found."""
    if not RMFD.is_dir():
        pytest.skip(f"real masked photos not found at {RMFD}")
    entries = json.loads(bench.DEFAULT_REVIEW.read_text())["not_masked"]
    assert len(entries) >= 20 and len({e["photo"] for e in entries}) == len(entries)
    images = [cv2.imread(str(RMFD / e["photo"]), cv2.IMREAD_COLOR) for e in entries]
    masked, unmasked = bench.split_reviewed([e["photo"] for e in entries], bench.largest_faces(images),
                                            bench.DEFAULT_REVIEW)
    assert masked == [] and len(unmasked) == len(entries)


def test_flag_rate_counts_found_faces_only(bench):
    class Flag:
        threshold = 0.5

        def scores(self, crops):
            return crops[:, 0, 0, 0].astype(np.float32) / 255

        def is_masked(self, scores):
            return scores >= self.threshold

    def face(value):
        return np.full((112, 112, 3), value, np.uint8), np.zeros(4)

    rate = bench.flag_rate(Flag(), [face(255), face(200), face(10), None], want_masked=True)
    assert (rate["photos"], rate["faces"], rate["correct"]) == (4, 3, 2)
    assert rate["accuracy"] == pytest.approx(2 / 3)
