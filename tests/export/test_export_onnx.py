"""g2d-export onnx: graph contract, parity with PyTorch (and its failure), sidecar, checkpoint input, CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.cli import main as export_main
from g2d_edge.errors import ExportError, ParityError
from export.onnx import (ParityOptions, embedding_space_id, export_onnx, parity_batches, verify_parity,
                         weights_sha256)
from g2d_edge.sidecar import ModelSidecar, sidecar_path_for
from train.model import InferenceModel

FAST = ParityOptions(num_real=4, num_synthetic=4, num_random=3)


def _corrupt(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add noise to the largest float initializer (a conv / linear weight)."""
    init = max((t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT),
               key=lambda t: int(np.prod(t.dims)))
    w = onnx.numpy_helper.to_array(init).copy()
    w += np.random.default_rng(0).normal(0, 2 * (w.std() + 1e-3), w.shape).astype(w.dtype)
    init.CopyFrom(onnx.numpy_helper.from_array(w, init.name))
    return model


def test_tiny_model_graph_contract(exported_tiny_model: Path):
    model = onnx.load(str(exported_tiny_model))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert inp.name == "faces" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [112, 112, 3]
    assert [o.name for o in model.graph.output] == ["embedding", "logits"]
    props = {p.key: p.value for p in model.metadata_props}
    sidecar = ModelSidecar.load(sidecar_path_for(exported_tiny_model))
    assert props["embedding_space"] == sidecar.embedding_space
    assert props["weights_sha256"] == sidecar.weights_sha256


def test_sidecar_contents_and_round_trip(exported_tiny_model: Path):
    TINY_CLASS_NAMES = ["alice", "bob", "carol", "dave", "erin"]  # noqa: N806 - as in tests/conftest.py
    path = sidecar_path_for(exported_tiny_model)
    sidecar = ModelSidecar.load(path)
    assert sidecar.name == "tiny"
    assert sidecar.embedding_dim == 512 and sidecar.num_classes == len(TINY_CLASS_NAMES)
    assert sidecar.class_names == TINY_CLASS_NAMES
    assert sidecar.threshold == pytest.approx(0.42)
    assert sidecar.trained_on == "random weights (tests)"
    assert sidecar.data_summary == {"identities": 5}
    assert sidecar.config["encoder"] == "edge" and sidecar.config["num_classes"] == 5
    for key in ("torch", "onnx", "onnxruntime", "onnxslim", "opset"):
        assert sidecar.versions[key]
    assert sidecar.versions["opset"] == "17"
    assert sidecar.engine is None
    assert len(sidecar.weights_sha256) == 64 and sidecar.embedding_space.startswith("g2d-edge-512d-")
    assert ModelSidecar.from_dict(json.loads(path.read_text())) == sidecar
    # the checkpoint next to it gives the same hashes
    from train.checkpoint import load_model

    model, _ = load_model(exported_tiny_model.with_suffix(".pt"))
    assert weights_sha256(model) == sidecar.weights_sha256
    assert embedding_space_id(model) == sidecar.embedding_space


def test_embedding_space_ignores_classifier_but_weights_hash_does_not(make_tiny_model):
    a, b = make_tiny_model(5), make_tiny_model(5)
    with torch.no_grad():
        b.classifier.weight.add_(1.0)
    assert embedding_space_id(a) == embedding_space_id(b)
    assert weights_sha256(a) != weights_sha256(b)
    c = make_tiny_model(5, seed=1)
    assert embedding_space_id(a) != embedding_space_id(c)


def test_export_in_memory_model_matches_pytorch(tmp_path: Path, make_tiny_model):
    model = make_tiny_model(3)
    was = model.training
    out = tmp_path / "m.onnx"
    sidecar = export_onnx(model, out, meta={"class_names": ["a", "b", "c"]}, parity=FAST)
    assert out.is_file() and sidecar_path_for(out).is_file()
    assert sidecar.threshold == 0.5  # default when the meta has none
    assert model.training == was  # the caller's model is not modified
    # independent re-check on the written file, at batch sizes 1, 3 and 7
    rng = np.random.default_rng(5)
    batches = [(f"b{n}", rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)) for n in (1, 3, 7)]
    report = verify_parity(out, InferenceModel(model), batches)
    assert report.passed, report.summary()
    assert report.min_cosine >= 0.9999 and report.num_faces == 11


