"""The OpenVINO backend (`backend="openvino"`, extra [openvino]): the same embeddings as ONNX Runtime on real aligned
faces for both shipped models, batching, options, errors, and "auto" picking it on a CPU-only machine."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import List

import numpy as np
import pytest

pytest.importorskip("openvino")

from g2d_edge.align import align_face  # noqa: E402
from g2d_edge.backends import BackendOptions, OpenVinoBackend, OpenVinoOptions, load_backend  # noqa: E402
from g2d_edge.backends.onnxruntime import available_providers  # noqa: E402
from g2d_edge.backends.tensorrt_env import tensorrt_available  # noqa: E402
from g2d_edge.detectors import DetectorOptions, FaceDetector  # noqa: E402
from g2d_edge.errors import InputError, ModelError  # noqa: E402
from g2d_edge.shipped import SHIPPED_MODELS, shipped_model_path  # noqa: E402
from runtime_helpers import read  # noqa: E402


@pytest.fixture(scope="module")
def aligned_faces(celeba_people) -> np.ndarray:
    """Real faces of the shared people, detected and aligned as the SDK does (BlazeFace keypoints), 10 of them."""
    photos = [read(p) for ps in celeba_people.values() for p in ps[:3]]
    faces: List[np.ndarray] = []
    with FaceDetector(DetectorOptions(model="short")) as det:
        for photo in photos:
            found = det.detect(photo)
            if found:
                faces.append(align_face(photo, found[0].keypoints))
    assert len(faces) >= 8, "too few faces found in the shared photos"
    return np.stack(faces[:10])


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_openvino_matches_onnxruntime_on_real_faces(name: str, aligned_faces: np.ndarray):
    path = shipped_model_path(name)
    ort = load_backend(path, "onnxruntime", BackendOptions.of(intra_op_threads=1))
    ov = load_backend(path, "openvino", BackendOptions.of(intra_op_threads=1))
    assert isinstance(ov, OpenVinoBackend) and ov.name == "openvino"
    ref_emb, ref_logits = ort.infer(aligned_faces)
    for batch in (aligned_faces[:1], aligned_faces):  # the static batch-1 model and the dynamic one
        emb, logits = ov.infer(batch)
        cosine = np.sum(emb * ref_emb[:len(batch)], axis=1)
        assert emb.shape == ref_emb[:len(batch)].shape and emb.dtype == np.float32
        assert cosine.min() >= 0.9999, f"{name}: cosine {cosine.min():.6f} against ONNX Runtime"
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        assert np.argmax(logits, 1).tolist() == np.argmax(ref_logits[:len(batch)], 1).tolist()
    # different faces stay apart: the check above is not met by a constant output
    assert float(np.sum(ref_emb[0] * ref_emb[-1])) < 0.99


def test_batches_are_split_and_empty_batches_work(tiny_onnx_model: Path, aligned_faces: np.ndarray):
    whole = load_backend(tiny_onnx_model, "openvino", BackendOptions.of(intra_op_threads=1))
    split = load_backend(tiny_onnx_model, "openvino", BackendOptions.of(intra_op_threads=1, max_batch=3))
    emb, logits = whole.infer(aligned_faces)
    emb3, logits3 = split.infer(aligned_faces)
    np.testing.assert_allclose(emb3, emb, atol=1e-5)
    np.testing.assert_allclose(logits3, logits, atol=1e-4)
    empty, empty_logits = whole.infer(aligned_faces[:0])
    assert empty.shape == (0, whole.embedding_dim) and empty_logits.shape == (0, whole.num_classes)
    with pytest.raises(InputError, match="faces\\[None\\]"):
        whole.infer(aligned_faces[0])
    whole.close()
    with pytest.raises(ModelError, match="closed"):
        whole.infer(aligned_faces[:1])


def test_options_are_checked_and_named():
    with pytest.raises(InputError, match="intra_op_threads"):
        OpenVinoOptions(intra_op_threads=-1)
    with pytest.raises(InputError, match="inference_precision"):
        OpenVinoOptions(inference_precision="int4")
    assert OpenVinoOptions(intra_op_threads=2).compile_config()["INFERENCE_NUM_THREADS"] == 2
    assert "INFERENCE_NUM_THREADS" not in OpenVinoOptions().compile_config()
    assert OpenVinoOptions().compile_config()["INFERENCE_PRECISION_HINT"] == "f32"


def test_bad_files_and_foreign_sidecars_raise_model_errors(tiny_model_copy: Path, other_space_model: Path,
                                                           tmp_path: Path):
    foreign = shutil.copy(other_space_model, tmp_path / "other.onnx")  # the session's fixture stays as it is
    shutil.copy(tiny_model_copy.with_suffix(".json"), tmp_path / "other.json")
    with pytest.raises(ModelError, match="belongs to another model"):  # the graph's stamp differs from the sidecar
        load_backend(foreign, "openvino")
    tiny_model_copy.write_bytes(tiny_model_copy.read_bytes()[:2000])
    with pytest.raises(ModelError, match="OpenVINO cannot load"):
        load_backend(tiny_model_copy, "openvino")
    engine = tiny_model_copy.with_suffix(".engine")
    engine.write_bytes(b"an engine")
    with pytest.raises(ModelError, match="openvino backend runs .onnx"):
        load_backend(engine, "ov")


@pytest.mark.skipif(tensorrt_available() is None or available_providers()[0] != "CPUExecutionProvider",
                    reason="a GPU runtime is installed here: auto prefers it")
def test_auto_picks_openvino_on_a_cpu_only_machine_and_says_so(tiny_onnx_model: Path, caplog):
    with caplog.at_level(logging.INFO, logger="g2d_edge.backends"):
        backend = load_backend(tiny_onnx_model, options=BackendOptions.of(intra_op_threads=1))
    assert backend.name == "openvino" and "backend auto -> openvino" in caplog.text


def test_one_backend_serves_several_threads(tiny_onnx_model: Path, aligned_faces: np.ndarray):
    from concurrent.futures import ThreadPoolExecutor

    backend = load_backend(tiny_onnx_model, "openvino", BackendOptions.of(intra_op_threads=1))
    batches = [aligned_faces[i % 3:i % 3 + 1 + i % 4] for i in range(24)]
    serial = [backend.infer(b)[0] for b in batches]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda b: backend.infer(b)[0], batches))
    for a, b in zip(serial, parallel):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.skipif(tensorrt_available() is None or available_providers()[0] != "CPUExecutionProvider",
                    reason="a GPU runtime is installed here: auto prefers it")
def test_auto_falls_back_to_onnxruntime_when_openvino_cannot_load_the_model(tiny_onnx_model: Path, monkeypatch,
                                                                              caplog):
    import g2d_edge.backends.loader as loader

    def refuse(path, options=None, sidecar=None):  # as OpenVinoBackend reports OpenVINO's own failure
        raise ModelError("OpenVINO cannot load it (an operator it lacks)") from RuntimeError("unsupported operator")

    monkeypatch.setattr(loader, "OpenVinoBackend", refuse)
    with caplog.at_level(logging.WARNING, logger="g2d_edge.backends"):
        backend = load_backend(tiny_onnx_model)
    assert backend.name == "onnxruntime" and "auto -> onnxruntime instead" in caplog.text
    with pytest.raises(ModelError, match="operator it lacks"):  # asked for by name: no silent switch
        load_backend(tiny_onnx_model, "openvino")


def test_auto_does_not_hide_a_sidecar_that_belongs_to_another_graph(tiny_model_copy: Path, other_space_model: Path,
                                                                     tmp_path: Path, caplog):
    """A graph/sidecar mismatch is the user's to fix: auto raises it instead of retrying on ONNX Runtime."""
    foreign = shutil.copy(other_space_model, tmp_path / "other.onnx")
    shutil.copy(tiny_model_copy.with_suffix(".json"), tmp_path / "other.json")
    with caplog.at_level(logging.WARNING, logger="g2d_edge.backends"):
        with pytest.raises(ModelError, match="belongs to another model"):
            load_backend(foreign)
    assert "auto -> onnxruntime instead" not in caplog.text
