"""Issue 12, class 4 (decompression bombs): an image's pixel count is read from its header and checked against a
configurable limit before it is decoded; a header OpenCV itself refuses is an ImageReadError too, never a cv2.error
(CLI: one line, no traceback)."""
import struct
import time

import cv2
import numpy as np
import pytest

import g2d_edge.io as io_mod
from g2d_edge import Capture, Recognizer, RecognizerOptions
from g2d_edge.video import CaptureOptions
from g2d_edge.cli import main
from g2d_edge.errors import ImageReadError
from g2d_edge.io import read_image
from runtime_helpers import gray_png, jpeg_header, read


def write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".webp lossless", ".tiff", ".ppm", ".pgm", ".pbm"])
def test_the_limit_applies_to_every_supported_format_before_decoding(tmp_path, ext, monkeypatch):
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    if ext in (".pgm", ".pbm"):
        image = image[:, :, 0]
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext.endswith("lossless") else []
    ext = ext.split()[0]
    ok, encoded = cv2.imencode(ext, image, params)
    assert ok
    path = write(tmp_path / f"small{ext}", encoded.tobytes())
    assert read_image(path, max_pixels=1200).shape == (30, 40, 3)  # exactly at the limit: read
    monkeypatch.setattr(io_mod.cv2, "imdecode", lambda *a: pytest.fail("decoded an image above the limit"))
    with pytest.raises(ImageReadError, match=r"is 40x30 pixels \(0\.0 megapixels\), above the limit of 0\.001199 "
                                             r"megapixels \(max_pixels=1199\)"):
        read_image(path, max_pixels=1199)


def test_jpeg_size_is_found_behind_metadata_segments(tmp_path, people, monkeypatch):
    photo = next(iter(people.values()))[0].read_bytes()
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 5000) + b"Exif\x00" + bytes(4995)  # a big EXIF block first
    path = write(tmp_path / "exif.jpg", photo[:2] + app1 + photo[2:])
    assert read_image(path).shape == read(next(iter(people.values()))[0]).shape
    monkeypatch.setattr(io_mod.cv2, "imdecode", lambda *a: pytest.fail("decoded an image above the limit"))
    with pytest.raises(ImageReadError, match="144x144 pixels"):
        read_image(path, max_pixels=144 * 144 - 1)


def bmp_header(width, height):
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib), 0, 0, 14 + len(dib)) + dib


@pytest.mark.parametrize("bomb", ["png header 50000x50000", "jpeg header 60000x60000", "bmp header 30000x30000",
                                  "png header 8000x8000"])
def test_headers_claiming_huge_images_are_image_read_errors(tmp_path, bomb):
    kind, _, size = bomb.split()
    width, height = map(int, size.split("x"))
    data = {"png": gray_png, "jpeg": jpeg_header, "bmp": bmp_header}[kind](width, height) if kind != "png" \
        else gray_png(width, height, body=False)
    path = write(tmp_path / f"bomb.{kind}", data)
    with pytest.raises(ImageReadError, match=f"is {width}x{height} pixels .* above the limit of 50 megapixels"):
        read_image(path)


def test_a_valid_12000x12000_png_is_refused_by_default_without_decoding_it(tmp_path):
    path = write(tmp_path / "huge.png", gray_png(12000, 12000))  # 144 megapixels, 600 KB on disk
    t0 = time.monotonic()
    with pytest.raises(ImageReadError, match=r"12000x12000 pixels \(144\.0 megapixels\)") as err:
        read_image(path)
    assert time.monotonic() - t0 < 1.0
    assert "max_pixels" in str(err.value) and "--max-pixels" in str(err.value)  # how to raise the limit
    assert read_image(write(tmp_path / "ok.png", gray_png(7000, 7000))).shape == (7000, 7000, 3)  # 49 MP: read


def test_recognizer_and_capture_take_the_limit_from_their_options(tmp_path, tiny_onnx_model, people):
    photo = next(iter(people.values()))[0]  # 144x144
    with Recognizer(tiny_onnx_model, options=RecognizerOptions(max_image_pixels=144 * 144 - 1)) as rec:
        with pytest.raises(ImageReadError, match="144x144 pixels"):
            rec.enroll("x", photo)
        with pytest.raises(ImageReadError, match="144x144 pixels"):
            rec.verify(photo, photo)
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((10, 10, 3), np.uint8))
    cv2.imwrite(str(folder / "b.png"), np.zeros((20, 20, 3), np.uint8))
    with Capture(folder, CaptureOptions(max_image_pixels=100)) as cap:
        assert [f.image.shape for f in cap] == [(10, 10, 3)]
    assert cap.stats.skipped == 1


def test_cli_reports_a_bomb_in_one_line(tmp_path, capsys, tiny_onnx_model, people):
    photo = next(iter(people.values()))[0]
    bomb = write(tmp_path / "bomb.png", gray_png(50000, 50000, body=False))
    gallery = tmp_path / "g.npz"
    for argv in (["verify", bomb, photo], ["enroll", "x", bomb, "--gallery", gallery],
                 ["verify", photo, photo, "--max-pixels", "100"]):
        assert main([*map(str, argv), "--model", str(tiny_onnx_model)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("g2d: error: image ") and "above the limit" in err
        assert "Traceback" not in err
