"""The public face of `g2d_edge`: a few names at the top; what it exported before stays importable."""
import importlib

import g2d_edge

HOMES = {"DetectorOptions": "g2d_edge.detect", "NoFaceError": "g2d_edge.errors", "read_image": "g2d_edge.io",
         "jetson_csi_pipeline": "g2d_edge.capture", "ModelSidecar": "g2d_edge.sidecar", "VideoOptions": "g2d_edge.video",
         "VerifyResult": "g2d_edge.results", "align_face": "g2d_edge.align", "Match": "g2d_edge.gallery_api"}


def test_the_top_level_names_a_user_needs():
    assert set(g2d_edge.__all__) == {"Recognizer", "RecognizerOptions", "Recognition", "Gallery", "open_gallery",
                                     "Capture", "VideoLoop", "annotate", "G2DError", "__version__"}
    namespace = {}
    exec("from g2d_edge import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(g2d_edge.__all__)
    assert issubclass(g2d_edge.errors.ModelError, g2d_edge.G2DError)


def test_names_exported_before_stay_importable_from_the_package_and_their_modules():
    assert not set(g2d_edge.COMPATIBILITY_NAMES) & set(g2d_edge.__all__)
    for name in g2d_edge.COMPATIBILITY_NAMES:
        assert getattr(g2d_edge, name) is not None
    for name, module in HOMES.items():
        assert getattr(importlib.import_module(module), name) is getattr(g2d_edge, name)
