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
    assert cell["pool_only_calibration"]["fpir"] == pytest.approx(0.1)
    assert cell["pool_only_calibration"]["fnir"] == pytest.approx(0.75)
    assert cell["mated_probes"] == 4 and cell["nonmated_probes"] == 100
