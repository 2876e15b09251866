"""The Milvus gallery against a real Milvus server (Milvus Lite), nothing mocked.

One server for this module: Milvus Lite's own gRPC server (`python -m milvus_lite server`), started as a separate
process on a loopback port, as a Milvus standalone would run beside the edge boxes; the gallery reaches it through
pymilvus with a `milvus://127.0.0.1:PORT/COLLECTION` URL, the production code path. Each test uses its own
collection. Without the [milvus] extra the server tests skip and say why; in CI (CI=true) they fail instead, since
.ci/run installs it.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from typing import Iterator

import numpy as np
import pytest

from g2d_edge import Recognizer
from g2d_edge.cli import main
from g2d_edge.errors import GalleryError, GalleryUnavailableError, InputError
from g2d_edge.gallery import Gallery, IdentityInfo, Match, open_gallery
from g2d_edge.gallery import GalleryBase, copy_gallery
from g2d_edge.gallery.milvus import MilvusGallery, MilvusGalleryOptions
from g2d_edge.gallery.milvus.url import parse_gallery_url, string_literal
from runtime_helpers import read, start_python


def require_milvus() -> None:
    """Skip (locally) or fail (CI) when pymilvus or Milvus Lite is missing."""
    for module in ("pymilvus", "milvus_lite"):
        try:
            __import__(module)
        except ImportError as exc:
            why = f"{module} is not installed ({exc}): pip install -e '.[milvus]'"
            (pytest.fail if os.environ.get("CI") else pytest.skip)(why)  # .ci/run installs it: missing is a failure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------- without a server
def test_urls(tmp_path, monkeypatch):
    where = parse_gallery_url("milvus://db-host/people")
    assert (where.uri, where.collection, where.db_name) == ("http://db-host:19530", "people", "")
    where = parse_gallery_url("milvus+tls://[::1]:443/site_a/people")
    assert (where.uri, where.db_name) == ("https://[::1]:443", "site_a")
    assert where.url == "milvus+tls://[::1]:443/site_a/people"
    monkeypatch.chdir(tmp_path)
    where = parse_gallery_url("milvus-lite://data/g.db/staff")
    assert where.local and where.uri == str(tmp_path / "data" / "g.db") and where.collection == "staff"
    assert parse_gallery_url("milvus-lite:///srv/g.db/staff").uri == "/srv/g.db"
    for bad in ("milvus://host", "milvus://host/a/b/c", "milvus://host:99999/p", "milvus://host/1people",
                "milvus://host/people?x=1", "milvus-lite://g.db", "milvus-lite://folder/people", "redis://h/p"):
        with pytest.raises(InputError, match="milvus://HOST"):
            parse_gallery_url(bad)
    with pytest.raises(InputError, match="G2D_MILVUS_TOKEN"):
        parse_gallery_url("milvus://root:secret@host/people")
    with pytest.raises(InputError, match="unknown gallery URL scheme"):
        open_gallery("redis://host/people")
    with pytest.raises(InputError, match="consistency_level"):
        MilvusGalleryOptions(consistency_level="Sometimes")
    assert string_literal('a"b\\c') == '"a\\"b\\\\c"'


def test_missing_pymilvus_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if the [milvus] extra were not installed
    with pytest.raises(GalleryUnavailableError, match=r"g2d-edge\[milvus\]"):
        open_gallery("milvus://127.0.0.1:1/people")


def test_unreachable_server_fails_within_the_bound():
    require_milvus()
    start = time.monotonic()
    with pytest.raises(GalleryUnavailableError, match="cannot reach the Milvus server") as err:
        MilvusGallery(f"milvus://127.0.0.1:{free_port()}/people", MilvusGalleryOptions(timeout_s=1))
    assert isinstance(err.value, GalleryError)
    assert time.monotonic() - start < 5


# ------------------------------------------------------------------------------------------- the real server
@pytest.fixture(scope="module")
def milvus_url(tmp_path_factory, load_script) -> Iterator[str]:
    """`milvus://127.0.0.1:PORT`: a Milvus Lite server process for this module (append /COLLECTION), started as the
    gallery benchmark starts it."""
    require_milvus()
    bench = load_script("benchmarks/gallery.py", "g2d_gallery_bench")
    with bench.milvus_lite_server(tmp_path_factory.mktemp("milvus") / "server.db") as url:
        yield url


@pytest.fixture()
def collection_url(milvus_url, request) -> str:
    """A URL of a collection of its own for this test."""
    return f"{milvus_url}/{re.sub(r'[^A-Za-z0-9_]', '_', request.node.name)}"


def filled(gallery: GalleryBase) -> GalleryBase:
    gallery.bind("space-a", 4, "m")
    gallery.add("ann", unit([[1, 0, 0, 0], [0.8, 0.6, 0, 0]]))
    gallery.add("bob", unit([0, 1, 0, 0]))
    gallery.add('c"i\\d', unit([[0, 0, 1, 0], [0, 0, 0.6, 0.8], [0, 0, 0, 1]]))
    return gallery


@pytest.mark.parametrize("kind", ["file", "milvus"])
def test_one_protocol_for_file_and_database(kind, collection_url, tmp_path):
    g = filled(Gallery(path=tmp_path / "g.npz") if kind == "file" else MilvusGallery(collection_url))
    with g:
        assert len(g) == 3 and g.num_templates == 6 and not g.is_empty()
        assert g.identities() == [IdentityInfo("ann", 2), IdentityInfo("bob", 1), IdentityInfo('c"i\\d', 3)]
        assert "bob" in g and "zed" not in g and list(g) == ["ann", "bob", 'c"i\\d']
        found = g.search(unit([0.6, 0.8, 0, 0]), top_k=3)[0]  # ann: best of 0.6 and 0.96
        assert [m.name for m in found] == ["ann", "bob", 'c"i\\d']
        assert [m.score for m in found] == pytest.approx([0.96, 0.8, 0.0], abs=1e-5)
        batch = g.search(np.array([[0, 0, 0, 5.0], [0, 3.0, 0, 0]], np.float32), top_k=2)
        assert batch[0][0] == Match('c"i\\d', pytest.approx(1.0, abs=1e-5)) and len(batch[0]) == 2
        assert batch[1][0].name == "bob" and len(g.search(unit([1, 0, 0, 0]), top_k=10)[0]) == 3
        np.testing.assert_allclose(g.templates("ann"), unit([[1, 0, 0, 0], [0.8, 0.6, 0, 0]]), atol=1e-6)
        assert g.add("ann", unit([0, 0, 1, 1])) == 3 and g.templates("ann").shape == (3, 4)
        g.rename("ann", "anna")
        assert g.names() == ["anna", "bob", 'c"i\\d'] and g.templates("anna").shape == (3, 4)
        assert g.remove("bob") == 1 and g.names() == ["anna", 'c"i\\d']
        with pytest.raises(GalleryError, match="no identity named 'bob'"):
            g.remove("bob")
        with pytest.raises(GalleryError, match="already enrolled"):
            g.rename("anna", 'c"i\\d')
        with pytest.raises(GalleryError, match="does not match"):
            g.add("dan", np.ones(5, np.float32))
        with pytest.raises(GalleryError, match="does not match"):
            g.search(np.ones(5, np.float32))
        with pytest.raises(InputError):
            g.add("dan\n", unit([1, 0, 0, 0]))
        with pytest.raises(GalleryError, match="embedding space 'space-a'"):
            g.bind("space-b", 4)
        g.save()
        g.clear()
        assert g.is_empty() and g.search(unit([1, 0, 0, 0])) == [[]] and g.embedding_space == "space-a"


def test_space_threshold_and_data_are_shared_by_every_handle(collection_url, tiny_onnx_model, other_space_model,
                                                             recognizer, people):
    name, photos = next(iter(people.items()))
    recognizer.gallery = collection_url  # bound to the tiny model: the collection is made now
    assert isinstance(recognizer.gallery, MilvusGallery)
    recognizer.enroll(name, photos[:2])
    with MilvusGallery(collection_url, create=False) as other:
        assert other.identities() == [IdentityInfo(name, 2)]
        assert other.embedding_space == recognizer.sidecar.embedding_space and other.threshold is None
        other.threshold = 0.77
    with MilvusGallery(collection_url, create=False) as third:
        assert third.threshold == pytest.approx(0.77)
    recognizer.gallery = collection_url
    assert recognizer.threshold == pytest.approx(0.77)
    faces = recognizer.identify(read(photos[0]))
    assert faces[0].name == name and faces[0].score == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(GalleryError, match="embedding space"):
        Recognizer(model=other_space_model, gallery=collection_url)
    with pytest.raises(GalleryError, match="not found"):
        MilvusGallery(collection_url + "_missing", create=False)
    recognizer.gallery = None


def test_an_enrolment_the_server_refuses_leaves_nothing(collection_url):
    with filled(MilvusGallery(collection_url)) as g:
        before = g.identities()
        rows = [{"id": f"ok{i}", "name": "eve", "enrolment": "e1", "enrolled_ns": 1, "template_index": i,
                 "embedding": unit([1, 1, 0, 0])} for i in range(3)]
        rows[2]["embedding"] = unit([1, 1, 0, 0, 1])  # one template the server cannot store: the request fails
        with pytest.raises(GalleryError, match="nothing of it was enrolled"):
            g._insert(rows, "enrol 'eve'")
        assert g.identities() == before and "eve" not in g


def test_gallery_of_a_collection_that_is_not_a_gallery_is_refused(milvus_url):
    from pymilvus import MilvusClient

    client = MilvusClient(milvus_url.replace("milvus://", "http://"), alias="foreign")
    client.create_collection("foreign_vectors", dimension=4)
    client.close()
    with pytest.raises(GalleryError, match="not a g2d gallery"):
        MilvusGallery(f"{milvus_url}/foreign_vectors")


EDGE_BOX = """
import json, sys
import numpy as np
from g2d_edge.gallery.milvus import MilvusGallery
url, box = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(box)
print("ready", flush=True)
sys.stdin.readline()
found = []
with MilvusGallery(url) as g:
    g.bind("space-a", 16, "m")  # every box may be the one that makes the collection
    for i in range(3):
        templates = rng.standard_normal((2, 16)).astype(np.float32)
        g.add(f"box{box}-person{i}", templates)
        g.add("visitor", rng.standard_normal(16).astype(np.float32))  # the same name from every box
        best = g.search(templates[1])[0][0]
        found.append([best.name, round(best.score, 4)])
