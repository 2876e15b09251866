"""Issue 22, class "damaged galleries that load": a template whose length is not 1 (it would win every search) and
counts that wrap around in 64-bit arithmetic are refused on load with a GalleryError naming the fault; a good
gallery still loads, and one saved by `Gallery` always loads again."""
import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import GalleryError
from g2d_edge.gallery import Gallery


def saved(tmp_path, people=4, dim=16):
    rng = np.random.default_rng(1)
    g = Gallery(embedding_space="space-a", threshold=0.4)
    for i in range(people):
        g.add(f"p{i}", rng.normal(size=(2, dim)) * (i + 1) * 10)  # any length in, unit vectors stored
    path = g.save(tmp_path / "good.npz")
    with np.load(path) as data:
        return path, {k: data[k] for k in data.files}


def rewrite(path, arrays, **changes):
    arrays = {**arrays, **changes}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("length", [50.0, 0.5, 0.0, 1.01])
def test_a_template_that_is_not_a_unit_vector_is_refused(tmp_path, length, capsys):
    path, arrays = saved(tmp_path)
    embeddings = arrays["embeddings"].copy()
    embeddings[3] *= length
    rewrite(path, arrays, embeddings=embeddings)
    with pytest.raises(GalleryError, match="not unit vectors.*template 3 has length"):
        Gallery.load(path)
    assert main(["gallery", "list", "--gallery", str(path)]) == 1
    assert "not unit vectors" in capsys.readouterr().err


def test_unit_vectors_within_float_rounding_load(tmp_path):
    path, arrays = saved(tmp_path)
    embeddings = arrays["embeddings"].astype(np.float64) * (1 + 1e-6)
    rewrite(path, arrays, embeddings=embeddings.astype(np.float32))
    assert Gallery.load(path).num_templates == 8


@pytest.mark.parametrize("counts", [
    np.array([2 ** 62, 2 ** 62, 2 ** 62, 2 ** 62 + 8], dtype=np.int64),  # adds up to 8 modulo 2**64
    np.array([2 ** 63 - 1, 2 ** 63 - 1, 2, 8], dtype=np.int64),
    np.array([2 ** 64 - 1, 2, 2, 5], dtype=np.uint64),
    np.array([2 ** 63, 2 ** 63, 4, 4], dtype=np.uint64),
])
def test_counts_that_wrap_around_are_refused(tmp_path, counts):
    path, arrays = saved(tmp_path)
    rewrite(path, arrays, counts=counts)
    with pytest.raises(GalleryError, match="add up to|fewer than one"):
        Gallery.load(path)


def test_a_saved_gallery_loads_again_and_searches_in_range(tmp_path):
    path, _ = saved(tmp_path)
    g = Gallery.load(path)
    scores = [m.score for row in g.search(np.random.default_rng(2).normal(size=(5, 16)), top_k=4) for m in row]
    assert all(-1.0001 <= s <= 1.0001 for s in scores)
