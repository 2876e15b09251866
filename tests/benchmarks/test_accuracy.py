"""benchmarks/accuracy.py: failed pairs count as errors; end to end on a tiny model with dlib beside it."""
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


def test_end_to_end_on_real_photos(accuracy, tiny_onnx_model: Path, celeba_people, celeba_dir, tmp_path: Path):
    pytest.importorskip("dlib", reason="the dlib baseline is the optional [teacher] extra")
    people = list(celeba_people)[:3]
    cfg = accuracy.AccuracyConfig(data=celeba_dir, model=tiny_onnx_model, identities=people, pairs=20,
                                  limit_per_identity=3, latency_repeats=5, folds=2)
    out = accuracy.run(cfg, json_path=tmp_path / "acc.json")
    assert set(out["results"]) == {"g2d-edge", "dlib"}
    for per_cond in out["results"].values():
        assert set(per_cond) == set(accuracy.CONDITIONS)
    # dlib is a real recogniser: on clean photos of 3 people it separates them
    assert out["results"]["dlib"]["unmasked-unmasked"].auc > 0.9
    assert out["latency"]["g2d_embed_ms"] > 0 and out["latency"]["dlib_embed_ms"] > 0
    assert "Machine:" in out["text"] and "| dlib | masked-unmasked |" in out["text"]
    saved = json.loads((tmp_path / "acc.json").read_text())
    assert saved["meta"]["photos"] == 9 and saved["meta"]["identities"] == 3


def test_refuses_a_model_without_validation_people(accuracy, tiny_onnx_model: Path, celeba_dir):
    cfg = accuracy.AccuracyConfig(data=celeba_dir, model=tiny_onnx_model)
    with pytest.raises(SystemExit, match="validation identities"):
        accuracy.run(cfg)