print(json.dumps(found), flush=True)
"""


def test_several_edge_boxes_enrol_and_search_one_collection_at_once(collection_url):
    boxes = [start_python(EDGE_BOX, collection_url, box) for box in range(4)]
    try:
        assert [b.stdout.readline().strip() for b in boxes] == ["ready"] * 4
        for b in boxes:  # all four start together
            b.stdin.write("go\n")
            b.stdin.flush()
        outputs = [b.communicate(timeout=120) for b in boxes]
    finally:
        for b in boxes:
            b.kill()
    assert [b.returncode for b in boxes] == [0] * 4, [err[-2000:] for _, err in outputs]
    for box, (out, _) in enumerate(outputs):
        assert json.loads(out) == [[f"box{box}-person{i}", 1.0] for i in range(3)]  # each sees its enrolments
    with MilvusGallery(collection_url, create=False) as g:
        expected = [IdentityInfo(f"box{b}-person{i}", 2) for b in range(4) for i in range(3)]
        assert g.identities() == sorted(expected + [IdentityInfo("visitor", 12)], key=lambda i: i.name)


def run_json(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_cli_enrol_identify_and_copy_between_file_and_database(capsys, collection_url, tiny_onnx_model, people,
                                                               tmp_path):
    names = list(people)[:2]
    for name in names:
        res = run_json(capsys, "enroll", name, *people[name][:2], "--gallery", collection_url, "--model",
                       tiny_onnx_model)
        assert res["added"] == 2 and res["gallery"] == parse_gallery_url(collection_url).url
    assert res["identities"] == 2
    found = run_json(capsys, "identify", people[names[1]][0], "--gallery", collection_url, "--model",
                     tiny_onnx_model)
    assert found["faces"][0]["name"] == names[1]
    listing = run_json(capsys, "gallery", "list", "--gallery", collection_url)
    assert [(p["name"], p["templates"]) for p in listing["identities"]] == [(n, 2) for n in sorted(names)]

    exported = run_json(capsys, "gallery", "export", tmp_path / "copy.npz", "--gallery", collection_url)
    assert (exported["identities"], exported["templates"]) == (2, 4)
    file_copy = Gallery.load(tmp_path / "copy.npz")
    with MilvusGallery(collection_url, create=False) as db:
        assert file_copy.embedding_space == db.embedding_space
        for name in names:
            np.testing.assert_allclose(file_copy.templates(name), db.templates(name), atol=1e-6)
    file_copy.rename(names[0], "zoe")
    file_copy.save()
    code = main(["gallery", "import", str(tmp_path / "copy.npz"), "--gallery", collection_url])
    assert code == 1 and "enrolled in both" in capsys.readouterr().err  # names[1] is in both: nothing copied
    assert run_json(capsys, "gallery", "list", "--gallery", collection_url)["identities"][-1]["name"] == names[1]
    imported = run_json(capsys, "gallery", "import", tmp_path / "copy.npz", "--gallery", collection_url,
                        "--replace")
    assert (imported["identities"], imported["replaced"]) == (2, 1)
    with MilvusGallery(collection_url, create=False) as db:
        assert db.identities() == sorted([IdentityInfo(n, 2) for n in (*names, "zoe")], key=lambda i: i.name)
    assert run_json(capsys, "gallery", "remove", "zoe", "--gallery", collection_url)["templates"] == 2
    assert run_json(capsys, "gallery", "rename", names[0], "ann", "--gallery", collection_url)["to"] == "ann"
    code = main(["identify", str(people[names[0]][0]), "--gallery", collection_url + "_none", "--model",
                 str(tiny_onnx_model)])
    assert code == 1 and "not found" in capsys.readouterr().err


LITE_OWNER = """
import sys
import numpy as np
from g2d_edge.gallery import open_gallery
g = open_gallery(sys.argv[1])
g.bind("space-a", 4)
g.add("ann", np.eye(4, dtype=np.float32)[0])
print("enrolled", flush=True)
sys.stdin.readline()
"""


def test_milvus_lite_file_persists_and_belongs_to_one_process(tmp_path):
    require_milvus()
    url = f"milvus-lite://{tmp_path}/local.db/people"
    owner = start_python(LITE_OWNER, url)
    try:
        assert owner.stdout.readline().strip() == "enrolled", owner.stderr.read() if owner.poll() else ""
        with pytest.raises(GalleryUnavailableError, match="milvus-lite server --data-dir"):
            open_gallery(url)  # the owner holds it
        owner.communicate("done\n", timeout=30)
    finally:
        owner.kill()
    with open_gallery(url, create=False) as g:
        assert g.names() == ["ann"] and g.best_match(np.eye(4, dtype=np.float32)[0]).score == pytest.approx(1.0)
        copy = Gallery()
        assert copy_gallery(g, copy, save=False).templates == 1 and copy.names() == ["ann"]


# ------------------------------------------------------------------------------------------- masked tags
def tagged(gallery: GalleryBase) -> GalleryBase:
    """ann: a clean template e0 and a masked one e1; bob: one clean template 0.8 from e1."""
    gallery.bind("space-a", 4, "m")
    gallery.add("ann", np.eye(4, dtype=np.float32)[:2], masked=[False, True])
    gallery.add("bob", unit([0, 0.8, 0.6, 0]))
    return gallery


@pytest.mark.parametrize("kind", ["file", "milvus"])
def test_masked_tags_and_the_search_rule_are_the_same_for_file_and_database(kind, collection_url, tmp_path):
    g = tagged(Gallery(path=tmp_path / "g.npz") if kind == "file" else MilvusGallery(collection_url))
    with g:
        assert g.identities() == [IdentityInfo("ann", 2, 1), IdentityInfo("bob", 1, 0)] and g.stores_masked_tags
        assert g.template_tags("ann").tolist() == [False, True]
        np.testing.assert_allclose(g.templates("ann", masked=True), np.eye(4)[1:2], atol=1e-6)
        q = np.eye(4, dtype=np.float32)[[1, 1, 0]]
        assert [m[0].name for m in g.search(q)] == ["ann", "ann", "ann"]
        found = g.search(q, top_k=2, masked=[False, True, False])
        assert [[m.name for m in row] for row in found] == [["bob", "ann"], ["ann", "bob"], ["ann", "bob"]]
        assert found[0][0].score == pytest.approx(0.8, abs=1e-5)
        g.add("ann", np.eye(4, dtype=np.float32)[2], masked=True)
        g.rename("ann", "anna")
        assert g.template_tags("anna").tolist() == [False, True, True]
        with pytest.raises(InputError, match="masked templates only"):
            g.add("cid", np.eye(4, dtype=np.float32)[3], masked=True)
        with pytest.raises(InputError, match="pass masked=True/False"):
            g.add("cid", np.eye(4, dtype=np.float32)[:2], masked=[1, 0])
        assert "cid" not in g


def test_export_and_import_carry_the_tags(collection_url, tmp_path):
    source = tagged(Gallery(path=tmp_path / "source.npz"))
    source.save()
    with MilvusGallery(collection_url) as db:
        assert copy_gallery(source, db).templates == 3
        assert db.identities() == [IdentityInfo("ann", 2, 1), IdentityInfo("bob", 1, 0)]
        back = Gallery()
        copy_gallery(db, back, save=False)
        assert back.template_tags("ann").tolist() == [False, True] and back.template_tags("bob").tolist() == [False]


def old_layout_collection(url: str, name: str) -> str:
    """A collection exactly as g2d-edge made it before the masked tags (layout 1, no `masked` field), with ann
    enrolled: the URL of it."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(url.replace("milvus://", "http://"), alias=f"old-{name}")
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("name", DataType.VARCHAR, max_length=1024)
    schema.add_field("enrolment", DataType.VARCHAR, max_length=32)
    schema.add_field("enrolled_ns", DataType.INT64)
    schema.add_field("template_index", DataType.INT64)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection(name, schema=schema, num_shards=1, properties={
        "g2d.gallery_format": "1", "g2d.embedding_space": "space-a", "g2d.embedding_dim": "4",
        "g2d.model_name": "m", "g2d.threshold": ""})
    index = client.prepare_index_params()
    index.add_index(field_name="embedding", index_type="FLAT", metric_type="COSINE")
    client.create_index(name, index)
    client.load_collection(name)
    client.insert(name, [{"id": f"r{i}", "name": "ann", "enrolment": "e", "enrolled_ns": 1, "template_index": i,
                          "embedding": np.eye(4, dtype=np.float32)[i]} for i in range(2)])
    client.close()
    return f"{url}/{name}"


