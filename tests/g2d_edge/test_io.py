"""Image reading: every bad input gives ImageReadError / InputError with the path, never a None or a NumPy error."""
import cv2
import numpy as np
import pytest

from g2d_edge.errors import G2DError, ImageReadError, InputError
from g2d_edge.io import list_images, load_image, read_image


def test_reads_real_photo_and_unicode_path(people, tmp_path):
    src = next(iter(people.values()))[0]
    expected = cv2.imread(str(src))
    odd = tmp_path / "phötö ünïcode.jpg"
    odd.write_bytes(src.read_bytes())
    image = read_image(odd)
    assert image.dtype == np.uint8 and image.shape == expected.shape
    assert np.array_equal(image, expected)


def test_grayscale_and_alpha_files_become_bgr(tmp_path):
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((20, 30), 77, np.uint8))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.full((20, 30, 4), 200, np.uint8))
    assert read_image(gray).shape == (20, 30, 3) and read_image(gray)[0, 0, 0] == 77
    assert read_image(rgba).shape == (20, 30, 3)


@pytest.mark.parametrize("case, words", [("missing", "not found"), ("directory", "directory"),
                                         ("corrupt", "cannot decode"), ("empty", "empty")])
def test_bad_files_raise_image_read_error(tmp_path, case, words):
    path = tmp_path / "photo.jpg"
    if case == "directory":
        path.mkdir()
    elif case == "corrupt":
        path.write_bytes(b"\xff\xd8 this is not really a jpeg" * 10)
    elif case == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, G2DError)


def test_load_image_checks_arrays():
    frame = np.zeros((50, 60, 3), np.uint8)
    assert load_image(frame) is frame
    with pytest.raises(InputError):
        load_image(np.zeros((50, 60), np.float32))
    with pytest.raises(ImageReadError):
        load_image(12345)


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ["b.jpg", "a.PNG", "c.txt", "d.jpeg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    (tmp_path / "._b.jpg").write_bytes(b"x")  # a macOS resource fork, not an image
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpg", "d.jpeg"]
    with pytest.raises(ImageReadError):
        list_images(tmp_path / "nope")
