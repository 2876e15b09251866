"""Gallery: identities with several templates, cosine top-k, editing, atomic persistence, model binding."""
import numpy as np
import pytest

import g2d_edge.gallery.file as gallery_mod
from g2d_edge.errors import GalleryError, InputError
from g2d_edge.gallery import Gallery, IdentityInfo, Match
from g2d_edge.gallery.file import resolve_gallery_path


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture()
def gallery():
    g = Gallery(embedding_space="space-a", threshold=0.3)
    g.add("ann", unit([[1, 0, 0, 0], [0.8, 0.6, 0, 0]]))
    g.add("bob", unit([0, 1, 0, 0]))
    g.add("cid", unit([[0, 0, 1, 0], [0, 0, 0.6, 0.8], [0, 0, 0, 1]]))
    return g


def test_listing(gallery):
    assert len(gallery) == 3 and gallery.num_templates == 6
    assert gallery.names() == ["ann", "bob", "cid"]
    assert gallery.identities() == [IdentityInfo("ann", 2), IdentityInfo("bob", 1), IdentityInfo("cid", 3)]
    assert "bob" in gallery and "zed" not in gallery
    assert gallery.embedding_dim == 4


def test_search_scores_are_best_template_cosines(gallery):
    q = unit([0.6, 0.8, 0, 0])
    # ann: max(0.6, 0.8*0.6+0.6*0.8=0.96) = 0.96; bob: 0.8; cid: 0
    found = gallery.search(q, top_k=3)[0]
    assert [m.name for m in found] == ["ann", "bob", "cid"]
    assert found[0].score == pytest.approx(0.96, abs=1e-6)
    assert found[1].score == pytest.approx(0.8, abs=1e-6)
    assert found[2].score == pytest.approx(0.0, abs=1e-6)
    assert gallery.best_match(q) == Match("ann", found[0].score)


def test_search_batches_top_k_and_unnormalised_queries(gallery):
    queries = np.array([[0, 0, 0, 5.0], [0, 3.0, 0, 0]], np.float32)  # not unit length on purpose
    res = gallery.search(queries, top_k=2)
    assert res[0][0] == Match("cid", pytest.approx(1.0, abs=1e-6))
    assert res[0][1].score == pytest.approx(0.0, abs=1e-6)  # ann and bob tie at 0
    assert res[1][0] == Match("bob", pytest.approx(1.0, abs=1e-6))
    assert len(res[0]) == 2
    assert len(gallery.search(queries[0], top_k=10)[0]) == 3  # k larger than the gallery


def test_empty_gallery_search_returns_empty_lists():
    g = Gallery()
    assert g.search(np.ones((2, 8), np.float32)) == [[], []]
    assert g.best_match(np.ones(8, np.float32)) is None


def test_editing(gallery):
    assert gallery.remove("bob") == 1
    assert gallery.names() == ["ann", "cid"]
    gallery.rename("ann", "anna")
    assert gallery.names() == ["anna", "cid"]
    assert gallery.templates("anna").shape == (2, 4)
    assert gallery.add("anna", unit([0, 1, 0, 0])) == 3
    assert gallery.best_match(unit([0, 1, 0, 0])).name == "anna"
    with pytest.raises(GalleryError, match="no identity named 'bob'"):
        gallery.remove("bob")
    with pytest.raises(GalleryError, match="already enrolled"):
        gallery.rename("anna", "cid")
    with pytest.raises(GalleryError):
        gallery.rename("ghost", "x")
    with pytest.raises(InputError):
        gallery.add("  ", unit([1, 0, 0, 0]))
    with pytest.raises(GalleryError, match="does not match"):
        gallery.add("dan", np.ones(5, np.float32))
    with pytest.raises(InputError):
        gallery.add("dan", np.zeros(4, np.float32))
    with pytest.raises(InputError):
        gallery.add("dan", np.array([np.nan, 1, 0, 0], np.float32))
    gallery.clear()
    assert len(gallery) == 0 and gallery.embedding_space == "space-a"