def test_a_collection_made_before_the_tags_opens_searches_and_says_what_to_do(milvus_url, tmp_path):
    require_milvus()
    url = old_layout_collection(milvus_url, "old_layout")
    with MilvusGallery(url, create=False) as g:
        assert g.identities() == [IdentityInfo("ann", 2, 0)] and not g.stores_masked_tags
        assert g.template_tags("ann").tolist() == [False, False]
        q = np.eye(4, dtype=np.float32)[[1, 0]]
        assert [m[0] for m in g.search(q, masked=[False, True])] == [Match("ann", pytest.approx(1.0))] * 2
        assert g.add("bob", np.eye(4, dtype=np.float32)[2]) == 1  # clean templates: as before
        g.rename("bob", "bea")
        with pytest.raises(GalleryError, match="collection layout 1.*g2d gallery export") as err:
            g.add("ann", np.eye(4, dtype=np.float32)[3], masked=True)
        assert "nothing was enrolled" in str(err.value) and g.identities()[0] == IdentityInfo("ann", 2, 0)
        source = tagged(Gallery())
        source.remove("ann")
        source.add("cid", np.eye(4, dtype=np.float32)[:2], masked=[False, True])
        with pytest.raises(GalleryError, match="cannot store.*nothing was copied"):
            copy_gallery(source, g)
        assert g.names() == ["ann", "bea"]
        copy = Gallery(path=tmp_path / "old.npz")
        assert copy_gallery(g, copy).templates == 3 and copy.template_tags("ann").tolist() == [False, False]


