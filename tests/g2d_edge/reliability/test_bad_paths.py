"""Issue 22 (part of "every bad input is a G2DError" that is about paths, not options): a gallery path with a NUL or
a name too long for the file system, and a source such as "²" (a digit to str.isdigit, not a camera index), are
G2DErrors with a message, never ValueError / OSError."""
import numpy as np
import pytest

from g2d_edge import Capture
from g2d_edge.video.capture import classify_source
from g2d_edge.cli import main
from g2d_edge.errors import CaptureError, GalleryError
from g2d_edge.gallery import Gallery


@pytest.mark.parametrize("name", ["a\x00b.npz", "x" * 256 + ".npz", "y" * 300])
def test_unusable_gallery_paths_are_gallery_errors(tmp_path, name):
    path = tmp_path / name
    gallery = Gallery()
    gallery.add("ann", np.ones(4))
    with pytest.raises(GalleryError):
        gallery.save(path)
    with pytest.raises(GalleryError):
        Gallery.load(path)


@pytest.mark.parametrize("source", ["\u00b2", "\u0663", "\u00b9\u00b2"])
def test_unicode_digits_are_not_camera_indexes(source, capsys):
    with pytest.raises(CaptureError, match="not found"):
        classify_source(source)
    with pytest.raises(CaptureError):
        Capture(source)
    assert classify_source("0") == ("camera", 0)


def test_the_cli_says_one_line_for_them(tmp_path, capsys):
    assert main(["gallery", "list", "--gallery", str(tmp_path / ("x" * 300))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("g2d: error: ") and err.count("\n") == 1
