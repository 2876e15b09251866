"""The model shipped inside the package: loads offline, has the declared interface, and tells real people apart."""
import itertools

import numpy as np
import onnx
import pytest

from g2d_edge import Recognizer, read_image
from g2d_edge.recognizer import SHIPPED_MODEL
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for


@pytest.fixture(scope="module")
def sidecar() -> ModelSidecar:
    assert SHIPPED_MODEL.is_file(), f"the shipped model is missing: {SHIPPED_MODEL}"
    return ModelSidecar.load(sidecar_path_for(SHIPPED_MODEL))


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer()  # no argument: the shipped model, offline


def test_graph_has_the_declared_input_and_outputs(sidecar):
    graph = onnx.load(str(SHIPPED_MODEL)).graph
    (inp,) = graph.input
    assert inp.name == sidecar.input.name == "faces"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims[1:] == [112, 112, 3] and isinstance(dims[0], str)  # dynamic batch, NHWC
    assert [o.name for o in graph.output] == ["embedding", "logits"] == sidecar.outputs
    assert sidecar.embedding_dim == 512 and sidecar.num_classes == len(sidecar.class_names) > 0
    assert sidecar.threshold_far is not None and 0 < sidecar.threshold < 1
    assert sidecar.config_hash and sidecar.data_summary.get("val_identities")
    assert SHIPPED_MODEL.stat().st_size < 20 * 2**20  # a few MB in the wheel


def test_recognizer_uses_the_shipped_threshold(rec, sidecar):
    assert rec.threshold == pytest.approx(sidecar.threshold)


def test_embeddings_are_unit_norm_and_batch_independent(rec):
    faces = np.random.default_rng(0).integers(0, 255, (5, 112, 112, 3), dtype=np.uint8)
    emb = rec.embed(faces)
    assert emb.shape == (5, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(rec.embed(faces[2:3])[0], emb[2], atol=1e-4)


def test_separates_real_people_it_was_not_trained_on(rec, sidecar, celeba_dir):
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
    assert auc > 0.8, auc
    # the shipped threshold was chosen at a 1 % false-accept rate: nearly every impostor pair is rejected
    assert (impostor < rec.threshold).mean() > 0.9


def test_verify_same_and_different_person(rec, sidecar, celeba_dir):
    a, b = sidecar.data_summary["val_identities"][:2]
    pa = sorted((celeba_dir / a).glob("*.jpg"))
    pb = sorted((celeba_dir / b).glob("*.jpg"))
    same = rec.verify(pa[0], pa[1])
    diff = rec.verify(pa[0], pb[0])
    assert same.score > diff.score
