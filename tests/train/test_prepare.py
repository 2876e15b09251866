"""`prepare`: detect + align a raw folder once, skipping (and counting) what cannot be used."""
import shutil

import numpy as np
import pytest

from g2d_edge.align import ARCFACE_TEMPLATE_4
from g2d_edge.errors import InputError
from train.prepare import AlignedCache, prepare_folder


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory, celeba_people):
    root = tmp_path_factory.mktemp("raw")
    for ident, photos in list(celeba_people.items())[:2]:
        (root / ident).mkdir()
        for p in photos[:3]:
            shutil.copy(p, root / ident / p.name)
    first = next(iter(celeba_people))
    (root / first / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    import cv2

    cv2.imwrite(str(root / first / "noface.png"), np.full((120, 120, 3), 90, np.uint8))
    return root


def test_prepare_caches_aligned_crops_and_counts_skips(raw_folder, tmp_path):
    out = tmp_path / "cache.npz"
    cache = prepare_folder(raw_folder, out, labelled=True, workers=1)
    s = cache.summary
    assert s["images_found"] == 8 and s["images_kept"] == 6
    assert s["unreadable"] == 1 and s["no_face"] == 1 and len(s["skipped_files"]) == 2
    assert cache.images.shape == (6, 112, 112, 3) and cache.images.dtype == np.uint8
    assert sorted(set(cache.labels.tolist())) == [0, 1] and len(cache.identities) == 2
    # detector keypoints and mesh landmarks are stored in the aligned frame
    assert np.abs(cache.keypoints[:, :4] - ARCFACE_TEMPLATE_4).mean() < 6
    assert cache.has_mesh.all()
    nose_tip_mesh = cache.mesh[:, 1]  # Face Mesh landmark 1 is the nose tip
    assert np.linalg.norm(nose_tip_mesh - cache.keypoints[:, 2], axis=1).mean() < 8

    again = AlignedCache.load(out)
    for field in ("images", "labels", "keypoints", "mesh", "boxes", "matrices"):
        np.testing.assert_array_equal(getattr(again, field), getattr(cache, field))
    assert list(again.paths) == list(cache.paths) and again.summary == cache.summary


def test_prepare_unlabelled_and_missing_folder(raw_folder, tmp_path):
    cache = prepare_folder(raw_folder, tmp_path / "u.npz", labelled=False, workers=1)
    assert (cache.labels == -1).all() and len(cache) == 6
    with pytest.raises(FileNotFoundError):
        prepare_folder(tmp_path / "nope", tmp_path / "x.npz")


def test_one_image_folder_reader_for_sdk_training_and_calibration(tmp_path):
    """A .tif enrols in the SDK, so prepare, evaluation and INT8 calibration read it too (one suffix list)."""
    from g2d_edge.backends.faces import align_folder
    from g2d_edge.io import IMAGE_SUFFIXES, list_people
    from train.eval import list_identity_images
    from train.prepare import list_images as prepare_list

    for person, names in {"bo": ["1.tif", "2.JPG", ".3.jpg", "n.txt"], "al": ["x.webp"], "cy": [],
                          ".hidden": ["h.jpg"]}.items():
        (tmp_path / person).mkdir()
        for name in names:
            (tmp_path / person / name).write_bytes(b"x")
    (tmp_path / "bo" / "deeper").mkdir()
    (tmp_path / "bo" / "deeper" / "4.ppm").write_bytes(b"x")
    assert ".tif" in IMAGE_SUFFIXES and ".ppm" in IMAGE_SUFFIXES
    people = [(name, [p.name for p in photos]) for name, photos in list_people(tmp_path)]
    assert people == [("al", ["x.webp"]), ("bo", ["1.tif", "2.JPG"])]
    assert [(p.name, who) for p, who in prepare_list(tmp_path, labelled=True)] == \
        [("x.webp", "al"), ("1.tif", "bo"), ("2.JPG", "bo")]
    assert [p.name for p, _ in prepare_list(tmp_path, labelled=False)] == ["x.webp", "1.tif", "2.JPG", "4.ppm"]
    paths, labels, names = list_identity_images(tmp_path)
    assert [p.name for p in paths] == ["x.webp", "1.tif", "2.JPG"] and labels.tolist() == [0, 1, 1]
    assert names == ["al", "bo"]
    with pytest.raises(InputError, match="no face found in the 3 photos"):  # .tif, .JPG, .ppm: all read
        align_folder(tmp_path / "bo", max_faces=4)
