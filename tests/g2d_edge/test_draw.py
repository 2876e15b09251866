"""draw.annotate: a new image with boxes and labels; the input frame is untouched."""
import numpy as np
import pytest

from g2d_edge import annotate
from g2d_edge.draw import DrawOptions
from g2d_edge.errors import InputError
from g2d_edge.results import Recognition


def face(name, box=(20, 30, 80, 100), score=0.8):
    return Recognition(box=np.array(box, np.float32), keypoints=np.full((6, 2), 50, np.float32), det_score=0.9,
                       embedding=np.ones(4, np.float32) / 2, name=name, score=score)


def test_annotate_draws_on_a_copy():
    frame = np.zeros((120, 160, 3), np.uint8)
    opts = DrawOptions()
    out = annotate(frame, [face("ann"), face(None, box=(100, 40, 150, 110), score=None)], fps=12.5)
    assert frame.sum() == 0 and out is not frame and out.shape == frame.shape
    # box outlines in the known / unknown colours
    assert tuple(out[60, 20]) == opts.known_color
    assert tuple(out[80, 150]) == opts.unknown_color
    assert out[0:20, 0:60].sum() > 0  # FPS label in the corner
    assert out[60, 50].sum() == 0  # the face itself is not painted over


def test_annotate_keypoints_and_empty_list():
    frame = np.zeros((120, 160, 3), np.uint8)
    assert np.array_equal(annotate(frame, []), frame)
    out = annotate(frame, [face("ann")], options=DrawOptions(show_keypoints=True, show_score=False))
    assert out[50, 50].sum() > 0
    with pytest.raises(InputError):
        annotate(np.zeros((10, 10)), [])


def test_annotate_tags_masked_faces():
    import dataclasses

    frame = np.zeros((120, 200, 3), np.uint8)
    plain = annotate(frame, [face("ann", box=(20, 60, 80, 110))])
    masked = annotate(frame, [dataclasses.replace(face("ann", box=(20, 60, 80, 110)), masked=True)])
    # the label box above the face is wider with the "[mask]" tag
    row = 50
    assert (masked[row] > 0).any(axis=1).sum() > (plain[row] > 0).any(axis=1).sum()
    off = annotate(frame, [dataclasses.replace(face("ann", box=(20, 60, 80, 110)), masked=True)],
                   options=DrawOptions(show_mask=False))
    assert np.array_equal(off, plain)
