"""`train.openset_data`: the hold-out it splits is the shipped models', and its crop cache is kept per set of people
(a cache made for another hold-out is never read back)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from train import openset_data as od
from train.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["g2d-edge-m", "g2d-edge-s"])
def test_the_hold_out_is_the_shipped_models(model):
    data = load_config(REPO / "train" / "configs" / f"{model}.yaml").data
    assert (data.val_identities, data.split_seed) == (od.VAL_IDENTITIES, od.SPLIT_SEED)


def test_the_crop_cache_is_kept_per_set_of_people(tmp_path, monkeypatch):
    root = tmp_path / "people"
    for person in ("a", "b", "c", "d"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / person / f"{i}.jpg"), np.full((32, 32, 3), 100, np.uint8))
    made = []

    def crop_set(images, mask_rows, seed_key):
        made.append(len(images))
        n = len(images)
        return od.Crops(np.zeros((n, 112, 112, 3), np.uint8), np.zeros((n, 112, 112, 3), np.uint8),
                        np.ones(n, bool), np.ones(n, bool))

    monkeypatch.setattr(od, "_crop_set", crop_set)
    monkeypatch.setattr(od, "VAL_IDENTITIES", 1)
    first = od.people_crops(root, tmp_path / "cache")
    assert od.people_crops(root, tmp_path / "cache")[2] == first[2] and made == [2]  # read back
    monkeypatch.setattr(od, "VAL_IDENTITIES", 2)
    second = od.people_crops(root, tmp_path / "cache")
    assert len(second[2]) == 2 and made == [2, 4]  # another hold-out: made again, not the first cache
    od.people_crops(root, tmp_path / "cache", training=True)
    assert made == [2, 4, 4] and len(list((tmp_path / "cache").glob("crops-*.npz"))) == 3


def test_the_excluded_pool_faces_are_in_no_part():
    files = [f"{i}.jpg" for i in range(od.POOL_CALIBRATION + 2000)]
    files[5], files[od.POOL_CALIBRATION + 100] = od.POOL_EXCLUDED[0], od.POOL_EXCLUDED[1]
    parts = od.pool_parts(files)
    for rows in parts.values():
        assert not {files[r] for r in rows} & set(od.POOL_EXCLUDED)
    assert len(parts["calibration"]) + len(parts["test"]) == len(files) - 2
    assert set(parts["mirrored"]) <= set(parts["test"])


def test_trained_on_names_the_people_a_model_did_not_hold_out():
    from g2d_edge.sidecar import ModelSidecar
    from g2d_edge.shipped import shipped_model_path

    sidecar = ModelSidecar.load(shipped_model_path("g2d-edge-m").with_suffix(".json"))
    held = sidecar.data_summary["val_identities"]
    assert od.trained_on(sidecar, held) == []
    assert od.trained_on(sidecar, [held[0], "not-held-out"]) == ["not-held-out"]
    bare = dataclasses.replace(sidecar, data_summary={})
    assert od.trained_on(bare, held[:3]) == sorted(held[:3])  # no record: held out nobody


def test_calibrating_a_model_trained_on_held_out_people_is_refused(m_sidecar_holding_out):
    from g2d_edge.sidecar import ModelSidecar
    from train.calibrate import calibrate_model
    from train.data import DataError

    people = od.held_out_people()
    fewer = m_sidecar_holding_out(people[:40])
    before = ModelSidecar.load(fewer.with_suffix(".json"))
    with pytest.raises(DataError, match=f"trained on 60 of the {len(people)} held-out people"):
        calibrate_model(fewer, write=False)
    assert ModelSidecar.load(fewer.with_suffix(".json")).open_set == before.open_set  # nothing written
