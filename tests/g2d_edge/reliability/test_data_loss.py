"""Issue 22, class "data overwritten or lost": `g2d identify --output` never destroys its own input nor claims a
video it did not write, SIGTERM keeps the frames written so far (as Ctrl-C does), a gallery path that is a symbolic
link saves into the linked (shared) file, and a Gallery that could not be loaded again is refused on construction
and before a save."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import GalleryError, InputError
from g2d_edge.gallery import Gallery
from g2d_edge.gallery.file import gallery_lock_path
from runtime_helpers import read_video, repo_env, write_video


@pytest.fixture()
def random_gallery(tmp_path, tiny_onnx_model):
    """A gallery of two made-up people in the tiny model's embedding space (identify needs someone enrolled)."""
    meta = json.loads(tiny_onnx_model.with_suffix(".json").read_text())
    gallery = Gallery()
    gallery.bind(meta["embedding_space"], 512, meta.get("name", ""))
    rng = np.random.default_rng(0)
    gallery.add("ann", rng.normal(size=512))
    gallery.add("bob", rng.normal(size=512))
    return gallery.save(tmp_path / "people.npz")


def noise_video(path, frames=6, seed=0):
    rng = np.random.default_rng(seed)
    return write_video(path, [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(frames)])


def identify(tmp_path, tiny_onnx_model, gallery, source, output, capsys):
    code = main(["identify", str(source), "--gallery", str(gallery), "--model", str(tiny_onnx_model),
                 "--output", str(output)])
    return code, capsys.readouterr()


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "other spelling"])
def test_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path, tiny_onnx_model, random_gallery, capsys,
                                                                how):
    clip = noise_video(tmp_path / "clip.avi")
    before = clip.read_bytes()
    output = {"same path": clip, "symlink": tmp_path / "link.avi", "hard link": tmp_path / "hard.avi",
              "other spelling": tmp_path / "." / "sub" / ".." / "clip.avi"}[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        output.symlink_to(clip)
    elif how == "hard link":
        os.link(clip, output)
    code, out = identify(tmp_path, tiny_onnx_model, random_gallery, clip, output, capsys)
    assert code == 1 and "is the source itself" in out.err and "wrote" not in out.out
    assert clip.read_bytes() == before


def test_output_that_cannot_take_data_is_an_error_not_wrote(tmp_path, tiny_onnx_model, random_gallery, capsys):
    clip = noise_video(tmp_path / "clip.avi")
    full = tmp_path / "out.avi"
    full.symlink_to("/dev/full")
    code, out = identify(tmp_path, tiny_onnx_model, random_gallery, clip, full, capsys)
    assert code == 1 and "not a regular file" in out.err and "wrote" not in out.out
    folder = tmp_path / "folder.avi"
    folder.mkdir()
    code, out = identify(tmp_path, tiny_onnx_model, random_gallery, clip, folder, capsys)
    assert code == 1 and "is a folder" in out.err and "wrote" not in out.out


def test_an_output_left_empty_after_frames_is_an_error(tmp_path, tiny_onnx_model, random_gallery, capsys,
                                                       monkeypatch):
    """OpenCV's writer reports no write error: a file that is empty once closed (a full disk) must not be 'wrote'."""
    import g2d_edge.video.loop as video

    class Swallowing:  # a writer whose writes all fail silently, as on a full disk
        def __init__(self, *args):
            self.path = args[0]
            open(self.path, "wb").close()

        def isOpened(self):
            return True

        def write(self, frame):
            pass

        def release(self):
            pass

    clip = noise_video(tmp_path / "clip.avi")
    monkeypatch.setattr(video.cv2, "VideoWriter", Swallowing)
    code, out = identify(tmp_path, tiny_onnx_model, random_gallery, clip, tmp_path / "out.avi", capsys)
    assert code == 1 and "was not written" in out.err and "wrote" not in out.out


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_sigterm_keeps_the_frames_written_so_far(tmp_path, tiny_onnx_model, random_gallery, suffix):
    clip = noise_video(tmp_path / "clip.avi", frames=400)
    out = tmp_path / f"out{suffix}"
    proc = subprocess.Popen([sys.executable, "-m", "g2d_edge", "identify", str(clip), "--gallery",
                             str(random_gallery), "--model", str(tiny_onnx_model), "--output", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=repo_env())
    try:
        for _ in range(5):  # five frames done (and written)
            assert proc.stdout.readline(), proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    frames = read_video(out)
    assert 5 <= len(frames) < 400 and frames[0].shape == (96, 128, 3)


def test_a_symlinked_gallery_saves_into_the_shared_file(tmp_path):
    shared = tmp_path / "shared" / "people.npz"
    shared.parent.mkdir()
    first = Gallery()
    first.add("ann", np.ones(8))
    first.save(shared)
    link = tmp_path / "mine.npz"
    link.symlink_to(shared)
    mine = Gallery.load(link)
    mine.add("bob", np.arange(8.0) + 1)
    assert mine.save() == shared and mine.path == link  # the file written; the gallery keeps its path
    assert link.is_symlink() and os.readlink(link) == str(shared)
    assert Gallery.load(shared).names() == ["ann", "bob"]
    assert gallery_lock_path(link) == gallery_lock_path(shared) == shared.with_name(".people.npz.lock")
    assert not (tmp_path / ".mine.npz.lock").exists()
    # a save through the link merges with what others saved to the shared file in between
    other = Gallery.load(shared)
    other.add("cat", -np.ones(8))
    other.save()
    mine.add("dan", np.arange(8.0) - 3.5)
    mine.save()
    assert Gallery.load(shared).names() == ["ann", "bob", "cat", "dan"] and link.is_symlink()
    # a dangling link: the gallery is created where it points
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "new" / "people.npz")
    (tmp_path / "new").mkdir()
    fresh = Gallery.open(dangling)
    fresh.add("eve", np.ones(8))
    fresh.save()
    assert dangling.is_symlink() and Gallery.load(tmp_path / "new" / "people.npz").names() == ["eve"]


@pytest.mark.parametrize("kwargs", [{"threshold": 75}, {"threshold": float("nan")}, {"threshold": "0.4"},
                                    {"embedding_space": ""}, {"embedding_space": 5}, {"embedding_dim": "abc"},
                                    {"embedding_dim": 0}, {"embedding_dim": 2.5}, {"model_name": None}])
def test_a_gallery_that_could_not_be_loaded_again_is_refused_on_construction(kwargs):
    field = next(iter(kwargs))
    with pytest.raises(InputError, match=field):
        Gallery(**kwargs)


def test_a_bad_threshold_set_later_is_refused_before_saving(tmp_path):
    gallery = Gallery(threshold=0.4, embedding_dim=np.int64(8))
    assert gallery.embedding_dim == 8 and type(gallery.embedding_dim) is int
    gallery.add("ann", np.ones(8))
    gallery.threshold = 75
    with pytest.raises(GalleryError, match="threshold is 75"):
        gallery.save(tmp_path / "g.npz")
    assert not (tmp_path / "g.npz").exists()
    gallery.threshold = 0.5
    gallery.save(tmp_path / "g.npz")
    assert Gallery.load(tmp_path / "g.npz").threshold == 0.5
