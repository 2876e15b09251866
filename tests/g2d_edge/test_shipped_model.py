"""The models shipped inside the package: load offline (the default with no argument, the others by name), have the
declared interface, and tell real people they were never trained on apart."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest

from g2d_edge import Recognizer
from g2d_edge.io import read_image
from g2d_edge.errors import ModelError
from g2d_edge.backends.loader import SHIPPED_MODEL
from g2d_edge.shipped import DEFAULT_MODEL, SHIPPED_MODELS, shipped_model_path
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for

#: per model: embedding size, and the smallest ROC AUC on clean photos of 8 held-out people it must reach
EXPECTED = {"g2d-edge-m": (128, 0.95), "g2d-edge-s": (512, 0.8)}


@pytest.fixture(scope="module", params=sorted(SHIPPED_MODELS))
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def sidecar(name) -> ModelSidecar:
    path = shipped_model_path(name)
    assert path.is_file(), f"the shipped model is missing: {path}"
    return ModelSidecar.load(sidecar_path_for(path))


@pytest.fixture(scope="module")
def rec(name) -> Recognizer:
    # the default with no argument (offline), the others by name
    return Recognizer() if name == DEFAULT_MODEL else Recognizer(model=name)


def test_default_is_the_accurate_model_and_names_select_the_others():
    assert DEFAULT_MODEL == "g2d-edge-m" and SHIPPED_MODEL == shipped_model_path(DEFAULT_MODEL)
    assert set(EXPECTED) == set(SHIPPED_MODELS)
    with pytest.raises(ModelError, match="g2d-edge-m, g2d-edge-s"):
        Recognizer(model="g2d-edge-xl")


def test_graph_has_the_declared_input_and_outputs(name, sidecar):
    session = ort.InferenceSession(str(shipped_model_path(name)), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == sidecar.input.name == "faces"
    assert inp.type == "tensor(uint8)"
    assert inp.shape[1:] == [112, 112, 3] and isinstance(inp.shape[0], str)  # dynamic batch, NHWC
    assert [o.name for o in session.get_outputs()] == ["embedding", "logits"] == sidecar.outputs
    assert sidecar.embedding_dim == EXPECTED[name][0] and sidecar.num_classes == len(sidecar.class_names) > 0
    assert sidecar.threshold_far is not None and 0 < sidecar.threshold < 1
    assert sidecar.config_hash and sidecar.data_summary.get("val_identities")
    assert shipped_model_path(name).stat().st_size < 20 * 2**20  # small enough for the wheel


def test_recognizer_uses_the_shipped_threshold(rec, sidecar):
    """The open-set rule of the sidecar's calibration at 1 % FPIR: for a one-template gallery it is a 1 % false-accept
    threshold, no laxer than the sidecar's one-comparison threshold (chosen at 1 % FAR on pairs) and near it."""
    from g2d_edge.openset import OpenSetRule

    decision = rec.decision()
    assert decision.source == "open-set" and decision.fpir == 0.01
    assert rec.threshold == pytest.approx(OpenSetRule(sidecar.open_set).threshold(max(1, decision.templates)))
    assert sidecar.threshold - 0.03 <= OpenSetRule(sidecar.open_set).threshold(1) <= sidecar.threshold + 0.08


def test_embeddings_are_unit_norm_and_batch_independent(rec, name):
    faces = np.random.default_rng(0).integers(0, 255, (5, 112, 112, 3), dtype=np.uint8)
    emb = rec.embed(faces)
    assert emb.shape == (5, EXPECTED[name][0]) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(rec.embed(faces[2:3])[0], emb[2], atol=1e-4)


def test_separates_real_people_it_was_not_trained_on(rec, name, sidecar, celeba_dir):
    # people held out of training (recorded in the sidecar), 4 photos each, straight from ../shared/
    people = sidecar.data_summary["val_identities"][:8]
    embs, labels = [], []
    for k, person in enumerate(people):
        photos = sorted((celeba_dir / person).glob("*.jpg"))[:4]
        for photo in photos:
            faces = rec.identify(read_image(photo))
            assert faces, f"no face found in {photo}"
            embs.append(faces[0].embedding)
            labels.append(k)
    embs, labels = np.array(embs), np.array(labels)
    sims = embs @ embs.T
    pairs = list(itertools.combinations(range(len(labels)), 2))
    genuine = np.array([sims[i, j] for i, j in pairs if labels[i] == labels[j]])
    impostor = np.array([sims[i, j] for i, j in pairs if labels[i] != labels[j]])
    assert genuine.mean() - impostor.mean() > 0.2, (genuine.mean(), impostor.mean())
    # ROC AUC = P(a genuine pair scores above an impostor pair): 0.5 for an untrained network
    auc = (genuine[:, None] > impostor[None, :]).mean() + 0.5 * (genuine[:, None] == impostor[None, :]).mean()
    assert auc > EXPECTED[name][1], auc
    # the shipped threshold was chosen at a 1 % false-accept rate: nearly every impostor pair is rejected
    assert (impostor < rec.threshold).mean() > 0.9


def test_verify_same_and_different_person(rec, sidecar, celeba_dir):
    a, b = sidecar.data_summary["val_identities"][:2]
    pa = sorted((celeba_dir / a).glob("*.jpg"))
    pb = sorted((celeba_dir / b).glob("*.jpg"))
    same = rec.verify(pa[0], pa[1])
    diff = rec.verify(pa[0], pb[0])
    assert same.score > diff.score