def test_the_open_set_threshold_is_measured_on_a_database_gallery_as_on_a_file(collection_url):
    """The stranger cohort (g2d_edge.openset.cohort) is searched in a Milvus collection through the same protocol:
    the same templates give the same measured threshold as in a file gallery, and a change of the collection's
    counts is measured again."""
    from g2d_edge.openset import CohortThresholds
    from g2d_edge.sidecar import StrangerCohort

    rng = np.random.default_rng(4)
    rows = unit(-1.0 + 0.4 * rng.normal(size=(300, 4)))  # strangers far from the filled gallery's faces
    cohort = CohortThresholds(StrangerCohort.of({"clean": rows, "masked": rows}, people=300), 0.02)
    file_gallery = filled(Gallery())
    with filled(MilvusGallery(collection_url)) as db:
        assert db.changes is None  # others may write to it: keyed by its counts
        counts = (len(db), db.num_templates)
        expected = cohort.threshold(file_gallery, "clean", counts)
        assert cohort.threshold(db, "clean", counts) is None  # the size table answers while it is measured
        assert cohort.wait_for_refresh(60)
        measured = cohort.threshold(db, "clean", counts)
        assert measured == pytest.approx(expected, abs=1e-4) and expected < 0.5
        db.add("dan", rows[:20])
        counts = (len(db), db.num_templates)
        assert cohort.threshold(db, "clean", counts) == measured  # the last measurement, while the next one runs
        assert cohort.wait_for_refresh(60)
        assert cohort.threshold(db, "clean", counts) > expected


