"""Recognizer on real photographs with the tiny exported model: detection, alignment, enrol/identify/verify,
thresholds, persistence across a restart, and every bad input (stream mode: tests/g2d_edge/video/test_stream.py).

The tiny model has random weights, so it cannot tell people apart in general; the checks are the ones a broken
pipeline would fail: the very photo that was enrolled must come back with score ~1 and its own name, a face must be
matched to the person whose photo it is when both people's photos are enrolled, and so on.
"""
import logging

import cv2
import numpy as np
import pytest

import g2d_edge.backends.loader as loader_mod
from g2d_edge import Gallery, Recognition, Recognizer, RecognizerOptions
from g2d_edge.detectors import DetectorOptions
from g2d_edge.errors import GalleryError, ImageReadError, InputError, ModelError, NoFaceError
from g2d_edge.sidecar import ModelSidecar
from runtime_helpers import draw_mask, read, tile


@pytest.fixture()
def rec(recognizer):
    """The module's recognizer with a fresh empty gallery and default threshold."""
    recognizer.gallery = Gallery()
    recognizer.threshold = None
    return recognizer


def blank(h=200, w=200):
    return np.full((h, w, 3), 128, np.uint8)


# ----------------------------------------------------------------------------------------------- detection + alignment
def test_identify_real_photos_gives_faces_with_unit_embeddings(rec, people):
    for photos in people.values():
        for path in photos[:2]:
            image = read(path)
            faces = rec.identify(image)
            assert len(faces) == 1, path
            f = faces[0]
            assert isinstance(f, Recognition)
            x1, y1, x2, y2 = f.box
            assert 0 <= x1 < x2 <= image.shape[1] + 2 and 0 <= y1 < y2 <= image.shape[0] + 2
            assert (x2 - x1) > 30  # the loose 144 px crops hold a ~70 px face
            assert f.keypoints.shape == (6, 2) and 0.5 < f.det_score <= 1.0
            # eyes above nose above mouth centre
            assert max(f.keypoints[0, 1], f.keypoints[1, 1]) < f.keypoints[2, 1] < f.keypoints[3, 1]
            assert f.embedding.shape == (rec.embedding_dim,) and f.embedding.dtype == np.float32
            assert np.linalg.norm(f.embedding) == pytest.approx(1.0, abs=1e-4)
            assert f.name is None and f.score is None  # empty gallery
    assert set(rec.last_timings) == {"detection", "tracking", "alignment", "inference", "matching"}


def test_recognition_is_immutable(rec, people):
    face = rec.identify(read(next(iter(people.values()))[0]))[0]
    with pytest.raises(AttributeError):
        face.name = "mallory"
    with pytest.raises(ValueError):
        face.embedding[0] = 1.0
    with pytest.raises(ValueError):
        face.box[0] = 1.0
    d = face.to_dict()
    assert set(d) >= {"box", "keypoints", "det_score", "name", "score", "matches"} and "embedding" not in d
    assert len(face.to_dict(include_embedding=True)["embedding"]) == rec.embedding_dim


def test_embedding_equals_embed_of_aligned_crop(rec, people):
    from g2d_edge.align import align_face

    image = read(next(iter(people.values()))[0])
    face = rec.identify(image)[0]
    crop = align_face(image, face.keypoints)
    np.testing.assert_allclose(rec.embed(crop), face.embedding, atol=1e-5)
    both = rec.embed(np.stack([crop, crop[:, ::-1].copy()]))
    assert both.shape == (2, rec.embedding_dim)
    for bad in (np.zeros((2, 64, 64, 3), np.uint8), np.zeros((1, 112, 112, 3), np.float32), np.zeros((112, 112))):
        with pytest.raises(InputError):
            rec.embed(bad)


def test_masked_face_is_found_and_embedded(rec, people):
    for photos in people.values():
        image = read(photos[0])
        clean = rec.identify(image)[0]
        masked_image = draw_mask(image, clean.keypoints)
        assert np.abs(masked_image.astype(int) - image).sum() > 0
        masked = rec.identify(masked_image)
        assert len(masked) == 1, f"the masked face of {photos[0]} was not found"
        a, b = clean.box, masked[0].box
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        assert inter / union > 0.6
        assert np.linalg.norm(masked[0].keypoints[:2] - clean.keypoints[:2], axis=1).max() < 10


