"""Inference backends (g2d_edge.backends): ONNX Runtime vs PyTorch, batching, input and model-file errors,
backend selection. Uses the session fixture `tiny_onnx_model` (tests/conftest.py)."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from g2d_edge.backends import (BackendOptions, OnnxRuntimeBackend, OrtOptions, available_backends, check_faces,
                               load_backend)
from g2d_edge.backends.tensorrt_env import tensorrt_available
from g2d_edge.errors import BackendUnavailableError, InputError, ModelError
from runtime_helpers import REPO

TRT_REASON = tensorrt_available()


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    from g2d_edge.backends.faces import synthetic_faces

    rng = np.random.default_rng(1)
    return np.concatenate([synthetic_faces(5, rng), rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)])


@pytest.fixture(scope="module")
def ort_backend(tiny_onnx_model: Path) -> OnnxRuntimeBackend:
    return load_backend(tiny_onnx_model, "onnxruntime", BackendOptions.of(intra_op_threads=1))


@pytest.mark.parametrize("n", [1, 3, 0])
def test_dynamic_batch_and_unit_norm(ort_backend, faces: np.ndarray, n: int):
    emb, logits = ort_backend.infer(faces[:n])
    assert emb.shape == (n, 512) and logits.shape == (n, 5)
    assert emb.dtype == np.float32 and logits.dtype == np.float32
    if n:
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_batches_are_independent_of_their_neighbours(ort_backend, faces: np.ndarray):
    full, _ = ort_backend.infer(faces)
    one_by_one = np.concatenate([ort_backend.infer(faces[i:i + 1])[0] for i in range(len(faces))])
    np.testing.assert_allclose(full, one_by_one, atol=1e-5)


def test_large_batches_are_split(tiny_onnx_model: Path, faces: np.ndarray, ort_backend):
    small = load_backend(tiny_onnx_model, "onnxruntime", BackendOptions.of(max_batch=2))
    assert small.max_batch == 2
    e_small, l_small = small.infer(faces)  # 7 faces -> 4 runs
    e_full, l_full = ort_backend.infer(faces)
    np.testing.assert_allclose(e_small, e_full, atol=1e-5)
    np.testing.assert_allclose(l_small, l_full, atol=1e-5)


def test_non_contiguous_input_is_accepted(ort_backend, faces: np.ndarray):
    strided = faces[::2]
    assert not strided.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(ort_backend.infer(strided)[0], ort_backend.infer(faces[::2].copy())[0], atol=1e-6)
    fortran = np.asfortranarray(faces[:2])
    np.testing.assert_allclose(ort_backend.infer(fortran)[0], ort_backend.infer(faces[:2])[0], atol=1e-6)


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((2, 112, 112, 3), np.float32), "uint8"),
    (np.zeros((112, 112, 3), np.uint8), "faces\\[None\\]"),
    (np.zeros((2, 112, 112), np.uint8), "shape"),
    (np.zeros((2, 3, 112, 112), np.uint8), "shape"),
    (np.zeros((2, 96, 96, 3), np.uint8), "112"),
    (np.zeros((2, 112, 112, 4), np.uint8), "shape"),
    ([[0]], "numpy array"),
])
def test_bad_input_raises_input_error(ort_backend, bad, fragment):
    with pytest.raises(InputError, match=fragment):
        ort_backend.infer(bad)
    with pytest.raises(ValueError):  # InputError is also a ValueError
        check_faces(bad)


def test_warmup_runs(ort_backend):
    ort_backend.warmup()


def test_truncated_empty_or_missing_model_file(tiny_model_copy: Path, tmp_path: Path):
    data = tiny_model_copy.read_bytes()
    tiny_model_copy.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_backend(tiny_model_copy)
    tiny_model_copy.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_backend(tiny_model_copy)
    tiny_model_copy.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError, match="export it again"):
        load_backend(tiny_model_copy, "onnxruntime")
    with pytest.raises(ModelError, match="not found"):
        load_backend(tmp_path / "missing.onnx")
    (tmp_path / "model.tflite").write_bytes(b"a TFLite model")
    with pytest.raises(ModelError, match="don't know how to run"):
        load_backend(tmp_path / "model.tflite")


def test_missing_or_foreign_sidecar(tiny_model_copy: Path):
    sidecar = tiny_model_copy.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["embedding_space"] = "g2d-edge-512d-0000000000000000"
    sidecar.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="belongs to another model"):
        load_backend(tiny_model_copy)
    sidecar.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_backend(tiny_model_copy)
    sidecar.unlink()
    with pytest.raises(ModelError, match="sidecar not found"):
        load_backend(tiny_model_copy)


def test_auto_picks_openvino_or_onnxruntime_here_and_logs_it(tiny_onnx_model: Path, caplog):
    from g2d_edge.backends.onnxruntime import available_providers
    from g2d_edge.backends.openvino import openvino_available

    with caplog.at_level(logging.INFO, logger="g2d_edge.backends"):
        backend = load_backend(tiny_onnx_model)
    if TRT_REASON is not None:
        ort_gpu = available_providers()[0] != "CPUExecutionProvider"
        # on a CPU-only machine OpenVINO wins when installed; ONNX Runtime otherwise (or with a GPU provider)
        assert backend.name == ("openvino" if openvino_available() is None and not ort_gpu else "onnxruntime")
        if backend.name == "onnxruntime":
            assert backend.provider in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")
    assert f"backend auto -> {backend.name}" in caplog.text


@pytest.mark.skipif(TRT_REASON is None, reason="TensorRT is available on this machine")
def test_requesting_tensorrt_without_it_names_the_packages(tiny_onnx_model: Path):
    with pytest.raises(BackendUnavailableError) as info:
        load_backend(tiny_onnx_model, backend="tensorrt")
    msg = str(info.value)
    assert "`tensorrt`" in msg and "`pycuda`" in msg and "pip install g2d-edge[tensorrt]" in msg
    assert available_backends()["tensorrt"] is not None


def test_unavailable_ort_provider_and_bad_options(tiny_onnx_model: Path, tmp_path: Path):
    from g2d_edge.backends.onnxruntime import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
            load_backend(tiny_onnx_model, "onnxruntime", BackendOptions.of(providers=["cuda"]))
    cpu = OnnxRuntimeBackend(tiny_onnx_model, OrtOptions(providers=["cpu"]))
    assert cpu.providers == ["CPUExecutionProvider"]
    with pytest.raises(InputError, match="unknown backend option"):
        load_backend(tiny_onnx_model, options=BackendOptions.of(batch_size=4))
    with pytest.raises(InputError, match="backend must be"):
        load_backend(tiny_onnx_model, backend="coreml")
    engine = tmp_path / "m.fp16.engine"
    engine.write_bytes(b"an engine")
    with pytest.raises(ModelError, match="onnxruntime backend runs .onnx"):
        load_backend(engine, "onnxruntime")
    # options of other backends are accepted (the caller may not know which one "auto" picks)
    assert load_backend(tiny_onnx_model, "onnxruntime", BackendOptions.of(strict_gpu=False)).name == "onnxruntime"


def test_the_runtime_says_where_the_torch_backend_is(tiny_model_copy: Path):
    """Training checkpoints run on export.torch_backend (it needs torch); the runtime names it instead of failing
    obscurely."""
    checkpoint = tiny_model_copy.with_suffix(".pt")
    checkpoint.write_bytes(b"a g2d-train checkpoint")
    for call in (lambda: load_backend(checkpoint), lambda: load_backend(tiny_model_copy, "torch")):
        with pytest.raises(BackendUnavailableError, match="export.torch_backend"):
            call()
    assert "torch" not in available_backends()


def test_importing_the_runtime_does_not_import_torch_or_tensorrt():
    code = ("import sys, g2d_edge.backends as b; b.load_backend; "
            "print(sorted(m for m in ('torch', 'train', 'export', 'tensorrt', 'pycuda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"
