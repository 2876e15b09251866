"""Issue 12, class 1 (data loss and concurrency): gallery saves are locked and merged across processes, never a
silent overwrite. Real processes: four `g2d enroll` at once, a process saving between another's load and save, a
process holding the lock. The merge rules themselves are checked with two handles on one file."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

import g2d_edge.gallery.file as gallery_mod
from g2d_edge.errors import GalleryError
from g2d_edge.gallery import Gallery
from runtime_helpers import LOCK_HOLDER, repo_env, start_python


def unit(i, dim=4):
    return np.eye(dim, dtype=np.float32)[i]


def saved(path, **people):
    g = Gallery(embedding_space="space-a")
    for name, rows in people.items():
        g.add(name, np.asarray(rows, np.float32))
    return g.save(path)


# ------------------------------------------------------------------------------------------------ real processes
def test_four_parallel_cli_enrolments_keep_all_four_people(tmp_path, tiny_onnx_model, celeba_people):
    assert len(celeba_people) == 4
    gallery = tmp_path / "people.npz"
    procs = [subprocess.Popen([sys.executable, "-m", "g2d_edge", "enroll", name, str(photos[0]), "--gallery",
                               str(gallery), "--model", str(tiny_onnx_model), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=repo_env(),
                              cwd=tmp_path)
             for name, photos in celeba_people.items()]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert Gallery.load(gallery).names() == sorted(celeba_people)
    # the process that saved last reports the merged gallery
    assert max(json.loads(out)["identities"] for out, _ in outputs) == 4


LOAD_WAIT_ADD_SAVE = """
import sys
import numpy as np
from g2d_edge.gallery import Gallery
g = Gallery.open(sys.argv[1])
print("loaded", flush=True)
sys.stdin.readline()
g.add(sys.argv[2], np.eye(4, dtype=np.float32)[int(sys.argv[3])])
g.save()
print(",".join(g.names()), flush=True)
"""


def test_a_save_between_another_process_load_and_save_is_kept(tmp_path):
    path = saved(tmp_path / "g.npz", ann=[unit(0)])
    other = start_python(LOAD_WAIT_ADD_SAVE, path, "cid", 2)
    try:
        assert other.stdout.readline().strip() == "loaded"
        mine = Gallery.load(path)  # loaded after the other process, saved before it
        mine.add("bob", unit(1))
        mine.save()
        out, err = other.communicate("go\n", timeout=60)
    finally:
        other.kill()
    assert other.returncode == 0, err
    assert out.strip() == "ann,bob,cid"  # the other process's gallery now holds the merge
    final = Gallery.load(path)
    assert final.names() == ["ann", "bob", "cid"]
    np.testing.assert_array_equal(final.templates("bob"), unit(1)[None])


def test_save_waits_for_the_lock_and_gives_up_with_a_clear_error(tmp_path):
    path = tmp_path / "g.npz"
    lock_file = gallery_mod.gallery_lock_path(path)
    assert lock_file == tmp_path / ".g.npz.lock"
    holder = start_python(LOCK_HOLDER, lock_file)
    try:
        assert holder.stdout.readline().strip() == "locked"
        g = Gallery(lock_timeout=0.5)
        g.add("ann", unit(0))
        t0 = time.monotonic()
        with pytest.raises(GalleryError, match=r"another process has held its lock .*\.g\.npz\.lock.* 0\.5 s"):
            g.save(path)
        assert 0.5 <= time.monotonic() - t0 < 5
        assert not path.exists()
        holder.communicate("release\n", timeout=30)
    finally:
        holder.kill()
    assert g.save(path) == path  # free again
    assert Gallery.load(path).names() == ["ann"]


# ------------------------------------------------------------------------------------------------ merge rules
def test_merge_keeps_people_and_templates_added_on_both_sides(tmp_path):
    path = saved(tmp_path / "g.npz", ann=[unit(0)])
    a, b = Gallery.load(path), Gallery.load(path)
    a.add("ann", unit(1))
    a.add("bob", unit(1))
    a.save()
    b.add("ann", unit(2))
    b.add("cid", unit(2))
    b.save()
    final = Gallery.load(path)
    assert final.identities() == b.identities()  # b holds what it wrote
    assert final.names() == ["ann", "bob", "cid"]
    np.testing.assert_array_equal(final.templates("ann"), np.stack([unit(0), unit(1), unit(2)]))


def test_merge_applies_removals_and_renames_from_either_side(tmp_path):
    path = saved(tmp_path / "g.npz", ann=[unit(0)], bob=[unit(1)], cid=[unit(2)])
    a, b = Gallery.load(path), Gallery.load(path)
    a.remove("ann")
    a.rename("bob", "bobby")
    a.save()
    b.add("dan", unit(3))
    b.save()  # b did not touch ann or bob: a's removal and rename stand
    assert Gallery.load(path).names() == ["bobby", "cid", "dan"]
    b.remove("cid")
    b.save()
    assert Gallery.load(path).names() == ["bobby", "dan"]


@pytest.mark.parametrize("change_here", ["remove", "rename"])
def test_conflicting_changes_are_refused_and_nothing_is_written(tmp_path, change_here):
    path = saved(tmp_path / "g.npz", ann=[unit(0)], bob=[unit(1)])
    a, b = Gallery.load(path), Gallery.load(path)
    a.add("ann", unit(2))
    a.save()
    before = path.read_bytes()
    b.add("eve", unit(3))
    b.remove("ann") if change_here == "remove" else b.rename("ann", "anna")
    with pytest.raises(GalleryError, match=r"changes conflict: 'ann' was removed or renamed here.*Nothing was saved"):
        b.save()
    assert path.read_bytes() == before
    assert "eve" in b and "ann" not in b  # the gallery in memory is unchanged too


def test_thresholds_merge_and_conflict(tmp_path):
    path = saved(tmp_path / "g.npz", ann=[unit(0)])
    a, b = Gallery.load(path), Gallery.load(path)
    a.threshold = 0.4
    a.save()
    b.add("bob", unit(1))
    b.save()
    assert (Gallery.load(path).threshold, b.threshold) == (0.4, 0.4)
    c = Gallery.load(path)
    b.threshold = 0.5
    b.save()
    c.threshold = 0.6
    with pytest.raises(GalleryError, match="threshold was set to 0.5 there and to 0.6 here"):
        c.save()


def test_saving_over_a_gallery_that_was_not_loaded_keeps_its_people(tmp_path):
    path = saved(tmp_path / "g.npz", ann=[unit(0)])
    fresh = Gallery(embedding_space="space-a")
    fresh.add("bob", unit(1))
    fresh.save(path)
    assert Gallery.load(path).names() == ["ann", "bob"]
    late = Gallery.open(tmp_path / "new.npz")  # did not exist when opened; another process creates it
    saved(tmp_path / "new.npz", cid=[unit(2)])
    late.add("dan", unit(3))
    late.save()
    assert Gallery.load(tmp_path / "new.npz").names() == ["cid", "dan"]


def test_a_file_of_another_model_is_never_overwritten(tmp_path):
    path = saved(tmp_path / "g.npz", ann=[unit(0)])
    other = Gallery(embedding_space="space-b")
    other.add("bob", unit(1))
    with pytest.raises(GalleryError, match="another model"):
        other.save(path)
    assert Gallery.load(path).names() == ["ann"]
