"""The development-only PyTorch backend (export.torch_backend): it runs g2d-train checkpoints behind the runtime's
backend protocol and agrees with ONNX Runtime on the exported graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from g2d_edge.backends import BackendOptions, Backend, OnnxRuntimeBackend, load_backend
from g2d_edge.backends.faces import synthetic_faces
from g2d_edge.errors import ModelError


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.concatenate([synthetic_faces(5, rng), rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)])


@pytest.fixture(scope="module")
def ort_backend(exported_tiny_model: Path) -> OnnxRuntimeBackend:
    return load_backend(exported_tiny_model, "onnxruntime", BackendOptions.of(intra_op_threads=1))


def test_onnxruntime_matches_pytorch(ort_backend, exported_tiny_model: Path, faces: np.ndarray):
    from export.torch_backend import TorchBackend, TorchOptions

    torch_backend = TorchBackend(exported_tiny_model.with_suffix(".pt"), TorchOptions(device="cpu"))
    assert isinstance(ort_backend, Backend) and isinstance(torch_backend, Backend)
    assert ort_backend.name == "onnxruntime" and torch_backend.name == "torch"
    e_ort, l_ort = ort_backend.infer(faces)
    e_pt, l_pt = torch_backend.infer(faces)
    assert e_ort.dtype == np.float32 and e_ort.shape == (len(faces), 512) and l_ort.shape == (len(faces), 5)
    assert ((e_ort * e_pt).sum(1) >= 0.9999).all()
    np.testing.assert_allclose(l_ort, l_pt, atol=1e-4)
    assert torch_backend.sidecar.embedding_space == ort_backend.sidecar.embedding_space
    assert torch_backend.sidecar.class_names == ort_backend.sidecar.class_names


def test_torch_backend_checkpoint_errors(tmp_path: Path):
    from export.torch_backend import TorchBackend

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load checkpoint"):
        TorchBackend(broken)
    with pytest.raises(ModelError, match="not found"):
        TorchBackend(tmp_path / "missing.pt")
