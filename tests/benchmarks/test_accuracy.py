"""benchmarks/accuracy.py: failed pairs count as errors; end to end on a tiny model with SFace and dlib beside it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def accuracy(load_script):
    return load_script("benchmarks/accuracy.py", "g2d_accuracy_bench")


def test_a_pair_without_a_face_is_a_failed_pair(accuracy):
    scores = np.array([0.9, np.nan, 0.1, np.nan])
    same = np.array([True, True, False, False])
    out = accuracy.fail_pairs(scores, same)
    assert out[0] == 0.9 and out[2] == 0.1
    assert out[1] < 0.1 and out[3] > 0.9  # genuine rejected, impostor accepted at any threshold in the score range


def test_scores_cosine_and_negative_distance(accuracy):
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    ia, ib = np.array([0]), np.array([1])
    assert accuracy.score_pairs(a, a, ia, ib, "cosine")[0] == pytest.approx(0.0)
    assert accuracy.score_pairs(a, a, ia, ib, "neg_l2")[0] == pytest.approx(-np.sqrt(5))


def test_round_trip_scoring_counts_misses_and_unknowns(accuracy):
    labels = np.array([0, 0, 0, 1, 1, 2, 2])
    split = accuracy.split_gallery(labels, unknown_every=3)  # people 0, 1 enrolled; person 2 unknown
    assert split.enrol == {0: 0, 1: 3}
    assert split.known.tolist() == [1, 2, 4] and split.unknown.tolist() == [5, 6]
    # clean: all right and named, unknowns unnamed; masked: photo 2 has no face (-1), photo 5 wrongly named
    best = {"clean": np.array([-1, 0, 0, -1, 1, 0, 1]), "masked": np.array([-1, 0, -1, -1, 1, 0, 1])}
    named = {"clean": np.array([0, 1, 1, 0, 1, 0, 0], bool), "masked": np.array([0, 1, 0, 0, 1, 1, 0], bool)}
    trip = accuracy.score_round_trip(best, named, labels, split, "cosine >= 0.5")
    assert trip.rank1 == {"clean": 3, "masked": 2}
    assert trip.open_set == {"clean": 5, "masked": 3}
    assert trip.to_dict()["open_set_accuracy"]["masked"] == pytest.approx(3 / 5)


def test_peer_round_trip_from_embeddings(accuracy):
    from benchmarks.peers import PhotoEmbeddings

    labels = np.array([0, 0, 1, 1, 2])
    e = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0], [0, 0, 1]], np.float32)
    masked = e.copy()
    masked[1] = np.nan  # no face found on the masked photo
    split = accuracy.split_gallery(labels, unknown_every=3)
    trip = accuracy.round_trip_embeddings(PhotoEmbeddings(e, masked), labels, split, "cosine", 0.5)
    assert trip.rank1 == {"clean": 2, "masked": 1}
    assert trip.open_set == {"clean": 3, "masked": 2}  # the unknown face (orthogonal) is left unnamed


def test_end_to_end_on_real_photos(accuracy, tiny_onnx_model: Path, celeba_people, celeba_dir, tmp_path: Path):
    pytest.importorskip("dlib", reason="the dlib peer is the optional [teacher] extra")
    if not accuracy.DEFAULT_SFACE_ONNX.is_file():
        pytest.skip(f"SFace not found at {accuracy.DEFAULT_SFACE_ONNX}")
    people = list(celeba_people)[:4]
    cfg = accuracy.AccuracyConfig(data=celeba_dir, models=[("tiny", tiny_onnx_model)], identities=people, pairs=30,
                                  limit_per_identity=3, latency_repeats=5, folds=2)
    out = accuracy.run(cfg, json_path=tmp_path / "acc.json")
    assert set(out["results"]) == {"tiny", "OpenCV SFace", "dlib ResNet (clean-photo landmarks)"}
    for per_cond in out["results"].values():
        assert set(per_cond) == set(accuracy.CONDITIONS)
    # the peers are real recognisers: on clean photos of 4 people they separate them
    assert out["results"]["OpenCV SFace"]["unmasked-unmasked"].auc > 0.9
    assert out["results"]["dlib ResNet (clean-photo landmarks)"]["unmasked-unmasked"].auc > 0.9
    trips = out["round_trip"]
    assert set(trips) == {"tiny", "OpenCV SFace", "dlib ResNet (HOG front end)"}
    assert trips["OpenCV SFace"].enrolled == 3 and trips["OpenCV SFace"].unknown == 3
    assert trips["OpenCV SFace"].rank1["clean"] >= 5  # of 6 known clean probes
    assert out["latency"]["tiny_embed_ms"] > 0 and out["latency"]["sface_embed_ms"] > 0
    assert out["latency"]["dlib_embed_ms"] > 0
    assert "Machine:" in out["text"] and "| OpenCV SFace |" in out["text"]
    saved = json.loads((tmp_path / "acc.json").read_text())
    assert saved["meta"]["photos"] == 12 and saved["meta"]["identities"] == 4
    assert saved["round_trip"]["tiny"]["known_probes"] == 6


def test_refuses_a_model_without_validation_people(accuracy, tiny_onnx_model: Path, celeba_dir):
    cfg = accuracy.AccuracyConfig(data=celeba_dir, models=[("tiny", tiny_onnx_model)])
    with pytest.raises(SystemExit, match="validation identities"):
        accuracy.run(cfg)


def test_sdk_round_trip_scores_tagged_and_untagged_search(accuracy, tiny_onnx_model: Path, celeba_people,
                                                          celeba_dir):
    cfg = accuracy.AccuracyConfig(data=celeba_dir, models=[("tiny", tiny_onnx_model)], identities=list(celeba_people),
                                  limit_per_identity=3)
    photos = accuracy.load_photos(cfg, cfg.identities)
    split = accuracy.split_gallery(photos.labels, cfg.unknown_every)
    plain = accuracy.round_trip_sdk(tiny_onnx_model, photos, split)
    assert set(plain) == {"tagged", "untagged"}
    # without masked templates every template is clean: the two rules agree
    assert (plain["tagged"].rank1, plain["tagged"].open_set) == (plain["untagged"].rank1, plain["untagged"].open_set)
    trips = accuracy.round_trip_sdk(tiny_onnx_model, photos, split, masked_templates=1)
    for trip in trips.values():
        assert (trip.known, trip.unknown, trip.enrolled) == (6, 3, 3)
        assert 0 <= trip.flagged["clean"] <= 9 and trip.to_dict()["flagged_masked"] == trip.flagged


def test_the_round_trip_names_the_threshold_the_sdk_used(accuracy):
    """Since issue 19 the g2d round trip is judged at the SDK's open-set threshold for its gallery, per mask flag;
    the report says so (a model without a calibration: its one threshold)."""
    from g2d_edge.openset import ThresholdDecision

    class Rec:
        def __init__(self, source):
            self.source = source

        def decision(self, kind=None):
            if self.source == "model":
                return ThresholdDecision(0.42, "model")
            return ThresholdDecision(0.5 if kind == "clean" else 0.52, "open-set", 0.01, 30, 30, kind)

    assert accuracy.sdk_threshold_text(Rec("open-set")) == \
        "cosine >= 0.500 clean / 0.520 masked (target FPIR 0.01, 30 templates)"
    assert accuracy.sdk_threshold_text(Rec("model")) == "cosine >= 0.420"