# --------------------------------------------------------------------------------------------- enrol / identify
def test_enrolled_photo_comes_back_with_its_name(rec, people):
    names = list(people)
    for name in names:
        result = rec.enroll(name, people[name][:2])
        assert result.added == 2 and result.templates == 2 and result.skipped == ()
    assert rec.gallery.identities()[0].templates == 2 and len(rec.gallery) == len(names)
    for name in names:
        for path in people[name][:2]:
            face = rec.identify(read(path))[0]
            assert face.name == name, path
            assert face.score == pytest.approx(1.0, abs=1e-4)
            assert face.matches[0].name == name


def test_several_people_in_one_frame_one_backend_call(rec, people, monkeypatch):
    photos = [read(p[0]) for p in people.values()] + [read(next(iter(people.values()))[1])]
    for name, p in people.items():
        rec.enroll(name, p[0])
    frame = tile(photos, cell=200)
    calls = []
    real_infer = rec.backend.infer

    def spy(faces):
        calls.append(len(faces))
        return real_infer(faces)

    monkeypatch.setattr(rec.backend, "infer", spy)
    faces = rec.identify(frame)
    assert calls == [len(faces)] and len(faces) == 4
    # each enrolled photo's tile is named after its person, at ~the same score as alone (resize changes pixels)
    for idx, name in enumerate(people):
        r, c = divmod(idx, 2)
        centre = np.array([c * 200 + 100, r * 200 + 100])
        face = min(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))
        assert face.matches[0].name == name


def test_threshold_decides_known_vs_unknown(rec, people):
    name = next(iter(people))
    other = list(people)[1]
    rec.enroll(name, people[name][0])
    sidecar = ModelSidecar.load(rec.backend.model_path.with_suffix(".json"))
    assert rec.threshold == pytest.approx(sidecar.threshold)  # the shipped default is the sidecar's
    stranger = rec.identify(read(people[other][0]))[0]
    assert stranger.score < 0.9999
    rec.threshold = (stranger.score + 1.0) / 2  # between the stranger's score and a perfect match
    assert rec.identify(read(people[other][0]))[0].name is None
    assert rec.identify(read(people[other][0]))[0].score == pytest.approx(stranger.score, abs=1e-5)
    assert rec.identify(read(people[name][0]))[0].name == name
    rec.threshold = None
    rec.gallery.threshold = 0.99999
    assert rec.threshold == 0.99999  # the gallery's own threshold beats the model's
    with pytest.raises(InputError):
        rec.threshold = 3.0


def test_top_k_candidates(tiny_onnx_model, people):
    with Recognizer(tiny_onnx_model, options=RecognizerOptions(top_k=3), gallery=Gallery()) as rec:
        for name, photos in people.items():
            rec.enroll(name, photos[0])
        face = rec.identify(read(next(iter(people.values()))[0]))[0]
        assert len(face.matches) == 3
        scores = [m.score for m in face.matches]
        assert scores == sorted(scores, reverse=True) and {m.name for m in face.matches} == set(people)


def test_empty_gallery_warns_once(rec, people, caplog):
    image = read(next(iter(people.values()))[0])
    with caplog.at_level(logging.WARNING, logger="g2d_edge.recognizer"):
        for _ in range(3):
            faces = rec.identify(image)
    assert faces[0].name is None and faces[0].score is None and faces[0].matches == ()
    assert sum("gallery is empty" in r.message for r in caplog.records) == 1


def test_verify(rec, people):
    (a, pa), (b, pb) = list(people.items())[:2]
    same, score = rec.verify(pa[0], pa[0])
    assert same and score == pytest.approx(1.0, abs=1e-4)
    result = rec.verify(read(pa[0]), pb[0])  # arrays and paths mix
    assert result.score < 0.9999
    rec.threshold = 0.9999
    assert rec.verify(pa[0], pb[0]).same is False
    masked = draw_mask(read(pa[0]), rec.identify(read(pa[0]))[0].keypoints)
    assert -1.0 <= rec.verify(masked, pa[0]).score < 0.9999


# ---------------------------------------------------------------------------------------------------- bad inputs
def test_no_face_errors_name_the_photo(rec, people, tmp_path):
    empty = tmp_path / "wall.png"
    cv2.imwrite(str(empty), blank())
    good = people[next(iter(people))][0]
    with pytest.raises(NoFaceError, match="wall.png"):
        rec.enroll("x", [good, empty])
    assert "x" not in rec.gallery  # nothing half-enrolled
    result = rec.enroll("x", [good, empty], skip_failed=True)
    assert result.added == 1 and result.skipped[0][0] == str(empty)
    with pytest.raises(NoFaceError, match="none of the 1"):
        rec.enroll("y", [empty], skip_failed=True)
    with pytest.raises(NoFaceError, match="image #1"):
        rec.verify(good, blank())
    assert rec.identify(blank()) == []


