"""The open-set threshold measured on the gallery at hand with the calibration's stranger cohort
(`g2d_edge.openset.cohort`): the estimator, the cache that follows the gallery, the sidecar's cohort, and the
Recognizer's decision."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from g2d_edge.errors import GalleryError, ModelError
from g2d_edge.gallery.file import Gallery
from g2d_edge.openset import CohortThresholds, OpenSetRule, Thresholds, build_calibration, threshold_from_best
from g2d_edge.sidecar import ModelSidecar, StrangerCohort

DIM = 16


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def strangers(count=400, seed=0):
    return unit(np.random.default_rng(seed).normal(size=(count, DIM)))


@pytest.fixture(scope="module")
def sidecar():
    """A sidecar of a DIM-d model whose calibration carries a cohort of 400 random strangers per kind."""
    rng = np.random.default_rng(1)
    scores = [rng.normal(0.0, 0.25, 1000) for _ in range(200)]
    cohort = StrangerCohort.of({"clean": strangers(seed=2), "masked": strangers(seed=3)}, people=400)
    calibration = build_calibration({"clean": scores, "masked": scores}, 1000, "space-x", "tests", cohort=cohort)
    return ModelSidecar(name="m", embedding_dim=DIM, num_classes=0, embedding_space="space-x", weights_sha256="",
                        open_set=calibration)


def test_the_estimate_names_the_target_share_of_the_cohort():
    best = np.random.default_rng(0).normal(0.3, 0.1, 2000)
    for target in (0.01, 0.05):
        t = threshold_from_best(best, target)
        assert np.mean(best >= t) == pytest.approx(target, rel=0.2)  # the kernel smooths a little
    assert threshold_from_best(np.full(10, -np.inf), 0.01) == -1.0  # nothing matched: nobody to name


def test_the_threshold_rises_as_the_gallery_grows_and_follows_every_change(sidecar):
    thresholds = Thresholds(sidecar, None, 0.01)
    gallery = Gallery()
    rng = np.random.default_rng(5)
    seen = []
    for count in (1, 10, 100, 1000):
        while len(gallery) < count:
            gallery.add(f"p{len(gallery)}", unit(rng.normal(size=(2, DIM))))
        decision = thresholds.decide(gallery, "clean")
        assert decision.source == "open-set" and decision.method == "gallery cohort"
        assert (decision.identities, decision.templates) == (count, 2 * count)
        assert "measured on this gallery" in decision.describe()
        seen.append(decision.threshold)
    assert seen == sorted(seen) and seen[0] < seen[-1]
    # templates right among the strangers: the threshold must rise at once, though the gallery's size hardly
    # changes; removing them brings the threshold back
    gallery = Gallery()
    gallery.add("someone", unit(rng.normal(size=(2, DIM))))
    before = thresholds.decide(gallery, "clean").threshold
    noise = 0.7 * unit(np.random.default_rng(8).normal(size=(40, DIM)))
    gallery.add("look-alike", unit(strangers(seed=2)[:40] + noise))  # near 40 cohort photos, not them
    assert thresholds.decide(gallery, "clean").threshold > before + 0.05
    gallery.remove("look-alike")
    assert thresholds.decide(gallery, "clean").threshold == pytest.approx(before)


def test_changes_count_every_edit_of_a_file_gallery(tmp_path):
    gallery = Gallery()
    marks = [gallery.changes]
    gallery.add("a", strangers(2))
    marks.append(gallery.changes)
    gallery.rename("a", "b")
    marks.append(gallery.changes)
    gallery.save(tmp_path / "g.npz")
    loaded = Gallery.load(tmp_path / "g.npz")
    gallery.remove("b")
    marks.append(gallery.changes)
    gallery.clear()
    marks.append(gallery.changes)
    assert all(a < b for a, b in zip(marks, marks[1:]))
    assert loaded.changes >= 1
    gallery.search(strangers(1), top_k=1)  # a search changes nothing
    assert gallery.changes == marks[-1]


def test_kinds_are_measured_apart_and_an_unknown_kind_takes_the_higher(sidecar):
    thresholds = Thresholds(sidecar, None, 0.01)
    gallery = Gallery()
    far = -strangers(seed=3)[:1]
    gallery.add("near-masked", np.concatenate([far, strangers(seed=3)[:30]]),
                masked=[False] + [True] * 30)  # its masked templates sit among the masked cohort
    gallery.add("other", unit(np.random.default_rng(9).normal(size=(3, DIM))))
    clean, masked = (thresholds.decide(gallery, k).threshold for k in ("clean", "masked"))
    assert masked > clean  # masked templates are searched by masked faces only (the gallery's masked rule)
    assert thresholds.decide(gallery, None).threshold == pytest.approx(max(clean, masked))


def test_the_size_table_answers_where_the_cohort_cannot(sidecar):
    gallery = Gallery()
    assert Thresholds(sidecar, None, 0.01).decide(gallery, "clean").method == "size table"  # empty gallery
    gallery.add("a", strangers(3, seed=11))
    low = Thresholds(sidecar, None, 0.001)  # 400 photos cannot measure 0.1 %: fewer than 2 could be named
    assert not low.cohort.usable("clean")
    decision = low.decide(gallery, "clean")
    assert decision.method == "size table" and "calibration table" in decision.describe()
    assert decision.threshold == pytest.approx(OpenSetRule(sidecar.open_set, 0.001).threshold(3, "clean"))
    # verify judges one comparison: always the table for a one-template gallery
    one = Thresholds(sidecar, None, 0.01).decide(gallery, "clean", one=True)
    assert one.method == "size table" and one.templates == 1


class Counted(Gallery):
    """A gallery without a change counter, as a database gallery is; `hold` (when set) makes its searches wait
    for `release`, and `fail` makes them raise."""

    def __init__(self):
        super().__init__()
        self.hold, self.release, self.fail = False, threading.Event(), False
        self.searches = 0

    @property
    def changes(self):
        return None

    def search(self, *args, **kwargs):
        self.searches += 1
        if self.hold:
            assert self.release.wait(10)
        if self.fail:
            raise GalleryError("the database went away")
        return super().search(*args, **kwargs)


def measured_once(sidecar):
    """(thresholds, a database-like gallery of one person with 2 templates, its first measured clean threshold)."""
    thresholds = CohortThresholds(sidecar.open_set.cohort, 0.01)
    gallery = Counted()
    gallery.add("a", unit(np.random.default_rng(3).normal(size=(2, DIM))))
    thresholds.threshold(gallery, "clean", (1, 2))
    assert thresholds.wait_for_refresh(10)
    first = thresholds.threshold(gallery, "clean", (1, 2))
    assert first is not None
    return thresholds, gallery, first


def test_a_database_gallery_is_first_measured_in_the_background_while_the_size_table_answers(sidecar):
    """The first face against a database gallery does not wait seconds for the cohort search: the size table
    answers (None here) until the measurement is done; each kind is measured once."""
    thresholds = CohortThresholds(sidecar.open_set.cohort, 0.01)
    gallery = Counted()
    gallery.add("a", unit(np.random.default_rng(3).normal(size=(2, DIM))))
    gallery.hold = True
    started = time.monotonic()
    assert thresholds.threshold(gallery, "clean", (1, 2)) is None
    assert thresholds.threshold(gallery, "masked", (1, 2)) is None  # one measurement at a time
    assert time.monotonic() - started < 5
    gallery.release.set()
    assert thresholds.wait_for_refresh(10)
    clean = thresholds.threshold(gallery, "clean", (1, 2))
    file_gallery = Gallery()
    file_gallery.add("a", unit(np.random.default_rng(3).normal(size=(2, DIM))))
    assert clean == pytest.approx(CohortThresholds(sidecar.open_set.cohort, 0.01).threshold(file_gallery, "clean",
                                                                                            (1, 2)))
    assert gallery.searches == 1
    assert thresholds.threshold(gallery, "masked", (1, 2)) is None  # now measured too, adding to the clean one
    assert thresholds.wait_for_refresh(10) and thresholds.threshold(gallery, "masked", (1, 2)) is not None
    assert thresholds.threshold(gallery, "clean", (1, 2)) == clean and gallery.searches == 2


def test_a_first_measurement_that_fails_leaves_the_size_table_and_is_retried_later(sidecar, caplog, monkeypatch):
    from g2d_edge.openset import cohort as cohort_module

    def failed_once():
        thresholds = CohortThresholds(sidecar.open_set.cohort, 0.01)
        gallery = Counted()
        gallery.add("a", unit(np.random.default_rng(3).normal(size=(2, DIM))))
        gallery.fail = True
        assert thresholds.threshold(gallery, "clean", (1, 2)) is None and thresholds.wait_for_refresh(10)
        gallery.fail = False
        return thresholds, gallery

    with caplog.at_level(logging.WARNING, logger="g2d_edge.openset.cohort"):
        thresholds, gallery = failed_once()
    assert caplog.text.count("measuring the gallery failed (GalleryError: the database went away)") == 1
    for _ in range(3):  # not tried again within REFRESH_S, however many faces ask
        assert thresholds.threshold(gallery, "clean", (1, 2)) is None and thresholds.wait_for_refresh(10)
    monkeypatch.setattr(cohort_module, "REFRESH_S", 0.0)
    thresholds, gallery = failed_once()
    thresholds.threshold(gallery, "clean", (1, 2))
    assert thresholds.wait_for_refresh(10) and thresholds.threshold(gallery, "clean", (1, 2)) is not None


def test_a_database_gallery_is_measured_again_when_its_counts_change(sidecar):
    """A gallery without a change counter (a database) is keyed by its counts; it is measured again on a
    background thread, and the previous threshold answers until that measurement is done."""
    thresholds, gallery, first = measured_once(sidecar)
    gallery.add("b", strangers(seed=2)[:40])
    gallery.hold = True
    started = time.monotonic()
    assert thresholds.threshold(gallery, "clean", (2, 42)) == first  # not waiting for the held search
    assert time.monotonic() - started < 5 and not thresholds.wait_for_refresh(0.1)
    gallery.release.set()
    assert thresholds.wait_for_refresh(10)
    assert thresholds.threshold(gallery, "clean", (2, 42)) > first


def test_a_database_gallery_is_measured_again_after_a_while(sidecar, monkeypatch):
    """Another box may swap templates without changing the counts: after REFRESH_S the gallery is measured again
    (in the background), once, however many faces ask meanwhile."""
    from g2d_edge.openset import cohort as cohort_module

    thresholds, gallery, first = measured_once(sidecar)
    gallery.remove("a")
    gallery.add("a", strangers(seed=2)[:2])  # the same counts, templates like the cohort's photos
    assert thresholds.threshold(gallery, "clean", (1, 2)) == first  # within REFRESH_S: the cached measurement
    monkeypatch.setattr(cohort_module, "REFRESH_S", 0.0)
    gallery.hold = True
    assert [thresholds.threshold(gallery, "clean", (1, 2)) for _ in range(3)] == [first] * 3
    refreshers = [t for t in threading.enumerate() if t.name == "g2d-cohort-refresh"]
    assert len(refreshers) == 1
    gallery.release.set()
    assert thresholds.wait_for_refresh(10)
    monkeypatch.setattr(cohort_module, "REFRESH_S", 60.0)
    assert thresholds.threshold(gallery, "clean", (1, 2)) > first + 0.1


def test_a_failed_measurement_in_the_background_is_reported_and_the_last_threshold_kept(sidecar, caplog):
    thresholds, gallery, first = measured_once(sidecar)
    gallery.add("b", strangers(seed=2)[:40])
    gallery.fail = True
    with caplog.at_level(logging.WARNING, logger="g2d_edge.openset.cohort"):
        assert thresholds.threshold(gallery, "clean", (2, 42)) == first
        assert thresholds.wait_for_refresh(10)
    assert "measuring the gallery failed (GalleryError: the database went away)" in caplog.text
    assert thresholds.threshold(gallery, "clean", (2, 42)) == first  # tried again after REFRESH_S, not per face
    gallery.fail = False
    assert thresholds.threshold(gallery, "clean", (2, 42)) == first


def test_the_cohort_survives_the_sidecar_round_trip(sidecar, tmp_path):
    loaded = ModelSidecar.load(sidecar.save(tmp_path / "m.json"))
    assert loaded.open_set == sidecar.open_set
    rows = loaded.open_set.cohort.embeddings("clean")
    assert rows.shape == (400, DIM) and np.allclose(rows, strangers(seed=2), atol=2e-3)  # stored as float16
    with pytest.raises(ModelError, match="cohort"):
        loaded.open_set.cohort.embeddings("blurred")


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.__setitem__("clean", "not base64!"), "clean"),
    (lambda c: c.__setitem__("masked", c["masked"][:-8]), "masked"),  # not whole rows
    (lambda c: c.__setitem__("clean", __import__("base64").b64encode(
        np.full(DIM, np.nan, "<f2").tobytes()).decode()), "clean"),  # not finite
    (lambda c: c.__setitem__("dim", 0), "dim"),
    (lambda c: c.__setitem__("dim", DIM // 2), "cohort holds 8-d"),  # rows fit, but not this model's size
])
def test_a_broken_cohort_is_refused_by_name(sidecar, edit, match, tmp_path):
    data = sidecar.to_dict()
    edit(data["open_set"]["cohort"])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=match) as err:
        ModelSidecar.load(path)
    assert "cohort" in str(err.value) and "calibrat" in str(err.value)


def test_a_calibration_without_a_cohort_keeps_the_size_table(sidecar):
    bare = dataclasses.replace(sidecar, open_set=dataclasses.replace(sidecar.open_set, cohort=None))
    gallery = Gallery()
    gallery.add("a", strangers(3, seed=12))
    assert Thresholds(bare, None, 0.01).decide(gallery, "clean").method == "size table"


def test_the_shipped_default_model_measures_its_galleries():
    """g2d-edge-m ships a cohort (the photos of the calibration half of its held-out people and 8 of each training
    person's, every row labelled with its person); g2d-edge-s does not (measured: with it, 2-7.5 % of strangers were
    named against a 1 % target, README "Open-set identification")."""
    from g2d_edge.shipped import shipped_model_path

    sidecar = ModelSidecar.load(shipped_model_path("g2d-edge-m").with_suffix(".json"))
    m, trained = sidecar.open_set, sidecar.num_classes
    calibration_people = len(sidecar.data_summary["val_identities"]) // 2
    held_out_photos = sidecar.data_summary["sources"]["celeba-train"]["held_out_rows"]
    s = ModelSidecar.load(shipped_model_path("g2d-edge-s").with_suffix(".json")).open_set
    assert m.cohort is not None and m.cohort.people == calibration_people + trained
    for kind in ("clean", "masked"):
        rows = m.cohort.embeddings(kind).shape[0]
        assert m.cohort.embeddings(kind).shape[1] == 128 and m.cohort.people < rows <= held_out_photos + 8 * trained
        assert np.bincount(m.cohort.person_of(kind), minlength=m.cohort.people).min() >= 1
    assert s.cohort is None


def clustered_cohort(people=40, photos=10, dim=64, seed=0):
    """Photos of `people` people (each a tight cluster around its own direction), with their person per row."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(people, dim)))
    rows = unit(np.repeat(centres, photos, axis=0) + 0.06 * rng.normal(size=(people * photos, dim)))
    return rows, np.repeat(np.arange(people), photos)


