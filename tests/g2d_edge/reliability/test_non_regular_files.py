"""Issue 12, class 9 (an image path that is a FIFO blocks for ever): FIFOs and other non-regular files are refused
at once wherever the SDK reads a file (images, galleries, models, sidecars) and by the CLI. Each call runs on a
helper thread so that a regression fails the test instead of hanging it."""
import os
import threading

import pytest

from g2d_edge import Recognizer
from g2d_edge.cli import main
from g2d_edge.errors import GalleryError, ImageReadError, ModelError
from g2d_edge.gallery import Gallery
from g2d_edge.io import read_image
from g2d_edge.sidecar import ModelSidecar


def returns_quickly(fn, fifo, timeout=10.0):
    """Run fn() on a thread; fail (after unblocking it by opening the FIFO for writing) if it blocks."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a writer arrives and leaves: the reader sees EOF
        os.close(fd)
        thread.join(timeout)
        pytest.fail(f"{fn} blocked on the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture()
def fifo(tmp_path):
    path = tmp_path / "photo.jpg"
    os.mkfifo(path)
    return path


def test_image_fifo_is_refused_at_once(fifo, recognizer):
    with pytest.raises(ImageReadError, match="not a regular file"):
        returns_quickly(lambda: read_image(fifo), fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        returns_quickly(lambda: recognizer.enroll("x", fifo), fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        returns_quickly(lambda: recognizer.verify(fifo, fifo), fifo)


def test_gallery_model_and_sidecar_fifos_are_refused(tmp_path, tiny_model_copy):
    gallery = tmp_path / "people.npz"
    os.mkfifo(gallery)
    with pytest.raises(GalleryError, match="not a regular file"):
        returns_quickly(lambda: Gallery.load(gallery), gallery)
    with pytest.raises(GalleryError, match="not a regular file"):
        returns_quickly(lambda: Gallery().save(gallery), gallery)
    model = tmp_path / "fifo.onnx"
    os.mkfifo(model)
    with pytest.raises(ModelError, match="not a regular file"):
        returns_quickly(lambda: Recognizer(model=model), model)
    sidecar = tiny_model_copy.with_suffix(".json")
    sidecar.unlink()
    os.mkfifo(sidecar)
    with pytest.raises(ModelError, match="not a regular file"):
        returns_quickly(lambda: ModelSidecar.load(sidecar), sidecar)


def test_cli_refuses_a_fifo_in_one_line(fifo, capsys, tiny_onnx_model, people):
    photo = next(iter(people.values()))[0]
    code = returns_quickly(lambda: main(["verify", str(photo), str(fifo), "--model", str(tiny_onnx_model)]), fifo)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "not a regular file" in err
