"""Issue 12, class 8 (use after close): every Recognizer method that needs the detector or the model raises a
clear ClosedError (a G2DError) after `close()`, instead of MediaPipe's `ValueError: _graph is None`."""
import numpy as np
import pytest

from g2d_edge import G2DError, Recognizer
from g2d_edge.video import FrameStream
from runtime_helpers import read


def test_every_call_after_close_is_a_closed_error(tiny_onnx_model, people):
    from g2d_edge.errors import ClosedError

    photo = next(iter(people.values()))[0]
    frame = read(photo)
    rec = Recognizer(tiny_onnx_model)
    rec.enroll("ann", photo)
    stream = FrameStream(rec)
    stream.submit(frame, 0)
    assert stream.wait_idle(20)
    rec.close()
    calls = {
        "identify": lambda: rec.identify(frame),
        "detect": lambda: rec.detect(frame),
        "enroll": lambda: rec.enroll("bob", photo),
        "verify": lambda: rec.verify(photo, frame),
        "embed": lambda: rec.embed(np.zeros((112, 112, 3), np.uint8)),
    }
    for name, call in calls.items():
        with pytest.raises(ClosedError, match="was closed") as err:
            call()
        assert isinstance(err.value, G2DError), name
    rec.close()  # twice is fine
    stream.submit(frame, 40)  # a stream over a closed recognizer ends (its frame is not recognised) ...
    assert stream.wait_idle(20) and stream.stats()["processed"] == 1 and stream.latest.timestamp_ms == 0
    with pytest.raises(ClosedError, match="stream was closed"):  # ... and says so to the next submit
        stream.submit(frame, 80)
    stream.close()
    assert rec.gallery.names() == ["ann"]


def test_with_block_closes_and_later_use_is_a_g2d_error(tiny_onnx_model, people):
    frame = read(next(iter(people.values()))[0])
    with Recognizer(tiny_onnx_model) as rec:
        assert len(rec.identify(frame)) == 1
    with pytest.raises(G2DError, match="create a new Recognizer"):
        rec.identify(frame)