def test_cohort_people_enrolled_after_all_are_left_out_not_counted_as_strangers():
    """`g2d calibrate` run on the very people then enrolled: their cohort photos match their own templates far
    above any stranger; counted as strangers they would push the threshold to 1 and nobody would be named."""
    dim = 64
    rows, who = clustered_cohort(dim=dim)
    cohort = StrangerCohort.of({"clean": rows, "masked": rows}, 40, {"clean": who, "masked": who})
    rng = np.random.default_rng(1)
    scores = [rng.normal(0.0, 1 / np.sqrt(dim), 1000) for _ in range(200)]
    calibration = build_calibration({"clean": scores, "masked": scores}, 1000, "space-y", "tests", cohort=cohort)
    sidecar = ModelSidecar(name="m", embedding_dim=dim, num_classes=0, embedding_space="space-y", weights_sha256="",
                           open_set=calibration)
    thresholds = Thresholds(sidecar, None, 0.05)
    gallery = Gallery()
    for i in range(10):
        gallery.add(f"other{i}", unit(rng.normal(size=(2, dim))))
    strangers_only = thresholds.decide(gallery, "clean").threshold
    for person in range(5):  # five cohort people enrolled, with two of their photos
        gallery.add(f"cohort{person}", rows[who == person][:2])
    decision = thresholds.decide(gallery, "clean")
    assert decision.method == "gallery cohort" and thresholds.cohort.left_out["clean"] == 50
    assert decision.threshold < 0.6 and decision.threshold == pytest.approx(strangers_only, abs=0.05)
    # without the rule the same gallery would name no one
    blind = CohortThresholds(cohort, 0.05)
    assert blind.threshold(gallery, "clean", (len(gallery), gallery.num_templates)) > decision.threshold + 0.3


