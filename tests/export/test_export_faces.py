"""Face batches for export checks and INT8 calibration (export/faces.py)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from g2d_edge.backends.faces import align_folder, load_cached_faces, load_calibration_faces, synthetic_faces
from g2d_edge.errors import InputError


@pytest.fixture()
def face_npz(tmp_path: Path) -> Path:
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 112, 112, 3), np.uint8)
    path = tmp_path / "cache.npz"
    np.savez(path, images=images, labels=np.arange(10))
    return path


def test_load_cached_faces_reads_only_the_requested_rows(face_npz: Path):
    faces = load_cached_faces(face_npz, 3, start=4)
    assert faces.shape == (3, 112, 112, 3) and faces.dtype == np.uint8
    assert [int(f[0, 0, 0]) for f in faces] == [4, 5, 6]
    assert len(load_cached_faces(face_npz, 50, start=8)) == 2  # clipped at the end
    faces.setflags(write=True)  # a private, writable copy


def test_load_cached_faces_errors(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        load_cached_faces(tmp_path / "missing.npz", 2)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="112"):
        load_cached_faces(bad, 2)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(InputError, match="images"):
        load_cached_faces(other, 2)


def test_synthetic_faces_are_deterministic_and_varied():
    a = synthetic_faces(4, np.random.default_rng(3))
    b = synthetic_faces(4, np.random.default_rng(3))
    assert a.shape == (4, 112, 112, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])
    assert a.std() > 20  # not flat images


def test_calibration_faces_from_npz_subset(face_npz: Path):
    faces = load_calibration_faces(face_npz, max_faces=4, seed=1)
    assert faces.shape == (4, 112, 112, 3)
    values = [int(f[0, 0, 0]) for f in faces]
    assert values == sorted(values) and len(set(values)) == 4
    assert len(load_calibration_faces(face_npz, max_faces=100)) == 10


def test_calibration_faces_errors(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        load_calibration_faces(tmp_path / "nope.npz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError):
        load_calibration_faces(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        load_calibration_faces(empty)


def test_calibration_faces_from_a_photo_folder(celeba_people: dict, tmp_path: Path):
    """Real photos are detected and aligned with the SDK's own pipeline; a non-face image is skipped."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [p for paths in celeba_people.values() for p in paths[:1]][:3]
    for i, p in enumerate(photos):
        (folder / f"{i}.jpg").write_bytes(p.read_bytes())
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 120, 3), 128, np.uint8))
    faces = align_folder(folder, max_faces=10)
    assert faces.shape == (len(photos), 112, 112, 3) and faces.dtype == np.uint8
    assert len(load_calibration_faces(folder, max_faces=2)) == 2