def test_the_mean_search_of_a_collection_scores_as_the_file_gallery(collection_url):
    """Fused templates (renormalised means, clean ones only for a clean query) give the same identities and scores
    from the database as from a file, for FUSION_CANDIDATES people of 1-4 templates (all of them candidates)."""
    from g2d_edge.gallery.milvus.gallery import FUSION_CANDIDATES

    rng = np.random.default_rng(17)
    file_gallery, db = Gallery(), MilvusGallery(collection_url)
    with db:
        db.bind("space-a", 8, "m")
        for i in range(FUSION_CANDIDATES):
            k = int(rng.integers(1, 5))
            templates, tags = rng.standard_normal((k, 8)).astype(np.float32), [False] + [i % 3 == 0] * (k - 1)
            file_gallery.add(f"p{i}", templates, masked=tags)
            db.add(f"p{i}", templates, masked=tags)
        queries = rng.standard_normal((6, 8)).astype(np.float32)
        for masked in (None, [True, False] * 3):
            expected = file_gallery.search(queries, top_k=5, masked=masked, fusion="mean")
            found = db.search(queries, top_k=5, masked=masked, fusion="mean")
            assert [[m.name for m in row] for row in found] == [[m.name for m in row] for row in expected]
            np.testing.assert_allclose([[m.score for m in row] for row in found],
                                       [[m.score for m in row] for row in expected], atol=1e-5)
        assert found != db.search(queries, top_k=5, masked=masked)  # the best-template search differs
        with pytest.raises(InputError, match="fusion must be one of"):
            db.search(queries, fusion="best")