def test_a_new_gallery_of_the_same_size_is_measured_afresh():
    """The cache holds the gallery itself, so a new gallery object (even one that reuses a freed one's id()) with
    the same counts and change count is measured again."""
    rows, who = clustered_cohort()
    thresholds = CohortThresholds(StrangerCohort.of({"clean": rows, "masked": rows}, 40), 0.01)
    far = Gallery()
    far.add("far", unit(np.random.default_rng(7).normal(size=(1, 64))))
    low = thresholds.threshold(far, "clean", (1, 1))
    del far
    near = Gallery()
    near.add("near", rows[:1])  # a look-alike of one cohort person: 10 of 400 photos score about 1
    assert thresholds.threshold(near, "clean", (1, 1)) > low + 0.3


def test_a_measurement_cut_short_by_closing_ends_quietly(sidecar, caplog):
    """`Recognizer.close` closes a gallery it opened: a background measurement then in flight fails, and that is no
    news worth a warning; no new measurement starts afterwards."""
    thresholds, gallery, first = measured_once(sidecar)
    gallery.add("b", strangers(seed=2)[:40])
    gallery.hold = True
    assert thresholds.threshold(gallery, "clean", (2, 42)) == first
    thresholds.close()
    gallery.fail = True  # the gallery is closed under the running measurement
    gallery.release.set()
    with caplog.at_level(logging.WARNING, logger="g2d_edge.openset.cohort"):
        assert thresholds.wait_for_refresh(10)
    assert caplog.text == ""
    assert thresholds.threshold(gallery, "clean", (2, 42)) == first
    assert not [t for t in threading.enumerate() if t.name == "g2d-cohort-refresh"]


def test_a_tie_between_two_identities_is_broken_the_same_way_in_every_process():
    """Half of a cohort person's photos find "ann" (with a mate's score), half "bob" (a stranger's): the person is
    enrolled as ann, whatever order Python's string hashing gives a set of names (it changes from process to process,
    and with it, before, the measured threshold of the benchmarks' 10,000-identity galleries)."""
    script = ("import numpy as np\n"
              "from g2d_edge.openset.cohort import enrolled_people\n"
              "names = ['bob', 'ann', 'bob', 'ann']\n"
              "best = np.array([0.30, 0.90, 0.31, 0.88])\n"
              "print(enrolled_people(names, best, np.zeros(4, np.int64), 0.5).tolist())\n")
    outputs = set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout.strip())
    assert outputs == {"[0]"}
