"""`g2d-export triton`: the model repository's layout, and its config.pbtxt parsed with Triton's own model-config
protobuf (tritonclient). Serving it on a real server is tested in tests/g2d_edge/backends/test_triton.py."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from export.cli import main as export_main
from g2d_edge.errors import ExportError
from export.triton import TritonRepoOptions, write_triton_repository
from g2d_edge.backends.tensorrt_env import tensorrt_available
from g2d_edge.errors import BackendUnavailableError, InputError, ModelError
from g2d_edge.sidecar import ModelSidecar

import fake_tensorrt  # tests/export/fake_tensorrt.py (see tests/conftest.py)

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient is not installed: pip install -e '.[triton]'")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse_config(folder: Path):
    """config.pbtxt as Triton reads it: text_format.Parse fails on any field or value Triton's schema lacks."""
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def tensors(entries) -> dict:
    return {t.name: (model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in entries}


def test_repository_for_the_nvidia_container(tiny_model_copy: Path, tmp_path: Path):
    repo = tmp_path / "model_repository"
    written = write_triton_repository(tiny_model_copy, repo, TritonRepoOptions(tensorrt="no"))
    sidecar = ModelSidecar.load(tiny_model_copy.with_suffix(".json"))
    model = repo / sidecar.name
    assert [m.name for m in written["models"]] == [sidecar.name] and "tensorrt_plan" in written["skipped"]
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
        f"{sidecar.name}/1/model.json", f"{sidecar.name}/1/model.onnx", f"{sidecar.name}/config.pbtxt"]
    assert (model / "1" / "model.onnx").read_bytes() == tiny_model_copy.read_bytes()
    assert ModelSidecar.load(model / "1" / "model.json") == sidecar

    config = parse_config(model)
    assert (config.name, config.platform, config.max_batch_size) == (sidecar.name, "onnxruntime_onnx", 32)
    assert tensors(config.input) == {"faces": ("TYPE_UINT8", [112, 112, 3])}
    assert tensors(config.output) == {"embedding": ("TYPE_FP32", [sidecar.embedding_dim]),
                                      "logits": ("TYPE_FP32", [sidecar.num_classes])}
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 1000
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [
        (1, "KIND_GPU")]
    assert {k: v.string_value for k, v in config.parameters.items()} == {
        "g2d_embedding_space": sidecar.embedding_space, "g2d_embedding_dim": str(sidecar.embedding_dim),
        "g2d_model": sidecar.name, "g2d_weights_sha256": sidecar.weights_sha256}


def test_cpu_instances_without_dynamic_batching_and_new_versions(tiny_model_copy: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    options = TritonRepoOptions(model_name="faces.cpu", device="cpu", instances=2, dynamic_batching=False,
                                max_batch_size=8, tensorrt="no")
    write_triton_repository(tiny_model_copy, repo, options)
    config = parse_config(repo / "faces.cpu")
    assert not config.HasField("dynamic_batching") and config.max_batch_size == 8
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [
        (2, "KIND_CPU")]
    with pytest.raises(ExportError, match="already exists.*--version 2"):
        write_triton_repository(tiny_model_copy, repo, options)
    options = replace(options, version=2, dynamic_batching=True, preferred_batch_sizes=(4, 8))
    write_triton_repository(tiny_model_copy, repo, options)
    assert (repo / "faces.cpu" / "1" / "model.onnx").is_file() and (repo / "faces.cpu" / "2" / "model.onnx").is_file()
    assert list(parse_config(repo / "faces.cpu").dynamic_batching.preferred_batch_size) == [4, 8]
    options = replace(options, force=True)
    write_triton_repository(tiny_model_copy, repo, options)  # overwrites version 2


def test_refuses_what_triton_or_the_sdk_could_not_serve(tiny_model_copy: Path, tmp_path: Path):
    with pytest.raises(InputError, match="TritonRepoOptions.model_name: .*letters, digits"):
        TritonRepoOptions(model_name="my model")
    with pytest.raises(InputError, match="TritonRepoOptions.preferred_batch_sizes: preferred batch"):
        TritonRepoOptions(preferred_batch_sizes=(64,))
    for bad in ({"version": 0}, {"max_batch_size": "32"}, {"device": "tpu"}, {"instances": 1.5},
                {"max_queue_delay_us": -1}, {"tensorrt": True}):
        with pytest.raises(InputError, match=f"TritonRepoOptions.{next(iter(bad))}"):
            TritonRepoOptions(**bad)
    if tensorrt_available() is not None:  # no TensorRT here
        with pytest.raises(BackendUnavailableError, match="--tensorrt yes"):
            write_triton_repository(tiny_model_copy, tmp_path / "r", TritonRepoOptions(tensorrt="yes"))
    assert not (tmp_path / "r").exists()  # nothing half-written
    meta = json.loads(tiny_model_copy.with_suffix(".json").read_text())
    meta["embedding_dim"] = 128  # a sidecar that belongs to another model
    tiny_model_copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="sidecar"):
        write_triton_repository(tiny_model_copy, tmp_path / "r")
    tiny_model_copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="sidecar not found"):
        write_triton_repository(tiny_model_copy, tmp_path / "r")


def test_tensorrt_plan_variant_with_the_stand_in(monkeypatch, tiny_model_copy: Path, tmp_path: Path):
    """Where TensorRT is present (here its CPU stand-in) the repository also gets NAME-trt with a verified plan."""
    fake_tensorrt.install(monkeypatch)
    repo = tmp_path / "repo"
    written = write_triton_repository(tiny_model_copy, repo, TritonRepoOptions(max_batch_size=4, precision="fp16"))
    sidecar = ModelSidecar.load(tiny_model_copy.with_suffix(".json"))
    trt_name = sidecar.name + "-trt"
    assert [m.name for m in written["models"]] == [sidecar.name, trt_name] and not written["skipped"]
    plan_sidecar = ModelSidecar.load(repo / trt_name / "1" / "model.json")
    assert (repo / trt_name / "1" / "model.plan").read_bytes().startswith(fake_tensorrt.MAGIC)
    assert plan_sidecar.embedding_space == sidecar.embedding_space
    assert plan_sidecar.engine["precision"] == "fp16" and plan_sidecar.engine["max_batch"] == 4
    config = parse_config(repo / trt_name)
    assert (config.name, config.platform, config.max_batch_size) == (trt_name, "tensorrt_plan", 4)
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"
    assert tensors(config.output)["embedding"] == ("TYPE_FP32", [sidecar.embedding_dim])
    assert config.parameters["g2d_embedding_space"].string_value == sidecar.embedding_space


def test_cli(tiny_model_copy: Path, tmp_path: Path, capsys):
    repo = tmp_path / "repo"
    code = export_main(["triton", str(tiny_model_copy), "-o", str(repo), "--name", "tiny-cpu", "--device", "cpu",
                        "--max-batch", "16", "--max-queue-delay-us", "500", "--tensorrt", "no"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["models"][0]["name"] == "tiny-cpu" and out["models"][0]["platform"] == "onnxruntime_onnx"
    config = parse_config(repo / "tiny-cpu")
    assert config.max_batch_size == 16 and config.dynamic_batching.max_queue_delay_microseconds == 500
    assert export_main(["triton", str(tiny_model_copy), "-o", str(repo), "--name", "tiny-cpu"]) == 1  # v1 exists
