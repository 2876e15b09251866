"""Issue 12, class 3 (temp files pile up): a save killed mid-write (a real process, SIGKILL) leaves its temporary
file; the next load or save of the same gallery removes it, and nothing else: not another gallery's temporary
files, not unrelated files, not a temporary file while a save holds the gallery's lock."""
import signal

import numpy as np

import g2d_edge.gallery.file as gallery_mod
from g2d_edge.gallery import Gallery
from runtime_helpers import LOCK_HOLDER, start_python

KILLED_SAVE = """
import os, signal, sys
import numpy as np
from g2d_edge.gallery import Gallery
g = Gallery.load(sys.argv[1])
g.add("late", np.ones(4, np.float32))
real_savez = np.savez

def savez_then_die(fh, **arrays):  # the archive is written, not yet renamed: die as `kill -9` would
    real_savez(fh, **arrays)
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.savez = savez_then_die
g.save()
"""


def make_gallery(path):
    g = Gallery(embedding_space="space-a")
    g.add("ann", np.eye(4, dtype=np.float32)[0])
    return g.save(path)


def killed_save(path):
    """Run a save of `path` in a real process and SIGKILL it mid-write; return the temporary files it left."""
    proc = start_python(KILLED_SAVE, path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def decoys(folder):
    """Files that look like temporary files but are not this gallery's."""
    names = [".other.npz.abcd1234.tmp", "g.npz.tmp", "notes.tmp", ".g.npz.abcd1234.tmp.bak", ".g.npz.toolong123.tmp"]
    for name in names:
        (folder / name).write_bytes(b"keep me")
    return names


def test_next_load_removes_temp_files_of_killed_saves(tmp_path):
    path = make_gallery(tmp_path / "g.npz")
    before = path.read_bytes()
    left = killed_save(path)
    assert len(left) == 1 and left[0].stat().st_size > 0
    assert path.read_bytes() == before  # the gallery itself survived the kills
    keep = decoys(tmp_path)
    assert Gallery.load(path).names() == ["ann"]
    assert not any(t.exists() for t in left)
    assert all((tmp_path / name).read_bytes() == b"keep me" for name in keep)


def test_next_save_removes_temp_files_of_killed_saves(tmp_path):
    path = make_gallery(tmp_path / "g.npz")
    mine = Gallery.load(path)  # loaded before the crash
    left = killed_save(path)
    assert left
    mine.add("bob", np.eye(4, dtype=np.float32)[1])
    mine.save()
    assert not any(t.exists() for t in left)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".g.npz.lock", "g.npz"]


def test_temp_file_of_a_running_save_is_left_alone(tmp_path):
    path = make_gallery(tmp_path / "g.npz")
    left = killed_save(path)
    holder = start_python(LOCK_HOLDER, gallery_mod.gallery_lock_path(path))  # a save is in progress
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert Gallery.load(path).names() == ["ann"]
        assert all(t.exists() for t in left)
        holder.communicate("release\n", timeout=30)
    finally:
        holder.kill()
    Gallery.load(path)
    assert not any(t.exists() for t in left)


def test_atomic_writes_keep_permissions_and_follow_the_umask(tmp_path):
    import os
    import stat

    from g2d_edge.files import atomic_write_bytes

    old = os.umask(0o027)
    try:
        new = atomic_write_bytes(tmp_path / "new.bin", b"x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o640  # 0o666 minus the umask, not mkstemp's private 0o600
        os.chmod(new, 0o604)
        atomic_write_bytes(new, b"y")
        assert stat.S_IMODE(new.stat().st_mode) == 0o604 and new.read_bytes() == b"y"  # a replaced file keeps its mode
    finally:
        os.umask(old)