def test_fp16_weights_halve_the_file_and_keep_the_embeddings(tmp_path: Path, make_tiny_model):
    model = make_tiny_model(3)
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    export_onnx(model, full, meta={"class_names": ["a", "b", "c"]}, parity=FAST)
    export_onnx(model, half, meta={"class_names": ["a", "b", "c"]}, parity=FAST, weights="fp16")
    graph = onnx.load(str(half))
    stored = [i for i in graph.graph.initializer if i.name.endswith("__fp16")]
    assert stored and all(i.data_type == onnx.TensorProto.FLOAT16 for i in stored)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    rng = np.random.default_rng(2)
    report = verify_parity(half, InferenceModel(model), [("b5", rng.integers(0, 256, (5, 112, 112, 3), np.uint8))])
    assert report.min_cosine >= 0.9999
    with pytest.raises(ExportError, match="weights must be"):
        export_onnx(model, tmp_path / "bad.onnx", parity=FAST, weights="int4")


def test_export_without_classifier(tmp_path: Path, make_tiny_model):
    import onnxruntime as ort

    out = tmp_path / "noclf.onnx"
    sidecar = export_onnx(make_tiny_model(0), out, parity=FAST)
    assert sidecar.num_classes == 0 and sidecar.class_names == []
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    emb, logits = sess.run(None, {"faces": np.zeros((2, 112, 112, 3), np.uint8)})
    assert emb.shape == (2, 512) and logits.shape == (2, 0)


def test_parity_failure_is_detected_and_nothing_written(tmp_path: Path, make_tiny_model, monkeypatch):
    import export.onnx as export_onnx_mod

    real_simplify = export_onnx_mod.simplify_graph
    monkeypatch.setattr(export_onnx_mod, "simplify_graph", lambda m: _corrupt(real_simplify(m)))
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError) as info:
        export_onnx(make_tiny_model(5), out, parity=FAST)
    assert "cosine" in str(info.value) and info.value.report is not None
    assert info.value.report.min_cosine < 0.9999 and not info.value.report.passed
    assert not out.exists() and not sidecar_path_for(out).exists()
    assert not list(tmp_path.iterdir())


def test_verify_parity_flags_a_corrupted_file(exported_tiny_model: Path, tmp_path: Path):
    from train.checkpoint import load_model

    bad = tmp_path / "bad.onnx"
    onnx.save(_corrupt(onnx.load(str(exported_tiny_model))), str(bad))
    model, _ = load_model(exported_tiny_model.with_suffix(".pt"))
    batches = parity_batches(FAST)
    assert verify_parity(exported_tiny_model, InferenceModel(model), batches).passed
    report = verify_parity(bad, InferenceModel(model), batches)
    assert not report.passed and report.failures


def test_parity_batches_include_synthetic_and_real_faces(tmp_path: Path):
    cache = tmp_path / "faces.npz"
    np.savez(cache, images=np.full((6, 112, 112, 3), 7, np.uint8))
    batches = dict(parity_batches(ParityOptions(real_faces=cache, num_real=4, num_synthetic=2, num_random=3)))
    assert set(batches) == {"random-1", "random-3", "synthetic-2", "real-4"}
    assert (batches["real-4"] == 7).all()
    no_real = dict(parity_batches(ParityOptions(real_faces=tmp_path / "missing.npz")))
    assert not any(k.startswith("real") for k in no_real)


