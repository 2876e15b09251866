"""Synthetic masks (`g2d_edge.masks`, which training uses too): placement on real faces, fallbacks, determinism,
region, errors, speed."""
from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from g2d_edge.align import ARCFACE_TEMPLATE_5, align_face, estimate_alignment, transform_points
from g2d_edge.errors import InputError
from g2d_edge.masks import STYLES, MaskOptions, MaskSynthesizer, apply_random_mask
import shared_data

SHARED = shared_data.SHARED_DIR
CELEBA = SHARED / "data" / "celeba-train"

EYES = (33, 133, 159, 145, 263, 362, 386, 374)  # eye corners and lids
NOSE_TIP = (4, 1)
MOUTH = (13, 14, 61, 291)  # lip centres and mouth corners
BELOW_LIP = (17, 200)


@pytest.fixture(scope="module")
def faces() -> list:
    """A few real photos with Face Mesh and detector keypoints, in the raw frame and in the aligned 112 crop."""
    if not CELEBA.is_dir():
        pytest.skip(shared_data.missing("real photos", CELEBA))
    import mediapipe as mp

    from g2d_edge.detectors import FaceDetector

    detector = FaceDetector()
    mesh_model = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                                 min_detection_confidence=0.3)
    out = []
    for person in sorted(p for p in CELEBA.iterdir() if p.is_dir()):
        image = cv2.imread(str(sorted(person.glob("*.jpg"))[0]))
        found = detector.detect(image)
        result = mesh_model.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        if image is None or not found or not result.multi_face_landmarks:
            continue
        h, w = image.shape[:2]
        mesh = np.array([[p.x * w, p.y * h] for p in result.multi_face_landmarks[0].landmark[:468]])
        kps = found[0].keypoints
        matrix = estimate_alignment(kps)
        out.append({"raw": image, "mesh": mesh, "kps": kps, "aligned": align_face(image, kps),
                    "mesh112": transform_points(mesh, matrix), "kps112": transform_points(kps, matrix)})
        if len(out) == 6:
            break
    mesh_model.close()
    assert len(out) >= 4, "expected Face Mesh to find faces in the first real photos"
    return out


