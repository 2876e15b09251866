"""Masked tags of gallery templates (issue 14): stored per template, saved and merged with the file, read back from
galleries written before the tags, and used by the search (a clean query skips masked templates)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from g2d_edge.errors import GalleryError, InputError
from g2d_edge.gallery import Gallery, IdentityInfo, Match
from g2d_edge.gallery.format import GALLERY_FORMAT


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


E = np.eye(4, dtype=np.float32)


def tagged_gallery(**kwargs) -> Gallery:
    """ann: a clean template e0 and a masked one e1; bob: one clean template between e1 and e2."""
    g = Gallery(embedding_space="space-a", **kwargs)
    g.add("ann", np.stack([E[0], E[1]]), masked=[False, True])
    g.add("bob", unit([0, 0.8, 0.6, 0]))
    return g


def old_format_file(path, names, counts, embeddings):
    """A gallery file exactly as g2d-edge wrote it before the masked tags (format 1: four arrays, no `masked`)."""
    meta = {"format": 1, "embedding_space": "space-a", "embedding_dim": int(embeddings.shape[1]), "threshold": 0.4,
            "model_name": "m", "revision": "r1", "saved_at": "2025-01-01T00:00:00+0000"}
    np.savez(path, meta=np.array(json.dumps(meta)), names=np.array(names, dtype=np.str_),
             counts=np.array(counts, dtype=np.int64), embeddings=embeddings.astype(np.float32))
    return path


def file_arrays(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# ------------------------------------------------------------------------------------------------ tags and files
def test_tags_are_listed_read_back_and_saved(tmp_path):
    g = tagged_gallery()
    g.add("ann", E[2], masked=True)
    assert g.identities() == [IdentityInfo("ann", 3, 2), IdentityInfo("bob", 1, 0)]
    assert g.template_tags("ann").tolist() == [False, True, True]
    np.testing.assert_array_equal(g.templates("ann", masked=True), E[1:3])
    np.testing.assert_array_equal(g.templates("ann", masked=False), E[:1])
    assert g.templates("ann").shape == (3, 4)
    path = g.save(tmp_path / "g.npz")
    arrays = file_arrays(path)
    assert json.loads(str(arrays["meta"]))["format"] == 2 and arrays["masked"].tolist() == [False, True, True, False]
    loaded = Gallery.load(path)
    assert loaded.identities() == g.identities() and loaded.template_tags("ann").tolist() == [False, True, True]
    loaded.rename("ann", "anna")
    assert loaded.template_tags("anna").tolist() == [False, True, True]
    assert loaded.remove("anna") == 3 and loaded.identities() == [IdentityInfo("bob", 1, 0)]
    loaded.save()
    assert json.loads(str(file_arrays(path)["meta"]))["format"] == 1  # nothing masked left: readable by old versions


def test_a_gallery_file_written_before_the_tags_loads_all_clean(tmp_path):
    path = old_format_file(tmp_path / "old.npz", ["ann", "bob"], [2, 1], E[:3])
    g = Gallery.load(path)
    assert g.identities() == [IdentityInfo("ann", 2, 0), IdentityInfo("bob", 1, 0)] and g.threshold == 0.4
    assert g.template_tags("ann").tolist() == [False, False]
    assert g.search(E[1], masked=False)[0][0] == Match("ann", pytest.approx(1.0))  # clean: found by clean queries
    g.add("bob", E[3], masked=True)
    g.save()
    again = Gallery.load(path)
    assert again.template_tags("bob").tolist() == [False, True] and again.template_tags("ann").tolist() == [False] * 2


def test_a_newer_or_damaged_tag_array_is_refused(tmp_path):
    path = tagged_gallery().save(tmp_path / "g.npz")
    good = file_arrays(path)
    for change, words in (({"masked": None}, "the array masked is missing"),
                          ({"masked": np.array([1, 0, 0], np.int8)}, "masked tags are a int8 array"),
                          ({"masked": np.array([True, False])}, "not 3 bools")):
        arrays = {**good, **change}
        np.savez(tmp_path / "bad.npz", **{k: v for k, v in arrays.items() if v is not None})
        with pytest.raises(GalleryError, match=words):
            Gallery.load(tmp_path / "bad.npz")
    meta = json.loads(str(good["meta"]))
    meta["format"] = GALLERY_FORMAT + 1
    np.savez(tmp_path / "newer.npz", **{**good, "meta": np.array(json.dumps(meta))})
    with pytest.raises(GalleryError, match="upgrade g2d-edge"):
        Gallery.load(tmp_path / "newer.npz")


@pytest.mark.parametrize("masked, words", [
    ([True], "1 value\\(s\\) for 2 template"),
    ([True, False, True], "3 value\\(s\\) for 2 template"),
    ([1, 0], "int64 array"),
    (["yes", "no"], "True/False values"),
    ([None, True], "True/False values"),
    ("yes", "got str"),
    (1, "got int"),
    (None, "got NoneType"),
    (np.zeros((2, 1), bool), "shape \\(2, 1\\)"),
])
def test_bad_tags_are_an_input_error_saying_what_to_pass(masked, words):
    g = Gallery()
    with pytest.raises(InputError, match=words) as err:
        g.add("ann", E[:2], masked=masked)
    assert "pass masked=True/False" in str(err.value) and g.is_empty()
    with pytest.raises(InputError, match="query"):
        tagged_gallery().search(E[:2], masked=[True])


def test_an_identity_keeps_a_clean_template():
    g = Gallery()
    with pytest.raises(InputError, match="masked templates only.*clean photo"):
        g.add("ann", E[:2], masked=True)
    assert g.is_empty()
    g.add("ann", E[0])
    assert g.add("ann", E[1:3], masked=True) == 3  # a clean template is there already
    g.add("bob", E[:2], masked=np.array([True, False]))  # or comes in the same call
    assert g.identities() == [IdentityInfo("ann", 3, 2), IdentityInfo("bob", 2, 1)]


# ------------------------------------------------------------------------------------------------ the search rule
@pytest.mark.parametrize("use_faiss", [False, True])
def test_a_clean_query_skips_masked_templates(use_faiss):
    if use_faiss:
        pytest.importorskip("faiss")
    g = tagged_gallery(use_faiss=use_faiss)
    q = E[1]  # ann's masked template exactly; bob is 0.8 away
    assert g.search(q, top_k=2)[0] == [Match("ann", pytest.approx(1.0)), Match("bob", pytest.approx(0.8))]
    assert g.search(q, top_k=2, masked=True)[0] == g.search(q, top_k=2)[0]  # a masked face: every template
    clean = g.search(q, top_k=2, masked=False)[0]  # a clean face: ann's clean template only
    assert clean == [Match("bob", pytest.approx(0.8)), Match("ann", pytest.approx(0.0, abs=1e-6))]
    batch = g.search(np.stack([q, q, E[0]]), top_k=1, masked=[False, True, False])
    assert [m[0].name for m in batch] == ["bob", "ann", "ann"]
    assert g.search(q, masked=np.bool_(False))[0][0].name == "bob"  # one flag for all queries


def test_faiss_and_numpy_agree_with_tags():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    plain, indexed = Gallery(), Gallery(use_faiss=True)
    for i in range(40):
        templates = rng.standard_normal((4, 16)).astype(np.float32)
        tags = [False, True, True, bool(i % 2)]
        for g in (plain, indexed):
            g.add(f"p{i}", templates, masked=tags)
    queries = rng.standard_normal((12, 16)).astype(np.float32)
    flags = rng.random(12) < 0.5
    for masked in (None, flags):
        a, b = plain.search(queries, top_k=5, masked=masked), indexed.search(queries, top_k=5, masked=masked)
        assert [[m.name for m in row] for row in a] == [[m.name for m in row] for row in b]
        np.testing.assert_allclose([[m.score for m in row] for row in a], [[m.score for m in row] for row in b],
                                   atol=1e-5)


# ------------------------------------------------------------------------------------------------ merge on save
def test_merge_keeps_the_tags_of_both_sides(tmp_path):
    path = tagged_gallery().save(tmp_path / "g.npz")
    mine, theirs = Gallery.load(path), Gallery.load(path)
    theirs.add("ann", E[2], masked=True)
    theirs.add("cid", E[:2], masked=[False, True])
    theirs.save()
    mine.add("ann", E[3], masked=False)
    mine.add("dan", E[3])
    mine.save()
    final = Gallery.load(path)
    assert final.identities() == [IdentityInfo("ann", 4, 2), IdentityInfo("bob", 1, 0), IdentityInfo("cid", 2, 1),
                                  IdentityInfo("dan", 1, 0)]
    assert final.template_tags("ann").tolist() == [False, True, True, False]  # the file's first, then ours
    np.testing.assert_array_equal(final.templates("ann"), np.stack([E[0], E[1], E[2], E[3]]))


def test_retagging_is_a_change_the_merge_sees(tmp_path):
    g = Gallery(embedding_space="space-a")
    g.add("ann", E[:2], masked=[False, True])
    path = g.save(tmp_path / "g.npz")
    mine, theirs = Gallery.load(path), Gallery.load(path)
    theirs.remove("ann")
    theirs.add("ann", E[:2], masked=False)  # the same templates, retagged clean
    theirs.save()
    mine.add("ann", E[2], masked=True)
    with pytest.raises(GalleryError, match="replaced on both sides"):  # not taken for "unchanged there"
        mine.save()
    assert Gallery.load(path).template_tags("ann").tolist() == [False, False]
