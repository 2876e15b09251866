"""benchmarks/gallery.py: real embeddings, distractors in their cone, and one small run of every engine (the file
gallery, FAISS, Milvus Lite in a server process) with recall against exact search."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/gallery.py", "g2d_gallery_bench")


@pytest.fixture(scope="module")
def real(bench, tiny_onnx_model, celeba_dir):
    return bench.real_embeddings(tiny_onnx_model, celeba_dir, people=4, templates=2)


def require(*modules: str) -> None:
    """Skip (locally) or fail (CI, where .ci/run installs the [milvus] and [faiss] extras) when one is missing."""
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:
            why = f"{module} is not installed ({exc}): pip install -e '.[milvus,faiss]'"
            (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


def test_real_embeddings_and_distractors(bench, real):
    assert len(real.templates) == 4 and len(real.query_names) == 4
    dim = real.queries.shape[1]
    assert all(t.shape == (2, dim) for t in real.templates.values())
    content = bench.gallery_content(real, 50, seed=0)
    assert len(content) == 50 and sum(n.startswith(bench.DISTRACTOR_PREFIX) for n in content) == 46
    fake = np.concatenate([content[n] for n in content if n.startswith(bench.DISTRACTOR_PREFIX)])
    np.testing.assert_allclose(np.linalg.norm(fake, axis=1), 1.0, atol=1e-5)
    mean = np.concatenate(list(real.templates.values())).mean(axis=0)
    # drawn around the real faces' mean direction, not uniformly over the sphere (where cosines are ~0)
    assert float(np.mean(fake @ (mean / np.linalg.norm(mean)))) > 0.3


def test_every_engine_at_a_small_size(bench, real, tiny_onnx_model, tmp_path):
    require("faiss", "pymilvus", "milvus_lite")
    settings = bench.GallerySettings(sizes=[300], seconds=0.2, min_queries=3, queries=20)
    result = bench.run_benchmark(real, bench.model_description(tiny_onnx_model), settings)
    rows = result["rows"]
    labels = list(bench.ENGINE_LABELS.values())
    assert [(r["fusion"], r["engine"]) for r in rows] == [("max", e) for e in labels] + \
        [("mean", e) for e in labels if e != "FAISS IVF"] + \
        [(bench.UNCACHED, e) for e in labels if e.startswith("Milvus")]  # IVF indexes templates: no fused search
    for row in rows:
        assert row["identities"] == 300 and row["templates"] == 304 and 3 <= row["timed_queries"] <= 20
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        if row["exact"]:
            assert row["recall_at_1"] == 1.0, row
    assert result["machine_line"] in bench.markdown(result)
    json.dumps(result)  # what main writes


def test_an_engine_that_would_crowd_out_other_processes_is_skipped(bench, real):
    assert bench.memory_shortfall("numpy", 10, 4, min_free_gb=0) == ""
    assert "GiB available" in bench.memory_shortfall("numpy", 10, 4, min_free_gb=1e9)
    settings = bench.GallerySettings(sizes=[20], engines=["numpy", "faiss-ivf"], min_free_gb=1e9)
    rows = bench.measure_size(real, 20, "space", settings, server=None)
    assert [r.skipped != "" for r in rows] == [True, True, True] and rows[1].skipped.startswith("needs about")
