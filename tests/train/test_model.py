"""Tests of train/model.py: configs, shapes, unit-norm embeddings, costs, ONNX export with a dynamic batch."""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from g2d_edge.errors import InputError
from train.costs import count_flops, count_macs, count_parameters
from train.model import InferenceModel, ModelConfig, Preprocess, build_decoder, build_model

TINY_PRESETS = ("tiny", "tiny-paper")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", ["tiny", "tiny-paper", "edge", "paper"])
def test_config_round_trips_through_json_and_yaml(name: str) -> None:
    cfg = ModelConfig.preset(name, num_classes=7)
    assert ModelConfig.from_dict(json.loads(json.dumps(asdict(cfg)))) == cfg
    assert ModelConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


def test_bad_config_values_raise_input_error() -> None:
    with pytest.raises(InputError, match="preset"):
        ModelConfig.preset("huge")
    with pytest.raises(InputError, match="encoder"):
        ModelConfig(encoder="resnet")
    with pytest.raises(InputError, match="patch_size"):
        ModelConfig(encoder="paper", patch_size=12)
    with pytest.raises(InputError, match="unknown ModelConfig field"):
        ModelConfig.from_dict({"encoder": "edge", "colour": "red"})


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_shapes_and_unit_norm_embeddings(name: str) -> None:
    cfg = ModelConfig.preset(name, num_classes=5)
    model = build_model(cfg)
    decoder = build_decoder(cfg)
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    model.eval()
    decoder.eval()
    with torch.no_grad():
        desc = model.encoder(x)
        emb, logits = model(x)
        recon = decoder(desc)
    size = cfg.descriptor_size
    assert desc.shape == (3, cfg.descriptor_channels, size, size)
    assert emb.shape == (3, cfg.embedding_dim) and logits.shape == (3, 5)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(model.embed(x), emb)
    assert recon.shape == (3, 3, 112, 112)
    assert recon.abs().max() <= 1.0
    # the embedding depends on the face: two different faces do not map to the same vector
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)


def test_edge_descriptor_is_7x7_and_paper_14x14() -> None:
    assert ModelConfig.preset("edge").descriptor_size == 7
    assert ModelConfig.preset("paper").descriptor_size == 14


def test_no_classifier_gives_empty_logits_and_set_num_classes_replaces_it() -> None:
    model = build_model(ModelConfig.preset("tiny")).eval()
    assert model.classifier is None
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        emb, logits = model(x)
    assert logits.shape == (2, 0)
    protos = torch.nn.functional.normalize(torch.randn(4, model.config.embedding_dim), dim=1)
    model.set_num_classes(4, weight=protos)
    assert isinstance(model.classifier, nn.Linear) and model.config.num_classes == 4
    with torch.no_grad():
        emb, logits = model(x)
    assert torch.allclose(logits, emb @ protos.t(), atol=1e-6)
    model.set_num_classes(0)
    assert model.classifier is None and model.config.num_classes == 0
    with pytest.raises(InputError):
        model.set_num_classes(3, weight=torch.zeros(2, 2))


def test_gradients_reach_every_part_in_training_mode() -> None:
    cfg = ModelConfig.preset("tiny", num_classes=3)
    model, decoder = build_model(cfg).train(), build_decoder(cfg).train()
    x = torch.rand(4, 3, 112, 112) * 2 - 1
    desc = model.encoder(x)
    emb = model.reformer(desc)
    loss = model.classifier(emb).logsumexp(1).mean() + (decoder(desc) - x).abs().mean()
    loss.backward()
    for part in (model.encoder, model.reformer, model.classifier, decoder):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_preprocess_maps_uint8_bgr_nhwc_to_rgb_nchw_in_minus1_1() -> None:
    faces = torch.zeros(2, 112, 112, 3, dtype=torch.uint8)
    faces[..., 0] = 255  # blue
    faces[..., 1] = 0  # green
    faces[1, 5, 7] = torch.tensor([0, 51, 204], dtype=torch.uint8)  # B, G, R
    out = Preprocess()(faces)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 112, 112)
    assert torch.all(out[0, 0] == -1.0) and torch.all(out[0, 2] == 1.0) and torch.all(out[0, 1] == -1.0)
    expected = torch.tensor([204, 51, 0], dtype=torch.float32) / 127.5 - 1.0  # R, G, B
    assert torch.allclose(out[1, :, 5, 7], expected)
    assert "bgr_to_rgb" not in Preprocess().state_dict()


def test_costs_are_counted_with_the_documented_convention() -> None:
    linear = nn.Linear(10, 20)
    assert count_flops(linear, (3, 10)) == 2 * 3 * 10 * 20
    assert count_macs(linear, (3, 10)) == 3 * 10 * 20
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)  # depthwise: 9 MACs per output element
    assert count_macs(conv, (1, 8, 5, 5)) == 8 * 5 * 5 * 9
    tiny = build_model(ModelConfig.preset("tiny"))
    assert 0 < count_parameters(tiny) < 50_000
    one = count_flops(tiny, (1, 3, 112, 112))
    assert one > 0 and count_flops(tiny, (2, 3, 112, 112)) == 2 * one
    assert tiny.training  # count_flops restores the mode