def test_a_fused_search_sees_edits_of_this_handle_at_once_and_of_another_within_the_cache_time(collection_url):
    """Candidates are searched fresh; fused templates are reused for `fused_cache_s`: an edit through the same
    gallery object shows at once, one through another handle (another box) after the cache time, or at once with 0."""
    mine = MilvusGallery(collection_url)
    other = MilvusGallery(collection_url)
    strict = MilvusGallery(collection_url, MilvusGalleryOptions(fused_cache_s=0))
    with mine, other, strict:
        mine.bind("space-a", 3, "m")
        mine.add("ann", unit([1, 1, 0]))
        q = np.array([1, 0, 0], np.float32)
        assert mine.search(q, fusion="mean")[0][0].score == pytest.approx(0.7071, abs=1e-4)
        assert strict.search(q, fusion="mean")[0][0].score == pytest.approx(0.7071, abs=1e-4)
        mine.add("ann", unit([1, -1, 0]))  # the fused template is now [1, 0, 0]
        assert mine.search(q, fusion="mean")[0][0].score == pytest.approx(1.0, abs=1e-4)
        assert strict.search(q, fusion="mean")[0][0].score == pytest.approx(1.0, abs=1e-4)
        other.search(q, fusion="mean")
        other.remove("ann")
        other.add("ann", unit([0, 1, 0]))
        assert strict.search(q, fusion="mean")[0][0].score == pytest.approx(0.0, abs=1e-4)
        assert mine.search(q, fusion="mean")[0][0].score == pytest.approx(1.0, abs=1e-4)  # kept for 10 s
        mine._fused.ttl_s = 0.0  # as if the cache time had passed
        assert mine.search(q, fusion="mean")[0][0].score == pytest.approx(0.0, abs=1e-4)
        with pytest.raises(InputError, match="fused_cache_s"):
            MilvusGalleryOptions(fused_cache_s=-1)


def test_a_request_under_way_when_the_gallery_closes_is_a_gallery_error(collection_url):
    """A background cohort measurement (g2d_edge.openset.cohort) may still be on its way when the gallery is closed:
    its next request is a GalleryError saying so, not pymilvus's or Python's own error."""
    with filled(MilvusGallery(collection_url)) as db:
        request = db._search  # looked up before the close, as a thread on its way has it
    with pytest.raises(GalleryError, match="was closed; open it again"):
        request(unit([[1, 0, 0, 0]]), 1, "")
    with pytest.raises(GalleryError, match="was closed"):
        db.search(unit([1, 0, 0, 0]))
    db.close()  # twice is fine
