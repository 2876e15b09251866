"""The "mean" gallery search: an identity scores the cosine with its fused template (the renormalised mean of the
templates the query is compared with), computed exactly, with the masked-tag rule, by NumPy and FAISS alike."""
from __future__ import annotations

import numpy as np
import pytest

from g2d_edge.errors import InputError
from g2d_edge.gallery import Gallery, Match


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def random_people(rng, people=30, dim=16):
    """{name: (templates, masked tags)} with 1-5 templates each, a clean one first."""
    out = {}
    for i in range(people):
        k = int(rng.integers(1, 6))
        tags = [False] + [bool(t) for t in rng.random(k - 1) < 0.4]
        out[f"p{i:02d}"] = (rng.standard_normal((k, dim)).astype(np.float32), tags)
    return out


def brute_force_mean(people, query, masked):
    """{name: cosine with the renormalised mean of the templates a query of that kind is compared with}."""
    q = unit(query)
    scores = {}
    for name, (templates, tags) in people.items():
        rows = unit(templates)[[True] * len(tags) if masked else [not t for t in tags]]
        scores[name] = float(q @ unit(rows.sum(axis=0)))
    return scores


@pytest.mark.parametrize("use_faiss", [False, True])
def test_the_mean_search_scores_each_identitys_fused_template_exactly(use_faiss):
    if use_faiss:
        pytest.importorskip("faiss")
    rng = np.random.default_rng(11)
    people = random_people(rng)
    gallery = Gallery(use_faiss=use_faiss)
    for name, (templates, tags) in people.items():
        gallery.add(name, templates, masked=tags)
    queries = rng.standard_normal((9, 16)).astype(np.float32)
    flags = np.arange(9) % 2 == 0
    found = gallery.search(queries, top_k=30, masked=flags, fusion="mean")
    for query, flag, matches in zip(queries, flags, found):
        expected = brute_force_mean(people, query, bool(flag))
        assert [m.name for m in matches] == sorted(expected, key=lambda n: -expected[n])
        assert [m.score for m in matches] == pytest.approx([expected[m.name] for m in matches], abs=1e-5)
    best = gallery.search(queries, top_k=3, masked=flags)  # "max" stays the best template
    assert best[0][0].score >= found[0][0].score - 1e-6


def test_fused_and_best_template_rank_differently_and_follow_changes():
    """ann's two templates straddle the query: her best template scores 0.71, her fused one 1.0; bob's one template
    scores 0.8. The fused templates are rebuilt when ann gets two more templates."""
    g = Gallery()
    g.add("ann", np.array([[1, 1, 0], [1, -1, 0]], np.float32))
    g.add("bob", unit([0.8, 0, 0.6]).astype(np.float32))
    q = np.array([1, 0, 0], np.float32)
    assert [m.name for m in g.search(q, top_k=2)[0]] == ["bob", "ann"]
    assert g.search(q, top_k=2, fusion="mean")[0] == [Match("ann", pytest.approx(1.0)),
                                                      Match("bob", pytest.approx(0.8))]
    g.add("ann", np.array([[0, 0, -1], [0, 0, -1]], np.float32))
    assert g.search(q, fusion="mean")[0] == [Match("bob", pytest.approx(0.8))]
    assert g.search(q, top_k=2, fusion="mean")[0][1].score == pytest.approx(float(unit([2 ** 0.5, 0, -2])[0]))


def test_a_clean_query_is_scored_by_the_mean_of_clean_templates_only():
    g = Gallery()
    g.add("ann", np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]], np.float32), masked=[False, True, True])
    q = np.array([0, 1, 0], np.float32)
    assert g.search(q, masked=False, fusion="mean")[0][0].score == pytest.approx(0.0, abs=1e-6)
    assert g.search(q, masked=True, fusion="mean")[0][0].score == pytest.approx(float(unit([1, 2, 0])[1]))


@pytest.mark.parametrize("fusion", ["median", "", None, 1])
def test_an_unknown_fusion_is_an_input_error_naming_the_choices(fusion):
    g = Gallery()
    g.add("ann", np.eye(3, dtype=np.float32)[:1])
    with pytest.raises(InputError, match="fusion must be one of 'max', 'mean'"):
        g.search(np.eye(3, dtype=np.float32)[0], fusion=fusion)


# ------------------------------------------------------------------------------------------------ Milvus's cache
def test_the_fused_template_cache_reads_once_within_its_time_and_forgets_edited_names(monkeypatch):
    from g2d_edge.gallery.milvus import fused

    reads = []

    def read(names):
        reads.append(list(names))
        return {n: np.full(2, float(len(reads)), np.float32) for n in names if n != "ghost"}

    clock = [100.0]
    monkeypatch.setattr(fused.time, "monotonic", lambda: clock[0])
    cache = fused.FusedTemplateCache(ttl_s=10)
    assert set(cache.get(["ann", "bob", "ghost"], "", read)) == {"ann", "bob"}
    assert cache.get(["ann", "bob"], "", read)["ann"][0] == 1.0 and reads == [["ann", "bob", "ghost"]]
    cache.get(["ann"], "masked == false", read)  # another filter is another fused template
    cache.forget(["bob"])
    cache.get(["ann", "bob"], "", read)
    assert reads[-1] == ["bob"]
    clock[0] += 10.5  # older than ttl_s: read again
    cache.get(["ann"], "", read)
    assert reads[-1] == ["ann"]
    never = fused.FusedTemplateCache(ttl_s=0)
    for _ in range(2):
        never.get(["ann"], "", read)
    assert reads[-2:] == [["ann"], ["ann"]]


def test_the_fused_template_cache_stays_bounded(monkeypatch):
    from g2d_edge.gallery.milvus import fused

    monkeypatch.setattr(fused, "MAX_ENTRIES", 5)
    cache = fused.FusedTemplateCache(ttl_s=60)
    read = lambda names: {n: np.zeros(2, np.float32) for n in names}  # noqa: E731
    for start in range(0, 12, 3):
        cache.get([f"p{i}" for i in range(start, start + 3)], "", read)
        assert len(cache._entries) <= 5


def test_an_edit_drops_the_fused_templates_kept_before_and_after_it_even_when_it_fails():
    from g2d_edge.gallery.milvus import fused

    cache = fused.FusedTemplateCache(ttl_s=60)
    read = lambda names: {n: np.zeros(2, np.float32) for n in names}  # noqa: E731
    cache.get(["ann", "bob"], "", read)
    with pytest.raises(RuntimeError):
        with cache.editing(["ann"]):
            cache.get(["ann"], "", read)  # a search running during the edit reads the old templates
            raise RuntimeError("the server refused the edit")
    assert set(k[0] for k in cache._entries) == {"bob"}
