"""benchmarks/openset.py: the per-identity fusion and the FRVT-style scores (FNIR at a given FPIR, FPIR/FNIR at a
threshold) on hand-made scores."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/openset.py", "g2d_openset_bench")


def test_identity_scores_max_and_mean_fusion(bench):
    gallery = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[-1.0, 0.0]])]
    probes = np.array([[1.0, 0.0], [np.nan, np.nan]])
    best = bench.identity_scores(probes, gallery, "max")
    assert best[0].tolist() == [1.0, -1.0] and np.isneginf(best[1]).all()
    mean = bench.identity_scores(probes, gallery, "mean")
    assert mean[0, 0] == pytest.approx(1 / np.sqrt(2)) and mean[0, 1] == pytest.approx(-1.0)
    both = bench.identity_scores(probes, gallery, "mean+max")
    assert both[0].tolist() == pytest.approx([(1 + 1 / np.sqrt(2)) / 2, -1.0]) and np.isneginf(both[1]).all()


def test_scores_follow_the_frvt_definitions(bench):
    strangers = np.linspace(0.0, 0.99, 100)  # 100 strangers, one per score step
    mated = np.array([0.2, 0.6, 0.95, 0.97])
    right = np.array([True, True, True, False])  # the last one's best identity is somebody else
    trial = bench.Trial(mated, right, np.full(4, 0.5), strangers, np.full(100, 0.5), np.full(4, 0.9),
                        np.full(100, 0.9), np.arange(4), np.arange(100) % 10)
    cell = bench.score(trial, old_threshold=0.9)
    # FPIR 1 %: one stranger (0.99) may be named, so the threshold sits just above 0.98
    assert 0.98 < cell["threshold_at_fpir_0.01"] <= 0.99
    assert cell["fnir_at_fpir_0.01"] == 1.0  # no mate scores above 0.98 with the right name
    assert cell["sdk"]["fpir"] == pytest.approx(0.5) and cell["sdk"]["fnir"] == pytest.approx(0.5)
    assert cell["old_threshold"]["fpir"] == pytest.approx(0.1) and cell["old_threshold"]["fnir"] == pytest.approx(0.75)
    assert cell["size_table"]["fpir"] == pytest.approx(0.1)
    assert cell["size_table"]["fnir"] == pytest.approx(0.75)
    assert cell["mated_probes"] == 4 and cell["nonmated_probes"] == 100


def test_mean_templates_of_the_mean_calibration():
    """train.calibrate.mean_templates: renormalised means of k photos of one person, never mixing people, one when
    all of a person's photos are drawn."""
    from train.calibrate import mean_templates

    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]], np.float32)
    who = np.array([0, 0, 0, 1])
    templates, owners = mean_templates(emb, who, counts=(1, 3), draws=2, seed=0)
    assert np.allclose(np.linalg.norm(templates, axis=1), 1.0)
    assert owners.tolist() == [0, 0, 0, 1]  # person 0: two single photos and one mean of all three; person 1: one
    assert np.allclose(templates[2], np.array([1.6, 1.8]) / np.linalg.norm([1.6, 1.8]))
    assert np.allclose(templates[3], [-1.0, 0.0])


def test_a_mean_calibration_counts_identities(bench):
    """The size-table threshold of a "mean" calibration is looked up by the gallery's identities (one fused template
    each), a "max" one's by its templates: the benchmark asks the SDK's rule, as `Thresholds` does."""
    from g2d_edge.openset import OpenSetRule, build_calibration

    rng = np.random.default_rng(2)
    scores = [rng.normal(0.0, 0.1, 500) for _ in range(100)]
    gallery = [np.eye(4, dtype=np.float32)[[0, 0, 0]]] * 3 + [np.eye(4, dtype=np.float32)[[3]]] * 7
    for fusion, size in (("max", 16), ("mean", 10)):
        rule = OpenSetRule(build_calibration({"clean": scores, "masked": scores}, 500, "s", "tests", fusion=fusion))
        sdk, table = bench.sdk_thresholds(gallery, bench.Rules(rule, None), fusion)
        assert sdk == table == {False: rule.threshold(size, "clean"), True: rule.threshold(size, "masked")}


def test_the_sdk_threshold_is_measured_on_the_gallery_with_the_cohort(bench):
    """With a stranger cohort the benchmark's SDK threshold is the SDK's own decision on a real Gallery: a
    gallery holding a template close to many cohort photos gets a higher threshold than one far from all."""
    from g2d_edge.openset import CohortThresholds
    from g2d_edge.sidecar import StrangerCohort

    rng = np.random.default_rng(0)
    centre = np.zeros(8, np.float32)
    centre[0] = 1.0
    cohort_rows = centre + 0.3 * rng.normal(size=(400, 8)).astype(np.float32)
    cohort = StrangerCohort.of({"clean": cohort_rows, "masked": cohort_rows}, people=40)

    asked = []

    class Rule:
        target_fpir = 0.01

        def decide(self, identities, templates, kind):
            asked.append(kind)
            return type("Decision", (), {"threshold": 0.99})()

    rules = bench.Rules(Rule(), CohortThresholds(cohort, 0.01))
    near = [centre[None].copy()]
    far = [-centre[None].copy()]
    sdk_near, table = bench.sdk_thresholds(near, rules, "max")
    sdk_far, _ = bench.sdk_thresholds(far, rules, "max")
    assert table == {False: 0.99, True: 0.99}
    assert sdk_near[False] > 0.8 > sdk_far[False]
    assert len(asked) == 4  # the size table column of each gallery only: the cohort answered the SDK's threshold


