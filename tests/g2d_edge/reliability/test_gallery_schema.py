"""Issue 12, class 5 (damaged or crafted gallery metadata): the whole file is validated on load; every problem is a
GalleryError saying what is wrong (CLI: one `g2d: error:` line), never an AttributeError/ValueError/TypeError."""
import json

import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import GalleryError
from g2d_edge.gallery import Gallery


@pytest.fixture()
def good(tmp_path):
    g = Gallery(embedding_space="space-a", threshold=0.3, model_name="m")
    g.add("ann", np.eye(512, dtype=np.float32)[:2])
    g.add("bob", np.eye(512, dtype=np.float32)[2])
    path = g.save(tmp_path / "good.npz")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def meta_with(good, **changes):
    meta = json.loads(str(good["meta"]))
    meta.update(changes)
    return np.array(json.dumps(meta))


def crafted(good, case):
    """The arrays of a gallery file damaged in one way: (arrays, words the error must contain)."""
    a = dict(good)
    rows = int(a["counts"].sum())
    cases = {
        "meta is a list": ({"meta": np.array("[1, 2]")}, "JSON list, not an object"),
        "meta is a string": ({"meta": np.array('"hello"')}, "JSON str, not an object"),
        "meta is not text": ({"meta": np.array(5)}, "not a JSON text"),
        "null format": ({"meta": meta_with(good, format=None)}, "format None"),
        "text format": ({"meta": meta_with(good, format="1")}, "format '1'"),
        "text embedding_dim": ({"meta": meta_with(good, embedding_dim="abc")}, "embedding_dim is 'abc'"),
        "zero embedding_dim": ({"meta": meta_with(good, embedding_dim=0)}, "embedding_dim is 0"),
        "text threshold": ({"meta": meta_with(good, threshold="0.5")}, "threshold is '0.5'"),
        "threshold out of range": ({"meta": meta_with(good, threshold=7)}, "threshold is 7"),
        "numeric embedding_space": ({"meta": meta_with(good, embedding_space=5)}, "embedding_space is 5"),
        "list model_name": ({"meta": meta_with(good, model_name=[1])}, "model_name is [1]"),
        "numeric revision": ({"meta": meta_with(good, revision=5)}, "revision is 5"),
        "128-wide templates under a 512 header": ({"embeddings": np.ones((rows, 128), np.float32)},
                                                  "length 128 but its header says embedding_dim 512"),
        "integer templates": ({"embeddings": np.ones((rows, 512), np.int32)}, "not a float matrix"),
        "1-D templates": ({"embeddings": np.ones(rows * 512, np.float32)}, "not a float matrix"),
        "NaN templates": ({"embeddings": np.full((rows, 512), np.nan, np.float32)}, "NaN"),
        "counts do not add up": ({"counts": np.array([2, 2])}, "add up to 4 templates but it holds 3"),
        "zero count": ({"counts": np.array([3, 0])}, "fewer than one template"),
        "float counts": ({"counts": np.array([2.0, 1.0])}, "counts are a float64 array"),
        "counts of another length": ({"counts": np.array([3])}, "not 2 whole numbers"),
        "numeric names": ({"names": np.array([1, 2])}, "names are a int64 array"),
        "2-D names": ({"names": np.array([["ann", "bob"]])}, "names are a <U3 array of shape (1, 2)"),
        "duplicate names": ({"names": np.array(["ann", "ann"])}, "'ann' appears twice"),
        "escape in a name": ({"names": np.array(["ann", "\x1b[2Jbob"])}, "invalid identity name '\\x1b[2Jbob'"),
        "empty name": ({"names": np.array(["ann", ""])}, "invalid identity name ''"),
        "missing counts": ({"counts": None}, "counts are missing"),
    }
    changes, words = cases[case]
    for key, value in changes.items():
        if value is None:
            del a[key]
        else:
            a[key] = value
    return a, words


CASES = ["meta is a list", "meta is a string", "meta is not text", "null format", "text format", "text embedding_dim", "zero embedding_dim", "text threshold", "threshold out of range",
         "numeric embedding_space", "list model_name", "numeric revision", "128-wide templates under a 512 header",
         "integer templates", "1-D templates", "NaN templates", "counts do not add up", "zero count", "float counts",
         "counts of another length", "numeric names", "2-D names", "duplicate names", "escape in a name",
         "empty name", "missing counts"]


@pytest.mark.parametrize("case", CASES)
def test_damaged_gallery_is_a_gallery_error_saying_what_is_wrong(good, tmp_path, case):
    np.savez(tmp_path / "ok.npz", **good)
    assert Gallery.load(tmp_path / "ok.npz").identities()[0].templates == 2  # undamaged, it loads
    arrays, words = crafted(good, case)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(GalleryError) as err:
        Gallery.load(path)
    assert words in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("case", ["meta is a list", "text embedding_dim", "128-wide templates under a 512 header",
                                  "text threshold"])
def test_cli_reports_a_damaged_gallery_in_one_line(good, tmp_path, capsys, case):
    arrays, words = crafted(good, case)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    for argv in (["gallery", "list", "--gallery", str(path)], ["gallery", "remove", "ann", "--gallery", str(path)]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("g2d: error: gallery ") and words in err
        assert "Traceback" not in err

