"""Issue 22, class "limits that can be bypassed": a TIFF that lists its width and height twice cannot slip under the
pixel limit (the larger value counts, and the decoded size is checked too); a long narrow frame neither costs
gigabytes in the detector's padded retry nor passes beyond `MAX_ASPECT_RATIO`; OpenCV's own failures inside
detection ("Insufficient memory") are a G2DError."""
import struct
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest

import g2d_edge.detectors.detect as detect_mod
import g2d_edge.io as io_mod
from g2d_edge.detectors.detect import DetectorOptions, FaceDetector, retry_padding
from g2d_edge.io import MAX_ASPECT_RATIO
from g2d_edge.errors import G2DError, ImageReadError, InputError
from g2d_edge.imagesize import image_size
from g2d_edge.io import read_image


def tiff_listing_its_size_twice(width, height, claim, claim_first):
    """A deflate-compressed grayscale TIFF of width x height whose first directory lists ImageWidth / ImageLength
    twice: once true, once `claim` (before or after the true ones)."""
    pixels = zlib.compress(b"\x00" * (width * height), 9)
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0), (277, 3, 1),
               (278, 4, height), (279, 4, len(pixels))]
    fakes = [(256, 4, claim[0]), (257, 4, claim[1])]
    entries = fakes + entries if claim_first else entries[:2] + fakes + entries[2:]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                                    else struct.pack("<I", value))
    return out + struct.pack("<I", 0) + pixels


@pytest.mark.parametrize("claim_first", [False, True])
def test_a_tiff_listing_its_size_twice_counts_the_larger(tmp_path, claim_first):
    data = tiff_listing_its_size_twice(3000, 2000, (10, 10), claim_first)
    assert len(data) < 10_000
    assert image_size(data) == (3000, 2000)
    path = tmp_path / "twice.tiff"
    path.write_bytes(data)
    with pytest.raises(ImageReadError, match="3000x2000 pixels"):
        read_image(path, max_pixels=1_000_000)


def test_the_decoded_size_is_checked_when_the_header_lied(tmp_path, monkeypatch):
    ok, encoded = cv2.imencode(".png", np.zeros((200, 300, 3), np.uint8))
    path = tmp_path / "liar.png"
    path.write_bytes(encoded.tobytes())
    monkeypatch.setattr(io_mod, "image_size", lambda data: (10, 10))  # a header parser fooled by some other trick
    with pytest.raises(ImageReadError, match="300x200 pixels"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=60_000).shape == (200, 300, 3)


def test_the_padded_retry_grows_a_narrow_frame_by_its_width_not_its_length():
    assert retry_padding(112, 96, 0.25) == 28  # ordinary crops: a quarter of the longer side, as before
    assert retry_padding(1080, 1920, 0.25) == 480
    assert retry_padding(8, 160, 0.25) == 4  # a 20:1 strip: a quarter of twice its width
    assert retry_padding(1000, 20000, 0.25) == 500


def test_a_long_narrow_frame_is_cheap_and_beyond_the_maximum_aspect_ratio_refused():
    with FaceDetector(DetectorOptions()) as detector:
        narrow = np.full((8, 8 * int(MAX_ASPECT_RATIO)), 128, np.uint8)
        narrow = cv2.cvtColor(narrow, cv2.COLOR_GRAY2BGR)
        assert detector.find(narrow) == []  # at the limit: taken
        strip = np.full((64, 1280, 3), 128, np.uint8)  # 20:1, a realistic strip
        tracemalloc.start()
        start = time.perf_counter()
        assert detector.find(strip) == []
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 5.0 and peak < 200e6, (elapsed, peak)
        for shape in ((8, 20000, 3), (20000, 8, 3), (8, 100000, 3)):
            start = time.perf_counter()
            with pytest.raises(InputError, match="aspect ratio"):
                detector.find(np.zeros(shape, np.uint8))
            assert time.perf_counter() - start < 0.5


def test_opencv_running_out_of_memory_in_detection_is_a_g2d_error(monkeypatch):
    def insufficient(*args, **kwargs):
        raise cv2.error("OpenCV(4.10.0) /io/opencv/modules/core/src/alloc.cpp:73: error: (-4:Insufficient memory) "
                        "Failed to allocate 18446744071562067968 bytes in function 'OutOfMemoryError'")

    monkeypatch.setattr(detect_mod, "detect_views", insufficient)
    with FaceDetector(DetectorOptions()) as detector:
        with pytest.raises(G2DError, match="Insufficient memory") as caught:
            detector.find(np.zeros((64, 64, 3), np.uint8))
    assert not isinstance(caught.value, cv2.error) and "smaller" in str(caught.value)