def test_people_intervals_resample_people_not_photos(bench):
    """When every person's probes are alike, any draw of people gives the plain figures (a zero-width interval, equal
    to `score`'s); when one stranger out of four is always named, the FPIR interval spans 0 to at least a half."""
    def trial(stranger_scores, people=4):
        probes = len(stranger_scores) // people
        mated = np.tile(np.array([0.9, 0.6, 0.4]), people)
        return bench.Trial(mated_score=mated, mated_right=np.ones(mated.size, bool),
                           mated_threshold=np.full(mated.size, 0.5), stranger_score=np.asarray(stranger_scores, float),
                           stranger_threshold=np.full(len(stranger_scores), 0.5), mated_alt=np.zeros(mated.size),
                           stranger_alt=np.zeros(len(stranger_scores)), mated_person=np.repeat(np.arange(people), 3),
                           stranger_person=np.repeat(np.arange(people), probes))

    alike = trial(np.tile(np.linspace(0.0, 0.45, 25), 4))
    intervals = bench.people_intervals(alike, target=0.01, resamples=50)
    plain = bench.score(alike, 0.3)
    assert intervals["fpir_ci95"] == [plain["sdk"]["fpir"]] * 2 == [0.0, 0.0]
    assert intervals["fnir_ci95"] == [pytest.approx(plain["sdk"]["fnir"], abs=1e-4)] * 2
    gap = plain["sdk"]["fnir"] - plain["fnir_at_fpir_0.01"]
    assert intervals["gap_to_best_ci95"] == [pytest.approx(gap, abs=1e-4)] * 2
    one_named = trial([0.8] * 10 + [0.1] * 30)
    low, high = bench.people_intervals(one_named, resamples=400)["fpir_ci95"]
    assert low == 0.0 and high >= 0.5


def test_a_fold_enrols_no_more_people_than_the_gallery_holds(bench):
    labels = np.repeat(np.arange(4), 3)
    emb = np.eye(12, dtype=np.float32)
    people = bench.od.FaceSet(emb, emb, labels, list("abcd"), [f"{i}.jpg" for i in range(12)])
    distractors = np.full((5, 12), 0.1, np.float32)
    gallery, rows, owner = bench.fold_gallery(people, [0, 1, 2], 1, 2, distractors)
    assert len(gallery) == 2 and owner == [0, 0, 1, 1]  # the first two enrolled; the third neither enrolled nor probe
    gallery, rows, owner = bench.fold_gallery(people, [0, 1, 2], 2, 6, distractors)
    assert len(gallery) == 6 and [len(t) for t in gallery] == [2, 2, 2, 1, 1, 1] and rows == [2, 5, 8]


def test_a_model_trained_on_held_out_people_is_refused(bench, m_sidecar_holding_out):
    from g2d_edge.sidecar import ModelSidecar
    from g2d_edge.shipped import shipped_model_path

    held = ModelSidecar.load(shipped_model_path("g2d-edge-m").with_suffix(".json")).data_summary["val_identities"]
    fewer = m_sidecar_holding_out(held[:10])
    bench.refuse_trained_on([("m", shipped_model_path("g2d-edge-m"))], held)  # holds them all out
    with pytest.raises(SystemExit, match="fewer was trained on 10 of the 15 held-out people"):
        bench.refuse_trained_on([("fewer", fewer)], held[5:20])


def test_paired_differences_share_the_draws_of_people(bench):
    """A model against itself differs by exactly 0 in every draw; a model that misses one person's probes is worse in
    the draws that hold that person and equal in the others (an interval from 0 up); models scored on other people
    are refused."""
    def trial(mated_score, people=np.arange(5)):
        mated = np.asarray(mated_score, float)
        strangers = np.tile(np.linspace(0.0, 0.45, 20), len(people))
        return bench.Trial(mated_score=mated, mated_right=np.ones(mated.size, bool),
                           mated_threshold=np.full(mated.size, 0.5), stranger_score=strangers,
                           stranger_threshold=np.full(strangers.size, 0.5), mated_alt=np.zeros(mated.size),
                           stranger_alt=np.zeros(strangers.size), mated_person=np.repeat(people, 2),
                           stranger_person=np.repeat(people, 20))

    good = trial([0.9] * 10)
    worse = trial([0.9] * 8 + [0.2] * 2)  # the last person's two probes now fall under any usable threshold
    cells = {}
    for label, t in (("a", good), ("a again", good), ("b", worse)):
        point = bench.score(t, 0.3)["fnir_at_fpir_0.01"]
        cells[label] = {(10, 5, "masked"): (point, *bench.best_fnir_draws(t, resamples=200))}
    out = bench.paired(cells)
    assert out["a again"]["10"]["5"]["masked"] == {"difference": 0.0, "ci95": [0.0, 0.0]}
    worse_cell = out["b"]["10"]["5"]["masked"]
    assert worse_cell["difference"] == pytest.approx(0.2)
    assert worse_cell["ci95"][0] >= 0.0 and worse_cell["ci95"][1] >= 0.4
    others = trial([0.9] * 10, people=np.arange(1, 6))
    cells["c"] = {(10, 5, "masked"): (0.0, *bench.best_fnir_draws(others, resamples=200))}
    with pytest.raises(SystemExit, match="different test people"):
        bench.paired(cells)
