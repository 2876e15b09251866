"""Teachers and their embedding caches."""
import numpy as np
import pytest

from train.prepare import prepare_folder
from train.teacher import DlibTeacher, RandomConvTeacher, build_teacher_cache, load_teacher_cache


def test_random_conv_teacher_is_deterministic_and_input_dependent():
    faces = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    a, b = RandomConvTeacher(seed=0)(faces), RandomConvTeacher(seed=0)(faces)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 128) and not np.allclose(a[0], a[1])
    assert not np.allclose(RandomConvTeacher(seed=1)(faces), a)


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory, celeba_people):
    root = tmp_path_factory.mktemp("raw")
    import shutil

    for ident, photos in list(celeba_people.items())[:3]:
        (root / ident).mkdir()
        for p in photos[:3]:
            shutil.copy(p, root / ident / p.name)
    out = root.parent / "cache.npz"
    prepare_folder(root, out, labelled=True, workers=1)
    return out


def test_cache_rows_align_with_prepared_cache(small_cache, tmp_path):
    emb = build_teacher_cache(small_cache, tmp_path / "t.npy", teacher="random")
    loaded = load_teacher_cache(tmp_path / "t.npy", expected_rows=9)
    np.testing.assert_array_equal(emb, loaded)
    with pytest.raises(ValueError, match="rebuild"):
        load_teacher_cache(tmp_path / "t.npy", expected_rows=10)
    with pytest.raises(FileNotFoundError):
        load_teacher_cache(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="unknown teacher"):
        build_teacher_cache(small_cache, tmp_path / "x.npy", teacher="arcface")


def test_dlib_teacher_tells_real_people_apart(small_cache, tmp_path):
    pytest.importorskip("dlib", reason="the dlib teacher is the optional [teacher] extra")
    pytest.importorskip("face_recognition_models", reason="the dlib teacher is the optional [teacher] extra")
    from train.prepare import AlignedCache

    emb = build_teacher_cache(small_cache, tmp_path / "d.npy", teacher="dlib")
    labels = AlignedCache.load(small_cache).labels
    assert emb.shape == (9, DlibTeacher.dim) and np.isfinite(emb).all()
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    same = labels[:, None] == labels[None]
    off_diag = ~np.eye(len(labels), dtype=bool)
    # dlib calls two faces the same person below 0.6
    assert dist[same & off_diag].mean() < 0.6 < dist[~same].mean()


def test_sface_teacher_tells_real_people_apart(small_cache, tmp_path):
    from train.sface import DEFAULT_SFACE_ONNX

    if not DEFAULT_SFACE_ONNX.is_file():
        pytest.skip(f"SFace not found at {DEFAULT_SFACE_ONNX}")
    emb = build_teacher_cache(small_cache, tmp_path / "sface.npy", teacher="sface")
    assert emb.shape == (9, 128) and np.isfinite(emb).all()
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.repeat(np.arange(3), 3)
    sims = e @ e.T
    same = (labels[:, None] == labels[None]) & ~np.eye(9, dtype=bool)
    assert sims[same].mean() > sims[labels[:, None] != labels[None]].mean() + 0.3
    with pytest.raises(Exception, match="not found"):
        build_teacher_cache(small_cache, tmp_path / "x.npy", teacher=f"sface:{tmp_path / 'missing.onnx'}")


def test_onnx_teacher_reads_g2d_edge_graphs_as_they_are(tmp_path):
    """A g2d-edge graph (uint8 NHWC BGR faces in) is a teacher as is: the layout comes from its input type."""
    import torch

    from export.onnx import trace_to_onnx
    from g2d_edge.errors import ModelError
    from train.model import InferenceModel, ModelConfig, build_model
    from train.teacher import OnnxTeacher

    torch.manual_seed(0)
    model = InferenceModel(build_model(ModelConfig.preset("tiny", embedding_dim=32))).eval()
    path = tmp_path / "student.onnx"
    path.write_bytes(trace_to_onnx(model).SerializeToString())
    faces = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    teacher = OnnxTeacher(path, batch_size=2)
    assert teacher.layout == "NHWC-BGR-uint8" and teacher.dim == 32
    with torch.no_grad():
        expected = model(torch.from_numpy(faces))[0].numpy()
    np.testing.assert_allclose(teacher(faces), expected, atol=1e-5)
    with pytest.raises(ModelError, match="input_layout"):
        OnnxTeacher(path, input_layout="NHWC")
