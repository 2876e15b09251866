"""Tests of the evaluation metrics and pairs (train/eval/) against hand-computed values."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from g2d_edge.errors import InputError
from train import eval as ev

# 3 genuine / 3 impostor with one inversion: genuine 0.6 sits below impostor 0.7.
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
SAME = np.array([1, 1, 0, 1, 0, 0], dtype=bool)


# ---------------------------------------------------------------------------------------------- thresholds, accuracy
def test_best_threshold_hand_computed() -> None:
    # accept >= v: v=0.9 -> 4/6, 0.8 -> 5/6, 0.7 -> 4/6, 0.6 -> 5/6, 0.5 -> 4/6, 0.4 -> 3/6, reject all -> 3/6.
    # Lowest best candidate is 0.6; midpoint with the next lower score 0.5 -> 0.55.
    thr, acc = ev.best_threshold(SCORES, SAME)
    assert acc == pytest.approx(5 / 6)
    assert thr == pytest.approx(0.55)
    assert ev.accuracy_at(SCORES, SAME, thr) == pytest.approx(5 / 6)


def test_best_threshold_edge_candidates() -> None:
    thr, acc = ev.best_threshold([0.3, 0.5], [1, 1])  # all genuine: accept everything
    assert (thr, acc) == (0.3, 1.0)
    thr, acc = ev.best_threshold([0.3, 0.5], [0, 0])  # all impostor: reject everything
    assert acc == 1.0 and 0.5 < thr < 0.5 + 1e-12


def test_kfold_accuracy_hand_computed() -> None:
    scores = np.array([0.9, 0.2, 0.8, 0.3, 0.5, 0.6])
    same = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    folds = np.array([0, 0, 1, 1, 2, 2])
    # fold 0 held out: threshold from folds 1,2 = 0.4 -> both right; fold 1: threshold 0.35 -> both right;
    # fold 2: threshold from folds 0,1 = 0.55 -> 0.5 genuine rejected and 0.6 impostor accepted -> 0.
    mean, std, per_fold = ev.kfold_accuracy(scores, same, folds=folds)
    np.testing.assert_allclose(per_fold, [1.0, 1.0, 0.0])
    assert mean == pytest.approx(2 / 3)
    assert std == pytest.approx(math.sqrt(2 / 9))


def test_assign_folds_stratified_and_deterministic() -> None:
    same = np.array([True] * 25 + [False] * 35)
    folds = ev.assign_folds(same, 10, seed=3)
    np.testing.assert_array_equal(folds, ev.assign_folds(same, 10, seed=3))
    assert not np.array_equal(folds, ev.assign_folds(same, 10, seed=4))
    for f in range(10):
        assert np.sum(same[folds == f]) in (2, 3)
        assert np.sum(~same[folds == f]) in (3, 4)


def test_perfect_separation() -> None:
    rng = np.random.default_rng(0)
    same = np.arange(200) % 2 == 0
    scores = np.where(same, rng.uniform(0.6, 1.0, 200), rng.uniform(-0.2, 0.4, 200))
    res = ev.evaluate_verification(scores, same, fars=(1e-2,))
    assert res.accuracy == 1.0 and res.accuracy_std == 0.0 and res.auc == 1.0
    assert res.best_accuracy == 1.0
    assert scores[~same].max() < res.best_threshold <= scores[same].min()
    assert res.tar_at_far["0.01"] == 1.0
    assert (res.n_genuine, res.n_impostor, res.n_folds) == (100, 100, 10)


# ---------------------------------------------------------------------------------------------- ROC / AUC
def test_roc_curve_hand_computed() -> None:
    fpr, tpr, thr = ev.roc_curve(SCORES, SAME)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert thr[0] == np.inf
    np.testing.assert_allclose(thr[1:], SCORES)


def test_auc_one_inversion() -> None:
    assert ev.roc_auc(SCORES, SAME) == pytest.approx(8 / 9)
    assert ev.roc_auc(-SCORES, SAME) == pytest.approx(1 / 9)


def test_auc_ties_count_half() -> None:
    # genuine {0.5, 0.9} vs impostor {0.5, 0.1}: 0.5~0.5 tie (1/2) + 3 wins -> 3.5 / 4
    assert ev.roc_auc([0.5, 0.9, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    fpr, tpr, _ = ev.roc_curve([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])
    np.testing.assert_allclose(fpr, [0, 1])  # one tied group -> one diagonal step
    assert ev.roc_auc([0.5] * 4, [1, 0, 1, 0]) == pytest.approx(0.5)


def test_auc_matches_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    same = rng.random(60) < 0.4
    pos, neg = scores[same], scores[~same]
    expected = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (
        pos.size * neg.size
    )
    assert ev.roc_auc(scores, same) == pytest.approx(expected)


def test_single_class_rejected() -> None:
    with pytest.raises(InputError, match="both genuine and impostor"):
        ev.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(InputError, match="NaN"):
        ev.evaluate_verification([0.1, float("nan")], [1, 0])


# ---------------------------------------------------------------------------------------------- TAR@FAR
def test_threshold_and_tar_at_far_hand_computed() -> None:
    impostor = np.arange(100) / 100.0  # 0.00 ... 0.99
    # FAR 0.01 on 100 impostors -> 1 false accept allowed -> threshold just above the 2nd largest (0.98).
    thr = ev.threshold_at_far(impostor, 0.01)
    assert 0.98 < thr < 0.98 + 1e-12
    assert np.mean(impostor >= thr) == pytest.approx(0.01)
    genuine = np.array([0.985, 0.99, 0.5, 0.98])
    t = ev.tar_at_far(genuine, impostor, 0.01)
    assert t.resolved and t.tar == pytest.approx(0.5) and t.threshold == thr
    assert t.measured_far == pytest.approx(0.01)
    # FAR 0.05 -> 5 allowed -> just above the 6th largest (0.94)
    assert 0.94 < ev.threshold_at_far(impostor, 0.05) < 0.9400001


def test_threshold_at_far_with_tied_impostors() -> None:
    impostor = np.array([0.9, 0.9] + [0.1] * 98)
    # 1 false accept allowed, but accepting 0.9 lets both tied impostors through -> threshold above 0.9
    thr = ev.threshold_at_far(impostor, 0.01)
    assert 0.9 < thr < 0.9 + 1e-12
    assert np.mean(impostor >= thr) == 0.0


def test_unresolvable_far_is_nan_and_flagged() -> None:
    impostor = np.linspace(0, 0.5, 100)
    t = ev.tar_at_far([0.9], impostor, 1e-3)
    assert not t.resolved and math.isnan(t.tar) and math.isnan(t.threshold)
    with pytest.raises(InputError, match="at least 1000 impostor pairs"):
        ev.threshold_at_far(impostor, 1e-3)
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        ev.threshold_at_far(impostor, 0.0)
    # exactly 1 / FAR impostors is enough
    assert ev.tar_at_far([0.9], np.linspace(0, 0.5, 1000), 1e-3).resolved


def test_evaluate_verification_reports_unresolved() -> None:
    res = ev.evaluate_verification(SCORES, SAME, n_folds=3)
    assert res.auc == pytest.approx(8 / 9) and res.best_threshold == pytest.approx(0.55)
    assert set(res.tar_at_far) == {"0.01", "0.001", "0.0001"}
    assert all(math.isnan(v) for v in res.tar_at_far.values())
    assert res.far_resolved == {"0.01": False, "0.001": False, "0.0001": False}
    d = res.to_dict()
    assert d["tar_at_far"]["0.001"] is None and d["auc"] == pytest.approx(8 / 9)
    json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------------------------------------- LFW pairs
LFW_TEXT = """2\t2
Alice\t1\t2
Bob\t1\t3
Alice\t1\tBob\t2
Carol\t4\tAlice\t3
Carol\t1\t2
Dave\t10\t11
Bob\t1\tDave\t1
Carol\t2\tDave\t12
"""


def test_parse_lfw_pairs_with_fold_header(tmp_path: Path) -> None:
    pairs = ev.parse_lfw_pairs(LFW_TEXT, tmp_path)
    assert len(pairs) == 8
    a, b, same = pairs[0]
    assert a == tmp_path / "Alice" / "Alice_0001.jpg" and b == tmp_path / "Alice" / "Alice_0002.jpg" and same
    a, b, same = pairs[3]
    assert a == tmp_path / "Carol" / "Carol_0004.jpg" and b == tmp_path / "Alice" / "Alice_0003.jpg" and not same
    assert pairs[5][0].name == "Dave_0010.jpg"
    np.testing.assert_array_equal(pairs.same, [1, 1, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(pairs.folds, [0, 0, 0, 0, 1, 1, 1, 1])
    f = tmp_path / "pairs.txt"
    f.write_text(LFW_TEXT)
    loaded = ev.load_lfw_pairs(f, tmp_path)
    assert loaded.pairs == pairs.pairs


def test_parse_lfw_pairs_plain_and_single_set(tmp_path: Path) -> None:
    body = "Alice 1 2\nAlice 1 Bob 2\n\n# comment\nBob 1 2\n"
    plain = ev.parse_lfw_pairs(body, tmp_path)
    assert len(plain) == 3 and plain.folds is None
    np.testing.assert_array_equal(plain.same, [1, 0, 1])
    single = ev.parse_lfw_pairs("1\nAlice 1 2\nAlice 1 Bob 2\n", tmp_path)
    assert len(single) == 2 and single.folds is None


def test_parse_lfw_pairs_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 2"):
        ev.parse_lfw_pairs("Alice 1 2\nAlice one 2\n", tmp_path)
    with pytest.raises(InputError, match="announces"):
        ev.parse_lfw_pairs("2 2\nAlice 1 2\n", tmp_path)
    with pytest.raises(InputError, match="same-person lines then"):
        ev.parse_lfw_pairs("1 1\nAlice 1 Bob 2\nAlice 1 2\n", tmp_path)
    with pytest.raises(FileNotFoundError):
        ev.load_lfw_pairs(tmp_path / "missing.txt", tmp_path)


def test_path_pairs_to_index_pairs(tmp_path: Path) -> None:
    pairs = ev.parse_lfw_pairs(LFW_TEXT, tmp_path)
    images, idx = pairs.to_index_pairs()
    assert len(set(images)) == len(images)
    for (a, b, same), ia, ib, s in zip(pairs, idx.a, idx.b, idx.same):
        assert images[ia] == a and images[ib] == b and s == same
    np.testing.assert_array_equal(idx.folds, pairs.folds)


# ---------------------------------------------------------------------------------------------- generated pairs
def _labels() -> np.ndarray:
    # 12 identities with 1..12 images each (identity 0 has a single image), shuffled rows
    labels = np.concatenate([np.full(k + 1, k) for k in range(12)])
    return labels[np.random.default_rng(5).permutation(labels.size)]


def test_generate_pairs_properties() -> None:
    labels = _labels()
    p = ev.generate_pairs(labels, 200, seed=7)
    assert len(p) == 200 and p.same.sum() == 100
    assert np.all(p.a != p.b)
    np.testing.assert_array_equal(labels[p.a] == labels[p.b], p.same)
    keys = {(min(a, b), max(a, b)) for a, b in zip(p.a.tolist(), p.b.tolist())}
    assert len(keys) == 200
    singleton = np.flatnonzero(labels == 0)[0]
    gen_rows = np.concatenate([p.a[p.same], p.b[p.same]])
    assert singleton not in gen_rows
    # genuine pairs are spread over identities as evenly as their sizes allow: identities 1..4 are capped by
    # C(k+1, 2) = 1, 3, 6, 10 pairs; the other 80 pairs split 11/12 over identities 5..11.
    counts = np.bincount(labels[p.a[p.same]], minlength=12)
    np.testing.assert_array_equal(counts[:5], [0, 1, 3, 6, 10])
    assert counts[5:].sum() == 80 and counts[5:].min() == 11 and counts[5:].max() == 12
    for f in range(10):
        assert p.same[p.folds == f].sum() == 10 and (~p.same[p.folds == f]).sum() == 10


def test_generate_pairs_deterministic() -> None:
    labels = _labels()
    p1, p2 = ev.generate_pairs(labels, 100, seed=1), ev.generate_pairs(labels, 100, seed=1)
    for name in ("a", "b", "same", "folds"):
        np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name))
    p3 = ev.generate_pairs(labels, 100, seed=2)
    assert not (np.array_equal(p1.a, p3.a) and np.array_equal(p1.b, p3.b))


def test_generate_pairs_caps_small_data_and_skips_unlabelled(caplog: pytest.LogCaptureFixture) -> None:
    labels = np.array([0, 0, 1, 1, 2, -1, -1])  # 2 genuine pairs possible; -1 = unlabelled
    p = ev.generate_pairs(labels, 50, seed=0)
    assert len(p) == 4 and p.same.sum() == 2
    assert np.all(labels[p.a] >= 0) and np.all(labels[p.b] >= 0)
    np.testing.assert_array_equal(labels[p.a] == labels[p.b], p.same)
    assert "only 2 possible" in caplog.text
    with pytest.raises(InputError, match="2\\+ images"):
        ev.generate_pairs(np.array([0, 1, 2]), 10)


def test_generate_pairs_string_labels_and_small_impostor_pool() -> None:
    labels = np.array(["a", "a", "a", "a", "b"])  # 6 genuine, 4 impostor pairs possible
    p = ev.generate_pairs(labels, 8, seed=3)
    assert p.same.sum() == 4 and (~p.same).sum() == 4
    np.testing.assert_array_equal(labels[p.a] == labels[p.b], p.same)
    assert len({(min(a, b), max(a, b)) for a, b in zip(p.a.tolist(), p.b.tolist())}) == 8


def test_generate_folder_pairs(tmp_path: Path) -> None:
    for ident, n in (("ann", 3), ("ben", 2), ("cat", 1), (".hidden", 4)):
        d = tmp_path / ident
        d.mkdir()
        for i in range(n):
            (d / f"{i}.jpg").write_bytes(b"")
    (tmp_path / "ann" / "notes.txt").write_text("x")
    pairs = ev.generate_folder_pairs(tmp_path, 6, seed=0, n_folds=3)
    assert len(pairs) == 6 and pairs.same.sum() == 3
    for a, b, same in pairs:
        assert a != b and a.suffix == ".jpg" and a.exists() and b.exists()
        assert (a.parent == b.parent) == same
        assert ".hidden" not in a.parts and ".hidden" not in b.parts
    assert set(pairs.folds.tolist()) == {0, 1, 2}
    with pytest.raises(FileNotFoundError):
        ev.generate_folder_pairs(tmp_path / "nope", 4)


# ---------------------------------------------------------------------------------------------- conditions
def _embeddings(n_ids: int = 20, per_id: int = 4, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    labels = np.repeat(np.arange(n_ids), per_id)
    clean = centres[labels] + 0.05 * rng.normal(size=(labels.size, dim))
    masked = rng.normal(size=clean.shape)  # masks destroy identity entirely
    return labels, clean, masked


def test_evaluate_conditions_uses_the_right_sides() -> None:
    labels, clean, masked = _embeddings()
    pairs = ev.generate_pairs(labels, 200, seed=0)
    res = ev.evaluate_conditions(clean, masked, pairs, fars=(1e-2,))
    assert list(res) == ["unmasked-unmasked", "masked-unmasked", "masked-masked"]
    assert res["unmasked-unmasked"].auc == 1.0 and res["unmasked-unmasked"].accuracy == 1.0
    assert res["masked-masked"].auc < 0.75
    mixed = np.einsum(
        "nd,nd->n",
        masked[pairs.a] / np.linalg.norm(masked[pairs.a], axis=1, keepdims=True),
        clean[pairs.b] / np.linalg.norm(clean[pairs.b], axis=1, keepdims=True),
    )
    expected = ev.evaluate_verification(mixed, pairs.same, folds=pairs.folds, fars=(1e-2,))
    assert res["masked-unmasked"] == expected
    # the masked side matters: masking image b instead gives different scores
    swapped = ev.pair_scores(clean, pairs, masked)
    assert not np.allclose(swapped, mixed)


def test_evaluate_conditions_masked_side_is_image_a() -> None:
    labels, clean, _ = _embeddings(seed=1)
    pairs = ev.generate_pairs(labels, 200, seed=1)
    # masked embedding is identity-preserving only for rows that appear as image a
    masked = np.random.default_rng(2).normal(size=clean.shape)
    a_rows = np.unique(pairs.a)
    masked[a_rows] = clean[a_rows]
    res = ev.evaluate_conditions(clean, masked, pairs, fars=())
    assert res["masked-unmasked"].auc == 1.0


def test_evaluate_conditions_drops_nan_rows(caplog: pytest.LogCaptureFixture) -> None:
    labels, clean, masked = _embeddings()
    pairs = ev.generate_pairs(labels, 100, seed=0)
    clean[pairs.a[0]] = np.nan
    res = ev.evaluate_conditions(clean, masked, pairs, fars=())
    n_bad = int(np.sum((pairs.a == pairs.a[0]) | (pairs.b == pairs.a[0])))
    for r in res.values():
        assert r.n_genuine + r.n_impostor == 100 - n_bad
    assert "dropping" in caplog.text
    only_clean = ev.evaluate_conditions(clean, None, pairs, fars=())
    assert list(only_clean) == ["unmasked-unmasked"]


def test_pair_scores_index_check() -> None:
    pairs = ev.IndexPairs(a=np.array([0]), b=np.array([5]), same=np.array([True]))
    with pytest.raises(InputError, match="indices"):
        ev.pair_scores(np.ones((3, 4)), pairs)


# ---------------------------------------------------------------------------------------------- identification
def test_top1_accuracy() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    assert ev.top1_accuracy(logits, np.array([0, 2, 0, 2])) == 0.75
    with pytest.raises(InputError):
        ev.top1_accuracy(logits, np.array([0, 1]))


def test_identify_gallery_probe_hand_computed() -> None:
    gallery = np.array([[1.0, 0.0], [2.0, 0.2], [0.0, 1.0]])  # id 7 -> ~x axis (two images), id 9 -> y axis
    g_labels = np.array([7, 7, 9])
    probes = np.array([[1.0, 0.1], [0.1, 1.0], [0.8, 0.7], [0.6, 0.7]])
    # template 7 ~ (0.997, 0.05): probe 3 (0.8,0.7) -> 7, probe 4 (0.6,0.7) -> 9
    res = ev.identify(gallery, g_labels, probes, np.array([7, 9, 9, 9]))
    assert res.top1 == 0.75 and res.n_probes == 4 and res.n_identities == 2
    with pytest.raises(InputError, match="missing from the gallery"):
        ev.identify(gallery, g_labels, probes, np.array([7, 9, 9, 3]))


def test_split_gallery_probe() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    gallery, probe = ev.split_gallery_probe(labels, n_gallery=1, seed=0)
    assert sorted(labels[gallery].tolist()) == [0, 1]  # identity 2 has no probe -> left out
    assert sorted(labels[probe].tolist()) == [0, 0, 1]
    assert not set(gallery) & set(probe)


# ---------------------------------------------------------------------------------------------- reporting
def test_format_table_and_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    same = np.arange(400) % 2 == 0
    scores = np.where(same, rng.normal(0.6, 0.2, 400), rng.normal(0.1, 0.2, 400))
    res = {
        "unmasked-unmasked": ev.evaluate_verification(scores, same),
        "masked-unmasked": ev.evaluate_verification(scores * 0.5, same),
    }
    table = ev.format_table(res)
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| Condition |") and "TAR@FAR=0.01" in lines[0] and "TAR@FAR=0.0001" in lines[0]
    assert lines[2].startswith("| unmasked-unmasked | 200 | 200 |")
    assert f"{res['unmasked-unmasked'].accuracy:.4f} ± " in lines[2]
    assert lines[2].endswith("| n/a | n/a |")  # 200 impostors cannot resolve 1e-3 / 1e-4
    out = ev.write_results_json(tmp_path / "out" / "eval.json", res, meta={"model": Path("m.onnx"), "n": np.int64(3)})
    data = ev.read_results_json(out)
    assert data["meta"] == {"model": "m.onnx", "n": 3}
    assert data["results"]["masked-unmasked"]["tar_at_far"]["0.001"] is None
    assert data["results"]["unmasked-unmasked"]["auc"] == pytest.approx(res["unmasked-unmasked"].auc)
    assert data["results"]["unmasked-unmasked"]["far_resolved"]["0.01"] is True


def test_evaluation_normalises_as_the_runtime_does():
    """train.eval's L2 normalisation is the runtime's g2d_edge.vectors.l2_normalise (one normalisation)."""
    from g2d_edge.vectors import l2_normalise

    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(ev.l2_normalize(x), l2_normalise(x, dtype=np.float64))
