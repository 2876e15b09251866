"""benchmarks/openset_cohorts.py: cohorts built from the held-out people, the per-cohort summary, and one timed
measurement through the SDK."""
from __future__ import annotations

import numpy as np
import pytest

from g2d_edge.gallery.file import Gallery


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/openset_cohorts.py", "g2d_openset_cohorts_bench")


def held_out(people=4, photos=3, dim=8, seed=0):
    from train import openset_data as od

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(people), photos)
    clean = rng.normal(size=(len(labels), dim)).astype(np.float32)
    clean /= np.linalg.norm(clean, axis=1, keepdims=True)
    masked = clean.copy()
    masked[1] = np.nan  # no face found in one masked photo
    return {"people": od.FaceSet(clean, masked, labels, [f"p{i}" for i in range(people)], [""] * len(labels))}


def test_a_people_cohort_holds_every_usable_photo_of_those_people_only(bench):
    sets = held_out()
    cohort = bench.people_cohort(sets, [0, 2])
    assert cohort.people == 2
    assert cohort.embeddings("clean").shape[0] == 6 and cohort.embeddings("masked").shape[0] == 5
    assert cohort.person_of("clean").tolist() == [0, 0, 0, 1, 1, 1]
    assert cohort.person_of("masked").tolist() == [0, 0, 1, 1, 1]


def test_the_summary_counts_cells_against_the_target(bench):
    cells = {"10": {"1": {"clean": {"fpir": 0.01, "gap": 0.01}, "masked": {"fpir": 0.012, "gap": 0.02}}},
             "100": {"1": {"clean": {"fpir": 0.03, "gap": -0.01}, "masked": {"fpir": 0.0, "gap": 0.005}}}}
    s = bench.summary(cells)
    assert (s["cells"], s["fpir_at_most_1pct"], s["fpir_at_most_1.5pct"], s["gap_at_most_1pt"]) == (4, 2, 3, 3)
    assert s["worst_fpir"] == 0.03 and s["mean_gap"] == pytest.approx(0.00625)


def test_a_measurement_is_timed_through_the_sdk(bench):
    sets = held_out(people=50, photos=5, dim=8)
    cohort = bench.people_cohort(sets, list(range(50)))
    gallery = Gallery()
    gallery.add("a", np.eye(8, dtype=np.float32)[:1])
    seconds = bench.measurement_seconds(gallery, cohort, level=0.9)
    assert 0.0 < seconds < 10.0


def test_a_database_gallery_is_timed_until_its_background_measurement_ends(bench):
    """A gallery without a change counter is measured on a background thread: the timing waits for it and checks
    that both kinds were measured (a time of the size table's answer would be meaningless)."""
    import time as time_module

    class SlowDatabase(Gallery):
        changes = None

        def search(self, *args, **kwargs):
            time_module.sleep(0.2)
            return super().search(*args, **kwargs)

    sets = held_out(people=50, photos=5, dim=8)
    cohort = bench.people_cohort(sets, list(range(50)))
    gallery = SlowDatabase()
    gallery.add("a", np.eye(8, dtype=np.float32)[:1])
    assert bench.measurement_seconds(gallery, cohort, level=0.9) >= 0.4  # two searches at least (clean, masked)
