"""Training data: masked items, determinism, identity hold-out, teacher rows, image folders with bad files."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from train.config import DataConfig, SourceConfig
from train.data import (AlignedFaceDataset, AugmentOptions, DataError, EpochShuffleSampler, ImageFolderDataset,
                        build_stage_data, collate_faces, compute_holdout, split_identities)
from train.prepare import AlignedCache

from tiny_faces import make_tiny_cache, tiny_teacher  # tests/train/tiny_faces.py (see tests/conftest.py)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("data")
    make_tiny_cache(tmp / "celeb.npz", identities=6, photos=4, seed=0)
    make_tiny_cache(tmp / "pool.npz", identities=5, photos=1, seed=3, labelled=False, name_prefix="pool")
    tiny_teacher(tmp / "celeb.npz", tmp / "celeb_t.npy", nan_rows=[0, 5])
    tiny_teacher(tmp / "pool.npz", tmp / "pool_t.npy")
    return tmp


def _data_cfg(tmp: Path, val=2) -> DataConfig:
    return DataConfig(sources=[
        SourceConfig(name="celeb", cache=str(tmp / "celeb.npz"), teacher=str(tmp / "celeb_t.npy")),
        SourceConfig(name="pool", cache=str(tmp / "pool.npz"), teacher=str(tmp / "pool_t.npy"), labelled=False),
    ], val_identities=val, split_seed=0)


def test_items_are_masked_deterministic_per_epoch(tiny: Path) -> None:
    cache = AlignedCache.load(tiny / "celeb.npz")
    ds = AlignedFaceDataset(cache, AugmentOptions(mask_prob=1.0, flip=False), seed=5)
    item = ds[3]
    assert item["clean"].shape == (112, 112, 3) and item["clean"].dtype == np.uint8
    assert item["masked"].dtype == np.uint8 and item["region"].shape == (112, 112)
    np.testing.assert_array_equal(item["clean"], cache.images[3])
    region = item["region"].astype(bool)
    assert 0.05 < region.mean() < 0.6  # a mask covers the lower face, not the whole crop
    changed = np.any(item["masked"] != item["clean"], axis=2)
    assert not changed[~region].any() and changed[region].mean() > 0.5
    np.testing.assert_array_equal(ds[3]["masked"], item["masked"])  # same (epoch, index): same mask
    ds.set_epoch(1)
    assert not np.array_equal(ds[3]["masked"], item["masked"])  # a new epoch draws a new mask

    clean_only = AlignedFaceDataset(cache, AugmentOptions(mask_prob=0.0, flip=False))[3]
    np.testing.assert_array_equal(clean_only["masked"], clean_only["clean"])
    assert not clean_only["region"].any()


def test_flip_moves_images_and_region_together(tiny: Path) -> None:
    cache = AlignedCache.load(tiny / "celeb.npz")
    ds = AlignedFaceDataset(cache, AugmentOptions(mask_prob=1.0, flip=True), seed=0)
    flipped = 0
    for i in range(len(ds)):
        item = ds[i]
        is_flipped = np.array_equal(item["clean"], cache.images[i][:, ::-1])
        flipped += is_flipped
        assert is_flipped or np.array_equal(item["clean"], cache.images[i])
        changed = np.any(item["masked"] != item["clean"], axis=2)
        assert not changed[~item["region"].astype(bool)].any()  # region still marks the mask after the flip
    assert 0 < flipped < len(ds)


def test_color_jitter_changes_clean_and_masked_alike(tiny: Path) -> None:
    cache = AlignedCache.load(tiny / "celeb.npz")
    item = AlignedFaceDataset(cache, AugmentOptions(mask_prob=1.0, flip=False, color_jitter=0.3), seed=1)[2]
    assert not np.array_equal(item["clean"], cache.images[2])
    outside = ~item["region"].astype(bool)
    np.testing.assert_array_equal(item["masked"][outside], item["clean"][outside])


def test_split_by_identity_is_deterministic() -> None:
    names = [f"p{k}" for k in range(20)]
    train, held = split_identities(names, 5, seed=3)
    assert (train, held) == split_identities(list(reversed(names)), 5, seed=3)
    assert len(held) == 5 and not set(train) & set(held) and sorted(train + held) == sorted(names)
    assert split_identities(names, 5, seed=4)[1] != held
    assert split_identities(names, ["p1", "p7"])[1] == ["p1", "p7"]
    with pytest.raises(DataError, match="not found"):
        split_identities(names, ["p1", "nobody"])
    with pytest.raises(DataError, match="at least one"):
        split_identities(names, 20)


def test_stage_data_excludes_held_out_people_and_failed_teacher_rows(tiny: Path) -> None:
    cfg = _data_cfg(tiny)
    holdout = compute_holdout(cfg)
    assert holdout.source == "celeb" and len(holdout.held_out) == 2
    cache = AlignedCache.load(tiny / "celeb.npz")
    names = cache.identities[cache.labels]
    data = build_stage_data(cfg, ["celeb", "pool"], AugmentOptions(), seed=0, need_teacher=True)
    celeb, pool = data.dataset.datasets
    assert not set(names[celeb.rows]) & set(holdout.held_out)
    assert 0 not in celeb.rows and 5 not in celeb.rows  # NaN teacher rows are skipped...
    failed_in_train = sum(int(names[r] not in holdout.held_out) for r in (0, 5))
    assert data.summary["sources"]["celeb"]["teacher_failed_rows"] == failed_in_train  # ...and counted
    assert len(celeb) == 16 - failed_in_train and len(pool) == 5
    item = data.dataset[0]
    assert item["teacher"].shape == (128,) and abs(np.linalg.norm(item["teacher"]) - 1) < 1e-5
    # the centring mean comes from the training rows only
    t = np.concatenate([np.load(tiny / "celeb_t.npy")[celeb.rows], np.load(tiny / "pool_t.npy")])
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    np.testing.assert_allclose(data.teacher_mean, t.mean(axis=0), rtol=1e-5)

    labelled = build_stage_data(cfg, ["celeb", "pool"], AugmentOptions(), seed=0, need_labels=True)
    assert labelled.class_names == holdout.train and len(labelled.dataset.datasets) == 1
    labels = {int(labelled.dataset[i]["label"]) for i in range(len(labelled.dataset))}
    assert labels == set(range(4))
    with pytest.raises(DataError, match="teacher"):
        build_stage_data(DataConfig(sources=[SourceConfig(name="c", cache=str(tiny / "celeb.npz"))]), ["c"],
                         AugmentOptions(), seed=0, need_teacher=True)


def test_epoch_sampler_is_a_seeded_permutation() -> None:
    s = EpochShuffleSampler(10, seed=1)
    first = list(s)
    assert sorted(first) == list(range(10)) and list(s) == first
    s.set_epoch(1)
    assert list(s) != first


def _bad_files(root: Path) -> int:
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (root / "alice" / "empty.png").write_bytes(b"")
    (root / "alice" / "text.png").write_text("hello")
    (root / "bob").mkdir()
    cv2.imwrite(str(root / "bob" / "noface.png"), np.full((120, 120, 3), 90, np.uint8))
    cv2.imwrite(str(root / "bob" / "tiny.png"), np.full((4, 4, 3), 90, np.uint8))
    return 5


def test_image_folder_skips_and_counts_unusable_files(tmp_path: Path) -> None:
    n_bad = _bad_files(tmp_path)
    ds = ImageFolderDataset(tmp_path, AugmentOptions(), labelled=True)
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_faces)
    skipped = [p for batch in loader for p in batch["skipped"]]
    assert len(skipped) == n_bad and "clean" not in collate_faces([ds[0]])


def test_image_folder_trains_on_real_photos_between_bad_ones(tmp_path: Path, celeba_people) -> None:
    n_bad = _bad_files(tmp_path)
    for ident, photos in list(celeba_people.items())[:2]:
        for p in photos[:2]:
            (tmp_path / ident).mkdir(exist_ok=True)
            shutil.copy(p, tmp_path / ident / p.name)
    ds = ImageFolderDataset(tmp_path, AugmentOptions(mask_prob=1.0), labelled=True)
    batches = list(DataLoader(ds, batch_size=4, collate_fn=collate_faces))
    assert sum(len(b["skipped"]) for b in batches) == n_bad
    good = [b for b in batches if "clean" in b]
    assert sum(b["clean"].shape[0] for b in good) == 4
    assert all(b["clean"].dtype == torch.uint8 and b["clean"].shape[1:] == (112, 112, 3) for b in good)
    assert all(b["region"].flatten(1).float().mean(1).min() > 0.02 for b in good)  # every face got a mask


def test_folder_source_without_cache_honours_the_hold_out(tmp_path: Path, celeba_people) -> None:
    people = list(celeba_people.items())[:3]
    for ident, photos in people:
        (tmp_path / ident).mkdir()
        for p in photos[:2]:
            shutil.copy(p, tmp_path / ident / p.name)
    held = people[0][0]
    cfg = DataConfig(sources=[SourceConfig(name="raw", root=str(tmp_path), cache=str(tmp_path / "missing.npz"))],
                     val_identities=[held])
    data = build_stage_data(cfg, ["raw"], AugmentOptions(), seed=0, need_labels=True)
    (folder,) = data.dataset.datasets
    assert isinstance(folder, ImageFolderDataset) and data.summary["sources"]["raw"]["kind"] == "folder"
    assert data.class_names == sorted(i for i, _ in people[1:]) and len(folder) == 4
    assert all(p.parent.name != held for p in folder.paths)
    with pytest.raises(DataError, match="prepare"):  # distillation needs prepared caches
        build_stage_data(cfg, ["raw"], AugmentOptions(), seed=0, need_teacher=True)