def test_edge_is_an_edge_sized_model_and_cheaper_than_paper() -> None:
    edge, paper = build_model(ModelConfig.preset("edge")), build_model(ModelConfig.preset("paper"))
    n_edge, n_paper = count_parameters(edge), count_parameters(paper)
    macs_edge, macs_paper = count_macs(edge, (1, 3, 112, 112)), count_macs(paper, (1, 3, 112, 112))
    assert 0.5e6 < n_edge < 3e6 and n_edge < n_paper
    assert 30e6 < macs_edge < 300e6 and macs_edge < macs_paper


def _export(module: nn.Module, path: Path, sample: torch.Tensor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, (sample,), str(path), input_names=["faces"], output_names=["embedding", "logits"],
            dynamic_axes={"faces": {0: "batch"}, "embedding": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )


@pytest.mark.parametrize("name,num_classes,activation", [("tiny", 0, "relu"), ("tiny", 6, "prelu"),
                                                         ("tiny-paper", 6, "relu")])
def test_onnx_export_dynamic_batch_matches_pytorch(tmp_path: Path, name: str, num_classes: int,
                                                   activation: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    cfg = ModelConfig.preset(name, num_classes=num_classes, activation=activation)
    model = InferenceModel(build_model(cfg)).eval()
    path = tmp_path / f"{name}.onnx"
    _export(model, path, torch.randint(0, 256, (2, 112, 112, 3), dtype=torch.uint8))
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version == 17
    allowed = {"Add", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Erf", "Flatten",
               "Gather", "Gemm", "Identity", "LayerNormalization", "MatMul", "Mul", "ReduceSum", "Relu", "PRelu",
               "Reshape", "Shape", "Slice", "Softmax", "Sqrt", "Sub", "Transpose", "Unsqueeze"}
    assert {node.op_type for node in graph.graph.node} <= allowed  # TensorRT-friendly ops only
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        faces = torch.randint(0, 256, (batch, 112, 112, 3), dtype=torch.uint8)
        emb, logits = session.run(["embedding", "logits"], {"faces": faces.numpy()})
        with torch.no_grad():
            ref_emb, ref_logits = model(faces)
        assert emb.shape == (batch, 512) and logits.shape == (batch, num_classes)
        np.testing.assert_allclose(emb, ref_emb.numpy(), atol=1e-5)
        np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-5)


def test_sface_width_scales_every_layer_and_sets_the_descriptor_channels() -> None:
    from train.model import sface_descriptor_channels, sface_layers

    assert sface_layers(1.0)[0] == ("conv_1", 32, 1) and sface_descriptor_channels() == 1024
    half = dict((name, c) for name, c, _ in sface_layers(0.5))
    assert half["conv_1"] == 16 and half["conv_8_dw"] == 256 and half["conv_14"] == 512
    cfg = ModelConfig.preset("sface", width=0.5)
    assert cfg.descriptor_channels == 512
    model = build_model(cfg).eval()
    with torch.no_grad():
        desc = model.encoder(torch.zeros(2, 3, 112, 112))
        emb, _ = model(torch.zeros(2, 3, 112, 112))
    assert desc.shape == (2, 512, 7, 7) and emb.shape == (2, 128)
    assert count_parameters(model) < 0.5 * count_parameters(build_model(ModelConfig.preset("sface")))
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # checkpoints rebuild it
    with pytest.raises(InputError, match="512 descriptor channels"):
        ModelConfig.preset("sface", width=0.5, descriptor_channels=1024)


def test_sface_stride2_stem_keeps_the_7x7_descriptors_at_less_cost() -> None:
    base = build_model(ModelConfig.preset("sface", width=0.5)).eval()
    fast = build_model(ModelConfig.preset("sface", width=0.5, sface_stem_stride=2)).eval()
    assert fast.encoder.layers.conv_1[0].stride == (2, 2) and fast.encoder.layers.conv_3_dw[0].stride == (1, 1)
    assert base.encoder.layers.conv_3_dw[0].stride == (2, 2)
    with torch.no_grad():
        assert fast.encoder(torch.zeros(1, 3, 112, 112)).shape == (1, 512, 7, 7)
    assert count_flops(fast, (1, 3, 112, 112)) < count_flops(base, (1, 3, 112, 112))
    with pytest.raises(InputError, match="sface_stem_stride"):
        ModelConfig.preset("sface", sface_stem_stride=4)


def test_a_config_file_can_ask_for_a_slimmer_sface(tmp_path: Path) -> None:
    from train.config import load_config

    path = tmp_path / "cfg.yaml"
    path.write_text("model: {preset: sface, width: 0.5, sface_stem_stride: 2}\n")
    cfg = load_config(path)
    assert (cfg.model.width, cfg.model.descriptor_channels, cfg.model.sface_stem_stride) == (0.5, 512, 2)
    assert cfg.model.encoder == "sface" and cfg.model.embedding_dim == 128
    path.write_text("model: {preset: sface}\n")
    assert load_config(path).model.descriptor_channels == 1024