def test_class_name_mismatch_and_bad_inputs(tmp_path: Path, make_tiny_model):
    with pytest.raises(ExportError, match="class names"):
        export_onnx(make_tiny_model(5), tmp_path / "m.onnx", meta={"class_names": ["a", "b"]}, parity=FAST)
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_onnx(make_tiny_model(5), tmp_path / "m.bin", parity=FAST)
    with pytest.raises(ExportError, match="not found"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "m.onnx", parity=FAST)
    with pytest.raises(ExportError):
        export_onnx(object(), tmp_path / "m.onnx", parity=FAST)


def test_cli_onnx_success_and_failure(exported_tiny_model: Path, tmp_path: Path, monkeypatch, capsys):
    ckpt = tmp_path / "ck.pt"
    shutil.copy(exported_tiny_model.with_suffix(".pt"), ckpt)
    out = tmp_path / "cli.onnx"
    assert export_main(["onnx", str(ckpt), "-o", str(out), "--no-real-faces", "--threshold", "0.3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_classes"] == 5
    sidecar = ModelSidecar.load(out.with_suffix(".json"))
    assert sidecar.threshold == pytest.approx(0.3) and sidecar.name == "cli"
    # same weights as the fixture's export: same identity
    assert sidecar.embedding_space == ModelSidecar.load(exported_tiny_model.with_suffix(".json")).embedding_space

    import export.onnx as export_onnx_mod

    real_simplify = export_onnx_mod.simplify_graph
    monkeypatch.setattr(export_onnx_mod, "simplify_graph", lambda m: _corrupt(real_simplify(m)))
    assert export_main(["onnx", str(ckpt), "-o", str(tmp_path / "bad.onnx"), "--no-real-faces"]) == 1
    assert not (tmp_path / "bad.onnx").exists()
    assert export_main(["onnx", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.onnx")]) == 1
    with pytest.raises(SystemExit) as info:
        export_main(["onnx", str(ckpt)])  # -o missing
    assert info.value.code == 2


def test_sidecar_records_the_held_out_people_and_their_validation(tmp_path: Path, make_tiny_model):
    meta = {"val_identities": ["7201", "7202"], "validation": {"masked-unmasked": {"accuracy": 0.8}},
            "data_summary": {"sources": {"celeb": {"rows": 10}}}, "threshold": 0.3, "threshold_far": 0.01,
            "trained_on": "celeb: 10 photos", "machine": "Some CPU (2 cores, no GPU)"}
    sidecar = export_onnx(make_tiny_model(0), tmp_path / "m.onnx", meta=meta, parity=FAST)
    assert sidecar.data_summary["val_identities"] == ["7201", "7202"]
    assert sidecar.data_summary["validation"]["masked-unmasked"]["accuracy"] == 0.8
    assert sidecar.data_summary["sources"] == {"celeb": {"rows": 10}}
    assert ModelSidecar.load(tmp_path / "m.json").threshold_far == 0.01
    assert sidecar.trained_on == "celeb: 10 photos; Some CPU (2 cores, no GPU)"  # what it saw, and where


def test_the_committed_tiny_model_is_what_the_export_makes(exported_tiny_model: Path, tiny_onnx_model: Path):
    """tests/fixtures/tiny.onnx (the runtime's tests run on it, without torch) is the model make_tiny_model exports
    today: same sidecar (but the tool versions) and the same outputs. If this fails, remake it: python
    tests/fixtures/make_tiny_model.py."""
    from g2d_edge.backends import OnnxRuntimeBackend
    from g2d_edge.backends.faces import synthetic_faces

    fresh, committed = (json.loads(p.with_suffix(".json").read_text()) for p in (exported_tiny_model, tiny_onnx_model))
    fresh.pop("versions"), committed.pop("versions")
    assert committed == fresh
    faces = synthetic_faces(4, np.random.default_rng(0))
    (e_fresh, l_fresh), (e_committed, l_committed) = (OnnxRuntimeBackend(p).infer(faces)
                                                      for p in (exported_tiny_model, tiny_onnx_model))
    np.testing.assert_allclose(e_committed, e_fresh, atol=1e-5)
    np.testing.assert_allclose(l_committed, l_fresh, atol=1e-4)