def test_unreadable_images(rec, tmp_path):
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    for bad in (tmp_path / "missing.jpg", corrupt, folder):
        with pytest.raises(ImageReadError, match=bad.name):
            rec.enroll("x", bad)
        with pytest.raises(ImageReadError):
            rec.verify(bad, bad)
    with pytest.raises(InputError, match="image #0"):
        rec.enroll("x", np.zeros((50, 50), np.uint8))
    for bad in (np.zeros((100, 100), np.uint8), np.zeros((100, 100, 3), np.float64), "photo.jpg", None):
        with pytest.raises(InputError):
            rec.identify(bad)
    with pytest.raises(InputError):
        rec.enroll("x", [])


def test_missing_shipped_model(monkeypatch, tmp_path):
    monkeypatch.setattr(loader_mod, "SHIPPED_MODEL", tmp_path / "models" / "g2d-edge-s.onnx")
    with pytest.raises(ModelError, match="model=") as err:
        Recognizer()
    assert "g2d-edge-s.onnx" in str(err.value) and "not installed" in str(err.value)


def test_wrong_model_files(tmp_path, people, tiny_onnx_model):
    jpeg = tmp_path / "photo.onnx"
    jpeg.write_bytes(next(iter(people.values()))[0].read_bytes())
    jpeg.with_suffix(".json").write_text(tiny_onnx_model.with_suffix(".json").read_text())
    no_sidecar = tmp_path / "lonely.onnx"
    no_sidecar.write_bytes(tiny_onnx_model.read_bytes())
    text = tmp_path / "model.txt"
    text.write_text("hello")
    for bad, words in [(jpeg, "corrupt"), (no_sidecar, "sidecar"), (text, "model.txt"),
                       (tmp_path / "nope.onnx", "not found"), (tmp_path, "directory")]:
        with pytest.raises(ModelError, match=words):
            Recognizer(model=bad)
    with pytest.raises(ModelError):
        Recognizer(model=12)


def test_gallery_of_another_model_is_refused(tiny_onnx_model, other_space_model, people, tmp_path):
    with Recognizer(other_space_model, gallery=tmp_path / "other.npz") as other:
        other.enroll("x", next(iter(people.values()))[0])
        other.save_gallery()
    with pytest.raises(GalleryError, match="embedding space"):
        Recognizer(tiny_onnx_model, gallery=tmp_path / "other.npz")
    with Recognizer(tiny_onnx_model) as rec:
        with pytest.raises(GalleryError, match="other"):
            rec.gallery = Gallery.load(tmp_path / "other.npz")


# ----------------------------------------------------------------------------------------------------- persistence
def test_gallery_survives_a_restart(tiny_onnx_model, people, tmp_path):
    path = tmp_path / "people"
    with Recognizer(tiny_onnx_model, gallery=path) as rec:
        for name, photos in people.items():
            rec.enroll(name, photos[:2])
        saved = rec.save_gallery()
        before = {name: rec.identify(read(photos[2]))[0] for name, photos in people.items()}
    assert saved == path / "gallery.npz"
    with Recognizer(tiny_onnx_model, gallery=path) as rec:
        assert [(i.name, i.templates) for i in rec.gallery.identities()] == [(n, 2) for n in sorted(people)]
        assert rec.gallery.embedding_space == rec.sidecar.embedding_space
        for name, photos in people.items():
            after = rec.identify(read(photos[2]))[0]
            assert after.matches == before[name].matches


def test_options_validation(tiny_onnx_model):
    with pytest.raises(InputError):
        Recognizer(tiny_onnx_model, options=RecognizerOptions(top_k=0))
    with pytest.raises(InputError):
        Recognizer(tiny_onnx_model, options=RecognizerOptions(detector=DetectorOptions(model="huge")))
    with pytest.raises(InputError):
        Recognizer(tiny_onnx_model, gallery=42)


def test_min_face_size_option(tiny_onnx_model, people):
    image = read(next(iter(people.values()))[0])
    with Recognizer(tiny_onnx_model, options=RecognizerOptions(min_face_size=500)) as rec:
        assert rec.identify(image) == []
        assert rec.detector.options.min_face_size == 500
