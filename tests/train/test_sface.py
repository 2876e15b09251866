"""OpenCV SFace: the float graph equals the shared int8 file, and the PyTorch re-implementation equals both."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from train.model import InferenceModel, ModelConfig, build_model, load_sface_weights
from train.sface import DEFAULT_SFACE_ONNX, SFace, _dequantize, float_graph, float_weights
from g2d_edge.errors import InputError, ModelError
import shared_data

# the shared copy: DEFAULT_SFACE_ONNX's place inside the shared folder (found from any working directory)
SFACE = shared_data.SHARED_DIR / DEFAULT_SFACE_ONNX.relative_to("../shared")


@pytest.fixture(scope="module")
def sface_file():
    if not SFACE.is_file():
        pytest.skip(shared_data.missing("SFace", SFACE))
    return SFACE


@pytest.fixture(scope="module")
def real_faces(celeba_people) -> np.ndarray:
    """Aligned crops of real photos, made by the SDK's own detector and aligner."""
    import cv2

    from g2d_edge.align import align_face
    from g2d_edge.detectors import DetectorOptions, FaceDetector

    crops = []
    with FaceDetector(DetectorOptions()) as det:
        for photos in celeba_people.values():
            for path in photos[:3]:
                image = cv2.imread(str(path))
                faces = det.detect(image)
                if faces:
                    crops.append(align_face(image, faces[0].keypoints))
    assert len(crops) >= 8
    return np.stack(crops)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_block_dequantisation_repeats_scales_along_the_axis() -> None:
    q = np.array([[1, 2, 3], [4, 5, 6]], np.int8)
    scale = np.array([[1.0, 10.0], [2.0, 20.0]], np.float32)  # blocks of 2 columns: the last block is short
    zero = np.array([[0, 1], [1, 0]], np.int8)
    out = _dequantize(q, scale, zero, axis=1, block=2)
    assert out.tolist() == [[1.0, 2.0, 20.0], [6.0, 8.0, 120.0]]


def test_float_graph_matches_the_shared_int8_file(sface_file, real_faces) -> None:
    import onnx
    import onnxruntime as ort

    as_shipped = onnx.load(str(sface_file))
    keep = [i for i in as_shipped.graph.input if i.name == "data"]
    del as_shipped.graph.input[:]
    as_shipped.graph.input.extend(keep)
    ref = ort.InferenceSession(as_shipped.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = np.concatenate([ref.run(None, {"data": np.ascontiguousarray(
        f[None, :, :, ::-1].transpose(0, 3, 1, 2).astype(np.float32))})[0] for f in real_faces])
    got = SFace(sface_file)(real_faces)  # batched: the float graph has a dynamic batch axis
    assert got.shape == (len(real_faces), 128)
    assert _cos(got, expected).min() > 0.99999
    graph = float_graph(sface_file)
    assert not any(n.op_type == "DequantizeLinear" for n in graph.graph.node)
    assert [i.name for i in graph.graph.input] == ["data"]


def test_pytorch_sface_reproduces_onnx_runtime_on_real_faces(sface_file, real_faces) -> None:
    model = build_model(ModelConfig.preset("sface"))
    load_sface_weights(model, float_weights(sface_file))
    with torch.no_grad():
        emb, logits = InferenceModel(model.eval())(torch.from_numpy(real_faces))
    assert logits.shape == (len(real_faces), 0)
    assert _cos(emb.numpy(), SFace(sface_file)(real_faces)).min() >= 0.9999
    # and it is a face recogniser: the same person's photos are closer than other people's
    e = emb.numpy()
    sims = e @ e.T
    assert sims[0, 1] > np.median(sims)


def test_sface_weights_fit_only_the_sface_architecture(sface_file) -> None:
    with pytest.raises(InputError, match="preset\\('sface'\\)"):
        load_sface_weights(build_model(ModelConfig.preset("tiny")), float_weights(sface_file))
    weights = float_weights(sface_file)
    del weights["fc1_gamma"]
    with pytest.raises(InputError, match="fc1_gamma"):
        load_sface_weights(build_model(ModelConfig.preset("sface")), weights)


def test_missing_sface_file_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        float_weights(tmp_path / "nope.onnx")


def test_sface_rejects_what_is_not_an_aligned_face_batch(sface_file) -> None:
    with pytest.raises(ModelError, match="112, 112, 3"):
        SFace(sface_file)(np.zeros((2, 100, 100, 3), np.uint8))


def test_pretrained_needs_the_sface_architecture() -> None:
    from train.config import TrainConfig
    from train.config_convert import ConfigError, from_dict

    with pytest.raises(ConfigError, match="sface architecture"):
        from_dict(TrainConfig, {"pretrained": "sface", "model": {"preset": "edge"}})
    with pytest.raises(ConfigError, match="pretrained must be"):
        from_dict(TrainConfig, {"pretrained": "arcface", "model": {"preset": "sface"}})
    cfg = from_dict(TrainConfig, {"pretrained": "sface", "model": {"preset": "sface"}})
    assert cfg.model.embedding_dim == 128 and cfg.model.reformer == "linear"
