"""`g2d-train calibrate`'s stranger cohort: the calibration people's photos and a capped share of the training
people's, each row labelled with its person."""
from __future__ import annotations

import numpy as np

from train import openset_data as od
from train.calibrate import COHORT_TRAINING_PHOTOS, stranger_cohort, training_rows


def face_set(photos_per_person, dim=8, seed=0, no_face=()):
    """A FaceSet of random unit embeddings; rows in `no_face` have no masked face (NaN)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(photos_per_person)), photos_per_person)
    clean = rng.normal(size=(len(labels), dim)).astype(np.float32)
    clean /= np.linalg.norm(clean, axis=1, keepdims=True)
    masked = clean[::-1].copy()
    masked[list(no_face)] = np.nan
    names = [f"p{i}" for i in range(len(photos_per_person))]
    return od.FaceSet(clean, masked, labels, names, [f"{i}.jpg" for i in range(len(labels))])


def sets(no_face=()):
    return {"people": face_set([3, 4, 3, 5], seed=1),
            "training": face_set([2, COHORT_TRAINING_PHOTOS + 4, 30], seed=2, no_face=no_face)}


def test_training_rows_cap_each_person_and_skip_photos_without_a_face():
    data = sets(no_face=[0])
    rows = training_rows(data, "masked")
    per_person = np.bincount(data["training"].labels[rows])
    assert per_person.tolist() == [1, COHORT_TRAINING_PHOTOS, COHORT_TRAINING_PHOTOS]
    assert 0 not in rows
    assert np.array_equal(rows, training_rows(data, "masked"))  # seeded: the same photos every time
    assert not np.array_equal(rows, training_rows(data, "masked", seed=1))


def test_the_cohort_holds_the_calibration_people_then_the_training_people_by_person():
    data = sets()
    calibration_people = od.halves(4)[0]
    cohort = stranger_cohort(data)
    assert cohort.people == len(calibration_people) + 3
    for kind in ("clean", "masked"):
        who = cohort.person_of(kind)
        own = np.flatnonzero(np.isin(data["people"].labels, calibration_people))
        extra = training_rows(data, kind)
        assert len(who) == len(own) + len(extra)
        assert sorted(set(who[:len(own)])) == list(range(len(calibration_people)))
        assert np.array_equal(who[len(own):], len(calibration_people) + data["training"].labels[extra])
        expected = getattr(data["training"], kind)[extra]
        assert np.allclose(cohort.embeddings(kind)[len(own):], expected, atol=2e-3)  # stored as float16
