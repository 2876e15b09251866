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


def test_scores_follow_the_frvt_definitions(bench):
    strangers = np.linspace(0.0, 0.99, 100)  # 100 strangers, one per score step
    mated = np.array([0.2, 0.6, 0.95, 0.97])
    right = np.array([True, True, True, False])  # the last one's best identity is somebody else
    trial = bench.Trial(mated, right, np.full(4, 0.5), strangers, np.full(100, 0.5), np.full(4, 0.9),
                        np.full(100, 0.9))
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
    """The size-table threshold of the mean rule is looked up by the gallery's identities (one fused template
    each), the max rule's by its templates."""
    seen = {}

    class Rule:
        def __init__(self, fusion):
            self.calibration = type("C", (), {"fusion": fusion})()

        def threshold(self, count, kind):
            seen[self.calibration.fusion] = count
            return 0.5

    gallery = [np.eye(4, dtype=np.float32)[[0, 0]], np.eye(4, dtype=np.float32)[[1, 1]],
               np.eye(4, dtype=np.float32)[[2]], np.eye(4, dtype=np.float32)[[3]]]
    for fusion in ("max", "mean"):
        sdk, table = bench.sdk_thresholds(gallery, bench.Rules(Rule(fusion), None), fusion)
        assert sdk == table == {False: 0.5, True: 0.5}  # no cohort: the SDK uses the table
    assert seen == {"max": 2 * 2 + 2, "mean": 4}


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

    class Rule:
        target_fpir = 0.01
        calibration = type("C", (), {"fusion": "max"})()

        def threshold(self, count, kind):
            return 0.99

        def decide(self, identities, templates, kind):  # pragma: no cover - the cohort answers
            raise AssertionError("the size table must not be asked when the cohort resolves the target")

    rules = bench.Rules(Rule(), CohortThresholds(cohort, 0.01))
    near = [centre[None].copy()]
    far = [-centre[None].copy()]
    sdk_near, table = bench.sdk_thresholds(near, rules, "max")
    sdk_far, _ = bench.sdk_thresholds(far, rules, "max")
    assert table == {False: 0.99, True: 0.99}
    assert sdk_near[False] > 0.8 > sdk_far[False]