def _at(region: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Region values at (K, 2) points (rounded to pixels; all points must lie inside the image)."""
    xy = np.round(np.asarray(points)).astype(int)
    assert (xy >= 0).all() and (xy[:, 0] < region.shape[1]).all() and (xy[:, 1] < region.shape[0]).all()
    return region[xy[:, 1], xy[:, 0]]


def _frames(face: dict):
    yield face["raw"], face["mesh"]
    yield face["aligned"], face["mesh112"]


@pytest.mark.parametrize("style", STYLES)
def test_mask_covers_nose_mouth_chin_and_never_the_eyes(faces, style):
    synth = MaskSynthesizer()
    for k, face in enumerate(faces):
        for image, mesh in _frames(face):
            for seed in range(3):
                out, region = synth.synth(image, np.random.default_rng(seed + 10 * k), mesh=mesh, style=style,
                                          nose_covered=True)
                assert _at(region, mesh[list(NOSE_TIP + MOUTH + BELOW_LIP)]).all(), (style, k, seed)
                assert not _at(region, mesh[list(EYES)]).any(), (style, k, seed)
                eyes = np.round(mesh[list(EYES)]).astype(int)
                np.testing.assert_array_equal(out[eyes[:, 1], eyes[:, 0]], image[eyes[:, 1], eyes[:, 0]])


@pytest.mark.parametrize("style", STYLES)
def test_nose_uncovered_variant_leaves_the_nose_tip_free(faces, style):
    synth = MaskSynthesizer()
    for k, face in enumerate(faces):
        for image, mesh in _frames(face):
            for seed in range(3):
                _, region = synth.synth(image, np.random.default_rng(seed + 10 * k), mesh=mesh, style=style,
                                        nose_covered=False)
                assert not _at(region, mesh[list(NOSE_TIP + EYES)]).any(), (style, k, seed)
                assert _at(region, mesh[[13, 14]]).all(), (style, k, seed)


def test_nose_uncovered_probability_is_honoured():
    rng = np.random.default_rng(0)
    never = MaskSynthesizer(MaskOptions(nose_uncovered_prob=0.0))
    always = MaskSynthesizer(MaskOptions(nose_uncovered_prob=1.0))
    assert all(never.sample(rng).nose_covered for _ in range(200))
    assert not any(always.sample(rng).nose_covered for _ in range(200))
    half = MaskSynthesizer(MaskOptions(nose_uncovered_prob=0.5))
    share = np.mean([half.sample(rng).nose_covered for _ in range(2000)])
    assert 0.45 < share < 0.55


def test_style_probabilities_and_textures():
    rng = np.random.default_rng(1)
    synth = MaskSynthesizer(MaskOptions(styles=("surgical", "kn95", "cloth"), style_probs=(0.5, 0.0, 0.5),
                                        texture_prob=1.0, textures=("dots",)))
    draws = [synth.sample(rng) for _ in range(2000)]
    styles = [d.style for d in draws]
    assert set(styles) == {"surgical", "cloth"}
    assert 0.45 < styles.count("surgical") / len(styles) < 0.55
    assert {d.texture for d in draws if d.style == "cloth"} == {"dots"}
    assert {d.texture for d in draws if d.style != "cloth"} == {None}
    default = [MaskSynthesizer().sample(rng) for _ in range(400)]
    assert {d.style for d in default} == set(STYLES)
    assert len({d.colour for d in default}) == len(default)  # colours are random, not a fixed palette


@pytest.mark.parametrize("style", STYLES)
def test_template_fallback_on_aligned_crops(faces, style):
    """No landmarks at all: the 112 crop is taken as aligned and the mask sits on the ArcFace template face."""
    synth = MaskSynthesizer()
    nose, mouth = ARCFACE_TEMPLATE_5[2], ARCFACE_TEMPLATE_5[3:].mean(axis=0)
    for k, face in enumerate(faces):
        image = face["aligned"]
        for covered in (True, False):
            _, region = synth.synth(image, np.random.default_rng(k), style=style, nose_covered=covered)
            assert _at(region, [mouth, mouth + (0, 8)]).all()
            assert not _at(region, ARCFACE_TEMPLATE_5[:2]).any()
            assert _at(region, [nose])[0] == int(covered)
            # and it lands on the real face: the real mouth is covered, the real eyes are not
            assert _at(region, face["mesh112"][[13, 14]]).all()
            assert not _at(region, face["mesh112"][[33, 133, 263, 362]]).any()


def test_template_fallback_scales_to_any_square_crop(faces):
    image = cv2.resize(faces[0]["aligned"], (224, 224))
    _, region = MaskSynthesizer().synth(image, np.random.default_rng(0), style="surgical", nose_covered=True)
    assert _at(region, [ARCFACE_TEMPLATE_5[2] * 2, ARCFACE_TEMPLATE_5[3] * 2]).all()
    assert not _at(region, ARCFACE_TEMPLATE_5[:2] * 2).any()


@pytest.mark.parametrize("style", STYLES)
def test_keypoint_fallback_on_raw_photos_with_nan_mesh(faces, style):
    """Mesh missing (None or all NaN, as the prepared cache stores it): the mask is placed from keypoints."""
    synth = MaskSynthesizer()
    nan_mesh = np.full((468, 2), np.nan)
    for k, face in enumerate(faces):
        kps = face["kps"]
        five = np.vstack([kps[:3], face["mesh"][[61, 291]]])  # ArcFace order: eyes, nose tip, mouth corners
        for keypoints in (kps, five):
            a = synth.synth(face["raw"], np.random.default_rng(k), mesh=None, keypoints=keypoints, style=style)
            b = synth.synth(face["raw"], np.random.default_rng(k), mesh=nan_mesh, keypoints=keypoints, style=style)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            region = a[1]
            assert _at(region, [kps[3]]).all()  # mouth centre
            assert not _at(region, kps[:2]).any()  # eyes
            assert not _at(region, face["mesh"][[159, 386]]).any()  # upper eyelids


def test_fallback_without_keypoints_needs_a_square_aligned_crop(faces):
    raw = faces[0]["raw"]
    wide = np.ascontiguousarray(np.hstack([raw, raw]))
    with pytest.raises(InputError, match="keypoints"):
        MaskSynthesizer().synth(wide, np.random.default_rng(0), mesh=np.full((468, 2), np.nan))
    out, region = MaskSynthesizer().synth(wide, np.random.default_rng(0), keypoints=faces[0]["kps"])
    assert out.shape == wide.shape and region.any()


def test_any_frame_size_and_faces_at_or_past_the_border(faces):
    face = faces[0]
    synth = MaskSynthesizer()
    # a large, non-square frame
    scale = 4.0
    big = cv2.resize(face["raw"], None, fx=scale, fy=scale)
    big = np.ascontiguousarray(np.pad(big, ((0, 0), (100, 300), (0, 0)), mode="edge"))
    mesh = face["mesh"] * scale + (100, 0)
    out, region = synth.synth(big, np.random.default_rng(0), mesh=mesh, style="kn95", nose_covered=True)
    assert out.shape == big.shape and region.shape == big.shape[:2]
    assert _at(region, mesh[list(NOSE_TIP + MOUTH)]).all() and not _at(region, mesh[list(EYES)]).any()
    # face half out of the frame: no crash, the visible part is masked
    shift = np.array([0.0, face["raw"].shape[0] - face["mesh"][1, 1]])
    out, region = synth.synth(face["raw"], np.random.default_rng(0), mesh=face["mesh"] + shift)
    assert region.any() and region[: int(face["mesh"][1, 1]) - 8].sum() == 0
    # face entirely outside: nothing changes
    out, region = synth.synth(face["raw"], np.random.default_rng(0), mesh=face["mesh"] + (1000, 1000))
    assert not region.any()
    np.testing.assert_array_equal(out, face["raw"])


@pytest.mark.parametrize("style", STYLES)
def test_region_is_exactly_the_changed_pixels(faces, style):
    synth = MaskSynthesizer()
    for k, face in enumerate(faces[:3]):
        for image, mesh in _frames(face):
            before = image.copy()
            out, region = synth.synth(image, np.random.default_rng(k), mesh=mesh, style=style)
            np.testing.assert_array_equal(image, before)  # input untouched
            assert out.dtype == np.uint8 and out.shape == image.shape
            assert region.dtype == np.uint8 and region.shape == image.shape[:2]
            assert set(np.unique(region).tolist()) == {0, 1}
            changed = (out != image).any(axis=2)
            assert not changed[region == 0].any()  # nothing outside the region changes
            assert changed[region == 1].mean() > 0.9  # (a few edge pixels blend to their old value)
            assert 0.03 < region.mean() < 0.7


@pytest.mark.parametrize("style", STYLES)
def test_masks_are_shaded_not_flat(faces, style):
    face = faces[0]
    synth = MaskSynthesizer(MaskOptions(texture_prob=0.0))
    for seed in range(3):
        out, region = synth.synth(face["aligned"], np.random.default_rng(seed), mesh=face["mesh112"], style=style)
        inner = cv2.erode(region, np.ones((5, 5), np.uint8)).astype(bool)
        grey = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)[inner].astype(float)
        assert grey.std() > 2.0
        assert np.percentile(grey, 95) - np.percentile(grey, 5) > 8


def test_same_seed_same_mask_and_different_seeds_differ(faces):
    face = faces[0]
    synth = MaskSynthesizer()
    for image, mesh in _frames(face):
        a = synth.synth(image, np.random.default_rng(7), mesh=mesh)
        b = synth.synth(image, np.random.default_rng(7), mesh=mesh)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        outputs = {synth.synth(image, np.random.default_rng(seed), mesh=mesh)[0].tobytes() for seed in range(8)}
        assert len(outputs) == 8
    a = apply_random_mask(face["aligned"], 3, mesh=face["mesh112"])
    b = apply_random_mask(face["aligned"], 3, mesh=face["mesh112"])
    c = apply_random_mask(face["aligned"], 4, mesh=face["mesh112"])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    # a picklable synthesizer rebuilt from the same options gives the same masks (data-loader workers)
    import pickle

    clone = pickle.loads(pickle.dumps(synth))
    np.testing.assert_array_equal(clone.synth(face["aligned"], np.random.default_rng(5))[0],
                                  synth.synth(face["aligned"], np.random.default_rng(5))[0])


def test_sample_then_render_equals_synth(faces):
    face = faces[1]
    synth = MaskSynthesizer()
    rng = np.random.default_rng(11)
    draw = synth.sample(rng)
    rendered = synth.render(face["aligned"], draw, rng, mesh=face["mesh112"])
    direct = synth.synth(face["aligned"], np.random.default_rng(11), mesh=face["mesh112"])
    np.testing.assert_array_equal(rendered[0], direct[0])
    wider = synth.render(face["aligned"], replace(draw, chin=0.3, margin=0.1), np.random.default_rng(0),
                         mesh=face["mesh112"])
    narrower = synth.render(face["aligned"], replace(draw, chin=-0.1, margin=0.0), np.random.default_rng(0),
                            mesh=face["mesh112"])
    assert wider[1].sum() > narrower[1].sum()


@pytest.mark.parametrize("bad", [
    np.zeros((112, 112, 3), np.float32),
    np.zeros((112, 112), np.uint8),
    np.zeros((112, 112, 4), np.uint8),
    np.zeros((4, 4, 3), np.uint8),
    [[0, 0, 0]],
    None,
])
def test_bad_image_raises_input_error(bad):
    with pytest.raises(InputError):
        MaskSynthesizer().synth(bad, np.random.default_rng(0))


@pytest.mark.parametrize("kwargs", [
    {"mesh": np.zeros((10, 2))},
    {"mesh": np.zeros((468,))},
    {"mesh": np.zeros((468, 4))},
    {"mesh": "not landmarks"},
    {"keypoints": np.zeros((3, 2))},
    {"keypoints": np.zeros((5, 3))},
    {"keypoints": np.full((5, 2), np.nan)},
])
def test_bad_landmarks_raise_input_error(kwargs):
    with pytest.raises(InputError):
        MaskSynthesizer().synth(np.zeros((112, 112, 3), np.uint8), np.random.default_rng(0), **kwargs)


def test_bad_generator_style_and_options_raise_input_error():
    image = np.zeros((112, 112, 3), np.uint8)
    with pytest.raises(InputError, match="Generator"):
        MaskSynthesizer().synth(image, 0)
    with pytest.raises(InputError, match="style"):
        MaskSynthesizer().synth(image, np.random.default_rng(0), style="balaclava")
    for bad in ({"styles": ("surgical",), "style_probs": (0.5, 0.5)}, {"styles": ("scarf",), "style_probs": (1.0,)},
                {"style_probs": (0.0, 0.0, 0.0, 0.0)}, {"nose_uncovered_prob": 1.5}, {"chin_range": (0.3, 0.1)},
                {"textures": ("tartan",)}):
        with pytest.raises(InputError):
            MaskOptions(**bad)


def test_fast_enough_for_on_the_fly_training(faces):
    """Budget ~1 ms per 112x112 face on one core; allow generous slack for a busy CI machine."""
    face = faces[0]
    synth = MaskSynthesizer()
    rng = np.random.default_rng(0)
    for _ in range(20):
        synth.synth(face["aligned"], rng, mesh=face["mesh112"])
    n = 300
    start = time.process_time()
    for _ in range(n):
        synth.synth(face["aligned"], rng, mesh=face["mesh112"])
    per_face = (time.process_time() - start) / n
    assert per_face < 0.005, f"{per_face * 1e3:.2f} ms per face"

