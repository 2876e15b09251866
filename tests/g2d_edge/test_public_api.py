"""The public face of `g2d_edge`: a few names at the top, everything else from its one home (0.1.0 removed the
names the package used to re-export; README "Changelog")."""
import importlib

import pytest

import g2d_edge

HOMES = {"DetectorOptions": "g2d_edge.detectors", "NoFaceError": "g2d_edge.errors", "ClosedError": "g2d_edge.errors",
         "read_image": "g2d_edge.io", "jetson_csi_pipeline": "g2d_edge.video.capture",
         "ModelSidecar": "g2d_edge.sidecar", "VideoOptions": "g2d_edge.video", "VerifyResult": "g2d_edge.results",
         "align_face": "g2d_edge.align", "Match": "g2d_edge.gallery", "MaskFlag": "g2d_edge.masks"}


def test_the_top_level_names_a_user_needs():
    assert set(g2d_edge.__all__) == {"Recognizer", "RecognizerOptions", "Recognition", "Gallery", "open_gallery",
                                     "Capture", "VideoLoop", "annotate", "G2DError", "__version__"}
    namespace = {}
    exec("from g2d_edge import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(g2d_edge.__all__)
    assert issubclass(g2d_edge.errors.ModelError, g2d_edge.G2DError)


@pytest.mark.parametrize("name", sorted(HOMES))
def test_other_names_come_from_their_home_only(name):
    assert getattr(importlib.import_module(HOMES[name]), name) is not None
    assert not hasattr(g2d_edge, name), f"g2d_edge.{name} should not be importable from the package top"
    with pytest.raises(ImportError):
        exec(f"from g2d_edge import {name}", {})