def test_binding_refuses_another_embedding_space(gallery):
    gallery.bind("space-a", 4)  # same model: fine
    with pytest.raises(GalleryError, match="embedding space"):
        gallery.bind("space-b", 4)
    fresh = Gallery()
    fresh.bind("space-b", 4, model_name="m")
    assert fresh.embedding_space == "space-b" and fresh.model_name == "m"
    with pytest.raises(GalleryError):
        Gallery(embedding_dim=8).bind("space-c", 4)


@pytest.mark.parametrize("name", ["people.npz", "people_dir"])
def test_persistence_round_trip(gallery, tmp_path, name):
    path = gallery.save(tmp_path / name)
    assert path.is_file() and path == resolve_gallery_path(tmp_path / name)
    loaded = Gallery.load(tmp_path / name)
    assert loaded.identities() == gallery.identities()
    assert loaded.embedding_space == "space-a" and loaded.threshold == 0.3
    for n in gallery.names():
        np.testing.assert_array_equal(loaded.templates(n), gallery.templates(n))
    q = unit([0.3, 0.2, 0.9, 0.1])
    assert loaded.search(q, top_k=3) == gallery.search(q, top_k=3)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_open_creates_then_loads(tmp_path):
    g = Gallery.open(tmp_path / "new.npz")
    assert len(g) == 0 and not (tmp_path / "new.npz").exists()
    g.add("x", unit([1, 0]))
    g.save()
    assert Gallery.open(tmp_path / "new.npz").names() == ["x"]


def test_crash_during_replace_keeps_old_file(gallery, tmp_path, monkeypatch):
    path = gallery.save(tmp_path / "g.npz")
    before = path.read_bytes()
    gallery.add("eve", unit([1, 1, 1, 1]))

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gallery_mod.os, "replace", crash)
    with pytest.raises(GalleryError, match="unchanged"):
        gallery.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert Gallery.load(path).names() == ["ann", "bob", "cid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".g.npz.lock", "g.npz"]  # no temp file left behind


def test_crash_in_the_middle_of_writing_keeps_old_file(gallery, tmp_path, monkeypatch):
    path = gallery.save(tmp_path / "g.npz")
    before = path.read_bytes()
    gallery.remove("ann")
    real_savez = np.savez

    def half_write(fh, **arrays):  # write a truncated archive, then die as a killed process would
        real_savez(fh, **arrays)
        fh.truncate(fh.tell() // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery_mod.np, "savez", half_write)
    with pytest.raises(KeyboardInterrupt):
        gallery.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert Gallery.load(path).names() == ["ann", "bob", "cid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".g.npz.lock", "g.npz"]


def test_corrupt_missing_and_future_files(tmp_path, gallery):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(GalleryError, match="corrupt"):
        Gallery.load(bad)
    with pytest.raises(GalleryError, match="not found"):
        Gallery.load(tmp_path / "missing.npz")
    path = gallery.save(tmp_path / "g.npz")
    data = dict(np.load(path))
    data["meta"] = np.array('{"format": 99}')
    np.savez(path, **data)
    with pytest.raises(GalleryError, match="newer"):
        Gallery.load(path)


def test_save_without_path():
    with pytest.raises(GalleryError, match="no path"):
        Gallery().save()


def test_faiss_search_matches_numpy(tmp_path):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    flat, fast = Gallery(use_faiss=False), Gallery(use_faiss=True)
    for i in range(50):
        t = rng.standard_normal((int(rng.integers(1, 5)), 16)).astype(np.float32)
        flat.add(f"p{i}", t)
        fast.add(f"p{i}", t)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    a, b = flat.search(q, top_k=5), fast.search(q, top_k=5)
    assert [[m.name for m in r] for r in a] == [[m.name for m in r] for r in b]
    np.testing.assert_allclose([[m.score for m in r] for r in a], [[m.score for m in r] for r in b], atol=1e-5)


def test_faiss_required_but_missing(monkeypatch):
    monkeypatch.setattr(gallery_mod, "_faiss_module", lambda: None)
    with pytest.raises(GalleryError, match="faiss-cpu"):
        Gallery(use_faiss=True)
    with pytest.raises(InputError):
        Gallery(use_faiss="sometimes")
