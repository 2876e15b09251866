"""benchmarks/maskflag.py: the by-eye review of the real masked photos still names the faces the detector finds, and
reviewed faces are left out only where they are the face found."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED_DIR
from train.realmasks import iou

RMFD = SHARED_DIR / "data" / "rmfd-real"


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/maskflag.py", "g2d_maskflag_bench")


def test_box_iou(bench):
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0


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


# ------------------------------------------------------------------------------------ the fixed train / held-out split
def test_the_split_rule_is_seeded_by_folder_and_holds_out_at_most_the_share():
    from train.realmasks import RealSplit, choose_split

    counts = {f"{i:04d}": n for i, n in enumerate([268, 87, 9, 13, 8, 141, 18, 185, 10, 13, 88, 18])}
    split = choose_split(counts, seed=0, held_out_share=0.5)
    assert split == choose_split(dict(reversed(list(counts.items()))), seed=0, held_out_share=0.5)
    assert set(split.train) | set(split.held_out) == set(counts) and not set(split.train) & set(split.held_out)
    assert 0 < sum(counts[f] for f in split.held_out) <= 0.5 * sum(counts.values())
    assert choose_split(counts, seed=1) != split
    with pytest.raises(ValueError, match="both sides"):
        RealSplit(("0001", "0002"), ("0002",), 0, 0.5)


def test_the_benchmark_split_is_disjoint_fixed_and_covers_every_crawl_batch(bench):
    from train.realmasks import choose_split, folder_counts, load_split

    split = load_split(bench.DEFAULT_SPLIT)
    assert not set(split.train) & set(split.held_out)
    # fixed: the held-out part the published figures were measured on; changing it invalidates them
    assert split.held_out == ("0001", "0003", "0004", "0005", "0007", "0011", "0012", "0014", "0015", "0017", "0022")
    assert split.train == ("0002", "0006", "0008", "0009", "0010", "0016")
    if not RMFD.is_dir():
        pytest.skip(f"real masked photos not found at {RMFD}")
    counts = folder_counts(RMFD)
    assert set(split.train) | set(split.held_out) == set(counts)
    assert choose_split(counts, split.seed, split.held_out_share) == split  # the recorded split is the rule's


def test_a_part_reads_only_its_own_folders(tmp_path):
    from train.realmasks import read_part

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "1.jpg"), np.zeros((8, 8, 3), np.uint8))
    names, images = read_part(tmp_path, ["b"])
    assert names == ["b/1.jpg"] and images[0].shape == (8, 8, 3)
    from g2d_edge.errors import ImageReadError

    with pytest.raises(ImageReadError, match="not found"):
        read_part(tmp_path, ["c"])


def test_detected_faces_round_trip_through_the_cache(bench, tmp_path):
    crop = np.full((112, 112, 3), 7, np.uint8)
    faces = {"held_out": [(crop, np.array([1.0, 2, 3, 4])), None], "clean": [None, (crop + 1, np.zeros(4))],
             "synthetic": [(crop + 2, np.ones(4))]}
    bench.save_faces(tmp_path / "faces.npz", ["0001/a.jpg", "0001/b.jpg"], faces)
    names, back = bench.load_faces(tmp_path / "faces.npz")
    assert names == ["0001/a.jpg", "0001/b.jpg"]
    assert back["held_out"][1] is None and back["clean"][0] is None
    assert np.array_equal(back["held_out"][0][0], crop) and back["held_out"][0][1].tolist() == [1, 2, 3, 4]
    assert np.array_equal(back["synthetic"][0][0], crop + 2)
