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


def _fake_sface_weights(rng: np.random.Generator, strong: dict) -> dict:
    """SFace-named weights of random values where, in every layer, only the channels of `strong[layer]` carry a
    signal: the others have batch-norm scale and shift 0, so they output exactly 0 (PReLU(0) = 0)."""
    from train.model import sface_layers

    w, cin, keep_in = {}, 3, np.arange(3)
    for name, cout, _ in sface_layers(1.0):
        dw = name.endswith("_dw")
        k = 3 if dw or name == "conv_1" else 1
        w[f"{name}_conv2d_weight"] = rng.normal(0, 0.3, (cout, 1 if dw else cin, k, k)).astype(np.float32)
        keep = keep_in if dw else strong[name]
        gamma = np.zeros(cout, np.float32)
        gamma[keep] = rng.uniform(0.5, 1.5, len(keep))
        beta = np.zeros(cout, np.float32)
        beta[keep] = rng.normal(0, 0.1, len(keep))
        w.update({f"{name}_batchnorm_gamma": gamma, f"{name}_batchnorm_beta": beta,
                  f"{name}_batchnorm_moving_mean": rng.normal(0, 0.1, cout).astype(np.float32),
                  f"{name}_batchnorm_moving_var": rng.uniform(0.5, 2, cout).astype(np.float32),
                  f"{name}_relu_gamma": rng.uniform(0, 0.3, (cout, 1, 1)).astype(np.float32)})
        cin, keep_in = cout, keep
    gamma = np.zeros(cin, np.float32)
    gamma[keep_in] = 1.0
    w.update({"bn1_gamma": gamma, "bn1_beta": np.zeros(cin, np.float32),
              "bn1_moving_mean": np.zeros(cin, np.float32), "bn1_moving_var": np.ones(cin, np.float32),
              "pre_fc1_weight": rng.normal(0, 0.01, (128, cin * 49)).astype(np.float32),
              "pre_fc1_bias": rng.normal(0, 0.1, 128).astype(np.float32),
              "fc1_gamma": np.ones(128, np.float32), "fc1_beta": np.zeros(128, np.float32),
              "fc1_moving_mean": np.zeros(128, np.float32), "fc1_moving_var": np.ones(128, np.float32)})
    return w


def test_slicing_keeps_the_strongest_channels_and_their_function() -> None:
    """When the dropped channels carry nothing, the half-width network computes what the full one computes."""
    from train.model import sface_layers
    from train.sface import slice_sface_weights

    rng = np.random.default_rng(0)
    strong = {name: np.sort(rng.permutation(c)[:c // 2]) for name, c, _ in sface_layers(1.0)
              if not name.endswith("_dw")}
    weights = _fake_sface_weights(rng, strong)
    sliced = slice_sface_weights(weights, 0.5)
    assert sliced["conv_1_conv2d_weight"].shape == (16, 3, 3, 3)
    assert sliced["conv_8_conv2d_weight"].shape == (256, 256, 1, 1)
    assert sliced["pre_fc1_weight"].shape == (128, 512 * 49)
    np.testing.assert_array_equal(sliced["conv_5_batchnorm_gamma"], weights["conv_5_batchnorm_gamma"][strong["conv_5"]])
    full = load_sface_weights(build_model(ModelConfig.preset("sface")), weights).eval()
    half = load_sface_weights(build_model(ModelConfig.preset("sface", width=0.5)), sliced).eval()
    with pytest.raises(InputError, match="shape"):  # uncut weights do not fit a slimmer network
        load_sface_weights(build_model(ModelConfig.preset("sface", width=0.5)), weights)
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        np.testing.assert_allclose(half.embed(x).numpy(), full.embed(x).numpy(), atol=1e-5)
    assert slice_sface_weights(weights, 1.0)["pre_fc1_weight"].shape == weights["pre_fc1_weight"].shape


def test_a_slimmer_sface_loads_from_the_shared_file(sface_file, real_faces) -> None:
    from train.sface import load_pretrained

    model = load_pretrained(build_model(ModelConfig.preset("sface", width=0.5, sface_stem_stride=2)), "sface")
    with torch.no_grad():
        emb, _ = InferenceModel(model.eval())(torch.from_numpy(real_faces))
    assert emb.shape == (len(real_faces), 128) and torch.isfinite(emb).all()
