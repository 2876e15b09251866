"""Issue 22: the seeded fuzz battery grown to the new fault classes (a file of its own beside
`test_fuzz_bad_inputs.py`): random Unicode names, crafted TIFF and PNG headers, extreme aspect ratios and damaged
galleries (template lengths, counts near 2**63). Every call either works, with the guarantees of the README's
Reliability section holding for what it returns, or raises a G2DError; nothing else escapes."""
import struct
import unicodedata
import zlib

import numpy as np
import pytest

from g2d_edge.io import MAX_ASPECT_RATIO
from g2d_edge.errors import G2DError, GalleryError
from g2d_edge.gallery import Gallery
from g2d_edge.io import read_image
from g2d_edge.text import is_forbidden, is_visible, printable
from runtime_helpers import png_chunk

SEED = 22
#: Characters names are drawn from: letters (also decomposed accents), spaces, fillers, marks, controls, bidi.
NAME_POOL = list("abcXYZ -'") + ["\u00e9", "e\u0301", "\u3164", "\u2800", "\u200b", "\u200c", "\u200d", "\u200e",
                                  "\u200f", "\u061c", "\u202e", "\u2066", "\ufeff", "\u00ad", "\u0301", "\u115f",
                                  "\x00", "\n", "\x1b", "\u2028", "\ud800", "\U0001f600", "\u4e2d", "\u0645"]


def outcome(fn):
    try:
        return fn(), None
    except G2DError as exc:
        return None, exc


def test_random_names_are_stored_in_nfc_visible_and_distinct():
    rng = np.random.default_rng(SEED)
    gallery = Gallery()
    accepted = {}
    for _ in range(600):
        name = "".join(NAME_POOL[int(i)] for i in rng.integers(0, len(NAME_POOL), int(rng.integers(0, 6))))
        _, error = outcome(lambda: gallery.add(name, rng.normal(size=4)))
        if error is None:
            accepted[name] = unicodedata.normalize("NFC", name).strip()
    names = gallery.names()
    assert len(accepted) > 20 and set(names) == set(accepted.values())
    for stored in names:
        assert stored == unicodedata.normalize("NFC", stored) and stored == stored.strip()
        assert any(is_visible(c) for c in stored) and not any(is_forbidden(c) for c in stored)
    assert len({printable(n) for n in names}) == len(names)  # no two people list identically


def tiff(width, height, entries_extra, rng):
    """An uncompressed 8-bit grayscale TIFF of width x height with extra (tag, type, value) entries."""
    pixels = b"\x00" * (width * height)
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
               (278, 4, height), (279, 4, len(pixels))] + entries_extra
    order = rng.permutation(len(entries)) if rng.random() < 0.3 else range(len(entries))
    entries = [entries[int(i)] for i in order]
    offset = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = offset if tag == 273 else value
        out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value & 0xFFFF, 0) if kind == 3
                                                    else struct.pack("<I", value))
    return out + struct.pack("<I", 0) + pixels


def png(width, height, claim, rng):
    """A real width x height grayscale PNG whose IHDR may claim another size (`claim`)."""
    comp = zlib.compressobj(1)
    rows = b"".join(comp.compress(b"\x00" * (width + 1)) for _ in range(height)) + comp.flush()
    w, h = claim
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b""))


def test_crafted_tiff_and_png_headers_never_slip_past_the_pixel_limit(tmp_path):
    rng = np.random.default_rng(SEED)
    limit = 5000
    calls = 0
    for i in range(120):
        width, height = (int(v) for v in rng.integers(20, 160, 2))
        fake = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        if i % 2:
            extra = [(256, int(rng.choice([3, 4])), fake[0]), (257, int(rng.choice([3, 4])), fake[1])][
                :int(rng.integers(1, 3))]
            data = tiff(width, height, extra, rng)
        else:
            data = png(width, height, fake if rng.random() < 0.7 else (width, height), rng)
        path = tmp_path / f"c{i}.{'tiff' if i % 2 else 'png'}"
        path.write_bytes(data)
        image, error = outcome(lambda: read_image(path, max_pixels=limit))
        calls += 1
        if image is not None:
            assert image.shape[0] * image.shape[1] <= limit, (path.name, image.shape)
    assert calls == 120


def test_extreme_aspect_ratios_are_refused_quickly_or_run(recognizer):
    rng = np.random.default_rng(SEED)
    recognizer.gallery = Gallery()
    for _ in range(25):
        short = int(rng.integers(8, 40))
        ratio = float(rng.choice([1.0, 5.0, MAX_ASPECT_RATIO, MAX_ASPECT_RATIO + 0.5, 100.0, 2500.0]))
        shape = (short, max(8, int(short * ratio)), 3)
        if rng.random() < 0.5:
            shape = (shape[1], shape[0], 3)
        frame = rng.integers(0, 255, shape, dtype=np.uint8)
        faces, error = outcome(lambda: recognizer.identify(frame))
        too_narrow = max(shape[:2]) > MAX_ASPECT_RATIO * min(shape[:2])
        assert (error is not None) == too_narrow, (shape, error)
        if error is not None:
            assert "aspect ratio" in str(error)


@pytest.mark.parametrize("seed", range(3))
def test_damaged_template_lengths_and_counts_are_refused(tmp_path, seed):
    rng = np.random.default_rng(SEED + seed)
    g = Gallery(embedding_space="space", threshold=0.3)
    for k in range(4):
        g.add(f"p{k}", rng.normal(size=(int(rng.integers(1, 4)), 8)))
    path = g.save(tmp_path / "good.npz")
    with np.load(path) as data:
        good = {k: data[k] for k in data.files}
    for i in range(30):
        case = dict(good)
        if i % 2:
            emb = case["embeddings"].copy()
            emb[int(rng.integers(len(emb)))] *= float(rng.choice([0.0, 0.5, 0.99, 1.01, 2.0, 50.0, -3.0]))
            case["embeddings"] = emb
        else:
            counts = case["counts"].astype(np.uint64 if i % 4 else np.int64).copy()
            big = 2 ** 63 if i % 4 else 2 ** 62
            counts[int(rng.integers(len(counts)))] += np.array(big, counts.dtype)
            case["counts"] = counts
        np.savez(tmp_path / "case.npz", **case)
        loaded, error = outcome(lambda: Gallery.load(tmp_path / "case.npz"))
        if loaded is not None:  # only a factor of -1 keeps unit length
            assert all(np.allclose(np.linalg.norm(loaded.tagged_templates(n)[0], axis=1), 1, atol=1e-3)
                       for n in loaded.names())
            assert loaded.num_templates == len(good["embeddings"])
        else:
            assert isinstance(error, GalleryError)
